/*
 * transport_socket.c - the AF_UNIX endpoint of the router and the socket
 * transport: both ends of the local handshake, and messages as frames on
 * the socket (wire.h). The ring transport (transport_ring.c) rides on the
 * same connection.
 *
 * Router side: a listening abstract socket with a fresh random name per
 * start. A connection must come from the router's own uid (SO_PEERCRED);
 * the monitor then runs the handshake (HELLO, CHALLENGE, PROOF, ACK) and
 * frames are parsed by wire.c. Before taking a descriptor the monitor
 * makes sure the process keeps FD_HEADROOM descriptors (monitor.c); a ring
 * memfd the kernel had to drop (MSG_CTRUNC: our descriptor limit) makes the
 * connection fall back to frames instead of failing.
 *
 * Sender side: connect, check that the peer runs as our uid and proves it
 * holds the pipe's key, hand over the ring (or not), then frames: one
 * sendmsg(MSG_NOSIGNAL) each.
 */
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <linux/sockios.h>
#include <unistd.h>

#include "internal.h"
#include "ring.h"
#include "router_p.h"
#include "sender_p.h"

#define READS_PER_EVENT 4 /* fairness between socket connections */
#define ACCEPTS_PER_ROUND 16
#define ACCEPT_BACKOFF_NS (100 * 1000000)
#define HANDSHAKE_TIMEOUT_NS ((int64_t)10 * 1000000000) /* the sender's wait for answers */

static socklen_t abstract_addr(struct sockaddr_un *addr, const char *name)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(addr->sun_path + 1, name, len); /* abstract: sun_path[0] == 0 */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

/* ==================================================================== */
/* router side                                                          */

typedef struct socket_ep {
    mpr__watch listen;
    int64_t paused_until; /* accepting stopped for a moment (out of descriptors) */
    mpr__ratelimit rl;    /* "cannot accept" warnings */
} socket_ep;

static const mpr__conn_ops frames_conn_ops;
static const char ACCEPT_FAILURES[] = "accept failures";

void mpr__local_close(mpr__conn *c)
{
    mpr__local_conn *lc = (mpr__local_conn *)c;
    mpr__watch_del(c->router, &lc->watch);
    /* Shut the socket down rather than only closing our copy: a forked
     * child may hold one, and the sender must see EPIPE now, not when the
     * last such child exits. */
    shutdown(lc->watch.fd, SHUT_RDWR);
    close(lc->watch.fd);
    if (lc->memfd >= 0)
        close(lc->memfd);
}

/* ---- the handshake and frames, called by the parser ---- */

static int send_now(mpr__local_conn *lc, const void *p, size_t n)
{
    return send(lc->watch.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n ? 0 : MPR_EIO;
}

static int sink_hello(void *ctx, const mpr__hello *h)
{
    mpr__local_conn *lc = ctx;
    unsigned char challenge[MPR__CHALLENGE_SIZE];
    int rc = mpr__hs_hello(&lc->base, h, challenge);
    if (rc == 0 && send_now(lc, challenge, sizeof challenge) < 0) {
        mpr__reject_warn(lc->base.router, lc->base.peer, h->conn_id,
                         "could not answer the handshake");
        rc = MPR_EACCES;
    }
    return rc;
}

static int sink_proof(void *ctx, const mpr__proof *p)
{
    mpr__local_conn *lc = ctx;
    mpr__conn *c = &lc->base;
    mpr_router *r = c->router;
    uint32_t mode = MPR__MODE_FRAMES;
    if (p->flags & ~MPR__PROOF_RING) {
        mpr__reject_warn(r, c->peer, c->claimed, "unsupported protocol version");
        return MPR_EACCES;
    }
    if (p->flags & MPR__PROOF_RING) {
        if (lc->memfd >= 0) {
            if (mpr__ring_map(&lc->ring, lc->memfd) < 0) {
                mpr__reject_warn(r, c->peer, c->claimed, "invalid shared-memory ring");
                return MPR_EACCES;
            }
            mode = MPR__MODE_RING;
        } else if (!lc->ctrunc) {
            mpr__reject_warn(r, c->peer, c->claimed, "invalid shared-memory ring");
            return MPR_EACCES;
        } else {
            /* Sent, but the kernel dropped it: we are at our descriptor
             * limit. The sender falls back to frames. */
            mpr__debug("router %p: %s: ring dropped at the descriptor limit; frames instead",
                       (void *)r, c->peer);
        }
    }
    if (lc->memfd >= 0) {
        close(lc->memfd); /* mapped, or not wanted */
        lc->memfd = -1;
    }
    uint32_t status;
    int rc = mpr__hs_proof(c, p, &status);
    if (rc < 0)
        return rc;
    mpr__ack ack = {status, mode};
    unsigned char out[MPR__ACK_SIZE];
    mpr__ack_encode(out, &ack);
    if (send_now(lc, out, sizeof out) < 0 && status == MPR__ACK_OK)
        return MPR_EIO; /* authenticated: ends as a broken connection */
    if (status != MPR__ACK_OK)
        return MPR_EACCES; /* warned by mpr__hs_proof */
    if (mode == MPR__MODE_RING)
        c->ops = &mpr__ring_conn_ops;
    mpr__watch_set_throttle(r, &lc->watch, 0);
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

/* recvmsg() that also takes descriptors passed with the bytes: the first
 * one that comes with the PROOF is kept, every other is closed. */
static ssize_t recv_conn(mpr__local_conn *lc, void *buf, size_t len)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } control;
    struct iovec iov = {buf, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n = recvmsg(lc->watch.fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    int want = lc->base.in_handshake && lc->wire.state == MPR__WIRE_PROOF;
    if (msg.msg_flags & MSG_CTRUNC)
        lc->ctrunc = want;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (want && lc->memfd < 0)
                lc->memfd = fd;
            else
                close(fd);
        }
    }
    return n;
}

/* route_until: n bytes of the socket have been read. */
static void sync_read(mpr__local_conn *lc, size_t n)
{
    if (!lc->base.sync_owed)
        return;
    lc->sync_left = n >= lc->sync_left ? 0 : lc->sync_left - n;
    if (lc->sync_left == 0)
        mpr__conn_synced(&lc->base);
}

static void end_of_stream(mpr__local_conn *lc)
{
    if (lc->wire.state == MPR__WIRE_CLOSED)
        lc->base.bye = 1; /* frames: BYE was the last word */
    lc->base.mid_frame = !mpr__wire_at_boundary(&lc->wire) && !lc->base.in_message;
    mpr__conn_end(&lc->base, 0);
}

static void on_readable(mpr_router *r, mpr__watch *w)
{
    mpr__local_conn *lc = (mpr__local_conn *)((char *)w - offsetof(mpr__local_conn, watch));
    mpr__conn *c = &lc->base;
    mpr__wire_sink s = {c, sink_hello, sink_proof, sink_begin, sink_end};
    for (int round = 0; round < READS_PER_EVENT; round++) {
        ssize_t n;
        if (lc->wire.state == MPR__WIRE_BODY && c->big) {
            /* A large framed message: read straight into its chunk. */
            n = read(w->fd, lc->wire.body + lc->wire.body_have,
                     lc->wire.body_len - lc->wire.body_have);
            if (n > 0) {
                sync_read(lc, (size_t)n);
                mpr__wire_body_written(&lc->wire, &s, (size_t)n);
                if (c->in_message)
                    mpr__msg_progress(c, lc->wire.body_have);
                continue;
            }
        } else {
            n = recv_conn(lc, r->scratch, MPR__SCRATCH_SIZE);
            if (n > 0) {
                sync_read(lc, (size_t)n);
                int rc = mpr__wire_feed(&lc->wire, &s, r->scratch, (size_t)n);
                if (rc < 0) {
                    mpr__conn_end(c, rc);
                    return;
                }
                if (lc->wire.state == MPR__WIRE_BODY && c->in_message)
                    mpr__msg_progress(c, lc->wire.body_have);
                if (lc->wire.state == MPR__WIRE_RAW) {
                    /* Wake-up bytes: the ring has data. */
                    mpr__conn_busy(c);
                    return;
                }
                if ((size_t)n < MPR__SCRATCH_SIZE)
                    break;
                continue;
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* The end of stream; ECONNRESET and friends are the same: the peer
         * is gone. */
        end_of_stream(lc);
        return;
    }
}

static int frames_sync_mark(mpr__conn *c)
{
    mpr__local_conn *lc = (mpr__local_conn *)c;
    int n = 0;
    if (ioctl(lc->watch.fd, SIOCINQ, &n) < 0 || n <= 0)
        return 0;
    lc->sync_left = (uint64_t)n;
    return 1;
}

static const mpr__conn_ops frames_conn_ops = {
    .drain = NULL,
    .sync_mark = frames_sync_mark,
    .close = mpr__local_close,
    .final_drain = NULL,
};

/* ---- the endpoint ---- */

static void pause_accepting(mpr_router *r, socket_ep *ep, const char *why)
{
    if (mpr__rl_allow(r, &ep->rl, ACCEPT_FAILURES, why))
        mpr__warn("router %p: cannot accept connections: %s; retrying in 100 ms", (void *)r, why);
    mpr__watch_del(r, &ep->listen);
    ep->paused_until = mpr__now_ns() + ACCEPT_BACKOFF_NS;
}

static void on_listen(mpr_router *r, mpr__watch *w)
{
    socket_ep *ep = (socket_ep *)w;
    /* A few at a time: the listening socket stays readable (level-
     * triggered) and is served again next round, so a flood of connections
     * never keeps the monitor from the handshakes already under way. */
    for (int n = 0; n < ACCEPTS_PER_ROUND; n++) {
        if (!mpr__fd_room(w->fd)) {
            /* Leave the application its descriptors: the connection waits
             * in the backlog (its sender in its handshake) until there are
             * descriptors again. */
            pause_accepting(r, ep, "too few descriptors left for the application");
            return;
        }
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_accepting(r, ep, mpr_strerror(mpr__syserr()));
            return;
        }
        struct ucred cred = {0, (uid_t)-1, (gid_t)-1};
        socklen_t len = sizeof cred;
        char peer[32];
        int got = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
        snprintf(peer, sizeof peer, "pid %d", (int)cred.pid);
        if (!got || cred.uid != r->uid) {
            char why[64];
            snprintf(why, sizeof why, "uid %d is not the router's", (int)cred.uid);
            mpr__reject_warn(r, peer, 0, why);
            close(fd);
            continue;
        }
        mpr__local_conn *lc = calloc(1, sizeof *lc);
        if (!lc) {
            mpr__reject_warn(r, peer, 0, "out of memory");
            close(fd);
            continue;
        }
        lc->memfd = -1;
        lc->watch.on_event = on_readable;
        mpr__wire_init(&lc->wire, r->max_msg);
        /* Readable while throttled too: backpressure is for messages, not
         * for handshakes. */
        if (mpr__watch_add(r, &lc->watch, fd, 1) < 0) {
            mpr__reject_warn(r, peer, 0, "cannot watch the connection");
            close(fd);
            free(lc);
            continue;
        }
        mpr__conn_add(r, &lc->base, &frames_conn_ops, peer);
    }
}

static int socket_open(mpr_router *r)
{
    socket_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return MPR_ENOMEM;
    ep->listen.fd = -1;
    r->socket_ep = ep;
    unsigned char rnd[8];
    int rc = mpr__random(rnd, sizeof rnd);
    if (rc < 0)
        return rc;
    snprintf(r->name, sizeof r->name, "mprouter-%d-%02x%02x%02x%02x%02x%02x%02x%02x", (int)getpid(),
             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mpr__syserr();
    ep->listen.fd = fd;
    ep->listen.on_event = on_listen;
    struct sockaddr_un addr;
    socklen_t alen = abstract_addr(&addr, r->name);
    if (bind(fd, (struct sockaddr *)&addr, alen) < 0 || listen(fd, SOMAXCONN) < 0)
        return mpr__syserr();
    return mpr__watch_add(r, &ep->listen, fd, 1);
}

static int64_t socket_tick(mpr_router *r, int64_t now)
{
    socket_ep *ep = r->socket_ep;
    int64_t next = mpr__rl_flush(r, &ep->rl, ACCEPT_FAILURES, now);
    if (ep->paused_until && ep->paused_until <= now) {
        ep->paused_until = 0;
        mpr__watch_add(r, &ep->listen, ep->listen.fd, 1);
    }
    if (ep->paused_until && (next < 0 || ep->paused_until < next))
        next = ep->paused_until;
    return next;
}

static void socket_close(mpr_router *r)
{
    socket_ep *ep = r->socket_ep;
    if (!ep)
        return;
    if (ep->listen.fd >= 0) {
        /* A child forked while the router ran holds a copy of the
         * listening socket; shut it down so that connecting after stop is
         * refused. Connections still in the backlog would then wait there
         * for as long as that copy lives: take them and hang up, so their
         * senders learn at once. */
        shutdown(ep->listen.fd, SHUT_RDWR);
        int fd;
        while ((fd = accept4(ep->listen.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0 ||
               errno == EINTR) {
            if (fd >= 0) {
                shutdown(fd, SHUT_RDWR);
                close(fd);
            }
        }
        close(ep->listen.fd);
    }
    free(ep);
    r->socket_ep = NULL;
}

const mpr__endpoint_ops mpr__socket_endpoint = {
    .open = socket_open,
    .tick = socket_tick,
    .sync = NULL,
    .close = socket_close,
};

/* ==================================================================== */
/* sender side                                                          */

int mpr__send_all(int fd, const void *p, size_t n)
{
    const char *at = p;
    while (n > 0) {
        ssize_t w = send(fd, at, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN ? MPR_EPIPE
                                                                               : mpr__syserr();
        }
        at += w;
        n -= (size_t)w;
    }
    return 0;
}

int mpr__recv_exact(int fd, void *buf, size_t n, int64_t deadline_ns)
{
    size_t have = 0;
    while (have < n) {
        int64_t left_ms = (deadline_ns - mpr__now_ns() + 999999) / 1000000;
        if (left_ms <= 0)
            return MPR_ETIMEDOUT;
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, left_ms > 60000 ? 60000 : (int)left_ms);
        if (rc < 0 && errno != EINTR)
            return mpr__syserr();
        if (rc <= 0)
            continue;
        ssize_t got = recv(fd, (char *)buf + have, n - have, 0);
        if (got == 0)
            return MPR_EACCES; /* the router closed the connection: rejected */
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno == ECONNRESET ? MPR_EACCES : mpr__syserr();
        }
        have += (size_t)got;
    }
    return 0;
}

/* Send the PROOF, with the ring's memfd attached if there is one. */
static int send_proof(int fd, const unsigned char *proof, int memfd)
{
    struct iovec iov = {(void *)proof, MPR__PROOF_SIZE};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (memfd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &memfd, sizeof(int));
    }
    ssize_t n;
    while ((n = sendmsg(fd, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    if (n == MPR__PROOF_SIZE)
        return 0;
    if (n < 0 && errno != EPIPE && errno != ECONNRESET)
        return mpr__syserr();
    return MPR_EACCES; /* the router hung up on us */
}

/* Is the peer of fd running as our uid? */
static int peer_is_us(int fd)
{
    struct ucred cred = {0, (uid_t)-1, (gid_t)-1};
    socklen_t len = sizeof cred;
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid();
}

/* The handshake on a connected socket: HELLO, check the CHALLENGE, PROOF
 * (with the ring if there is one), ACK. */
static int handshake(mpr_sender *s, int fd, int *ring_kept)
{
    int64_t deadline = mpr__now_ns() + HANDSHAKE_TIMEOUT_NS;
    mpr__hello h = {.version = MPR__WIRE_VERSION, .conn_id = s->id, .flags = 0};
    int rc = mpr__random(h.nonce, sizeof h.nonce);
    unsigned char buf[MPR__CHALLENGE_SIZE];
    if (rc == 0) {
        mpr__hello_encode(buf, &h);
        rc = mpr__send_all(fd, buf, MPR__HELLO_SIZE);
        if (rc == MPR_EPIPE)
            rc = MPR_EACCES; /* hung up on our HELLO */
    }
    mpr__challenge ch;
    if (rc == 0)
        rc = mpr__recv_exact(fd, buf, MPR__CHALLENGE_SIZE, deadline);
    if (rc == 0 && mpr__challenge_decode(buf, &ch) < 0)
        rc = MPR_ECONNREFUSED; /* not a router of ours */
    if (rc < 0)
        return rc;
    unsigned char tag[MPR__SECRET_SIZE];
    mpr__proof_tag(tag, s->key, 'r', s->id, h.nonce, ch.nonce);
    int genuine = mpr__secret_equal(tag, ch.proof);
    if (!genuine)
        return MPR_ECONNREFUSED; /* does not know the pipe's key: not our router */
    s->max_msg = ch.max_msg;

    int memfd = -1;
    if (*ring_kept && mpr__ring_create(&s->ring, MPR__RING_DEFAULT, &memfd) < 0)
        memfd = -1; /* no shared memory here: frames on the socket still work */
    mpr__proof p = {.flags = memfd >= 0 ? MPR__PROOF_RING : 0};
    mpr__proof_tag(p.proof, s->key, 's', s->id, ch.nonce, h.nonce);
    mpr__proof_encode(buf, &p);
    rc = send_proof(fd, buf, memfd);
    explicit_bzero(buf, sizeof buf);
    explicit_bzero(&p, sizeof p);
    if (memfd >= 0)
        close(memfd); /* the mapping stays; the router has its own copy */
    mpr__ack ack;
    if (rc == 0)
        rc = mpr__recv_exact(fd, buf, MPR__ACK_SIZE, deadline);
    if (rc == 0 && mpr__ack_decode(buf, &ack) < 0)
        rc = MPR_EPROTO;
    if (rc == 0 && ack.status == MPR__ACK_TAKEN)
        rc = MPR_EALREADY;
    if (rc == 0 && ack.mode == MPR__MODE_REMOTE)
        rc = MPR_EPROTO;
    *ring_kept = rc == 0 && ack.mode == MPR__MODE_RING && memfd >= 0;
    if (!*ring_kept)
        mpr__ring_unmap(&s->ring, 0); /* the router could not take it: frames */
    return rc;
}

int mpr__local_start(mpr_sender *s, int want_ring)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mpr__syserr();
    struct sockaddr_un addr;
    socklen_t alen = abstract_addr(&addr, s->name);
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&addr, alen)) < 0 && errno == EINTR)
        ;
    if (rc < 0)
        rc = (errno == ECONNREFUSED || errno == ENOENT) ? MPR_ECONNREFUSED : mpr__syserr();
    else if (!peer_is_us(fd))
        rc = MPR_ECONNREFUSED; /* another user took the name: not our router */
    int ring = want_ring;
    if (rc == 0)
        rc = handshake(s, fd, &ring);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    s->fd = fd;
    if (ring)
        s->ring.wake_fd = fd;
    s->ops = ring ? &mpr__ring_sender_ops : &mpr__frames_sender_ops;
    return 0;
}

static int frames_send(mpr_sender *s, const void *data, size_t size)
{
    unsigned char hdr[4];
    mpr__put_u32(hdr, (uint32_t)size);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, size}};
    int iovcnt = size ? 2 : 1;
    struct iovec *v = iov;
    while (iovcnt > 0) {
        struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN ? MPR_EPIPE
                                                                               : mpr__syserr();
        }
        size_t done = (size_t)n;
        while (iovcnt > 0 && done >= v->iov_len) {
            done -= v->iov_len;
            v++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            v->iov_base = (char *)v->iov_base + done;
            v->iov_len -= done;
        }
    }
    return 0;
}

static int frames_stop(mpr_sender *s)
{
    unsigned char bye[4];
    mpr__put_u32(bye, MPR__WIRE_BYE);
    return mpr__send_all(s->fd, bye, sizeof bye); /* MPR_EPIPE: the router has gone */
}

static void frames_close(mpr_sender *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

const mpr__sender_ops mpr__frames_sender_ops = {frames_send, frames_stop, frames_close};
