/*
 * ring.h - the shared-memory ring between one sender and the router (the
 * format is in wire.h). The sender creates and writes it; the router maps
 * it, validates it and reads it (router.c drains it into the local queue).
 */
#ifndef MPR_RING_H
#define MPR_RING_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct mpr__ring {
    mpr__ring_hdr *hdr;  /* start of the mapping */
    unsigned char *data; /* cap bytes after the header */
    uint64_t cap;
    uint64_t pos;        /* writer: head; reader: tail (private copies) */
    size_t map_size;
} mpr__ring;

/* ---- sender ---- */
/* Make a sealed memfd ring of cap bytes and map it; *memfd is for the
 * HELLO (the caller closes it once sent). Returns 0 or a negative error. */
int mpr__ring_create(mpr__ring *ring, uint64_t cap, int *memfd);
/* Write one record, waiting for room if the ring is full; sock is the
 * connection, used to wake the router and to notice that it is gone.
 * Returns 0 or MPR_EPIPE (the router has gone; the record may or may not
 * have been written). len + 8 must not exceed cap / 4. */
int mpr__ring_put(mpr__ring *ring, int sock, uint32_t type, const void *data, uint32_t len);
/* Largest payload of one record. */
static inline uint32_t mpr__ring_max_payload(const mpr__ring *ring)
{
    return (uint32_t)(ring->cap / 4 - 8);
}

/* ---- router ---- */
/* Map a ring received with a HELLO after checking its size and seals; the
 * router's side starts asleep, so the first record wakes it. Returns 0 or
 * MPR_EPROTO. Does not take memfd. */
int mpr__ring_map(mpr__ring *ring, int memfd);
/* Before sleeping: announce it, then look again. Returns 1 if the ring is
 * (still) empty and the reader may sleep, 0 if data arrived meanwhile. */
int mpr__ring_try_sleep(mpr__ring *ring);
/* Publish the reader's position and wake a sender waiting for room. */
void mpr__ring_consumed(mpr__ring *ring);

/* Unmap; the router also marks the ring closed and wakes a waiting
 * sender first (closing = 1). */
void mpr__ring_unmap(mpr__ring *ring, int closing);

#endif /* MPR_RING_H */
