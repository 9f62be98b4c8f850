/*
 * monitor.c - the router's monitor thread: accepts sender connections,
 * checks who they are, moves their messages into the local queue and pings
 * the main thread.
 *
 * A connection goes through:
 *   accept   peer uid (SO_PEERCRED) must be the router's, else closed;
 *   HELLO    within the handshake timeout: an issued connection id with
 *            that pipe's key (derived from the router's secret), and in
 *            ring mode a sealed memfd (wire.h), else closed;
 *   messages frames on the socket (wire.c parses them), or records in the
 *            shared-memory ring, drained when the sender wakes us and in
 *            rounds of RING_BUDGET bytes so no sender starves the others;
 *   end      BYE then end of stream: normal. End of stream without BYE: the
 *            receiver gets a "sender lost" record after the sender's last
 *            message, and a half-written message is discarded with a
 *            warning. Any protocol error closes only that connection.
 *
 * Everything a peer sends is validated before use; nothing here blocks on
 * a peer (all sockets are non-blocking), so stop never waits for a worker.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "ring.h"
#include "router_p.h"

#define READS_PER_EVENT 4         /* fairness between socket connections */
#define RING_BUDGET (64u * 1024u) /* ring bytes per connection per round */
#define ACCEPT_BACKOFF_NS (100 * 1000000)

char mpr__listen_tag, mpr__wake_tag;

/* One sender connection; monitor thread only. */
struct conn {
    struct conn *prev, *next;       /* all connections */
    struct conn *hs_prev, *hs_next; /* waiting for HELLO, oldest first */
    struct conn *busy_next;         /* ring with data left after a round */
    mpr_router *router;
    int fd;
    int memfd;                      /* received with the HELLO, until mapped */
    int in_handshake;
    int busy;
    pid_t pid;
    uint32_t id;                    /* 0 until the HELLO is accepted */
    int64_t deadline_ns;            /* for the HELLO */
    mpr__wire wire;
    mpr__chunk *big;                /* dedicated chunk being filled */
    /* ring mode (ring.hdr != NULL) */
    mpr__ring ring;
    unsigned char *frag;            /* payload of the fragmented message */
    uint64_t frag_total, frag_have;
    int bye;
};

static void warn_conn(mpr_router *r, struct conn *c, const char *what)
{
    if (c->id)
        mpr__warn("router %p: pipe #%u: %s", (void *)r, c->id, what);
    else
        mpr__warn("router %p: rejected connection from pid %d: %s", (void *)r, (int)c->pid, what);
}

static void hs_unlink(mpr_router *r, struct conn *c)
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
}

static void busy_add(mpr_router *r, struct conn *c)
{
    if (c->busy)
        return;
    c->busy = 1;
    c->busy_next = r->busy;
    r->busy = c;
}

static void busy_remove(mpr_router *r, struct conn *c)
{
    if (!c->busy)
        return;
    for (struct conn **p = &r->busy; *p; p = &(*p)->busy_next) {
        if (*p == c) {
            *p = c->busy_next;
            break;
        }
    }
    c->busy = 0;
}

static void conn_close(mpr_router *r, struct conn *c)
{
    hs_unlink(r, c);
    busy_remove(r, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* Explicitly: a forked child may hold a copy of this descriptor, and
     * epoll forgets it only when every copy is closed. For the same reason
     * shut the socket down rather than only closing our copy: the sender
     * must see EPIPE now, not when the last forked child exits. */
    epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    if (c->memfd >= 0)
        close(c->memfd);
    mpr__ring_unmap(&c->ring, 1); /* also wakes a sender waiting for room */
    if (c->big)
        mpr__queue_free_dedicated(c->big);
    free(c);
}

/* Tell the receiver its sender went away (after its last message). */
static void push_lost(mpr_router *r, struct conn *c)
{
    if (!mpr__queue_reserve(&r->queue, c->id, MPR__REC_LOST, 0))
        mpr__log(MPR_LOG_ERROR, "router %p: pipe #%u: out of memory, sender-lost notice dropped",
                 (void *)r, c->id);
}

/* Space for a complete message of len bytes: in the shared chunk if small
 * and complete now, else a dedicated chunk (c->big) linked by finish_big. */
static unsigned char *message_space(struct conn *c, uint32_t len, int complete_now)
{
    if (len <= MPR__SMALL_MAX && complete_now)
        return mpr__queue_reserve(&c->router->queue, c->id, MPR__REC_MSG, len);
    unsigned char *payload;
    c->big = mpr__queue_dedicated(&c->router->queue, c->id, len, &payload);
    return c->big ? payload : NULL;
}

static void message_done(struct conn *c)
{
    mpr_router *r = c->router;
    r->mon_received++;
    if (c->big) {
        r->mon_flags |= mpr__queue_link(&r->queue, c->big);
        c->big = NULL;
    }
}

/* ---- HELLO and socket frames (wire.c calls these) ---- */

/* Does the HELLO carry the key of the pipe it names? */
static int key_matches(const mpr_router *r, const mpr__hello *h)
{
    unsigned char key[MPR__SECRET_SIZE];
    mpr__pipe_key(key, r->secret, h->conn_id);
    int ok = mpr__secret_equal(h->key, key);
    memset(key, 0, sizeof key);
    return ok;
}

static int sink_hello(void *ctx, const mpr__hello *h)
{
    struct conn *c = ctx;
    mpr_router *r = c->router;
    const char *why = NULL;
    int ring = (h->flags & MPR__HELLO_RING) != 0;
    if (h->version != MPR__WIRE_VERSION || (h->flags & ~MPR__HELLO_RING) != 0)
        why = "unsupported protocol version";
    else if (h->conn_id == 0 || h->conn_id > atomic_load(&r->last_id))
        why = "connection id never issued";
    else if (!key_matches(r, h))
        why = "wrong secret (not this pipe's key)";
    else if (ring && (c->memfd < 0 || mpr__ring_map(&c->ring, c->memfd) < 0))
        why = "invalid shared-memory ring";
    if (c->memfd >= 0) {
        close(c->memfd); /* mapped, or not wanted */
        c->memfd = -1;
    }
    if (why) {
        mpr__warn("router %p: rejected connection from pid %d claiming pipe #%u: %s", (void *)r,
                  (int)c->pid, h->conn_id, why);
        atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
        return MPR_EACCES;
    }
    unsigned char ack[MPR__ACK_SIZE];
    mpr__ack_encode(ack, r->max_msg);
    if (send(c->fd, ack, sizeof ack, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof ack) {
        mpr__warn("router %p: pipe #%u: could not answer the handshake", (void *)r, h->conn_id);
        atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
        return MPR_EIO;
    }
    hs_unlink(r, c);
    c->id = h->conn_id;
    atomic_fetch_add_explicit(&r->accepted, 1, memory_order_relaxed);
    return ring ? MPR__WIRE_RAW_MODE : 0;
}

static unsigned char *sink_begin(void *ctx, uint32_t len, size_t avail)
{
    return message_space(ctx, len, len <= avail);
}

static void sink_end(void *ctx)
{
    message_done(ctx);
}

/* ---- ring records ---- */

static int ring_record(struct conn *c, const mpr__ring_rec *rec)
{
    mpr_router *r = c->router;
    if (c->bye)
        return MPR_EPROTO; /* nothing may follow BYE */
    switch (rec->type) {
    case MPR__RING_MSG: {
        if (c->frag)
            return MPR_EPROTO;
        if (rec->len > r->max_msg)
            return MPR_EMSGSIZE;
        unsigned char *dst = message_space(c, rec->len, 1);
        if (!dst)
            return MPR_ENOMEM;
        memcpy(dst, rec->payload, rec->len);
        message_done(c);
        return 0;
    }
    case MPR__RING_FRAG_START:
        if (c->frag)
            return MPR_EPROTO;
        if (rec->total > r->max_msg)
            return MPR_EMSGSIZE;
        c->frag = message_space(c, (uint32_t)rec->total, 0);
        if (!c->frag)
            return MPR_ENOMEM;
        c->frag_total = rec->total;
        c->frag_have = 0;
        break;
    case MPR__RING_FRAG_DATA:
        if (!c->frag || rec->len > c->frag_total - c->frag_have)
            return MPR_EPROTO;
        memcpy(c->frag + c->frag_have, rec->payload, rec->len);
        c->frag_have += rec->len;
        break;
    case MPR__RING_PAD:
        return 0;
    case MPR__RING_BYE:
        if (c->frag)
            return MPR_EPROTO;
        c->bye = 1;
        return 0;
    default:
        return MPR_EPROTO;
    }
    if (c->frag_have == c->frag_total) {
        c->frag = NULL;
        message_done(c);
    }
    return 0;
}

/* Drain about budget bytes of the ring (it stops after the record that
 * reaches it). Returns 1 if data is left, 0 if the ring is empty (and the
 * sender will wake us), or a negative error. */
static int ring_drain(struct conn *c, uint64_t budget)
{
    mpr__ring *ring = &c->ring;
    uint64_t start = ring->pos;
    int rc;
    for (;;) {
        uint64_t head = atomic_load_explicit(&ring->hdr->head, memory_order_acquire);
        mpr__ring_rec rec;
        rc = mpr__ring_next(ring->data, ring->cap, ring->pos, head, &rec);
        if (rc == 0) {
            if (mpr__ring_try_sleep(ring))
                break;
            continue;
        }
        if (rc < 0)
            break;
        rc = ring_record(c, &rec);
        if (rc < 0)
            break;
        ring->pos += rec.size;
        if (ring->pos - start >= budget) {
            rc = 1;
            break;
        }
    }
    if (ring->pos != start)
        mpr__ring_consumed(ring);
    return rc;
}

/* ---- the end of a connection ---- */

/* Close a connection that failed (err < 0) or ended (err == 0), telling
 * the log and the receiver what happened. */
static void conn_end(mpr_router *r, struct conn *c, int err)
{
    if (c->in_handshake) {
        if (err != MPR_EACCES) { /* sink_hello has already warned */
            warn_conn(r, c, err ? mpr_strerror(err) : "closed before the handshake");
            atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
        }
        conn_close(r, c);
        return;
    }
    if (!err && c->ring.hdr) {
        /* Everything the sender published before it went is still in the
         * ring: deliver it. At most one ring's worth: whoever else still
         * maps the ring cannot keep us here. */
        int rc = ring_drain(c, c->ring.cap);
        if (rc < 0)
            err = rc;
    }
    int clean = c->ring.hdr ? c->bye : c->wire.state == MPR__WIRE_CLOSED;
    uint64_t have = 0, total = 0;
    if (c->frag) {
        have = c->frag_have;
        total = c->frag_total;
    } else if (c->wire.state == MPR__WIRE_BODY) {
        have = c->wire.body_have;
        total = c->wire.body_len;
    }
    int partial = c->frag || !mpr__wire_at_boundary(&c->wire);

    if (err) {
        char what[128];
        snprintf(what, sizeof what, "closing connection: %s", mpr_strerror(err));
        warn_conn(r, c, what);
        atomic_fetch_add_explicit(&r->broken, 1, memory_order_relaxed);
        push_lost(r, c);
    } else if (clean) {
        mpr__debug("router %p: pipe #%u: sender stopped", (void *)r, c->id);
    } else if (partial) {
        char what[160];
        snprintf(what, sizeof what,
                 "sender lost in the middle of a message; discarding %llu of %llu bytes",
                 (unsigned long long)have, (unsigned long long)total);
        warn_conn(r, c, what);
        atomic_fetch_add_explicit(&r->broken, 1, memory_order_relaxed);
        push_lost(r, c);
    } else {
        mpr__log(MPR_LOG_INFO, "router %p: pipe #%u: sender lost (connection ended without stop)",
                 (void *)r, c->id);
        push_lost(r, c);
    }
    conn_close(r, c);
}

/* ---- reading a connection ---- */

/* recv() that also takes descriptors passed with the bytes: the first is
 * kept in c->memfd while the HELLO is awaited, every other is closed. */
static ssize_t recv_conn(struct conn *c, void *buf, size_t len)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } control;
    struct iovec iov = {buf, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (c->in_handshake && c->memfd < 0)
                c->memfd = fd;
            else
                close(fd);
        }
    }
    return n;
}

static void conn_readable(mpr_router *r, struct conn *c)
{
    mpr__wire_sink s = {c, sink_hello, sink_begin, sink_end};
    for (int round = 0; round < READS_PER_EVENT; round++) {
        ssize_t n;
        if (c->wire.state == MPR__WIRE_BODY && c->big) {
            /* A large framed message: read straight into its chunk. */
            n = read(c->fd, c->wire.body + c->wire.body_have, c->wire.body_len - c->wire.body_have);
            if (n > 0) {
                mpr__wire_body_written(&c->wire, &s, (size_t)n);
                continue;
            }
        } else {
            n = recv_conn(c, r->scratch, MPR__SCRATCH_SIZE);
            if (n > 0) {
                int rc = mpr__wire_feed(&c->wire, &s, r->scratch, (size_t)n);
                if (rc < 0) {
                    conn_end(r, c, rc);
                    return;
                }
                if (c->ring.hdr) {
                    /* Wake-up bytes: the ring has data. */
                    busy_add(r, c);
                    return;
                }
                if ((size_t)n < MPR__SCRATCH_SIZE)
                    return;
                continue;
            }
        }
        if (n == 0) {
            conn_end(r, c, 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        /* ECONNRESET and friends: the peer is gone, like an end of stream. */
        conn_end(r, c, 0);
        return;
    }
}

/* One round over the rings with data left; returns 1 if any still has. */
static int drain_busy(mpr_router *r)
{
    struct conn *list = r->busy;
    r->busy = NULL;
    while (list) {
        struct conn *c = list;
        list = c->busy_next;
        c->busy = 0;
        int rc = ring_drain(c, RING_BUDGET);
        if (rc < 0) {
            conn_end(r, c, rc);
        } else if (rc > 0) {
            busy_add(r, c);
        }
    }
    return r->busy != NULL;
}

static void accept_all(mpr_router *r)
{
    for (;;) {
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment instead
                 * of spinning on the ever-readable listening socket. */
                mpr__warn("router %p: cannot accept connections: %s; retrying in 100 ms",
                          (void *)r, mpr_strerror(-errno));
                epoll_ctl(r->epfd, EPOLL_CTL_DEL, r->listen_fd, NULL);
                epoll_ctl(r->throttle_epfd, EPOLL_CTL_DEL, r->listen_fd, NULL);
                r->accept_paused_until = mpr__now_ns() + ACCEPT_BACKOFF_NS;
            }
            return;
        }
        struct ucred cred = {0, (uid_t)-1, (gid_t)-1};
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != r->uid) {
            mpr__warn("router %p: rejected connection from pid %d: uid %d is not the router's",
                      (void *)r, (int)cred.pid, (int)cred.uid);
            atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
            close(fd);
            continue;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            mpr__log(MPR_LOG_ERROR, "router %p: out of memory, connection from pid %d dropped",
                     (void *)r, (int)cred.pid);
            close(fd);
            continue;
        }
        c->router = r;
        c->fd = fd;
        c->memfd = -1;
        c->pid = cred.pid;
        c->deadline_ns = mpr__now_ns() + r->handshake_ns;
        mpr__wire_init(&c->wire, r->max_msg);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            mpr__log(MPR_LOG_ERROR, "router %p: epoll: %s; connection from pid %d dropped",
                     (void *)r, mpr_strerror(-errno), (int)cred.pid);
            close(fd);
            free(c);
            continue;
        }
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
    }
}

/* Close connections that did not finish their HELLO in time; returns the
 * epoll timeout (ms) until the next deadline, or -1. */
static int expire(mpr_router *r)
{
    int64_t now = mpr__now_ns();
    while (r->hs_head && r->hs_head->deadline_ns <= now) {
        struct conn *c = r->hs_head;
        char what[64];
        snprintf(what, sizeof what, "no handshake within %.3g s", (double)r->handshake_ns / 1e9);
        warn_conn(r, c, what);
        atomic_fetch_add_explicit(&r->rejected, 1, memory_order_relaxed);
        conn_close(r, c);
    }
    int64_t next = r->hs_head ? r->hs_head->deadline_ns : -1;
    if (r->accept_paused_until) {
        if (r->accept_paused_until <= now) {
            r->accept_paused_until = 0;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &mpr__listen_tag};
            epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->listen_fd, &ev);
            epoll_ctl(r->throttle_epfd, EPOLL_CTL_ADD, r->listen_fd, &ev);
        } else if (next < 0 || r->accept_paused_until < next) {
            next = r->accept_paused_until;
        }
    }
    if (next < 0)
        return -1;
    int64_t ms = (next - now + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

void *mpr__monitor_main(void *arg)
{
    mpr_router *r = arg;
    const mpr_event_loop *loop = r->loop;
    loop->pinger_connect(r->monitor_pinger);
    int throttled = 0;
    struct epoll_event evs[64];

    while (!atomic_load(&r->stopping)) {
        int timeout = expire(r);
        if (r->busy && !throttled)
            timeout = 0;
        int n = epoll_wait(throttled ? r->throttle_epfd : r->epfd, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            mpr__log(MPR_LOG_ERROR, "router %p: epoll_wait: %s", (void *)r, mpr_strerror(-errno));
            break;
        }
        r->mon_flags = 0;
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &mpr__wake_tag) {
                uint64_t v;
                ssize_t rc = read(r->wake_fd, &v, sizeof v);
                (void)rc; /* only a wake-up; the stop flag says the rest */
            } else if (tag == &mpr__listen_tag) {
                accept_all(r);
            } else {
                conn_readable(r, tag);
            }
        }
        if (!throttled)
            drain_busy(r);
        int flags = r->mon_flags | mpr__queue_commit(&r->queue);
        if ((flags & MPR__Q_PING) && !atomic_load(&r->manual)) {
            atomic_fetch_add_explicit(&r->pings, 1, memory_order_relaxed);
            loop->pinger_ping(r->monitor_pinger);
        }
        int was_throttled = throttled;
        throttled = (flags & MPR__Q_THROTTLED) != 0;
        if (was_throttled && !throttled) {
            /* Rings were not drained meanwhile: look at all of them. */
            for (struct conn *c = r->conns; c; c = c->next)
                if (c->ring.hdr)
                    busy_add(r, c);
        }
        atomic_store_explicit(&r->received, r->mon_received, memory_order_relaxed);
    }

    while (r->conns)
        conn_close(r, r->conns);
    loop->pinger_disconnect(r->monitor_pinger);
    loop->pinger_free(r->monitor_pinger);
    r->monitor_pinger = NULL;
    return NULL;
}
