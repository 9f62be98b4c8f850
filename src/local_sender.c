/*
 * local_sender.c - the sending end of the local transport (the router's
 * end is local_router.c): connect to the router's endpoint, check that
 * the peer runs as our user and proves it knows the pipe's key (hs.h),
 * hand over a shared-memory ring, then write messages into it (ring.c):
 * no system call unless the router sleeps or the ring is full. Without a
 * ring (MPR_TRANSPORT=socket, no shared memory, or the router could not
 * take it), each message is one frame on the connection (wire.h).
 *
 * The way back (wire.h) comes as items on the connection, read when the
 * worker asks (recv, cancelled) or while it waits for room in the ring:
 * messages wait in a list, the cancel tag in a word. In ring mode the tag
 * is in the ring's header, and the connection is read no further while
 * the list holds MPR_CONTROL_QUEUE_SIZE bytes; in frames mode every item
 * is read at once (so a cancel request reaches a worker that takes no
 * messages) and TOOK words tell the router what the application took:
 * it writes no more than MPR_CONTROL_QUEUE_SIZE bytes beyond that.
 */
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "hs.h"
#include "ring.h"
#include "transport.h"

#define HANDSHAKE_TIMEOUT_NS ((int64_t)10 * 1000000000) /* our wait for the router's answers */
#define POLL_EVERY_NS ((int64_t)1000000) /* frames: cancelled() reads at most this often */
#define READ_CHUNK (64u * 1024u)

typedef struct cmsg {
    struct cmsg *next;
    size_t size;
    unsigned char data[];
} cmsg;

typedef struct local_link {
    mpr__link base; /* first */
    mpr__fd conn;
    mpr__ring ring; /* ring mode: mapped */
    /* the way back */
    unsigned char *in;   /* bytes read, an item not yet whole at the front */
    size_t in_len, in_cap;
    cmsg *head, *tail;   /* whole messages, not yet taken */
    size_t held;         /* their bytes */
    uint64_t tag;        /* the newest cancel tag seen */
    int gone;            /* the router closed the connection (or broke the way back) */
    int64_t next_poll;
    int frames;          /* frames mode: every item is read, TOOK says what was taken */
    size_t took_unsaid;  /* bytes taken, not yet in a TOOK word */
    unsigned char took_word[4];
    size_t took_off;     /* < 4: that much of took_word is written; 4: none pending */
} local_link;

static const mpr__link_ops frames_ops, ring_ops;

/* Read exactly n bytes before deadline_ns: 0, MPR_EACCES at the end of
 * stream (the router hung up: rejected), MPR_ETIMEDOUT, or an error. */
static int recv_exact(mpr__fd fd, void *buf, size_t n, int64_t deadline_ns)
{
    size_t have = 0;
    while (have < n) {
        int64_t left_ms = (deadline_ns - mpr__now_ns() + 999999) / 1000000;
        if (left_ms <= 0)
            return MPR_ETIMEDOUT;
        mpr__waitfd w = {fd, MPR__WAIT_IN, 0};
        int rc = mpr__wait(&w, 1, left_ms > 60000 ? 60000 : (int)left_ms);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        long got = mpr__stream_recv(fd, (char *)buf + have, n - have);
        if (got == 0)
            return MPR_EACCES; /* the router closed the connection: rejected */
        if (got == MPR_EAGAIN)
            continue;
        if (got < 0)
            return (int)got;
        have += (size_t)got;
    }
    return 0;
}

/* The handshake on a connected handle: HELLO, check the CHALLENGE, PROOF
 * (with the ring if there is one), ACK. *ring_kept: in, a ring is wanted;
 * out, the router took it. */
static int handshake(const mpr__sender_cred *cred, local_link *l, int *ring_kept,
                     int64_t deadline)
{
    mpr__hs_sender hs;
    unsigned char buf[MPR__CHALLENGE_SIZE];
    int rc = mpr__hs_sender_hello(&hs, cred->id, cred->key, buf);
    if (rc == 0) {
        rc = mpr__stream_send_all(l->conn, buf, MPR__HELLO_SIZE, NULL, 0);
        if (rc == MPR_EPIPE)
            rc = MPR_EACCES; /* hung up on our HELLO */
    }
    if (rc == 0)
        rc = recv_exact(l->conn, buf, MPR__CHALLENGE_SIZE, deadline);
    mpr__fd shm = MPR__NO_FD;
    if (rc == 0 && *ring_kept &&
        mpr__ring_create(&l->ring, MPR__RING_DEFAULT, l->conn, &shm) < 0)
        shm = MPR__NO_FD; /* no shared memory here: frames on the connection still work */
    unsigned char proof[MPR__PROOF_SIZE];
    if (rc == 0) {
        rc = mpr__hs_sender_challenge(&hs, buf, shm >= 0 ? MPR__PROOF_RING : 0, proof);
        if (rc == MPR_EPROTO)
            rc = MPR_ECONNREFUSED; /* not a router of ours */
    }
    if (rc == 0) {
        rc = mpr__ipc_send_shm(l->conn, proof, sizeof proof, shm);
        if (rc == MPR_EPIPE)
            rc = MPR_EACCES; /* the router hung up on us */
    }
    mpr__wipe(proof, sizeof proof);
    mpr__fd_close(shm); /* the mapping stays; the router has its own copy */
    if (rc == 0)
        rc = recv_exact(l->conn, buf, MPR__ACK_SIZE, deadline);
    if (rc == 0)
        rc = mpr__hs_sender_ack(&hs, buf);
    if (rc == 0 && hs.mode == MPR__MODE_REMOTE)
        rc = MPR_EPROTO;
    *ring_kept = rc == 0 && hs.mode == MPR__MODE_RING && shm >= 0;
    if (!*ring_kept)
        mpr__ring_unmap(&l->ring, 0); /* the router could not take it: frames */
    l->base.max_msg = hs.max_msg;
    return rc;
}

/* ---- the way back ---- */

/* Parse the whole items at the front of l->in. */
static void take_items(local_link *l)
{
    size_t off = 0;
    while (!l->gone) {
        mpr__ctl_item it;
        int rc = mpr__ctl_item_next(l->in + off, l->in_len - off, &it);
        if (rc == 0)
            break;
        if (rc < 0) {
            l->gone = 1; /* our router wrote nonsense: the way back is broken */
            break;
        }
        if (it.type == MPR__CTL_CANCEL) {
            l->tag = it.tag;
        } else if (it.type == MPR__CTL_MSG) {
            if (l->held >= MPR_CONTROL_QUEUE_SIZE) {
                if (!l->frames)
                    break; /* ring mode: full, leave it where it is */
                if (l->held >= MPR_CONTROL_QUEUE_SIZE + MPR_CONTROL_MAX_SIZE) {
                    l->gone = 1; /* beyond the router's window: it broke the way back */
                    break;
                }
            }
            cmsg *m = malloc(sizeof *m + it.size);
            if (!m)
                break; /* try again later */
            m->next = NULL;
            m->size = it.size;
            if (it.size)
                memcpy(m->data, it.data, it.size);
            if (l->tail)
                l->tail->next = m;
            else
                l->head = m;
            l->tail = m;
            l->held += it.size;
        }
        off += it.used;
    }
    if (off > 0) {
        memmove(l->in, l->in + off, l->in_len - off);
        l->in_len -= off;
    }
}

/* Frames mode: write what the application took as TOOK words, without
 * blocking (block: finish a word begun, before a frame follows it). 0,
 * or an error of the connection. */
static int say_took(local_link *l, int block)
{
    for (;;) {
        if (l->took_off >= sizeof l->took_word) {
            if (l->took_unsaid == 0)
                return 0;
            uint32_t n = l->took_unsaid > MPR__WIRE_TOOK_MAX ? MPR__WIRE_TOOK_MAX
                                                             : (uint32_t)l->took_unsaid;
            mpr__put_u32(l->took_word, MPR__WIRE_TOOK | n);
            l->took_unsaid -= n;
            l->took_off = 0;
        }
        size_t left = sizeof l->took_word - l->took_off;
        if (block) {
            int rc = mpr__stream_send_all(l->conn, l->took_word + l->took_off, left, NULL, 0);
            if (rc < 0)
                return rc;
            l->took_off = sizeof l->took_word;
            continue;
        }
        long w = mpr__stream_send_some(l->conn, l->took_word + l->took_off, left);
        if (w == MPR_EAGAIN)
            return 0; /* later: at the next recv, cancelled or send */
        if (w < 0)
            return (int)w;
        l->took_off += (size_t)w;
    }
}

/* Wait up to timeout_ms (0: not at all) for the connection, read what it
 * has and take its items. Reads nothing while the messages not taken
 * hold the bound: then only waits. */
static void pump(local_link *l, int timeout_ms)
{
    if (l->gone)
        return;
    if (l->frames)
        say_took(l, 0); /* what could not be written before */
    if (!l->frames && l->held >= MPR_CONTROL_QUEUE_SIZE) {
        if (timeout_ms > 0)
            mpr__wait(NULL, 0, timeout_ms);
        return;
    }
    /* The sender's connection blocks (its sends wait for room): read only
     * what poll says is there, so that pump never blocks past timeout_ms. */
    mpr__waitfd w = {l->conn, MPR__WAIT_IN, 0};
    for (int first = 1;; first = 0) {
        w.ready = 0;
        if (mpr__wait(&w, 1, first ? timeout_ms : 0) <= 0)
            return;
        if (l->in_cap - l->in_len < READ_CHUNK) {
            size_t cap = l->in_cap ? l->in_cap * 2 : READ_CHUNK * 2;
            unsigned char *p = realloc(l->in, cap);
            if (!p)
                return; /* try again later */
            l->in = p;
            l->in_cap = cap;
        }
        long n = mpr__stream_recv(l->conn, l->in + l->in_len, l->in_cap - l->in_len);
        if (n == MPR_EAGAIN)
            return;
        if (n <= 0) {
            l->gone = 1; /* the end of the stream: the router has gone */
            return;
        }
        l->in_len += (size_t)n;
        take_items(l);
        if (l->gone || (!l->frames && l->held >= MPR_CONTROL_QUEUE_SIZE))
            return;
    }
}

/* The ring's writer waits for room (without futexes): a ROOM item, or
 * anything else on the way back, wakes it. */
static void wait_conn(void *arg, int timeout_ms)
{
    pump(arg, timeout_ms);
}

static int link_recv(mpr__link *base, void *buf, size_t size, size_t *length, int64_t deadline)
{
    local_link *l = (local_link *)base;
    for (;;) {
        if (l->head) {
            cmsg *m = l->head;
            *length = m->size;
            if (m->size > size)
                return MPR_EMSGSIZE;
            if (m->size)
                memcpy(buf, m->data, m->size);
            l->head = m->next;
            if (!l->head)
                l->tail = NULL;
            l->held -= m->size;
            if (l->frames) {
                l->took_unsaid += m->size;
                say_took(l, 0); /* a broken connection shows in pump and send */
            }
            free(m);
            return 0;
        }
        if (l->gone)
            return MPR_EPIPE;
        int64_t now = mpr__now_ns();
        if (deadline >= 0 && now >= deadline) {
            pump(l, 0); /* what has arrived already */
            if (l->head || l->gone)
                continue;
            return MPR_ETIMEDOUT;
        }
        int64_t ms = deadline < 0 ? 1000 : (deadline - now + 999999) / 1000000;
        pump(l, ms > 1000 ? 1000 : (int)ms);
    }
}

static uint64_t frames_cancelled(mpr__link *base)
{
    local_link *l = (local_link *)base;
    int64_t now = mpr__now_ns();
    if (now >= l->next_poll) {
        l->next_poll = now + POLL_EVERY_NS;
        pump(l, 0);
    }
    return l->tag;
}

static uint64_t ring_cancelled(mpr__link *base)
{
    local_link *l = (local_link *)base;
    mpr__ring_cancel_tag(&l->ring, &l->tag); /* keeps the last while it changes */
    return l->tag;
}

int mpr__local_start(const mpr__sender_cred *cred, int want_ring, mpr__link **out)
{
    local_link *l = calloc(1, sizeof *l);
    if (!l)
        return MPR_ENOMEM;
    l->conn = MPR__NO_FD;
    /* One wait for everything: a connection that waits in a full backlog
     * (the router is taking others' handshakes), then the answers. */
    const int64_t deadline = mpr__now_ns() + HANDSHAKE_TIMEOUT_NS;
    int rc = mpr__ipc_connect(cred->name, &l->conn, deadline);
    if (rc == 0 && !mpr__ipc_peer_is_us(l->conn))
        rc = MPR_ECONNREFUSED; /* another user took the name: not our router */
    int ring = want_ring;
    if (rc == 0)
        rc = handshake(cred, l, &ring, deadline);
    if (rc < 0) {
        mpr__fd_close(l->conn);
        free(l);
        return rc;
    }
    l->base.ops = ring ? &ring_ops : &frames_ops;
    l->frames = !ring;
    l->took_off = sizeof l->took_word;
    if (ring) {
        l->ring.wait_conn = wait_conn;
        l->ring.conn_arg = l;
    }
    *out = &l->base;
    return 0;
}

static void link_close(mpr__link *base)
{
    local_link *l = (local_link *)base;
    mpr__ring_unmap(&l->ring, 0);
    mpr__fd_close(l->conn);
    while (l->head) {
        cmsg *m = l->head;
        l->head = m->next;
        free(m);
    }
    free(l->in);
    free(l);
}

/* A forked copy: its handle and mapping are copies of the parent's, and
 * closing them touches nothing of the parent's stream. */
static void link_forget(mpr__link *base)
{
    link_close(base);
}

/* ---- frames ---- */

static int frames_send(mpr__link *base, const void *data, size_t size)
{
    local_link *l = (local_link *)base;
    int rc = say_took(l, 1); /* whole words before the frame */
    if (rc < 0)
        return rc;
    unsigned char hdr[4];
    mpr__put_u32(hdr, (uint32_t)size);
    return mpr__stream_send_all(l->conn, hdr, sizeof hdr, data, size);
}

static int frames_stop(mpr__link *base)
{
    local_link *l = (local_link *)base;
    int rc = say_took(l, 1);
    if (rc < 0)
        return rc;
    unsigned char bye[4];
    mpr__put_u32(bye, MPR__WIRE_BYE);
    return mpr__stream_send_all(l->conn, bye, sizeof bye, NULL, 0); /* MPR_EPIPE: the router has gone */
}

static const mpr__link_ops frames_ops = {frames_send, frames_stop, link_close,
                                         link_forget, link_recv,   frames_cancelled};

/* ---- ring ---- */

static int ring_send(mpr__link *base, const void *data, size_t size)
{
    return mpr__ring_put_message(&((local_link *)base)->ring, data, size);
}

static int ring_stop(mpr__link *base)
{
    /* MPR_EPIPE if the router has gone: what it had not read is lost. */
    return mpr__ring_put(&((local_link *)base)->ring, MPR__RING_BYE, NULL, 0);
}

static const mpr__link_ops ring_ops = {ring_send,   ring_stop, link_close,
                                       link_forget, link_recv, ring_cancelled};
