/*
 * control.c - the way back's table in the router (control.h).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "control.h"

#define BUCKETS 1024u

typedef struct entry {
    struct entry *next;       /* in its bucket */
    struct entry *dirty_next; /* in the dirty list */
    uint32_t id;
    int dirty;
    int closed;               /* the pipe was closed while its connection lives */
    void *owner;              /* the open connection, or NULL */
    uint64_t tag;             /* the newest cancel tag */
    mpr__ctl_msg *head, *tail;
    size_t held;              /* bytes queued or held by the transport */
} entry;

struct mpr__ctl {
    mpr__mutex lock;
    mpr__poller *poller;
    entry *buckets[BUCKETS];
    entry *dirty;
    atomic_int any_dirty;     /* dirty != NULL, read without the lock */
    mpr__idset ended;         /* pipes whose sender has ended */
};

int mpr__ctl_new(mpr__ctl **out, mpr__poller *poller)
{
    mpr__ctl *t = calloc(1, sizeof *t);
    if (!t)
        return MPR_ENOMEM;
    mpr__mutex_init(&t->lock);
    atomic_init(&t->any_dirty, 0);
    t->poller = poller;
    *out = t;
    return 0;
}

static void drop_queue(entry *e)
{
    while (e->head) {
        mpr__ctl_msg *m = e->head;
        e->head = m->next;
        e->held -= m->size;
        free(m);
    }
    e->tail = NULL;
}

void mpr__ctl_free(mpr__ctl *t)
{
    if (!t)
        return;
    for (unsigned b = 0; b < BUCKETS; b++) {
        while (t->buckets[b]) {
            entry *e = t->buckets[b];
            t->buckets[b] = e->next;
            drop_queue(e);
            free(e);
        }
    }
    mpr__idset_free(&t->ended);
    mpr__mutex_destroy(&t->lock);
    free(t);
}

static entry **slot(mpr__ctl *t, uint32_t id)
{
    entry **p = &t->buckets[id % BUCKETS];
    while (*p && (*p)->id != id)
        p = &(*p)->next;
    return p;
}

static entry *find(mpr__ctl *t, uint32_t id)
{
    return *slot(t, id);
}

static entry *find_or_add(mpr__ctl *t, uint32_t id)
{
    entry **p = slot(t, id);
    if (!*p) {
        entry *e = calloc(1, sizeof *e);
        if (!e)
            return NULL;
        e->id = id;
        *p = e;
    }
    return *p;
}

static void remove_entry(mpr__ctl *t, entry *e)
{
    entry **p = slot(t, e->id);
    *p = e->next;
    if (e->dirty) { /* out of the dirty list too */
        for (entry **d = &t->dirty; *d; d = &(*d)->dirty_next) {
            if (*d == e) {
                *d = e->dirty_next;
                break;
            }
        }
    }
    drop_queue(e);
    free(e);
}

static int ended(const mpr__ctl *t, uint32_t id)
{
    return mpr__idset_has(&t->ended, id);
}

/* Name the owner at the next take_dirty; wake the monitor for it. Locked. */
static void mark_dirty(mpr__ctl *t, entry *e)
{
    if (e->dirty || !e->owner)
        return;
    e->dirty = 1;
    int was_empty = t->dirty == NULL;
    e->dirty_next = t->dirty;
    t->dirty = e;
    atomic_store(&t->any_dirty, 1); /* before the wake: the monitor's next round sees it */
    if (was_empty)
        mpr__poller_wake(t->poller);
}

int mpr__ctl_send(mpr__ctl *t, uint32_t id, const void *data, size_t size)
{
    int rc = 0;
    mpr__mutex_lock(&t->lock);
    entry *e = find(t, id);
    if (ended(t, id)) {
        rc = MPR_EPIPE;
    } else if (e && e->held + size > MPR_CONTROL_QUEUE_SIZE) {
        rc = MPR_EAGAIN;
    } else {
        mpr__ctl_msg *m = malloc(sizeof *m + size);
        e = m ? find_or_add(t, id) : NULL;
        if (!e) {
            free(m);
            rc = MPR_ENOMEM;
        } else {
            m->next = NULL;
            m->cseq = 0;
            m->size = size;
            if (size)
                memcpy(m->data, data, size);
            if (e->tail)
                e->tail->next = m;
            else
                e->head = m;
            e->tail = m;
            e->held += size;
            mark_dirty(t, e);
        }
    }
    mpr__mutex_unlock(&t->lock);
    return rc;
}

int mpr__ctl_cancel(mpr__ctl *t, uint32_t id, uint64_t tag)
{
    int rc = 0;
    mpr__mutex_lock(&t->lock);
    entry *e = ended(t, id) ? NULL : find_or_add(t, id);
    if (ended(t, id)) {
        rc = MPR_EPIPE;
    } else if (!e) {
        rc = MPR_ENOMEM;
    } else {
        e->tag = tag;
        mark_dirty(t, e);
    }
    mpr__mutex_unlock(&t->lock);
    return rc;
}

void mpr__ctl_forget(mpr__ctl *t, uint32_t id)
{
    mpr__mutex_lock(&t->lock);
    entry *e = find(t, id);
    if (e && e->owner) {
        /* Its connection goes on (its messages are dropped): the entry
         * stays until it ends, with nothing in it. */
        drop_queue(e);
        e->closed = 1;
    } else if (e) {
        remove_entry(t, e);
    }
    mpr__mutex_unlock(&t->lock);
}

int mpr__ctl_attach(mpr__ctl *t, uint32_t id, void *owner)
{
    int rc = 0;
    mpr__mutex_lock(&t->lock);
    entry *e = find_or_add(t, id);
    if (!e) {
        rc = MPR_ENOMEM;
    } else {
        e->owner = owner;
        if (e->head || e->tag)
            mark_dirty(t, e);
    }
    mpr__mutex_unlock(&t->lock);
    return rc;
}

void mpr__ctl_detach(mpr__ctl *t, uint32_t id)
{
    mpr__mutex_lock(&t->lock);
    /* Out of memory for the bit: later sends queue for nobody until the
     * pipe is closed (bounded by the queue size). */
    (void)mpr__idset_add(&t->ended, id);
    entry *e = find(t, id);
    if (e)
        remove_entry(t, e);
    mpr__mutex_unlock(&t->lock);
}

int mpr__ctl_take_dirty(mpr__ctl *t, void **owners, int max)
{
    int n = 0;
    /* Every round of the monitor asks: most have nothing, and take no
     * lock that the main thread's sends would wait for. */
    if (!atomic_load(&t->any_dirty))
        return 0;
    mpr__mutex_lock(&t->lock);
    while (t->dirty && n < max) {
        entry *e = t->dirty;
        t->dirty = e->dirty_next;
        e->dirty = 0;
        if (e->owner && !e->closed)
            owners[n++] = e->owner;
    }
    if (!t->dirty)
        atomic_store(&t->any_dirty, 0);
    mpr__mutex_unlock(&t->lock);
    return n;
}

uint64_t mpr__ctl_tag(mpr__ctl *t, uint32_t id)
{
    mpr__mutex_lock(&t->lock);
    entry *e = find(t, id);
    uint64_t tag = e ? e->tag : 0;
    mpr__mutex_unlock(&t->lock);
    return tag;
}

mpr__ctl_msg *mpr__ctl_take(mpr__ctl *t, uint32_t id)
{
    mpr__mutex_lock(&t->lock);
    entry *e = find(t, id);
    mpr__ctl_msg *m = e ? e->head : NULL;
    if (m) {
        e->head = m->next;
        if (!e->head)
            e->tail = NULL;
        m->next = NULL;
    }
    mpr__mutex_unlock(&t->lock);
    return m;
}

void mpr__ctl_release(mpr__ctl *t, uint32_t id, size_t n)
{
    mpr__mutex_lock(&t->lock);
    entry *e = find(t, id);
    if (e)
        e->held = n < e->held ? e->held - n : 0;
    mpr__mutex_unlock(&t->lock);
}
