/*
 * remote_router.c - the router's remote endpoint: senders on other
 * machines, in containers or in other network namespaces, over ZeroMQ
 * (tcp, CURVE always; the frames are in wire.h). The sending end is
 * remote_sender.c.
 *
 * The monitor thread only; ZeroMQ never leaves it. At start the
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
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "base.h"
#include "transport.h"

#define MAX_PEERS 1024           /* remote senders (and handshakes) at once */
#define PEER_BUCKETS 256
#define MAX_ZOMBIES 4096
#define READ_BUDGET 256          /* messages per round */
#define CREDIT_WINDOW (8u << 20) /* DATA bytes beyond what was taken, at most */
#define CHECK_EVERY_NS (100 * 1000000)
#define LINGER_MS 100            /* for the last STATE to leave at stop */
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define MON_ENDPOINT "inproc://mprouter-monitor"

typedef struct zmq_ep zmq_ep;
typedef struct remote_conn {
    mpr__conn base;
    zmq_ep *ep;
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

typedef struct zwatch {
    mpr__watch w;
    zmq_ep *ep;
} zwatch;

struct zmq_ep {
    mpr__monitor *m;
    mpr__poller *poller;
    char *curve_secret; /* Z85, in a wipe-on-fork page */
    void *ctx, *sock, *zap, *mon;
    zwatch w_sock, w_zap, w_mon;
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
};

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

static int64_t window_ns(const zmq_ep *ep)
{
    return mpr__monitor_settings(ep->m)->window_ns;
}

/* Send one frame to a routing id (dropped by ZeroMQ if that connection is
 * gone: every message here is repeated or answered again later). */
static void send_to(zmq_ep *ep, const unsigned char *rid, size_t rid_len, const void *p, size_t n)
{
    if (zmq_send(ep->sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) == (int)rid_len)
        zmq_send(ep->sock, p, n, ZMQ_DONTWAIT);
}

static void send_state(zmq_ep *ep, const unsigned char *rid, size_t rid_len, uint32_t flags,
                       uint64_t seq, uint64_t credit)
{
    mpr__state st = {flags, seq, credit, (uint32_t)(window_ns(ep) / 1000000)};
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
    size_t room = mpr__monitor_room(ep->m);
    if (!mpr__monitor_throttled(ep->m)) {
        uint64_t window = room < CREDIT_WINDOW ? room : CREDIT_WINDOW;
        if (window < MPR__FRAME_MAX)
            window = MPR__FRAME_MAX;
        if (c->bytes + window > c->credit)
            c->credit = c->bytes + window;
    }
    send_state(ep, c->rid, c->rid_len, 0, c->seq, c->credit);
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
    z->until = mpr__now_ns() + 2 * window_ns(ep);
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
    zmq_ep *ep = c->ep;
    for (remote_conn **p = &ep->buckets[bucket_of(c->key)]; *p; p = &(*p)->hnext) {
        if (*p == c) {
            *p = c->hnext;
            break;
        }
    }
    ep->npeers--;
    /* Tell it (best effort; otherwise it notices the silence). */
    send_state(ep, c->rid, c->rid_len, MPR__STATE_GONE, c->seq, c->credit);
    if (c->open)
        remember(ep, c);
}

static const mpr__conn_ops remote_conn_ops = {
    .drain = NULL,
    .sync_mark = NULL, /* the endpoint's sync reads what has arrived */
    .final_drain = NULL,
    .close = remote_close,
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
        unsigned char challenge[MPR__CHALLENGE_SIZE];
        if (mpr__conn_hello(b, f->body, challenge) < 0) { /* warned */
            mpr__conn_refused(b, NULL);
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
    uint32_t flags, status;
    if (mpr__conn_proof(b, f->body, &flags) < 0) { /* warned */
        mpr__conn_refused(b, NULL);
        return;
    }
    if (flags != 0) {
        mpr__conn_refused(b, "protocol error");
        return;
    }
    if (mpr__conn_accept(b, &status) < 0) {
        mpr__conn_refused(b, NULL);
        return;
    }
    ack.status = status;
    mpr__ack_encode(out, &ack);
    send_to(ep, c->rid, c->rid_len, out, sizeof out);
    if (status != MPR__ACK_OK) {
        mpr__conn_refused(b, NULL);
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
static void on_message(zmq_ep *ep, zmq_msg_t *rid, zmq_msg_t *msg)
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
            send_state(ep, zmq_msg_data(rid), zmq_msg_size(rid), MPR__STATE_GONE, z->seq, z->bytes);
            return;
        }
        char peer[64];
        snprintf(peer, sizeof peer, "tcp://%s", addr ? addr : "?");
        if (rc < 0 || f.kind != MPR__HELLO_MAGIC) {
            mpr__monitor_refuse(ep->m, peer, "protocol error (no HELLO)");
            send_state(ep, zmq_msg_data(rid), zmq_msg_size(rid), MPR__STATE_GONE, 0, 0);
            return;
        }
        c = calloc(1, sizeof *c);
        if (!c) {
            mpr__monitor_refuse(ep->m, peer, "out of memory");
            return;
        }
        c->ep = ep;
        memcpy(c->key, key, 41);
        c->hnext = ep->buckets[bucket_of(key)];
        ep->buckets[bucket_of(key)] = c;
        ep->npeers++;
        c->rid_len = zmq_msg_size(rid);
        memcpy(c->rid, zmq_msg_data(rid), c->rid_len);
        c->heard_ns = mpr__now_ns();
        mpr__conn_add(ep->m, &c->base, &remote_conn_ops, peer);
        if (find_peer(ep, key) != c)
            return; /* dropped at once: too many handshakes waiting */
        on_handshake(ep, c, &f);
        return;
    }
    c->heard_ns = mpr__now_ns();
    c->rid_len = zmq_msg_size(rid); /* answers go to its latest connection */
    memcpy(c->rid, zmq_msg_data(rid), c->rid_len);
    if (rc < 0) {
        if (c->open)
            mpr__conn_end(&c->base, MPR_EPROTO);
        else
            mpr__conn_refused(&c->base, "protocol error");
        return;
    }
    switch (f.kind) {
    case MPR__HELLO_MAGIC:
    case MPR__PROOF_MAGIC:
        on_handshake(ep, c, &f);
        break;
    case MPR__DATA_MAGIC:
        if (!c->open) {
            mpr__conn_refused(&c->base, "data before the handshake");
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
            mpr__conn_refused(&c->base, "closed before the handshake");
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
static void read_messages(zmq_ep *ep, int budget)
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
            on_message(ep, &rid, &msg);
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
static void serve_zap(zmq_ep *ep)
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
static void read_events(zmq_ep *ep)
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
                mpr__monitor_refuse(ep->m, peer,
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
static void service(zmq_ep *ep, int budget)
{
    if (has_input(ep->zap))
        serve_zap(ep);
    if (has_input(ep->mon))
        read_events(ep);
    read_messages(ep, budget);
    int throttled = mpr__monitor_throttled(ep->m);
    ep->unthrottled |= ep->throttled && !throttled;
    ep->throttled = throttled;
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

static void on_zmq_event(mpr__watch *w)
{
    service(MPR__CONTAINER_OF(w, zwatch, w)->ep, READ_BUDGET);
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

/* The endpoint workers reach: the advertised host (or the bound address,
 * or this host's name for a wildcard) and the bound port. */
static int advertise(zmq_ep *ep, char *out, size_t size)
{
    char bound[256];
    size_t len = sizeof bound;
    if (zmq_getsockopt(ep->sock, ZMQ_LAST_ENDPOINT, bound, &len) < 0)
        return mpr__errno_code(zmq_errno());
    const char *colon = strrchr(bound, ':');
    if (strncmp(bound, "tcp://", 6) != 0 || !colon)
        return MPR_EINVAL;
    char host[200];
    const char *advertised = mpr__monitor_settings(ep->m)->remote_host;
    if (advertised) {
        snprintf(host, sizeof host, "%s", advertised);
    } else {
        snprintf(host, sizeof host, "%.*s", (int)(colon - bound - 6), bound + 6);
        if (!strcmp(host, "0.0.0.0") || !strcmp(host, "[::]") || !strcmp(host, "*")) {
            int rc = mpr__hostname(host, sizeof host);
            if (rc < 0)
                return rc;
        }
    }
    int n = snprintf(out, size, "tcp://%s%s", host, colon);
    return n > 0 && (size_t)n < size ? 0 : MPR_EINVAL;
}

static int ep_open(mpr__monitor *m, void **state)
{
    zmq_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return MPR_ENOMEM;
    *state = ep;
    ep->m = m;
    ep->poller = mpr__monitor_poller(m);
    const mpr__settings *set = mpr__monitor_settings(m);
    ep->w_sock.w.fd = ep->w_zap.w.fd = ep->w_mon.w.fd = -1;
    ep->curve_secret = mpr__secure_alloc(41);
    if (!ep->curve_secret)
        return MPR_ENOMEM;
    ep->ctx = zmq_ctx_new();
    if (!ep->ctx)
        return mpr__errno_code(zmq_errno());
    zmq_ctx_set(ep->ctx, ZMQ_BLOCKY, 0);
    char public_key[41];
    if (zmq_curve_keypair(public_key, ep->curve_secret) < 0)
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
    int64_t handshake_ms = set->handshake_ns / 1000000;
    if ((rc = opt_int(ep->sock, ZMQ_CURVE_SERVER, 1)) < 0 ||
        (rc = opt(ep->sock, ZMQ_CURVE_SECRETKEY, ep->curve_secret, 40)) < 0 ||
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
    if (zmq_bind(ep->sock, set->remote_bind) < 0)
        return zmq_errno() == EINVAL ? MPR_EINVAL : mpr__errno_code(zmq_errno());
    char endpoint[256];
    if ((rc = advertise(ep, endpoint, sizeof endpoint)) < 0)
        return rc;
    mpr__monitor_set_remote(m, endpoint, public_key);
    struct {
        zwatch *w;
        void *sock;
    } watched[] = {{&ep->w_sock, ep->sock}, {&ep->w_zap, ep->zap}, {&ep->w_mon, ep->mon}};
    for (size_t i = 0; i < MPR__ARRAY_SIZE(watched); i++) {
        int fd;
        size_t len = sizeof fd;
        if (zmq_getsockopt(watched[i].sock, ZMQ_FD, &fd, &len) < 0)
            return mpr__errno_code(zmq_errno());
        watched[i].w->w.on_event = on_zmq_event;
        watched[i].w->ep = ep;
        /* In the always-set too: handshakes, heartbeats and credit go on;
         * credit is what holds remote senders back. */
        if ((rc = mpr__poller_add(ep->poller, &watched[i].w->w, fd, 1)) < 0)
            return rc;
    }
    return 0;
}

static int64_t ep_tick(void *state, int64_t now)
{
    zmq_ep *ep = state;
    flush_owed(ep);
    if (ep->more || ep->throttled != mpr__monitor_throttled(ep->m)) {
        service(ep, READ_BUDGET);
        flush_owed(ep);
    }
    if (now >= ep->next_check) {
        /* Senders not heard from for the window are lost. */
        ep->next_check = now + CHECK_EVERY_NS;
        for (unsigned b = 0; b < PEER_BUCKETS; b++) {
            remote_conn *c = ep->buckets[b];
            while (c) {
                remote_conn *next = c->hnext;
                if (c->open && now - c->heard_ns > window_ns(ep))
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

static void ep_sync(void *state)
{
    zmq_ep *ep = state;
    service(ep, -1);
    flush_owed(ep);
}

static void ep_close(void *state)
{
    zmq_ep *ep = state;
    if (!ep)
        return;
    /* The connections are closed (each told "gone"); now the sockets. */
    zwatch *watches[] = {&ep->w_sock, &ep->w_zap, &ep->w_mon};
    for (size_t i = 0; i < MPR__ARRAY_SIZE(watches); i++)
        if (watches[i]->w.fd >= 0)
            mpr__poller_del(ep->poller, &watches[i]->w);
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
    mpr__secure_free(ep->curve_secret, 41);
    free(ep);
}

const mpr__endpoint_ops mpr__remote_endpoint = {
    .name = "remote",
    .open = ep_open,
    .tick = ep_tick,
    .sync = ep_sync,
    .close = ep_close,
};
