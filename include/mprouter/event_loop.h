/**
 * @file mprouter/event_loop.h
 * @brief The interface between the router and an event loop.
 *
 * The router never talks to a toolkit directly. It asks an mpr_event_loop
 * for a *pingee* (an object living on the loop's thread, holding an on_ping
 * callback) and for *pingers* (handles that background threads use to ask
 * for on_ping to be run on the loop's thread). This mirrors the IEventLoop,
 * IPingee and IPinger interfaces of traits-futures.
 *
 * mprouter ships two implementations: the fd loop (<mprouter/fd_loop.h>,
 * any poll/GLib/libuv loop can drive it) and the Qt loop
 * (<mprouter/qt.h>). Anyone may write another by filling in this struct.
 *
 * Rules every implementation must follow:
 *   - Every ping() of a connected pinger, made while the pingee is
 *     connected, eventually runs on_ping exactly once on the loop's thread,
 *     provided the loop runs. Pings may be merged by nobody but the caller.
 *   - A ping that is still undelivered when the pingee is disconnected runs
 *     nothing, now or later. After pingee_disconnect the implementation
 *     keeps no reference to on_ping or its argument.
 *   - The pingee stays alive while any pinger refers to it: each pinger
 *     holds a reference from pinger_new until pinger_disconnect (or
 *     pinger_free). Whichever thread drops the last reference, the pingee's
 *     resources are released on the loop's thread.
 */
#ifndef MPROUTER_EVENT_LOOP_H
#define MPROUTER_EVENT_LOOP_H

#include <mprouter/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque handles; each implementation casts its own structs to these.
 * A pingee lives on the loop's thread and holds the on_ping callback. */
typedef struct mpr_pingee mpr_pingee;
/** A pinger: the handle a background thread uses to ping a pingee. */
typedef struct mpr_pinger mpr_pinger;

/** An event loop, as the router sees it: see struct mpr_event_loop. */
typedef struct mpr_event_loop mpr_event_loop;

/** The functions an event loop implementation provides (the rules at the
 * top of this file apply to all of them). */
struct mpr_event_loop {
    /** sizeof(mpr_event_loop) as the implementation was compiled; lets the
     * struct grow without breaking older implementations. */
    size_t size;
    /** Free for the implementation's use (for example its own state). */
    void *data;

    /** Create a pingee for on_ping(arg). LOOP THREAD ONLY. The new pingee is
     * disconnected. Returns 0 or a negative MPR_ error. */
    int (*pingee_new)(const mpr_event_loop *loop, void (*on_ping)(void *arg),
                      void *arg, mpr_pingee **out);
    /** Start (connect) or stop (disconnect) running on_ping for pings.
     * LOOP THREAD ONLY. Disconnect forgets on_ping and arg for good. */
    void (*pingee_connect)(mpr_pingee *pingee);
    /** Stop running on_ping for pings; see pingee_connect. */
    void (*pingee_disconnect)(mpr_pingee *pingee);
    /** Drop the creator's reference; disconnects first if still connected.
     * LOOP THREAD ONLY. The pingee lives on while pingers hold references. */
    void (*pingee_free)(mpr_pingee *pingee);

    /** Make a pinger for a pingee; it holds a reference to the pingee until
     * it is disconnected or freed. ANY THREAD. Returns 0 or a negative
     * MPR_ error. */
    int (*pinger_new)(mpr_pingee *pingee, mpr_pinger **out);
    /** Allow pings (connect), send one ping, or disconnect: after
     * disconnect, ping() does nothing and the pinger keeps no reference to
     * its pingee. ANY THREAD, but one pinger is used by one thread at a
     * time. ping() never blocks for long and is safe to call at any rate. */
    void (*pinger_connect)(mpr_pinger *pinger);
    /** Send one ping; see pinger_connect. */
    void (*pinger_ping)(mpr_pinger *pinger);
    /** Disconnect the pinger; see pinger_connect. */
    void (*pinger_disconnect)(mpr_pinger *pinger);
    /** Free a pinger, disconnecting it first if needed. Same thread as the
     * other pinger calls. */
    void (*pinger_free)(mpr_pinger *pinger);
};

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_EVENT_LOOP_H */
