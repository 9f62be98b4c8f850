/*
 * local_router.c - the router's local endpoint: senders on this host (the
 * sending end is local_sender.c).
 *
 * A fresh private endpoint per start (platform.h: an abstract socket on
 * Linux, a path socket in a 0700 directory elsewhere). A connection must
 * come from the router's own user; then the handshake (hs.h, through the
 * monitor: HELLO, CHALLENGE, PROOF, ACK), whose PROOF may bring a
 * shared-memory ring. Then messages come either as frames on the
 * connection (wire.h, parsed by wire.c) or through the ring (ring.c), the
 * connection then carrying only wake-up bytes and the end of stream.
 *
 * Connections are accepted a few a round, and only while the process
 * keeps its descriptor headroom (MPR__FD_HEADROOM): otherwise accepting
 * pauses for a moment and new connections wait in the backlog (their
 * senders in their handshake). A ring the system had to drop at our
 * descriptor limit makes the connection fall back to frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "ring.h"
#include "transport.h"

#define READS_PER_EVENT 4 /* fairness between connections */
#define ACCEPTS_PER_ROUND 16
#define ACCEPT_BACKOFF_NS (100 * 1000000)
#define SCRATCH_SIZE (256u * 1024u) /* the read buffer */

typedef struct local_ep {
    mpr__monitor *mon;
    mpr__poller *poller;
    mpr__ipc_listener listener;
    mpr__watch watch;
    int listening;
    int64_t paused_until; /* accepting stopped for a moment (descriptors) */
    unsigned char *scratch;
    unsigned char *window; /* rings read through a window (platform.h), one at a time */
} local_ep;

typedef struct local_conn {
    mpr__conn base; /* first: the monitor frees it */
    local_ep *ep;
    mpr__watch watch; /* the connection */
    mpr__fd shm;      /* the ring's handle, received with the PROOF, until mapped */
    int dropped;      /* a handle sent to us was dropped (our limit) */
    const char *why;  /* the handshake failed here, for the warning */
    mpr__wire wire;   /* the frame parser */
    uint64_t sync_left; /* route_until: connection bytes still to read */
    uint64_t sync_head; /* route_until: ring head to reach */
    mpr__ring ring;   /* ring mode */
} local_conn;

static const char CANNOT_ACCEPT[] = "cannot accept local connections";

static void conn_close(mpr__conn *c)
{
    local_conn *lc = (local_conn *)c;
    mpr__ring_unmap(&lc->ring, 1); /* also wakes a sender waiting for room */
    mpr__poller_del(lc->ep->poller, &lc->watch);
    /* Shut it down rather than only close our copy: a forked child may
     * hold one, and the sender must see the end now. */
    mpr__stream_shutdown_close(lc->watch.fd);
    mpr__fd_close(lc->shm);
}

/* ---- the handshake (called by the frame parser) ---- */

static int send_now(local_conn *lc, const void *p, size_t n)
{
    return mpr__stream_send_some(lc->watch.fd, p, n) == (long)n ? 0 : MPR_EIO;
}

/* The sinks never free the connection: they return an error, and the
 * connection ends in parse_failed (warned already, or with why). */
static int sink_hello(void *ctx, const unsigned char in[MPR__HELLO_SIZE])
{
    local_conn *lc = ctx;
    unsigned char challenge[MPR__CHALLENGE_SIZE];
    int rc = mpr__conn_hello(&lc->base, in, challenge);
    if (rc < 0)
        return MPR_EACCES; /* warned */
    if (send_now(lc, challenge, sizeof challenge) < 0) {
        lc->why = "could not answer the handshake";
        return MPR_EIO;
    }
    return 0;
}

static const mpr__conn_ops frames_ops, ring_ops;

/* The ring's handle that came with the PROOF, now the caller's. */
static mpr__fd take_shm(local_conn *lc)
{
    mpr__fd fd = lc->shm;
    lc->shm = MPR__NO_FD;
    return fd;
}

static int sink_proof(void *ctx, const unsigned char in[MPR__PROOF_SIZE])
{
    local_conn *lc = ctx;
    mpr__conn *c = &lc->base;
    uint32_t flags, status;
    if (mpr__conn_proof(c, in, &flags) < 0)
        return MPR_EACCES; /* warned */
    uint32_t mode = MPR__MODE_FRAMES;
    if (flags & ~MPR__PROOF_RING) {
        lc->why = "unsupported protocol version";
    } else if ((flags & MPR__PROOF_RING) && lc->shm >= 0) {
        if (mpr__ring_map(&lc->ring, take_shm(lc), lc->watch.fd, lc->ep->window, SCRATCH_SIZE) < 0)
            lc->why = "invalid shared-memory ring";
        else
            mode = MPR__MODE_RING;
    } else if (flags & MPR__PROOF_RING) {
        if (!lc->dropped)
            lc->why = "invalid shared-memory ring"; /* promised, not sent */
        else /* sent, but the system dropped it: we are at our descriptor limit */
            mpr__debug("router %p: %s: ring dropped at the descriptor limit; frames instead",
                       (void *)c->mon, c->peer);
    }
    mpr__fd_close(take_shm(lc)); /* not wanted */
    if (lc->why)
        return MPR_EPROTO; /* it proved the key but broke the protocol: no ACK */
    if (mpr__conn_accept(c, &status) < 0)
        return MPR_EACCES; /* warned */
    mpr__ack ack = {status, mode};
    unsigned char out[MPR__ACK_SIZE];
    mpr__ack_encode(out, &ack);
    if (send_now(lc, out, sizeof out) < 0 && status == MPR__ACK_OK)
        return MPR_EIO; /* authenticated: ends as a broken connection */
    if (status != MPR__ACK_OK)
        return MPR_EACCES;
    if (mode == MPR__MODE_RING)
        c->ops = &ring_ops;
    mpr__poller_set_always(lc->ep->poller, &lc->watch, 0);
    return (int)mode;
}

static unsigned char *sink_begin(void *ctx, uint32_t len, size_t avail)
{
    return mpr__msg_begin(ctx, len, len <= avail);
}

static void sink_end(void *ctx)
{
    mpr__msg_end(ctx);
}

/* route_until: n bytes of the connection have been read. */
static void sync_read(local_conn *lc, size_t n)
{
    if (!lc->base.sync_owed)
        return;
    lc->sync_left = n >= lc->sync_left ? 0 : lc->sync_left - n;
    if (lc->sync_left == 0)
        mpr__conn_synced(&lc->base);
}

static void end_of_stream(local_conn *lc)
{
    if (lc->wire.state == MPR__WIRE_CLOSED)
        lc->base.bye = 1; /* frames: BYE was the last word */
    lc->base.mid_frame = !mpr__wire_at_boundary(&lc->wire) && !lc->base.in_message;
    mpr__conn_end(&lc->base, 0);
}

/* The parser failed with rc: in the handshake, the monitor has warned
 * (or the connection broke the protocol after its proof); after it, the
 * connection is broken. */
static void parse_failed(local_conn *lc, int rc)
{
    mpr__conn *c = &lc->base;
    if (!c->in_handshake)
        mpr__conn_end(c, rc);
    else if (lc->why)
        mpr__conn_refused(c, lc->why);
    else if (rc == MPR_EACCES)
        mpr__conn_refused(c, NULL); /* the monitor has warned */
    else
        mpr__conn_refused(c, mpr_strerror(rc)); /* malformed: "protocol error" */
}

static void on_readable(mpr__watch *w)
{
    local_conn *lc = MPR__CONTAINER_OF(w, local_conn, watch);
    mpr__conn *c = &lc->base;
    unsigned char *scratch = lc->ep->scratch;
    mpr__wire_sink s = {c, sink_hello, sink_proof, sink_begin, sink_end};
    for (int round = 0; round < READS_PER_EVENT; round++) {
        long n;
        if (lc->wire.state == MPR__WIRE_BODY && c->big) {
            /* A large framed message: read straight into its chunk. */
            n = mpr__stream_recv(w->fd, lc->wire.body + lc->wire.body_have,
                                 lc->wire.body_len - lc->wire.body_have);
            if (n > 0) {
                sync_read(lc, (size_t)n);
                mpr__wire_body_written(&lc->wire, &s, (size_t)n);
                if (c->in_message)
                    mpr__msg_progress(c, lc->wire.body_have);
                continue;
            }
        } else {
            mpr__fd *shm = c->in_handshake && lc->wire.state == MPR__WIRE_PROOF ? &lc->shm : NULL;
            n = mpr__ipc_recv(w->fd, scratch, SCRATCH_SIZE, shm, shm ? &lc->dropped : NULL);
            if (n > 0) {
                sync_read(lc, (size_t)n);
                int rc = mpr__wire_feed(&lc->wire, &s, scratch, (size_t)n);
                if (rc < 0) {
                    parse_failed(lc, rc);
                    return;
                }
                if (lc->wire.state == MPR__WIRE_BODY && c->in_message)
                    mpr__msg_progress(c, lc->wire.body_have);
                if (lc->wire.state == MPR__WIRE_RAW) {
                    /* Wake-up bytes: the ring has data. */
                    mpr__conn_busy(c);
                    return;
                }
                if ((size_t)n < SCRATCH_SIZE)
                    break;
                continue;
            }
        }
        if (n == MPR_EAGAIN)
            break;
        /* The end of the stream (a reset is the same: the peer is gone). */
        end_of_stream(lc);
        return;
    }
}

static int frames_sync_mark(mpr__conn *c)
{
    local_conn *lc = (local_conn *)c;
    lc->sync_left = mpr__stream_unread(lc->watch.fd);
    return lc->sync_left > 0;
}

static const mpr__conn_ops frames_ops = {
    .drain = NULL,
    .sync_mark = frames_sync_mark,
    .final_drain = NULL,
    .close = conn_close,
};

/* ---- ring mode ---- */

/* Drain about budget bytes of the ring (it stops after the record that
 * reaches it). 1 if data is left, 0 if the ring is empty (and the sender
 * will wake us), or a negative error. */
static int ring_drain(mpr__conn *c, uint64_t budget)
{
    local_conn *lc = (local_conn *)c;
    mpr__ring *ring = &lc->ring;
    uint64_t start = ring->pos;
    int rc;
    for (;;) {
        mpr__ring_rec rec;
        rc = mpr__ring_peek(ring, &rec);
        if (rc == 0) {
            if (mpr__ring_try_sleep(ring))
                break;
            continue;
        }
        if (rc < 0)
            break;
        rc = mpr__conn_record(c, &rec);
        if (rc < 0)
            break;
        mpr__ring_take(ring, &rec);
        if (ring->pos - start >= budget) {
            rc = 1;
            break;
        }
    }
    if (ring->pos != start)
        mpr__ring_consumed(ring);
    if (c->sync_owed && (int64_t)(ring->pos - lc->sync_head) >= 0)
        mpr__conn_synced(c);
    return rc;
}

static int ring_sync_mark(mpr__conn *c)
{
    local_conn *lc = (local_conn *)c;
    lc->sync_head = mpr__ring_head(&lc->ring);
    return lc->sync_head != lc->ring.pos;
}

/* At the end of stream, everything the sender published before it went is
 * still in the ring: deliver it. At most one ring's worth: whoever else
 * still maps the ring cannot keep us here. */
static int ring_final_drain(mpr__conn *c)
{
    local_conn *lc = (local_conn *)c;
    int rc = ring_drain(c, lc->ring.cap);
    return rc < 0 ? rc : 0;
}

static const mpr__conn_ops ring_ops = {
    .drain = ring_drain,
    .sync_mark = ring_sync_mark,
    .final_drain = ring_final_drain,
    .close = conn_close,
};

/* ---- the endpoint ---- */

static void pause_accepting(local_ep *ep, const char *why)
{
    mpr__monitor_warn_limited(ep->mon, CANNOT_ACCEPT, why);
    if (ep->listening)
        mpr__poller_del(ep->poller, &ep->watch);
    ep->listening = 0;
    ep->paused_until = mpr__now_ns() + ACCEPT_BACKOFF_NS;
}

static void on_listen(mpr__watch *w)
{
    local_ep *ep = MPR__CONTAINER_OF(w, local_ep, watch);
    /* A few at a time: the endpoint stays readable (level-triggered) and
     * is served again next round, so a flood of connections never keeps
     * the monitor from the handshakes already under way. */
    for (int n = 0; n < ACCEPTS_PER_ROUND; n++) {
        if (!mpr__fd_room()) {
            /* Leave the application its descriptors: the connection waits
             * in the backlog (its sender in its handshake) until there are
             * some again. */
            pause_accepting(ep, "too few descriptors left for the application; waiting");
            return;
        }
        mpr__fd fd;
        mpr__ipc_peer who;
        int rc = mpr__ipc_accept(&ep->listener, &fd, &who);
        if (rc == MPR_EAGAIN)
            return;
        if (rc < 0) {
            pause_accepting(ep, mpr_strerror(rc));
            return;
        }
        char peer[32];
        snprintf(peer, sizeof peer, "pid %ld", who.pid);
        if (!who.same_user) {
            char why[64];
            snprintf(why, sizeof why, "uid %ld is not the router's", who.uid);
            mpr__monitor_refuse(ep->mon, peer, why);
            mpr__fd_close(fd);
            continue;
        }
        local_conn *lc = calloc(1, sizeof *lc);
        if (!lc) {
            mpr__monitor_refuse(ep->mon, peer, "out of memory");
            mpr__fd_close(fd);
            continue;
        }
        lc->ep = ep;
        lc->shm = MPR__NO_FD;
        lc->watch.on_event = on_readable;
        mpr__wire_init(&lc->wire, mpr__monitor_settings(ep->mon)->max_msg);
        /* Readable while throttled too: backpressure is for messages, not
         * for handshakes. */
        if (mpr__poller_add(ep->poller, &lc->watch, fd, 1) < 0) {
            mpr__monitor_refuse(ep->mon, peer, "cannot watch the connection");
            mpr__fd_close(fd);
            free(lc);
            continue;
        }
        mpr__conn_add(ep->mon, &lc->base, &frames_ops, peer);
    }
}

static void ep_close(void *state)
{
    local_ep *ep = state;
    if (!ep)
        return;
    if (ep->listening)
        mpr__poller_del(ep->poller, &ep->watch);
    mpr__ipc_unlisten(&ep->listener);
#if MPR__SHM_WINDOW
    free(ep->window);
#endif
    free(ep->scratch);
    free(ep);
}

static int ep_open(mpr__monitor *m, void **state)
{
    local_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return MPR_ENOMEM;
    *state = ep;
    ep->mon = m;
    ep->poller = mpr__monitor_poller(m);
    ep->listener.fd = MPR__NO_FD;
    ep->scratch = malloc(SCRATCH_SIZE);
#if MPR__SHM_WINDOW
    ep->window = malloc(SCRATCH_SIZE);
#else
    ep->window = ep->scratch; /* not used */
#endif
    if (!ep->scratch || !ep->window)
        return MPR_ENOMEM;
    char name[MPR__IPC_NAME_MAX + 1];
    int rc = mpr__ipc_listen(&ep->listener, name, sizeof name);
    if (rc < 0)
        return rc;
    ep->watch.on_event = on_listen;
    rc = mpr__poller_add(ep->poller, &ep->watch, ep->listener.fd, 1);
    if (rc < 0)
        return rc;
    ep->listening = 1;
    mpr__monitor_set_ipc_name(m, name);
    return 0;
}

static int64_t ep_tick(void *state, int64_t now)
{
    local_ep *ep = state;
    if (ep->paused_until && ep->paused_until <= now) {
        ep->paused_until = 0;
        ep->listening = mpr__poller_add(ep->poller, &ep->watch, ep->listener.fd, 1) == 0;
        if (!ep->listening)
            ep->paused_until = now + ACCEPT_BACKOFF_NS;
    }
    return ep->paused_until ? ep->paused_until : -1;
}

const mpr__endpoint_ops mpr__local_endpoint = {
    .name = "local",
    .open = ep_open,
    .tick = ep_tick,
    .sync = NULL,
    .close = ep_close,
};
