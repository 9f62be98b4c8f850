/*
 * wire.h - the bytes a sender writes on its connection, and the parser the
 * monitor thread runs over them. Pure code without I/O, so it can be fuzzed
 * (tests/fuzz).
 *
 * A connection carries, in order:
 *   HELLO  32 bytes: "MPR1", u32 version (2), u32 connection id, u32 flags,
 *          16 bytes: the pipe's key, mpr__pipe_key(router's secret, id).
 *          A sender holds only its own pipe's key, so it cannot claim
 *          another pipe; the router recomputes the key from the id.
 *   (router answers ACK, 16 bytes: "MPRA", u32 status 0, u32 largest
 *    message size, u32 reserved 0; on rejection it closes instead)
 *   FRAMES each: u32 header, then the body.
 *          header bit 31 clear: a message of (header) bytes follows.
 *          header bit 31 set:   a control word without body; the only one
 *                               is MPR__WIRE_BYE (the sender stopped).
 * All integers are little-endian.
 *
 * RING MODE (HELLO flag MPR__HELLO_RING, the default): the HELLO carries a
 * sealed memfd (SCM_RIGHTS) holding a single-producer ring that the sender
 * writes without system calls; see "ring" below. The socket then carries
 * only wake-up bytes (any byte: "the ring has data and you were asleep")
 * and the end of stream. Without the flag, messages travel as frames on
 * the socket.
 */
#ifndef MPR_WIRE_H
#define MPR_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define MPR__SECRET_SIZE 16
#define MPR__HELLO_SIZE 32
#define MPR__ACK_SIZE 16
#define MPR__WIRE_VERSION 2u /* 1: the router's secret in every HELLO */
#define MPR__HELLO_MAGIC 0x3152504du /* "MPR1" */
#define MPR__ACK_MAGIC 0x4152504du   /* "MPRA" */
#define MPR__WIRE_CONTROL 0x80000000u
#define MPR__WIRE_BYE (MPR__WIRE_CONTROL | 1u)
#define MPR__HELLO_RING 1u

#define MPR__WIRE_RAW_MODE 1

typedef struct mpr__hello {
    uint32_t version;
    uint32_t conn_id;
    uint32_t flags;
    unsigned char key[MPR__SECRET_SIZE]; /* the pipe's key, mpr__pipe_key */
} mpr__hello;

static inline void mpr__put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t mpr__get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void mpr__put_u64(unsigned char *p, uint64_t v)
{
    mpr__put_u32(p, (uint32_t)v);
    mpr__put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t mpr__get_u64(const unsigned char *p)
{
    return (uint64_t)mpr__get_u32(p) | (uint64_t)mpr__get_u32(p + 4) << 32;
}

void mpr__hello_encode(unsigned char out[MPR__HELLO_SIZE], const mpr__hello *h);
void mpr__ack_encode(unsigned char out[MPR__ACK_SIZE], uint32_t max_msg);
/* Returns 0 and the largest message size, or MPR_EPROTO. */
int mpr__ack_decode(const unsigned char in[MPR__ACK_SIZE], uint32_t *max_msg);

/* Constant-time comparison of two secrets or keys: 1 if equal. */
int mpr__secret_equal(const unsigned char *a, const unsigned char *b);

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of in[0..len) under a 16-byte
 * key, with an 8- or 16-byte tag (outlen 8 or 16): a keyed PRF. */
void mpr__siphash(unsigned char *out, size_t outlen, const unsigned char key[16],
                  const void *in, size_t len);
/* The key of pipe id: SipHash-2-4-128 of "MPRK" and the id (little-endian)
 * under the router's secret. */
void mpr__pipe_key(unsigned char out[MPR__SECRET_SIZE], const unsigned char secret[MPR__SECRET_SIZE],
                   uint32_t id);

/* What the parser hands to its user. */
typedef struct mpr__wire_sink {
    void *ctx;
    /* A HELLO arrived (magic already checked). Return 0 to accept with
     * frames to follow, MPR__WIRE_RAW_MODE to accept with the socket carrying
     * only wake-up bytes from now on (ring mode), < 0 to reject (the
     * parser then fails with that code). */
    int (*hello)(void *ctx, const mpr__hello *h);
    /* A message of len bytes starts; avail of its bytes are in the buffer
     * being fed now. Return where its len bytes go, or NULL (out of
     * memory: the parser fails with MPR_ENOMEM). */
    unsigned char *(*begin)(void *ctx, uint32_t len, size_t avail);
    /* The message begun last is complete. */
    void (*end)(void *ctx);
} mpr__wire_sink;

enum mpr__wire_state {
    MPR__WIRE_HELLO,  /* waiting for the HELLO */
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
    unsigned char hdr[MPR__HELLO_SIZE];
    uint32_t body_len;
    uint32_t body_have;
    unsigned char *body;
} mpr__wire;

void mpr__wire_init(mpr__wire *w, uint32_t max_msg);

/* Parse n bytes. Returns 0 when all were consumed, or a negative error
 * (MPR_EPROTO, MPR_EMSGSIZE, MPR_EACCES from hello, MPR_ENOMEM) after which
 * the state is FAILED. */
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
 * The ring: a memfd of MPR__RING_HDR + cap bytes (cap a power of two,
 * MPR__RING_MIN..MPR__RING_MAX), sealed against shrinking and growing so the
 * router can never fault on it. The header holds the shared indices; the
 * data area holds records, each 8-byte aligned and never wrapping:
 *
 *   u32 type, u32 len, then len bytes, padded to 8.
 *   MSG        a whole message of len bytes
 *   FRAG_START len == 8: a u64 total length follows; the message arrives
 *              as FRAG_DATA records until total bytes are there
 *   FRAG_DATA  len bytes of the message begun by FRAG_START
 *   PAD        the rest of the ring up to its end is unused
 *   BYE        the sender stopped; nothing follows
 *
 * head and tail count bytes since the start (they never wrap). The sender
 * advances head after writing a record; the router advances tail after
 * reading. Wake-ups: before sleeping the router sets reader_sleeping and
 * re-checks head; after publishing, the sender clears reader_sleeping and, if
 * it was set, writes one byte on the socket. A sender waiting for room sets
 * writer_waiting and sleeps on the futex tail_seq, which the router bumps
 * and wakes after advancing tail; closed tells it the router is gone.
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
    _Alignas(64) _Atomic uint32_t writer_waiting;
    _Atomic uint32_t tail_seq;
    _Atomic uint32_t closed;
} mpr__ring_hdr;

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

#endif /* MPR_WIRE_H */
