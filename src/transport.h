/*
 * transport.h - what the monitor thread (monitor.c) and the transports
 * share. Never installed.
 *
 * The data path, router side:
 *
 *   transport_socket.c  the AF_UNIX endpoint: accept, peer credentials,
 *                       the handshake, messages as frames on the socket
 *   transport_ring.c    messages through a shared-memory ring handed over
 *                       in the local handshake
 *   transport_zmq.c     workers elsewhere: ZeroMQ over tcp with CURVE
 *           |
 *           v  (records and message bytes)
 *   monitor.c           the loop, the life of a connection (handshake
 *                       deadline, one sender per pipe, end of stream, lost
 *                       senders, warnings), message assembly, backpressure
 *           |
 *           v
 *   queue.c -> router.c (main thread: routing, dispatch)
 *
 * Each transport fills an mpr__conn_ops for its connections and has an
 * endpoint (mpr__endpoint_ops) opened at start; the monitor never asks
 * which transport a connection uses. Everything here runs on the monitor
 * thread unless it says otherwise.
 */
#ifndef MPR_TRANSPORT_H
#define MPR_TRANSPORT_H

#include <stdint.h>
#include <sys/types.h>

#include <mprouter/router.h>

#include "queue.h"
#include "wire.h"

typedef struct mpr__conn mpr__conn;
typedef struct mpr__ratelimit mpr__ratelimit;

/* A descriptor in the monitor's epoll sets. on_event runs when it is
 * readable (level-triggered). */
typedef struct mpr__watch {
    void (*on_event)(mpr_router *r, struct mpr__watch *w);
    int fd;
    int throttle_set; /* also in the set used while throttled */
    int gone;         /* removed (mpr__watch_del): its events of this round are skipped */
} mpr__watch;

/* What a transport does for one connection. */
typedef struct mpr__conn_ops {
    /* Its turn in a round (the connection asked for it with
     * mpr__conn_busy): move about budget bytes into the queue. 1 if more
     * is left, 0 if idle, < 0 on error (the monitor then ends the
     * connection with that error). NULL: never busy. */
    int (*drain)(mpr__conn *c, uint64_t budget);
    /* route_until: remember how far the sender has sent; 1 if some of it
     * is still to be read (then the transport calls mpr__conn_synced when
     * it has read that far), 0 if nothing is. */
    int (*sync_mark)(mpr__conn *c);
    /* The connection ends: before it is freed, release what the transport
     * holds (descriptors, mappings). The end of stream has been handled. */
    void (*close)(mpr__conn *c);
    /* Anything of the stream still unread that must be delivered before
     * the end (a ring's last records): called once by mpr__conn_end
     * before it decides what the end means; < 0 on a protocol error. NULL
     * if nothing. */
    int (*final_drain)(mpr__conn *c);
} mpr__conn_ops;

/* One sender connection (or one that is still proving who it is). A
 * transport embeds it first in its own struct and allocates it. */
struct mpr__conn {
    mpr__conn *prev, *next;       /* the router's connections */
    mpr__conn *hs_prev, *hs_next; /* waiting for the handshake, oldest first */
    mpr__conn *busy_next;         /* asked for a turn in the next round */
    const mpr__conn_ops *ops;
    mpr_router *router;
    char peer[64];                /* for warnings: "pid 123", "tcp://10.0.0.2:5555" */
    uint32_t id;                  /* the pipe, once the handshake succeeded; else 0 */
    uint32_t claimed;             /* the pipe its HELLO named */
    int in_handshake, busy, sync_owed;
    int bye;                      /* the sender stopped: the stream ends cleanly */
    int have_nonce_r;             /* nonce_r is made (at the first HELLO) */
    int mid_frame;                /* the transport has part of a frame header */
    int64_t deadline_ns;          /* for the handshake */
    unsigned char nonce_s[MPR__NONCE_SIZE], nonce_r[MPR__NONCE_SIZE];
    /* the message being assembled (monitor.c) */
    mpr__chunk *big;              /* its dedicated chunk, if large or in pieces */
    unsigned char *dst;           /* where its bytes go */
    uint64_t total, have;         /* its length, and bytes arrived */
    uint64_t counted;             /* bytes of it counted as pending in the queue */
    int in_message;               /* between begin and end */
};

/* An endpoint: a transport's listening side, opened at start. */
typedef struct mpr__endpoint_ops {
    /* Main thread, in start, before the monitor runs: bind, make keys,
     * add watches. 0 or an MPR_ error (start then fails). */
    int (*open)(mpr_router *r);
    /* Monitor thread, every iteration: timers (heartbeats, windows,
     * backoffs). Returns the next deadline (CLOCK_MONOTONIC ns) or -1. */
    int64_t (*tick)(mpr_router *r, int64_t now);
    /* route_until: read what has reached the endpoint. NULL: nothing to do. */
    void (*sync)(mpr_router *r);
    /* Monitor thread at its end (all connections closed), or the main
     * thread when start failed before the monitor ran: close everything. */
    void (*close)(mpr_router *r);
} mpr__endpoint_ops;

extern const mpr__endpoint_ops mpr__socket_endpoint;
#ifdef MPR_HAVE_ZMQ
extern const mpr__endpoint_ops mpr__zmq_endpoint;
#endif

/* ---- what the monitor offers the transports (monitor.c) ---- */

/* Register a new connection: it must complete its handshake (HELLO, then
 * PROOF) before the router's handshake deadline. If too many connections
 * are waiting for theirs, the oldest is dropped (with a warning). */
void mpr__conn_add(mpr_router *r, mpr__conn *c, const mpr__conn_ops *ops, const char *peer);

/* The HELLO arrived: check it and, if it may go on, write the CHALLENGE
 * to send back. 0, or < 0 after a (rate-limited) warning and a count:
 * the caller closes the connection without an answer (mpr__conn_reject). */
int mpr__hs_hello(mpr__conn *c, const mpr__hello *h, unsigned char challenge[MPR__CHALLENGE_SIZE]);
/* The PROOF arrived: check it. 0 with *status MPR__ACK_OK (the connection
 * is now open for pipe c->id; the caller answers ACK) or MPR__ACK_TAKEN
 * (the pipe had its sender; the caller answers ACK and closes with
 * mpr__conn_reject), or < 0 after a warning and a count. */
int mpr__hs_proof(mpr__conn *c, const mpr__proof *p, uint32_t *status);
/* Close a connection that was rejected (the warning is done). */
void mpr__conn_reject(mpr__conn *c);

/* Rate-limited warnings of one kind (kind: "rejected connections"): allow
 * says whether to log this one in full (the first few each second), or
 * counts it under why for the summary; flush logs the summary of a second
 * that has passed and returns when the current one ends if it has
 * something to summarize (else -1). Call flush from a tick. */
int mpr__rl_allow(mpr_router *r, mpr__ratelimit *rl, const char *kind, const char *why);
int64_t mpr__rl_flush(mpr_router *r, mpr__ratelimit *rl, const char *kind, int64_t now);

/* A warning about a connection that failed its handshake: rate-limited
 * (a summary per second when there are many) and counted as rejected. */
void mpr__reject_warn(mpr_router *r, const char *peer, uint32_t claimed, const char *why);

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

/* The queue is throttled: read no messages (handshakes go on). */
int mpr__throttled(const mpr_router *r);

/* Watches. add: in the normal set, and in the throttled set too if
 * throttle_set. Returns 0 or an MPR_ error. */
int mpr__watch_add(mpr_router *r, mpr__watch *w, int fd, int throttle_set);
void mpr__watch_set_throttle(mpr_router *r, mpr__watch *w, int throttle_set);
void mpr__watch_del(mpr_router *r, mpr__watch *w);

/* Descriptors: may the monitor take one more and still leave the
 * application its headroom (the lowest free descriptor, the one an accept
 * would take, stays FD_HEADROOM below the limit)? any_fd: any open
 * descriptor (it is duplicated for a moment to find the lowest free one). */
int mpr__fd_room(int any_fd);

#endif /* MPR_TRANSPORT_H */
