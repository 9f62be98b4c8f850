/*
 * ring.h - the ring of records between one writer and one reader (the
 * format is in wire.h): in shared memory between a local sender and the
 * router's monitor (the local transport), or in private memory between a
 * remote sender's application thread and its own thread (the remote
 * transport). The writer never makes a system call unless the reader
 * sleeps (one wake-up) or the ring is full (it waits for room). Never
 * installed.
 *
 * Memory ordering: the writer publishes head with a seq_cst store after
 * writing a record, then looks at reader_sleeping; the reader sets
 * reader_sleeping (seq_cst), then looks at head again. So either the
 * reader sees the new head, or the writer sees the reader asleep and wakes
 * it. The same pattern, mirrored, covers writer_waiting and tail.
 *
 * Wake-ups:
 *   writer -> reader: LOCAL a byte on the connection; PRIVATE an event.
 *   reader -> writer (room): with futexes (Linux) a futex on tail_seq;
 *   elsewhere LOCAL a ROOM item on the connection the other way (which
 *   also carries the way back: wire.h; the connection's owners read and
 *   write it, through wait_conn and wake_conn below), PRIVATE an event.
 *
 * Where the reader cannot map the ring (MPR__SHM_WINDOW: a system whose
 * shared memory its writer could shrink under the reader, which would
 * fault), the reader reads and writes it with pread/pwrite instead: a
 * shrink is then a short read and a protocol error of that connection
 * only. Those system calls copy byte by byte as far as atomicity goes, so
 * the reader reads head until two reads agree (the writer stores it in one
 * instruction, so a torn value is never seen twice), and writes tail twice
 * (tail, then tail_again): the writer takes a tail only when both agree,
 * which they do only when one of them is whole. The flags change in one
 * byte (0 and 1).
 */
#ifndef MPR_RING_H
#define MPR_RING_H

#include <stddef.h>
#include <stdint.h>

#include "platform.h"
#include "wire.h"

enum { MPR__RING_LOCAL, MPR__RING_PRIVATE };

typedef struct mpr__ring {
    mpr__ring_hdr *hdr;  /* start of the mapping */
    unsigned char *data; /* cap bytes after the header */
    uint64_t cap;
    uint64_t pos;        /* writer: head; reader: tail (private copies) */
    size_t map_size;
    int kind;            /* MPR__RING_LOCAL or MPR__RING_PRIVATE */
    mpr__fd conn;        /* LOCAL: the connection that carries wake-ups */
    mpr__event *reader_event; /* PRIVATE: the reader's wake-up */
    mpr__event *room_event;   /* PRIVATE without futexes: the writer's */
    /* LOCAL without futexes: the writer waits for anything on the
     * connection for at most timeout_ms (and reads it); the reader sends a
     * ROOM item if it may (nothing else half-written on the connection). */
    void (*wait_conn)(void *arg, int timeout_ms);
    void (*wake_conn)(void *arg);
    void *conn_arg;
#if MPR__SHM_WINDOW
    /* A LOCAL ring the reader cannot map (its writer could shrink it:
     * platform.h): the reader reads and writes it through a window (its
     * hdr and data stay NULL). */
    mpr__fd shm;             /* reader: the ring's handle */
    unsigned char *window;   /* reader: where records are read to */
    size_t window_size;
#endif
} mpr__ring;

/* ---- writer ---- */

/* A ring of cap bytes in shared memory, for the connection conn; *handle
 * goes to the reader with the PROOF (close it once sent). 0 or an error. */
int mpr__ring_create(mpr__ring *ring, uint64_t cap, mpr__fd conn, mpr__fd *handle);
/* The same in private memory, for a reader in this process woken through
 * reader_event (room_event: where the writer waits for room without
 * futexes; may be NULL where there are futexes). */
int mpr__ring_create_private(mpr__ring *ring, uint64_t cap, mpr__event *reader_event,
                             mpr__event *room_event);
/* Write one record, waiting for room if the ring is full. 0 or MPR_EPIPE
 * (the reader has gone; the record may or may not have been written).
 * len + 8 must not exceed cap / 4. */
int mpr__ring_put(mpr__ring *ring, uint32_t type, const void *data, uint32_t len);
/* A whole message: one MSG record if it fits in a quarter of the ring,
 * else FRAG_START and FRAG_DATA records. 0 or MPR_EPIPE. */
int mpr__ring_put_message(mpr__ring *ring, const void *data, size_t size);
/* The newest cancel tag the reader stored (0: none): 1 with *tag when its
 * two copies agree, 0 while the reader is changing it (keep the last).
 * No system call. */
int mpr__ring_cancel_tag(const mpr__ring *ring, uint64_t *tag);

/* ---- reader ---- */

/* Take a ring the writer handed over (LOCAL; conn is the connection it
 * came on): its size checked (and that the writer cannot shrink it), its
 * indices at 0. The reader starts asleep, so the first record wakes it. 0
 * or MPR_EPROTO. Takes handle (closes it, or keeps it for the window).
 * window (window_size bytes, at least MPR__RING_WINDOW_MIN) is where
 * records are read to where the ring cannot be mapped (MPR__SHM_WINDOW);
 * it must stay valid while the ring is read. */
#define MPR__RING_WINDOW_MIN (MPR__RING_DEFAULT / 4)
int mpr__ring_map(mpr__ring *ring, mpr__fd handle, mpr__fd conn, unsigned char *window,
                  size_t window_size);
/* The reader's view of a private ring made by mpr__ring_create_private. */
void mpr__ring_reader_of(mpr__ring *reader, const mpr__ring *writer);
/* The next record at the reader's position, PAD records skipped: 1 with
 * *rec, 0 if the ring is empty, MPR_EPROTO if the writer wrote nonsense.
 * Every shared field is read once and checked (mpr__ring_next). */
int mpr__ring_peek(mpr__ring *ring, mpr__ring_rec *rec);
/* Move past the record peek gave. */
static inline void mpr__ring_take(mpr__ring *ring, const mpr__ring_rec *rec)
{
    ring->pos += rec->size;
}
/* Publish the reader's position and wake a writer waiting for room. */
void mpr__ring_consumed(mpr__ring *ring);
/* Before sleeping: announce it, then look again. 1 if the ring is (still)
 * empty and the reader may sleep, 0 if data arrived meanwhile. */
int mpr__ring_try_sleep(mpr__ring *ring);
/* How far the writer has written (route_until's mark). */
uint64_t mpr__ring_head(const mpr__ring *ring);
/* Tell the writer the reader is gone (MPR_EPIPE from then on, also if it
 * waits for room). */
void mpr__ring_close(mpr__ring *ring);
/* Store the newest cancel tag for the writer (cancel_tag, then
 * cancel_again). */
void mpr__ring_set_cancel(mpr__ring *ring, uint64_t tag);

/* Unmap (the reader marks the ring closed first: closing = 1). */
void mpr__ring_unmap(mpr__ring *ring, int closing);

#endif /* MPR_RING_H */
