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
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/router.h>

#include "base.h"
#include "handle.h"
#include "monitor.h"
#include "platform.h"
#include "sender_p.h"

#define DEFAULT_HANDSHAKE_NS ((int64_t)5 * 1000000000)
#define DEFAULT_WINDOW_NS ((int64_t)10 * 1000000000)

/* A receiver; the application holds a handle to it (handle.c). */
struct receiver {
    uint32_t id;
    mpr_receiver *handle;
    mpr_router *router;
    void (*cb)(void *arg, const void *data, size_t size);
    void *arg;
    void (*lost_cb)(void *arg);
    void *lost_arg;
};

struct slot {
    uint32_t id; /* 0: empty */
    struct receiver *receiver;
};

/* Secrets, in a page a forked child reads as zeros (mpr__secure_alloc). */
struct secrets {
    unsigned char secret[MPR__SECRET_SIZE]; /* the pipe keys derive from it */
};

struct mpr_router {
    const mpr_event_loop *loop;
    uint64_t token; /* mpr__process_token() of the process that made it */
    struct secrets *sec;

    /* options (take effect at the next start) */
    size_t queue_limit;
    uint32_t max_msg;
    int64_t handshake_ns;
    char *remote_bind, *remote_host; /* mpr_router_set_remote; NULL: none */
    int64_t remote_window_ns;

    int running;
    unsigned epoch;      /* bumped by stop: dispatch notices a stop in a callback */
    int dispatching;
    int free_requested;  /* mpr_router_free from a callback: done when dispatch unwinds */
    int linked;
    int manual;          /* route_until took over (until the next start) */
    mpr_pingee *pingee;
    mpr_pinger *self_pinger; /* re-ping after a full time slice */
    struct slot *slots;  /* routing table: open addressing, ids are keys */
    size_t nslots, nreceivers;
    mpr_router_stats stats;
    _Atomic uint32_t last_id; /* the highest pipe id issued (the monitor reads it) */

    mpr__monitor *mon;   /* while running */
    mpr__queue *queue;   /* its queue's consumer side */
};

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
    const mpr__record *rec = mpr__queue_next(r->queue, clear_ping);
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
            r->stats.pings++;
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
    r->handshake_ns = DEFAULT_HANDSHAKE_NS;
    r->remote_window_ns = DEFAULT_WINDOW_NS;
    *out = r;
    return 0;
}

/* Release everything start made; used by stop and by a failed start. */
static void teardown(mpr_router *r)
{
    if (r->mon) {
        /* Joins the monitor thread: every connection and endpoint closed. */
        mpr__monitor_free(r->mon, &r->stats);
        r->mon = NULL;
        r->queue = NULL;
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
    mpr__wipe(r->sec, sizeof *r->sec);
    r->manual = 0;
}

/* The endpoints of this build: the local one, and the remote one if asked
 * for. */
static int endpoints(const mpr_router *r, const mpr__endpoint_ops *eps[2])
{
    int n = 0;
    eps[n++] = &mpr__local_endpoint;
#ifdef MPR_HAVE_REMOTE
    if (r->remote_bind)
        eps[n++] = &mpr__remote_endpoint;
#else
    (void)r;
#endif
    return n;
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
        rc = loop->pingee_new(loop, on_ping, r, &r->pingee);
    if (rc == 0) {
        loop->pingee_connect(r->pingee);
        r->linked = 1;
        rc = loop->pinger_new(r->pingee, &r->self_pinger);
    }
    mpr_pinger *monitor_pinger = NULL;
    if (rc == 0) {
        loop->pinger_connect(r->self_pinger);
        rc = loop->pinger_new(r->pingee, &monitor_pinger);
    }
    if (rc == 0) {
        mpr__monitor_config cfg = {
            .settings = {.max_msg = r->max_msg,
                         .handshake_ns = r->handshake_ns,
                         .window_ns = r->remote_window_ns,
                         .remote_bind = r->remote_bind,
                         .remote_host = r->remote_host},
            .queue_limit = r->queue_limit,
            .secret = r->sec->secret,
            .last_id = &r->last_id,
            .loop = loop,
            .pinger = monitor_pinger,
        };
        rc = mpr__monitor_new(&r->mon, &cfg); /* takes the pinger, also on failure */
    }
    if (rc == 0) {
        r->queue = mpr__monitor_queue(r->mon);
        const mpr__endpoint_ops *eps[2];
        rc = mpr__monitor_open(r->mon, eps, endpoints(r, eps));
    }
    if (rc == 0)
        rc = mpr__monitor_start(r->mon);
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
    mpr__pipe_key(key, r->sec->secret, id);
    int err = rc ? mpr__sender_new(&s, mpr__monitor_ipc_name(r->mon), id, key, r->max_msg)
                 : MPR_ENOMEM;
    mpr__wipe(key, sizeof key);
    if (err == 0)
        err = mpr__sender_set_remote(s, mpr__monitor_remote_endpoint(r->mon),
                                     mpr__monitor_remote_key(r->mon));
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
    mpr__ctl_forget(mpr__monitor_ctl(r->mon), rc->id);
    mpr__handle_free(receiver);
    mpr__debug("router %p: closed pipe #%u", (void *)r, rc->id);
    free(rc);
    return 0;
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
    r->manual = 1;
    mpr__monitor_set_manual(r->mon);

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
        int synced = sync && mpr__queue_synced(r->queue, sync);
        if (route_one(r, 0)) {
            if (stopped_by_callback(r, epoch))
                return MPR_ESTATE;
            continue;
        }
        if (deadline < 0 || mpr__now_ns() < deadline) {
            mpr__queue_wait(r->queue, deadline, 0);
            continue;
        }
        /* Out of time, and the queue is empty. Before saying so, make sure
         * every message sent before now has been read: a sender's send may
         * have returned with its message still in a ring or a socket. */
        if (!sync) {
            sync = mpr__monitor_request_sync(r->mon);
            continue;
        }
        if (synced) {
            rc = MPR_ETIMEDOUT;
            break;
        }
        mpr__queue_wait(r->queue, -1, sync);
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

#ifdef MPR_HAVE_REMOTE
/* A copy of s, or NULL (s NULL, or out of memory). */
static char *dup_string(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

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
#ifndef MPR_HAVE_REMOTE
    (void)bind_endpoint;
    (void)advertised_host;
    return MPR_ENOTSUP;
#else
    if (bind_endpoint && !mpr__valid_tcp_endpoint(bind_endpoint, 1))
        return MPR_EINVAL;
    if (advertised_host && (!bind_endpoint || !valid_host(advertised_host)))
        return MPR_EINVAL;
    char *bind = dup_string(bind_endpoint);
    char *host = dup_string(advertised_host);
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
#ifndef MPR_HAVE_REMOTE
    return MPR_ENOTSUP;
#else
    if (!r->running)
        return MPR_ESTATE;
    const char *endpoint = mpr__monitor_remote_endpoint(r->mon);
    if (!endpoint[0])
        return MPR_ENOENT;
    return snprintf(buf, size, "%s", endpoint);
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
    if (r->mon)
        mpr__monitor_add_stats(r->mon, out);
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

/* ------------------------------------------------------------------ */
/* the way back                                                        */

/* The open pipe of a receiver handle, with its running router: 0 or the
 * error of router.h. */
static int open_pipe(const mpr_receiver *receiver, struct receiver **out)
{
    struct receiver *rc = mpr__handle_get(receiver);
    if (!rc || table_get(rc->router, rc->id) != rc)
        return MPR_ENOENT;
    if (!rc->router->running)
        return MPR_ESTATE;
    *out = rc;
    return 0;
}

int mpr_receiver_send(mpr_receiver *receiver, const void *data, size_t size)
{
    if (!data && size > 0)
        return MPR_EINVAL;
    if (size > MPR_CONTROL_MAX_SIZE)
        return MPR_EMSGSIZE;
    struct receiver *rc;
    int err = open_pipe(receiver, &rc);
    return err ? err : mpr__ctl_send(mpr__monitor_ctl(rc->router->mon), rc->id, data, size);
}

int mpr_receiver_cancel(mpr_receiver *receiver, uint64_t tag)
{
    if (tag == 0)
        return MPR_EINVAL;
    struct receiver *rc;
    int err = open_pipe(receiver, &rc);
    return err ? err : mpr__ctl_cancel(mpr__monitor_ctl(rc->router->mon), rc->id, tag);
}
