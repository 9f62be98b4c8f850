/*
 * wire.h - the bytes senders and the router exchange, and the parsers the
 * monitor thread runs over them. Pure code without I/O, so it can be
 * fuzzed (tests/fuzz).
 *
 * THE HANDSHAKE (every transport; version 4). Both sides prove that they
 * hold the pipe's key, mpr__pipe_key(router's secret, id), without sending
 * it: each answers the other's fresh nonce with a SipHash-2-4-128 tag under
 * that key (mpr__proof). A sender holds only its own pipe's key, so it
 * cannot claim another pipe; the router recomputes the key from the id.
 *
 *   HELLO      sender -> router, 32 bytes: "MPR1", u32 version (4),
 *              u32 pipe id, u32 flags (0), 16 bytes nonce_s.
 *   CHALLENGE  router -> sender, 48 bytes: "MPRC", u32 0, u32 largest
 *              message size, u32 0, 16 bytes nonce_r,
 *              16 bytes proof_r = mpr__proof(key, 'r', id, nonce_s, nonce_r).
 *              The sender checks proof_r: only the real router can make it.
 *   PROOF      sender -> router, 32 bytes: "MPRP", u32 flags (PROOF_RING:
 *              a ring's memfd comes with it), u32 0, u32 0,
 *              16 bytes proof_s = mpr__proof(key, 's', id, nonce_r, nonce_s).
 *   ACK        router -> sender, 16 bytes: "MPRA", u32 status (ACK_OK, or
 *              ACK_TAKEN: the pipe already had its sender), u32 mode (how
 *              messages travel from now on: MODE_FRAMES, MODE_RING,
 *              MODE_REMOTE), u32 0.
 * A peer that fails a check gets no answer: the connection is closed.
 *
 * THE LOCAL TRANSPORTS (AF_UNIX stream, transport_socket.c): after the
 * ACK the connection carries FRAMES, each a u32 header, then the body:
 *   header bit 31 clear: a message of (header) bytes follows;
 *   header bit 31 set:   a control word without body; the only one is
 *                        MPR__WIRE_BYE (the sender stopped).
 * In MODE_RING (transport_ring.c) messages go through the shared-memory
 * ring handed over with the PROOF instead, and the socket carries only
 * wake-up bytes (any byte: "the ring has data and you were asleep") and
 * the end of stream.
 *
 * THE WAY BACK, router -> sender (version 4). After the ACK the router
 * writes ITEMS on the connection (both modes), each a type byte:
 *   CTL_ROOM    1 byte: the ring has room (platforms without futexes)
 *   CTL_CANCEL  9 bytes: then a u64 tag (not 0): the pipe's newest cancel
 *   CTL_MSG     5 + len bytes: then u32 len (at most MPR_CONTROL_MAX_SIZE),
 *               then the message
 * In MODE_RING the router also stores the cancel tag in the ring's header
 * (cancel_tag, then cancel_again: a sender takes a value only when the
 * two agree), so a worker tests it without a system call.
 *
 * All integers are little-endian.
 */
#ifndef MPR_WIRE_H
#define MPR_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define MPR__SECRET_SIZE 16 /* the router's secret and each pipe's key */
#define MPR__NONCE_SIZE 16
/* 1: the secret in the HELLO; 2: the pipe's key in the HELLO; 3: no way
 * back; 4: the way back (below) */
#define MPR__WIRE_VERSION 4u

#define MPR__HELLO_SIZE 32
#define MPR__CHALLENGE_SIZE 48
#define MPR__PROOF_SIZE 32
#define MPR__ACK_SIZE 16

#define MPR__HELLO_MAGIC 0x3152504du     /* "MPR1" */
#define MPR__CHALLENGE_MAGIC 0x4352504du /* "MPRC" */
#define MPR__PROOF_MAGIC 0x5052504du     /* "MPRP" */
#define MPR__ACK_MAGIC 0x4152504du       /* "MPRA" */

#define MPR__PROOF_RING 1u /* PROOF flag: a memfd is attached */

enum { MPR__ACK_OK = 0, MPR__ACK_TAKEN = 1 };
enum { MPR__MODE_FRAMES = 0, MPR__MODE_RING = 1, MPR__MODE_REMOTE = 2 };

#define MPR__WIRE_CONTROL 0x80000000u
#define MPR__WIRE_BYE (MPR__WIRE_CONTROL | 1u)

typedef struct mpr__hello {
    uint32_t version;
    uint32_t conn_id;
    uint32_t flags;
    unsigned char nonce[MPR__NONCE_SIZE];
} mpr__hello;

typedef struct mpr__challenge {
    uint32_t max_msg;
    unsigned char nonce[MPR__NONCE_SIZE];
    unsigned char proof[MPR__SECRET_SIZE];
} mpr__challenge;

typedef struct mpr__proof {
    uint32_t flags;
    unsigned char proof[MPR__SECRET_SIZE];
} mpr__proof;

typedef struct mpr__ack {
    uint32_t status;
    uint32_t mode;
} mpr__ack;

/* Encoders, and decoders that check the magic (and the zero fields):
 * 0 or MPR_EPROTO. */
void mpr__hello_encode(unsigned char out[MPR__HELLO_SIZE], const mpr__hello *h);
int mpr__hello_decode(const unsigned char in[MPR__HELLO_SIZE], mpr__hello *h);
void mpr__challenge_encode(unsigned char out[MPR__CHALLENGE_SIZE], const mpr__challenge *c);
int mpr__challenge_decode(const unsigned char in[MPR__CHALLENGE_SIZE], mpr__challenge *c);
void mpr__proof_encode(unsigned char out[MPR__PROOF_SIZE], const mpr__proof *p);
int mpr__proof_decode(const unsigned char in[MPR__PROOF_SIZE], mpr__proof *p);
void mpr__ack_encode(unsigned char out[MPR__ACK_SIZE], const mpr__ack *a);
int mpr__ack_decode(const unsigned char in[MPR__ACK_SIZE], mpr__ack *a);

/* Constant-time comparison of two 16-byte secrets, keys or tags: 1 if equal. */
int mpr__secret_equal(const unsigned char *a, const unsigned char *b);

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of in[0..len) under a 16-byte
 * key, with an 8- or 16-byte tag (outlen 8 or 16): a keyed PRF. Leaves no
 * copy of the key or its state on the stack. */
void mpr__siphash(unsigned char *out, size_t outlen, const unsigned char key[16],
                  const void *in, size_t len);
/* The key of pipe id: SipHash-2-4-128 of "MPRK" and the id (little-endian)
 * under the router's secret. */
void mpr__pipe_key(unsigned char out[MPR__SECRET_SIZE], const unsigned char secret[MPR__SECRET_SIZE],
                   uint32_t id);
/* A handshake tag: SipHash-2-4-128 under the pipe's key of "MPRP", the
 * role ('r' router, 's' sender), the id, then the answered nonce and the
 * answerer's own nonce. */
void mpr__proof_tag(unsigned char out[MPR__SECRET_SIZE], const unsigned char key[MPR__SECRET_SIZE],
                    char role, uint32_t id, const unsigned char answered[MPR__NONCE_SIZE],
                    const unsigned char own[MPR__NONCE_SIZE]);

/* ---- the frame parser of the socket transport ---- */

/* What the parser hands to its user. */
typedef struct mpr__wire_sink {
    void *ctx;
    /* A HELLO arrived (its bytes; their format checked). Return 0 to go on
     * (the user answers with a CHALLENGE), < 0 to reject (the parser fails
     * with that code). */
    int (*hello)(void *ctx, const unsigned char in[MPR__HELLO_SIZE]);
    /* The PROOF arrived (its bytes; their format checked). Return
     * MPR__MODE_FRAMES for frames to follow, MPR__MODE_RING for wake-up
     * bytes only (ring mode), < 0 to reject. */
    int (*proof)(void *ctx, const unsigned char in[MPR__PROOF_SIZE]);
    /* A message of len bytes starts; avail of its bytes are in the buffer
     * being fed now. Return where its len bytes go, or NULL (out of
     * memory: the parser fails with MPR_ENOMEM). */
    unsigned char *(*begin)(void *ctx, uint32_t len, size_t avail);
    /* The message begun last is complete. */
    void (*end)(void *ctx);
} mpr__wire_sink;

enum mpr__wire_state {
    MPR__WIRE_HELLO,  /* waiting for the HELLO */
    MPR__WIRE_PROOF,  /* waiting for the PROOF */
    MPR__WIRE_HEADER, /* between messages, or inside a frame header */
    MPR__WIRE_BODY,   /* inside a message body */
    MPR__WIRE_RAW,    /* ring mode: bytes are wake-ups, consumed unread */
    MPR__WIRE_CLOSED, /* BYE seen: nothing more may arrive */
    MPR__WIRE_FAILED  /* a protocol error; nothing more is parsed */
};

typedef struct mpr__wire {
    enum mpr__wire_state state;
    uint32_t max_msg;
    uint32_t hdr_have;
    unsigned char hdr[MPR__HELLO_SIZE]; /* HELLO and PROOF are 32 bytes */
    uint32_t body_len;
    uint32_t body_have;
    unsigned char *body;
} mpr__wire;

void mpr__wire_init(mpr__wire *w, uint32_t max_msg);

/* Parse n bytes. Returns 0 when all were consumed, or a negative error
 * (MPR_EPROTO, MPR_EMSGSIZE, a hello/proof rejection, MPR_ENOMEM) after
 * which the state is FAILED. */
int mpr__wire_feed(mpr__wire *w, const mpr__wire_sink *s, const unsigned char *p, size_t n);

/* In BODY state the caller may read straight into the body: it writes n
 * (<= body_len - body_have) bytes at body + body_have and reports them. */
void mpr__wire_body_written(mpr__wire *w, const mpr__wire_sink *s, size_t n);

/* True if the stream may end here without losing part of a message. */
static inline int mpr__wire_at_boundary(const mpr__wire *w)
{
    return (w->state == MPR__WIRE_HEADER && w->hdr_have == 0) || w->state == MPR__WIRE_CLOSED ||
           w->state == MPR__WIRE_RAW;
}

/*
 * THE REMOTE TRANSPORT (transport_zmq.c): ZeroMQ messages over tcp with
 * CURVE, DEALER (sender) to ROUTER (router). Each message is one frame
 * that starts with a u32 magic. The handshake messages are those above;
 * then:
 *   DATA   sender -> router: "MPRD", u32 0, u64 seq (1, 2, ... per frame),
 *          then records (below). The router takes frame seq only after
 *          seq - 1 and drops any other (a resend, or one that overtook a
 *          lost frame); it must stay within the credit.
 *   HEART  sender -> router: "MPRH", u32 0, u64 0. Sent when idle, so the
 *          router hears from a live sender at least every second.
 *   ABORT  sender -> router: "MPRX", u32 0, u64 0. The sender was freed
 *          without stop: a lost sender, now.
 *   STATE  router -> sender: "MPRK", u32 flags (STATE_GONE: the router has
 *          stopped or dropped this sender; every later send fails), u64
 *          the last seq taken, u64 credit: DATA payload bytes the sender
 *          may have sent in all, u32 the reconnect window in ms, u32 0.
 *          The answer to DATA and HEART, and when credit grows.
 * A sender keeps every DATA frame until STATE says it was taken, and sends
 * those not taken again when STATE does not move for a while (after
 * ZeroMQ reconnected, or lost a frame in a broken connection). A sender
 * not heard from for the window is lost; so is, for the sender, a router.
 *
 * The way back (version 4):
 *   CTRL   router -> sender: "MPRJ", u32 total length of the message (at
 *          most MPR_CONTROL_MAX_SIZE), u64 cseq (1, 2, ... per message),
 *          u32 offset of this piece, u32 0, then the piece (at most
 *          MPR__CTRL_PIECE bytes; the pieces of a message in order, the
 *          last one ending at total; a message of 0 bytes is one piece).
 *          The router keeps every message until the sender said it took
 *          it, and after a reconnection sends the first one not taken
 *          again from offset 0; the sender drops cseqs it has.
 *   CANCEL router -> sender: "MPRQ", u32 0, u64 tag (not 0): the pipe's
 *          newest cancel request; sent again on every new link.
 *   GOT    sender -> router: "MPRG", u32 0, u64 cseq: the application has
 *          taken every control message up to cseq (never more than the
 *          router sent: a protocol error).
 */
#define MPR__DATA_MAGIC 0x4452504du  /* "MPRD" */
#define MPR__HEART_MAGIC 0x4852504du /* "MPRH" */
#define MPR__ABORT_MAGIC 0x5852504du /* "MPRX" */
#define MPR__STATE_MAGIC 0x4b52504du /* "MPRK" */
#define MPR__DATA_HDR 16
#define MPR__STATE_SIZE 32
#define MPR__STATE_GONE 1u
#define MPR__FRAME_MAX (512u * 1024u) /* records per DATA frame, at most */
#define MPR__CTRL_MAGIC 0x4a52504du   /* "MPRJ" */
#define MPR__CANCEL_MAGIC 0x5152504du /* "MPRQ" */
#define MPR__GOT_MAGIC 0x4752504du    /* "MPRG" */
#define MPR__CTRL_HDR 24
#define MPR__CTRL_PIECE (64u * 1024u)

typedef struct mpr__state {
    uint32_t flags;
    uint64_t seq;
    uint64_t credit;
    uint32_t window_ms;
} mpr__state;

void mpr__state_encode(unsigned char out[MPR__STATE_SIZE], const mpr__state *st);
int mpr__state_decode(const unsigned char *in, size_t n, mpr__state *st);

/* What a frame from a remote sender is (the router's parser): its magic
 * checked, its size and fixed fields checked. kind is the magic; for DATA,
 * seq and the records (records, nrecords bytes, not yet parsed: see
 * mpr__record_next). Returns 0 or MPR_EPROTO. */
typedef struct mpr__remote_frame {
    uint32_t kind;
    uint64_t seq;
    const unsigned char *records;
    size_t nrecords;
    const unsigned char *body; /* HELLO, PROOF: the whole frame */
} mpr__remote_frame;
int mpr__remote_parse(const unsigned char *p, size_t n, mpr__remote_frame *out);

/* ---- the way back ---- */

enum { MPR__CTL_ROOM = 1, MPR__CTL_CANCEL = 2, MPR__CTL_MSG = 3 };
#define MPR__CTL_MSG_HDR 5

/* One item of the local way back at the start of buf[0..n): 1 with *item
 * (its type, its tag or its message: data, size, all of it at hand; used:
 * the bytes it takes), 0 if it is not all there yet (*used then says how
 * many bytes it takes, once its header is there, else 0), or MPR_EPROTO. */
typedef struct mpr__ctl_item {
    int type;
    uint64_t tag;
    const unsigned char *data;
    size_t size;
    size_t used;
} mpr__ctl_item;
int mpr__ctl_item_next(const unsigned char *buf, size_t n, mpr__ctl_item *item);
/* The header of a CTL_MSG item of size bytes (MPR__CTL_MSG_HDR bytes), or
 * of a CTL_CANCEL (9 bytes). */
void mpr__ctl_msg_header(unsigned char out[MPR__CTL_MSG_HDR], uint32_t size);
void mpr__ctl_cancel_item(unsigned char out[9], uint64_t tag);

/* A frame from the router after the handshake, on the sender's side:
 * kind is STATE (st), CTRL (cseq, total, offset, piece of n bytes) or
 * CANCEL (tag). Every field checked: 0 or MPR_EPROTO. */
typedef struct mpr__down_frame {
    uint32_t kind;
    mpr__state st;
    uint64_t cseq, tag;
    uint32_t total, offset;
    const unsigned char *piece;
    size_t n;
} mpr__down_frame;
int mpr__down_parse(const unsigned char *p, size_t n, mpr__down_frame *out);
/* The header of a CTRL frame (MPR__CTRL_HDR bytes), and a CANCEL or GOT
 * frame (MPR__DATA_HDR bytes). */
void mpr__ctrl_header(unsigned char out[MPR__CTRL_HDR], uint32_t total, uint64_t cseq,
                      uint32_t offset);
void mpr__small_frame(unsigned char out[MPR__DATA_HDR], uint32_t magic, uint64_t value);

/*
 * RECORDS: the shared-memory ring (transport_ring.c) and the frames of the
 * remote transport (transport_zmq.c) carry the same records, each 8-byte
 * aligned:
 *
 *   u32 type, u32 len, then len bytes, padded to 8.
 *   MSG        a whole message of len bytes
 *   FRAG_START len == 8: a u64 total length follows; the message arrives
 *              as FRAG_DATA records until total bytes are there
 *   FRAG_DATA  len bytes of the message begun by FRAG_START
 *   PAD        (ring only) the rest of the ring up to its end is unused
 *   BYE        the sender stopped; nothing follows
 *
 * The ring is a memfd of MPR__RING_HDR + cap bytes (cap a power of two,
 * MPR__RING_MIN..MPR__RING_MAX), sealed against shrinking and growing so
 * the router can never fault on it. The header holds the shared indices;
 * records never wrap. head and tail count bytes since the start (they
 * never wrap). The sender advances head after writing a record; the router
 * advances tail after reading. Wake-ups: before sleeping the router sets
 * reader_sleeping and re-checks head; after publishing, the sender clears
 * reader_sleeping and, if it was set, writes one byte on the socket. A
 * sender waiting for room sets writer_waiting and sleeps on the futex
 * tail_seq, which the router bumps and wakes after advancing tail; closed
 * tells it the router is gone.
 *
 * The router trusts nothing in the ring: every length and index is read
 * once and checked (mpr__ring_next).
 */
#define MPR__RING_HDR 4096u
#define MPR__RING_MIN (64u * 1024u)
#define MPR__RING_MAX (16u * 1024u * 1024u)
#define MPR__RING_DEFAULT (1024u * 1024u)

enum { MPR__RING_MSG = 1, MPR__RING_FRAG_START, MPR__RING_FRAG_DATA, MPR__RING_PAD, MPR__RING_BYE };

typedef struct mpr__ring_hdr {
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint32_t reader_sleeping;
    _Alignas(64) _Atomic uint64_t tail;
    _Atomic uint64_t tail_again; /* tail, written after it (see ring.c) */
    _Alignas(64) _Atomic uint32_t writer_waiting;
    _Atomic uint32_t tail_seq;
    _Atomic uint32_t closed;
    /* the way back: the newest cancel tag, stored twice (the router writes
     * cancel_tag, then cancel_again) */
    _Alignas(64) _Atomic uint64_t cancel_tag;
    _Atomic uint64_t cancel_again;
} mpr__ring_hdr;

/* Where each field is: a reader that cannot map the ring (platform.h,
 * MPR__SHM_WINDOW) reads and writes them at these offsets. */
#define MPR__RING_OFF_HEAD 0u
#define MPR__RING_OFF_SLEEPING 64u
#define MPR__RING_OFF_TAIL 128u
#define MPR__RING_OFF_TAIL_AGAIN 136u
#define MPR__RING_OFF_WAITING 192u
#define MPR__RING_OFF_TAIL_SEQ 196u
#define MPR__RING_OFF_CLOSED 200u
#define MPR__RING_OFF_CANCEL 256u
#define MPR__RING_OFF_CANCEL_AGAIN 264u

/* The layout both ends of a ring rely on: the header fits its page, and
 * each index sits on a cache line of its own (no false sharing between
 * the writer's and the reader's words). */
MPR__STATIC_ASSERT(sizeof(mpr__ring_hdr) <= MPR__RING_HDR, "the ring header fits its page");
MPR__STATIC_ASSERT(offsetof(mpr__ring_hdr, head) == MPR__RING_OFF_HEAD &&
                       offsetof(mpr__ring_hdr, reader_sleeping) == MPR__RING_OFF_SLEEPING &&
                       offsetof(mpr__ring_hdr, tail) == MPR__RING_OFF_TAIL &&
                       offsetof(mpr__ring_hdr, tail_again) == MPR__RING_OFF_TAIL_AGAIN &&
                       offsetof(mpr__ring_hdr, writer_waiting) == MPR__RING_OFF_WAITING &&
                       offsetof(mpr__ring_hdr, tail_seq) == MPR__RING_OFF_TAIL_SEQ &&
                       offsetof(mpr__ring_hdr, closed) == MPR__RING_OFF_CLOSED &&
                       offsetof(mpr__ring_hdr, cancel_tag) == MPR__RING_OFF_CANCEL &&
                       offsetof(mpr__ring_hdr, cancel_again) == MPR__RING_OFF_CANCEL_AGAIN,
                   "the ring header's layout is the protocol's");
MPR__STATIC_ASSERT(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4,
                   "the shared words are plain 4- and 8-byte words");
MPR__STATIC_ASSERT((MPR__RING_MIN & (MPR__RING_MIN - 1)) == 0 && (MPR__RING_MAX & (MPR__RING_MAX - 1)) == 0,
                   "ring sizes are powers of two");

/* Size of a record with len bytes of payload. */
static inline uint64_t mpr__ring_rec_size(uint32_t len)
{
    return 8u + (((uint64_t)len + 7u) & ~(uint64_t)7u);
}

typedef struct mpr__ring_rec {
    uint32_t type;
    uint32_t len;            /* payload bytes */
    uint64_t total;          /* FRAG_START: length of the whole message */
    const unsigned char *payload;
    uint64_t size;           /* bytes the record takes: tail advances by this */
} mpr__ring_rec;

/* The record at tail, given the head the sender published. Returns 1 with
 * *out filled, 0 if the ring is empty, or MPR_EPROTO if head or the record
 * is malformed (the connection must be closed). data is the ring's data
 * area of cap bytes. Reads each shared field once. */
int mpr__ring_next(const unsigned char *data, uint64_t cap, uint64_t tail, uint64_t head,
                   mpr__ring_rec *out);

/* The record at the start of buf[0..n) (a remote frame: no PAD, nothing
 * shared). Returns 1 with *out filled, 0 if n == 0, or MPR_EPROTO. */
int mpr__record_next(const unsigned char *buf, size_t n, mpr__ring_rec *out);

#endif /* MPR_WIRE_H */
