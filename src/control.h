/*
 * control.h - the way back in the router (control.c): per pipe, the
 * control messages the main thread sent (mpr_receiver_send) and the
 * newest cancel tag (mpr_receiver_cancel), until the pipe's connection
 * takes them. The main thread puts, the monitor thread takes; one mutex.
 * Never installed.
 *
 * Bytes are counted from the send until the transport releases them
 * (written to the connection, or taken by a remote worker), so one pipe
 * holds at most MPR_CONTROL_QUEUE_SIZE bytes in the router in all.
 *
 * A pipe's entry lives from its first send or cancel (or its connection's
 * accept) until its connection ends or the pipe is closed, whichever is
 * later; a pipe whose sender has ended is remembered in a bit set (the
 * sends that follow fail with MPR_EPIPE).
 */
#ifndef MPR_CONTROL_H
#define MPR_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "platform.h"

typedef struct mpr__ctl mpr__ctl;

/* A control message, as the transports get it: theirs to free (free())
 * once they took it from the table, its bytes counted until they release
 * them. */
typedef struct mpr__ctl_msg {
    struct mpr__ctl_msg *next;
    uint64_t cseq;       /* the transport's own numbering (remote) */
    size_t size;
    unsigned char data[];
} mpr__ctl_msg;

/* A table; poller: the monitor's, woken when a pipe has something new. */
int mpr__ctl_new(mpr__ctl **out, mpr__poller *poller);
/* Free the table and every message in it (after the monitor ended). */
void mpr__ctl_free(mpr__ctl *t);

/* ---- the main thread ---- */

/* mpr_receiver_send, mpr_receiver_cancel (router.h): 0, MPR_EAGAIN,
 * MPR_EPIPE or MPR_ENOMEM. */
int mpr__ctl_send(mpr__ctl *t, uint32_t id, const void *data, size_t size);
int mpr__ctl_cancel(mpr__ctl *t, uint32_t id, uint64_t tag);
/* The pipe was closed: drop what it holds. */
void mpr__ctl_forget(mpr__ctl *t, uint32_t id);

/* ---- the monitor thread ---- */

/* The pipe's connection is open: owner (the monitor's connection) is
 * named again by mpr__ctl_take_dirty when the pipe has something new. 0 or
 * MPR_ENOMEM. */
int mpr__ctl_attach(mpr__ctl *t, uint32_t id, void *owner);
/* The connection ended: what is queued is dropped, and the pipe refuses
 * sends from now on. */
void mpr__ctl_detach(mpr__ctl *t, uint32_t id);
/* Up to max owners of pipes with something new since they were last
 * named (each is named once per change). The count. */
int mpr__ctl_take_dirty(mpr__ctl *t, void **owners, int max);
/* The pipe's newest cancel tag (0: none). */
uint64_t mpr__ctl_tag(mpr__ctl *t, uint32_t id);
/* The next queued message of the pipe, now the caller's (its bytes stay
 * counted), or NULL. */
mpr__ctl_msg *mpr__ctl_take(mpr__ctl *t, uint32_t id);
/* The transport is done with n bytes of messages it took. */
void mpr__ctl_release(mpr__ctl *t, uint32_t id, size_t n);

#endif /* MPR_CONTROL_H */
