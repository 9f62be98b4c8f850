/**
 * @file mprouter/sender.h
 * @brief The sending end of a pipe.
 *
 * A sender is made by mpr_router_pipe() on the main thread and travels to a
 * worker: a thread gets the pointer, a fork()ed child inherits its copy, an
 * exec()ed program gets it as a string (mpr_sender_to_string, then
 * mpr_sender_from_string in the program). The worker then calls
 *
 *     mpr_sender_start -> mpr_sender_send ... -> mpr_sender_stop
 *
 * all from ONE THREAD, and finally mpr_sender_free. States:
 * INITIAL --start--> OPEN --stop--> CLOSED; a sender is never restarted.
 *
 * start connects to the router (AF_UNIX), proves it holds its pipe's key
 * (derived from the router's secret; it grants access to that pipe only)
 * and hands over a shared-memory ring (a sealed memfd of 1 MiB).
 * send copies the message into the ring and returns: no system call unless
 * the router's monitor thread sleeps (one wake-up) or the ring is full (the
 * sender waits for room). A message whose send returned is delivered even
 * if the worker dies right after. Messages larger than a quarter of the
 * ring travel in pieces. send never raises SIGPIPE.
 *
 * Setting the environment variable MPR_TRANSPORT=socket before start makes
 * the sender write each message to the socket instead (one system call per
 * message; the fallback when shared memory is unavailable).
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

/** Connect to the router. Returns 0; MPR_EALREADY if started before (also
 * after stop); MPR_ECONNREFUSED if the router is not running;
 * MPR_EACCES if the router rejected the credentials (router restarted
 * since the pipe was made, or a forged sender); or a system error. */
MPR_EXTERN int mpr_sender_start(mpr_sender *sender);

/** Send size bytes at data (data may be NULL if size is 0). Blocks only
 * while the router applies backpressure (see mpr_router_set_queue_limit).
 * Returns 0; MPR_ESTATE if not OPEN; MPR_EMSGSIZE if size is above the
 * router's maximum; MPR_EPIPE if the router has stopped or dropped the
 * connection (the sender stays OPEN, every later send fails too). */
MPR_EXTERN int mpr_sender_send(mpr_sender *sender, const void *data, size_t size);

/** Close the connection, telling the router the stream ended normally.
 * Returns 0 or MPR_ESTATE if not OPEN. */
MPR_EXTERN int mpr_sender_stop(mpr_sender *sender);

/** Free a sender; closes its connection if still open (the router then
 * sees a lost sender). NULL is a no-op. */
MPR_EXTERN void mpr_sender_free(mpr_sender *sender);

/** Write the sender as a NUL-terminated string into buf (snprintf-style):
 * returns the length of the full string (without the NUL) even if size is
 * too small, or MPR_EINVAL. Only an INITIAL sender can be turned into a
 * string. The string contains the pipe's key: treat it as a password for
 * that pipe (it lets its holder send to this pipe, and to no other). */
MPR_EXTERN int mpr_sender_to_string(const mpr_sender *sender, char *buf, size_t size);

/** Make a new INITIAL sender from a string made by mpr_sender_to_string.
 * Returns 0, MPR_EINVAL for a malformed string, or MPR_ENOMEM. */
MPR_EXTERN int mpr_sender_from_string(mpr_sender **out, const char *text);

/** The connection id of the sender's pipe (>= 1). */
MPR_EXTERN uint32_t mpr_sender_id(const mpr_sender *sender);

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_SENDER_H */
