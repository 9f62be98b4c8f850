/**
 * @file mprouter/fd_loop.h
 * @brief The built-in file-descriptor event loop.
 *
 * An mpr_fd_loop turns pings into readiness of one file descriptor (on
 * Windows: the signalled state of one event handle, mpr_fd_loop_handle), so
 * any event loop that can watch a descriptor (a plain poll() loop, GLib's
 * g_unix_fd_add, libuv's uv_poll, Qt's QSocketNotifier) can drive the
 * router:
 *
 *     mpr_fd_loop *loop;
 *     mpr_fd_loop_new(&loop);
 *     mpr_router_new(&router, mpr_fd_loop_event_loop(loop));
 *     ...
 *     struct pollfd p = { mpr_fd_loop_fd(loop), POLLIN, 0 };
 *     while (poll(&p, 1, -1) >= 0) mpr_fd_loop_dispatch(loop);
 *
 * and on Windows
 *
 *     HANDLE h = mpr_fd_loop_handle(loop);
 *     while (WaitForSingleObject(h, INFINITE) == WAIT_OBJECT_0)
 *         mpr_fd_loop_dispatch(loop);
 *
 * The descriptor is LEVEL-TRIGGERED: it is readable exactly while pings are
 * pending. The caller only watches it: it never reads, writes or closes it;
 * mpr_fd_loop_dispatch() resets it.
 *
 * The thread that calls mpr_fd_loop_new() is the loop's thread (the "main
 * thread" of the router's documentation): pingees are made, connected,
 * disconnected and freed there, and mpr_fd_loop_dispatch() runs on_ping
 * callbacks there.
 */
#ifndef MPROUTER_FD_LOOP_H
#define MPROUTER_FD_LOOP_H

#include <mprouter/event_loop.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The file-descriptor event loop (opaque). */
typedef struct mpr_fd_loop mpr_fd_loop;

/** Create a loop. Returns 0, MPR_ENOMEM, or a system error (MPR_EMFILE...). */
MPR_EXTERN int mpr_fd_loop_new(mpr_fd_loop **out);

/** Free a loop. LOOP THREAD ONLY. Every router using it must have been
 * freed and every pingee made from it freed first; pingers still held by
 * other threads keep its shared state alive until they are freed. NULL is
 * a no-op. */
MPR_EXTERN void mpr_fd_loop_free(mpr_fd_loop *loop);

/** The mpr_event_loop interface of this loop, for mpr_router_new(). Valid
 * until the loop is freed. */
MPR_EXTERN const mpr_event_loop *mpr_fd_loop_event_loop(mpr_fd_loop *loop);

/** The descriptor to watch for readability (see above). Never fails.
 * Windows: there is no such descriptor; returns -1 (watch
 * mpr_fd_loop_handle() instead). */
MPR_EXTERN int mpr_fd_loop_fd(const mpr_fd_loop *loop);

/** Windows: the HANDLE of an event that is SIGNALLED exactly while pings
 * are pending (level-triggered, like the descriptor elsewhere), to wait
 * for with WaitForMultipleObjects, MsgWaitForMultipleObjects or Qt's
 * QWinEventNotifier. The caller only waits on it: it never sets, resets,
 * duplicates away or closes it; mpr_fd_loop_dispatch() resets it. Valid
 * until the loop is freed. Never fails. Elsewhere: NULL (watch
 * mpr_fd_loop_fd()). */
MPR_EXTERN void *mpr_fd_loop_handle(const mpr_fd_loop *loop);

/** Run the on_ping callbacks of the pings pending when the call starts,
 * once per ping, in the order of the pings, on the calling thread. Pings
 * that arrive meanwhile (also those made by the callbacks) are left for the
 * next call. Never blocks. LOOP THREAD ONLY; not reentrant (a call from
 * inside an on_ping returns MPR_ESTATE). Returns the number of callbacks
 * run (>= 0) or a negative error. */
MPR_EXTERN int mpr_fd_loop_dispatch(mpr_fd_loop *loop);

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_FD_LOOP_H */
