/*
 * queue.h - the local queue between the monitor thread (the only producer)
 * and the main thread (the only consumer).
 *
 * Messages are stored as records in chunks: small messages are packed into
 * shared 128 KiB chunks (recycled through a small pool, so the hot path
 * allocates nothing); a large message, or one that arrives in pieces, gets a
 * dedicated chunk of its own, linked in when it is complete. The producer
 * writes records without the lock and publishes them in batches with
 * mpr__queue_commit(); the consumer reads published records without the lock
 * and takes it only to learn of new ones.
 *
 * The queue also holds the ping flag (one wake-up of the main thread for
 * many messages) and the backpressure state. With a limit, the producer is
 * THROTTLED (it reads no new messages) while routable bytes are waiting
 * and they, with the bytes of messages still arriving ("pending", counted
 * for at most half the limit), reach the limit; it goes on when the
 * consumer has brought them down to half the limit, or has read every
 * routable byte (then waiting longer could not help: only the pending
 * messages can complete). Counting pending bytes for at most half the
 * limit keeps one sender's message in progress from holding the whole
 * limit against the complete messages of everyone else.
 *
 * A dedicated chunk of a large message is address space only until bytes
 * arrive: its pages are committed a few MiB ahead of them
 * (mpr__queue_prefault), so an announced size costs nothing until the bytes
 * come, and nothing is pre-faulted in one go on the producer's thread.
 */
#ifndef MPR_QUEUE_H
#define MPR_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "platform.h"

enum { MPR__REC_MSG = 0, MPR__REC_LOST = 1 };

typedef struct mpr__record {
    uint32_t conn_id;
    uint32_t type;
    uint32_t len;
    uint32_t reserved;
    /* len bytes of payload follow, then padding to 8 bytes */
} mpr__record;

static inline const unsigned char *mpr__record_data(const mpr__record *rec)
{
    return (const unsigned char *)(rec + 1);
}

typedef struct mpr__chunk mpr__chunk;

#define MPR__QUEUE_SPARES 2 /* big chunks kept: one being filled while one is read */

typedef struct mpr__queue {
    mpr__mutex lock;
    mpr__cond cond;
    mpr__chunk *head;    /* the consumer reads here */
    mpr__chunk *tail;    /* the producer writes here */
    size_t bytes;        /* published and not yet consumed; under lock */
    size_t pending;      /* arrived in messages not yet complete; under lock */
    size_t limit;        /* 0: no backpressure */
    int throttled;       /* the producer has stopped reading; under lock */
    int waiting;         /* the consumer sleeps in mpr__queue_wait; under lock */
    int ping_pending;    /* a ping is on its way to the consumer; under lock */
    mpr__poller *producer; /* woken when throttling ends */
    size_t unpublished;  /* producer only: bytes written since last commit */
    int64_t pending_delta; /* producer only: change of pending since last commit */
    uint64_t sync_done;  /* the last route_until sync the producer finished; under lock */
    int carried_flags;   /* flags of a publish made inside reserve; under lock */
    size_t consumed;     /* consumer only: bytes read, not yet subtracted */
    size_t readable_end; /* consumer only: published end of head */
    mpr__chunk *pool;    /* recycled standard chunks; under lock */
    unsigned pool_size;
    mpr__chunk *spare[MPR__QUEUE_SPARES]; /* most recent big chunks, newest first; under lock */
} mpr__queue;

/* Flags returned by mpr__queue_commit and mpr__queue_link. */
enum { MPR__Q_PING = 1, MPR__Q_THROTTLED = 2 };

/* Messages up to this size (payload) may go into shared chunks. */
#define MPR__SMALL_MAX (32u * 1024u)

/* producer: the poller of the producer's thread, woken when throttling
 * ends. */
int mpr__queue_init(mpr__queue *q, size_t limit, mpr__poller *producer);
/* Frees everything; returns the number of messages that were never read. */
uint64_t mpr__queue_destroy(mpr__queue *q);

/* ---- producer ---- */
/* Room for a record of len <= MPR__SMALL_MAX bytes in the tail chunk;
 * returns where the payload goes, or NULL when out of memory. */
unsigned char *mpr__queue_reserve(mpr__queue *q, uint32_t conn_id, uint32_t type, uint32_t len);
/* A record in a chunk of its own, not yet linked; NULL when out of memory.
 * Big chunks are reused (a fresh one costs a page fault per 4 KiB). */
mpr__chunk *mpr__queue_dedicated(mpr__queue *q, uint32_t conn_id, uint32_t len,
                                 unsigned char **payload);
void mpr__queue_free_dedicated(mpr__chunk *c);
/* The producer has written upto bytes of a dedicated chunk's payload:
 * keep its pages committed a few MiB ahead (one step at a time). */
void mpr__queue_prefault(mpr__chunk *c, size_t upto);
/* Append a complete dedicated chunk, then publish like mpr__queue_commit. */
int mpr__queue_link(mpr__queue *q, mpr__chunk *c);
/* Bytes of incomplete messages arrived (delta > 0) or gone (linked or
 * discarded: delta < 0); counted against the limit at the next commit. */
static inline void mpr__queue_pending(mpr__queue *q, int64_t delta)
{
    q->pending_delta += delta;
}
/* Publish like mpr__queue_commit, and tell a consumer waiting in
 * mpr__queue_wait that route_until sync number gen is done. */
int mpr__queue_sync_done(mpr__queue *q, uint64_t gen);
/* Publish everything written so far; returns MPR__Q_ flags: PING if the
 * consumer must be pinged (it was not already), THROTTLED if the limit is
 * reached and the producer must stop reading until woken. */
int mpr__queue_commit(mpr__queue *q);

/* ---- consumer ---- */
/* The next record, or NULL if none is published. The record stays valid
 * until the next call. If clear_ping and the queue is empty, the ping flag
 * is cleared (the next commit will ping). */
const mpr__record *mpr__queue_next(mpr__queue *q, int clear_ping);
/* Sleep until a record is published, sync number sync_gen is done (if
 * sync_gen > 0), or deadline_ns (CLOCK_MONOTONIC, < 0: none) passes.
 * Returns 1 if a record may be there, 0 otherwise. */
int mpr__queue_wait(mpr__queue *q, int64_t deadline_ns, uint64_t sync_gen);
/* Bytes that may still come before the limit is reached (the published
 * bytes and those of messages in progress counted), or SIZE_MAX without a
 * limit. Producer side. */
size_t mpr__queue_room(mpr__queue *q);
/* Is sync number gen done? */
int mpr__queue_synced(mpr__queue *q, uint64_t gen);

#endif /* MPR_QUEUE_H */
