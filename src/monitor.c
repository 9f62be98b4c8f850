/*
 * monitor.c - the router's monitor thread: the loop over every transport's
 * descriptors, and the life of a connection from its first byte to its
 * end (transport.h has the map of the data path).
 *
 * A connection goes through:
 *   handshake  within the handshake timeout: a HELLO naming an issued
 *              pipe, then a PROOF of that pipe's key answering our nonce
 *              (wire.h); a pipe takes one sender in its life. At most
 *              MAX_HANDSHAKES wait at a time, the oldest is dropped first.
 *              Handshakes go on while the queue is throttled.
 *   messages   the transport hands over records or message bytes; they
 *              are assembled here into the local queue (queue.c) and the
 *              main thread is pinged when the queue goes from empty to
 *              non-empty. Transports that have more take turns in rounds.
 *   end        BYE then end of stream: normal. End of stream without BYE:
 *              the receiver gets a "sender lost" record after the sender's
 *              last message, and a half-written message is discarded with
 *              a warning. Any protocol error closes only that connection.
 *
 * Backpressure (with a queue limit, queue.h): while the queue is throttled
 * no message is read, only handshakes. Throttling needs routable bytes
 * and ends when the main thread has routed them all at the latest, so a
 * message larger than the limit still gets through.
 *
 * route_until's sync: the main thread asks (sync_req) and waits; every
 * connection notes how far its sender has sent (ops->sync_mark) and is
 * read that far; then the queue says the sync is done.
 *
 * Warnings about connections that fail their handshake are rate-limited:
 * the first few each second in full, then one summary a second.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"
#include "router_p.h"

#define RING_BUDGET (64u * 1024u) /* bytes per connection per round */
#define MAX_HANDSHAKES 128        /* connections waiting for theirs at once */
#define FD_HEADROOM 32            /* descriptors always left to the application */
#define RL_FULL 5                 /* warnings of a kind in full per second */
#define RL_WINDOW_NS 1000000000

/* ---- rate-limited warnings ---- */

int64_t mpr__rl_flush(mpr_router *r, mpr__ratelimit *rl, const char *kind, int64_t now)
{
    if (now - rl->window_start < RL_WINDOW_NS)
        return rl->suppressed ? rl->window_start + RL_WINDOW_NS : -1;
    if (rl->suppressed) {
        char why[320] = "";
        size_t len = 0;
        for (int i = 0; i < MPR__RL_REASONS && rl->reasons[i].count; i++) {
            int n = snprintf(why + len, sizeof why - len, "%s%s: %u", i ? "; " : "",
                             rl->reasons[i].why, rl->reasons[i].count);
            if (n < 0 || (size_t)n >= sizeof why - len)
                break;
            len += (size_t)n;
        }
        mpr__warn("router %p: %u more %s in the last second (%s)", (void *)r, rl->suppressed, kind,
                  why);
    }
    memset(rl, 0, sizeof *rl);
    rl->window_start = now;
    return -1;
}

int mpr__rl_allow(mpr_router *r, mpr__ratelimit *rl, const char *kind, const char *why)
{
    mpr__rl_flush(r, rl, kind, mpr__now_ns());
    if (rl->logged < RL_FULL) {
        rl->logged++;
        return 1;
    }
    rl->suppressed++;
    for (int i = 0; i < MPR__RL_REASONS; i++) {
        if (!rl->reasons[i].count || strcmp(rl->reasons[i].why, why) == 0) {
            snprintf(rl->reasons[i].why, sizeof rl->reasons[i].why, "%s", why);
            rl->reasons[i].count++;
            break;
        }
    }
    return 0;
}

static const char *const REJECTED = "rejected connections";

void mpr__reject_warn(mpr_router *r, const char *peer, uint32_t claimed, const char *why)
{
    atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
    if (!mpr__rl_allow(r, &r->rl_reject, REJECTED, why))
        return;
    if (claimed)
        mpr__warn("router %p: rejected connection from %s claiming pipe #%u: %s", (void *)r, peer,
                  claimed, why);
    else
        mpr__warn("router %p: rejected connection from %s: %s", (void *)r, peer, why);
}

/* ---- watches ---- */

int mpr__watch_add(mpr_router *r, mpr__watch *w, int fd, int throttle_set)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    w->fd = fd;
    w->throttle_set = 0;
    w->gone = 0;
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return mpr__syserr();
    if (throttle_set)
        mpr__watch_set_throttle(r, w, 1);
    return 0;
}

void mpr__watch_set_throttle(mpr_router *r, mpr__watch *w, int throttle_set)
{
    if (w->throttle_set == throttle_set)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    if (epoll_ctl(r->throttle_epfd, throttle_set ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->fd, &ev) == 0)
        w->throttle_set = throttle_set;
}

void mpr__watch_del(mpr_router *r, mpr__watch *w)
{
    /* Explicitly: a forked child may hold a copy of the descriptor, and
     * epoll forgets it only when every copy is closed. */
    epoll_ctl(r->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    if (w->throttle_set)
        epoll_ctl(r->throttle_epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->throttle_set = 0;
    w->gone = 1;
}

int mpr__fd_room(int any_fd)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0 || lim.rlim_cur == RLIM_INFINITY)
        return 1;
    /* Descriptors are handed out lowest first: the next one taken is the
     * lowest free one. Find it without taking it for long. */
    int probe = fcntl(any_fd, F_DUPFD_CLOEXEC, 0);
    if (probe < 0)
        return 0; /* none at all */
    close(probe);
    return (rlim_t)probe + FD_HEADROOM < lim.rlim_cur;
}

int mpr__throttled(const mpr_router *r)
{
    return r->throttled;
}

/* ---- the list of connections ---- */

static void hs_unlink(mpr_router *r, mpr__conn *c)
{
    if (!c->in_handshake)
        return;
    if (c->hs_prev)
        c->hs_prev->hs_next = c->hs_next;
    else
        r->hs_head = c->hs_next;
    if (c->hs_next)
        c->hs_next->hs_prev = c->hs_prev;
    else
        r->hs_tail = c->hs_prev;
    c->in_handshake = 0;
    r->hs_count--;
}

static void busy_remove(mpr_router *r, mpr__conn *c)
{
    if (!c->busy)
        return;
    for (mpr__conn **p = &r->busy; *p; p = &(*p)->busy_next) {
        if (*p == c) {
            *p = c->busy_next;
            break;
        }
    }
    c->busy = 0;
}

void mpr__conn_busy(mpr__conn *c)
{
    if (c->busy || !c->ops->drain)
        return;
    c->busy = 1;
    c->busy_next = c->router->busy;
    c->router->busy = c;
}

static void conn_free(mpr__conn *c)
{
    mpr_router *r = c->router;
    hs_unlink(r, c);
    busy_remove(r, c);
    mpr__conn_synced(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->big) {
        mpr__queue_pending(&r->queue, -(int64_t)c->counted);
        mpr__queue_free_dedicated(c->big);
    }
    c->ops->close(c);
    explicit_bzero(c->nonce_s, sizeof c->nonce_s);
    if (r->in_round) {
        /* Its watches may still have events in this round's batch (an
         * accept that dropped the oldest handshake, say): free it after. */
        c->next = r->dead;
        r->dead = c;
        return;
    }
    free(c);
}

void mpr__conn_reject(mpr__conn *c)
{
    conn_free(c);
}

void mpr__conn_add(mpr_router *r, mpr__conn *c, const mpr__conn_ops *ops, const char *peer)
{
    c->router = r;
    c->ops = ops;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->deadline_ns = mpr__now_ns() + r->handshake_ns;
    c->next = r->conns;
    if (r->conns)
        r->conns->prev = c;
    r->conns = c;
    c->in_handshake = 1;
    c->hs_prev = r->hs_tail;
    if (r->hs_tail)
        r->hs_tail->hs_next = c;
    else
        r->hs_head = c;
    r->hs_tail = c;
    if (++r->hs_count > MAX_HANDSHAKES) {
        mpr__conn *oldest = r->hs_head;
        mpr__reject_warn(r, oldest->peer, oldest->claimed,
                         "too many connections waiting for a handshake; dropped the oldest");
        conn_free(oldest);
    }
}

/* ---- the handshake ---- */

void mpr__router_pipe_key(const mpr_router *r, uint32_t id, unsigned char out[MPR__SECRET_SIZE])
{
    mpr__pipe_key(out, r->sec->secret, id);
}

int mpr__hs_hello(mpr__conn *c, const mpr__hello *h, unsigned char challenge[MPR__CHALLENGE_SIZE])
{
    mpr_router *r = c->router;
    c->claimed = h->conn_id;
    const char *why = NULL;
    if (h->version != MPR__WIRE_VERSION || h->flags != 0)
        why = "unsupported protocol version";
    else if (h->conn_id == 0 || h->conn_id > atomic_load(&r->last_id))
        why = "connection id never issued";
    else if (!c->have_nonce_r && mpr__random(c->nonce_r, sizeof c->nonce_r) < 0)
        why = "no random numbers for the handshake";
    if (why) {
        mpr__reject_warn(r, c->peer, h->conn_id, why);
        return MPR_EACCES;
    }
    /* One nonce of ours per connection: a HELLO sent again (a sender that
     * waited long for our answer) gets the same CHALLENGE, so its PROOF
     * answers whichever copy of it arrived first. */
    c->have_nonce_r = 1;
    memcpy(c->nonce_s, h->nonce, sizeof c->nonce_s);
    mpr__challenge ch = {.max_msg = r->max_msg};
    memcpy(ch.nonce, c->nonce_r, sizeof ch.nonce);
    unsigned char key[MPR__SECRET_SIZE];
    mpr__router_pipe_key(r, h->conn_id, key);
    mpr__proof_tag(ch.proof, key, 'r', h->conn_id, c->nonce_s, c->nonce_r);
    explicit_bzero(key, sizeof key);
    mpr__challenge_encode(challenge, &ch);
    return 0;
}

static int id_used(const mpr_router *r, uint32_t id)
{
    size_t word = id / 64;
    return word < r->used_words && (r->used[word] >> (id % 64) & 1);
}

static int id_mark(mpr_router *r, uint32_t id)
{
    size_t word = id / 64;
    if (word >= r->used_words) {
        size_t n = r->used_words ? r->used_words : 16;
        while (n <= word)
            n *= 2;
        uint64_t *used = realloc(r->used, n * sizeof *used);
        if (!used)
            return MPR_ENOMEM;
        memset(used + r->used_words, 0, (n - r->used_words) * sizeof *used);
        r->used = used;
        r->used_words = n;
    }
    r->used[word] |= (uint64_t)1 << (id % 64);
    return 0;
}

int mpr__hs_proof(mpr__conn *c, const mpr__proof *p, uint32_t *status)
{
    mpr_router *r = c->router;
    unsigned char key[MPR__SECRET_SIZE], expected[MPR__SECRET_SIZE];
    mpr__router_pipe_key(r, c->claimed, key);
    mpr__proof_tag(expected, key, 's', c->claimed, c->nonce_r, c->nonce_s);
    int ok = mpr__secret_equal(expected, p->proof);
    explicit_bzero(key, sizeof key);
    explicit_bzero(expected, sizeof expected);
    if (!ok) {
        mpr__reject_warn(r, c->peer, c->claimed,
                         "its proof does not match (not this pipe's key, or not an answer to "
                         "our challenge)");
        return MPR_EACCES;
    }
    if (id_used(r, c->claimed)) {
        /* It holds the key, so it may learn why (its start returns
         * MPR_EALREADY). */
        mpr__reject_warn(r, c->peer, c->claimed,
                         "the pipe already had its sender (a pipe takes one sender; "
                         "N workers need N pipes)");
        *status = MPR__ACK_TAKEN;
        return 0;
    }
    if (id_mark(r, c->claimed) < 0) {
        mpr__reject_warn(r, c->peer, c->claimed, "out of memory");
        return MPR_ENOMEM;
    }
    hs_unlink(r, c);
    c->id = c->claimed;
    atomic_fetch_add_explicit(&r->accepted, 1, memory_order_relaxed);
    *status = MPR__ACK_OK;
    return 0;
}

/* Close connections that did not finish their handshake in time; returns
 * the next deadline, or -1. */
static int64_t expire(mpr_router *r, int64_t now)
{
    while (r->hs_head && r->hs_head->deadline_ns <= now) {
        char why[64];
        snprintf(why, sizeof why, "no handshake within %.3g s", (double)r->handshake_ns / 1e9);
        mpr__conn *c = r->hs_head;
        mpr__reject_warn(r, c->peer, c->claimed, why);
        conn_free(c);
    }
    return r->hs_head ? r->hs_head->deadline_ns : -1;
}

/* ---- the end of a connection ---- */

static void push_lost(mpr_router *r, mpr__conn *c)
{
    if (!mpr__queue_reserve(&r->queue, c->id, MPR__REC_LOST, 0))
        mpr__log(MPR_LOG_ERROR, "router %p: pipe #%u: out of memory, sender-lost notice dropped",
                 (void *)r, c->id);
}

static void warn_pipe(mpr_router *r, mpr__conn *c, const char *what)
{
    mpr__warn("router %p: pipe #%u: %s", (void *)r, c->id, what);
}

void mpr__conn_end(mpr__conn *c, int err)
{
    mpr_router *r = c->router;
    if (c->in_handshake) {
        if (err != MPR_EACCES) /* mpr__hs_* have warned */
            mpr__reject_warn(r, c->peer, c->claimed,
                             err ? mpr_strerror(err) : "closed before the handshake");
        conn_free(c);
        return;
    }
    if (!err && c->ops->final_drain) {
        int rc = c->ops->final_drain(c);
        if (rc < 0)
            err = rc;
    }
    int partial = c->in_message || c->mid_frame;
    if (err) {
        char what[128];
        snprintf(what, sizeof what, "closing connection: %s", mpr_strerror(err));
        warn_pipe(r, c, what);
        atomic_fetch_add_explicit(&r->broken, 1, memory_order_relaxed);
        push_lost(r, c);
    } else if (c->bye) {
        mpr__debug("router %p: pipe #%u: sender stopped", (void *)r, c->id);
    } else if (partial) {
        char what[160];
        snprintf(what, sizeof what,
                 "sender lost in the middle of a message; discarding %llu of %llu bytes",
                 (unsigned long long)c->have, (unsigned long long)c->total);
        warn_pipe(r, c, what);
        atomic_fetch_add_explicit(&r->broken, 1, memory_order_relaxed);
        push_lost(r, c);
    } else {
        mpr__log(MPR_LOG_INFO, "router %p: pipe #%u: sender lost (connection ended without stop)",
                 (void *)r, c->id);
        push_lost(r, c);
    }
    conn_free(c);
}

/* ---- message assembly ---- */

unsigned char *mpr__msg_begin(mpr__conn *c, uint64_t len, int complete_now)
{
    mpr__queue *q = &c->router->queue;
    unsigned char *dst;
    if (len <= MPR__SMALL_MAX && complete_now) {
        dst = mpr__queue_reserve(q, c->id, MPR__REC_MSG, (uint32_t)len);
    } else {
        c->big = mpr__queue_dedicated(q, c->id, (uint32_t)len, &dst);
        if (c->big)
            mpr__queue_prefault(c->big, complete_now ? len : 0);
        else
            dst = NULL;
    }
    c->dst = dst;
    c->total = len;
    c->have = c->counted = 0;
    c->in_message = dst != NULL;
    return dst;
}

void mpr__msg_progress(mpr__conn *c, uint64_t have)
{
    c->have = have;
    if (c->big && have > c->counted) {
        mpr__queue_prefault(c->big, have);
        mpr__queue_pending(&c->router->queue, (int64_t)(have - c->counted));
        c->counted = have;
    }
}

void mpr__msg_end(mpr__conn *c)
{
    mpr_router *r = c->router;
    r->mon_received++;
    if (c->big) {
        mpr__queue_pending(&r->queue, -(int64_t)c->counted);
        r->mon_flags |= mpr__queue_link(&r->queue, c->big);
        c->big = NULL;
    }
    c->in_message = 0;
    c->counted = 0;
}

int mpr__conn_record(mpr__conn *c, const mpr__ring_rec *rec)
{
    mpr_router *r = c->router;
    if (c->bye)
        return MPR_EPROTO; /* nothing may follow BYE */
    switch (rec->type) {
    case MPR__RING_MSG: {
        if (c->in_message)
            return MPR_EPROTO;
        if (rec->len > r->max_msg)
            return MPR_EMSGSIZE;
        unsigned char *dst = mpr__msg_begin(c, rec->len, 1);
        if (!dst)
            return MPR_ENOMEM;
        memcpy(dst, rec->payload, rec->len);
        mpr__msg_end(c);
        return 0;
    }
    case MPR__RING_FRAG_START:
        if (c->in_message)
            return MPR_EPROTO;
        if (rec->total > r->max_msg)
            return MPR_EMSGSIZE;
        if (!mpr__msg_begin(c, rec->total, 0))
            return MPR_ENOMEM;
        break;
    case MPR__RING_FRAG_DATA:
        if (!c->in_message || rec->len > c->total - c->have)
            return MPR_EPROTO;
        memcpy(c->dst + c->have, rec->payload, rec->len);
        mpr__msg_progress(c, c->have + rec->len);
        break;
    case MPR__RING_PAD:
        return 0;
    case MPR__RING_BYE:
        if (c->in_message)
            return MPR_EPROTO;
        c->bye = 1;
        return 0;
    default:
        return MPR_EPROTO;
    }
    if (c->have == c->total)
        mpr__msg_end(c);
    return 0;
}

/* ---- route_until's sync ---- */

void mpr__conn_synced(mpr__conn *c)
{
    if (!c->sync_owed)
        return;
    c->sync_owed = 0;
    c->router->sync_owed--;
}

static void sync_start(mpr_router *r, uint64_t req)
{
    r->sync_seen = req;
    r->sync_owed = 0;
    for (mpr__conn *c = r->conns; c; c = c->next) {
        c->sync_owed = 0;
        if (!c->in_handshake && c->ops->sync_mark && c->ops->sync_mark(c)) {
            c->sync_owed = 1;
            r->sync_owed++;
            mpr__conn_busy(c);
        }
    }
    for (int i = 0; i < r->nendpoints; i++)
        if (r->endpoints[i]->sync)
            r->endpoints[i]->sync(r);
}

/* ---- the loop ---- */

/* One round over the connections that asked for a turn (none while
 * throttled: every connection gets one when throttling ends). */
static void drain_busy(mpr_router *r)
{
    mpr__conn *list = r->busy;
    r->busy = NULL;
    while (list) {
        mpr__conn *c = list;
        list = c->busy_next;
        c->busy = 0;
        int rc = c->ops->drain(c, RING_BUDGET);
        if (rc < 0)
            mpr__conn_end(c, rc);
        else if (rc > 0)
            mpr__conn_busy(c);
    }
}

static void set_throttled(mpr_router *r, int on)
{
    r->throttled = on;
    if (!on)
        for (mpr__conn *c = r->conns; c; c = c->next)
            mpr__conn_busy(c); /* not read meanwhile: look at every one */
}

static void on_wake(mpr_router *r, mpr__watch *w)
{
    (void)r;
    uint64_t v;
    ssize_t rc = read(w->fd, &v, sizeof v);
    (void)rc; /* only a wake-up; the flags say the rest */
}

void *mpr__monitor_main(void *arg)
{
    mpr_router *r = arg;
    const mpr_event_loop *loop = r->loop;
    loop->pinger_connect(r->monitor_pinger);
    r->wake.on_event = on_wake;
    struct epoll_event evs[64];

    while (!atomic_load(&r->stopping)) {
        int64_t now = mpr__now_ns();
        int64_t next = expire(r, now);
        for (int i = 0; i < r->nendpoints; i++) {
            int64_t t = r->endpoints[i]->tick(r, now);
            if (t >= 0 && (next < 0 || t < next))
                next = t;
        }
        int64_t t = mpr__rl_flush(r, &r->rl_reject, REJECTED, now);
        if (t >= 0 && (next < 0 || t < next))
            next = t;
        int timeout = -1;
        if ((r->busy && !r->throttled) || r->mon_flags || r->queue.unpublished > 0) {
            /* Also when a tick above read messages: commit and ping now. */
            timeout = 0;
        } else if (next >= 0) {
            int64_t ms = (next - now + 999999) / 1000000;
            timeout = ms > INT_MAX ? INT_MAX : (int)ms;
        }
        int n = epoll_wait(r->throttled ? r->throttle_epfd : r->epfd, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            mpr__log(MPR_LOG_ERROR, "router %p: epoll_wait: %s", (void *)r, mpr_strerror(-errno));
            break;
        }
        r->in_round = 1;
        for (int i = 0; i < n; i++) {
            mpr__watch *w = evs[i].data.ptr;
            if (!w->gone)
                w->on_event(r, w);
        }
        r->in_round = 0;
        while (r->dead) {
            mpr__conn *c = r->dead;
            r->dead = c->next;
            free(c);
        }
        uint64_t req = atomic_load(&r->sync_req);
        if (req != r->sync_seen)
            sync_start(r, req);
        if (!r->throttled)
            drain_busy(r);
        /* What this round linked, the ticks at its top included: a large
         * message completed there (a transport's tick reads what its last
         * round left) must still ping, or its PING, and with it every
         * later one (the queue's ping_pending), would be lost. */
        int flags = r->mon_flags;
        r->mon_flags = 0;
        if (r->sync_seen && r->sync_owed == 0 && r->queue.sync_done != r->sync_seen)
            flags |= mpr__queue_sync_done(&r->queue, r->sync_seen);
        else
            flags |= mpr__queue_commit(&r->queue);
        if ((flags & MPR__Q_PING) && !atomic_load(&r->manual)) {
            atomic_fetch_add_explicit(&r->pings, 1, memory_order_relaxed);
            loop->pinger_ping(r->monitor_pinger);
        }
        int throttled = (flags & MPR__Q_THROTTLED) != 0;
        if (throttled != r->throttled)
            set_throttled(r, throttled);
        atomic_store_explicit(&r->received, r->mon_received, memory_order_relaxed);
    }

    while (r->conns)
        conn_free(r->conns);
    for (int i = 0; i < r->nendpoints; i++)
        r->endpoints[i]->close(r);
    r->nendpoints = 0;
    loop->pinger_disconnect(r->monitor_pinger);
    loop->pinger_free(r->monitor_pinger);
    r->monitor_pinger = NULL;
    return NULL;
}
