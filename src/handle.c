/*
 * handle.c - receiver handles. The mpr_receiver pointer the application
 * holds is not the receiver's address but a number: a slot of one table
 * for the process, and the slot's generation. A handle of a closed pipe
 * (or any value that was never a handle) finds no receiver, so a second
 * mpr_router_close_pipe or a callback set on a closed receiver is detected
 * instead of touching freed memory. Slots are reused; their generation
 * changes every time, so an old handle never names a new receiver.
 *
 * One lock for the table: routers on different threads share it. Only
 * the calls that take a handle use it, never the routing of a message.
 */
#include <stdint.h>
#include <stdlib.h>

#include "handle.h"
#include "platform.h"

/* slot + 1 in the low bits (0 is never a handle), generation above */
#define SLOT_BITS (sizeof(uintptr_t) >= 8 ? 32u : 20u)
#define SLOT_MASK (((uintptr_t)1 << SLOT_BITS) - 1)
#define GEN_MASK (UINTPTR_MAX >> SLOT_BITS)

struct entry {
    void *receiver; /* NULL: free */
    uintptr_t gen;
    size_t next_free;          /* slot + 1 of the next free entry, 0: none */
};

static mpr__mutex lock = MPR__MUTEX_INIT;
static struct entry *table;
static size_t cap, free_head;

static uintptr_t value(size_t slot, uintptr_t gen)
{
    return gen << SLOT_BITS | (uintptr_t)(slot + 1);
}

/* The entry a handle names, if it is live; lock held. */
static struct entry *find(const mpr_receiver *h)
{
    uintptr_t v = (uintptr_t)h;
    size_t slot = (size_t)(v & SLOT_MASK);
    if (slot == 0 || slot > cap)
        return NULL;
    struct entry *e = &table[slot - 1];
    return e->receiver && e->gen == v >> SLOT_BITS ? e : NULL;
}

int mpr__handle_new(void *rc, mpr_receiver **out)
{
    mpr__mutex_lock(&lock);
    if (!free_head) {
        size_t n = cap ? cap * 2 : 64;
        struct entry *t = n - 1 <= SLOT_MASK - 1 ? realloc(table, n * sizeof *t) : NULL;
        if (!t) {
            mpr__mutex_unlock(&lock);
            return MPR_ENOMEM;
        }
        for (size_t i = cap; i < n; i++) {
            t[i].receiver = NULL;
            t[i].gen = 1;
            t[i].next_free = i + 1 < n ? i + 2 : 0;
        }
        table = t;
        free_head = cap + 1;
        cap = n;
    }
    size_t slot = free_head - 1;
    struct entry *e = &table[slot];
    free_head = e->next_free;
    e->receiver = rc;
    *out = (mpr_receiver *)value(slot, e->gen);
    mpr__mutex_unlock(&lock);
    return 0;
}

void *mpr__handle_get(const mpr_receiver *h)
{
    mpr__mutex_lock(&lock);
    struct entry *e = find(h);
    void *rc = e ? e->receiver : NULL;
    mpr__mutex_unlock(&lock);
    return rc;
}

void mpr__handle_free(const mpr_receiver *h)
{
    mpr__mutex_lock(&lock);
    struct entry *e = find(h);
    if (e) {
        e->receiver = NULL;
        e->gen = (e->gen + 1) & GEN_MASK;
        if (e->gen == 0)
            e->gen = 1;
        e->next_free = free_head;
        free_head = (size_t)(e - table) + 1;
    }
    mpr__mutex_unlock(&lock);
}
