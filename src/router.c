/*
 * router.c - the router: main-thread API, routing table, dispatch.
 *
 * Threads:
 *   main thread     start/stop/pipe/close_pipe/route_until, on_ping
 *                   (dispatch), the routing table, the receivers.
 *   monitor thread  accepts connections, checks credentials, parses frames
 *                   into the local queue (queue.c) and pings the main thread
 *                   when the queue goes from "nothing pending" to "something
 *                   pending".
 * They share only the queue (its own lock), the stop flag, the last issued
 * connection id, route_until's sync requests and some counters (atomics).
 * This file is the main thread's side; monitor.c is the monitor thread.
 *
 * A router freed from inside one of its callbacks is freed when dispatch
 * has unwound (free_requested); one that a forked child inherited is
 * released there without touching its parent's sockets or threads.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <mprouter/router.h>

#include "internal.h"
#include "router_p.h"

#define SLICE_NS (4 * 1000000) /* dispatch time slice on the main thread */

/* ------------------------------------------------------------------ */
/* routing table                                                       */

static size_t slot_of(const mpr_router *r, uint32_t id)
{
    return id & (r->nslots - 1); /* ids are sequential: no hashing needed */
}

static struct receiver *table_get(const mpr_router *r, uint32_t id)
{
    if (!r->nslots)
        return NULL;
    for (size_t i = slot_of(r, id);; i = (i + 1) & (r->nslots - 1)) {
        if (r->slots[i].id == id)
            return r->slots[i].receiver;
        if (r->slots[i].id == 0)
            return NULL;
    }
}

static void table_put_unchecked(struct slot *slots, size_t nslots, struct receiver *rc)
{
    size_t i = rc->id & (nslots - 1);
    while (slots[i].id != 0)
        i = (i + 1) & (nslots - 1);
    slots[i].id = rc->id;
    slots[i].receiver = rc;
}

static int table_put(mpr_router *r, struct receiver *rc)
{
    if ((r->nreceivers + 1) * 2 > r->nslots) {
        size_t n = r->nslots ? r->nslots * 2 : 64;
        struct slot *slots = calloc(n, sizeof *slots);
        if (!slots)
            return MPR_ENOMEM;
        for (size_t i = 0; i < r->nslots; i++)
            if (r->slots[i].id)
                table_put_unchecked(slots, n, r->slots[i].receiver);
        free(r->slots);
        r->slots = slots;
        r->nslots = n;
    }
    table_put_unchecked(r->slots, r->nslots, rc);
    r->nreceivers++;
    return 0;
}

static int table_remove(mpr_router *r, uint32_t id)
{
    if (!r->nslots)
        return 0;
    size_t mask = r->nslots - 1;
    size_t i = slot_of(r, id);
    while (r->slots[i].id != id) {
        if (r->slots[i].id == 0)
            return 0;
        i = (i + 1) & mask;
    }
    /* Backward-shift deletion keeps every probe chain unbroken. */
    for (size_t j = (i + 1) & mask; r->slots[j].id != 0; j = (j + 1) & mask) {
        size_t home = slot_of(r, r->slots[j].id);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            r->slots[i] = r->slots[j];
            i = j;
        }
    }
    r->slots[i].id = 0;
    r->slots[i].receiver = NULL;
    r->nreceivers--;
    return 1;
}

/* ------------------------------------------------------------------ */
/* main thread: dispatch                                               */

/* Route one record; returns 0 if the queue was empty. */
static int route_one(mpr_router *r, int clear_ping)
{
    const mpr__record *rec = mpr__queue_next(&r->queue, clear_ping);
    if (!rec)
        return 0;
    struct receiver *rc = table_get(r, rec->conn_id);
    if (rec->type == MPR__REC_LOST) {
        r->stats.senders_lost++;
        if (rc && rc->lost_cb)
            rc->lost_cb(rc->lost_arg);
    } else if (!rc) {
        r->stats.messages_dropped++;
        mpr__warn("router %p: discarding message from closed pipe #%u", (void *)r, rec->conn_id);
    } else if (!rc->cb) {
        r->stats.messages_dropped++;
        mpr__warn("router %p: discarding message for pipe #%u: its receiver has no callback",
                  (void *)r, rec->conn_id);
    } else {
        r->stats.messages_routed++;
        rc->cb(rc->arg, mpr__record_data(rec), rec->len);
    }
    return 1;
}

static void router_release(mpr_router *r);

/* After a callback: did it stop (or free) the router? Then dispatch must
 * return at once; a free asked for meanwhile happens now. */
static int stopped_by_callback(mpr_router *r, unsigned epoch)
{
    if (r->epoch == epoch)
        return 0;
    r->dispatching = 0; /* it unwinds now */
    if (r->free_requested)
        router_release(r);
    return 1;
}

static void on_ping(void *arg)
{
    mpr_router *r = arg;
    if (r->dispatching || !r->running)
        return; /* a nested event loop inside a callback: the outer call goes on */
    unsigned epoch = r->epoch;
    int64_t end = mpr__now_ns() + SLICE_NS;
    r->dispatching = 1;
    for (unsigned i = 1;; i++) {
        int routed = route_one(r, 1);
        if (stopped_by_callback(r, epoch))
            return;
        if (!routed)
            break;
        if ((i & 15) == 0 && mpr__now_ns() >= end) {
            /* Time slice used up: let the loop paint and fire timers, and
             * come back. The ping flag stays set, so nobody else pings. */
            atomic_fetch_add_explicit(&r->pings, 1, memory_order_relaxed);
            r->loop->pinger_ping(r->self_pinger);
            break;
        }
    }
    r->dispatching = 0;
}

static void unlink_from_loop(mpr_router *r)
{
    if (r->linked) {
        r->loop->pingee_disconnect(r->pingee);
        r->linked = 0;
    }
}

/* ------------------------------------------------------------------ */
/* main thread: API                                                    */

int mpr_router_new(mpr_router **out, const mpr_event_loop *loop)
{
    if (!out || !loop || loop->size < sizeof(mpr_event_loop) || !loop->pingee_new ||
        !loop->pingee_connect || !loop->pingee_disconnect || !loop->pingee_free ||
        !loop->pinger_new || !loop->pinger_connect || !loop->pinger_ping ||
        !loop->pinger_disconnect || !loop->pinger_free)
        return MPR_EINVAL;
    mpr_router *r = calloc(1, sizeof *r);
    if (!r)
        return MPR_ENOMEM;
    r->sec = mpr__secure_alloc(sizeof *r->sec);
    if (!r->sec) {
        free(r);
        return MPR_ENOMEM;
    }
    r->loop = loop;
    r->token = mpr__process_token();
    r->max_msg = (uint32_t)MPR_MAX_MESSAGE_SIZE;
    r->handshake_ns = 5 * (int64_t)1000000000;
    r->remote_window_ns = 10 * (int64_t)1000000000;
    r->epfd = r->throttle_epfd = r->wake.fd = -1;
    *out = r;
    return 0;
}

/* Release everything start made; used by stop and by a failed start. */
static void teardown(mpr_router *r)
{
    if (r->have_thread) {
        atomic_store(&r->stopping, 1);
        uint64_t one = 1;
        ssize_t rc = write(r->wake.fd, &one, sizeof one);
        (void)rc;
        pthread_join(r->thread, NULL); /* it closed the connections and endpoints */
        r->have_thread = 0;
    }
    for (int i = 0; i < r->nendpoints; i++) /* start failed before the thread ran */
        r->endpoints[i]->close(r);
    r->nendpoints = 0;
    if (r->monitor_pinger) { /* start failed before the thread ran */
        r->loop->pinger_free(r->monitor_pinger);
        r->monitor_pinger = NULL;
    }
    unlink_from_loop(r);
    if (r->self_pinger) {
        r->loop->pinger_free(r->self_pinger);
        r->self_pinger = NULL;
    }
    if (r->pingee) {
        r->loop->pingee_free(r->pingee);
        r->pingee = NULL;
    }
    int *fds[] = {&r->epfd, &r->throttle_epfd, &r->wake.fd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    if (r->have_queue) {
        r->stats.messages_dropped += mpr__queue_destroy(&r->queue);
        r->have_queue = 0;
    }
    free(r->scratch);
    r->scratch = NULL;
    free(r->used);
    r->used = NULL;
    r->used_words = 0;
    explicit_bzero(r->sec, sizeof *r->sec);
    r->remote_endpoint[0] = r->remote_key[0] = '\0';
    atomic_store(&r->stopping, 0);
    atomic_store(&r->manual, 0);
}

static int open_monitor_fds(mpr_router *r)
{
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0)
        return mpr__syserr();
    r->throttle_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->throttle_epfd < 0)
        return mpr__syserr();
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return mpr__syserr();
    return mpr__watch_add(r, &r->wake, fd, 1);
}

/* Open every endpoint: the local one, and the remote one if asked for. */
static int open_endpoints(mpr_router *r)
{
    r->endpoints[r->nendpoints++] = &mpr__socket_endpoint;
#ifdef MPR_HAVE_ZMQ
    if (r->remote_bind)
        r->endpoints[r->nendpoints++] = &mpr__zmq_endpoint;
#endif
    for (int i = 0; i < r->nendpoints; i++) {
        int rc = r->endpoints[i]->open(r);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int start_monitor(mpr_router *r)
{
    /* The monitor never runs the application's signal handlers. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, mpr__monitor_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return mpr__errno_code(rc);
    r->have_thread = 1;
    return 0;
}

int mpr_router_start(mpr_router *r)
{
    if (!r)
        return MPR_EINVAL;
    if (mpr__forked(r->token))
        return MPR_EOWNER;
    if (r->running)
        return MPR_EALREADY;
    const mpr_event_loop *loop = r->loop;
    int rc = mpr__random(r->sec->secret, sizeof r->sec->secret);
    if (rc == 0)
        rc = open_monitor_fds(r);
    if (rc == 0) {
        rc = mpr__queue_init(&r->queue, r->queue_limit, r->wake.fd);
        r->have_queue = rc == 0;
    }
    if (rc == 0) {
        r->scratch = malloc(MPR__SCRATCH_SIZE);
        if (!r->scratch)
            rc = MPR_ENOMEM;
    }
    if (rc == 0) {
        r->uid = geteuid();
        r->throttled = 0;
        r->sync_seen = 0;
        r->sync_owed = 0;
        atomic_store(&r->sync_req, 0);
        rc = open_endpoints(r);
    }
    if (rc == 0)
        rc = loop->pingee_new(loop, on_ping, r, &r->pingee);
    if (rc == 0) {
        loop->pingee_connect(r->pingee);
        r->linked = 1;
        rc = loop->pinger_new(r->pingee, &r->self_pinger);
    }
    if (rc == 0) {
        loop->pinger_connect(r->self_pinger);
        rc = loop->pinger_new(r->pingee, &r->monitor_pinger);
    }
    if (rc == 0)
        rc = start_monitor(r);
    if (rc < 0) {
        teardown(r);
        return rc;
    }
    r->running = 1;
    mpr__debug("router %p: started", (void *)r);
    return 0;
}

/* "N unclosed pipes (#3, #7, ...)": which ones, the first few by id. */
static void warn_unclosed(const mpr_router *r)
{
    char ids[128] = "";
    size_t len = 0, listed = 0;
    for (size_t i = 0; i < r->nslots && len < sizeof ids - 16; i++) {
        if (!r->slots[i].id)
            continue;
        int n = snprintf(ids + len, sizeof ids - len, "%s#%u", listed ? ", " : "",
                         r->slots[i].id);
        if (n > 0)
            len += (size_t)n;
        listed++;
    }
    mpr__warn("router %p: %zu unclosed pipes (%s%s)", (void *)r, r->nreceivers, ids,
              listed < r->nreceivers ? ", ..." : "");
}

static void free_receivers(mpr_router *r)
{
    for (size_t i = 0; i < r->nslots; i++) {
        if (r->slots[i].receiver) {
            mpr__handle_free(r->slots[i].receiver->handle);
            free(r->slots[i].receiver);
        }
    }
    free(r->slots);
    r->slots = NULL;
    r->nslots = r->nreceivers = 0;
}

int mpr_router_stop(mpr_router *r)
{
    if (!r)
        return MPR_EINVAL;
    if (mpr__forked(r->token))
        return MPR_EOWNER;
    if (!r->running)
        return MPR_ESTATE;
    if (r->nreceivers)
        warn_unclosed(r);
    teardown(r);
    free_receivers(r);
    r->running = 0;
    r->epoch++; /* a dispatch in progress notices, and unwinds */
    mpr__debug("router %p: stopped", (void *)r);
    return 0;
}

/* A forked child's copy of a router: its descriptors are copies of the
 * parent's and its threads do not exist here. Shut nothing down (the
 * sockets are the parent's too), join nothing, lock nothing (a lock may
 * have been held by a thread that is not here): free the router's own
 * memory and leave the rest to the child's exit. The descriptor copies are
 * close-on-exec, so a child that execs keeps none of them. */
static void release_forked_copy(mpr_router *r)
{
    free(r);
}

static void router_release(mpr_router *r)
{
    if (r->running)
        mpr_router_stop(r);
    mpr__secure_free(r->sec, sizeof *r->sec);
    free(r->remote_bind);
    free(r->remote_host);
    free(r);
}

void mpr_router_free(mpr_router *r)
{
    if (!r)
        return;
    if (mpr__forked(r->token)) {
        release_forked_copy(r);
        return;
    }
    if (r->dispatching) {
        /* From inside a callback (or route_until's condition): stop now,
         * free when dispatch has unwound. */
        r->free_requested = 1;
        if (r->running)
            mpr_router_stop(r);
        else
            r->epoch++;
        return;
    }
    router_release(r);
}

int mpr_router_pipe(mpr_router *r, mpr_sender **sender, mpr_receiver **receiver)
{
    if (!r || !sender || !receiver)
        return MPR_EINVAL;
    if (!r->running)
        return MPR_ESTATE;
    uint32_t id = atomic_load(&r->last_id) + 1;
    if (id > 0x7fffffffu)
        return MPR_ENOMEM; /* two billion pipes: out of ids */
    struct receiver *rc = calloc(1, sizeof *rc);
    mpr_sender *s = NULL;
    unsigned char key[MPR__SECRET_SIZE];
    mpr__router_pipe_key(r, id, key);
    int err = rc ? mpr__sender_new(&s, r->name, id, key, r->max_msg) : MPR_ENOMEM;
    explicit_bzero(key, sizeof key);
    if (err == 0)
        err = mpr__sender_set_remote(s, r->remote_endpoint, r->remote_key);
    if (err == 0) {
        rc->id = id;
        rc->router = r;
        err = mpr__handle_new(rc, &rc->handle);
    }
    if (err == 0) {
        err = table_put(r, rc);
        if (err < 0)
            mpr__handle_free(rc->handle);
    }
    if (err < 0) {
        free(rc);
        mpr_sender_free(s);
        return err;
    }
    atomic_store(&r->last_id, id);
    mpr__debug("router %p: created pipe #%u", (void *)r, id);
    *sender = s;
    *receiver = rc->handle;
    return 0;
}

int mpr_router_close_pipe(mpr_router *r, mpr_receiver *receiver)
{
    if (!r || !receiver)
        return MPR_EINVAL;
    if (!r->running)
        return MPR_ESTATE;
    struct receiver *rc = mpr__handle_get(receiver);
    if (!rc || rc->router != r || table_get(r, rc->id) != rc)
        return MPR_ENOENT;
    table_remove(r, rc->id);
    mpr__handle_free(receiver);
    mpr__debug("router %p: closed pipe #%u", (void *)r, rc->id);
    free(rc);
    return 0;
}

/* Ask the monitor to read every connection as far as its sender has sent
 * (monitor.c); returns the request's number. */
static uint64_t request_sync(mpr_router *r)
{
    uint64_t gen = atomic_fetch_add(&r->sync_req, 1) + 1;
    uint64_t one = 1;
    ssize_t rc = write(r->wake.fd, &one, sizeof one);
    (void)rc; /* an eventfd write fails only on counter overflow */
    return gen;
}

int mpr_router_route_until(mpr_router *r, int (*condition)(void *arg), void *arg, double timeout_s)
{
    if (!r || !condition || isnan(timeout_s))
        return MPR_EINVAL;
    if (mpr__forked(r->token))
        return MPR_EOWNER;
    if (!r->running || r->dispatching)
        return MPR_ESTATE;
    /* Manual mode for good: pings are ignored from now on. */
    unlink_from_loop(r);
    atomic_store(&r->manual, 1);

    int64_t deadline = -1;
    if (timeout_s >= 0)
        deadline = mpr__now_ns() + (timeout_s > 1e9 ? (int64_t)1e18 : (int64_t)(timeout_s * 1e9));
    unsigned epoch = r->epoch;
    uint64_t sync = 0; /* asked for once the deadline has passed */
    int rc = 0;
    r->dispatching = 1;
    for (;;) {
        int done = condition(arg);
        if (stopped_by_callback(r, epoch))
            return done ? 0 : MPR_ESTATE;
        if (done)
            break;
        /* Seen before routing: what the sync published is then routable. */
        int synced = sync && mpr__queue_synced(&r->queue, sync);
        if (route_one(r, 0)) {
            if (stopped_by_callback(r, epoch))
                return MPR_ESTATE;
            continue;
        }
        if (deadline < 0 || mpr__now_ns() < deadline) {
            mpr__queue_wait(&r->queue, deadline, 0);
            continue;
        }
        /* Out of time, and the queue is empty. Before saying so, make sure
         * every message sent before now has been read: a sender's send may
         * have returned with its message still in a ring or a socket. */
        if (!sync) {
            sync = request_sync(r);
            continue;
        }
        if (synced) {
            rc = MPR_ETIMEDOUT;
            break;
        }
        mpr__queue_wait(&r->queue, -1, sync);
    }
    r->dispatching = 0;
    return rc;
}

int mpr_router_set_queue_limit(mpr_router *r, size_t bytes)
{
    if (!r)
        return MPR_EINVAL;
    r->queue_limit = bytes;
    return 0;
}

int mpr_router_set_max_message_size(mpr_router *r, size_t bytes)
{
    if (!r || bytes > MPR_MAX_MESSAGE_SIZE)
        return MPR_EINVAL;
    r->max_msg = (uint32_t)bytes;
    return 0;
}

#ifdef MPR_HAVE_ZMQ
/* A host for workers to reach: a name, an IPv4 address or [an IPv6 one]. */
static int valid_host(const char *host)
{
    char endpoint[256];
    int n = snprintf(endpoint, sizeof endpoint, "tcp://%s:1", host);
    return n > 0 && (size_t)n < sizeof endpoint && mpr__valid_tcp_endpoint(endpoint, 0);
}
#endif

int mpr_router_set_remote(mpr_router *r, const char *bind_endpoint, const char *advertised_host)
{
    if (!r)
        return MPR_EINVAL;
#ifndef MPR_HAVE_ZMQ
    (void)bind_endpoint;
    (void)advertised_host;
    return MPR_ENOTSUP;
#else
    if (bind_endpoint && !mpr__valid_tcp_endpoint(bind_endpoint, 1))
        return MPR_EINVAL;
    if (advertised_host && (!bind_endpoint || !valid_host(advertised_host)))
        return MPR_EINVAL;
    char *bind = bind_endpoint ? strdup(bind_endpoint) : NULL;
    char *host = advertised_host ? strdup(advertised_host) : NULL;
    if ((bind_endpoint && !bind) || (advertised_host && !host)) {
        free(bind);
        free(host);
        return MPR_ENOMEM;
    }
    free(r->remote_bind);
    free(r->remote_host);
    r->remote_bind = bind;
    r->remote_host = host;
    return 0;
#endif
}

int mpr_router_remote_endpoint(const mpr_router *r, char *buf, size_t size)
{
    if (!r || (!buf && size > 0))
        return MPR_EINVAL;
#ifndef MPR_HAVE_ZMQ
    return MPR_ENOTSUP;
#else
    if (!r->running)
        return MPR_ESTATE;
    if (!r->remote_endpoint[0])
        return MPR_ENOENT;
    return snprintf(buf, size, "%s", r->remote_endpoint);
#endif
}

int mpr_router_set_remote_window(mpr_router *r, double seconds)
{
    if (!r || !(seconds > 0) || seconds > 3600)
        return MPR_EINVAL;
    r->remote_window_ns = (int64_t)(seconds * 1e9);
    return 0;
}

int mpr_router_set_handshake_timeout(mpr_router *r, double seconds)
{
    if (!r || !(seconds > 0) || seconds > 3600)
        return MPR_EINVAL;
    r->handshake_ns = (int64_t)(seconds * 1e9);
    return 0;
}

void mpr_router_get_stats(const mpr_router *r, mpr_router_stats *out)
{
    if (!r || !out)
        return;
    *out = r->stats;
    out->connections_accepted = atomic_load_explicit(&r->accepted, memory_order_relaxed);
    out->connections_rejected = atomic_load_explicit(&r->rejected, memory_order_relaxed);
    out->connections_broken = atomic_load_explicit(&r->broken, memory_order_relaxed);
    out->pings = atomic_load_explicit(&r->pings, memory_order_relaxed);
    out->messages_received = atomic_load_explicit(&r->received, memory_order_relaxed);
}

void mpr_receiver_set_callback(mpr_receiver *receiver, void (*cb)(void *, const void *, size_t),
                               void *arg)
{
    struct receiver *rc = mpr__handle_get(receiver);
    if (!rc)
        return;
    rc->cb = cb;
    rc->arg = cb ? arg : NULL;
}

void mpr_receiver_set_lost_callback(mpr_receiver *receiver, void (*cb)(void *), void *arg)
{
    struct receiver *rc = mpr__handle_get(receiver);
    if (!rc)
        return;
    rc->lost_cb = cb;
    rc->lost_arg = cb ? arg : NULL;
}

uint32_t mpr_receiver_id(const mpr_receiver *receiver)
{
    struct receiver *rc = mpr__handle_get(receiver);
    return rc ? rc->id : 0;
}
