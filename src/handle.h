/*
 * handle.h - receiver handles (handle.c): what the application holds for a
 * receiver is a number with a generation, never a pointer, so a stale or
 * forged handle is detected instead of being dereferenced. ANY THREAD.
 * Never installed.
 */
#ifndef MPR_HANDLE_H
#define MPR_HANDLE_H

#include <mprouter/router.h>

/* A new handle for the object at p: 0 or MPR_ENOMEM. */
int mpr__handle_new(void *p, mpr_receiver **out);
/* The object of a live handle, or NULL. */
void *mpr__handle_get(const mpr_receiver *h);
/* The handle is dead from now on (a no-op for a dead one). */
void mpr__handle_free(const mpr_receiver *h);

#endif /* MPR_HANDLE_H */
