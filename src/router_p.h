/*
 * router_p.h - the router's state, shared by router.c (main thread: API,
 * routing table, dispatch), monitor.c (the monitor thread) and the
 * transports. Never installed.
 */
#ifndef MPR_ROUTER_P_H
#define MPR_ROUTER_P_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include <mprouter/router.h>

#include "queue.h"
#include "transport.h"
#include "wire.h"

#define MPR__SCRATCH_SIZE (256u * 1024u) /* the monitor's read buffer */

/* A receiver; the application holds a handle to it (handle.c). */
struct receiver {
    uint32_t id;
    mpr_receiver *handle;
    mpr_router *router;
    void (*cb)(void *arg, const void *data, size_t size);
    void *arg;
    void (*lost_cb)(void *arg);
    void *lost_arg;
};

struct slot {
    uint32_t id; /* 0: empty */
    struct receiver *receiver;
};

/* Secrets, in a page a forked child reads as zeros (mpr__secure_alloc). */
struct mpr__secrets {
    unsigned char secret[MPR__SECRET_SIZE]; /* the pipe keys derive from it */
    char curve_secret[41];                  /* the remote endpoint's CURVE key (Z85) */
};

/* Rate limit of one kind of warning: the first few per second in full,
 * then a summary per second of how many and why. */
#define MPR__RL_REASONS 6
struct mpr__ratelimit {
    int64_t window_start;
    unsigned logged, suppressed;
    struct {
        char why[96];
        unsigned count;
    } reasons[MPR__RL_REASONS];
};

struct mpr_router {
    const mpr_event_loop *loop;
    uint64_t token; /* mpr__process_token() of the process that made it */
    struct mpr__secrets *sec;

    /* options (main thread; read by the monitor only while it runs) */
    size_t queue_limit;
    uint32_t max_msg;
    int64_t handshake_ns;
    char *remote_bind, *remote_host; /* mpr_router_set_remote; NULL: none */
    int64_t remote_window_ns;

    /* main thread */
    int running;
    unsigned epoch;      /* bumped by stop: dispatch notices a stop in a callback */
    int dispatching;
    int free_requested;  /* mpr_router_free from a callback: done when dispatch unwinds */
    int linked;
    mpr_pingee *pingee;
    mpr_pinger *self_pinger; /* re-ping after a full time slice */
    struct slot *slots;  /* routing table: open addressing, ids are keys */
    size_t nslots, nreceivers;
    mpr_router_stats stats;

    /* shared */
    atomic_uint last_id;
    atomic_int manual;   /* route_until took over: no pings */
    atomic_int stopping;
    atomic_uint_fast64_t sync_req; /* route_until's sync requests (numbered from 1) */
    atomic_uint_fast64_t accepted, rejected, broken, pings, received;
    mpr__queue queue;

    /* created by start */
    char name[64]; /* abstract socket name, without the leading NUL */
    char remote_endpoint[256]; /* "tcp://host:port" for remote workers, or "" */
    char remote_key[41];       /* the remote endpoint's CURVE public key (Z85) */
    int epfd, throttle_epfd;
    mpr__watch wake;
    int have_queue, have_thread;
    pthread_t thread;
    mpr_pinger *monitor_pinger;
    const mpr__endpoint_ops *endpoints[2];
    int nendpoints;

    /* monitor thread */
    mpr__conn *conns;
    /* Connections ended while this round's events are dispatched: freed
     * after the round, since a later event of the same epoll batch may
     * name one of their watches. */
    mpr__conn *dead;
    int in_round;
    mpr__conn *hs_head, *hs_tail;
    unsigned hs_count;
    mpr__conn *busy;     /* connections that asked for a turn */
    unsigned char *scratch;
    uid_t uid;
    int throttled;
    int mon_flags;       /* MPR__Q_ flags gathered during one round */
    uint64_t mon_received; /* complete messages read; published to received */
    uint64_t sync_seen;  /* the last sync request taken up */
    unsigned sync_owed;  /* connections still to be read for it */
    uint64_t *used;      /* pipes that had their sender: a bit per id */
    size_t used_words;
    mpr__ratelimit rl_reject;
    void *socket_ep;     /* transport_socket.c's endpoint state */
    void *zmq_ep;        /* transport_zmq.c's */
};

/* The monitor thread's body (monitor.c). */
void *mpr__monitor_main(void *router);

/* The key of pipe id of this router, into out (wipe it after use). */
void mpr__router_pipe_key(const mpr_router *r, uint32_t id, unsigned char out[MPR__SECRET_SIZE]);

/* Receiver handles (handle.c): what the application holds is a number
 * with a generation, never a pointer, so a stale or forged handle is
 * detected instead of being dereferenced. ANY THREAD. */
int mpr__handle_new(struct receiver *rc, mpr_receiver **out);
struct receiver *mpr__handle_get(const mpr_receiver *h);
void mpr__handle_free(const mpr_receiver *h);

#endif /* MPR_ROUTER_P_H */
