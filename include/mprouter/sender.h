/**
 * @file mprouter/sender.h
 * @brief The sending end of a pipe.
 *
 * A sender is made by mpr_router_pipe() on the main thread and travels to a
 * worker: a thread gets the pointer, a fork()ed child inherits its copy, an
 * exec()ed program gets it as a string (mpr_sender_to_string, then
 * mpr_sender_from_string in the program; hand the string over on the
 * program's standard input, never on its command line). The worker then
 * calls
 *
 *     mpr_sender_start -> mpr_sender_send ... -> mpr_sender_stop
 *
 * all from ONE THREAD, and finally mpr_sender_free. States:
 * INITIAL --start--> OPEN --stop--> CLOSED; a sender is never restarted.
 *
 * ONE PIPE, ONE SENDER: a pipe takes one sender connection in its life. A
 * second start of the same pipe (a copy made from the same string, or the
 * string replayed after its sender stopped) is refused with MPR_EALREADY
 * and counted by the router as rejected: N workers need N pipes.
 *
 * A STARTED SENDER BELONGS TO ITS THREAD: send and stop from another
 * thread, or from a process that inherited the started sender through
 * fork(), return MPR_EOWNER and touch nothing; the owner's stream goes on
 * undisturbed. A forked child may free its copy (mpr_sender_free closes
 * only the child's copies). Fork before start, and start in the child.
 *
 * start connects to the router's local endpoint and checks it: the peer
 * must run as the same user and prove it knows the pipe's key, by
 * answering a fresh nonce; then the sender proves the same (the key itself
 * never crosses the connection; it grants access to its own pipe only) and
 * hands over a shared-memory ring of 1 MiB. If the router cannot take the
 * ring (it is at its descriptor limit), messages go as frames on the
 * connection instead. A router short of descriptors does not accept new
 * connections until it has some again: start then waits (up to its 10 s).
 * The local endpoint is, on Linux, an abstract AF_UNIX socket (the peer's
 * user from SO_PEERCRED) and the ring a sealed memfd; in the portable
 * build (macOS, the BSDs), a socket in a private 0700 directory in /tmp
 * (getpeereid) and a POSIX shared memory object, which the router reads
 * without mapping where the system could let the worker shrink it.
 * send copies the message into the ring and returns: no system call unless
 * the router's monitor thread sleeps (one wake-up) or the ring is full (the
 * sender waits for room). A message whose send returned is delivered even
 * if the worker dies right after. Messages larger than a quarter of the
 * ring travel in pieces. send never raises SIGPIPE.
 *
 * On Windows the local endpoint is a named pipe that only the router's user
 * may open (its DACL), the peer's user is checked through the two
 * processes' tokens (GetNamedPipeServerProcessId), and the ring is an
 * unnamed pagefile section of 1 MiB that the router takes out of the
 * worker's process (the worker is given no right on the router's).
 *
 * Setting the environment variable MPR_TRANSPORT=socket before start makes
 * the sender write each message to the socket instead (one system call per
 * message; the fallback when shared memory is unavailable).
 *
 * WORKERS ON OTHER MACHINES (a router with mpr_router_set_remote; built
 * with the remote transport). The sender's string then also carries the
 * router's endpoint and CURVE public key. start uses the local transports
 * when the router's local endpoint is reachable (same host and network
 * namespace) and tcp otherwise (another host, another network namespace, a
 * container); MPR_TRANSPORT=zmq forces tcp. On tcp the sender speaks
 * ZeroMQ's protocol with CURVE: everything is encrypted, the sender talks
 * only to the router whose key its string holds, and it proves its pipe's
 * key inside that channel (the router proves it too). There is no user
 * check over a network: the string is a password, hand it over on
 * standard input or in a file only its user can read. start fails with
 * MPR_ECONNREFUSED if nothing listens at the endpoint or the peer there
 * has another key. A started remote sender has a thread of its own: send
 * copies the message into a ring in memory and returns; the thread packs
 * many messages into one encrypted frame.
 * Delivery over a network, per pipe:
 *   - in order, no duplicates, no gaps;
 *   - a broken connection that heals within the router's reconnect window
 *     (mpr_router_set_remote_window, default 10 s; less about half a
 *     second, see there) loses nothing: the sender keeps what the router
 *     has not taken and sends it again, the router drops what it already
 *     has;
 *   - mpr_sender_stop returns 0 only when the router has acknowledged
 *     every message whose send returned 0; otherwise an error:
 *     MPR_ETIMEDOUT (nothing heard from the router for the window: stop
 *     waits as long as the router answers, a slow router is not a lost
 *     one) or MPR_EPIPE (the router stopped or dropped the sender, or a
 *     send has failed before);
 *   - what a worker sent and the router had not yet taken when the worker
 *     died is lost: a message whose send returned is certain to arrive only
 *     once stop returned 0 (locally, once send returned);
 *   - a sender whose host vanishes (nothing heard for the window) is
 *     reported like a crashed local worker: its lost callback after its
 *     last delivered message; a sender that hears nothing from its router
 *     for the window gets MPR_EPIPE. Any byte that arrives counts as
 *     heard: a slow link whose frames (up to 512 KiB) take longer than the
 *     window to cross is not a lost one, and the router answers at least
 *     every 250 ms while bytes arrive;
 *   - with a queue limit, remote senders wait in send too: the router gives
 *     credit only while its queue has room.
 *
 * The sender (and its string) is the only key to the router: keep it
 * private to the workers you trust.
 */
#ifndef MPROUTER_SENDER_H
#define MPROUTER_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include <mprouter/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The sending end of a pipe (opaque): see the top of this file. */
typedef struct mpr_sender mpr_sender;

/** Connect to the router and check it (see above). Returns 0;
 * MPR_EALREADY if this sender was started before (also after stop) or its
 * pipe already had its sender; MPR_ECONNREFUSED if the router is not
 * running (also: restarted since the pipe was made), or what listens at
 * its address is not the router (another user's socket, a peer that
 * cannot prove it knows the pipe's key, as a forged sender string sees its
 * router, or over tcp a peer without the router's CURVE key);
 * MPR_EACCES if the router closed the connection in the handshake (an
 * id it never issued, another protocol version, it stopped during the
 * handshake, or its handshake timeout passed: a worker stopped or starved
 * of CPU for longer than mpr_router_set_handshake_timeout; the router's
 * log says which); MPR_ETIMEDOUT if connecting and the handshake did not
 * complete within 10 s of the call (nobody answered, or a router short of
 * descriptors or with 128 other handshakes under way did not take the
 * connection in that time: it waited in the full backlog); or a system
 * error (MPR_EMFILE, ...). */
MPR_EXTERN int mpr_sender_start(mpr_sender *sender);

/** Send size bytes at data (data may be NULL if size is 0). Blocks only
 * while the router applies backpressure (see mpr_router_set_queue_limit).
 * Returns 0; MPR_ESTATE if not OPEN; MPR_EOWNER if called from another
 * thread than the one that started it, or in a forked copy; MPR_EMSGSIZE
 * if size is above the router's maximum; MPR_EPIPE if the router has
 * stopped or dropped the connection (the sender stays OPEN, every later
 * send fails too). */
MPR_EXTERN int mpr_sender_send(mpr_sender *sender, const void *data, size_t size);

/** Close the connection, telling the router the stream ended normally.
 * Returns 0; MPR_EPIPE if the router has gone (what it had not read is
 * lost), also when a send failed before; over tcp the errors above
 * (delivery over a network); MPR_ESTATE if not OPEN; MPR_EOWNER (as for
 * send). */
MPR_EXTERN int mpr_sender_stop(mpr_sender *sender);

/** Free a sender; closes its connection if still open (the router then
 * sees a lost sender). In a process that inherited the started sender
 * through fork() it closes only that process's copies. NULL is a no-op. */
MPR_EXTERN void mpr_sender_free(mpr_sender *sender);

/** Write the sender as a NUL-terminated string into buf (snprintf-style):
 * returns the length of the full string (without the NUL) even if size is
 * too small, or MPR_EINVAL. Only an INITIAL sender can be turned into a
 * string. The string contains the pipe's key: treat it as a password for
 * that pipe (it lets its holder send to this pipe, once, and to no other);
 * pass it on a pipe or standard input, not on a command line. */
MPR_EXTERN int mpr_sender_to_string(const mpr_sender *sender, char *buf, size_t size);

/** Make a new INITIAL sender from a string made by mpr_sender_to_string.
 * Returns 0, MPR_EINVAL for a malformed string, or MPR_ENOMEM. */
MPR_EXTERN int mpr_sender_from_string(mpr_sender **out, const char *text);

/** The newest cancel request of the pipe (mpr_receiver_cancel in the
 * application) that has reached this sender: its tag, or 0 if none has.
 * Cheap enough to call in an inner loop: on the ring transport it reads a
 * word of the shared ring (no system call); on the socket transport
 * (MPR_TRANSPORT=socket) it looks at the connection at most once a
 * millisecond (one non-blocking read; the last tag seen otherwise); over
 * tcp it reads a word the sender's own thread sets. A request travels on
 * its own: a call a moment after mpr_receiver_cancel returned may still
 * give the tag before (the request is on its way), and it is not ordered
 * with control messages or with what the worker sends: it reaches a
 * worker that takes none of them, however many wait. 0 before start;
 * after stop, the last tag seen. From a thread other
 * than the owner (or a forked copy): the last tag the owner saw, without
 * looking (thread-safe). */
MPR_EXTERN uint64_t mpr_sender_cancelled(mpr_sender *sender);

/** Take the next control message of the pipe (mpr_receiver_send in the
 * application), waiting up to timeout_s seconds for one (0: do not wait;
 * < 0 or infinity: without limit; NaN: MPR_EINVAL). The message is copied
 * into buf (size bytes); *length gets its size. Returns 0; MPR_EMSGSIZE if
 * it does not fit (*length: its size; it stays the next message, nothing
 * is copied); MPR_ETIMEDOUT; MPR_EPIPE once the router has gone (stopped,
 * dropped the sender, or over tcp silent for the window), after every
 * message that had reached the sender; MPR_ESTATE if not OPEN; MPR_EOWNER
 * (as for send); MPR_EINVAL (length NULL, or buf NULL with size > 0).
 * The messages wait in the sender's memory until taken: at most
 * MPR_CONTROL_QUEUE_SIZE bytes (and one message) on the socket
 * transport and over tcp; on the ring transport it reads no more while
 * it holds that much (a cancel request still arrives: it is in the
 * ring). */
MPR_EXTERN int mpr_sender_recv(mpr_sender *sender, void *buf, size_t size, size_t *length,
                               double timeout_s);

/** The connection id of the sender's pipe (>= 1). */
MPR_EXTERN uint32_t mpr_sender_id(const mpr_sender *sender);

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_SENDER_H */
