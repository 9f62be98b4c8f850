/*
 * queue.c - the local queue (see queue.h).
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "queue.h"

#define CHUNK_DATA (128u * 1024u)
#define POOL_MAX 16u
#define SPARE_MIN (1024u * 1024u) /* big chunks from this size on: mmap()ed, kept for reuse */
#define SPARE_MAX ((size_t)128u << 20) /* larger ones are unmapped when read */
#define PREFAULT_MIN ((size_t)256u << 10) /* committed ahead of a large message's bytes: */
#define PREFAULT_STEP ((size_t)4u << 20)  /* from this much up to this much */

struct mpr__chunk {
    mpr__chunk *next;   /* set under lock; a chunk with a next is full */
    size_t cap;         /* bytes of data */
    size_t wpos;        /* producer's write position */
    size_t published;   /* end of published records; under lock */
    size_t rpos;        /* consumer's read position */
    int pooled;         /* standard size: goes back to the pool */
    size_t faulted;     /* bytes of data known to be committed (prefault) */
    alignas(16) unsigned char data[];
};

static void chunk_free(mpr__chunk *c)
{
    if (c && c->cap >= SPARE_MIN)
        mpr__vm_release(c, sizeof *c + c->cap);
    else
        free(c);
}

static size_t record_size(uint32_t len)
{
    return sizeof(mpr__record) + (((size_t)len + 7u) & ~(size_t)7u);
}

static mpr__chunk *chunk_new(size_t cap, int pooled)
{
    mpr__chunk *c;
    if (cap >= SPARE_MIN) {
        /* Address space only: pages are committed ahead of the message's
         * bytes in steps (mpr__queue_prefault). */
        c = mpr__vm_reserve(sizeof *c + cap);
    } else {
        c = malloc(sizeof *c + cap);
    }
    if (!c)
        return NULL;
    c->next = NULL;
    c->cap = cap;
    c->wpos = c->published = c->rpos = 0;
    c->pooled = pooled;
    c->faulted = cap >= SPARE_MIN ? 0 : cap;
    return c;
}

void mpr__queue_prefault(mpr__chunk *c, size_t upto)
{
    /* One step at a time, as the bytes come: a message that is only
     * announced costs next to no memory, and no call takes long. Touching
     * a fresh page one fault at a time costs more than committing a step
     * of them at once (MADV_POPULATE_WRITE, Linux 5.14; older kernels
     * fault). The step grows with what has arrived, up to PREFAULT_STEP. */
    upto += sizeof(mpr__record);
    size_t step = upto < PREFAULT_MIN ? PREFAULT_MIN : upto > PREFAULT_STEP ? PREFAULT_STEP : upto;
    if (upto + step / 2 < c->faulted || c->faulted >= c->cap)
        return; /* at least half a step ahead still */
    size_t end = upto + step;
    if (end > c->cap)
        end = c->cap;
    mpr__vm_commit(c->data + c->faulted, end - c->faulted);
    c->faulted = end;
}

int mpr__queue_init(mpr__queue *q, size_t limit, mpr__poller *producer)
{
    memset(q, 0, sizeof *q);
    q->head = q->tail = chunk_new(CHUNK_DATA, 1);
    if (!q->head)
        return MPR_ENOMEM;
    mpr__cond_init(&q->cond);
    mpr__mutex_init(&q->lock);
    q->limit = limit;
    q->producer = producer;
    return 0;
}

uint64_t mpr__queue_destroy(mpr__queue *q)
{
    uint64_t unread = 0;
    mpr__chunk *c = q->head;
    while (c) {
        for (size_t pos = c->rpos; pos < c->published;) {
            const mpr__record *rec = (const mpr__record *)(c->data + pos);
            unread += rec->type == MPR__REC_MSG;
            pos += record_size(rec->len);
        }
        mpr__chunk *next = c->next;
        chunk_free(c);
        c = next;
    }
    while (q->pool) {
        mpr__chunk *next = q->pool->next;
        free(q->pool);
        q->pool = next;
    }
    for (int i = 0; i < MPR__QUEUE_SPARES; i++)
        chunk_free(q->spare[i]);
    mpr__cond_destroy(&q->cond);
    mpr__mutex_destroy(&q->lock);
    memset(q, 0, sizeof *q);
    return unread;
}

static void write_header(unsigned char *at, uint32_t conn_id, uint32_t type, uint32_t len)
{
    mpr__record rec = {conn_id, type, len, 0};
    memcpy(at, &rec, sizeof rec);
}

/* The bytes of messages still arriving that count against the limit: at
 * most half of it, so that messages in progress (one sender's huge one,
 * say) never hold the whole limit against the complete messages of
 * everyone else. Memory is bounded all the same: a message in progress is
 * at most the largest message size. q->lock held. */
static size_t pending_counted(const mpr__queue *q, int64_t delta)
{
    int64_t pending = (int64_t)q->pending + delta;
    if (pending < 0)
        pending = 0;
    return (size_t)pending < q->limit / 2 ? (size_t)pending : q->limit / 2;
}

/* Publish what the producer wrote; q->lock held. */
static int publish_locked(mpr__queue *q)
{
    int flags = 0;
    q->tail->published = q->tail->wpos;
    q->pending = (size_t)((int64_t)q->pending + q->pending_delta);
    q->pending_delta = 0;
    if (q->unpublished > 0) {
        q->bytes += q->unpublished;
        q->unpublished = 0;
        if (q->waiting)
            mpr__cond_signal(&q->cond);
        if (!q->ping_pending) {
            q->ping_pending = 1;
            flags |= MPR__Q_PING;
        }
    }
    /* Never throttled with nothing to route: the consumer could not end it. */
    if (q->limit && q->bytes > 0 && q->bytes + pending_counted(q, 0) >= q->limit)
        q->throttled = 1;
    if (q->throttled)
        flags |= MPR__Q_THROTTLED;
    return flags;
}

unsigned char *mpr__queue_reserve(mpr__queue *q, uint32_t conn_id, uint32_t type, uint32_t len)
{
    size_t size = record_size(len);
    mpr__chunk *c = q->tail;
    if (c->cap - c->wpos < size) {
        mpr__mutex_lock(&q->lock);
        mpr__chunk *fresh = q->pool;
        if (fresh) {
            q->pool = fresh->next;
            q->pool_size--;
            fresh->next = NULL;
        }
        mpr__mutex_unlock(&q->lock);
        if (!fresh)
            fresh = chunk_new(CHUNK_DATA, 1);
        if (!fresh)
            return NULL;
        mpr__mutex_lock(&q->lock);
        /* Publish the full chunk now so the byte count never lags behind
         * what the consumer can read; the flags wait for the next commit. */
        q->carried_flags |= publish_locked(q) & MPR__Q_PING;
        c->next = fresh;
        q->tail = fresh;
        mpr__mutex_unlock(&q->lock);
        c = fresh;
    }
    unsigned char *at = c->data + c->wpos;
    write_header(at, conn_id, type, len);
    c->wpos += size;
    q->unpublished += size;
    return at + sizeof(mpr__record);
}

mpr__chunk *mpr__queue_dedicated(mpr__queue *q, uint32_t conn_id, uint32_t len,
                                 unsigned char **payload)
{
    size_t size = record_size(len);
    mpr__chunk *c = NULL;
    if (size >= SPARE_MIN) {
        /* Reuse the spare if it fits without wasting more than half. */
        mpr__mutex_lock(&q->lock);
        for (int i = 0; i < MPR__QUEUE_SPARES && !c; i++) {
            if (q->spare[i] && q->spare[i]->cap >= size && q->spare[i]->cap / 2 <= size) {
                c = q->spare[i];
                q->spare[i] = NULL;
            }
        }
        mpr__mutex_unlock(&q->lock);
        if (c) {
            c->next = NULL;
            c->published = c->rpos = 0;
        }
    }
    if (!c)
        c = chunk_new(size, 0);
    if (!c)
        return NULL;
    write_header(c->data, conn_id, MPR__REC_MSG, len);
    c->wpos = size;
    *payload = c->data + sizeof(mpr__record);
    return c;
}

void mpr__queue_free_dedicated(mpr__chunk *c)
{
    chunk_free(c);
}

int mpr__queue_link(mpr__queue *q, mpr__chunk *c)
{
    mpr__mutex_lock(&q->lock);
    mpr__chunk *old = q->tail;
    old->published = old->wpos;
    old->next = c;
    q->tail = c;
    q->unpublished += c->wpos;
    int flags = publish_locked(q) | q->carried_flags;
    q->carried_flags = 0;
    mpr__mutex_unlock(&q->lock);
    return flags;
}

int mpr__queue_sync_done(mpr__queue *q, uint64_t gen)
{
    mpr__mutex_lock(&q->lock);
    int flags = publish_locked(q) | q->carried_flags;
    q->carried_flags = 0;
    q->sync_done = gen;
    if (q->waiting)
        mpr__cond_signal(&q->cond);
    mpr__mutex_unlock(&q->lock);
    return flags;
}

size_t mpr__queue_room(mpr__queue *q)
{
    if (!q->limit)
        return SIZE_MAX;
    mpr__mutex_lock(&q->lock);
    size_t used = q->bytes + pending_counted(q, q->pending_delta) + q->unpublished;
    size_t room = q->throttled || used >= q->limit ? 0 : q->limit - used;
    mpr__mutex_unlock(&q->lock);
    return room;
}

int mpr__queue_synced(mpr__queue *q, uint64_t gen)
{
    mpr__mutex_lock(&q->lock);
    int done = q->sync_done >= gen;
    mpr__mutex_unlock(&q->lock);
    return done;
}

int mpr__queue_commit(mpr__queue *q)
{
    mpr__mutex_lock(&q->lock);
    int flags = publish_locked(q) | q->carried_flags;
    q->carried_flags = 0;
    mpr__mutex_unlock(&q->lock);
    return flags;
}

/* Give back consumed bytes and end throttling (see queue.h); q->lock held. */
static void settle_locked(mpr__queue *q)
{
    q->bytes -= q->consumed;
    q->consumed = 0;
    if (q->throttled && (q->bytes == 0 || q->bytes + pending_counted(q, 0) <= q->limit / 2)) {
        q->throttled = 0;
        mpr__poller_wake(q->producer);
    }
}

const mpr__record *mpr__queue_next(mpr__queue *q, int clear_ping)
{
    for (;;) {
        mpr__chunk *c = q->head;
        if (c->rpos < q->readable_end) {
            const mpr__record *rec = (const mpr__record *)(c->data + c->rpos);
            size_t size = record_size(rec->len);
            c->rpos += size;
            q->consumed += size;
            return rec;
        }
        mpr__chunk *spent = NULL;
        mpr__mutex_lock(&q->lock);
        settle_locked(q);
        if (c->rpos < c->published) {
            q->readable_end = c->published;
        } else if (c->next) {
            q->head = c->next;
            q->readable_end = 0;
            if (c->pooled && q->pool_size < POOL_MAX) {
                c->next = q->pool;
                c->wpos = c->published = c->rpos = 0;
                q->pool = c;
                q->pool_size++;
            } else if (c->cap >= SPARE_MIN && c->cap <= SPARE_MAX) {
                /* Keep the most recent ones: a stream of large messages
                 * of similar sizes reuses them, and one odd size does not
                 * hold memory for long. Shift up to the first empty slot
                 * (or out of the last one) and put this one first. */
                int j = 0;
                while (j < MPR__QUEUE_SPARES - 1 && q->spare[j])
                    j++;
                spent = q->spare[j];
                memmove(&q->spare[1], &q->spare[0], (size_t)j * sizeof q->spare[0]);
                q->spare[0] = c;
            } else {
                spent = c;
            }
        } else {
            if (clear_ping)
                q->ping_pending = 0;
            mpr__mutex_unlock(&q->lock);
            return NULL;
        }
        mpr__mutex_unlock(&q->lock);
        chunk_free(spent);
    }
}

int mpr__queue_wait(mpr__queue *q, int64_t deadline_ns, uint64_t sync_gen)
{
    int ready;
    mpr__mutex_lock(&q->lock);
    for (;;) {
        ready = q->head->rpos < q->head->published || q->head->next != NULL;
        if (ready || (sync_gen && q->sync_done >= sync_gen))
            break;
        if (deadline_ns >= 0 && mpr__now_ns() >= deadline_ns)
            break;
        q->waiting = 1;
        if (deadline_ns < 0)
            mpr__cond_wait(&q->cond, &q->lock);
        else
            mpr__cond_wait_until(&q->cond, &q->lock, deadline_ns);
        q->waiting = 0;
    }
    mpr__mutex_unlock(&q->lock);
    return ready;
}
