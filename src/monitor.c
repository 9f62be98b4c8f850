/*
 * monitor.c - the router's monitor thread: the loop over every endpoint's
 * handles, and the life of a connection from its first byte to its end
 * (transport.h has the map of the data path).
 *
 * A connection goes through:
 *   handshake  within the handshake timeout from its start: a HELLO naming
 *              an issued pipe, then a PROOF of that pipe's key answering
 *              our nonce (hs.h); a pipe takes one sender in its life. At
 *              most MPR__MAX_HANDSHAKES of one endpoint wait at a time
 *              (mpr__monitor_handshake_room: the local endpoint waits for
 *              room, the remote one pushes the oldest out). Handshakes
 *              go on while the queue is throttled.
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
 * Warnings about connections that fail their handshake, and other
 * warnings a peer can provoke, are rate-limited: the first few each second
 * in full, then one summary a second.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "monitor.h"
#include "platform.h"

#define RING_BUDGET (64u * 1024u) /* bytes per connection per round */
#define RL_FULL 5                 /* warnings of a kind in full per second */
#define RL_WINDOW_NS 1000000000
#define SILENT_NS ((int64_t)1000000000) /* see mpr__monitor_handshake_room */
#define RL_REASONS 6
#define RL_KINDS 4

/* Rate limit of one kind of warning: the first few per second in full,
 * then a summary per second of how many and why. */
typedef struct ratelimit {
    const char *kind; /* "rejected connections", ...; NULL: a free slot */
    int64_t window_start;
    unsigned logged, suppressed;
    struct {
        char why[96];
        unsigned count;
    } reasons[RL_REASONS];
} ratelimit;

struct mpr__monitor {
    /* fixed while it runs */
    mpr__settings settings;
    char *remote_bind, *remote_host; /* the settings' strings (copies) */
    const unsigned char *secret;
    const _Atomic uint32_t *last_id;
    const mpr_event_loop *loop;
    mpr_pinger *pinger;
    mpr__poller *poller;
    mpr__queue queue;
    int have_queue;
    mpr__ctl *ctl;                 /* the way back */
    mpr__thread thread;
    int have_thread;
    const mpr__endpoint_ops *eps[4];
    void *ep_state[4];
    int neps;
    char ipc_name[MPR__IPC_NAME_MAX + 1];
    char remote_endpoint[256]; /* "tcp://host:port" for remote workers, or "" */
    char remote_key[41];       /* the remote endpoint's CURVE public key (Z85), or "" */

    /* shared with the main thread */
    atomic_int stopping;
    atomic_int manual;             /* route_until took over: no pings */
    atomic_uint_fast64_t sync_req; /* route_until's sync requests (numbered from 1) */
    atomic_uint_fast64_t accepted, rejected, broken, pings, received;

    /* the monitor thread's */
    mpr__conn *conns;
    /* Connections ended while this round's events are dispatched: freed
     * after the round, since a later event of the same batch may name one
     * of their watches. */
    mpr__conn *dead;
    int in_round;
    mpr__conn *hs_head, *hs_tail;
    mpr__conn *busy;       /* connections that asked for a turn */
    int throttled;
    int flags;             /* MPR__Q_ flags gathered during one round */
    uint64_t n_received;   /* complete messages read; published to received */
    uint64_t sync_seen;    /* the last sync request taken up */
    unsigned sync_owed;    /* connections still to be read for it */
    mpr__idset used;       /* pipes that had their sender */
    ratelimit rl[RL_KINDS];
};

static const char REJECTED[] = "rejected connections";

/* ---- rate-limited warnings ---- */

/* Log the summary of a second that has passed; returns when the current
 * one ends if it has something to summarize, else -1. */
static int64_t rl_flush(mpr__monitor *m, ratelimit *rl, int64_t now)
{
    if (now - rl->window_start < RL_WINDOW_NS)
        return rl->suppressed ? rl->window_start + RL_WINDOW_NS : -1;
    if (rl->suppressed) {
        char why[320] = "";
        size_t len = 0;
        for (int i = 0; i < RL_REASONS && rl->reasons[i].count; i++) {
            int n = snprintf(why + len, sizeof why - len, "%s%s: %u", i ? "; " : "",
                             rl->reasons[i].why, rl->reasons[i].count);
            if (n < 0 || (size_t)n >= sizeof why - len)
                break;
            len += (size_t)n;
        }
        mpr__warn("router %p: %u more %s in the last second (%s)", (void *)m, rl->suppressed,
                  rl->kind, why);
    }
    const char *kind = rl->kind;
    memset(rl, 0, sizeof *rl);
    rl->kind = kind;
    rl->window_start = now;
    return -1;
}

static ratelimit *rl_of(mpr__monitor *m, const char *kind)
{
    for (int i = 0; i < RL_KINDS; i++) {
        if (m->rl[i].kind == kind)
            return &m->rl[i];
        if (!m->rl[i].kind) {
            m->rl[i].kind = kind;
            return &m->rl[i];
        }
    }
    return &m->rl[RL_KINDS - 1]; /* more kinds than slots: share the last */
}

/* Whether to log this one in full (the first few each second), or count
 * it under why for the summary. */
static int rl_allow(mpr__monitor *m, const char *kind, const char *why)
{
    ratelimit *rl = rl_of(m, kind);
    rl_flush(m, rl, mpr__now_ns());
    if (rl->logged < RL_FULL) {
        rl->logged++;
        return 1;
    }
    rl->suppressed++;
    for (int i = 0; i < RL_REASONS; i++) {
        if (!rl->reasons[i].count || strcmp(rl->reasons[i].why, why) == 0) {
            snprintf(rl->reasons[i].why, sizeof rl->reasons[i].why, "%s", why);
            rl->reasons[i].count++;
            break;
        }
    }
    return 0;
}

static void reject_warn(mpr__monitor *m, const char *peer, uint32_t claimed, const char *why)
{
    atomic_fetch_add_explicit(&m->rejected, 1, memory_order_relaxed);
    if (!rl_allow(m, REJECTED, why))
        return;
    if (claimed)
        mpr__warn("router %p: rejected connection from %s claiming pipe #%u: %s", (void *)m, peer,
                  claimed, why);
    else
        mpr__warn("router %p: rejected connection from %s: %s", (void *)m, peer, why);
}

void mpr__monitor_refuse(mpr__monitor *m, const char *peer, const char *why)
{
    reject_warn(m, peer, 0, why);
}

void mpr__monitor_warn_limited(mpr__monitor *m, const char *what, const char *why)
{
    if (rl_allow(m, what, why))
        mpr__warn("router %p: %s: %s", (void *)m, what, why);
}

/* ---- settings ---- */

const mpr__settings *mpr__monitor_settings(const mpr__monitor *m)
{
    return &m->settings;
}

mpr__poller *mpr__monitor_poller(mpr__monitor *m)
{
    return m->poller;
}

void mpr__monitor_set_ipc_name(mpr__monitor *m, const char *name)
{
    snprintf(m->ipc_name, sizeof m->ipc_name, "%s", name);
}

void mpr__monitor_set_remote(mpr__monitor *m, const char *endpoint, const char *server_key)
{
    snprintf(m->remote_endpoint, sizeof m->remote_endpoint, "%s", endpoint);
    snprintf(m->remote_key, sizeof m->remote_key, "%s", server_key);
}

const char *mpr__monitor_ipc_name(const mpr__monitor *m)
{
    return m->ipc_name;
}

const char *mpr__monitor_remote_endpoint(const mpr__monitor *m)
{
    return m->remote_endpoint;
}

const char *mpr__monitor_remote_key(const mpr__monitor *m)
{
    return m->remote_key;
}

int mpr__monitor_throttled(const mpr__monitor *m)
{
    return m->throttled;
}

size_t mpr__monitor_room(mpr__monitor *m)
{
    return mpr__queue_room(&m->queue);
}

/* ---- the list of connections ---- */

/* Connections of one kind (an endpoint's ops) waiting for their
 * handshake: at most a few hundred. */
static unsigned handshakes_of(const mpr__monitor *m, const mpr__conn_ops *ops)
{
    unsigned n = 0;
    for (const mpr__conn *c = m->hs_head; c; c = c->hs_next)
        n += c->ops == ops;
    return n;
}

static void hs_unlink(mpr__monitor *m, mpr__conn *c)
{
    if (!c->in_handshake)
        return;
    if (c->hs_prev)
        c->hs_prev->hs_next = c->hs_next;
    else
        m->hs_head = c->hs_next;
    if (c->hs_next)
        c->hs_next->hs_prev = c->hs_prev;
    else
        m->hs_tail = c->hs_prev;
    c->in_handshake = 0;
}

static void busy_remove(mpr__monitor *m, mpr__conn *c)
{
    if (!c->busy)
        return;
    for (mpr__conn **p = &m->busy; *p; p = &(*p)->busy_next) {
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
    c->busy_next = c->mon->busy;
    c->mon->busy = c;
}

static void conn_free(mpr__conn *c)
{
    mpr__monitor *m = c->mon;
    hs_unlink(m, c);
    busy_remove(m, c);
    mpr__conn_synced(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->big) {
        mpr__queue_pending(&m->queue, -(int64_t)c->counted);
        mpr__queue_free_dedicated(c->big);
    }
    if (c->id)
        mpr__ctl_detach(m->ctl, c->id); /* its pipe refuses the way back from now on */
    c->ops->close(c);
    mpr__hs_router_clear(&c->hs);
    if (m->in_round) {
        /* Its watches may still have events in this round's batch (an
         * accept that dropped the oldest handshake, say): free it after. */
        c->next = m->dead;
        m->dead = c;
        return;
    }
    free(c);
}

void mpr__conn_refused(mpr__conn *c, const char *why)
{
    if (why)
        reject_warn(c->mon, c->peer, c->hs.claimed, why);
    conn_free(c);
}

void mpr__conn_add(mpr__monitor *m, mpr__conn *c, const mpr__conn_ops *ops, const char *peer)
{
    c->mon = m;
    c->ops = ops;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->deadline_ns = mpr__now_ns() + m->settings.handshake_ns;
    c->next = m->conns;
    if (m->conns)
        m->conns->prev = c;
    m->conns = c;
    c->in_handshake = 1;
    c->hs_prev = m->hs_tail;
    if (m->hs_tail)
        m->hs_tail->hs_next = c;
    else
        m->hs_head = c;
    m->hs_tail = c;
    if (handshakes_of(m, ops) > MPR__MAX_HANDSHAKES) {
        mpr__conn *oldest = m->hs_head;
        while (oldest->ops != ops)
            oldest = oldest->hs_next;
        mpr__conn_refused(oldest, "too many connections waiting for a handshake; dropped the oldest");
    }
}

int mpr__monitor_handshake_room(mpr__monitor *m, const mpr__conn_ops *ops, int64_t now,
                                int64_t *retry_at)
{
    *retry_at = -1;
    if (handshakes_of(m, ops) < MPR__MAX_HANDSHAKES)
        return 1;
    /* Full. A connection that has said nothing for a second since it was
     * accepted makes room (a sender says HELLO as soon as it is
     * connected); one that is in its handshake is never pushed out: it
     * ends by its PROOF or by the handshake timeout. */
    for (mpr__conn *c = m->hs_head; c; c = c->hs_next) {
        if (c->ops != ops || c->hs.state != MPR__HS_START)
            continue;
        const int64_t silent_until = c->deadline_ns - m->settings.handshake_ns + SILENT_NS;
        if (silent_until <= now) {
            mpr__conn_refused(c, "silent for 1 s while 128 connections wait for their "
                                 "handshake; dropped");
            return 1;
        }
        *retry_at = silent_until;
        break; /* the oldest silent one is the first to go */
    }
    return 0;
}

/* ---- the handshake ---- */

static mpr__hs_router_keys keys_of(const mpr__monitor *m)
{
    mpr__hs_router_keys k = {m->secret, atomic_load(m->last_id), m->settings.max_msg};
    return k;
}

int mpr__conn_hello(mpr__conn *c, const unsigned char in[MPR__HELLO_SIZE],
                    unsigned char challenge[MPR__CHALLENGE_SIZE])
{
    mpr__hs_router_keys k = keys_of(c->mon);
    const char *why = NULL;
    int rc = mpr__hs_router_hello(&c->hs, &k, in, challenge, &why);
    if (rc < 0)
        reject_warn(c->mon, c->peer, c->hs.claimed, why);
    return rc;
}

static int id_used(const mpr__monitor *m, uint32_t id)
{
    return mpr__idset_has(&m->used, id);
}

static int id_mark(mpr__monitor *m, uint32_t id)
{
    return mpr__idset_add(&m->used, id);
}

int mpr__conn_proof(mpr__conn *c, const unsigned char in[MPR__PROOF_SIZE], uint32_t *flags)
{
    mpr__monitor *m = c->mon;
    mpr__hs_router_keys k = keys_of(m);
    const char *why = NULL;
    int rc = mpr__hs_router_proof(&c->hs, &k, in, &why);
    if (rc < 0) {
        reject_warn(m, c->peer, c->hs.claimed, why);
        return rc;
    }
    *flags = c->hs.flags;
    return 0;
}

int mpr__conn_accept(mpr__conn *c, uint32_t *status)
{
    mpr__monitor *m = c->mon;
    MPR__ASSERT(c->hs.state == MPR__HS_PROVEN && c->in_handshake);
    uint32_t id = c->hs.claimed;
    if (id_used(m, id)) {
        /* It holds the key, so it may learn why (its start returns
         * MPR_EALREADY). */
        reject_warn(m, c->peer, id,
                    "the pipe already had its sender (a pipe takes one sender; N workers need N "
                    "pipes)");
        *status = MPR__ACK_TAKEN;
        return 0;
    }
    if (id_mark(m, id) < 0 || mpr__ctl_attach(m->ctl, id, c) < 0) {
        reject_warn(m, c->peer, id, "out of memory");
        return MPR_ENOMEM;
    }
    hs_unlink(m, c);
    c->id = id;
    atomic_fetch_add_explicit(&m->accepted, 1, memory_order_relaxed);
    *status = MPR__ACK_OK;
    return 0;
}

/* Close connections that did not finish their handshake in time; returns
 * the next deadline, or -1. */
static int64_t expire(mpr__monitor *m, int64_t now)
{
    while (m->hs_head && m->hs_head->deadline_ns <= now) {
        char why[64];
        snprintf(why, sizeof why, "no handshake within %.3g s",
                 (double)m->settings.handshake_ns / 1e9);
        mpr__conn_refused(m->hs_head, why);
    }
    return m->hs_head ? m->hs_head->deadline_ns : -1;
}

/* ---- the end of a connection ---- */

static void push_lost(mpr__monitor *m, mpr__conn *c)
{
    if (!mpr__queue_reserve(&m->queue, c->id, MPR__REC_LOST, 0))
        mpr__log(MPR_LOG_ERROR, "router %p: pipe #%u: out of memory, sender-lost notice dropped",
                 (void *)m, c->id);
}

static void warn_pipe(mpr__monitor *m, mpr__conn *c, const char *what)
{
    mpr__warn("router %p: pipe #%u: %s", (void *)m, c->id, what);
}

void mpr__conn_end(mpr__conn *c, int err)
{
    mpr__monitor *m = c->mon;
    if (c->in_handshake) {
        mpr__conn_refused(c, err ? mpr_strerror(err) : "closed before the handshake");
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
        warn_pipe(m, c, what);
        atomic_fetch_add_explicit(&m->broken, 1, memory_order_relaxed);
        push_lost(m, c);
    } else if (c->bye) {
        mpr__debug("router %p: pipe #%u: sender stopped", (void *)m, c->id);
    } else if (partial) {
        char what[160];
        snprintf(what, sizeof what,
                 "sender lost in the middle of a message; discarding %llu of %llu bytes",
                 (unsigned long long)c->have, (unsigned long long)c->total);
        warn_pipe(m, c, what);
        atomic_fetch_add_explicit(&m->broken, 1, memory_order_relaxed);
        push_lost(m, c);
    } else {
        mpr__log(MPR_LOG_INFO, "router %p: pipe #%u: sender lost (connection ended without stop)",
                 (void *)m, c->id);
        push_lost(m, c);
    }
    conn_free(c);
}

/* ---- message assembly ---- */

unsigned char *mpr__msg_begin(mpr__conn *c, uint64_t len, int complete_now)
{
    mpr__queue *q = &c->mon->queue;
    unsigned char *dst;
    MPR__ASSERT(!c->in_message && len <= c->mon->settings.max_msg);
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
    MPR__ASSERT(c->in_message && have <= c->total);
    c->have = have;
    if (c->big && have > c->counted) {
        mpr__queue_prefault(c->big, have);
        mpr__queue_pending(&c->mon->queue, (int64_t)(have - c->counted));
        c->counted = have;
    }
}

void mpr__msg_end(mpr__conn *c)
{
    mpr__monitor *m = c->mon;
    m->n_received++;
    if (c->big) {
        mpr__queue_pending(&m->queue, -(int64_t)c->counted);
        m->flags |= mpr__queue_link(&m->queue, c->big);
        c->big = NULL;
    }
    c->in_message = 0;
    c->counted = 0;
}

int mpr__conn_record(mpr__conn *c, const mpr__ring_rec *rec)
{
    mpr__monitor *m = c->mon;
    if (c->bye)
        return MPR_EPROTO; /* nothing may follow BYE */
    switch (rec->type) {
    case MPR__RING_MSG: {
        if (c->in_message)
            return MPR_EPROTO;
        if (rec->len > m->settings.max_msg)
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
        if (rec->total > m->settings.max_msg)
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
    c->mon->sync_owed--;
}

static void sync_start(mpr__monitor *m, uint64_t req)
{
    m->sync_seen = req;
    m->sync_owed = 0;
    for (mpr__conn *c = m->conns; c; c = c->next) {
        c->sync_owed = 0;
        if (!c->in_handshake && c->ops->sync_mark && c->ops->sync_mark(c)) {
            c->sync_owed = 1;
            m->sync_owed++;
            mpr__conn_busy(c);
        }
    }
    for (int i = 0; i < m->neps; i++)
        if (m->eps[i]->sync)
            m->eps[i]->sync(m->ep_state[i]);
}

uint64_t mpr__monitor_request_sync(mpr__monitor *m)
{
    uint64_t gen = atomic_fetch_add(&m->sync_req, 1) + 1;
    mpr__poller_wake(m->poller);
    return gen;
}

void mpr__monitor_set_manual(mpr__monitor *m)
{
    atomic_store(&m->manual, 1);
}

/* ---- the way back ---- */

uint64_t mpr__conn_ctl_tag(mpr__conn *c)
{
    return mpr__ctl_tag(c->mon->ctl, c->id);
}

mpr__ctl_msg *mpr__conn_ctl_take(mpr__conn *c)
{
    return mpr__ctl_take(c->mon->ctl, c->id);
}

void mpr__conn_ctl_release(mpr__conn *c, size_t n)
{
    mpr__ctl_release(c->mon->ctl, c->id, n);
}

/* The connections whose pipes have something new on the way back. */
static void control_round(mpr__monitor *m)
{
    void *owners[64];
    int n;
    while ((n = mpr__ctl_take_dirty(m->ctl, owners, (int)MPR__ARRAY_SIZE(owners))) > 0) {
        for (int i = 0; i < n; i++) {
            mpr__conn *c = owners[i];
            if (c->ops->control)
                c->ops->control(c);
        }
    }
}

/* ---- the loop ---- */

/* One round over the connections that asked for a turn (none while
 * throttled: every connection gets one when throttling ends). */
static void drain_busy(mpr__monitor *m)
{
    mpr__conn *list = m->busy;
    m->busy = NULL;
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

static void set_throttled(mpr__monitor *m, int on)
{
    m->throttled = on;
    if (!on)
        for (mpr__conn *c = m->conns; c; c = c->next)
            mpr__conn_busy(c); /* not read meanwhile: look at every one */
}

/* The earlier of two deadlines (-1: none). */
static int64_t earlier(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static void *monitor_main(void *arg)
{
    mpr__monitor *m = arg;
    const mpr_event_loop *loop = m->loop;
    loop->pinger_connect(m->pinger);
    mpr__watch *ready[64];

    while (!atomic_load(&m->stopping)) {
        int64_t now = mpr__now_ns();
        int64_t next = expire(m, now);
        for (int i = 0; i < m->neps; i++)
            next = earlier(next, m->eps[i]->tick(m->ep_state[i], now));
        for (int i = 0; i < RL_KINDS && m->rl[i].kind; i++)
            next = earlier(next, rl_flush(m, &m->rl[i], now));
        int timeout = -1;
        if ((m->busy && !m->throttled) || m->flags || m->queue.unpublished > 0) {
            /* Also when a tick above read messages: commit and ping now. */
            timeout = 0;
        } else if (next >= 0) {
            int64_t ms = (next - now + 999999) / 1000000;
            timeout = ms > INT_MAX ? INT_MAX : (int)ms;
        }
        int n = mpr__poller_wait(m->poller, m->throttled, timeout, ready,
                                 (int)MPR__ARRAY_SIZE(ready));
        if (n < 0) {
            mpr__log(MPR_LOG_ERROR, "router %p: waiting for events: %s", (void *)m,
                     mpr_strerror(n));
            break;
        }
        m->in_round = 1;
        for (int i = 0; i < n; i++)
            if (!ready[i]->gone)
                ready[i]->on_event(ready[i]);
        control_round(m);
        m->in_round = 0;
        while (m->dead) {
            mpr__conn *c = m->dead;
            m->dead = c->next;
            free(c);
        }
        uint64_t req = atomic_load(&m->sync_req);
        if (req != m->sync_seen)
            sync_start(m, req);
        if (!m->throttled)
            drain_busy(m);
        /* What this round linked, the ticks at its top included: a large
         * message completed there (a transport's tick reads what its last
         * round left) must still ping, or its PING, and with it every
         * later one (the queue's ping_pending), would be lost. */
        int flags = m->flags;
        m->flags = 0;
        if (m->sync_seen && m->sync_owed == 0 && m->queue.sync_done != m->sync_seen)
            flags |= mpr__queue_sync_done(&m->queue, m->sync_seen);
        else
            flags |= mpr__queue_commit(&m->queue);
        if ((flags & MPR__Q_PING) && !atomic_load(&m->manual)) {
            atomic_fetch_add_explicit(&m->pings, 1, memory_order_relaxed);
            loop->pinger_ping(m->pinger);
        }
        int throttled = (flags & MPR__Q_THROTTLED) != 0;
        if (throttled != m->throttled)
            set_throttled(m, throttled);
        atomic_store_explicit(&m->received, m->n_received, memory_order_relaxed);
    }

    while (m->conns)
        conn_free(m->conns);
    for (int i = 0; i < m->neps; i++)
        m->eps[i]->close(m->ep_state[i]);
    m->neps = 0;
    loop->pinger_disconnect(m->pinger);
    loop->pinger_free(m->pinger);
    m->pinger = NULL;
    return NULL;
}

/* ---- life (main thread) ---- */

static char *dup_or_null(const char *s, int *failed)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d)
        *failed = 1;
    else
        memcpy(d, s, n);
    return d;
}

int mpr__monitor_new(mpr__monitor **out, const mpr__monitor_config *cfg)
{
    mpr__monitor *m = calloc(1, sizeof *m);
    if (!m)
        return MPR_ENOMEM;
    m->settings = cfg->settings;
    int failed = 0;
    m->remote_bind = dup_or_null(cfg->settings.remote_bind, &failed);
    m->remote_host = dup_or_null(cfg->settings.remote_host, &failed);
    m->settings.remote_bind = m->remote_bind;
    m->settings.remote_host = m->remote_host;
    m->secret = cfg->secret;
    m->last_id = cfg->last_id;
    m->loop = cfg->loop;
    m->pinger = cfg->pinger;
    int rc = failed ? MPR_ENOMEM : mpr__poller_new(&m->poller);
    if (rc == 0)
        rc = mpr__ctl_new(&m->ctl, m->poller);
    if (rc == 0) {
        rc = mpr__queue_init(&m->queue, cfg->queue_limit, m->poller);
        m->have_queue = rc == 0;
    }
    *out = m;
    return rc;
}

int mpr__monitor_open(mpr__monitor *m, const mpr__endpoint_ops *const *eps, int n)
{
    for (int i = 0; i < n && i < (int)MPR__ARRAY_SIZE(m->eps); i++) {
        m->eps[m->neps] = eps[i];
        m->ep_state[m->neps] = NULL;
        int rc = eps[i]->open(m, &m->ep_state[m->neps]);
        m->neps++; /* closed by mpr__monitor_free, also when open failed */
        if (rc < 0)
            return rc;
    }
    return 0;
}

int mpr__monitor_start(mpr__monitor *m)
{
    int rc = mpr__thread_start(&m->thread, monitor_main, m);
    m->have_thread = rc == 0;
    return rc;
}

void mpr__monitor_free(mpr__monitor *m, mpr_router_stats *stats)
{
    if (!m)
        return;
    if (m->have_thread) {
        atomic_store(&m->stopping, 1);
        mpr__poller_wake(m->poller);
        mpr__thread_join(m->thread); /* it closed the connections and endpoints */
    }
    for (int i = 0; i < m->neps; i++) /* start failed before the thread ran */
        m->eps[i]->close(m->ep_state[i]);
    if (m->pinger) /* the thread never ran */
        m->loop->pinger_free(m->pinger);
    if (m->have_queue)
        stats->messages_dropped += mpr__queue_destroy(&m->queue);
    mpr__monitor_add_stats(m, stats);
    mpr__ctl_free(m->ctl);
    mpr__poller_free(m->poller);
    mpr__idset_free(&m->used);
    free(m->remote_bind);
    free(m->remote_host);
    free(m);
}

mpr__queue *mpr__monitor_queue(mpr__monitor *m)
{
    return &m->queue;
}

mpr__ctl *mpr__monitor_ctl(mpr__monitor *m)
{
    return m->ctl;
}

void mpr__monitor_add_stats(const mpr__monitor *m, mpr_router_stats *s)
{
    s->connections_accepted += atomic_load_explicit(&m->accepted, memory_order_relaxed);
    s->connections_rejected += atomic_load_explicit(&m->rejected, memory_order_relaxed);
    s->connections_broken += atomic_load_explicit(&m->broken, memory_order_relaxed);
    s->pings += atomic_load_explicit(&m->pings, memory_order_relaxed);
    s->messages_received += atomic_load_explicit(&m->received, memory_order_relaxed);
}
