/*
 * transport_zmq.c - the remote transport: senders on other machines, in
 * containers or in other network namespaces, over ZeroMQ (tcp, CURVE
 * always; the frames are in wire.h).
 *
 * ROUTER SIDE (the monitor thread; ZeroMQ never leaves it). At start the
 * router makes a fresh CURVE key pair and binds a ROUTER socket; a sender's
 * string carries the public key, so a worker talks only to this router and
 * everything on the wire is encrypted. A ZAP handler (the ZeroMQ way to
 * authenticate) admits any CURVE client up to MAX_PEERS and names each
 * connection by its client key, so a sender keeps its identity across
 * reconnections and nobody else can take it over. The pipe is then proved
 * inside that channel with the same handshake as locally (HELLO,
 * CHALLENGE, PROOF, ACK). A socket monitor reports connections that fail
 * the ZeroMQ handshake (no CURVE, a wrong server key, garbage, refused by
 * ZAP): each is warned about (rate-limited) and counted as rejected.
 *
 * The descriptors of the ZeroMQ sockets (ZMQ_FD) are in the monitor's
 * epoll sets. They are edge-triggered: after a wake-up the sockets are
 * read until ZMQ_EVENTS has no POLLIN (in rounds of READ_BUDGET messages,
 * the rest in the next round), and ZMQ_EVENTS is looked at again after
 * every send.
 *
 * Delivery: DATA frames are numbered; the router takes a frame only after
 * the one before, answers STATE (the last frame taken, the credit), and
 * drops repeats. Credit bounds what a sender may have sent beyond what
 * the router took (CREDIT_WINDOW); while the queue is throttled no credit
 * is given, so remote senders wait too. A sender not heard from for the
 * reconnect window is lost, like a crashed local worker. A sender that
 * ended is remembered for a while (a "zombie"), so its repeats are still
 * answered.
 *
 * SENDER SIDE. A started remote sender has a thread of its own that owns
 * the DEALER socket. mpr_sender_send writes into a private ring (the same
 * ring as the local transport, in private memory, woken through an
 * eventfd); the thread packs whatever records are there into frames (many
 * small messages share one encrypted frame), keeps every frame until the
 * router took it and sends again what was not taken after a reconnect.
 * When credit runs out the thread stops reading the ring, the ring fills
 * and send waits: backpressure. mpr_sender_stop returns 0 once the router
 * has taken everything, BYE included.
 */
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "internal.h"
#include "ring.h"
#include "router_p.h"
#include "sender_p.h"

#define MAX_PEERS 1024           /* remote senders (and handshakes) at once */
#define PEER_BUCKETS 256
#define MAX_ZOMBIES 4096
#define READ_BUDGET 256          /* messages per round */
#define CREDIT_WINDOW (8u << 20) /* DATA bytes beyond what was taken, at most */
#define CHECK_EVERY_NS (100 * 1000000)
#define LINGER_MS 100            /* for the last STATE to leave at stop */
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MON_ENDPOINT "inproc://mprouter-monitor"

/* ==================================================================== */
/* router side                                                          */

typedef struct remote_conn {
    mpr__conn base;
    struct remote_conn *hnext;
    char key[41];                /* the client's CURVE public key (Z85) */
    unsigned char rid[256];      /* ZeroMQ routing id of its latest connection */
    size_t rid_len;
    uint64_t seq;                /* the last DATA frame taken */
    uint64_t bytes;              /* DATA bytes taken */
    uint64_t credit;             /* credit given so far */
    int64_t heard_ns;
    int open;                    /* the PROOF was accepted */
    int dirty;                   /* owes a STATE */
} remote_conn;

typedef struct zombie {
    struct zombie *next;
    char key[41];
    uint64_t seq, bytes;
    int64_t until;
} zombie;

typedef struct zmq_ep {
    void *ctx, *sock, *zap, *mon;
    mpr__watch w_sock, w_zap, w_mon;
    remote_conn *buckets[PEER_BUCKETS];
    unsigned npeers;
    zombie *zombies, *zombie_tail;
    unsigned nzombies;
    int more;        /* messages were left after a round's budget */
    int throttled;   /* as of the last round: credit is given when it ends */
    int owed;        /* STATEs may be owed (sent by flush_owed) */
    int unthrottled; /* the queue's throttle ended since the last flush */
    int64_t next_check;
    /* Connections ZeroMQ accepted that have not yet sent us a message (a
     * bit per descriptor), and why the last ZeroMQ handshake failed: a
     * connection that goes before its first message is counted as
     * rejected once, with that reason. */
    uint64_t *pending;
    size_t pending_words;
    const char *failure;
} zmq_ep;

static unsigned bucket_of(const char *key)
{
    uint32_t h = 2166136261u;
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % PEER_BUCKETS;
}

static remote_conn *find_peer(zmq_ep *ep, const char *key)
{
    for (remote_conn *c = ep->buckets[bucket_of(key)]; c; c = c->hnext)
        if (strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

static zombie *find_zombie(zmq_ep *ep, const char *key)
{
    for (zombie *z = ep->zombies; z; z = z->next)
        if (strcmp(z->key, key) == 0)
            return z;
    return NULL;
}

static int64_t window_ns(const mpr_router *r)
{
    return r->remote_window_ns;
}

/* Send one frame to a routing id (dropped by ZeroMQ if that connection is
 * gone: every message here is repeated or answered again later). */
static void send_to(zmq_ep *ep, const unsigned char *rid, size_t rid_len, const void *p, size_t n)
{
    if (zmq_send(ep->sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)rid_len)
        zmq_send(ep->sock, p, n, ZMQ_DONTWAIT);
}

static void send_state(zmq_ep *ep, const unsigned char *rid, size_t rid_len, uint32_t flags,
                       uint64_t seq, uint64_t credit, const mpr_router *r)
{
    mpr__state st = {flags, seq, credit, (uint32_t)(window_ns(r) / 1000000)};
    unsigned char out[MPR__STATE_SIZE];
    mpr__state_encode(out, &st);
    send_to(ep, rid, rid_len, out, sizeof out);
}

/* The STATE a sender is owed: what was taken, and more credit unless the
 * queue is throttled: up to CREDIT_WINDOW beyond what was taken, within
 * the room the queue limit leaves, but never less than one frame while
 * the router reads (a sender must always be able to send its next record,
 * also while another sender's message in progress fills the room). */
static void flush_state(zmq_ep *ep, remote_conn *c)
{
    mpr_router *r = c->base.router;
    size_t room = mpr__queue_room(&r->queue);
    if (!mpr__throttled(r)) {
        uint64_t window = room < CREDIT_WINDOW ? room : CREDIT_WINDOW;
        if (window < MPR__FRAME_MAX)
            window = MPR__FRAME_MAX;
        if (c->bytes + window > c->credit)
            c->credit = c->bytes + window;
    }
    send_state(ep, c->rid, c->rid_len, 0, c->seq, c->credit, r);
    c->dirty = 0;
}

static void remember(zmq_ep *ep, const remote_conn *c)
{
    zombie *z = calloc(1, sizeof *z);
    if (!z)
        return; /* its repeats will be told "gone" without a count: harmless */
    memcpy(z->key, c->key, sizeof z->key);
    z->seq = c->seq;
    z->bytes = c->bytes;
    z->until = mpr__now_ns() + 2 * window_ns(c->base.router);
    if (ep->zombie_tail)
        ep->zombie_tail->next = z;
    else
        ep->zombies = z;
    ep->zombie_tail = z;
    if (++ep->nzombies > MAX_ZOMBIES) {
        zombie *old = ep->zombies;
        ep->zombies = old->next;
        if (!ep->zombies)
            ep->zombie_tail = NULL;
        free(old);
        ep->nzombies--;
    }
}

static void remote_close(mpr__conn *base)
{
    remote_conn *c = (remote_conn *)base;
    mpr_router *r = base->router;
    zmq_ep *ep = r->zmq_ep;
    for (remote_conn **p = &ep->buckets[bucket_of(c->key)]; *p; p = &(*p)->hnext) {
        if (*p == c) {
            *p = c->hnext;
            break;
        }
    }
    ep->npeers--;
    /* Tell it (best effort; otherwise it notices the silence). */
    send_state(ep, c->rid, c->rid_len, MPR__STATE_GONE, c->seq, c->credit, r);
    if (c->open)
        remember(ep, c);
}

static const mpr__conn_ops remote_conn_ops = {
    .drain = NULL,
    .sync_mark = NULL, /* the endpoint's sync reads what has arrived */
    .close = remote_close,
    .final_drain = NULL,
};

/* A frame of an authenticated sender. */
static void on_data(zmq_ep *ep, remote_conn *c, const mpr__remote_frame *f)
{
    if (f->seq != c->seq + 1) {
        c->dirty = 1; /* a repeat, or one past a lost frame: say where we are */
        return;
    }
    if (c->bytes + f->nrecords > c->credit) {
        mpr__conn_end(&c->base, MPR_EPROTO); /* beyond its credit */
        return;
    }
    const unsigned char *p = f->records;
    size_t left = f->nrecords;
    for (;;) {
        mpr__ring_rec rec;
        int rc = mpr__record_next(p, left, &rec);
        if (rc == 0)
            break;
        if (rc > 0)
            rc = mpr__conn_record(&c->base, &rec);
        if (rc < 0) {
            mpr__conn_end(&c->base, rc);
            return;
        }
        p += rec.size;
        left -= (size_t)rec.size;
    }
    c->seq = f->seq;
    c->bytes += f->nrecords;
    if (c->base.bye) {
        flush_state(ep, c); /* so its stop returns */
        mpr__conn_end(&c->base, 0);
        return;
    }
    c->dirty = 1;
}

static void on_handshake(zmq_ep *ep, remote_conn *c, const mpr__remote_frame *f)
{
    mpr__conn *b = &c->base;
    if (f->kind == MPR__HELLO_MAGIC) {
        if (!b->in_handshake)
            return; /* a repeat after the handshake */
        mpr__hello h;
        unsigned char challenge[MPR__CHALLENGE_SIZE];
        if (mpr__hello_decode(f->body, &h) < 0) {
            mpr__reject_warn(b->router, b->peer, 0, "protocol error");
            mpr__conn_reject(b);
            return;
        }
        if (mpr__hs_hello(b, &h, challenge) < 0) { /* warned */
            mpr__conn_reject(b);
            return;
        }
        send_to(ep, c->rid, c->rid_len, challenge, sizeof challenge);
        return;
    }
    /* PROOF */
    mpr__ack ack = {MPR__ACK_OK, MPR__MODE_REMOTE};
    unsigned char out[MPR__ACK_SIZE];
    if (c->open) { /* a repeat: its ACK was lost */
        mpr__ack_encode(out, &ack);
        send_to(ep, c->rid, c->rid_len, out, sizeof out);
        flush_state(ep, c);
        return;
    }
    mpr__proof p;
    uint32_t status = MPR__ACK_OK;
    if (!b->claimed || mpr__proof_decode(f->body, &p) < 0 || p.flags != 0) {
        mpr__reject_warn(b->router, b->peer, b->claimed, "protocol error");
        mpr__conn_reject(b);
        return;
    }
    if (mpr__hs_proof(b, &p, &status) < 0) {
        mpr__conn_reject(b);
        return;
    }
    ack.status = status;
    mpr__ack_encode(out, &ack);
    send_to(ep, c->rid, c->rid_len, out, sizeof out);
    if (status != MPR__ACK_OK) {
        mpr__conn_reject(b);
        return;
    }
    c->open = 1;
    flush_state(ep, c); /* its first credit */
}

static int pending_test(const zmq_ep *ep, int fd)
{
    return fd >= 0 && (size_t)fd / 64 < ep->pending_words &&
           (ep->pending[fd / 64] >> (fd % 64) & 1);
}

static void pending_set(zmq_ep *ep, int fd, int on)
{
    if (fd < 0)
        return;
    size_t word = (size_t)fd / 64;
    if (word >= ep->pending_words) {
        if (!on)
            return;
        size_t n = word + 16;
        uint64_t *p = realloc(ep->pending, n * sizeof *p);
        if (!p)
            return; /* then that one is not counted: harmless */
        memset(p + ep->pending_words, 0, (n - ep->pending_words) * sizeof *p);
        ep->pending = p;
        ep->pending_words = n;
    }
    if (on)
        ep->pending[word] |= (uint64_t)1 << (fd % 64);
    else
        ep->pending[word] &= ~((uint64_t)1 << (fd % 64));
}

/* One message from a remote sender: [routing id][frame]. */
static void on_message(mpr_router *r, zmq_ep *ep, zmq_msg_t *rid, zmq_msg_t *msg)
{
    pending_set(ep, zmq_msg_get(msg, ZMQ_SRCFD), 0); /* it got through CURVE and ZAP */
    const char *key = zmq_msg_gets(msg, "User-Id"); /* set by our ZAP handler */
    const char *addr = zmq_msg_gets(msg, "Peer-Address");
    if (!key || strlen(key) != 40 || zmq_msg_size(rid) > sizeof(((remote_conn *)0)->rid))
        return;
    mpr__remote_frame f;
    int rc = mpr__remote_parse(zmq_msg_data(msg), zmq_msg_size(msg), &f);
    remote_conn *c = find_peer(ep, key);
    if (!c) {
        zombie *z = find_zombie(ep, key);
        if (z) {
            /* Its frames after the end: it may still wait for the last STATE. */
            send_state(ep, zmq_msg_data(rid), zmq_msg_size(rid), MPR__STATE_GONE, z->seq, z->bytes, r);
            return;
        }
        char peer[64];
        snprintf(peer, sizeof peer, "tcp://%s", addr ? addr : "?");
        if (rc < 0 || f.kind != MPR__HELLO_MAGIC) {
            mpr__reject_warn(r, peer, 0, "protocol error (no HELLO)");
            send_state(ep, zmq_msg_data(rid), zmq_msg_size(rid), MPR__STATE_GONE, 0, 0, r);
            return;
        }
        c = calloc(1, sizeof *c);
        if (!c) {
            mpr__reject_warn(r, peer, 0, "out of memory");
            return;
        }
        memcpy(c->key, key, 41);
        c->hnext = ep->buckets[bucket_of(key)];
        ep->buckets[bucket_of(key)] = c;
        ep->npeers++;
        c->rid_len = zmq_msg_size(rid);
        memcpy(c->rid, zmq_msg_data(rid), c->rid_len);
        c->heard_ns = mpr__now_ns();
        mpr__conn_add(r, &c->base, &remote_conn_ops, peer);
        if (find_peer(ep, key) != c)
            return; /* dropped at once: too many handshakes waiting */
        on_handshake(ep, c, &f);
        return;
    }
    c->heard_ns = mpr__now_ns();
    c->rid_len = zmq_msg_size(rid); /* answers go to its latest connection */
    memcpy(c->rid, zmq_msg_data(rid), c->rid_len);
    if (rc < 0) {
        if (c->open) {
            mpr__conn_end(&c->base, MPR_EPROTO);
        } else {
            mpr__reject_warn(r, c->base.peer, c->base.claimed, "protocol error");
            mpr__conn_reject(&c->base);
        }
        return;
    }
    switch (f.kind) {
    case MPR__HELLO_MAGIC:
    case MPR__PROOF_MAGIC:
        on_handshake(ep, c, &f);
        break;
    case MPR__DATA_MAGIC:
        if (!c->open) {
            mpr__reject_warn(r, c->base.peer, c->base.claimed, "data before the handshake");
            mpr__conn_reject(&c->base);
        } else {
            on_data(ep, c, &f);
        }
        break;
    case MPR__HEART_MAGIC:
        if (c->open)
            c->dirty = 1;
        break;
    case MPR__ABORT_MAGIC:
        if (c->open)
            mpr__conn_end(&c->base, 0); /* freed without stop: lost */
        else
            mpr__conn_reject(&c->base);
        break;
    }
}

static int has_input(void *sock)
{
    int events = 0;
    size_t len = sizeof events;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN);
}

/* Read up to budget messages from the ROUTER socket (budget < 0: all). */
static void read_messages(mpr_router *r, zmq_ep *ep, int budget)
{
    zmq_msg_t rid, msg;
    zmq_msg_init(&rid);
    zmq_msg_init(&msg);
    for (int n = 0; budget < 0 || n < budget; n++) {
        if (zmq_msg_recv(&rid, ep->sock, ZMQ_DONTWAIT) < 0)
            break;
        if (!zmq_msg_more(&rid) || zmq_msg_recv(&msg, ep->sock, ZMQ_DONTWAIT) < 0)
            continue;
        int more = zmq_msg_more(&msg);
        if (!more)
            on_message(r, ep, &rid, &msg);
        while (more) { /* ours are never multipart: drop the rest */
            if (zmq_msg_recv(&msg, ep->sock, ZMQ_DONTWAIT) < 0)
                break;
            more = zmq_msg_more(&msg);
        }
    }
    zmq_msg_close(&rid);
    zmq_msg_close(&msg);
    ep->more = has_input(ep->sock);
}

/* The ZAP handler: any CURVE client, up to MAX_PEERS, named by its key. */
static void serve_zap(mpr_router *r, zmq_ep *ep)
{
    for (;;) {
        zmq_msg_t part[7];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, ep->zap, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                if (n == 0)
                    return;
                break;
            }
            more = zmq_msg_more(&m);
            if (n < 7)
                part[n++] = m;
            else
                zmq_msg_close(&m);
        }
        /* version, request id, domain, address, identity, mechanism, key */
        const char *status = "200", *text = "OK";
        char user[41] = "";
        if (n != 7 || zmq_msg_size(&part[5]) != 5 || memcmp(zmq_msg_data(&part[5]), "CURVE", 5) ||
            zmq_msg_size(&part[6]) != 32) {
            status = "400";
            text = "CURVE only";
        } else {
            zmq_z85_encode(user, zmq_msg_data(&part[6]), 32);
            /* At the cap only senders we know may come (back): a broken
             * connection of one of them must be able to heal. */
            if (ep->npeers >= MAX_PEERS && !find_peer(ep, user) && !find_zombie(ep, user)) {
                status = "300";
                text = "too many remote senders";
                user[0] = '\0';
            }
        }
        (void)r;
        const void *rq = n > 1 ? zmq_msg_data(&part[1]) : "";
        size_t rq_len = n > 1 ? zmq_msg_size(&part[1]) : 0;
        zmq_send(ep->zap, "1.0", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(ep->zap, rq, rq_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(ep->zap, status, 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(ep->zap, text, strlen(text), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(ep->zap, user, strlen(user), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(ep->zap, "", 0, ZMQ_DONTWAIT);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
    }
}

static const char *handshake_failure(int event, int value)
{
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return value == 300 ? "refused: too many remote senders" : "refused: not a CURVE client";
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            return "no CURVE (plaintext or another mechanism)";
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC ||
            value == ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE)
            return "CURVE failed (not this router's key)";
        return "ZeroMQ protocol error";
    }
    return "handshake failed (timeout or broken connection)";
}

/* Socket monitor events: a connection that ZeroMQ accepted and that goes
 * before it sends us anything failed the ZeroMQ handshake (no CURVE, a
 * wrong key, garbage, silence, refused by ZAP) or gave up: rejected. */
static void read_events(mpr_router *r, zmq_ep *ep)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        zmq_msg_init(&addr);
        if (zmq_msg_recv(&ev, ep->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            zmq_msg_close(&addr);
            return;
        }
        int ok = zmq_msg_more(&ev) && zmq_msg_recv(&addr, ep->mon, ZMQ_DONTWAIT) >= 0 &&
                 zmq_msg_size(&ev) == 6;
        if (ok) {
            const unsigned char *d = zmq_msg_data(&ev);
            int event = d[0] | d[1] << 8;
            int value = (int)mpr__get_u32(d + 2);
            if (event == ZMQ_EVENT_ACCEPTED) {
                pending_set(ep, value, 1);
            } else if (event & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) {
                ep->failure = handshake_failure(event, value); /* its disconnect follows */
            } else if (event == ZMQ_EVENT_DISCONNECTED && pending_test(ep, value)) {
                pending_set(ep, value, 0);
                char peer[96];
                snprintf(peer, sizeof peer, "a tcp peer at %.*s", (int)zmq_msg_size(&addr),
                         (const char *)zmq_msg_data(&addr));
                mpr__reject_warn(r, peer, 0,
                                 ep->failure ? ep->failure : "closed before the ZeroMQ handshake");
                ep->failure = NULL;
            }
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
    }
}

/* Everything that is waiting on the three sockets. The STATEs this owes
 * wait for flush_owed: the monitor first wakes the main thread for what
 * was read, then encrypts the acknowledgements (latency). */
static void service(mpr_router *r, int budget)
{
    zmq_ep *ep = r->zmq_ep;
    if (has_input(ep->zap))
        serve_zap(r, ep);
    if (has_input(ep->mon))
        read_events(r, ep);
    read_messages(r, ep, budget);
    ep->unthrottled |= ep->throttled && !mpr__throttled(r);
    ep->throttled = mpr__throttled(r);
    ep->owed = 1; /* flush_owed also sees what is left (ep->more) */
}

/* The STATEs owed since the last flush (the monitor's tick, and sync). */
static void flush_owed(zmq_ep *ep)
{
    if (!ep->owed)
        return;
    ep->owed = 0;
    for (unsigned b = 0; b < PEER_BUCKETS; b++)
        for (remote_conn *c = ep->buckets[b]; c; c = c->hnext)
            if (c->open && (c->dirty || ep->unthrottled))
                flush_state(ep, c);
    ep->unthrottled = 0;
    /* Sending may take in commands that ZMQ_FD will not signal again. */
    ep->more = has_input(ep->sock) || has_input(ep->zap) || has_input(ep->mon);
}

static void on_zmq_event(mpr_router *r, mpr__watch *w)
{
    (void)w;
    service(r, READ_BUDGET);
}

/* Set a ZeroMQ socket option; 0 or an MPR_ error. */
static int opt(void *sock, int name, const void *value, size_t len)
{
    return zmq_setsockopt(sock, name, value, len) == 0 ? 0 : mpr__errno_code(zmq_errno());
}

static int opt_int(void *sock, int name, int value)
{
    return opt(sock, name, &value, sizeof value);
}

/* The endpoint workers reach: advertised_host (or the bound address, or
 * this host's name for a wildcard) and the bound port. */
static int advertise(mpr_router *r, zmq_ep *ep)
{
    char bound[256];
    size_t len = sizeof bound;
    if (zmq_getsockopt(ep->sock, ZMQ_LAST_ENDPOINT, bound, &len) < 0)
        return mpr__errno_code(zmq_errno());
    const char *colon = strrchr(bound, ':');
    if (strncmp(bound, "tcp://", 6) != 0 || !colon)
        return MPR_EINVAL;
    char host[200];
    if (r->remote_host) {
        snprintf(host, sizeof host, "%s", r->remote_host);
    } else {
        snprintf(host, sizeof host, "%.*s", (int)(colon - bound - 6), bound + 6);
        if (!strcmp(host, "0.0.0.0") || !strcmp(host, "[::]") || !strcmp(host, "*")) {
            if (gethostname(host, sizeof host) < 0)
                return mpr__syserr();
            host[sizeof host - 1] = '\0';
        }
    }
    int n = snprintf(r->remote_endpoint, sizeof r->remote_endpoint, "tcp://%s%s", host, colon);
    return n > 0 && (size_t)n < sizeof r->remote_endpoint ? 0 : MPR_EINVAL;
}

static int zmq_open(mpr_router *r)
{
    zmq_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return MPR_ENOMEM;
    r->zmq_ep = ep;
    ep->w_sock.fd = ep->w_zap.fd = ep->w_mon.fd = -1;
    ep->ctx = zmq_ctx_new();
    if (!ep->ctx)
        return mpr__errno_code(zmq_errno());
    zmq_ctx_set(ep->ctx, ZMQ_BLOCKY, 0);
    if (zmq_curve_keypair(r->remote_key, r->sec->curve_secret) < 0)
        return zmq_errno() == ENOTSUP ? MPR_ENOTSUP : mpr__errno_code(zmq_errno());
    int rc = 0;
    /* The ZAP handler first: the ROUTER's handshakes need it. */
    ep->zap = zmq_socket(ep->ctx, ZMQ_REP);
    if (!ep->zap || zmq_bind(ep->zap, ZAP_ENDPOINT) < 0)
        return mpr__errno_code(zmq_errno());
    ep->sock = zmq_socket(ep->ctx, ZMQ_ROUTER);
    if (!ep->sock)
        return mpr__errno_code(zmq_errno());
    /* The largest frame, and what CURVE adds to it on the wire. */
    int64_t maxmsg = MPR__DATA_HDR + MPR__FRAME_MAX + 256;
    int64_t handshake_ms = r->handshake_ns / 1000000;
    if ((rc = opt_int(ep->sock, ZMQ_CURVE_SERVER, 1)) < 0 ||
        (rc = opt(ep->sock, ZMQ_CURVE_SECRETKEY, r->sec->curve_secret, 40)) < 0 ||
        (rc = opt(ep->sock, ZMQ_ZAP_DOMAIN, "mprouter", 8)) < 0 ||
        (rc = opt(ep->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg)) < 0 ||
        (rc = opt_int(ep->sock, ZMQ_RCVHWM, 32)) < 0 ||
        (rc = opt_int(ep->sock, ZMQ_SNDHWM, 256)) < 0 ||
        (rc = opt_int(ep->sock, ZMQ_LINGER, LINGER_MS)) < 0 ||
        (rc = opt_int(ep->sock, ZMQ_HANDSHAKE_IVL, handshake_ms > INT_MAX ? INT_MAX : (int)handshake_ms)) < 0 ||
        (rc = opt_int(ep->sock, ZMQ_HEARTBEAT_IVL, 1000)) < 0 ||
        (rc = opt_int(ep->sock, ZMQ_HEARTBEAT_TIMEOUT, 3000)) < 0)
        return rc;
    if (zmq_socket_monitor(ep->sock, MON_ENDPOINT,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) < 0)
        return mpr__errno_code(zmq_errno());
    ep->mon = zmq_socket(ep->ctx, ZMQ_PAIR);
    if (!ep->mon || zmq_connect(ep->mon, MON_ENDPOINT) < 0)
        return mpr__errno_code(zmq_errno());
    if (zmq_bind(ep->sock, r->remote_bind) < 0)
        return zmq_errno() == EINVAL ? MPR_EINVAL : mpr__errno_code(zmq_errno());
    if ((rc = advertise(r, ep)) < 0)
        return rc;
    struct {
        mpr__watch *w;
        void *sock;
    } watched[] = {{&ep->w_sock, ep->sock}, {&ep->w_zap, ep->zap}, {&ep->w_mon, ep->mon}};
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++) {
        int fd;
        size_t len = sizeof fd;
        if (zmq_getsockopt(watched[i].sock, ZMQ_FD, &fd, &len) < 0)
            return mpr__errno_code(zmq_errno());
        watched[i].w->on_event = on_zmq_event;
        /* In the throttled set too: handshakes, heartbeats and credit go
         * on; credit is what holds remote senders back. */
        if ((rc = mpr__watch_add(r, watched[i].w, fd, 1)) < 0)
            return rc;
    }
    return 0;
}

static int64_t zmq_tick(mpr_router *r, int64_t now)
{
    zmq_ep *ep = r->zmq_ep;
    flush_owed(ep);
    if (ep->more || ep->throttled != mpr__throttled(r)) {
        service(r, READ_BUDGET);
        flush_owed(ep);
    }
    if (now >= ep->next_check) {
        /* Senders not heard from for the window are lost. */
        ep->next_check = now + CHECK_EVERY_NS;
        for (unsigned b = 0; b < PEER_BUCKETS; b++) {
            remote_conn *c = ep->buckets[b];
            while (c) {
                remote_conn *next = c->hnext;
                if (c->open && now - c->heard_ns > window_ns(r))
                    mpr__conn_end(&c->base, 0);
                c = next;
            }
        }
        while (ep->zombies && ep->zombies->until <= now) {
            zombie *z = ep->zombies;
            ep->zombies = z->next;
            if (!ep->zombies)
                ep->zombie_tail = NULL;
            free(z);
            ep->nzombies--;
        }
    }
    return ep->more ? now : ep->next_check;
}

static void zmq_sync(mpr_router *r)
{
    service(r, -1);
    flush_owed(r->zmq_ep);
}

static void zmq_close_ep(mpr_router *r)
{
    zmq_ep *ep = r->zmq_ep;
    if (!ep)
        return;
    /* The connections are closed (each told "gone"); now the sockets. */
    mpr__watch *watches[] = {&ep->w_sock, &ep->w_zap, &ep->w_mon};
    for (size_t i = 0; i < 3; i++)
        if (watches[i]->fd >= 0)
            mpr__watch_del(r, watches[i]);
    if (ep->sock) {
        zmq_socket_monitor(ep->sock, NULL, 0);
        zmq_close(ep->sock);
    }
    if (ep->mon)
        zmq_close(ep->mon);
    if (ep->zap)
        zmq_close(ep->zap);
    if (ep->ctx)
        zmq_ctx_term(ep->ctx);
    while (ep->zombies) {
        zombie *z = ep->zombies;
        ep->zombies = z->next;
        free(z);
    }
    free(ep->pending);
    free(ep);
    r->zmq_ep = NULL;
}

const mpr__endpoint_ops mpr__zmq_endpoint = {
    .open = zmq_open,
    .tick = zmq_tick,
    .sync = zmq_sync,
    .close = zmq_close_ep,
};

/* ==================================================================== */
/* sender side                                                          */

#define RESEND_NS ((int64_t)1000 * 1000000)    /* no progress for this long: send again */
#define HEARTBEAT_NS ((int64_t)1000 * 1000000) /* idle: a HEART this often */
#define HELLO_AGAIN_NS ((int64_t)1000 * 1000000)
#define START_TIMEOUT_NS ((int64_t)10 * 1000000000)
#define SENDER_RING (1024u * 1024u)

/* The process's ZeroMQ context for remote senders, shared and counted; a
 * forked child makes its own (the parent's has no threads there). */
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static void *ctx_shared;
static unsigned ctx_users;
static uint64_t ctx_token;

static void *ctx_get(void)
{
    uint64_t token = mpr__process_token();
    pthread_mutex_lock(&ctx_lock);
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
    pthread_mutex_unlock(&ctx_lock);
    return ctx;
}

static void ctx_put(void *ctx)
{
    pthread_mutex_lock(&ctx_lock);
    int last = ctx == ctx_shared && --ctx_users == 0;
    if (last)
        ctx_shared = NULL;
    pthread_mutex_unlock(&ctx_lock);
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
    mpr_sender *s;
    void *ctx;
    pthread_t thread;
    int wake_fd;
    /* the start's result and the end, for the application's thread */
    pthread_mutex_t lock;
    pthread_cond_t cond;
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
        /* How much: whole records up to FRAME_MAX and the credit. */
        for (uint64_t pos = start;;) {
            uint64_t head = atomic_load_explicit(&ring->hdr->head, memory_order_acquire);
            mpr__ring_rec rec;
            int rc = mpr__ring_next(ring->data, ring->cap, pos, head, &rec);
            if (rc <= 0)
                break; /* empty (our own ring: never malformed) */
            if (rec.type == MPR__RING_PAD) {
                if (size)
                    break;
                pos += rec.size;
                start = ring->pos = pos;
                continue;
            }
            if (rs->sent_bytes + size + rec.size > rs->credit) {
                held = 1;
                break;
            }
            if (size + rec.size > MPR__FRAME_MAX ||
                (start & (ring->cap - 1)) + size + rec.size > ring->cap)
                break; /* a frame is one piece of the ring */
            size += rec.size;
            pos += rec.size;
            if (rec.type == MPR__RING_BYE) {
                bye = 1;
                break;
            }
        }
        if (size == 0) {
            if (ring->pos != start)
                mpr__ring_consumed(ring);
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
        ring->pos = start + size;
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
    mpr_sender *s = rs->s;
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
    explicit_bzero(sec, sizeof sec);
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
    mpr_sender *s = rs->s;
    int64_t deadline = mpr__now_ns() + START_TIMEOUT_NS;
    mpr__hello h = {.version = MPR__WIRE_VERSION, .conn_id = s->id, .flags = 0};
    if (mpr__random(h.nonce, sizeof h.nonce) < 0)
        return MPR_EIO;
    unsigned char hello[MPR__HELLO_SIZE], buf[64];
    mpr__hello_encode(hello, &h);
    int stage = 0; /* 0: waiting for CHALLENGE; 1: for ACK */
    unsigned char proof[MPR__PROOF_SIZE];
    int64_t again = 0;
    for (;;) {
        int64_t now = mpr__now_ns();
        if (now >= deadline)
            return MPR_ETIMEDOUT;
        if (now >= again) { /* lost in a broken connection: once more */
            zmq_send(rs->sock, stage ? proof : hello, stage ? sizeof proof : sizeof hello,
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
            mpr__challenge ch;
            mpr__ack ack;
            mpr__state st;
            if (stage == 0 && n == MPR__CHALLENGE_SIZE && mpr__challenge_decode(buf, &ch) == 0) {
                unsigned char tag[MPR__SECRET_SIZE];
                mpr__proof_tag(tag, s->key, 'r', s->id, h.nonce, ch.nonce);
                if (!mpr__secret_equal(tag, ch.proof))
                    return MPR_ECONNREFUSED; /* not our router */
                s->max_msg = ch.max_msg;
                mpr__proof p = {.flags = 0};
                mpr__proof_tag(p.proof, s->key, 's', s->id, ch.nonce, h.nonce);
                mpr__proof_encode(proof, &p);
                explicit_bzero(&p, sizeof p);
                stage = 1;
                again = 0;
            } else if (stage == 1 && n == MPR__ACK_SIZE && mpr__ack_decode(buf, &ack) == 0) {
                explicit_bzero(proof, sizeof proof);
                if (ack.status == MPR__ACK_TAKEN)
                    return MPR_EALREADY;
                return ack.mode == MPR__MODE_REMOTE ? 0 : MPR_EPROTO;
            } else if (mpr__state_decode(buf, (size_t)n, &st) == 0 && (st.flags & MPR__STATE_GONE)) {
                return MPR_EACCES; /* rejected */
            }
        }
    }
}

static void finish(remote_sender *rs, int rc)
{
    pthread_mutex_lock(&rs->lock);
    rs->done = 1;
    rs->stop_rc = rc;
    pthread_cond_broadcast(&rs->cond);
    pthread_mutex_unlock(&rs->lock);
}

static void *remote_thread(void *arg)
{
    remote_sender *rs = arg;
    int rc = connect_socket(rs);
    if (rc == 0)
        rc = remote_handshake(rs);
    stop_monitor(rs);
    pthread_mutex_lock(&rs->lock);
    rs->started = 1;
    rs->start_rc = rc;
    pthread_cond_broadcast(&rs->cond);
    pthread_mutex_unlock(&rs->lock);
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
        zmq_pollitem_t items[2] = {{rs->sock, 0, events, 0}, {NULL, rs->wake_fd, ZMQ_POLLIN, 0}};
        /* Sleep when credit holds us back (a STATE wakes us), when ZeroMQ
         * is full (room wakes us), or with the ring empty (the writer wakes
         * us). */
        long timeout = held || mpr__ring_try_sleep(&rs->ring) ? (long)deadline_ms(next, now) : 0;
        if (zmq_poll(items, 2, timeout) > 0 && (items[1].revents & ZMQ_POLLIN)) {
            uint64_t v;
            ssize_t r = read(rs->wake_fd, &v, sizeof v);
            (void)r;
        }
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
    if (rs->wake_fd >= 0)
        close(rs->wake_fd);
    if (rs->ctx)
        ctx_put(rs->ctx);
    pthread_cond_destroy(&rs->cond);
    pthread_mutex_destroy(&rs->lock);
    free(rs);
}

/* Wake the thread (a request changed). */
static void poke(remote_sender *rs)
{
    uint64_t one = 1;
    ssize_t r = write(rs->wake_fd, &one, sizeof one);
    (void)r;
}

static int remote_send(mpr_sender *s, const void *data, size_t size)
{
    return mpr__ring_put_message(&s->ring, data, size);
}

static int remote_stop(mpr_sender *s)
{
    remote_sender *rs = s->remote_state;
    int rc = mpr__ring_put(&s->ring, MPR__RING_BYE, NULL, 0);
    atomic_store(&rs->request, STOP_ASKED);
    poke(rs);
    pthread_mutex_lock(&rs->lock);
    while (!rs->done)
        pthread_cond_wait(&rs->cond, &rs->lock);
    pthread_mutex_unlock(&rs->lock);
    return rc < 0 ? rc : rs->stop_rc;
}

static void remote_close_sender(mpr_sender *s)
{
    remote_sender *rs = s->remote_state;
    if (!rs)
        return;
    atomic_store(&rs->request, ABORT_ASKED);
    poke(rs);
    pthread_join(rs->thread, NULL);
    mpr__ring_unmap(&s->ring, 0);
    remote_free(rs);
    s->remote_state = NULL;
}

static const mpr__sender_ops remote_sender_ops = {remote_send, remote_stop, remote_close_sender};

int mpr__remote_start(mpr_sender *s)
{
    if (!s->remote[0])
        return MPR_ECONNREFUSED; /* the router has no remote endpoint */
    remote_sender *rs = calloc(1, sizeof *rs);
    if (!rs)
        return MPR_ENOMEM;
    rs->s = s;
    pthread_mutex_init(&rs->lock, NULL);
    pthread_cond_init(&rs->cond, NULL);
    rs->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rs->ctx = ctx_get();
    int rc = rs->wake_fd < 0 ? mpr__syserr() : !rs->ctx ? mpr__errno_code(zmq_errno()) : 0;
    if (rc == 0)
        rc = mpr__ring_create_private(&s->ring, SENDER_RING, rs->wake_fd);
    if (rc == 0) {
        /* The same memory; the writer's and the reader's positions apart. */
        rs->ring = s->ring;
        rs->ring.pos = 0;
    }
    if (rc == 0) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = -pthread_create(&rs->thread, NULL, remote_thread, rs);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc < 0) {
            rc = mpr__errno_code(-rc);
            mpr__ring_unmap(&s->ring, 0);
        }
    }
    if (rc < 0) {
        remote_free(rs);
        return rc;
    }
    pthread_mutex_lock(&rs->lock);
    while (!rs->started)
        pthread_cond_wait(&rs->cond, &rs->lock);
    rc = rs->start_rc;
    pthread_mutex_unlock(&rs->lock);
    if (rc < 0) {
        pthread_join(rs->thread, NULL);
        mpr__ring_unmap(&s->ring, 0);
        remote_free(rs);
        return rc;
    }
    s->remote_state = rs;
    s->ops = &remote_sender_ops;
    return 0;
}
