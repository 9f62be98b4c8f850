/*
 * sender_p.h - the sender's state, shared by sender.c (the public API,
 * the string form, who may call it) and the transports' sending ends
 * (transport_socket.c, transport_ring.c, transport_zmq.c). Never installed.
 */
#ifndef MPR_SENDER_P_H
#define MPR_SENDER_P_H

#include <pthread.h>
#include <stdint.h>

#include <mprouter/sender.h>

#include "ring.h"
#include "wire.h"

#define MPR__NAME_MAX 100   /* the router's abstract socket name */
#define MPR__REMOTE_MAX 200 /* "tcp://host:port" of the router's remote endpoint */
#define MPR__CURVE_KEY_LEN 40 /* a CURVE key in Z85 */

typedef struct mpr__sender_ops {
    /* One message (size already checked against the router's maximum).
     * 0 or an MPR_ error; MPR_EPIPE when the router has gone. */
    int (*send)(mpr_sender *s, const void *data, size_t size);
    /* The end of the stream: tell the router the sender stopped (and, for
     * a remote router, wait until it has every message). 0 or an error. */
    int (*stop)(mpr_sender *s);
    /* Release everything the transport holds; after stop, or instead of
     * it (the router then sees a lost sender). */
    void (*close)(mpr_sender *s);
} mpr__sender_ops;

enum { MPR__SENDER_INITIAL, MPR__SENDER_OPEN, MPR__SENDER_CLOSED };

struct mpr_sender {
    int state;
    uint64_t token;    /* mpr__process_token() of the process that started it */
    pthread_t thread;  /* the thread that started it */
    int broken;        /* the router went away: every send fails */
    uint32_t id;
    uint32_t max_msg;  /* the router's, learned in the handshake */
    unsigned char key[MPR__SECRET_SIZE]; /* the pipe's key (wire.h) */
    char name[MPR__NAME_MAX + 1];
    char remote[MPR__REMOTE_MAX + 1];    /* "" if the router has no remote endpoint */
    char server_key[MPR__CURVE_KEY_LEN + 1]; /* its CURVE public key (Z85) */
    const mpr__sender_ops *ops;          /* the transport chosen by start */
    int fd;            /* local transports: the connection */
    mpr__ring ring;    /* ring transport */
    void *remote_state; /* zmq transport */
};

/* The local transports (transport_socket.c): connect to the router's
 * abstract socket, check that the router is what it says (its uid, its
 * proof of the pipe's key), and hand over a ring if want_ring and one can
 * be made. On success s->fd, s->max_msg and s->ops are set. 0;
 * MPR_ECONNREFUSED (no router there, or not our router); MPR_EACCES
 * (rejected); MPR_EALREADY (the pipe had its sender); MPR_ETIMEDOUT; or a
 * system error. */
int mpr__local_start(mpr_sender *s, int want_ring);

/* The remote transport (transport_zmq.c): a thread of the sender's own
 * talks ZeroMQ with the router at s->remote, checked with s->server_key.
 * 0 with s->ops set, or the codes of mpr__local_start. */
int mpr__remote_start(mpr_sender *s);

/* The sending ends of the local transports. */
extern const mpr__sender_ops mpr__frames_sender_ops;
extern const mpr__sender_ops mpr__ring_sender_ops;

/* Send all of n bytes at p on a socket, without SIGPIPE. */
int mpr__send_all(int fd, const void *p, size_t n);
/* Read exactly n bytes before deadline_ns: 0, MPR_EACCES at the end of
 * stream (the router hung up: rejected), MPR_ETIMEDOUT, or an error. */
int mpr__recv_exact(int fd, void *buf, size_t n, int64_t deadline_ns);

#endif /* MPR_SENDER_P_H */
