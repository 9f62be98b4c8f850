/*
 * router_p.h - the router's state, shared by router.c (main thread: API,
 * routing table, dispatch) and monitor.c (the monitor thread). Never
 * installed.
 */
#ifndef MPR_ROUTER_P_H
#define MPR_ROUTER_P_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include <mprouter/router.h>

#include "queue.h"
#include "wire.h"

struct conn;

#define MPR__SCRATCH_SIZE (256u * 1024u) /* the monitor's read buffer */

struct mpr_receiver {
    uint32_t id;
    void (*cb)(void *arg, const void *data, size_t size);
    void *arg;
    void (*lost_cb)(void *arg);
    void *lost_arg;
};

struct slot {
    uint32_t id; /* 0: empty */
    mpr_receiver *receiver;
};

struct mpr_router {
    const mpr_event_loop *loop;

    /* options (main thread; read by the monitor only while it runs) */
    size_t queue_limit;
    uint32_t max_msg;
    int64_t handshake_ns;

    /* main thread */
    int running;
    unsigned epoch;      /* bumped by stop: dispatch notices a stop in a callback */
    int dispatching;
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
    atomic_uint_fast64_t accepted, rejected, broken, pings, received;
    mpr__queue queue;

    /* created by start */
    unsigned char secret[MPR__SECRET_SIZE];
    char name[64]; /* abstract socket name, without the leading NUL */
    int listen_fd, epfd, throttle_epfd, wake_fd;
    int have_queue, have_thread;
    pthread_t thread;
    mpr_pinger *monitor_pinger;

    /* monitor thread */
    struct conn *conns;
    struct conn *hs_head, *hs_tail;
    struct conn *busy;     /* ring connections with data left after a round */
    unsigned char *scratch;
    uid_t uid;
    int64_t accept_paused_until;
    int mon_flags; /* MPR__Q_ flags gathered during one round */
    uint64_t mon_received; /* complete messages read; published to received */
};

/* epoll tags of the two descriptors that are not connections */
extern char mpr__listen_tag, mpr__wake_tag;

/* The monitor thread's body (monitor.c). */
void *mpr__monitor_main(void *router);

#endif /* MPR_ROUTER_P_H */
