/*
 * wire.h - the bytes a sender writes on its connection, and the parser the
 * monitor thread runs over them. Pure code without I/O, so it can be fuzzed
 * (tests/fuzz).
 *
 * A connection carries, in order:
 *   HELLO  32 bytes: "MPR1", u32 version, u32 connection id, u32 flags (0),
 *          16 bytes of the router's secret.
 *   (router answers ACK, 16 bytes: "MPRA", u32 status 0, u32 largest
 *    message size, u32 reserved 0; on rejection it closes instead)
 *   FRAMES each: u32 header, then the body.
 *          header bit 31 clear: a message of (header) bytes follows.
 *          header bit 31 set:   a control word without body; the only one
 *                               is MPR__WIRE_BYE (the sender stopped).
 * All integers are little-endian.
 */
#ifndef MPR_WIRE_H
#define MPR_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define MPR__SECRET_SIZE 16
#define MPR__HELLO_SIZE 32
#define MPR__ACK_SIZE 16
#define MPR__WIRE_VERSION 1u
#define MPR__HELLO_MAGIC 0x3152504du /* "MPR1" */
#define MPR__ACK_MAGIC 0x4152504du   /* "MPRA" */
#define MPR__WIRE_CONTROL 0x80000000u
#define MPR__WIRE_BYE (MPR__WIRE_CONTROL | 1u)

typedef struct mpr__hello {
    uint32_t version;
    uint32_t conn_id;
    uint32_t flags;
    unsigned char secret[MPR__SECRET_SIZE];
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

void mpr__hello_encode(unsigned char out[MPR__HELLO_SIZE], const mpr__hello *h);
void mpr__ack_encode(unsigned char out[MPR__ACK_SIZE], uint32_t max_msg);
/* Returns 0 and the largest message size, or MPR_EPROTO. */
int mpr__ack_decode(const unsigned char in[MPR__ACK_SIZE], uint32_t *max_msg);

/* Constant-time comparison of two secrets: 1 if equal. */
int mpr__secret_equal(const unsigned char *a, const unsigned char *b);

/* What the parser hands to its user. */
typedef struct mpr__wire_sink {
    void *ctx;
    /* A HELLO arrived (magic already checked). Return 0 to accept, < 0 to
     * reject (the parser then fails with that code). */
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
    return (w->state == MPR__WIRE_HEADER && w->hdr_have == 0) || w->state == MPR__WIRE_CLOSED;
}

#endif /* MPR_WIRE_H */
