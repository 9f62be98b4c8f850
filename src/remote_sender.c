/*
 * remote_sender.c - the sending end of the remote transport (the router's
 * end is remote_router.c): ZeroMQ over tcp with CURVE (the frames are in
 * wire.h).
 *
 * A started remote sender has a thread of its own that owns
 * the DEALER socket. mpr_sender_send writes into a private ring (the same
 * ring as the local transport, in private memory, woken through an
 * event); the thread packs whatever records are there into frames (many
 * small messages share one encrypted frame), keeps every frame until the
 * router took it and sends again what was not taken after a reconnect.
 * When credit runs out the thread stops reading the ring, the ring fills
 * and send waits: backpressure. mpr_sender_stop returns 0 once the router
 * has taken everything, BYE included.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "base.h"
#include "hs.h"
#include "platform.h"
#include "ring.h"
#include "transport.h"

#define RESEND_NS ((int64_t)1000 * 1000000)    /* no progress for this long: send again */
#define HEARTBEAT_NS ((int64_t)1000 * 1000000) /* idle: a HEART this often */
#define HELLO_AGAIN_NS ((int64_t)1000 * 1000000)
#define START_TIMEOUT_NS ((int64_t)10 * 1000000000)
#define SENDER_RING (1024u * 1024u)

/* The process's ZeroMQ context for remote senders, shared and counted; a
 * forked child makes its own (the parent's has no threads there). */
static mpr__mutex ctx_lock = MPR__MUTEX_INIT;
static void *ctx_shared;
static unsigned ctx_users;
static uint64_t ctx_token;

static void *ctx_get(void)
{
    uint64_t token = mpr__process_token();
    mpr__mutex_lock(&ctx_lock);
    if (ctx_shared && ctx_token != token) { /* inherited through fork: unusable */
        ctx_shared = NULL;
        ctx_users = 0;
    }
    if (!ctx_shared) {
        ctx_shared = zmq_ctx_new();
        if (ctx_shared)
            zmq_ctx_set(ctx_shared, ZMQ_BLOCKY, 0);
        ctx_token = token;
    }
    void *ctx = ctx_shared;
    if (ctx)
        ctx_users++;
    mpr__mutex_unlock(&ctx_lock);
    return ctx;
}

static void ctx_put(void *ctx)
{
    mpr__mutex_lock(&ctx_lock);
    int last = ctx == ctx_shared && --ctx_users == 0;
    if (last)
        ctx_shared = NULL;
    mpr__mutex_unlock(&ctx_lock);
    if (last)
        zmq_ctx_term(ctx);
}

typedef struct frame {
    struct frame *next;
    uint64_t seq;
    size_t records; /* DATA payload bytes */
    zmq_msg_t msg;  /* a copy kept for sending again */
} frame;

enum { RUNNING, STOP_ASKED, ABORT_ASKED };

typedef struct remote_sender {
    mpr__link base;     /* first */
    mpr__sender_cred cred; /* the sender's, valid until close */
    mpr__ring wring;    /* the writer's view of the ring (the application's thread) */
    void *ctx;
    mpr__thread thread;
    mpr__event wake;    /* the thread's wake-up: a record, a request */
    mpr__event room;    /* the writer's wait for room (without futexes) */
    /* the start's result and the end, for the application's thread */
    mpr__mutex lock;
    mpr__cond cond;
    int started, start_rc, done, stop_rc;
    _Atomic int request; /* RUNNING, STOP_ASKED, ABORT_ASKED */
    /* the thread's own */
    mpr__ring ring;     /* its view of the sender's ring, as the reader */
    void *sock, *mon;
    uint64_t next_seq, taken, credit, sent_bytes, bye_seq;
    frame *head, *tail; /* not yet taken, oldest first */
    frame *unsent;      /* the first of them ZeroMQ has not accepted yet */
    int64_t last_progress, last_sent, last_heard, window;
} remote_sender;

/* Set a ZeroMQ socket option; 0 or an MPR_ error. */
static int opt(void *sock, int name, const void *value, size_t len)
{
    return zmq_setsockopt(sock, name, value, len) == 0 ? 0 : mpr__errno_code(zmq_errno());
}

static int opt_int(void *sock, int name, int value)
{
    return opt(sock, name, &value, sizeof value);
}

static int64_t deadline_ms(int64_t at, int64_t now)
{
    if (at <= now)
        return 0;
    int64_t ms = (at - now + 999999) / 1000000;
    return ms > 1000 ? 1000 : ms;
}

/* 0, or -1 when ZeroMQ did not take the frame (EAGAIN: its queue is full,
 * or no connection yet); the frame is kept either way. */
static int send_frame_copy(remote_sender *rs, frame *f)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    zmq_msg_copy(&m, &f->msg);
    int rc = zmq_msg_send(&m, rs->sock, ZMQ_DONTWAIT); /* bytes, or -1 */
    if (rc < 0)
        zmq_msg_close(&m); /* sent again later */
    rs->last_sent = mpr__now_ns();
    return rc < 0 ? -1 : 0;
}

/* Hand ZeroMQ the frames it has not accepted, in order, until it is full
 * (the socket's high-water mark: EAGAIN). A frame is never skipped: one
 * refused while later ones go out would leave a gap the router must drop
 * everything after, until the next resend. */
static void send_out(remote_sender *rs)
{
    while (rs->unsent && send_frame_copy(rs, rs->unsent) == 0)
        rs->unsent = rs->unsent->next;
}

static void send_small(remote_sender *rs, uint32_t magic)
{
    unsigned char b[MPR__DATA_HDR] = {0};
    mpr__put_u32(b, magic);
    zmq_send(rs->sock, b, sizeof b, ZMQ_DONTWAIT);
    rs->last_sent = mpr__now_ns();
}

/* Pack what the ring holds, within credit, into DATA frames and send
 * them. 0 when the ring is empty, 1 when credit or a full ZeroMQ queue
 * holds the rest back, or MPR_ENOMEM. */
static int pump(remote_sender *rs)
{
    mpr__ring *ring = &rs->ring;
    for (;;) {
        uint64_t start = ring->pos, size = 0;
        int bye = 0, held = 0;
        /* How much: whole records up to FRAME_MAX and the credit, in one
         * piece of the ring. */
        mpr__ring_rec rec;
        while (mpr__ring_peek(ring, &rec) > 0) { /* our own ring: never malformed */
            if (size == 0)
                start = ring->pos; /* after any PAD the peek skipped */
            if (rs->sent_bytes + size + rec.size > rs->credit) {
                held = 1;
                break;
            }
            if (size + rec.size > MPR__FRAME_MAX || (ring->pos & (ring->cap - 1)) < (start & (ring->cap - 1)))
                break; /* a frame is one piece of the ring */
            size += rec.size;
            mpr__ring_take(ring, &rec);
            if (rec.type == MPR__RING_BYE) {
                bye = 1;
                break;
            }
        }
        if (size == 0) {
            mpr__ring_consumed(ring); /* PADs skipped */
            return held;
        }
        frame *f = malloc(sizeof *f);
        if (!f || zmq_msg_init_size(&f->msg, MPR__DATA_HDR + size) < 0) {
            free(f);
            return MPR_ENOMEM;
        }
        f->next = NULL;
        f->seq = ++rs->next_seq;
        f->records = size;
        unsigned char *p = zmq_msg_data(&f->msg);
        mpr__put_u32(p, MPR__DATA_MAGIC);
        mpr__put_u32(p + 4, 0);
        mpr__put_u64(p + 8, f->seq);
        memcpy(p + MPR__DATA_HDR, ring->data + (start & (ring->cap - 1)), size);
        mpr__ring_consumed(ring);
        if (rs->tail)
            rs->tail->next = f;
        else
            rs->head = f;
        rs->tail = f;
        if (!rs->head->next)
            rs->last_progress = mpr__now_ns(); /* the first one out starts the clock */
        rs->sent_bytes += size;
        if (bye)
            rs->bye_seq = f->seq;
        if (!rs->unsent)
            rs->unsent = f;
        send_out(rs);
        if (rs->unsent)
            return 1; /* ZeroMQ is full: the rest waits in the ring */
    }
}

/* STATE from the router. 1 if it says the router is gone. */
static int on_state(remote_sender *rs, const mpr__state *st)
{
    rs->last_heard = mpr__now_ns();
    if (st->window_ms)
        rs->window = (int64_t)st->window_ms * 1000000;
    if (st->seq > rs->taken && st->seq <= rs->next_seq) {
        rs->taken = st->seq;
        rs->last_progress = rs->last_heard;
        while (rs->head && rs->head->seq <= rs->taken) {
            frame *f = rs->head;
            rs->head = f->next;
            if (rs->unsent == f)
                rs->unsent = f->next;
            zmq_msg_close(&f->msg);
            free(f);
        }
        if (!rs->head)
            rs->tail = NULL;
    }
    if (st->credit > rs->credit)
        rs->credit = st->credit;
    return (st->flags & MPR__STATE_GONE) != 0;
}

/* Read what the router sent. Returns 1 if it is gone. */
static int read_router(remote_sender *rs)
{
    unsigned char buf[64];
    for (;;) {
        int n = zmq_recv(rs->sock, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 0)
            return 0;
        mpr__state st;
        if (mpr__state_decode(buf, (size_t)n, &st) == 0 && on_state(rs, &st))
            return 1;
    }
}

/* The DEALER socket, a fresh CURVE key pair of its own, connected; and a
 * monitor of it for the handshake (a refused connection, or one that
 * fails CURVE: not our router). */
static int connect_socket(remote_sender *rs)
{
    const mpr__sender_cred *s = &rs->cred;
    char pub[41], sec[41];
    rs->sock = zmq_socket(rs->ctx, ZMQ_DEALER);
    if (!rs->sock)
        return mpr__errno_code(zmq_errno());
    int rc = zmq_curve_keypair(pub, sec) < 0 ? MPR_ENOTSUP : 0;
    if (rc == 0)
        rc = opt(rs->sock, ZMQ_CURVE_SERVERKEY, s->server_key, 40);
    if (rc == 0)
        rc = opt(rs->sock, ZMQ_CURVE_PUBLICKEY, pub, 40);
    if (rc == 0)
        rc = opt(rs->sock, ZMQ_CURVE_SECRETKEY, sec, 40);
    mpr__wipe(sec, sizeof sec);
    const int ints[][2] = {{ZMQ_LINGER, 0},
                           {ZMQ_RECONNECT_IVL, 100},
                           {ZMQ_RECONNECT_IVL_MAX, 1000},
                           {ZMQ_HEARTBEAT_IVL, 1000},
                           {ZMQ_HEARTBEAT_TIMEOUT, 3000},
                           {ZMQ_SNDHWM, 64}};
    for (size_t i = 0; rc == 0 && i < sizeof ints / sizeof ints[0]; i++)
        rc = opt_int(rs->sock, ints[i][0], ints[i][1]);
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://mprouter-sender-%p", (void *)rs);
    if (rc == 0 && (zmq_socket_monitor(rs->sock, addr,
                                       ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0 ||
                    !(rs->mon = zmq_socket(rs->ctx, ZMQ_PAIR)) || zmq_connect(rs->mon, addr) < 0))
        rc = mpr__errno_code(zmq_errno());
    if (rc == 0 && zmq_connect(rs->sock, s->remote) < 0)
        rc = zmq_errno() == EINVAL ? MPR_EINVAL : mpr__errno_code(zmq_errno());
    return rc;
}

/* The monitor's word during the start: MPR_ECONNREFUSED if nobody took the
 * connection or CURVE failed (not our router), 1 once the ZeroMQ
 * handshake succeeded, 0 if nothing happened. */
static int connect_events(remote_sender *rs)
{
    int result = 0;
    for (;;) {
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, rs->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            return result;
        }
        int more = zmq_msg_more(&ev), event = 0;
        if (zmq_msg_size(&ev) == 6) {
            const unsigned char *d = zmq_msg_data(&ev);
            event = d[0] | d[1] << 8;
        }
        while (more) { /* the address */
            zmq_msg_recv(&ev, rs->mon, ZMQ_DONTWAIT);
            more = zmq_msg_more(&ev);
        }
        zmq_msg_close(&ev);
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            result = 1;
        else if (event && result != 1)
            return MPR_ECONNREFUSED;
    }
}

static void stop_monitor(remote_sender *rs)
{
    if (!rs->mon)
        return;
    zmq_socket_monitor(rs->sock, NULL, 0);
    zmq_close(rs->mon);
    rs->mon = NULL;
}

/* The handshake, in the thread: 0 or an MPR_ error. */
static int remote_handshake(remote_sender *rs)
{
    const mpr__sender_cred *s = &rs->cred;
    int64_t deadline = mpr__now_ns() + START_TIMEOUT_NS;
    mpr__hs_sender hs;
    unsigned char hello[MPR__HELLO_SIZE], buf[64];
    if (mpr__hs_sender_hello(&hs, s->id, s->key, hello) < 0)
        return MPR_EIO;
    unsigned char proof[MPR__PROOF_SIZE];
    int64_t again = 0;
    for (;;) {
        int64_t now = mpr__now_ns();
        if (now >= deadline)
            return MPR_ETIMEDOUT;
        if (now >= again) { /* lost in a broken connection: once more (the same) */
            int proving = hs.state == MPR__HS_ACK;
            zmq_send(rs->sock, proving ? proof : hello, proving ? sizeof proof : sizeof hello,
                     ZMQ_DONTWAIT);
            again = now + HELLO_AGAIN_NS;
        }
        zmq_pollitem_t items[2] = {{rs->sock, 0, ZMQ_POLLIN, 0}, {rs->mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, (long)deadline_ms(again < deadline ? again : deadline, now)) < 0 &&
            zmq_errno() != EINTR)
            return mpr__errno_code(zmq_errno());
        if (connect_events(rs) < 0)
            return MPR_ECONNREFUSED; /* nobody there, or not our router's key */
        int n;
        while ((n = zmq_recv(rs->sock, buf, sizeof buf, ZMQ_DONTWAIT)) >= 0) {
            mpr__state st;
            if (hs.state == MPR__HS_CHALLENGE && n == MPR__CHALLENGE_SIZE) {
                int rc = mpr__hs_sender_challenge(&hs, buf, 0, proof);
                if (rc < 0)
                    return MPR_ECONNREFUSED; /* not our router */
                rs->base.max_msg = hs.max_msg;
                again = 0;
            } else if (hs.state == MPR__HS_ACK && n == MPR__ACK_SIZE) {
                int rc = mpr__hs_sender_ack(&hs, buf);
                mpr__wipe(proof, sizeof proof);
                if (rc < 0)
                    return rc;
                return hs.mode == MPR__MODE_REMOTE ? 0 : MPR_EPROTO;
            } else if (mpr__state_decode(buf, (size_t)n, &st) == 0 && (st.flags & MPR__STATE_GONE)) {
                return MPR_EACCES; /* rejected */
            }
        }
    }
}

static void finish(remote_sender *rs, int rc)
{
    mpr__mutex_lock(&rs->lock);
    rs->done = 1;
    rs->stop_rc = rc;
    mpr__cond_broadcast(&rs->cond);
    mpr__mutex_unlock(&rs->lock);
}

static void *remote_thread(void *arg)
{
    remote_sender *rs = arg;
    int rc = connect_socket(rs);
    if (rc == 0)
        rc = remote_handshake(rs);
    stop_monitor(rs);
    mpr__mutex_lock(&rs->lock);
    rs->started = 1;
    rs->start_rc = rc;
    mpr__cond_broadcast(&rs->cond);
    mpr__mutex_unlock(&rs->lock);
    if (rc < 0) {
        if (rs->sock)
            zmq_close(rs->sock);
        return NULL;
    }
    int64_t now = mpr__now_ns();
    rs->last_heard = rs->last_progress = rs->last_sent = now;
    rs->window = (int64_t)10 * 1000000000;
    int result = 0;
    for (;;) {
        int request = atomic_load(&rs->request);
        if (request == ABORT_ASKED) {
            /* Freed without stop: tell the router now, rather than let it
             * wait for the window (a moment for the frame to leave). */
            send_small(rs, MPR__ABORT_MAGIC);
            opt_int(rs->sock, ZMQ_LINGER, 100);
            break;
        }
        int gone = read_router(rs);
        if (rs->bye_seq && rs->taken >= rs->bye_seq)
            break; /* the router has it all */
        if (gone) {
            result = MPR_EPIPE;
            break;
        }
        send_out(rs);
        int held = rs->unsent ? 1 : pump(rs);
        if (held < 0) {
            result = held;
            break;
        }
        now = mpr__now_ns();
        /* Only silence ends the wait: a router that answers is alive, and
         * stop waits for it as long as it takes (a slow router is not a
         * lost one). */
        if (now - rs->last_heard > rs->window) {
            result = request == STOP_ASKED ? MPR_ETIMEDOUT : MPR_EPIPE;
            break;
        }
        if (rs->head && now - rs->last_progress >= RESEND_NS) {
            /* Nothing taken for a while: after a reconnection, or lost. */
            rs->unsent = rs->head;
            send_out(rs);
            rs->last_progress = now;
        }
        if (now - rs->last_sent >= HEARTBEAT_NS)
            send_small(rs, MPR__HEART_MAGIC);
        int64_t next = rs->last_sent + HEARTBEAT_NS;
        if (rs->head && rs->last_progress + RESEND_NS < next)
            next = rs->last_progress + RESEND_NS;
        if (rs->last_heard + rs->window < next)
            next = rs->last_heard + rs->window;
        short events = (short)(ZMQ_POLLIN | (rs->unsent ? ZMQ_POLLOUT : 0));
        zmq_pollitem_t items[2] = {{rs->sock, 0, events, 0},
                                   {NULL, (int)mpr__event_fd(&rs->wake), ZMQ_POLLIN, 0}};
        /* Sleep when credit holds us back (a STATE wakes us), when ZeroMQ
         * is full (room wakes us), or with the ring empty (the writer wakes
         * us). */
        long timeout = held || mpr__ring_try_sleep(&rs->ring) ? (long)deadline_ms(next, now) : 0;
        if (zmq_poll(items, 2, timeout) > 0 && (items[1].revents & ZMQ_POLLIN))
            mpr__event_clear(&rs->wake);
    }
    if (result < 0)
        mpr__ring_close(&rs->ring); /* the application's sends fail from now on */
    while (rs->head) {
        frame *f = rs->head;
        rs->head = f->next;
        zmq_msg_close(&f->msg);
        free(f);
    }
    zmq_close(rs->sock);
    rs->sock = NULL;
    finish(rs, result);
    return NULL;
}

static void remote_free(remote_sender *rs)
{
    mpr__event_close(&rs->wake);
    mpr__event_close(&rs->room);
    if (rs->ctx)
        ctx_put(rs->ctx);
    mpr__cond_destroy(&rs->cond);
    mpr__mutex_destroy(&rs->lock);
    free(rs);
}

static int link_send(mpr__link *l, const void *data, size_t size)
{
    return mpr__ring_put_message(&((remote_sender *)l)->wring, data, size);
}

static int link_stop(mpr__link *l)
{
    remote_sender *rs = (remote_sender *)l;
    int rc = mpr__ring_put(&rs->wring, MPR__RING_BYE, NULL, 0);
    atomic_store(&rs->request, STOP_ASKED);
    mpr__event_set(&rs->wake);
    mpr__mutex_lock(&rs->lock);
    while (!rs->done)
        mpr__cond_wait(&rs->cond, &rs->lock);
    mpr__mutex_unlock(&rs->lock);
    return rc < 0 ? rc : rs->stop_rc;
}

static void link_close(mpr__link *l)
{
    remote_sender *rs = (remote_sender *)l;
    atomic_store(&rs->request, ABORT_ASKED);
    mpr__event_set(&rs->wake);
    mpr__thread_join(rs->thread);
    mpr__ring_unmap(&rs->wring, 0);
    remote_free(rs);
}

/* A forked copy: the thread is not in this process, and the ring is
 * private memory: nothing of the parent's stream to touch. */
static void link_forget(mpr__link *l)
{
    remote_sender *rs = (remote_sender *)l;
    mpr__ring_unmap(&rs->wring, 0);
    mpr__fd_close(rs->wake.rfd);
    if (rs->wake.wfd != rs->wake.rfd)
        mpr__fd_close(rs->wake.wfd);
    mpr__fd_close(rs->room.rfd);
    if (rs->room.wfd != rs->room.rfd)
        mpr__fd_close(rs->room.wfd);
    free(rs);
}

static const mpr__link_ops remote_link_ops = {link_send, link_stop, link_close, link_forget};

int mpr__remote_start(const mpr__sender_cred *cred, mpr__link **out)
{
    if (!cred->remote[0])
        return MPR_ECONNREFUSED; /* the router has no remote endpoint */
    remote_sender *rs = calloc(1, sizeof *rs);
    if (!rs)
        return MPR_ENOMEM;
    rs->base.ops = &remote_link_ops;
    rs->cred = *cred;
    rs->wake.rfd = rs->wake.wfd = rs->room.rfd = rs->room.wfd = MPR__NO_FD;
    mpr__mutex_init(&rs->lock);
    mpr__cond_init(&rs->cond);
    int rc = mpr__event_open(&rs->wake);
    if (rc == 0)
        rc = mpr__event_open(&rs->room);
    rs->ctx = rc == 0 ? ctx_get() : NULL;
    if (rc == 0 && !rs->ctx)
        rc = mpr__errno_code(zmq_errno());
    if (rc == 0)
        rc = mpr__ring_create_private(&rs->wring, SENDER_RING, &rs->wake, &rs->room);
    if (rc == 0) {
        mpr__ring_reader_of(&rs->ring, &rs->wring);
        rc = mpr__thread_start(&rs->thread, remote_thread, rs);
        if (rc < 0)
            mpr__ring_unmap(&rs->wring, 0);
    }
    if (rc < 0) {
        remote_free(rs);
        return rc;
    }
    mpr__mutex_lock(&rs->lock);
    while (!rs->started)
        mpr__cond_wait(&rs->cond, &rs->lock);
    rc = rs->start_rc;
    mpr__mutex_unlock(&rs->lock);
    if (rc < 0) {
        mpr__thread_join(rs->thread);
        mpr__ring_unmap(&rs->wring, 0);
        remote_free(rs);
        return rc;
    }
    *out = &rs->base;
    return 0;
}
