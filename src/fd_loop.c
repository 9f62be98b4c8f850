/*
 * fd_loop.c - the file-descriptor event loop.
 *
 * Pings go into one FIFO of (pingee) entries guarded by a mutex; an event
 * (platform.h: a descriptor, on Windows a manual-reset event) is set while
 * the FIFO holds entries that arrived since the last dispatch started. Each entry holds a reference to its pingee, so a pingee
 * with undelivered pings stays valid; dispatch skips entries whose pingee
 * has been disconnected.
 *
 * Lifetimes: the shared state (mutex, FIFO, event) is referenced by the
 * loop and by every live pingee, so pingers held by background threads stay
 * safe after mpr_fd_loop_free; the event is closed with the last of them.
 */
#include <stdlib.h>

#include <mprouter/fd_loop.h>

#include "base.h"
#include "platform.h"

struct shared {
    mpr__mutex lock;
    int refs; /* the loop + each pingee */
    mpr__event ev;
    int signaled; /* ev is set */
    int dispatching;
    int loop_freed; /* nobody dispatches any more: pings are dropped */
    struct pingee **fifo; /* ring buffer */
    size_t cap, head, count;
};

struct pingee {
    struct shared *sh;
    int refs; /* the creator + each pinger + each FIFO entry; under sh->lock */
    /* Loop thread only: */
    int connected;
    void (*on_ping)(void *arg);
    void *arg;
};

struct pinger {
    struct pingee *pingee; /* NULL once disconnected */
    int connected;
};

struct mpr_fd_loop {
    mpr_event_loop iface;
    struct shared *sh;
};

/* Called with sh->lock held; returns 1 if the shared state must be freed. */
static int shared_unref_locked(struct shared *sh)
{
    return --sh->refs == 0;
}

static void shared_free(struct shared *sh)
{
    mpr__event_close(&sh->ev);
    free(sh->fifo);
    mpr__mutex_destroy(&sh->lock);
    free(sh);
}

/* Drop one reference to a pingee, sh->lock held. Frees the pingee when it
 * was the last one; returns 1 if the shared state must be freed then. */
static int pingee_unref_locked(struct pingee *p)
{
    struct shared *sh = p->sh;
    if (--p->refs > 0)
        return 0;
    free(p);
    return shared_unref_locked(sh);
}

static void pingee_unref(struct pingee *p)
{
    struct shared *sh = p->sh;
    mpr__mutex_lock(&sh->lock);
    int free_sh = pingee_unref_locked(p);
    mpr__mutex_unlock(&sh->lock);
    if (free_sh)
        shared_free(sh);
}

/* ---- pingee (loop thread) ---- */

static int fd_pingee_new(const mpr_event_loop *loop, void (*on_ping)(void *arg), void *arg,
                         mpr_pingee **out)
{
    if (!loop || !on_ping || !out)
        return MPR_EINVAL;
    struct shared *sh = ((const mpr_fd_loop *)loop->data)->sh;
    struct pingee *p = calloc(1, sizeof *p);
    if (!p)
        return MPR_ENOMEM;
    p->sh = sh;
    p->refs = 1;
    p->on_ping = on_ping;
    p->arg = arg;
    mpr__mutex_lock(&sh->lock);
    sh->refs++;
    mpr__mutex_unlock(&sh->lock);
    *out = (mpr_pingee *)p;
    return 0;
}

static void fd_pingee_connect(mpr_pingee *pingee)
{
    struct pingee *p = (struct pingee *)pingee;
    if (p->on_ping)
        p->connected = 1;
}

static void fd_pingee_disconnect(mpr_pingee *pingee)
{
    struct pingee *p = (struct pingee *)pingee;
    p->connected = 0;
    p->on_ping = NULL;
    p->arg = NULL;
}

static void fd_pingee_free(mpr_pingee *pingee)
{
    if (!pingee)
        return;
    fd_pingee_disconnect(pingee);
    pingee_unref((struct pingee *)pingee);
}

/* ---- pinger (any thread) ---- */

static int fd_pinger_new(mpr_pingee *pingee, mpr_pinger **out)
{
    if (!pingee || !out)
        return MPR_EINVAL;
    struct pingee *p = (struct pingee *)pingee;
    struct pinger *g = calloc(1, sizeof *g);
    if (!g)
        return MPR_ENOMEM;
    mpr__mutex_lock(&p->sh->lock);
    p->refs++;
    mpr__mutex_unlock(&p->sh->lock);
    g->pingee = p;
    *out = (mpr_pinger *)g;
    return 0;
}

static void fd_pinger_connect(mpr_pinger *pinger)
{
    struct pinger *g = (struct pinger *)pinger;
    if (g->pingee)
        g->connected = 1;
}

static void fd_pinger_ping(mpr_pinger *pinger)
{
    struct pinger *g = (struct pinger *)pinger;
    if (!g->connected || !g->pingee)
        return;
    struct pingee *p = g->pingee;
    struct shared *sh = p->sh;
    mpr__mutex_lock(&sh->lock);
    if (sh->loop_freed) {
        mpr__mutex_unlock(&sh->lock);
        return;
    }
    if (sh->count == sh->cap) {
        size_t cap = sh->cap ? sh->cap * 2 : 64;
        struct pingee **fifo = malloc(cap * sizeof *fifo);
        if (!fifo) {
            /* Cannot queue the ping; dropping it silently would break the
             * one-on_ping-per-ping rule, so say so. */
            mpr__mutex_unlock(&sh->lock);
            mpr__log(MPR_LOG_ERROR, "fd loop %p: out of memory, ping for pingee %p lost", (void *)sh,
                     (void *)p);
            return;
        }
        for (size_t i = 0; i < sh->count; i++)
            fifo[i] = sh->fifo[(sh->head + i) % sh->cap];
        free(sh->fifo);
        sh->fifo = fifo;
        sh->cap = cap;
        sh->head = 0;
    }
    sh->fifo[(sh->head + sh->count) % sh->cap] = p;
    sh->count++;
    p->refs++;
    if (!sh->signaled) {
        sh->signaled = 1;
        mpr__event_set(&sh->ev);
    }
    mpr__mutex_unlock(&sh->lock);
}

static void fd_pinger_disconnect(mpr_pinger *pinger)
{
    struct pinger *g = (struct pinger *)pinger;
    g->connected = 0;
    if (g->pingee) {
        struct pingee *p = g->pingee;
        g->pingee = NULL;
        pingee_unref(p);
    }
}

static void fd_pinger_free(mpr_pinger *pinger)
{
    if (!pinger)
        return;
    fd_pinger_disconnect(pinger);
    free(pinger);
}

/* ---- the loop ---- */

int mpr_fd_loop_new(mpr_fd_loop **out)
{
    if (!out)
        return MPR_EINVAL;
    mpr_fd_loop *loop = calloc(1, sizeof *loop);
    struct shared *sh = calloc(1, sizeof *sh);
    if (!loop || !sh) {
        free(loop);
        free(sh);
        return MPR_ENOMEM;
    }
    int err = mpr__event_open(&sh->ev);
    if (err < 0) {
        free(loop);
        free(sh);
        return err;
    }
    mpr__mutex_init(&sh->lock);
    sh->refs = 1;
    loop->sh = sh;
    loop->iface = (mpr_event_loop){
        .size = sizeof(mpr_event_loop),
        .data = loop,
        .pingee_new = fd_pingee_new,
        .pingee_connect = fd_pingee_connect,
        .pingee_disconnect = fd_pingee_disconnect,
        .pingee_free = fd_pingee_free,
        .pinger_new = fd_pinger_new,
        .pinger_connect = fd_pinger_connect,
        .pinger_ping = fd_pinger_ping,
        .pinger_disconnect = fd_pinger_disconnect,
        .pinger_free = fd_pinger_free,
    };
    *out = loop;
    return 0;
}

void mpr_fd_loop_free(mpr_fd_loop *loop)
{
    if (!loop)
        return;
    struct shared *sh = loop->sh;
    mpr__mutex_lock(&sh->lock);
    /* Pings nobody will dispatch: drop them and their references. The
     * loop's own reference keeps sh alive through this. */
    sh->loop_freed = 1;
    while (sh->count > 0) {
        struct pingee *p = sh->fifo[sh->head];
        sh->head = (sh->head + 1) % sh->cap;
        sh->count--;
        pingee_unref_locked(p);
    }
    int free_sh = shared_unref_locked(sh);
    mpr__mutex_unlock(&sh->lock);
    if (free_sh)
        shared_free(sh);
    free(loop);
}

const mpr_event_loop *mpr_fd_loop_event_loop(mpr_fd_loop *loop)
{
    return loop ? &loop->iface : NULL;
}

int mpr_fd_loop_fd(const mpr_fd_loop *loop)
{
#if MPR__WINDOWS
    (void)loop; /* an event, not a descriptor: mpr_fd_loop_handle */
    return -1;
#else
    return loop ? (int)mpr__event_fd(&loop->sh->ev) : -1;
#endif
}

void *mpr_fd_loop_handle(const mpr_fd_loop *loop)
{
#if MPR__WINDOWS
    return loop ? (void *)mpr__event_fd(&loop->sh->ev) : NULL;
#else
    (void)loop;
    return NULL;
#endif
}

int mpr_fd_loop_dispatch(mpr_fd_loop *loop)
{
    if (!loop)
        return MPR_EINVAL;
    struct shared *sh = loop->sh;
    mpr__mutex_lock(&sh->lock);
    if (sh->dispatching) {
        mpr__mutex_unlock(&sh->lock);
        return MPR_ESTATE;
    }
    size_t n = sh->count;
    if (sh->signaled) {
        mpr__event_clear(&sh->ev);
        sh->signaled = 0;
    }
    sh->dispatching = 1;
    int ran = 0;
    for (size_t i = 0; i < n; i++) {
        struct pingee *p = sh->fifo[sh->head];
        sh->head = (sh->head + 1) % sh->cap;
        sh->count--;
        mpr__mutex_unlock(&sh->lock);
        /* connected/on_ping are only touched on this thread. */
        if (p->connected) {
            p->on_ping(p->arg);
            ran++;
        }
        mpr__mutex_lock(&sh->lock);
        /* The loop holds a reference to sh, so sh survives this. */
        pingee_unref_locked(p);
    }
    sh->dispatching = 0;
    mpr__mutex_unlock(&sh->lock);
    return ran;
}
