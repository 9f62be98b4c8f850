/*
 * remote_router.c - the router's remote endpoint: senders on other
 * machines, in containers or in other network namespaces, over tcp with
 * ZeroMQ's protocol and its CURVE security (zmtp.c), then the handshake of
 * every transport (hs.h) and numbered frames of records (wire.h). The
 * sending end is remote_sender.c.
 *
 * Why our own listener and not libzmq's ROUTER socket: libzmq cannot
 * bound what a peer with only the public key makes it hold (the parts of
 * an unfinished multipart message), lets a peer choose a routing id that
 * later collides with one it assigns (an assertion: the process aborts),
 * never closes a CURVE connection that says nothing after its handshake,
 * and accepts until the process is out of descriptors. Here every link
 * (a tcp connection) is ours:
 *   - accepted a few a round, only while the process keeps its
 *     descriptor headroom, at most MAX_PENDING waiting to prove a pipe's
 *     key, each with a deadline from accept; when one more arrives, the
 *     one dropped is the one whose handshake moved last the longest ago
 *     (its accept, or its last step: greeting, CURVE HELLO, CURVE done,
 *     pipe HELLO; link_stage), so neither silent connections nor idle
 *     ones that got further push out a worker whose handshake goes on;
 *   - before the handshake it holds a few KiB (zmtp.c), before its pipe is
 *     proved its frames are the handshake's (a few dozen bytes);
 *   - what it owes us to read is bounded (LINK_OUT_MAX) or it is dropped;
 *   - its warnings name its own address.
 *
 * The way back: control messages are numbered (cseq) and cut into CTRL
 * frames of at most MPR__CTRL_PIECE bytes, fed to a link only while its
 * output is small (a big message never makes a link look like a peer
 * that does not read); each is kept until the sender says its
 * application took it (GOT), and sent again from its start on a new
 * link. Taken from the pipe's queue while what is kept stays within
 * MPR_CONTROL_QUEUE_SIZE. The cancel tag goes in a CANCEL frame, again on
 * every new link.
 *
 * A sender (a session, the monitor's connection) is named by its client
 * key, which CURVE proves: it keeps its identity across links, so a broken
 * link heals by reconnecting. Delivery: DATA frames are numbered; the
 * router takes a frame only after the one before, answers STATE (the last
 * frame taken, the credit), and drops repeats. Credit bounds what a sender
 * may have sent beyond what the router took (CREDIT_WINDOW); while the
 * queue is throttled no credit is given, so remote senders wait too. A
 * sender not heard from for the reconnect window is lost, like a crashed
 * local worker; any byte that arrives from it counts, so a slow link
 * whose frames take longer than the window to cross is not a lost one,
 * and while bytes arrive it gets a STATE at least every ANSWER_EVERY_NS
 * (its own heartbeat waits behind its frame). A sender that ended is remembered for a while (a
 * "zombie"), so its repeats are still answered.
 *
 * The monitor thread only.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "transport.h"
#include "zmtp.h"

#define MAX_SESSIONS 1024                /* remote senders at once */
#define MAX_PENDING MPR__MAX_HANDSHAKES  /* links not yet in an open session */
#define SESSION_BUCKETS 256
#define MAX_ZOMBIES 4096
#define ACCEPTS_PER_ROUND 16
#define ACCEPT_BACKOFF_NS (100 * 1000000)
#define READ_BUDGET (256u * 1024u)       /* bytes per link per event */
#define LINK_OUT_MAX (256u * 1024u)      /* owed to a peer that does not read */
#define CREDIT_WINDOW (8u << 20)         /* DATA bytes beyond what was taken, at most */
#define CHECK_EVERY_NS (100 * 1000000)
#define MAX_FRAME (MPR__DATA_HDR + MPR__FRAME_MAX)
#define CTL_OUT_HIGH (128u * 1024u)      /* feed CTRL frames to a link while its output is below */
#define CTL_RETRY_NS (2 * 1000000)       /* and look again this soon */
#define ANSWER_EVERY_NS (250 * 1000000)  /* bytes arriving: a STATE at least this often */

typedef struct remote_ep remote_ep;
typedef struct session session;

/* One tcp connection. */
typedef struct link {
    remote_ep *ep;
    mpr__watch watch;
    mpr__zmtp *z;
    struct link *prev, *next;   /* every link */
    struct link *pprev, *pnext; /* pending: not (yet) in an open session, oldest first */
    int pending;
    int64_t deadline;           /* pending: from accept */
    int64_t moved_ns;           /* pending: its accept or its handshake's last step */
    int stage;                  /* pending: link_stage when it last moved */
    session *s;                 /* its sender, once known */
    unsigned char key[MPR__ZMTP_KEY_SIZE]; /* the client key CURVE proved (READY) */
    int ready;
    int dead;                   /* closed: freed after the round (ep->dead) */
    unsigned sync_gen;          /* route_until: read in this sync */
    char peer[72];              /* "tcp 10.0.0.2:41234" */
} link;

/* One remote sender: the monitor's connection, across links. */
struct session {
    mpr__conn base; /* first: the monitor frees it */
    remote_ep *ep;
    session *hnext;
    unsigned char key[MPR__ZMTP_KEY_SIZE];
    link *link;                 /* its current link, or NULL between links */
    uint64_t seq;               /* the last DATA frame taken */
    uint64_t bytes;             /* DATA bytes taken */
    uint64_t credit;            /* credit given so far */
    int64_t heard_ns;           /* the last byte from it (any progress) */
    int64_t said_ns;            /* the last STATE to it */
    int open;                   /* the PROOF was accepted */
    int dirty;                  /* owes a STATE */
    /* the way back */
    uint64_t tag_sent;          /* the cancel tag sent on this link */
    mpr__ctl_msg *kept, *kept_tail; /* sent or to send, not yet taken, by cseq */
    size_t kept_bytes;
    uint64_t next_cseq;         /* the last cseq given */
    mpr__ctl_msg *unsent;       /* the first not (wholly) sent on this link */
    size_t unsent_off;          /* how much of it was */
};

typedef struct zombie {
    struct zombie *next;
    unsigned char key[MPR__ZMTP_KEY_SIZE];
    uint64_t seq, bytes;
    int64_t until;
} zombie;

/* Keys, in a wipe-on-fork page. */
typedef struct keys {
    unsigned char public_key[MPR__ZMTP_KEY_SIZE];
    unsigned char secret_key[MPR__ZMTP_KEY_SIZE];
    unsigned char cookie_key[MPR__ZMTP_KEY_SIZE];
} keys;

struct remote_ep {
    mpr__monitor *m;
    mpr__poller *poller;
    keys *keys;
    mpr__fd lfd;
    mpr__watch lwatch;
    int listening;
    int64_t paused_until;
    link *links, *pend_head, *pend_tail;
    link *dead;      /* closed links, freed at the next tick (after the round) */
    unsigned npending;
    session *buckets[SESSION_BUCKETS];
    unsigned nsessions;
    zombie *zombies, *zombie_tail;
    unsigned nzombies;
    int throttled;   /* as of the last look: credit is given when it ends */
    int64_t next_check;
    unsigned sync_gen;
    unsigned char *ctl_frame;   /* a CTRL frame being built (MPR__CTRL_HDR + MPR__CTRL_PIECE) */
    int ctl_waiting;            /* a session has CTRL frames its link could not take yet */
};

static const char REMOTE_ACCEPT[] = "cannot accept remote connections";

static int64_t window_ns(const remote_ep *ep)
{
    return mpr__monitor_settings(ep->m)->window_ns;
}

/* ---- sessions and zombies, by client key ---- */

static unsigned bucket_of(const unsigned char *key)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < MPR__ZMTP_KEY_SIZE; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % SESSION_BUCKETS;
}

static session *find_session(remote_ep *ep, const unsigned char *key)
{
    for (session *s = ep->buckets[bucket_of(key)]; s; s = s->hnext)
        if (memcmp(s->key, key, MPR__ZMTP_KEY_SIZE) == 0)
            return s;
    return NULL;
}

static zombie *find_zombie(remote_ep *ep, const unsigned char *key)
{
    for (zombie *z = ep->zombies; z; z = z->next)
        if (memcmp(z->key, key, MPR__ZMTP_KEY_SIZE) == 0)
            return z;
    return NULL;
}

static void remember(remote_ep *ep, const session *s)
{
    zombie *z = calloc(1, sizeof *z);
    if (!z)
        return; /* its repeats will be told "gone" without a count: harmless */
    memcpy(z->key, s->key, sizeof z->key);
    z->seq = s->seq;
    z->bytes = s->bytes;
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

/* ---- links ---- */

static void pending_unlink(remote_ep *ep, link *l)
{
    if (!l->pending)
        return;
    if (l->pprev)
        l->pprev->pnext = l->pnext;
    else
        ep->pend_head = l->pnext;
    if (l->pnext)
        l->pnext->pprev = l->pprev;
    else
        ep->pend_tail = l->pprev;
    l->pending = 0;
    ep->npending--;
}

/* How far a link waiting for its handshake has come (higher: further). */
static int link_stage(const link *l)
{
    return l->s ? 4 : mpr__zmtp_stage(l->z);
}

/* Note a step of a waiting link's handshake (each stage counts once: a
 * peer cannot stay fresh by talking without getting further). */
static void link_progress(link *l)
{
    int stage = link_stage(l);
    if (stage > l->stage) {
        l->stage = stage;
        l->moved_ns = mpr__now_ns();
    }
}

/* The link to drop when too many wait: the one whose handshake moved
 * last the longest ago (the first in accept order of those). Silent
 * connections never move; idle ones that got through CURVE with the
 * public key stop moving there; a worker's handshake moves every round
 * trip. Ordering by stage alone would let idle peers with the public key
 * (stage 3) push out every new worker (stage 0). */
static link *pending_victim(remote_ep *ep)
{
    link *victim = ep->pend_head;
    for (link *l = ep->pend_head; l; l = l->pnext)
        if (l->moved_ns < victim->moved_ns)
            victim = l;
    return victim;
}

/* Write what the link owes, as far as the connection takes it now. 0, or
 * < 0 if the link must go (the peer went, or reads nothing). */
static int link_flush(link *l)
{
    const unsigned char *out;
    size_t n;
    while ((n = mpr__zmtp_output(l->z, &out)) > 0) {
        long sent = mpr__stream_send_some(l->watch.fd, out, n);
        if (sent == MPR_EAGAIN)
            break;
        if (sent < 0)
            return (int)sent;
        mpr__zmtp_output_done(l->z, (size_t)sent);
    }
    return mpr__zmtp_output(l->z, &out) > LINK_OUT_MAX ? MPR_EIO : 0;
}

/* Close a link. Its memory waits for the next tick: its watch may still
 * have an event in this round's batch, and callers up the stack may look
 * at l->dead. */
static void link_free(link *l)
{
    remote_ep *ep = l->ep;
    if (l->dead)
        return;
    l->dead = 1;
    pending_unlink(ep, l);
    if (l->s && l->s->link == l)
        l->s->link = NULL;
    l->s = NULL;
    if (l->prev)
        l->prev->next = l->next;
    else
        ep->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    mpr__poller_del(ep->poller, &l->watch);
    mpr__stream_shutdown_close(l->watch.fd);
    mpr__zmtp_free(l->z);
    l->z = NULL;
    mpr__wipe(l->key, sizeof l->key);
    l->next = ep->dead;
    ep->dead = l;
}

static void free_dead(remote_ep *ep)
{
    while (ep->dead) {
        link *l = ep->dead;
        ep->dead = l->next;
        free(l);
    }
}

/* A link goes. One that belongs to no sender yet is a rejected
 * connection (warned and counted). One whose sender broke the protocol
 * (fatal) takes a sender still in its handshake with it (counted once, as
 * the sender). Otherwise the sender stays: it may come back on a new link
 * (within its handshake deadline, or the window once open). */
static void link_drop(link *l, const char *why, int fatal)
{
    session *s = l->s;
    if (s && !s->open && fatal) {
        mpr__conn_refused(&s->base, why); /* closes the link too */
        return;
    }
    if (!s && why)
        mpr__monitor_refuse(l->ep->m, l->peer, why);
    link_free(l);
}

/* Send one frame to a session's current link (dropped if it has none:
 * every message here is repeated or answered again later). */
static void send_frame(session *s, const void *p, size_t n)
{
    link *l = s->link;
    if (!l)
        return;
    if (mpr__zmtp_send(l->z, p, n) < 0 || link_flush(l) < 0)
        link_free(l);
}

static void send_state_to(link *l, uint32_t flags, uint64_t seq, uint64_t credit)
{
    mpr__state st = {flags, seq, credit, (uint32_t)(window_ns(l->ep) / 1000000)};
    unsigned char out[MPR__STATE_SIZE];
    mpr__state_encode(out, &st);
    mpr__zmtp_send(l->z, out, sizeof out);
}

/* The STATE a sender is owed: what was taken, and more credit unless the
 * queue is throttled: up to CREDIT_WINDOW beyond what was taken, within
 * the room the queue limit leaves, but never less than one frame while
 * the router reads (a sender must always be able to send its next record,
 * also while another sender's message in progress fills the room). */
static void flush_state(session *s)
{
    remote_ep *ep = s->ep;
    if (!mpr__monitor_throttled(ep->m)) {
        size_t room = mpr__monitor_room(ep->m);
        uint64_t window = room < CREDIT_WINDOW ? room : CREDIT_WINDOW;
        if (window < MPR__FRAME_MAX)
            window = MPR__FRAME_MAX;
        if (s->bytes + window > s->credit)
            s->credit = s->bytes + window;
    }
    s->dirty = 0;
    if (!s->link)
        return;
    s->said_ns = mpr__now_ns();
    send_state_to(s->link, 0, s->seq, s->credit);
    if (link_flush(s->link) < 0)
        link_free(s->link);
}

/* ---- sessions ---- */

static void session_close(mpr__conn *base)
{
    session *s = (session *)base;
    remote_ep *ep = s->ep;
    for (session **p = &ep->buckets[bucket_of(s->key)]; *p; p = &(*p)->hnext) {
        if (*p == s) {
            *p = s->hnext;
            break;
        }
    }
    ep->nsessions--;
    if (s->link) {
        /* Tell it (best effort; otherwise it notices the silence), then
         * hang up: the link belongs to nothing now. */
        link *l = s->link;
        send_state_to(l, MPR__STATE_GONE, s->seq, s->credit);
        link_flush(l);
        l->s = NULL;
        s->link = NULL;
        link_free(l);
    }
    if (s->open)
        remember(ep, s);
    while (s->kept) {
        mpr__ctl_msg *m = s->kept;
        s->kept = m->next;
        free(m);
    }
    mpr__wipe(s->key, sizeof s->key);
}

/* ---- the way back ---- */

/* Feed what is not yet sent on this link, while its output is small. */
static void ctl_send_out(session *s)
{
    link *l = s->link;
    if (!l || !s->open)
        return;
    const unsigned char *ignored;
    while (s->unsent && mpr__zmtp_output(l->z, &ignored) < CTL_OUT_HIGH) {
        mpr__ctl_msg *m = s->unsent;
        size_t piece = m->size - s->unsent_off;
        if (piece > MPR__CTRL_PIECE)
            piece = MPR__CTRL_PIECE;
        unsigned char *f = s->ep->ctl_frame;
        mpr__ctrl_header(f, (uint32_t)m->size, m->cseq, (uint32_t)s->unsent_off);
        if (piece)
            memcpy(f + MPR__CTRL_HDR, m->data + s->unsent_off, piece);
        if (mpr__zmtp_send(l->z, f, MPR__CTRL_HDR + piece) < 0) {
            link_free(l);
            return;
        }
        s->unsent_off += piece;
        if (s->unsent_off == m->size) {
            s->unsent = m->next;
            s->unsent_off = 0;
        }
    }
    if (link_flush(l) < 0)
        link_free(l);
    else if (s->unsent)
        s->ep->ctl_waiting = 1; /* the tick comes back */
}

/* A new link: the cancel tag and every message kept, again. */
static void ctl_resume(session *s)
{
    s->tag_sent = 0;
    s->unsent = s->kept;
    s->unsent_off = 0;
}

/* The monitor: the pipe has a new cancel tag or messages (and after a
 * GOT: room for more). */
static void session_control(mpr__conn *c)
{
    session *s = (session *)c;
    if (!s->open)
        return;
    uint64_t tag = mpr__conn_ctl_tag(c);
    if (tag && tag != s->tag_sent && s->link) {
        unsigned char f[MPR__DATA_HDR];
        mpr__small_frame(f, MPR__CANCEL_MAGIC, tag);
        if (mpr__zmtp_send(s->link->z, f, sizeof f) == 0)
            s->tag_sent = tag;
    }
    while (s->kept_bytes < MPR_CONTROL_QUEUE_SIZE) {
        mpr__ctl_msg *m = mpr__conn_ctl_take(c);
        if (!m)
            break;
        m->cseq = ++s->next_cseq;
        if (s->kept_tail)
            s->kept_tail->next = m;
        else
            s->kept = m;
        s->kept_tail = m;
        s->kept_bytes += m->size;
        if (!s->unsent) {
            s->unsent = m;
            s->unsent_off = 0;
        }
    }
    ctl_send_out(s);
}

/* GOT: the application took every message up to cseq. 0, or MPR_EPROTO
 * for one it was never sent. */
static int on_got(session *s, uint64_t cseq)
{
    if (cseq > s->next_cseq)
        return MPR_EPROTO;
    size_t released = 0;
    while (s->kept && s->kept->cseq <= cseq) {
        mpr__ctl_msg *m = s->kept;
        s->kept = m->next;
        if (s->unsent == m) {
            s->unsent = m->next;
            s->unsent_off = 0;
        }
        released += m->size;
        free(m);
    }
    if (!s->kept)
        s->kept_tail = NULL;
    if (released) {
        s->kept_bytes -= released;
        mpr__conn_ctl_release(&s->base, released);
        session_control(&s->base); /* room for more */
    }
    return 0;
}

static const mpr__conn_ops session_ops = {
    .drain = NULL,
    .sync_mark = NULL, /* the endpoint's sync reads what has arrived */
    .final_drain = NULL,
    .close = session_close,
    .control = session_control,
};

/* Attach a link to its session (a reconnection takes over from the link
 * before it, which goes). */
static void attach(session *s, link *l)
{
    if (s->link && s->link != l) {
        link *old = s->link;
        old->s = NULL;
        s->link = NULL;
        link_free(old);
    }
    s->link = l;
    l->s = s;
    if (s->open)
        pending_unlink(s->ep, l);
}

/* A frame of an open session. */
static void on_data(session *s, const mpr__remote_frame *f)
{
    if (f->seq != s->seq + 1) {
        s->dirty = 1; /* a repeat, or one past a lost frame: say where we are */
        return;
    }
    if (s->bytes + f->nrecords > s->credit) {
        mpr__conn_end(&s->base, MPR_EPROTO); /* beyond its credit */
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
            rc = mpr__conn_record(&s->base, &rec);
        if (rc < 0) {
            mpr__conn_end(&s->base, rc);
            return;
        }
        p += rec.size;
        left -= (size_t)rec.size;
    }
    s->seq = f->seq;
    s->bytes += f->nrecords;
    if (s->base.bye) {
        flush_state(s); /* so its stop returns */
        mpr__conn_end(&s->base, 0);
        return;
    }
    s->dirty = 1;
}

static void on_handshake(session *s, const mpr__remote_frame *f)
{
    mpr__conn *b = &s->base;
    if (f->kind == MPR__HELLO_MAGIC) {
        if (s->open)
            return; /* a repeat after the handshake */
        unsigned char challenge[MPR__CHALLENGE_SIZE];
        if (mpr__conn_hello(b, f->body, challenge) < 0) { /* warned */
            mpr__conn_refused(b, NULL);
            return;
        }
        send_frame(s, challenge, sizeof challenge);
        return;
    }
    /* PROOF */
    mpr__ack ack = {MPR__ACK_OK, MPR__MODE_REMOTE};
    unsigned char out[MPR__ACK_SIZE];
    if (s->open) { /* a repeat: its ACK was lost with a link */
        mpr__ack_encode(out, &ack);
        send_frame(s, out, sizeof out);
        flush_state(s);
        ctl_resume(s);
        session_control(b);
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
    send_frame(s, out, sizeof out);
    if (status != MPR__ACK_OK) {
        mpr__conn_refused(b, NULL);
        return;
    }
    s->open = 1;
    if (s->link)
        pending_unlink(s->ep, s->link);
    flush_state(s); /* its first credit */
    /* The way back starts in the monitor's round (mpr__conn_accept named
     * it if it has anything). */
}

/* A message on a link whose CURVE handshake is done. */
static void on_message(link *l, const unsigned char *p, size_t n)
{
    remote_ep *ep = l->ep;
    mpr__remote_frame f;
    int rc = mpr__remote_parse(p, n, &f);
    session *s = l->s;
    if (!s) {
        zombie *z = find_zombie(ep, l->key);
        if (z) {
            /* Its frames after the end: it may still wait for the last
             * STATE. */
            send_state_to(l, MPR__STATE_GONE, z->seq, z->bytes);
            if (link_flush(l) < 0)
                link_free(l);
            return;
        }
        if (rc < 0 || f.kind != MPR__HELLO_MAGIC) {
            send_state_to(l, MPR__STATE_GONE, 0, 0);
            link_flush(l);
            link_drop(l, "protocol error (no HELLO)", 1);
            return;
        }
        if (ep->nsessions >= MAX_SESSIONS) {
            link_drop(l, "too many remote senders", 1);
            return;
        }
        s = calloc(1, sizeof *s);
        if (!s) {
            link_drop(l, "out of memory", 1);
            return;
        }
        s->ep = ep;
        memcpy(s->key, l->key, sizeof s->key);
        s->hnext = ep->buckets[bucket_of(s->key)];
        ep->buckets[bucket_of(s->key)] = s;
        ep->nsessions++;
        s->heard_ns = mpr__now_ns();
        attach(s, l);
        mpr__conn_add(ep->m, &s->base, &session_ops, l->peer);
        if (find_session(ep, l->key) != s)
            return; /* dropped at once: too many handshakes waiting */
        on_handshake(s, &f);
        return;
    }
    s->heard_ns = mpr__now_ns();
    if (rc < 0) {
        if (s->open)
            mpr__conn_end(&s->base, MPR_EPROTO);
        else
            mpr__conn_refused(&s->base, "protocol error");
        return;
    }
    switch (f.kind) {
    case MPR__HELLO_MAGIC:
    case MPR__PROOF_MAGIC:
        on_handshake(s, &f);
        break;
    case MPR__DATA_MAGIC:
        if (!s->open)
            mpr__conn_refused(&s->base, "data before the handshake");
        else
            on_data(s, &f);
        break;
    case MPR__HEART_MAGIC:
        if (s->open)
            s->dirty = 1;
        break;
    case MPR__GOT_MAGIC:
        if (!s->open)
            mpr__conn_refused(&s->base, "data before the handshake");
        else if (on_got(s, f.seq) < 0)
            mpr__conn_end(&s->base, MPR_EPROTO); /* took what it was never sent */
        break;
    case MPR__ABORT_MAGIC:
        if (s->open)
            mpr__conn_end(&s->base, 0); /* freed without stop: lost */
        else
            mpr__conn_refused(&s->base, "closed before the handshake");
        break;
    }
}

/* The CURVE handshake of a link is done: its client key is proved. */
static void on_ready(link *l, const unsigned char *key)
{
    remote_ep *ep = l->ep;
    memcpy(l->key, key, sizeof l->key);
    l->ready = 1;
    session *s = find_session(ep, key);
    if (!s)
        return; /* its first message (a HELLO) makes its session */
    attach(s, l);
    s->heard_ns = mpr__now_ns();
    if (s->open) {
        flush_state(s); /* back: where we are, and credit */
        if (s->link) {
            ctl_resume(s);
            session_control(&s->base);
        }
    }
}

static void on_readable(mpr__watch *w)
{
    link *l = MPR__CONTAINER_OF(w, link, watch);
    for (size_t budget = READ_BUDGET; budget > 0 && !l->dead;) {
        unsigned char *buf;
        size_t space;
        mpr__zmtp_input(l->z, &buf, &space);
        if (space > 0) {
            long got = mpr__stream_recv(w->fd, buf, space < budget ? space : budget);
            if (got == MPR_EAGAIN)
                break;
            if (got <= 0) {
                /* The end of the connection (a reset is the same). */
                if (l->s && l->s->open)
                    link_free(l); /* a good sender's link: it reconnects */
                else
                    link_drop(l,
                              l->ready ? "closed before the handshake"
                                       : "closed before the ZeroMQ handshake",
                              0);
                return;
            }
            mpr__zmtp_input_done(l->z, (size_t)got);
            budget -= (size_t)got;
            if (l->s) {
                /* Any byte is progress: a frame that takes longer than the
                 * window to cross a slow link does not make its sender
                 * lost. And the sender hears from us while its frame
                 * crosses (its heartbeat waits behind the frame): a STATE
                 * at least every ANSWER_EVERY_NS, well within its 1 s of
                 * silence. */
                session *s = l->s;
                s->heard_ns = mpr__now_ns();
                if (s->open && s->heard_ns - s->said_ns >= ANSWER_EVERY_NS)
                    s->dirty = 1; /* sent at the next tick (owed_states) */
            }
        }
        mpr__zmtp_event ev;
        int rc = 0;
        while (!l->dead && (rc = mpr__zmtp_step(l->z, &ev)) > 0) {
            if (ev.kind == MPR__ZMTP_READY)
                on_ready(l, ev.peer_key);
            else
                on_message(l, ev.data, ev.size);
        }
        if (l->dead)
            return;
        if (l->pending)
            link_progress(l);
        if (rc < 0) {
            if (l->s && l->s->open)
                mpr__conn_end(&l->s->base, MPR_EPROTO); /* it proved its key: broken */
            else
                link_drop(l, mpr__zmtp_why(l->z), 1);
            return;
        }
        if (link_flush(l) < 0) {
            link_drop(l, "it does not read what it is sent", 1);
            return;
        }
    }
}

/* ---- the endpoint ---- */

static void pause_accepting(remote_ep *ep, const char *why)
{
    mpr__monitor_warn_limited(ep->m, REMOTE_ACCEPT, why);
    if (ep->listening)
        mpr__poller_del(ep->poller, &ep->lwatch);
    ep->listening = 0;
    ep->paused_until = mpr__now_ns() + ACCEPT_BACKOFF_NS;
}

static void on_listen(mpr__watch *w)
{
    remote_ep *ep = MPR__CONTAINER_OF(w, remote_ep, lwatch);
    const mpr__settings *set = mpr__monitor_settings(ep->m);
    /* A few at a time, as for the local endpoint (local_router.c). */
    for (int n = 0; n < ACCEPTS_PER_ROUND; n++) {
        if (!mpr__fd_room()) {
            /* Leave the application its descriptors: the connection waits
             * in the backlog until there are some again. */
            pause_accepting(ep, "too few descriptors left for the application; waiting");
            return;
        }
        mpr__fd fd;
        char addr[64];
        int rc = mpr__tcp_accept(ep->lfd, &fd, addr, sizeof addr);
        if (rc == MPR_EAGAIN)
            return;
        if (rc < 0) {
            pause_accepting(ep, mpr_strerror(rc));
            return;
        }
        link *l = calloc(1, sizeof *l);
        mpr__zmtp_config cfg = {MPR__ZMTP_SERVER, ep->keys->public_key, ep->keys->secret_key, NULL,
                                ep->keys->cookie_key, MAX_FRAME};
        if (!l || mpr__zmtp_new(&l->z, &cfg) < 0) {
            char peer[72];
            snprintf(peer, sizeof peer, "tcp %s", addr);
            mpr__monitor_refuse(ep->m, peer, "out of memory");
            mpr__fd_close(fd);
            free(l);
            continue;
        }
        l->ep = ep;
        snprintf(l->peer, sizeof l->peer, "tcp %s", addr);
        l->watch.on_event = on_readable;
        /* Read while throttled too: handshakes, heartbeats and credit go
         * on; credit is what holds remote senders back. */
        if (mpr__poller_add(ep->poller, &l->watch, fd, 1) < 0) {
            mpr__monitor_refuse(ep->m, l->peer, "cannot watch the connection");
            mpr__fd_close(fd);
            mpr__zmtp_free(l->z);
            free(l);
            continue;
        }
        l->next = ep->links;
        if (ep->links)
            ep->links->prev = l;
        ep->links = l;
        l->pending = 1;
        l->moved_ns = mpr__now_ns();
        l->deadline = l->moved_ns + set->handshake_ns;
        l->pprev = ep->pend_tail;
        if (ep->pend_tail)
            ep->pend_tail->pnext = l;
        else
            ep->pend_head = l;
        ep->pend_tail = l;
        if (++ep->npending > MAX_PENDING) {
            link *victim = pending_victim(ep);
            int was_new = victim == l;
            link_drop(victim,
                      "too many connections waiting for a handshake; dropped the one idle "
                      "the longest",
                      0);
            if (was_new)
                continue;
        }
        if (link_flush(l) < 0) /* our greeting */
            link_drop(l, "closed before the ZeroMQ handshake", 0);
    }
}

/* Split "tcp://HOST:PORT" (checked by the router) into host and port. */
static int split_endpoint(const char *endpoint, char *host, size_t hsize, char *port, size_t psize)
{
    const char *h = endpoint + 6, *colon = strrchr(h, ':');
    if (strncmp(endpoint, "tcp://", 6) != 0 || !colon || (size_t)(colon - h) >= hsize)
        return MPR_EINVAL;
    snprintf(host, hsize, "%.*s", (int)(colon - h), h);
    snprintf(port, psize, "%s", colon + 1);
    if (!strcmp(port, "*"))
        snprintf(port, psize, "0");
    return 0;
}

/* The endpoint workers reach: the advertised host (or the bound address,
 * or this host's name for a wildcard) and the bound port. */
static int advertise(remote_ep *ep, const char *bound, char *out, size_t size)
{
    const char *colon = strrchr(bound, ':');
    if (!colon)
        return MPR_EINVAL;
    char host[200];
    const char *advertised = mpr__monitor_settings(ep->m)->remote_host;
    if (advertised) {
        snprintf(host, sizeof host, "%s", advertised);
    } else {
        snprintf(host, sizeof host, "%.*s", (int)(colon - bound), bound);
        if (!strcmp(host, "0.0.0.0") || !strcmp(host, "[::]")) {
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
    remote_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return MPR_ENOMEM;
    *state = ep;
    ep->m = m;
    ep->poller = mpr__monitor_poller(m);
    ep->lfd = MPR__NO_FD;
    ep->keys = mpr__secure_alloc(sizeof *ep->keys);
    ep->ctl_frame = malloc(MPR__CTRL_HDR + MPR__CTRL_PIECE);
    if (!ep->keys || !ep->ctl_frame)
        return MPR_ENOMEM;
    int rc = mpr__zmtp_keypair(ep->keys->public_key, ep->keys->secret_key);
    if (rc == 0)
        rc = mpr__random(ep->keys->cookie_key, sizeof ep->keys->cookie_key);
    char host[200], port[16], bound[256], endpoint[256], key[41];
    if (rc == 0)
        rc = split_endpoint(mpr__monitor_settings(m)->remote_bind, host, sizeof host, port,
                            sizeof port);
    if (rc == 0)
        rc = mpr__tcp_listen(host, port, &ep->lfd, bound, sizeof bound);
    if (rc == 0)
        rc = advertise(ep, bound, endpoint, sizeof endpoint);
    if (rc < 0)
        return rc;
    mpr__z85_encode(key, ep->keys->public_key);
    mpr__monitor_set_remote(m, endpoint, key);
    ep->lwatch.on_event = on_listen;
    rc = mpr__poller_add(ep->poller, &ep->lwatch, ep->lfd, 1);
    ep->listening = rc == 0;
    return rc;
}

static void owed_states(remote_ep *ep)
{
    int throttled = mpr__monitor_throttled(ep->m);
    int unthrottled = ep->throttled && !throttled;
    ep->throttled = throttled;
    int ctl = ep->ctl_waiting;
    ep->ctl_waiting = 0;
    for (unsigned b = 0; b < SESSION_BUCKETS; b++) {
        for (session *s = ep->buckets[b]; s; s = s->hnext) {
            if (s->open && (s->dirty || unthrottled))
                flush_state(s);
            if (ctl && s->unsent)
                ctl_send_out(s); /* sets ctl_waiting again while some are left */
        }
    }
}

static int64_t ep_tick(void *state, int64_t now)
{
    remote_ep *ep = state;
    free_dead(ep); /* closed in the last round */
    owed_states(ep);
    if (ep->paused_until && ep->paused_until <= now) {
        ep->paused_until = 0;
        ep->listening = mpr__poller_add(ep->poller, &ep->lwatch, ep->lfd, 1) == 0;
        if (!ep->listening)
            ep->paused_until = now + ACCEPT_BACKOFF_NS;
    }
    /* Links that did not get into an open session in time. */
    while (ep->pend_head && ep->pend_head->deadline <= now) {
        char why[64];
        snprintf(why, sizeof why, "no handshake within %.3g s",
                 (double)mpr__monitor_settings(ep->m)->handshake_ns / 1e9);
        link_drop(ep->pend_head, why, 0);
    }
    if (now >= ep->next_check) {
        /* Senders not heard from for the window are lost. */
        ep->next_check = now + CHECK_EVERY_NS;
        for (unsigned b = 0; b < SESSION_BUCKETS; b++) {
            session *s = ep->buckets[b];
            while (s) {
                session *next = s->hnext;
                if (s->open && now - s->heard_ns > window_ns(ep))
                    mpr__conn_end(&s->base, 0);
                s = next;
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
    int64_t next = ep->next_check;
    if (ep->ctl_waiting && now + CTL_RETRY_NS < next)
        next = now + CTL_RETRY_NS;
    if (ep->pend_head && ep->pend_head->deadline < next)
        next = ep->pend_head->deadline;
    if (ep->paused_until && ep->paused_until < next)
        next = ep->paused_until;
    return next;
}

/* route_until: read every link as far as it has bytes. Reading one link
 * may close others (a sender's new link replaces its old one), so each
 * pass starts over, and a link is read in one pass only (sync_gen). */
static void ep_sync(void *state)
{
    remote_ep *ep = state;
    ep->sync_gen++;
    for (int again = 1; again;) {
        again = 0;
        for (link *l = ep->links; l; l = l->next) {
            if (l->sync_gen == ep->sync_gen)
                continue;
            l->sync_gen = ep->sync_gen;
            while (!l->dead && mpr__stream_unread(l->watch.fd) > 0)
                on_readable(&l->watch);
            again = 1;
            break;
        }
    }
    owed_states(ep);
}

static void ep_close(void *state)
{
    remote_ep *ep = state;
    if (!ep)
        return;
    /* The sessions are closed (each told "gone"); now the links left. */
    while (ep->links)
        link_free(ep->links);
    free_dead(ep);
    if (ep->listening)
        mpr__poller_del(ep->poller, &ep->lwatch);
    mpr__fd_close(ep->lfd);
    while (ep->zombies) {
        zombie *z = ep->zombies;
        ep->zombies = z->next;
        free(z);
    }
    mpr__secure_free(ep->keys, sizeof *ep->keys);
    free(ep->ctl_frame);
    free(ep);
}

const mpr__endpoint_ops mpr__remote_endpoint = {
    .name = "remote",
    .open = ep_open,
    .tick = ep_tick,
    .sync = ep_sync,
    .close = ep_close,
};
