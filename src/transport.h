/*
 * transport.h - what the monitor (the core, monitor.c) and the transports
 * share: each transport is one table of operations with opaque state, and
 * calls back only the few monitor functions declared here. The monitor
 * never names a transport; a transport never sees the router. Never
 * installed.
 *
 * The data path, router side, top to bottom in the file list of src/:
 *
 *   local_router.c    the local endpoint: accept, the peer's user, the
 *                     handshake, then messages as frames on the connection
 *                     or through a shared-memory ring (ring.c)
 *   remote_router.c   workers elsewhere: tcp, ZeroMQ's protocol with CURVE
 *                     (zmtp.c), the same handshake inside, then numbered
 *                     frames of records, acknowledged
 *           |
 *           v  (records and message bytes)
 *   monitor.c         the thread and its loop, the life of a connection
 *                     (handshake deadline, one sender per pipe, end of
 *                     stream, lost senders, warnings), message assembly,
 *                     backpressure, route_until's sync
 *           |
 *           v
 *   queue.c -> router.c (main thread: routing, dispatch)
 *
 * And the sending side: sender.c (the public calls) starts a link through
 * local_sender.c or remote_sender.c (mpr__link_ops below).
 *
 * Everything on the router's side runs on the monitor thread unless it
 * says otherwise.
 */
#ifndef MPR_TRANSPORT_H
#define MPR_TRANSPORT_H

#include <stdint.h>

#include "control.h"
#include "hs.h"
#include "platform.h"
#include "queue.h"
#include "wire.h"

typedef struct mpr__monitor mpr__monitor;
typedef struct mpr__conn mpr__conn;

/* ====================================================================== */
/* the router's side                                                      */

/* What a transport does for one of its connections. */
typedef struct mpr__conn_ops {
    /* Its turn in a round (it asked with mpr__conn_busy): move about
     * budget bytes into the queue. 1 if more is left, 0 if idle, < 0 on an
     * error (the monitor then ends the connection with it). NULL: never
     * busy. */
    int (*drain)(mpr__conn *c, uint64_t budget);
    /* route_until: remember how far the sender has sent; 1 if some of it
     * is still to be read (the transport then calls mpr__conn_synced when
     * it has read that far), 0 if nothing is. NULL: the endpoint's sync
     * covers it. */
    int (*sync_mark)(mpr__conn *c);
    /* Anything of the stream still unread that must be delivered before
     * the end (a ring's last records): called once by mpr__conn_end before
     * it decides what the end means; < 0 on a protocol error. NULL: none. */
    int (*final_drain)(mpr__conn *c);
    /* The connection ends: release what the transport holds. The monitor
     * frees the memory afterwards (it was allocated by the transport with
     * malloc and starts with the mpr__conn). */
    void (*close)(mpr__conn *c);
    /* The way back: the pipe has a new cancel tag or control messages
     * (mpr__conn_ctl_*); called in the round after they came, the first
     * time right after the accept. The transport takes what it can carry
     * now and comes back for the rest by itself. */
    void (*control)(mpr__conn *c);
} mpr__conn_ops;

/* One sender connection (or one that is still proving who it is). A
 * transport embeds it FIRST in its own struct and allocates it (calloc);
 * the fields are the monitor's. */
struct mpr__conn {
    mpr__conn *prev, *next;       /* the monitor's connections */
    mpr__conn *hs_prev, *hs_next; /* waiting for the handshake, oldest first */
    mpr__conn *busy_next;         /* asked for a turn in the next round */
    const mpr__conn_ops *ops;
    mpr__monitor *mon;
    char peer[80];                /* for warnings: "pid 123", "tcp 10.0.0.2:41234" */
    uint32_t id;                  /* the pipe, once the handshake succeeded; else 0 */
    unsigned char in_handshake, busy, sync_owed, bye, mid_frame, counted_rejected;
    mpr__hs_router hs;            /* the handshake's state */
    int64_t deadline_ns;          /* for the handshake */
    /* the message being assembled */
    mpr__chunk *big;              /* its dedicated chunk, if large or in pieces */
    unsigned char *dst;           /* where its bytes go */
    uint64_t total, have;         /* its length, and bytes arrived */
    uint64_t counted;             /* bytes of it counted as pending in the queue */
    int in_message;               /* between begin and end */
};

/* A transport's listening side: opened at start, closed at stop. */
typedef struct mpr__endpoint_ops {
    const char *name;
    /* Main thread, in start, before the monitor thread runs: bind, make
     * keys, add watches. *state is the endpoint's own. 0 or an MPR_ error
     * (start then fails, and close is called). */
    int (*open)(mpr__monitor *m, void **state);
    /* Monitor thread, every round: timers (heartbeats, windows,
     * backoffs). The next deadline (mpr__now_ns() clock) or -1. */
    int64_t (*tick)(void *state, int64_t now);
    /* route_until: read what has reached the endpoint. NULL: nothing. */
    void (*sync)(void *state);
    /* Monitor thread when it ends (every connection closed), or the main
     * thread when start failed: close everything. state may be NULL. */
    void (*close)(void *state);
} mpr__endpoint_ops;

extern const mpr__endpoint_ops mpr__local_endpoint;
extern const mpr__endpoint_ops mpr__remote_endpoint;

/* ---- what the monitor offers its transports (monitor.c) ---- */

/* The router's settings, fixed while it runs. */
typedef struct mpr__settings {
    uint32_t max_msg;            /* the largest message */
    int64_t handshake_ns;        /* a new connection's deadline */
    int64_t window_ns;           /* the reconnect window of remote senders */
    const char *remote_bind;     /* "tcp://host:port", or NULL: no remote endpoint */
    const char *remote_host;     /* advertised host, or NULL */
} mpr__settings;
const mpr__settings *mpr__monitor_settings(const mpr__monitor *m);
mpr__poller *mpr__monitor_poller(mpr__monitor *m);

/* What the endpoints tell the router for its sender strings (open). */
void mpr__monitor_set_ipc_name(mpr__monitor *m, const char *name);
void mpr__monitor_set_remote(mpr__monitor *m, const char *endpoint, const char *server_key);

/* A new connection: it must complete its handshake before the deadline
 * (from now). At most MPR__MAX_HANDSHAKES of one kind (ops) wait at once:
 * an endpoint that asks mpr__monitor_handshake_room before it accepts
 * never goes over; otherwise the oldest of its kind is dropped (with a
 * warning; the remote endpoint also bounds its links before they get
 * here: remote_router.c). peer names it in warnings. */
#define MPR__MAX_HANDSHAKES 128
void mpr__conn_add(mpr__monitor *m, mpr__conn *c, const mpr__conn_ops *ops, const char *peer);
/* Before accepting a connection of kind ops: 1 if one more may wait for
 * its handshake. When MPR__MAX_HANDSHAKES wait, the oldest that has said
 * nothing for a second since it was accepted is dropped to make room;
 * else 0, and *retry_at is when one will have been silent that long (or
 * -1: wait for a handshake to end): the endpoint leaves new connections
 * in the system's backlog meanwhile. A connection whose sender has said
 * HELLO is never pushed out by others. */
int mpr__monitor_handshake_room(mpr__monitor *m, const mpr__conn_ops *ops, int64_t now,
                                int64_t *retry_at);

/* The HELLO arrived: 0 with the CHALLENGE to send back, or < 0 after a
 * (rate-limited) warning and a count: the caller closes the connection
 * without an answer (mpr__conn_refused). */
int mpr__conn_hello(mpr__conn *c, const unsigned char in[MPR__HELLO_SIZE],
                    unsigned char challenge[MPR__CHALLENGE_SIZE]);
/* The PROOF arrived: 0 when it proves the pipe's key, with its flags in
 * *flags (the transport checks what they promise, then accepts), or < 0
 * after a warning and a count. */
int mpr__conn_proof(mpr__conn *c, const unsigned char in[MPR__PROOF_SIZE], uint32_t *flags);
/* After a proof: open the connection for its pipe. 0 with MPR__ACK_OK in
 * *status (open for pipe c->id: the caller answers ACK) or MPR__ACK_TAKEN
 * (the pipe had its sender: the caller answers ACK, then
 * mpr__conn_refused(c, NULL)); or < 0 after a warning and a count. */
int mpr__conn_accept(mpr__conn *c, uint32_t *status);
/* A connection that failed its handshake: warns (rate-limited; unless
 * why is NULL: warned already), counts it as rejected, closes and frees
 * it. */
void mpr__conn_refused(mpr__conn *c, const char *why);
/* A warning about a peer that never became a connection (refused at
 * accept: another user, too many): rate-limited and counted as rejected. */
void mpr__monitor_refuse(mpr__monitor *m, const char *peer, const char *why);
/* Rate-limited warnings of another kind (what: "cannot accept
 * connections"): the first few each second in full, then a summary. */
void mpr__monitor_warn_limited(mpr__monitor *m, const char *what, const char *why);

/* The connection ended: err == 0 at the end of stream (clean after BYE,
 * else a lost sender), < 0 on an error. Tells the log and the receiver,
 * calls ops->close and frees c. */
void mpr__conn_end(mpr__conn *c, int err);

/* Ask for a turn (ops->drain) in the coming rounds. */
void mpr__conn_busy(mpr__conn *c);
/* route_until: this connection has been read as far as its mark. */
void mpr__conn_synced(mpr__conn *c);

/* Message assembly. begin: a message of len bytes starts; complete_now
 * says all of it is at hand (it may then go into a shared chunk). Returns
 * where its bytes go, or NULL (out of memory). progress: have bytes of it
 * have been written there (counts them against the queue limit). end: it
 * is complete. */
unsigned char *mpr__msg_begin(mpr__conn *c, uint64_t len, int complete_now);
void mpr__msg_progress(mpr__conn *c, uint64_t have);
void mpr__msg_end(mpr__conn *c);
/* One record of a ring or a remote frame (wire.h): 0 or a negative error
 * (the connection must end with it). */
int mpr__conn_record(mpr__conn *c, const mpr__ring_rec *rec);

/* The way back of an open connection's pipe: its newest cancel tag (0:
 * none); its next control message (the caller's to free, its bytes
 * counted against the pipe's bound until released), or NULL; release n
 * bytes of messages taken (written to the connection, or taken by a
 * remote worker). */
uint64_t mpr__conn_ctl_tag(mpr__conn *c);
mpr__ctl_msg *mpr__conn_ctl_take(mpr__conn *c);
void mpr__conn_ctl_release(mpr__conn *c, size_t n);

/* Backpressure: the queue is throttled (read no messages; handshakes go
 * on), and the bytes that may still come before the queue limit is reached
 * (SIZE_MAX without a limit; 0 while throttled). */
int mpr__monitor_throttled(const mpr__monitor *m);
size_t mpr__monitor_room(mpr__monitor *m);

/* ====================================================================== */
/* the sending side                                                       */

/* Where a sender finds its router (the parts of its string). */
typedef struct mpr__sender_cred {
    const char *name;              /* the local endpoint's name */
    uint32_t id;                   /* the pipe */
    const unsigned char *key;      /* the pipe's key (MPR__SECRET_SIZE) */
    const char *remote;            /* "tcp://host:port" or "" */
    const char *server_key;        /* the remote endpoint's CURVE key (Z85) or "" */
} mpr__sender_cred;

/* A started sender's connection: each transport embeds it first in its
 * own struct. */
typedef struct mpr__link mpr__link;
typedef struct mpr__link_ops {
    /* One message (size already checked against max_msg). 0 or an error;
     * MPR_EPIPE when the router has gone. */
    int (*send)(mpr__link *l, const void *data, size_t size);
    /* The end of the stream: tell the router, and for a remote router wait
     * until it has every message. 0 or an error. */
    int (*stop)(mpr__link *l);
    /* Release everything (after stop, or instead of it: the router then
     * sees a lost sender) and free l. */
    void (*close)(mpr__link *l);
    /* In a process that inherited the link through fork(): release this
     * process's copies of its handles and memory only, and free l. */
    void (*forget)(mpr__link *l);
    /* The way back: the next control message into buf (size bytes),
     * waiting until deadline (mpr__now_ns() clock; -1: no limit; a time
     * past: only what has arrived). 0 with *length; MPR_EMSGSIZE with
     * *length (the message stays); MPR_ETIMEDOUT; MPR_EPIPE (the router
     * has gone, and every message that came is taken). */
    int (*recv)(mpr__link *l, void *buf, size_t size, size_t *length, int64_t deadline);
    /* The newest cancel tag that has reached the link (0: none). */
    uint64_t (*cancelled)(mpr__link *l);
} mpr__link_ops;
struct mpr__link {
    const mpr__link_ops *ops;
    uint32_t max_msg; /* the router's, learned in the handshake */
};

/* The local transport (local_sender.c): connect to the router's endpoint,
 * check that the router is what it says (its user, its proof of the pipe's
 * key), hand over a ring if want_ring and one can be made. 0 with *out;
 * MPR_ECONNREFUSED (no router there, or not our router); MPR_EACCES
 * (rejected); MPR_EALREADY (the pipe had its sender); MPR_ETIMEDOUT; or a
 * system error. */
int mpr__local_start(const mpr__sender_cred *cred, int want_ring, mpr__link **out);
/* The remote transport (remote_sender.c): a thread of the link's own talks
 * to the router at cred->remote, checked with cred->server_key. The codes
 * of mpr__local_start; MPR_ENOTSUP in a build without it. */
int mpr__remote_start(const mpr__sender_cred *cred, mpr__link **out);

#endif /* MPR_TRANSPORT_H */
