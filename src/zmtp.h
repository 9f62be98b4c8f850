/*
 * zmtp.h - ZeroMQ's wire protocol with its CURVE security mechanism, both
 * ends, without any I/O (the libzmq "mechanism" pattern: the caller reads
 * bytes into the machine, asks it for the next event, and writes out what
 * it queued). Never installed.
 *
 *   RFC 23 ZMTP 3.0 (greeting, frames, commands), RFC 25 ZMTP-CURVE and
 *   RFC 26 CurveZMQ (HELLO, WELCOME, INITIATE, READY, MESSAGE, ERROR), on
 *   libsodium's crypto_box (curve25519xsalsa20poly1305).
 *
 * Only what the remote transport needs, and no more: one client (it
 * presents itself as a DEALER) talks to one server (a ROUTER); the
 * mechanism is CURVE or nothing; messages are single-part, so a MORE flag
 * (in a frame or in an encrypted message) is a protocol error; a PING is
 * answered with a PONG, every other command after the handshake is an
 * error. Any libzmq DEALER with CURVE can talk to a server machine, and a
 * client machine to any libzmq ROUTER with CURVE (tests/zmtp checks both).
 *
 * Bounded by construction. The machine buffers at most one frame of input:
 * MPR__ZMTP_HANDSHAKE_MAX bytes until the handshake is complete, then
 * max_message plus the CURVE overhead; a frame header announcing more is a
 * protocol error before any of its body is buffered. Output is what the
 * caller queued (mpr__zmtp_send) plus the few handshake commands and the
 * PONGs, which are skipped while 64 KiB of output wait to be written.
 *
 * Secrets. The long-term secret key and the server's cookie key stay in
 * the caller's memory (a wipe-on-fork, no-dump page: mpr__secure_alloc) and
 * are read, never copied. The machine's own short-term keys and its
 * precomputed session key live in such a page too; every temporary that
 * held key material is wiped (sodium_memzero) before the call returns.
 *
 * Errors: every function returns 0 (or 1 for "an event") or a negative
 * MPR_ code; MPR_EPROTO means the peer broke the protocol (or is not who it
 * must be) and the connection must be closed; mpr__zmtp_why() then says
 * why in a few words for a warning.
 */
#ifndef MPR_ZMTP_H
#define MPR_ZMTP_H

#include <stddef.h>
#include <stdint.h>

#define MPR__ZMTP_KEY_SIZE 32       /* a CURVE public or secret key */
#define MPR__ZMTP_HANDSHAKE_MAX 1024 /* the largest frame before READY */
#define MPR__ZMTP_OVERHEAD 64       /* frame header + MESSAGE command + nonce + MAC + flags, at most */

enum { MPR__ZMTP_CLIENT = 0, MPR__ZMTP_SERVER = 1 };

typedef struct mpr__zmtp_config {
    int role;                         /* MPR__ZMTP_CLIENT or MPR__ZMTP_SERVER */
    const unsigned char *public_key;  /* own long-term public key (32 bytes) */
    const unsigned char *secret_key;  /* own long-term secret key (32): read, never copied;
                                       * must stay valid while the machine lives */
    const unsigned char *server_key;  /* CLIENT: the server's long-term public key */
    const unsigned char *cookie_key;  /* SERVER: 32 bytes that seal cookies (one per
                                       * server start): read, never copied */
    size_t max_message;               /* the largest message body accepted after READY
                                       * (and the largest that may be sent) */
} mpr__zmtp_config;

typedef struct mpr__zmtp mpr__zmtp;

enum {
    MPR__ZMTP_READY = 1,   /* the handshake is complete (once) */
    MPR__ZMTP_MESSAGE = 2  /* a message arrived */
};

typedef struct mpr__zmtp_event {
    int kind;                  /* MPR__ZMTP_READY or MPR__ZMTP_MESSAGE */
    const unsigned char *data; /* MESSAGE: its body, valid until the next call on the machine */
    size_t size;
    /* READY, SERVER role: the client's long-term public key, which the
     * client proved it holds (its vouch); CLIENT role: the server's key,
     * which the server proved it holds (its WELCOME). Not set for
     * MESSAGE. */
    unsigned char peer_key[MPR__ZMTP_KEY_SIZE];
} mpr__zmtp_event;

/* A new machine. It queues the start of its greeting at once (see
 * mpr__zmtp_output), and the rest when the peer's has begun well.
 * 0, MPR_EINVAL (a key missing for the role, a server key that is not a
 * usable public key, max_message above MPR_MAX_MESSAGE_SIZE), MPR_ENOMEM
 * or MPR_EIO (libsodium could not start). */
int mpr__zmtp_new(mpr__zmtp **out, const mpr__zmtp_config *cfg);
/* Wipes every key of the machine's own and frees it. NULL is a no-op. */
void mpr__zmtp_free(mpr__zmtp *z);

/* Where the caller may read input: up to *space bytes at *buf. *space is 0
 * only while a complete frame waits to be taken with mpr__zmtp_step, or
 * after an error. Never more than the bound past the frame being read. */
void mpr__zmtp_input(mpr__zmtp *z, unsigned char **buf, size_t *space);
/* n bytes were written at the place mpr__zmtp_input gave. */
void mpr__zmtp_input_done(mpr__zmtp *z, size_t n);

/* Take the next complete frame of the input, if there is one, and act on
 * it (a handshake command may queue the answer). Returns 1 with *ev filled
 * (READY or MESSAGE), 0 when more input is needed, or a negative error
 * (then nothing more is parsed; mpr__zmtp_why says why). Call it until it
 * returns 0 after each mpr__zmtp_input_done. */
int mpr__zmtp_step(mpr__zmtp *z, mpr__zmtp_event *ev);

/* After READY: encrypt one message into the output. 0; MPR_ESTATE before
 * READY or after an error; MPR_EMSGSIZE above max_message; MPR_ENOMEM. */
int mpr__zmtp_send(mpr__zmtp *z, const void *data, size_t size);

/* The output waiting to be written: its length, and where it is (*buf).
 * mpr__zmtp_output_done: n of those bytes were written. */
size_t mpr__zmtp_output(const mpr__zmtp *z, const unsigned char **buf);
void mpr__zmtp_output_done(mpr__zmtp *z, size_t n);

/* Is the handshake complete? */
int mpr__zmtp_is_ready(const mpr__zmtp *z);

/* How far the handshake has come: 0 waiting for the peer's greeting, 1
 * greeting done (server: waiting for HELLO; client: waiting for WELCOME),
 * 2 a valid HELLO (server: waiting for INITIATE; client: waiting for
 * READY), 3 complete. */
int mpr__zmtp_stage(const mpr__zmtp *z);

/* The bytes the machine holds: its own page(s) and its input and output
 * buffers (for accounting, and for tests of the bounds). */
size_t mpr__zmtp_memory(const mpr__zmtp *z);

/* Why the last error happened ("not CURVE", "HELLO not for this server's
 * key", "message flagged MORE", ...): static or the machine's own text,
 * valid while the machine lives; "" if there was none. */
const char *mpr__zmtp_why(const mpr__zmtp *z);

/* A fresh long-term key pair (libsodium): public into pub, secret into
 * sec (give it a wipe-on-fork page). 0 or MPR_EIO. */
int mpr__zmtp_keypair(unsigned char pub[MPR__ZMTP_KEY_SIZE], unsigned char sec[MPR__ZMTP_KEY_SIZE]);

/* Z85 (ZeroMQ's RFC 32) of a 32-byte key: 40 characters and a NUL. The
 * decoder returns 0 or MPR_EINVAL (not 40 characters of Z85, or five
 * that say more than 32 bits; key is then all zero). Neither branches on
 * nor indexes by the key's bytes. */
void mpr__z85_encode(char out[41], const unsigned char key[MPR__ZMTP_KEY_SIZE]);
int mpr__z85_decode(unsigned char key[MPR__ZMTP_KEY_SIZE], const char *text);

#endif /* MPR_ZMTP_H */
