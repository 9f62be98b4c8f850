/*
 * fuzz_wire - libFuzzer target for the socket frame parser of src/wire.c
 * (mpr__wire_feed, mpr__wire_body_written): everything a peer sends on its
 * connection: the HELLO, the PROOF and the frames after them.
 *
 * fuzz-sources: src/wire.c src/base.c
 *
 * Input: 4 control bytes, then the byte stream of one connection.
 *   [0] largest message (index into max_sizes)
 *   [1] bits 0-1: what the callbacks answer: 0 HELLO accepted, PROOF
 *       accepted for frames; 1 HELLO rejected; 2 PROOF accepted for ring
 *       mode; 3 HELLO accepted for odd connection ids only, PROOF rejected
 *       unless its flags are 0;
 *       bit 2: fail the Nth begin (out of memory); bit 3: read bodies
 *       "straight into the buffer" with mpr__wire_body_written as the
 *       router does for large messages
 *   [2] N for bit 2
 *   [3] seed of the chunking: the stream is fed in pieces of 1..64 bytes
 *
 * The result is compared with a reference parse of the whole stream written
 * from the format in wire.h: same messages (length and bytes), same error.
 * The sink checks the begin/end protocol; every message body is a malloc of
 * exactly its length, so AddressSanitizer catches any write past it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/common.h>

#include "wire.h"

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "fuzz_wire: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                \
        }                                                                           \
    } while (0)

static const uint32_t max_sizes[] = {0, 1, 7, 64, 1000, 65536, (uint32_t)MPR_MAX_MESSAGE_SIZE};
#define NMAX (sizeof max_sizes / sizeof max_sizes[0])
#define BIG_ALLOC (1u << 20) /* begin of anything larger simulates out of memory */
#define MAX_MSGS 4096

struct ref_msg {
    size_t off;
    uint32_t len;
};

/* What the sink's took callback accepts in all (as a router that sent so
 * many bytes of control messages). */
#define TOOK_LIMIT ((uint64_t)1 << 31)

struct ref {
    int err;
    int raw;
    uint64_t took;
    size_t base; /* the offset of what pos counts from */
    size_t nmsgs;
    struct ref_msg msgs[MAX_MSGS];
};

struct ctx {
    mpr__wire *w;
    uint32_t max_msg;
    int policy, oom, oom_at;
    int hellos, proofs, begins, open;
    unsigned char *body;
    uint32_t body_len;
    const unsigned char *stream;
    const struct ref *ref;
    size_t done; /* messages completed */
    uint64_t took; /* TOOK words' sum */
    size_t chunk; /* size of the buffer being fed */
    int frozen;   /* after an error: no callback may run */
};

static int hello_answer(int policy, uint32_t conn_id)
{
    if (policy == 1 || (policy == 3 && !(conn_id & 1)))
        return MPR_EACCES;
    return 0;
}

static int proof_answer(int policy, uint32_t flags)
{
    if (policy == 2)
        return MPR__MODE_RING;
    if (policy == 3 && flags != 0)
        return MPR_EACCES;
    return MPR__MODE_FRAMES;
}

/* The reference: the format of wire.h applied to the whole stream at once. */
static void ref_parse(struct ref *r, const unsigned char *p, size_t n, uint32_t max_msg,
                      int policy, int oom, int oom_at)
{
    memset(r, 0, sizeof *r);
    if (n < MPR__HELLO_SIZE)
        return;
    if (mpr__get_u32(p) != MPR__HELLO_MAGIC) {
        r->err = MPR_EPROTO;
        return;
    }
    int rc = hello_answer(policy, mpr__get_u32(p + 8));
    if (rc < 0) {
        r->err = rc;
        return;
    }
    p += MPR__HELLO_SIZE;
    n -= MPR__HELLO_SIZE;
    if (n < MPR__PROOF_SIZE)
        return;
    if (mpr__get_u32(p) != MPR__PROOF_MAGIC || mpr__get_u32(p + 8) != 0 ||
        mpr__get_u32(p + 12) != 0) {
        r->err = MPR_EPROTO;
        return;
    }
    rc = proof_answer(policy, mpr__get_u32(p + 4));
    if (rc < 0) {
        r->err = rc;
        return;
    }
    if (rc == MPR__MODE_RING) {
        r->raw = 1;
        return;
    }
    r->base = MPR__HELLO_SIZE; /* offsets below are from the PROOF on */
    size_t pos = MPR__PROOF_SIZE;
    int begins = 0;
    while (n - pos >= 4) {
        uint32_t word = mpr__get_u32(p + pos);
        pos += 4;
        if ((word & MPR__WIRE_TOOK) == MPR__WIRE_TOOK) {
            /* TOOK: the sink refuses a total over TOOK_LIMIT. */
            r->took += word & MPR__WIRE_TOOK_MAX;
            if (r->took > TOOK_LIMIT) {
                r->err = MPR_EPROTO;
                return;
            }
            continue;
        }
        if (word & MPR__WIRE_CONTROL) {
            if (word != MPR__WIRE_BYE || pos < n)
                r->err = MPR_EPROTO; /* unknown control word, or bytes after BYE */
            return;
        }
        if (word > max_msg) {
            r->err = MPR_EMSGSIZE;
            return;
        }
        if ((oom && begins == oom_at) || word > BIG_ALLOC) {
            r->err = MPR_ENOMEM;
            return;
        }
        begins++;
        if (n - pos < word)
            return; /* the stream ends inside this body */
        CHECK(r->nmsgs < MAX_MSGS);
        r->msgs[r->nmsgs].off = r->base + pos;
        r->msgs[r->nmsgs].len = word;
        r->nmsgs++;
        pos += word;
    }
}

static int sink_hello(void *arg, const unsigned char *h)
{
    struct ctx *c = arg;
    CHECK(!c->frozen);
    CHECK(c->hellos++ == 0);
    CHECK(c->proofs == 0);
    return hello_answer(c->policy, mpr__get_u32(h + 8));
}

static int sink_proof(void *arg, const unsigned char *p)
{
    struct ctx *c = arg;
    CHECK(!c->frozen);
    CHECK(c->hellos == 1);
    CHECK(c->proofs++ == 0);
    return proof_answer(c->policy, mpr__get_u32(p + 4));
}

static unsigned char *sink_begin(void *arg, uint32_t len, size_t avail)
{
    struct ctx *c = arg;
    CHECK(!c->frozen);
    CHECK(c->hellos == 1 && c->proofs == 1);
    CHECK(!c->open);
    CHECK(len <= c->max_msg);
    CHECK(avail < c->chunk);
    int n = c->begins++;
    if ((c->oom && n == c->oom_at) || len > BIG_ALLOC)
        return NULL;
    c->body = malloc(len ? len : 1);
    CHECK(c->body);
    c->body_len = len;
    c->open = 1;
    return c->body;
}

static void sink_end(void *arg)
{
    struct ctx *c = arg;
    CHECK(!c->frozen);
    CHECK(c->open);
    CHECK(c->w->body_have == c->body_len && c->w->body_len == c->body_len);
    CHECK(c->done < c->ref->nmsgs);
    const struct ref_msg *m = &c->ref->msgs[c->done];
    CHECK(m->len == c->body_len);
    CHECK(memcmp(c->body, c->stream + m->off, m->len) == 0);
    c->done++;
    free(c->body);
    c->body = NULL;
    c->open = 0;
}

static int sink_took(void *ctx, uint32_t n)
{
    struct ctx *c = ctx;
    CHECK(!c->frozen);
    CHECK(c->proofs == 1 && !c->open);
    c->took += n;
    return c->took > TOOK_LIMIT ? MPR_EPROTO : 0;
}

static struct ref ref;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An empty frame takes 4 bytes: longer inputs could hold more messages
     * than the reference parse records (libFuzzer's default -max_len is
     * 4096, far below). */
    if (size < 4 || size > 4 + 4 * (size_t)MAX_MSGS)
        return 0;
    struct ctx c;
    memset(&c, 0, sizeof c);
    c.max_msg = max_sizes[data[0] % NMAX];
    c.policy = data[1] & 3;
    c.oom = (data[1] >> 2) & 1;
    int direct = (data[1] >> 3) & 1;
    c.oom_at = data[2];
    uint32_t seed = data[3] * 2654435761u + 1;
    const unsigned char *p = data + 4;
    size_t n = size - 4;
    c.stream = p;
    c.ref = &ref;
    ref_parse(&ref, p, n, c.max_msg, c.policy, c.oom, c.oom_at);

    mpr__wire w;
    mpr__wire_init(&w, c.max_msg);
    c.w = &w;
    mpr__wire_sink s = {&c, sink_hello, sink_proof, sink_begin, sink_end, sink_took};
    int err = 0;
    size_t pos = 0;
    while (pos < n && !err) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 64;
        if (piece > n - pos)
            piece = n - pos;
        if (direct && w.state == MPR__WIRE_BODY) {
            /* Like the router's read into a large message's buffer. */
            size_t room = w.body_len - w.body_have;
            if (piece > room)
                piece = room;
            memcpy(w.body + w.body_have, p + pos, piece);
            mpr__wire_body_written(&w, &s, piece);
        } else {
            c.chunk = piece;
            err = mpr__wire_feed(&w, &s, p + pos, piece);
        }
        pos += piece;
    }

    CHECK(err == ref.err);
    CHECK(c.done == ref.nmsgs);
    if (!err)
        CHECK(c.took == ref.took);
    if (err) {
        CHECK(w.state == MPR__WIRE_FAILED);
        c.frozen = 1; /* a failed parser calls nobody and fails again */
        unsigned char more[8] = {0};
        c.chunk = sizeof more;
        CHECK(mpr__wire_feed(&w, &s, more, sizeof more) < 0);
    } else if (ref.raw) {
        CHECK(w.state == MPR__WIRE_RAW);
        CHECK(mpr__wire_at_boundary(&w));
    } else {
        /* Never "at a boundary" with half a message or header read. */
        if (c.open || (w.state == MPR__WIRE_HEADER && w.hdr_have > 0))
            CHECK(!mpr__wire_at_boundary(&w));
    }
    free(c.body);
    return 0;
}
