/*
 * remote_sender.c - the sending end of the remote transport (the router's
 * end is remote_router.c): tcp with ZeroMQ's protocol and CURVE
 * (zmtp.c), the handshake of every transport (hs.h) inside, then numbered
 * DATA frames of records (wire.h).
 *
 * A started remote sender has a thread of its own. mpr_sender_send writes
 * into a private ring (ring.c) and returns; the thread packs whatever
 * records are there into frames (many small messages share one encrypted
 * frame), keeps every frame until the router took it, and sends again
 * what was not taken after a reconnection. When credit runs out the thread
 * stops reading the ring, the ring fills and send waits: backpressure.
 * mpr_sender_stop returns 0 once the router has taken everything, BYE
 * included; while the router answers, stop waits (a slow router is not a
 * lost one).
 *
 * Links. The thread owns one tcp connection at a time. It sends a HEART
 * when it has sent nothing for HEARTBEAT_NS, and the router answers each;
 * silence for SILENCE_NS means the link is dead even if tcp has not
 * noticed (a cable pulled, a partition): the thread drops it and connects
 * again at once, then every RETRY_NS, each attempt given RETRY_NS to
 * connect. So when a broken network heals, the sender is back within about
 * RETRY_NS plus a round trip, and a break shorter than the router's window
 * minus about half a second loses nothing. Silence for the whole window
 * (from the router, which tells its window in every STATE) means the
 * router is gone: MPR_EPIPE (MPR_ETIMEDOUT in stop).
 *
 * The way back: the thread puts together the CTRL frames of each control
 * message (dropping the numbers it has, after a reconnection) and queues
 * whole messages for the application's recv; it says GOT when the
 * application took them (the router keeps them until then, which bounds
 * the queue here by the router's). A CANCEL sets a word that
 * mpr_sender_cancelled reads.
 *
 * The client's CURVE key pair is made once per sender (in a wipe-on-fork
 * page) and names the sender to the router across links.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "hs.h"
#include "platform.h"
#include "ring.h"
#include "transport.h"
#include "zmtp.h"

#define HEARTBEAT_NS ((int64_t)250 * 1000000) /* idle: a HEART this often */
#define SILENCE_NS ((int64_t)1000 * 1000000)  /* nothing heard: the link is dead */
#define RETRY_NS ((int64_t)250 * 1000000)     /* between attempts to connect */
#define RESEND_NS ((int64_t)2000 * 1000000)   /* nothing taken for this long: send again */
#define START_TIMEOUT_NS ((int64_t)10 * 1000000000)
#define DEFAULT_WINDOW_NS ((int64_t)10 * 1000000000)
#define SENDER_RING (1024u * 1024u)
#define OUT_HIGH (1024u * 1024u) /* encrypted output waiting: pack no more frames */
#define MAX_FRAME (MPR__DATA_HDR + MPR__FRAME_MAX)

/* A DATA frame kept until the router took it. */
typedef struct frame {
    struct frame *next;
    uint64_t seq;
    size_t records;        /* DATA payload bytes */
    size_t size;           /* bytes below (header + records) */
    unsigned char bytes[]; /* the frame in clear: encrypted anew for each link */
} frame;

enum { RUNNING, STOP_ASKED, ABORT_ASKED };

/* A control message for the application. */
typedef struct cmsg {
    struct cmsg *next;
    uint64_t cseq;
    size_t size, have;
    unsigned char data[];
} cmsg;

/* Keys, in a wipe-on-fork page. */
typedef struct keys {
    unsigned char public_key[MPR__ZMTP_KEY_SIZE];
    unsigned char secret_key[MPR__ZMTP_KEY_SIZE];
    unsigned char server_key[MPR__ZMTP_KEY_SIZE];
} keys;

typedef struct remote_sender {
    mpr__link base;        /* first */
    mpr__sender_cred cred; /* the sender's, valid until close */
    char host[200], port[16];
    keys *keys;
    mpr__ring wring;       /* the writer's view of the ring (the application's thread) */
    mpr__thread thread;
    mpr__event wake;       /* the thread's wake-up: a record, a request */
    mpr__event room;       /* the writer's wait for room (without futexes) */
    /* the start's result and the end, for the application's thread */
    mpr__mutex lock;
    mpr__cond cond;
    int started, start_rc, done, stop_rc;
    _Atomic int request;   /* RUNNING, STOP_ASKED, ABORT_ASKED */
    cmsg *inbox, *inbox_tail; /* the way back: whole messages, not yet taken (lock) */
    _Atomic uint64_t taken_cseq; /* the application took every message up to this */
    _Atomic uint64_t tag;     /* the newest cancel tag */

    /* the thread's own */
    mpr__ring ring;        /* its view of the ring, as the reader */
    mpr__fd fd;            /* the link, or MPR__NO_FD */
    mpr__zmtp *z;
    int connecting, ready; /* tcp connecting; CURVE done */
    int64_t connect_by, next_connect;
    mpr__hs_sender hs;     /* the handshake of the pipe */
    unsigned char hello[MPR__HELLO_SIZE], proof[MPR__PROOF_SIZE];
    int acked;             /* the router took us (ACK) */
    int start_error;       /* a refusal seen on a link during the start */
    uint64_t next_seq, taken, credit, sent_bytes, bye_seq;
    frame *head, *tail;    /* not yet taken, oldest first */
    frame *unsent;         /* the first of them not sent on this link */
    int64_t last_progress, last_sent, last_heard, window;
    uint64_t got_cseq;     /* the way back: the last message whole here */
    cmsg *partial;         /* the one being put together */
    uint64_t got_said;     /* the last GOT sent on this link */
} remote_sender;

/* ---- the link ---- */

static void drop_link(remote_sender *rs, int64_t now)
{
    if (rs->fd != MPR__NO_FD)
        mpr__stream_shutdown_close(rs->fd);
    rs->fd = MPR__NO_FD;
    mpr__zmtp_free(rs->z);
    rs->z = NULL;
    rs->connecting = rs->ready = 0;
    if (rs->next_connect < now)
        rs->next_connect = now; /* at once after a loss; RETRY_NS between attempts */
}

static int open_link(remote_sender *rs, int64_t now)
{
    mpr__zmtp_config cfg = {MPR__ZMTP_CLIENT, rs->keys->public_key, rs->keys->secret_key,
                            rs->keys->server_key, NULL, MAX_FRAME};
    rs->next_connect = now + RETRY_NS;
    int rc = mpr__zmtp_new(&rs->z, &cfg);
    if (rc == 0)
        rc = mpr__tcp_connect(rs->host, rs->port, &rs->fd);
    if (rc < 0) {
        drop_link(rs, now);
        return rc;
    }
    rs->connecting = 1;
    rs->connect_by = now + RETRY_NS;
    return 0;
}

/* Write what the link owes. < 0: the link is broken. */
static int flush(remote_sender *rs)
{
    const unsigned char *out;
    size_t n;
    while (!rs->connecting && rs->z && (n = mpr__zmtp_output(rs->z, &out)) > 0) {
        long sent = mpr__stream_send_some(rs->fd, out, n);
        if (sent == MPR_EAGAIN)
            return 0;
        if (sent < 0)
            return (int)sent;
        mpr__zmtp_output_done(rs->z, (size_t)sent);
        rs->last_sent = mpr__now_ns();
    }
    return 0;
}

static size_t pending_output(const remote_sender *rs)
{
    const unsigned char *out;
    return rs->z ? mpr__zmtp_output(rs->z, &out) : 0;
}

static void send_small(remote_sender *rs, uint32_t magic)
{
    unsigned char b[MPR__DATA_HDR] = {0};
    mpr__put_u32(b, magic);
    if (rs->ready)
        mpr__zmtp_send(rs->z, b, sizeof b);
}

/* Encrypt the frames not yet sent on this link, while the output is not
 * too full. */
static void send_out(remote_sender *rs)
{
    while (rs->ready && rs->unsent && pending_output(rs) < OUT_HIGH) {
        if (mpr__zmtp_send(rs->z, rs->unsent->bytes, rs->unsent->size) < 0)
            return;
        rs->unsent = rs->unsent->next;
    }
}

/* Pack what the ring holds, within credit, into DATA frames. 0 when the
 * ring is empty, 1 when credit or a full link holds the rest back, or
 * MPR_ENOMEM. */
static int pump(remote_sender *rs)
{
    mpr__ring *ring = &rs->ring;
    for (;;) {
        if (!rs->ready || rs->unsent || pending_output(rs) >= OUT_HIGH)
            return 1;
        uint64_t start = ring->pos, size = 0;
        int bye = 0, held = 0;
        /* Whole records up to FRAME_MAX and the credit, in one piece of
         * the ring. */
        mpr__ring_rec rec;
        while (mpr__ring_peek(ring, &rec) > 0) { /* our own ring: never malformed */
            if (size == 0)
                start = ring->pos; /* after any PAD the peek skipped */
            if (rs->sent_bytes + size + rec.size > rs->credit) {
                held = 1;
                break;
            }
            if (size + rec.size > MPR__FRAME_MAX ||
                (ring->pos & (ring->cap - 1)) < (start & (ring->cap - 1)))
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
        frame *f = malloc(sizeof *f + MPR__DATA_HDR + size);
        if (!f)
            return MPR_ENOMEM;
        f->next = NULL;
        f->seq = ++rs->next_seq;
        f->records = size;
        f->size = MPR__DATA_HDR + size;
        mpr__put_u32(f->bytes, MPR__DATA_MAGIC);
        mpr__put_u32(f->bytes + 4, 0);
        mpr__put_u64(f->bytes + 8, f->seq);
        memcpy(f->bytes + MPR__DATA_HDR, ring->data + (start & (ring->cap - 1)), size);
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
        rs->unsent = f;
        send_out(rs);
        if (held)
            return 1;
    }
}

/* STATE from the router. 1 if it says the router is gone. */
static int on_state(remote_sender *rs, const mpr__state *st)
{
    if (st->window_ms)
        rs->window = (int64_t)st->window_ms * 1000000;
    if (st->seq > rs->taken && st->seq <= rs->next_seq) {
        rs->taken = st->seq;
        rs->last_progress = mpr__now_ns();
        while (rs->head && rs->head->seq <= rs->taken) {
            frame *f = rs->head;
            rs->head = f->next;
            if (rs->unsent == f)
                rs->unsent = f->next;
            free(f);
        }
        if (!rs->head)
            rs->tail = NULL;
    }
    if (st->credit > rs->credit)
        rs->credit = st->credit;
    return (st->flags & MPR__STATE_GONE) != 0;
}

static void finish_start(remote_sender *rs, int rc)
{
    mpr__mutex_lock(&rs->lock);
    rs->started = 1;
    rs->start_rc = rc;
    mpr__cond_broadcast(&rs->cond);
    mpr__mutex_unlock(&rs->lock);
}

/* A message from the router: the handshake's answers, then STATEs. 1 if
 * it says the router is gone (or refused us), < 0 if the link is broken or
 * the router is not ours. */
/* A CTRL frame: a piece of a control message. 0, or MPR_EPROTO (a number
 * or piece out of order: the link is dropped, and the router starts the
 * message again on the next one). */
static int on_ctrl(remote_sender *rs, const mpr__down_frame *f)
{
    if (f->cseq <= rs->got_cseq)
        return 0; /* had it: sent again after a reconnection */
    if (f->cseq != rs->got_cseq + 1)
        return MPR_EPROTO;
    if (f->offset == 0) {
        free(rs->partial);
        rs->partial = malloc(sizeof *rs->partial + f->total);
        if (!rs->partial)
            return MPR_ENOMEM; /* dropped: the router sends it again on the next link */
        rs->partial->next = NULL;
        rs->partial->cseq = f->cseq;
        rs->partial->size = f->total;
        rs->partial->have = 0;
    } else if (!rs->partial || rs->partial->cseq != f->cseq || rs->partial->size != f->total ||
               rs->partial->have != f->offset) {
        return MPR_EPROTO;
    }
    cmsg *m = rs->partial;
    if (f->n)
        memcpy(m->data + m->have, f->piece, f->n);
    m->have += f->n;
    if (m->have < m->size)
        return 0;
    rs->partial = NULL;
    rs->got_cseq = m->cseq;
    mpr__mutex_lock(&rs->lock);
    if (rs->inbox_tail)
        rs->inbox_tail->next = m;
    else
        rs->inbox = m;
    rs->inbox_tail = m;
    mpr__cond_broadcast(&rs->cond);
    mpr__mutex_unlock(&rs->lock);
    return 0;
}

static int on_message(remote_sender *rs, const unsigned char *p, size_t n)
{
    if (rs->acked && n >= 4 &&
        (mpr__get_u32(p) == MPR__CTRL_MAGIC || mpr__get_u32(p) == MPR__CANCEL_MAGIC)) {
        mpr__down_frame f;
        if (mpr__down_parse(p, n, &f) < 0)
            return MPR_EPROTO;
        if (f.kind == MPR__CANCEL_MAGIC) {
            atomic_store_explicit(&rs->tag, f.tag, memory_order_relaxed);
            return 0;
        }
        return on_ctrl(rs, &f);
    }
    mpr__state st;
    if (mpr__state_decode(p, n, &st) == 0) {
        if (!rs->acked && (st.flags & MPR__STATE_GONE)) {
            rs->start_error = MPR_EACCES; /* rejected */
            return 1;
        }
        return on_state(rs, &st);
    }
    if (!rs->acked && rs->hs.state == MPR__HS_CHALLENGE && n == MPR__CHALLENGE_SIZE) {
        int rc = mpr__hs_sender_challenge(&rs->hs, p, 0, rs->proof);
        if (rc < 0) {
            rs->start_error = MPR_ECONNREFUSED; /* it cannot prove the pipe's key: not our router */
            return 1;
        }
        rs->base.max_msg = rs->hs.max_msg;
        return mpr__zmtp_send(rs->z, rs->proof, sizeof rs->proof) < 0 ? MPR_EIO : 0;
    }
    if (!rs->acked && rs->hs.state == MPR__HS_ACK && n == MPR__ACK_SIZE) {
        int rc = mpr__hs_sender_ack(&rs->hs, p);
        mpr__wipe(rs->proof, sizeof rs->proof);
        if (rc == 0 && rs->hs.mode != MPR__MODE_REMOTE)
            rc = MPR_EPROTO;
        if (rc < 0) {
            rs->start_error = rc;
            return 1;
        }
        rs->acked = 1;
        rs->last_heard = mpr__now_ns();
        finish_start(rs, 0); /* the application's start returns now */
        return 0;
    }
    return 0; /* a repeat of an answer (a HELLO sent again): nothing new */
}

/* The link's CURVE handshake is done: the pipe's handshake (again, the same
 * HELLO: the router answers it the same way), or, once acked, a HEART and
 * every frame not taken. */
static void on_ready(remote_sender *rs)
{
    rs->ready = 1;
    rs->last_heard = mpr__now_ns();
    if (!rs->acked) {
        if (rs->hs.state == MPR__HS_ACK)
            rs->hs.state = MPR__HS_CHALLENGE; /* its CHALLENGE again, for the same HELLO */
        mpr__zmtp_send(rs->z, rs->hello, sizeof rs->hello);
        return;
    }
    send_small(rs, MPR__HEART_MAGIC);
    rs->got_said = 0; /* say GOT again on this link */
    rs->unsent = rs->head;
    rs->last_progress = rs->last_heard;
    send_out(rs);
}

/* Read what the link has. 1 if the router is gone, < 0 if the link broke. */
static int read_link(remote_sender *rs)
{
    for (;;) {
        unsigned char *buf;
        size_t space;
        mpr__zmtp_input(rs->z, &buf, &space);
        if (space > 0) {
            long got = mpr__stream_recv(rs->fd, buf, space);
            if (got == MPR_EAGAIN)
                return 0;
            if (got <= 0)
                return MPR_EPIPE;
            mpr__zmtp_input_done(rs->z, (size_t)got);
        }
        mpr__zmtp_event ev;
        int rc;
        while ((rc = mpr__zmtp_step(rs->z, &ev)) > 0) {
            rs->last_heard = mpr__now_ns();
            if (ev.kind == MPR__ZMTP_READY) {
                on_ready(rs);
                continue;
            }
            int r = on_message(rs, ev.data, ev.size);
            if (r != 0)
                return r;
        }
        if (rc < 0) {
            /* Before we ever got in: CURVE failed (another key: not our
             * router) or the peer is not ZeroMQ. */
            if (!rs->ready)
                rs->start_error = MPR_ECONNREFUSED;
            return MPR_EPROTO;
        }
    }
}

/* ---- the thread ---- */

static void finish(remote_sender *rs, int rc)
{
    mpr__mutex_lock(&rs->lock);
    rs->done = 1;
    rs->stop_rc = rc;
    mpr__cond_broadcast(&rs->cond);
    mpr__mutex_unlock(&rs->lock);
}

static int64_t until_ms(int64_t at, int64_t now)
{
    if (at <= now)
        return 0;
    int64_t ms = (at - now + 999999) / 1000000;
    return ms > 1000 ? 1000 : ms;
}

static void *remote_thread(void *arg)
{
    remote_sender *rs = arg;
    int64_t now = mpr__now_ns();
    int64_t start_by = now + START_TIMEOUT_NS;
    rs->window = DEFAULT_WINDOW_NS;
    rs->last_heard = rs->last_sent = rs->last_progress = now;
    int result = 0;
    if (mpr__hs_sender_hello(&rs->hs, rs->cred.id, rs->cred.key, rs->hello) < 0)
        result = MPR_EIO;
    while (result == 0) {
        now = mpr__now_ns();
        int request = atomic_load(&rs->request);
        if (request == ABORT_ASKED) {
            /* Freed without stop: tell the router now, rather than let it
             * wait for the window (best effort: a moment for it to leave). */
            send_small(rs, MPR__ABORT_MAGIC);
            flush(rs);
            mpr__waitfd w = {rs->fd, MPR__WAIT_OUT, 0};
            if (rs->fd != MPR__NO_FD && pending_output(rs) > 0 && mpr__wait(&w, 1, 100) > 0)
                flush(rs);
            break;
        }
        if (!rs->acked) {
            /* The start: a refusal ends it; so does the deadline. */
            if (rs->start_error) {
                result = rs->start_error;
                break;
            }
            if (now >= start_by) {
                result = MPR_ETIMEDOUT;
                break;
            }
        }
        if (rs->acked && rs->bye_seq && rs->taken >= rs->bye_seq)
            break; /* the router has it all */
        /* Silence for the window: the router is gone (or we are cut off). */
        if (rs->acked && now - rs->last_heard > rs->window) {
            result = request == STOP_ASKED ? MPR_ETIMEDOUT : MPR_EPIPE;
            break;
        }
        /* The link: connect, notice its death, read, write. */
        if (rs->fd == MPR__NO_FD && now >= rs->next_connect) {
            int rc = open_link(rs, now);
            if (rc < 0 && rc != MPR_ECONNREFUSED && !rs->acked) {
                result = rc; /* MPR_EINVAL: the host does not resolve */
                break;
            }
        }
        if (rs->connecting) {
            int rc = mpr__tcp_connected(rs->fd);
            if (rc == 0) {
                rs->connecting = 0;
                rs->last_heard = rs->acked ? rs->last_heard : now;
            } else if (rc != MPR_EAGAIN || now >= rs->connect_by) {
                drop_link(rs, now);
                rs->next_connect = rc == MPR_EAGAIN ? now : now + RETRY_NS;
                if (!rs->acked && rc == MPR_ECONNREFUSED) {
                    result = MPR_ECONNREFUSED; /* nobody at the endpoint */
                    break;
                }
            }
        }
        if (rs->fd != MPR__NO_FD && !rs->connecting) {
            int rc = read_link(rs);
            if (rc > 0) {
                /* The router said gone: after taking our BYE (a clean end:
                 * it closed our session), or it dropped us. */
                if (rs->acked && rs->bye_seq && rs->taken >= rs->bye_seq)
                    break;
                if (!rs->acked)
                    continue; /* start_error decides */
                result = MPR_EPIPE;
                break;
            }
            /* A dead link tcp has not noticed. (Not in the start: a slow
             * router answers late, and the start has its own deadline.) */
            if (rc == 0 && rs->acked && rs->ready && now - rs->last_heard > SILENCE_NS)
                rc = MPR_ETIMEDOUT;
            if (rc == 0 && rs->acked) {
                int held = pump(rs);
                if (held < 0) {
                    result = held;
                    break;
                }
                if (rs->head && now - rs->last_progress >= RESEND_NS) {
                    rs->unsent = rs->head; /* taken, but not answered: once more */
                    rs->last_progress = now;
                    send_out(rs);
                }
                if (now - rs->last_sent >= HEARTBEAT_NS && pending_output(rs) == 0)
                    send_small(rs, MPR__HEART_MAGIC);
                uint64_t taken = atomic_load(&rs->taken_cseq);
                if (rs->ready && taken != rs->got_said) {
                    unsigned char got[MPR__DATA_HDR];
                    mpr__small_frame(got, MPR__GOT_MAGIC, taken);
                    if (mpr__zmtp_send(rs->z, got, sizeof got) == 0)
                        rs->got_said = taken;
                }
            }
            if (rc == 0)
                rc = flush(rs);
            /* It hung up on our handshake: during CURVE, it is not our
             * router (its key is another: it cannot open our HELLO); after
             * it, it stopped or refused us. */
            if (rc == MPR_EPIPE && !rs->acked && !rs->start_error)
                rs->start_error = rs->ready ? MPR_EACCES : MPR_ECONNREFUSED;
            if (rc < 0)
                drop_link(rs, now);
            if (!rs->acked && rs->start_error)
                continue; /* the start is over: say so at once */
        }
        /* Sleep until something happens: the link readable (or writable
         * with output waiting, or connected), a record or a request, or the
         * next timer. */
        int64_t next = now + 1000 * 1000000LL;
        if (rs->fd == MPR__NO_FD && rs->next_connect < next)
            next = rs->next_connect;
        if (rs->connecting && rs->connect_by < next)
            next = rs->connect_by;
        if (rs->ready && rs->last_sent + HEARTBEAT_NS < next)
            next = rs->last_sent + HEARTBEAT_NS;
        if (rs->acked && rs->ready && rs->last_heard + SILENCE_NS < next)
            next = rs->last_heard + SILENCE_NS;
        if (rs->head && rs->last_progress + RESEND_NS < next)
            next = rs->last_progress + RESEND_NS;
        mpr__waitfd w[2] = {{mpr__event_fd(&rs->wake), MPR__WAIT_IN, 0}, {rs->fd, 0, 0}};
        int nw = 1;
        if (rs->fd != MPR__NO_FD) {
            w[1].want = (short)(rs->connecting ? MPR__WAIT_OUT
                                               : MPR__WAIT_IN | (pending_output(rs) ? MPR__WAIT_OUT : 0));
            nw = 2;
        }
        /* With the ring empty (the writer wakes us) or held (credit, a full
         * link: a STATE or room wakes us) we may sleep. */
        int idle = !rs->acked || !rs->ready || rs->unsent || pending_output(rs) >= OUT_HIGH ||
                   rs->sent_bytes + 8 > rs->credit || mpr__ring_try_sleep(&rs->ring);
        if (mpr__wait(w, nw, idle ? (int)until_ms(next, now) : 0) > 0 && (w[0].ready & MPR__WAIT_IN))
            mpr__event_clear(&rs->wake);
    }
    if (!rs->started)
        finish_start(rs, result < 0 ? result : MPR_EPIPE);
    else if (result < 0)
        mpr__ring_close(&rs->ring); /* the application's sends fail from now on */
    while (rs->head) {
        frame *f = rs->head;
        rs->head = f->next;
        free(f);
    }
    free(rs->partial);
    rs->partial = NULL;
    drop_link(rs, 0);
    mpr__wipe(rs->proof, sizeof rs->proof);
    finish(rs, result);
    return NULL;
}

/* ---- the application's side ---- */

static void remote_free(remote_sender *rs)
{
    while (rs->inbox) {
        cmsg *m = rs->inbox;
        rs->inbox = m->next;
        free(m);
    }
    mpr__event_close(&rs->wake);
    mpr__event_close(&rs->room);
    mpr__secure_free(rs->keys, sizeof *rs->keys);
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
    mpr__event_close(&rs->wake);
    mpr__event_close(&rs->room);
    mpr__secure_free(rs->keys, sizeof *rs->keys);
    free(rs);
}

static int link_recv(mpr__link *l, void *buf, size_t size, size_t *length, int64_t deadline)
{
    remote_sender *rs = (remote_sender *)l;
    int rc;
    mpr__mutex_lock(&rs->lock);
    for (;;) {
        cmsg *m = rs->inbox;
        if (m) {
            *length = m->size;
            if (m->size > size) {
                rc = MPR_EMSGSIZE;
                break;
            }
            if (m->size)
                memcpy(buf, m->data, m->size);
            rs->inbox = m->next;
            if (!rs->inbox)
                rs->inbox_tail = NULL;
            atomic_store(&rs->taken_cseq, m->cseq);
            free(m);
            mpr__event_set(&rs->wake); /* the thread says GOT */
            rc = 0;
            break;
        }
        if (rs->done) {
            rc = MPR_EPIPE;
            break;
        }
        if (deadline >= 0 && mpr__now_ns() >= deadline) {
            rc = MPR_ETIMEDOUT;
            break;
        }
        if (deadline < 0)
            mpr__cond_wait(&rs->cond, &rs->lock);
        else
            mpr__cond_wait_until(&rs->cond, &rs->lock, deadline);
    }
    mpr__mutex_unlock(&rs->lock);
    return rc;
}

static uint64_t link_cancelled(mpr__link *l)
{
    return atomic_load_explicit(&((remote_sender *)l)->tag, memory_order_relaxed);
}

static const mpr__link_ops remote_link_ops = {link_send,   link_stop, link_close,
                                              link_forget, link_recv, link_cancelled};

/* "tcp://HOST:PORT" (checked by from_string) into host and port. */
static int split(const char *endpoint, char *host, size_t hsize, char *port, size_t psize)
{
    const char *h = endpoint + 6, *colon = strrchr(h, ':');
    if (strncmp(endpoint, "tcp://", 6) != 0 || !colon || (size_t)(colon - h) >= hsize ||
        strlen(colon + 1) >= psize)
        return MPR_EINVAL;
    snprintf(host, hsize, "%.*s", (int)(colon - h), h);
    snprintf(port, psize, "%s", colon + 1);
    return 0;
}

int mpr__remote_start(const mpr__sender_cred *cred, mpr__link **out)
{
    if (!cred->remote[0])
        return MPR_ECONNREFUSED; /* the router has no remote endpoint */
    remote_sender *rs = calloc(1, sizeof *rs);
    if (!rs)
        return MPR_ENOMEM;
    rs->base.ops = &remote_link_ops;
    rs->cred = *cred;
    rs->fd = MPR__NO_FD;
    rs->wake.rfd = rs->wake.wfd = rs->room.rfd = rs->room.wfd = MPR__NO_FD;
    mpr__mutex_init(&rs->lock);
    mpr__cond_init(&rs->cond);
    int rc = split(cred->remote, rs->host, sizeof rs->host, rs->port, sizeof rs->port);
    rs->keys = rc == 0 ? mpr__secure_alloc(sizeof *rs->keys) : NULL;
    if (rc == 0 && !rs->keys)
        rc = MPR_ENOMEM;
    if (rc == 0)
        rc = mpr__z85_decode(rs->keys->server_key, cred->server_key);
    if (rc == 0)
        rc = mpr__zmtp_keypair(rs->keys->public_key, rs->keys->secret_key);
    if (rc == 0)
        rc = mpr__event_open(&rs->wake);
    if (rc == 0)
        rc = mpr__event_open(&rs->room);
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
