/**
 * @file mprouter/router.h
 * @brief The router and its receivers.
 *
 * A router carries byte messages from senders (in worker processes or
 * threads) to receivers on the main thread. It is driven by an event loop
 * (<mprouter/event_loop.h>): when messages arrive, the loop runs the router
 * on the main thread, which calls each message's receiver callback.
 *
 * "MAIN THREAD" below is the thread of the event loop given to
 * mpr_router_new(). Every router and receiver call is MAIN THREAD ONLY.
 *
 * Life of a router:
 *     mpr_router_new -> mpr_router_start -> (mpr_router_pipe ...
 *     mpr_router_close_pipe ...) -> mpr_router_stop -> [start again] ->
 *     mpr_router_free
 *
 * What the router promises:
 *   - messages of one pipe reach its receiver in the order they were sent,
 *     each exactly once, whole, with the length it was sent with;
 *   - a message for a pipe that is already closed is dropped with the
 *     warning "discarding message from closed pipe #ID";
 *   - only senders made by this router (and started while it runs) can
 *     connect, each pipe once: see <mprouter/sender.h>;
 *   - the router's secret lives in memory that a fork()ed child reads as
 *     zeros; a forked child inherits the sender objects its parent still
 *     holds (free them in the parent once the child is forked), an exec()ed
 *     worker only the string it was given;
 *   - dispatch runs in time slices of a few milliseconds, so the event loop
 *     keeps painting and firing timers while messages flood in; one wake-up
 *     of the main thread serves many messages.
 */
#ifndef MPROUTER_ROUTER_H
#define MPROUTER_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include <mprouter/event_loop.h>
#include <mprouter/sender.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A router (opaque): made by mpr_router_new, MAIN THREAD ONLY. */
typedef struct mpr_router mpr_router;
/** The receiving end of a pipe (opaque): made by mpr_router_pipe, owned by
 * the router. */
typedef struct mpr_receiver mpr_receiver;

/** Create a stopped router driven by loop. The loop (and its struct) must
 * outlive the router. MAIN THREAD. Returns 0, MPR_EINVAL or MPR_ENOMEM. */
MPR_EXTERN int mpr_router_new(mpr_router **out, const mpr_event_loop *loop);

/** Free a router; stops it first if it is running (with the unclosed-pipes
 * warning if pipes are open). MAIN THREAD; also from inside a receiver
 * callback, a lost callback or route_until's condition: the router stops
 * at once and is freed when dispatch has unwound (nothing more is
 * delivered). In a process that inherited a router through fork() it
 * frees only that process's memory: nothing of the parent's router is
 * stopped or shut down. NULL is a no-op. */
MPR_EXTERN void mpr_router_free(mpr_router *router);

/** Start routing: make a fresh secret and listening socket, start the
 * monitor thread and link to the event loop. MAIN THREAD.
 * Returns 0; MPR_EALREADY if already running (nothing changes); or a
 * system error (MPR_EMFILE, MPR_ENOMEM, ...) with nothing started. */
MPR_EXTERN int mpr_router_start(mpr_router *router);

/** Stop routing. Logs the warning "N unclosed pipes" if pipes are still open
 * and frees their receivers. Messages not yet routed are dropped. Joins the
 * monitor thread and closes every descriptor the router opened; never waits
 * for a worker. Senders still connected get MPR_EPIPE from their next send
 * (a remote sender as soon as it learns of it: at once, or after the
 * reconnect window if the word is lost on the way).
 * MAIN THREAD (may be called from a receiver callback).
 * Returns 0, or MPR_ESTATE if the router is not running (nothing changes). */
MPR_EXTERN int mpr_router_stop(mpr_router *router);

/** Make a pipe: a sender for the worker and a receiver that stays here,
 * sharing a new connection id. The caller owns *sender (free it with
 * mpr_sender_free, in every process that has a copy); the router owns
 * *receiver until mpr_router_close_pipe or mpr_router_stop. The receiver
 * has no callback yet: set one before returning to the event loop, or
 * messages are dropped. MAIN THREAD.
 * Returns 0, MPR_ESTATE if not running, MPR_EINVAL or MPR_ENOMEM. */
MPR_EXTERN int mpr_router_pipe(mpr_router *router, mpr_sender **sender,
                               mpr_receiver **receiver);

/** Close the receiver end of a pipe and FREE the receiver. Messages that
 * arrive for it afterwards are dropped with a warning. MAIN THREAD (may be
 * called from a receiver callback, also the receiver's own).
 * Returns 0; MPR_ESTATE if not running; MPR_ENOENT if the receiver is not
 * an open pipe of this router (nothing changes). A receiver handle is a
 * checked number, not a pointer: a handle of a pipe closed before (also a
 * second close) or any value that was never a handle gives MPR_ENOENT, and
 * never names a pipe made later. */
MPR_EXTERN int mpr_router_close_pipe(mpr_router *router, mpr_receiver *receiver);

/** Route messages by hand until condition(arg) returns non-zero.
 * condition is checked before each message; if it is true on entry nothing
 * is routed. timeout_s is a deadline for the whole call (< 0 or infinity:
 * none; NaN: MPR_EINVAL). Before it reports a timeout, every message whose
 * mpr_sender_send returned before that moment (in any thread or process
 * of this host, on any local transport) is routed, even with
 * timeout_s == 0: the router reads every connection as far as its sender
 * has written. With a queue limit too: the router then reads in steps,
 * as this call routes, so the limit still bounds memory.
 * SIDE EFFECT: the router leaves event-loop mode for good (until the next
 * start): pings are ignored and messages are routed only by this call.
 * MAIN THREAD, not from inside a receiver callback.
 * Returns 0 once condition is true; MPR_ETIMEDOUT if the deadline passed
 * first (the router stays usable); MPR_ESTATE if not running or called
 * from a callback (or if the condition stopped or freed the router);
 * MPR_EINVAL for a NULL condition or a NaN timeout. */
MPR_EXTERN int mpr_router_route_until(mpr_router *router, int (*condition)(void *arg),
                                      void *arg, double timeout_s);

/** Limit the bytes of messages that have arrived but not been routed
 * (0, the default: no limit), counting the bytes of messages still
 * arriving for at most half of it (so that one sender's message in
 * progress never holds the whole limit against the complete messages of
 * everyone else). When routable messages and those bytes reach the limit
 * the router stops reading messages (handshakes go on) until the main
 * thread has routed enough to bring them to half the limit, or has routed
 * all there was; senders block in mpr_sender_send (backpressure) and
 * memory stays bounded: by the limit, plus the messages in progress (each
 * at most the largest message size), plus what remote senders may still
 * send on credit given before (within the room the limit left, and at
 * least one 512 KiB frame each: a remote sender gets that much credit
 * whenever the router reads). A message larger than the limit still gets
 * through. A sender waits for as long as the main thread does not route.
 * MAIN THREAD; takes effect at the next start. */
MPR_EXTERN int mpr_router_set_queue_limit(mpr_router *router, size_t bytes);

/** The largest message a sender may send, in bytes (default and maximum
 * MPR_MAX_MESSAGE_SIZE). A connection that announces a larger one is closed
 * with a warning. An announced size costs nothing by itself: memory for a
 * message is committed as its bytes arrive, a step ahead at most. MAIN
 * THREAD; takes effect at the next start; senders learn it when they
 * start. Returns 0 or MPR_EINVAL. */
MPR_EXTERN int mpr_router_set_max_message_size(mpr_router *router, size_t bytes);

/** How long a new connection may take to prove it holds its pipe's key
 * before it is closed (default 5 s), counted from the moment it is
 * accepted (for a remote one: its tcp connection, CURVE handshake
 * included). At most 128 connections of each endpoint wait for their
 * handshake at once. When 128 wait, the local endpoint accepts no more
 * (new connections wait in the system's backlog, their senders in their
 * start) until one of them ends its handshake, or one that has said
 * nothing for a second since it was accepted is dropped to make room: a
 * sender whose HELLO has arrived is never pushed out by others, so a
 * burst of more than 128 workers all get in (each within its start's
 * wait of 10 s). So a process of the router's own user that holds 128
 * connections past their HELLO keeps new workers waiting up to the
 * handshake timeout (longer with more queued behind them: their start
 * returns MPR_ETIMEDOUT); other users are turned away at accept. The remote endpoint, open to
 * any host, drops the one whose handshake moved last the longest ago
 * (its accept, or its last step: the ZeroMQ greeting, a valid CURVE
 * HELLO, CURVE done, the pipe's HELLO), so idle connections, silent or
 * through CURVE, push out a remote worker whose handshake goes on only if
 * 128 newer ones arrive within one of its round trips. Connections are
 * accepted a few per round of the monitor (a flood of them never holds up
 * the handshakes under way), and only while the lowest free descriptor of
 * the process is at least 32 below its limit: otherwise new connections
 * wait in the system's backlog (their senders in their start, up to its
 * timeout) until there are descriptors again. Rejected connections are
 * warned about a few times a second, then in a summary per second; the
 * warnings name the peer (its pid, or its own address and port).
 * MAIN THREAD; takes effect at the next start. */
MPR_EXTERN int mpr_router_set_handshake_timeout(mpr_router *router, double seconds);

/**
 * Workers on other machines.
 *
 * Before start: also accept senders over tcp with ZeroMQ's protocol,
 * always encrypted and authenticated with CURVE (ZMTP 3.0 and CurveZMQ,
 * spoken by mprouter itself on libsodium: any ZeroMQ DEALER with CURVE can
 * talk to it), at bind_endpoint, such as "tcp://0.0.0.0:0" (any free
 * port) or "tcp://10.0.0.1:5555".
 * advertised_host is the host name or address that workers on other
 * machines use to reach it (NULL: the bound address, or this host's name
 * when bound to a wildcard address). bind_endpoint NULL turns it off.
 * Takes effect at the next start: the router then makes a fresh CURVE key
 * pair, and the strings of its senders (mpr_sender_to_string) carry the
 * endpoint and the router's public key, so they work on another machine
 * too (see <mprouter/sender.h>). Returns 0; MPR_ENOTSUP when mprouter was
 * built without the remote transport; MPR_EINVAL for a malformed endpoint or host. A
 * start whose endpoint cannot be bound fails with its error
 * (MPR_EADDRINUSE, MPR_EADDRNOTAVAIL, ...). MAIN THREAD.
 */
MPR_EXTERN int mpr_router_set_remote(mpr_router *router, const char *bind_endpoint,
                                     const char *advertised_host);

/** After start: the endpoint remote workers connect to ("tcp://host:port"),
 * into buf (snprintf-style: the length of the full string is returned even
 * if size is too small). MPR_ESTATE if the router is not running,
 * MPR_ENOENT if it has no remote endpoint, MPR_ENOTSUP without the remote transport,
 * MPR_EINVAL for bad arguments. MAIN THREAD. */
MPR_EXTERN int mpr_router_remote_endpoint(const mpr_router *router, char *buf, size_t size);

/** The reconnect window of remote senders (default 10 s, at most 3600): a
 * broken connection that heals within it loses nothing; a remote sender
 * not heard from for longer is lost (its lost callback runs after its last
 * delivered message), and a remote sender that does not hear from the
 * router for longer gives up (MPR_EPIPE). A sender sends a heartbeat
 * every 250 ms when idle, drops a connection it has heard nothing on for
 * 1 s and connects again at once, then every 250 ms: a break of the
 * network heals when it ends at least about half a second before the
 * window does. "Heard from" means any bytes arriving, not only whole
 * messages: on a slow link the window is the longest time in which no
 * byte at all may cross, however long one frame (up to 512 KiB) takes, and
 * while bytes arrive the router answers at least every 250 ms, so a sender
 * whose heartbeat waits behind its own large frame still hears it and
 * keeps its connection. MAIN THREAD; takes effect at the next start.
 * Returns 0 or MPR_EINVAL. */
MPR_EXTERN int mpr_router_set_remote_window(mpr_router *router, double seconds);

/** Counters since the router was created. MAIN THREAD. */
typedef struct mpr_router_stats {
    uint64_t messages_received;    /**< read from connections by the monitor thread */
    uint64_t messages_routed;      /**< delivered to a receiver callback */
    uint64_t messages_dropped;     /**< for closed pipes, pipes without callback, or at stop */
    uint64_t connections_accepted; /**< authenticated sender connections */
    uint64_t connections_rejected; /**< bad credentials, unknown pipe, bad handshake */
    uint64_t connections_broken;   /**< protocol errors or truncated messages after the handshake */
    uint64_t senders_lost;         /**< connections that ended without mpr_sender_stop */
    uint64_t pings;                /**< wake-ups of the main thread requested */
} mpr_router_stats;
/** Copy the router's counters into *out. MAIN THREAD. */
MPR_EXTERN void mpr_router_get_stats(const mpr_router *router, mpr_router_stats *out);

/** Set the callback that receives this pipe's messages, in order, on the
 * main thread: cb(arg, data, size). data is valid only during the call
 * (copy what you keep); size may be 0. cb may call mpr_router_pipe,
 * mpr_router_close_pipe (also on this receiver) and mpr_router_stop.
 * cb == NULL: messages are dropped. MAIN THREAD. */
MPR_EXTERN void mpr_receiver_set_callback(mpr_receiver *receiver,
                                          void (*cb)(void *arg, const void *data, size_t size),
                                          void *arg);

/** Set a callback run once, on the main thread, when the pipe's sender
 * connection ends without mpr_sender_stop (the worker crashed or was
 * killed), after every message that arrived from it. Use it to show a
 * failed task. MAIN THREAD. */
MPR_EXTERN void mpr_receiver_set_lost_callback(mpr_receiver *receiver,
                                               void (*cb)(void *arg), void *arg);

/**
 * THE WAY BACK: control messages and cancel requests, receiver -> sender.
 *
 * A pipe also carries messages the other way, from the main thread to the
 * pipe's worker (job arguments for a worker that stays alive between
 * jobs), and a cancel request that a worker tests cheaply while it
 * computes. Both travel on the pipe's own connection, on every transport,
 * under the same rules as messages forward: only the sender that proved
 * the pipe's key gets them, over tcp encrypted (CURVE). They may be sent
 * as soon as the pipe is made: what is sent before the worker connects
 * waits in the router (within MPR_CONTROL_QUEUE_SIZE) and is delivered
 * when it does.
 *
 * mpr_receiver_send: one message of size bytes (0 .. MPR_CONTROL_MAX_SIZE)
 * for the worker's mpr_sender_recv. The messages of one pipe arrive in
 * order, each once and whole, also across a broken tcp link that heals
 * within the reconnect window. Bounded: a pipe holds at most
 * MPR_CONTROL_QUEUE_SIZE bytes of them that its worker has not yet been
 * given (on the ring transport: not yet written to its connection; on
 * the socket transport and over tcp: not yet taken by its
 * mpr_sender_recv); beyond that, MPR_EAGAIN (nothing
 * queued; try again after the worker has read). What the worker has not
 * received when its sender ends (stopped, lost, the router stopped) is
 * dropped. MAIN THREAD. Returns 0; MPR_EINVAL (data NULL with size > 0);
 * MPR_EMSGSIZE (size above MPR_CONTROL_MAX_SIZE); MPR_EAGAIN; MPR_EPIPE
 * (the pipe's sender has ended: stopped, lost or refused; nothing
 * queued); MPR_ESTATE (the router is not running); MPR_ENOENT (not an
 * open pipe of this router); MPR_EOWNER (in a process forked from the
 * one that made the router: only that process's router routes; nothing
 * queued); MPR_ENOMEM.
 *
 * mpr_receiver_cancel: ask the worker to cancel what tag names (a number
 * of the application's: a job id; not 0). The pipe keeps the newest tag
 * only; mpr_sender_cancelled returns it once it has reached the worker
 * (a repeat is harmless). It does not wait for the worker, and it is not
 * ordered with control messages: a worker that must know which job a
 * cancel is for compares tags (a cancel for a job that has ended names a
 * job the worker no longer runs). The same errors as mpr_receiver_send,
 * with MPR_EINVAL for tag 0.
 */
MPR_EXTERN int mpr_receiver_send(mpr_receiver *receiver, const void *data, size_t size);
/** Ask the pipe's worker to cancel tag (see above). MAIN THREAD. */
MPR_EXTERN int mpr_receiver_cancel(mpr_receiver *receiver, uint64_t tag);

/** The connection id shared by the receiver and its sender (>= 1). */
MPR_EXTERN uint32_t mpr_receiver_id(const mpr_receiver *receiver);

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_ROUTER_H */
