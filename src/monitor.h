/*
 * monitor.h - the router's monitor thread, as the router (router.c) sees
 * it: made at start with the router's settings and secret, it opens the
 * endpoints of the transports it is given, runs its thread, fills the
 * local queue and pings the main thread; stopped and freed at stop. What
 * it offers the transports is in transport.h. Never installed.
 */
#ifndef MPR_MONITOR_H
#define MPR_MONITOR_H

#include <stdatomic.h>
#include <stdint.h>

#include <mprouter/event_loop.h>
#include <mprouter/router.h>

#include "control.h"
#include "queue.h"
#include "transport.h"

typedef struct mpr__monitor_config {
    mpr__settings settings;
    size_t queue_limit;            /* 0: none */
    const unsigned char *secret;   /* the router's secret (a wipe-on-fork page) */
    const _Atomic uint32_t *last_id; /* the highest pipe id issued (main thread) */
    const mpr_event_loop *loop;
    mpr_pinger *pinger;            /* the monitor's own, made on the main thread;
                                    * the monitor connects, uses and frees it */
} mpr__monitor_config;

/* A monitor with its queue and poller; nothing running yet. MAIN THREAD.
 * 0 or an error. */
int mpr__monitor_new(mpr__monitor **out, const mpr__monitor_config *cfg);
/* Open these endpoints (main thread, before start). 0 or the first error
 * (the endpoints opened so far stay open until mpr__monitor_free). */
int mpr__monitor_open(mpr__monitor *m, const mpr__endpoint_ops *const *eps, int n);
/* Start the thread. 0 or an error. */
int mpr__monitor_start(mpr__monitor *m);
/* Stop the thread (if it runs) and close every connection and endpoint;
 * add the monitor's counters to *stats (received, accepted, rejected,
 * broken, pings, and the messages never routed as dropped); free
 * everything. MAIN THREAD. The pinger is freed too (also if the thread
 * never ran). */
void mpr__monitor_free(mpr__monitor *m, mpr_router_stats *stats);

/* The consumer's side of the local queue (main thread). */
mpr__queue *mpr__monitor_queue(mpr__monitor *m);
/* The way back (control.h): the main thread's side. */
mpr__ctl *mpr__monitor_ctl(mpr__monitor *m);
/* What the endpoints published at open, for sender strings (main thread,
 * after open): the local endpoint's name; the remote endpoint and its
 * CURVE key (Z85), "" when there is none. */
const char *mpr__monitor_ipc_name(const mpr__monitor *m);
const char *mpr__monitor_remote_endpoint(const mpr__monitor *m);
const char *mpr__monitor_remote_key(const mpr__monitor *m);

/* route_until took over: never ping again. ANY THREAD. */
void mpr__monitor_set_manual(mpr__monitor *m);
/* route_until: ask for every connection to be read as far as its sender
 * has sent; returns the request's number, for mpr__queue_synced /
 * mpr__queue_wait. MAIN THREAD. */
uint64_t mpr__monitor_request_sync(mpr__monitor *m);

/* Add the monitor's counters so far to *s (received, accepted, rejected,
 * broken, pings). MAIN THREAD. */
void mpr__monitor_add_stats(const mpr__monitor *m, mpr_router_stats *s);

#endif /* MPR_MONITOR_H */
