/*
 * ring.h - the shared-memory ring between one sender and its reader (the
 * format is in wire.h), and the router's AF_UNIX connection that both
 * local transports ride on (transport_socket.c owns it, transport_ring.c
 * adds the ring). Never installed.
 *
 * The same ring also serves a remote sender in private memory: its own
 * thread reads it and forwards the records (transport_zmq.c). The writer
 * wakes a sleeping reader through wake_fd: one byte on the local socket,
 * or an eventfd increment (wake_eventfd).
 */
#ifndef MPR_RING_H
#define MPR_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "transport.h"
#include "wire.h"

typedef struct mpr__ring {
    mpr__ring_hdr *hdr;  /* start of the mapping */
    unsigned char *data; /* cap bytes after the header */
    uint64_t cap;
    uint64_t pos;        /* writer: head; reader: tail (private copies) */
    size_t map_size;
    int wake_fd;         /* writer: where a wake-up goes */
    int wake_eventfd;    /* writer: wake_fd is an eventfd, not a socket */
} mpr__ring;

/* ---- writer ---- */
/* Make a sealed memfd ring of cap bytes and map it; *memfd is for the
 * PROOF (the caller closes it once sent). Returns 0 or a negative error. */
int mpr__ring_create(mpr__ring *ring, uint64_t cap, int *memfd);
/* The same in private memory, for a reader in this process. */
int mpr__ring_create_private(mpr__ring *ring, uint64_t cap, int wake_eventfd);
/* Write one record, waiting for room if the ring is full; the reader is
 * woken through ring->wake_fd, which also tells (local socket) that it is
 * gone. Returns 0 or MPR_EPIPE (the reader has gone; the record may or may
 * not have been written). len + 8 must not exceed cap / 4. */
int mpr__ring_put(mpr__ring *ring, uint32_t type, const void *data, uint32_t len);
/* A whole message: one MSG record if it fits in a quarter of the ring,
 * else FRAG_START and FRAG_DATA records. 0 or MPR_EPIPE. */
int mpr__ring_put_message(mpr__ring *ring, const void *data, size_t size);
/* Largest payload of one record. */
static inline uint32_t mpr__ring_max_payload(const mpr__ring *ring)
{
    return (uint32_t)(ring->cap / 4 - 8);
}

/* ---- reader ---- */
/* Map a ring received with a PROOF after checking its size and seals; the
 * reader starts asleep, so the first record wakes it. Returns 0 or
 * MPR_EPROTO. Does not take memfd. */
int mpr__ring_map(mpr__ring *ring, int memfd);
/* Before sleeping: announce it, then look again. Returns 1 if the ring is
 * (still) empty and the reader may sleep, 0 if data arrived meanwhile. */
int mpr__ring_try_sleep(mpr__ring *ring);
/* Publish the reader's position and wake a writer waiting for room. */
void mpr__ring_consumed(mpr__ring *ring);
/* Tell the writer the reader is gone (it gets MPR_EPIPE, also if it is
 * waiting for room). */
void mpr__ring_close(mpr__ring *ring);

/* Unmap; the reader also marks the ring closed first (closing = 1). */
void mpr__ring_unmap(mpr__ring *ring, int closing);

/* ---- the router's end of a local connection ---- */

typedef struct mpr__local_conn {
    mpr__conn base;
    mpr__watch watch; /* the socket */
    int memfd;        /* received with the PROOF, until mapped */
    int ctrunc;       /* a descriptor sent to us was dropped (our limit) */
    mpr__wire wire;   /* the frame parser */
    uint64_t sync_left; /* route_until: socket bytes still to read */
    uint64_t sync_head; /* route_until: ring head to reach */
    mpr__ring ring;   /* ring mode */
} mpr__local_conn;

/* transport_socket.c: the connection's socket side, used by both. */
void mpr__local_close(mpr__conn *c);

/* transport_ring.c: a connection whose messages come through the ring
 * lc->ring (mapped). */
extern const mpr__conn_ops mpr__ring_conn_ops;

#endif /* MPR_RING_H */
