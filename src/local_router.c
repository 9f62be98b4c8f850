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
 * The way back (router -> sender, wire.h) goes as items on the connection
 * from an output buffer of the connection's own, a few messages at a time
 * (the pipe's bound counts them until they are written); a connection
 * whose sender does not read is tried again on a timer, backing off. In
 * ring mode the cancel tag goes into the ring's header instead (the
 * sender reads it without a system call).
 *
 * Connections are accepted a few a round, and only while the process
 * keeps its descriptor headroom (MPR__FD_HEADROOM) and fewer than
 * MPR__MAX_HANDSHAKES wait for their handshake: otherwise accepting
 * pauses (for a moment; until a handshake ends or a silent connection is
 * dropped) and new connections wait in the backlog (their senders in
 * their handshake). A ring the system had to drop at our
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
#define OUT_SOFT (64u * 1024u)      /* the way back: take no more messages beyond this */
#define OUT_MARKS 256               /* ... nor more than this many at once */
#define RETRY_MIN_NS (1 * 1000000)  /* a sender that does not read: try again after this, */
#define RETRY_MAX_NS (64 * 1000000) /* doubling up to this */

typedef struct local_ep {
    mpr__monitor *mon;
    mpr__poller *poller;
    mpr__ipc_listener listener;
    mpr__watch watch;
    int listening;
    int64_t paused_until; /* accepting stopped for a moment (descriptors) */
    int hs_full;          /* accepting stopped until a handshake ends (or ... */
    int64_t hs_retry_at;  /* ... a silent one can be dropped then, if >= 0) */
    unsigned char *scratch;
    unsigned char *window; /* rings read through a window (platform.h), one at a time */
    struct local_conn *blocked; /* connections with output their sender does not read */
} local_ep;

typedef struct local_conn local_conn;
struct local_conn {
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
    /* the way back */
    unsigned char *out;   /* items to write */
    size_t out_off, out_len, out_cap;
    struct {
        size_t end;       /* a message's item ends here in out */
        size_t size;      /* its bytes, released when written */
    } marks[OUT_MARKS];
    unsigned mark_head, nmarks;
    size_t cancel_at;     /* out offset + 1 of an unwritten CANCEL item, or 0 */
    size_t inflight;      /* frames mode: message bytes taken for the sender, not yet TOOK */
    uint64_t tag_sent;
    int out_broken;       /* writing failed: the connection is ending */
    local_conn *blocked_next;
    int is_blocked;
    int64_t retry_at, retry_ns;
};

static const char CANNOT_ACCEPT[] = "cannot accept local connections";

static void unblock(local_conn *lc)
{
    if (!lc->is_blocked)
        return;
    for (local_conn **p = &lc->ep->blocked; *p; p = &(*p)->blocked_next) {
        if (*p == lc) {
            *p = lc->blocked_next;
            break;
        }
    }
    lc->is_blocked = 0;
}

static void conn_close(mpr__conn *c)
{
    local_conn *lc = (local_conn *)c;
    unblock(lc);
    free(lc->out);
    lc->out = NULL;
    mpr__ring_unmap(&lc->ring, 1); /* also wakes a sender waiting for room */
    mpr__poller_del(lc->ep->poller, &lc->watch);
    /* Shut it down rather than only close our copy: a forked child may
     * hold one, and the sender must see the end now. */
    mpr__stream_shutdown_close(lc->watch.fd);
    mpr__fd_close(lc->shm);
}

/* ---- the way back ---- */

static int out_reserve(local_conn *lc, size_t n)
{
    if (lc->out_len + n <= lc->out_cap)
        return 0;
    if (lc->out_off > 0) { /* move what is left to the front */
        memmove(lc->out, lc->out + lc->out_off, lc->out_len - lc->out_off);
        for (unsigned i = 0; i < lc->nmarks; i++)
            lc->marks[(lc->mark_head + i) % OUT_MARKS].end -= lc->out_off;
        if (lc->cancel_at)
            lc->cancel_at -= lc->out_off;
        lc->out_len -= lc->out_off;
        lc->out_off = 0;
        if (lc->out_len + n <= lc->out_cap)
            return 0;
    }
    size_t cap = lc->out_cap ? lc->out_cap : 4096;
    while (cap < lc->out_len + n)
        cap *= 2;
    unsigned char *p = realloc(lc->out, cap);
    if (!p)
        return MPR_ENOMEM;
    lc->out = p;
    lc->out_cap = cap;
    return 0;
}

/* Write what the connection takes now; release the messages written. */
static void out_flush(local_conn *lc)
{
    while (lc->out_off < lc->out_len) {
        long n = mpr__stream_send_some(lc->watch.fd, lc->out + lc->out_off,
                                       lc->out_len - lc->out_off);
        if (n == MPR_EAGAIN)
            break;
        if (n < 0) {
            /* The sender has gone: its end of stream ends the connection
             * (on_readable). What is left is dropped. */
            lc->out_broken = 1;
            lc->out_off = lc->out_len = 0;
            lc->cancel_at = 0;
            break;
        }
        lc->out_off += (size_t)n;
    }
    size_t released = 0;
    while (lc->nmarks > 0 &&
           (lc->out_broken || lc->marks[lc->mark_head].end <= lc->out_off)) {
        /* Ring mode: a message written is the sender's; frames mode: it
         * counts until TOOK (sink_took). */
        if (lc->ring.cap)
            released += lc->marks[lc->mark_head].size;
        lc->mark_head = (lc->mark_head + 1) % OUT_MARKS;
        lc->nmarks--;
    }
    if (released)
        mpr__conn_ctl_release(&lc->base, released);
    if (lc->cancel_at && lc->cancel_at <= lc->out_off)
        lc->cancel_at = 0; /* (being) written: a newer tag is a new item */
    if (lc->out_off == lc->out_len)
        lc->out_off = lc->out_len = 0;
}

/* Take what the pipe has queued (within OUT_SOFT and OUT_MARKS), write,
 * and again while the connection takes it all. 0, or MPR_ENOMEM (the
 * caller ends the connection: its sender would miss a message in the
 * middle of its stream). */
static int out_pump(local_conn *lc)
{
    if (lc->out_broken)
        return 0;
    for (;;) {
        int took = 0;
        while (lc->out_len - lc->out_off < OUT_SOFT && lc->nmarks < OUT_MARKS &&
               (lc->ring.cap || lc->inflight < MPR_CONTROL_QUEUE_SIZE)) {
            mpr__ctl_msg *m = mpr__conn_ctl_take(&lc->base);
            if (!m)
                break;
            if (out_reserve(lc, MPR__CTL_MSG_HDR + m->size) < 0) {
                mpr__conn_ctl_release(&lc->base, m->size);
                free(m);
                lc->out_broken = 1;
                return MPR_ENOMEM;
            }
            mpr__ctl_msg_header(lc->out + lc->out_len, (uint32_t)m->size);
            if (m->size)
                memcpy(lc->out + lc->out_len + MPR__CTL_MSG_HDR, m->data, m->size);
            lc->out_len += MPR__CTL_MSG_HDR + m->size;
            lc->marks[(lc->mark_head + lc->nmarks) % OUT_MARKS].end = lc->out_len;
            lc->marks[(lc->mark_head + lc->nmarks) % OUT_MARKS].size = m->size;
            lc->nmarks++;
            if (!lc->ring.cap)
                lc->inflight += m->size;
            free(m);
            took = 1;
        }
        const size_t pending = lc->out_len;
        out_flush(lc);
        /* Written out in full: take more, unless there was nothing. */
        if (lc->out_len > 0 || (!took && pending == 0))
            break;
    }
    if (lc->out_len > 0 && !lc->out_broken && !lc->is_blocked) {
        /* Its sender does not read now: try again later. */
        lc->is_blocked = 1;
        lc->retry_ns = RETRY_MIN_NS;
        lc->retry_at = mpr__now_ns() + lc->retry_ns;
        lc->blocked_next = lc->ep->blocked;
        lc->ep->blocked = lc;
    } else if (lc->out_len == 0) {
        unblock(lc);
    }
    return 0;
}

/* The monitor: the pipe has a new cancel tag or messages. */
static void conn_control(mpr__conn *c)
{
    local_conn *lc = (local_conn *)c;
    uint64_t tag = mpr__conn_ctl_tag(c);
    if (tag && tag != lc->tag_sent && !lc->out_broken) {
        lc->tag_sent = tag;
        if (lc->ring.cap) {
            mpr__ring_set_cancel(&lc->ring, tag); /* read without a system call */
        } else if (lc->cancel_at) {
            mpr__ctl_cancel_item(lc->out + lc->cancel_at - 1, tag); /* not yet written: newer */
        } else if (out_reserve(lc, 9) == 0) {
            mpr__ctl_cancel_item(lc->out + lc->out_len, tag);
            lc->cancel_at = lc->out_len + 1;
            lc->out_len += 9;
        } else {
            lc->out_broken = 1;
            mpr__conn_end(c, MPR_ENOMEM);
            return;
        }
    }
    int rc = out_pump(lc);
    if (rc < 0)
        mpr__conn_end(c, rc);
}

/* Without futexes: the ring has room; tell its writer, unless other items
 * are on their way (it reads those, and wakes). */
static void wake_writer_conn(void *arg)
{
    local_conn *lc = arg;
    if (lc->out_len == 0 && !lc->out_broken) {
        unsigned char room = MPR__CTL_ROOM;
        mpr__stream_send_some(lc->watch.fd, &room, 1); /* full: it has items to read anyway */
    }
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
        if (mpr__ring_map(&lc->ring, take_shm(lc), lc->watch.fd, lc->ep->window, SCRATCH_SIZE) < 0) {
            lc->why = "invalid shared-memory ring";
        } else {
            mode = MPR__MODE_RING;
            lc->ring.wake_conn = wake_writer_conn;
            lc->ring.conn_arg = lc;
        }
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

/* Frames mode: the sender's application took n bytes of control messages:
 * they leave the pipe's account, and more may follow. More than was
 * written is a protocol error. */
static int sink_took(void *ctx, uint32_t n)
{
    local_conn *lc = ctx;
    if (lc->ring.cap || n > lc->inflight)
        return MPR_EPROTO;
    lc->inflight -= n;
    mpr__conn_ctl_release(&lc->base, n);
    return out_pump(lc);
}

/* route_until: n bytes of the connection have been read. In ring mode
 * they are only wake-ups (the messages are in the ring, and ring_drain
 * says when it has read as far as the sync's mark): they settle nothing. */
static void sync_read(local_conn *lc, size_t n)
{
    if (!lc->base.sync_owed || lc->wire.state == MPR__WIRE_RAW)
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
    mpr__wire_sink s = {c, sink_hello, sink_proof, sink_begin, sink_end, sink_took};
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
    .control = conn_control,
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
    .control = conn_control,
};

/* ---- the endpoint ---- */

static void stop_listening(local_ep *ep)
{
    if (ep->listening)
        mpr__poller_del(ep->poller, &ep->watch);
    ep->listening = 0;
}

static void pause_accepting(local_ep *ep, const char *why)
{
    mpr__monitor_warn_limited(ep->mon, CANNOT_ACCEPT, why);
    stop_listening(ep);
    ep->paused_until = mpr__now_ns() + ACCEPT_BACKOFF_NS;
}

static void on_listen(mpr__watch *w)
{
    local_ep *ep = MPR__CONTAINER_OF(w, local_ep, watch);
    /* A few at a time: the endpoint stays readable (level-triggered) and
     * is served again next round, so a flood of connections never keeps
     * the monitor from the handshakes already under way. */
    for (int n = 0; n < ACCEPTS_PER_ROUND; n++) {
        if (!mpr__monitor_handshake_room(ep->mon, &frames_ops, mpr__now_ns(), &ep->hs_retry_at)) {
            /* As many wait for their handshake as may: the next waits in
             * the backlog (its sender in its handshake) until one ends. */
            stop_listening(ep);
            ep->hs_full = 1;
            return;
        }
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
    if (ep->paused_until && ep->paused_until <= now)
        ep->paused_until = 0;
    if (ep->hs_full && mpr__monitor_handshake_room(ep->mon, &frames_ops, now, &ep->hs_retry_at))
        ep->hs_full = 0;
    if (!ep->listening && !ep->paused_until && !ep->hs_full && ep->listener.fd != MPR__NO_FD) {
        ep->listening = mpr__poller_add(ep->poller, &ep->watch, ep->listener.fd, 1) == 0;
        if (!ep->listening)
            ep->paused_until = now + ACCEPT_BACKOFF_NS;
    }
    int64_t next = ep->paused_until ? ep->paused_until : -1;
    if (ep->hs_full && ep->hs_retry_at >= 0 && (next < 0 || ep->hs_retry_at < next))
        next = ep->hs_retry_at;
    /* The way back to senders that did not read. */
    for (local_conn *lc = ep->blocked, *after; lc; lc = after) {
        after = lc->blocked_next;
        if (lc->retry_at <= now) {
            size_t before = lc->out_off;
            int rc = out_pump(lc); /* may unblock it */
            if (rc < 0) {
                mpr__conn_end(&lc->base, rc); /* frees lc */
                continue;
            }
            if (!lc->is_blocked)
                continue;
            /* Back off while it reads nothing; start over when it reads. */
            if (lc->out_off != before)
                lc->retry_ns = RETRY_MIN_NS;
            else if ((lc->retry_ns *= 2) > RETRY_MAX_NS)
                lc->retry_ns = RETRY_MAX_NS;
            lc->retry_at = now + lc->retry_ns;
        }
        if (next < 0 || lc->retry_at < next)
            next = lc->retry_at;
    }
    return next;
}

const mpr__endpoint_ops mpr__local_endpoint = {
    .name = "local",
    .open = ep_open,
    .tick = ep_tick,
    .sync = NULL,
    .close = ep_close,
};
