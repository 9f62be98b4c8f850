/*
 * fuzz_hs - libFuzzer target for the handshake state machine alone
 * (src/hs.c), both roles at once: four router machines (connections) and
 * four sender machines, driven by a script of commands that an honest
 * peer, a replaying peer, a peer with the wrong key or one that writes
 * arbitrary bytes would send, in any order.
 *
 * fuzz-sources: src/hs.c src/wire.c src/base.c
 *
 * Input: 18 control bytes, then a script.
 *   [0..15] the router's secret
 *   [16]    the highest pipe id issued so far (last_id)
 *   [17]    the largest message size the router announces (an index)
 * The script is a list of operations, an op byte and its bytes (an
 * unknown op byte is skipped; a missing byte ends the script). s and r
 * name a sender and a router machine (the byte modulo 4):
 *   'S' s i k [key]  sender s begins (mpr__hs_sender_hello) for pipe i
 *                    (255: 0xffffffff) holding the key k % 4: 0 the pipe's
 *                    key, 1 the key of pipe i + 1, 2 the pipe's key under
 *                    another secret, 3 the 16 bytes that follow
 *   'h' s r          sender s's last HELLO to router r
 *   'c' r s f        router r's last CHALLENGE to sender s, which answers
 *                    with PROOF flags f
 *   'p' s r          sender s's last PROOF to router r
 *   'a' s t m        an ACK of status t % 3 and mode m % 4 (the last of
 *                    each is out of range) to sender s
 *   'H' r + 32, 'P' r + 32, 'C' s f + 48, 'A' s + 16
 *                    those bytes as a HELLO or PROOF to router r, as a
 *                    CHALLENGE (answered with PROOF flags f) or ACK to
 *                    sender s
 *   'x' w n p v      byte p of a message in flight ^= v: w % 3 is sender
 *                    n's HELLO, its PROOF, router n's CHALLENGE
 *   'n' r            router r's connection ends (mpr__hs_router_clear)
 *                    and a new one begins in its place
 *   'F'              the next request for random bytes fails
 *   'L' n            n more pipe ids are issued
 *
 * Checks, after every operation:
 * - a reference of both roles, written from the formats in wire.h and the
 *   protocol in hs.h with a SipHash-2-4 of its own, predicts the return
 *   code, the new state, every byte of every HELLO, CHALLENGE and PROOF
 *   and the fields the transports read (claimed, flags, max_msg, mode);
 *   random bytes are drawn exactly where the reference draws them;
 * - a router never reaches PROVEN without a PROOF whose tag is the
 *   reference's for the pipe it claimed (an id issued, under the pipe's
 *   key, answering this connection's own nonce); a sender never sends a
 *   PROOF nor reaches DONE after a CHALLENGE that the key it holds did
 *   not make;
 * - states never go backwards (START, CHALLENGE, ACK, PROVEN/DONE), and
 *   FAILED is final: every call after it fails and changes nothing;
 * - every error comes with a reason for the warning (router) and is one
 *   of the codes hs.h names; the nonces are wiped where hs.h says;
 * - no crash and no undefined behaviour (ASan, UBSan): every message is
 *   handed over in a buffer of its exact size.
 * Randomness is deterministic per input (mpr__random is this file's), so
 * every finding replays.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/common.h>

#include "hs.h"
#include "wire.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz_hs: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#define NSLOTS 4

/* ---- random bytes: deterministic, and failing on request ---- */

static uint64_t rng_state;
static int rng_fail_next;  /* 'F': the next call fails */
static int rng_calls;      /* calls since the counter was reset */
static int rng_failed;     /* whether one of them failed */
static unsigned char rng_last[MPR__NONCE_SIZE]; /* what the last one gave */

static uint64_t splitmix64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The platform layer's source of random bytes (platform.h), replaced. */
int mpr__random(void *buf, size_t n)
{
    rng_calls++;
    CHECK(n == MPR__NONCE_SIZE); /* the machine draws nonces only */
    if (rng_fail_next) {
        rng_fail_next = 0;
        rng_failed = 1;
        return MPR_EIO;
    }
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) {
            uint64_t v = splitmix64();
            for (size_t j = 0; j < 8 && i + j < n; j++)
                p[i + j] = (unsigned char)(v >> (8 * j));
        }
    }
    memcpy(rng_last, buf, n);
    return 0;
}

/* ---- the reference: little-endian words and SipHash-2-4-128 ---- */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                       \
    do {                                                               \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);      \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                         \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                         \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);      \
    } while (0)

/* SipHash-2-4 with a 128-bit tag, as in the authors' reference code. */
static void ref_siphash128(unsigned char out[16], const unsigned char key[16],
                           const unsigned char *in, size_t len)
{
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
    v1 ^= 0xee;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = le64(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xee;
    for (int r = 0; r < 4; r++)
        SIPROUND;
    uint64_t h = v0 ^ v1 ^ v2 ^ v3;
    for (int j = 0; j < 8; j++)
        out[j] = (unsigned char)(h >> (8 * j));
    v1 ^= 0xdd;
    for (int r = 0; r < 4; r++)
        SIPROUND;
    h = v0 ^ v1 ^ v2 ^ v3;
    for (int j = 0; j < 8; j++)
        out[8 + j] = (unsigned char)(h >> (8 * j));
}

/* wire.h: the key of a pipe, SipHash-2-4-128("MPRK" id) under the secret. */
static void ref_pipe_key(unsigned char out[16], const unsigned char secret[16], uint32_t id)
{
    unsigned char msg[8] = {'M', 'P', 'R', 'K'};
    put32(msg + 4, id);
    ref_siphash128(out, secret, msg, sizeof msg);
}

/* wire.h: a tag, SipHash-2-4-128("MPRP" role 0 0 0 id answered own)
 * under the pipe's key. */
static void ref_tag(unsigned char out[16], const unsigned char key[16], char role, uint32_t id,
                    const unsigned char answered[16], const unsigned char own[16])
{
    unsigned char msg[44] = {'M', 'P', 'R', 'P', (unsigned char)role};
    put32(msg + 8, id);
    memcpy(msg + 12, answered, 16);
    memcpy(msg + 28, own, 16);
    ref_siphash128(out, key, msg, sizeof msg);
}

/* ---- the machines and their references ---- */

static int rank(enum mpr__hs_state s)
{
    switch (s) {
    case MPR__HS_START: return 0;
    case MPR__HS_CHALLENGE: return 1;
    case MPR__HS_ACK: return 2;
    case MPR__HS_PROVEN: return 3;
    case MPR__HS_DONE: return 3;
    case MPR__HS_FAILED: return 4;
    }
    CHECK(!"a state hs.h does not name");
    return -1;
}

typedef struct sender_slot {
    mpr__hs_sender hs;
    unsigned char key[16]; /* the key hs.key points to */
    int used;              /* begun at least once */
    /* messages in flight (the last of each the machine made) */
    unsigned char hello[MPR__HELLO_SIZE], proof[MPR__PROOF_SIZE];
    /* the reference */
    enum mpr__hs_state state;
    uint32_t id, max_msg, mode;
    unsigned char nonce_s[16];
} sender_slot;

typedef struct router_slot {
    mpr__hs_router hs;
    unsigned char challenge[MPR__CHALLENGE_SIZE]; /* in flight */
    /* the reference */
    enum mpr__hs_state state;
    uint32_t claimed, flags;
    unsigned char nonce_s[16], nonce_r[16];
    unsigned char expect_challenge[MPR__CHALLENGE_SIZE];
} router_slot;

static sender_slot senders[NSLOTS];
static router_slot routers[NSLOTS];
static unsigned char secret[16];
static mpr__hs_router_keys keys;

static const uint32_t max_sizes[] = {0, 1, 64u << 10, 0x7fff0000u, 0xffffffffu};

/* A copy of n bytes in a buffer of exactly n bytes (ASan sees any byte
 * read outside). */
static unsigned char *exact(const unsigned char *p, size_t n)
{
    unsigned char *q = malloc(n);
    CHECK(q);
    memcpy(q, p, n);
    return q;
}

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* What every call must keep, given the state before it, its result and
 * the state after it. */
static void check_step(enum mpr__hs_state before, int rc, enum mpr__hs_state after,
                       enum mpr__hs_state expected_after, int expected_rc)
{
    CHECK(rc == expected_rc);
    CHECK(after == expected_after);
    CHECK(rank(after) >= rank(before)); /* never backwards */
    if (before == MPR__HS_FAILED)
        CHECK(rc < 0 && after == MPR__HS_FAILED); /* FAILED is final */
    CHECK(rc == 0 || rc == MPR_EPROTO || rc == MPR_EACCES || rc == MPR_ECONNREFUSED ||
          rc == MPR_EALREADY || rc == MPR_EIO);
    if (rc < 0 && rc != MPR_EALREADY)
        CHECK(after == MPR__HS_FAILED);
}

/* ---- the sender's side ---- */

static void sender_begin(sender_slot *s, uint32_t id, int k, const unsigned char *own_key)
{
    unsigned char other[16];
    switch (k) {
    case 0: ref_pipe_key(s->key, secret, id); break;
    case 1: ref_pipe_key(s->key, secret, id + 1); break;
    case 2:
        memcpy(other, secret, 16);
        other[0] ^= 1;
        ref_pipe_key(s->key, other, id);
        break;
    default: memcpy(s->key, own_key, 16); break;
    }
    unsigned char *out = malloc(MPR__HELLO_SIZE);
    CHECK(out);
    rng_calls = rng_failed = 0;
    int rc = mpr__hs_sender_hello(&s->hs, id, s->key, out);
    CHECK(rng_calls == 1);
    s->used = 1;
    s->id = id;
    s->max_msg = s->mode = 0;
    if (rng_failed) {
        /* A new machine: nothing before it to compare with. */
        check_step(MPR__HS_START, rc, s->hs.state, MPR__HS_FAILED, MPR_EIO);
        s->state = MPR__HS_FAILED;
    } else {
        check_step(MPR__HS_START, rc, s->hs.state, MPR__HS_CHALLENGE, 0);
        s->state = MPR__HS_CHALLENGE;
        memcpy(s->nonce_s, rng_last, 16);
        unsigned char expect[MPR__HELLO_SIZE] = {'M', 'P', 'R', '1'};
        put32(expect + 4, MPR__WIRE_VERSION);
        put32(expect + 8, id);
        put32(expect + 12, 0);
        memcpy(expect + 16, s->nonce_s, 16);
        CHECK(memcmp(out, expect, sizeof expect) == 0);
        CHECK(s->hs.id == id && s->hs.key == s->key);
        memcpy(s->hello, out, MPR__HELLO_SIZE);
    }
    free(out);
}

static void sender_challenge(sender_slot *s, const unsigned char in[MPR__CHALLENGE_SIZE],
                             uint32_t flags)
{
    if (!s->used)
        return; /* no machine yet */
    enum mpr__hs_state before = s->hs.state;
    CHECK(before == s->state);
    unsigned char *msg = exact(in, MPR__CHALLENGE_SIZE);
    unsigned char *out = malloc(MPR__PROOF_SIZE);
    CHECK(out);
    rng_calls = 0;
    int rc = mpr__hs_sender_challenge(&s->hs, msg, flags, out);
    CHECK(rng_calls == 0);

    int expected_rc;
    enum mpr__hs_state expected;
    unsigned char tag_r[16];
    if (s->state != MPR__HS_CHALLENGE || memcmp(in, "MPRC", 4) != 0 || le32(in + 4) != 0 ||
        le32(in + 12) != 0) {
        expected_rc = MPR_EPROTO;
        expected = MPR__HS_FAILED;
    } else {
        ref_tag(tag_r, s->key, 'r', s->id, s->nonce_s, in + 16);
        if (memcmp(tag_r, in + 32, 16) != 0) {
            expected_rc = MPR_ECONNREFUSED; /* not made with the pipe's key */
            expected = MPR__HS_FAILED;
        } else {
            expected_rc = 0;
            expected = MPR__HS_ACK;
        }
    }
    check_step(before, rc, s->hs.state, expected, expected_rc);
    s->state = expected;
    if (rc == 0) {
        /* It answers only a router that proved the pipe's key. */
        CHECK(memcmp(tag_r, in + 32, 16) == 0);
        s->max_msg = le32(in + 8);
        CHECK(s->hs.max_msg == s->max_msg);
        unsigned char expect[MPR__PROOF_SIZE] = {'M', 'P', 'R', 'P'};
        put32(expect + 4, flags);
        ref_tag(expect + 16, s->key, 's', s->id, in + 16, s->nonce_s);
        CHECK(memcmp(out, expect, sizeof expect) == 0);
        memcpy(s->proof, out, MPR__PROOF_SIZE);
    }
    free(out);
    free(msg);
}

static void sender_ack(sender_slot *s, const unsigned char in[MPR__ACK_SIZE])
{
    if (!s->used)
        return;
    enum mpr__hs_state before = s->hs.state;
    CHECK(before == s->state);
    unsigned char *msg = exact(in, MPR__ACK_SIZE);
    rng_calls = 0;
    int rc = mpr__hs_sender_ack(&s->hs, msg);
    CHECK(rng_calls == 0);
    uint32_t status = le32(in + 4), mode = le32(in + 8);
    int expected_rc;
    enum mpr__hs_state expected;
    if (s->state != MPR__HS_ACK || memcmp(in, "MPRA", 4) != 0 || le32(in + 12) != 0 ||
        status > 1 || mode > 2) {
        expected_rc = MPR_EPROTO;
        expected = MPR__HS_FAILED;
    } else {
        expected_rc = status == 1 ? MPR_EALREADY : 0;
        expected = MPR__HS_DONE;
    }
    check_step(before, rc, s->hs.state, expected, expected_rc);
    s->state = expected;
    if (expected == MPR__HS_DONE) {
        /* DONE only after a CHALLENGE made with the pipe's key (ACK
         * follows it alone). */
        CHECK(before == MPR__HS_ACK);
        s->mode = mode;
        CHECK(s->hs.mode == mode);
        CHECK(all_zero(s->hs.nonce_s, sizeof s->hs.nonce_s)); /* wiped */
    }
    free(msg);
}

/* ---- the router's side ---- */

static void router_hello(router_slot *r, const unsigned char in[MPR__HELLO_SIZE])
{
    enum mpr__hs_state before = r->hs.state;
    CHECK(before == r->state);
    unsigned char *msg = exact(in, MPR__HELLO_SIZE);
    unsigned char *out = malloc(MPR__CHALLENGE_SIZE);
    CHECK(out);
    const char *why = NULL;
    rng_calls = rng_failed = 0;
    int rc = mpr__hs_router_hello(&r->hs, &keys, msg, out, &why);

    int expected_rc = 0, draws = 0;
    enum mpr__hs_state expected = r->state;
    uint32_t version = le32(in + 4), id = le32(in + 8), flags = le32(in + 12);
    if (memcmp(in, "MPR1", 4) != 0) {
        expected_rc = MPR_EPROTO;
        expected = MPR__HS_FAILED;
    } else if (r->state == MPR__HS_CHALLENGE) {
        /* The same HELLO again gets the same CHALLENGE; another is refused. */
        if (id != r->claimed || memcmp(in + 16, r->nonce_s, 16) != 0) {
            expected_rc = MPR_EACCES;
            expected = MPR__HS_FAILED;
        }
    } else if (r->state != MPR__HS_START) {
        expected_rc = MPR_EPROTO;
        expected = MPR__HS_FAILED;
    } else if (version != MPR__WIRE_VERSION || flags != 0 || id == 0 || id > keys.last_id) {
        expected_rc = MPR_EACCES;
        expected = MPR__HS_FAILED;
    } else {
        draws = 1; /* the router's nonce */
        if (rng_failed) {
            expected_rc = MPR_EACCES;
            expected = MPR__HS_FAILED;
        } else {
            expected = MPR__HS_CHALLENGE;
            r->claimed = id;
            memcpy(r->nonce_s, in + 16, 16);
            memcpy(r->nonce_r, rng_last, 16);
            unsigned char key[16];
            ref_pipe_key(key, secret, id);
            unsigned char *c = r->expect_challenge;
            memcpy(c, "MPRC", 4);
            put32(c + 4, 0);
            put32(c + 8, keys.max_msg);
            put32(c + 12, 0);
            memcpy(c + 16, r->nonce_r, 16);
            ref_tag(c + 32, key, 'r', id, r->nonce_s, r->nonce_r);
        }
    }
    CHECK(rng_calls == draws);
    check_step(before, rc, r->hs.state, expected, expected_rc);
    r->state = expected;
    if (rc < 0)
        CHECK(why && *why); /* a reason for the warning */
    if (rc == 0) {
        CHECK(r->hs.state == MPR__HS_CHALLENGE);
        CHECK(r->hs.claimed == r->claimed && r->claimed >= 1 && r->claimed <= keys.last_id);
        CHECK(memcmp(r->hs.nonce_s, r->nonce_s, 16) == 0);
        CHECK(memcmp(r->hs.nonce_r, r->nonce_r, 16) == 0);
        CHECK(memcmp(out, r->expect_challenge, MPR__CHALLENGE_SIZE) == 0);
        memcpy(r->challenge, out, MPR__CHALLENGE_SIZE);
    }
    free(out);
    free(msg);
}

static void router_proof(router_slot *r, const unsigned char in[MPR__PROOF_SIZE])
{
    enum mpr__hs_state before = r->hs.state;
    CHECK(before == r->state);
    unsigned char *msg = exact(in, MPR__PROOF_SIZE);
    const char *why = NULL;
    rng_calls = 0;
    int rc = mpr__hs_router_proof(&r->hs, &keys, msg, &why);
    CHECK(rng_calls == 0);

    int expected_rc;
    enum mpr__hs_state expected;
    unsigned char tag_s[16];
    if (r->state != MPR__HS_CHALLENGE || memcmp(in, "MPRP", 4) != 0 || le32(in + 8) != 0 ||
        le32(in + 12) != 0) {
        expected_rc = MPR_EPROTO;
        expected = MPR__HS_FAILED;
    } else {
        unsigned char key[16];
        ref_pipe_key(key, secret, r->claimed);
        ref_tag(tag_s, key, 's', r->claimed, r->nonce_r, r->nonce_s);
        if (memcmp(tag_s, in + 16, 16) != 0) {
            expected_rc = MPR_EACCES;
            expected = MPR__HS_FAILED;
        } else {
            expected_rc = 0;
            expected = MPR__HS_PROVEN;
        }
    }
    check_step(before, rc, r->hs.state, expected, expected_rc);
    r->state = expected;
    if (rc < 0)
        CHECK(why && *why);
    if (rc == 0) {
        /* Never PROVEN without the proof of the pipe it claimed, answering
         * this connection's own nonce, for an id that was issued. */
        CHECK(before == MPR__HS_CHALLENGE);
        CHECK(memcmp(tag_s, in + 16, 16) == 0);
        CHECK(r->hs.claimed == r->claimed && r->claimed >= 1 && r->claimed <= keys.last_id);
        r->flags = le32(in + 4);
        CHECK(r->hs.flags == r->flags);
    }
    free(msg);
}

static void router_renew(router_slot *r)
{
    mpr__hs_router_clear(&r->hs);
    CHECK(all_zero(r->hs.nonce_s, 16) && all_zero(r->hs.nonce_r, 16));
    /* A new connection: its machine zero-filled (calloc), as the monitor's. */
    memset(r, 0, sizeof *r);
    CHECK(r->hs.state == MPR__HS_START);
}

/* ---- the script ---- */

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static int take(reader *rd, void *out, size_t n)
{
    if (rd->n < n)
        return 0;
    memcpy(out, rd->p, n);
    rd->p += n;
    rd->n -= n;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 18)
        return 0;
    memcpy(secret, data, 16);
    memset(senders, 0, sizeof senders);
    memset(routers, 0, sizeof routers);
    keys.secret = secret;
    keys.last_id = data[16];
    keys.max_msg = max_sizes[data[17] % (sizeof max_sizes / sizeof max_sizes[0])];
    rng_state = le64(data) ^ 0x6d70722d68730000ull;
    rng_fail_next = 0;

    reader rd = {data + 18, size - 18};
    uint8_t op;
    while (take(&rd, &op, 1)) {
        uint8_t a[3];
        unsigned char buf[MPR__CHALLENGE_SIZE];
        switch (op) {
        case 'S': {
            if (!take(&rd, a, 3))
                return 0;
            uint32_t id = a[1] == 255 ? 0xffffffffu : a[1];
            unsigned char own[16] = {0};
            if (a[2] % 4 == 3 && !take(&rd, own, 16))
                return 0;
            sender_begin(&senders[a[0] % NSLOTS], id, a[2] % 4, own);
            break;
        }
        case 'h':
            if (!take(&rd, a, 2))
                return 0;
            if (senders[a[0] % NSLOTS].used)
                router_hello(&routers[a[1] % NSLOTS], senders[a[0] % NSLOTS].hello);
            break;
        case 'c':
            if (!take(&rd, a, 3))
                return 0;
            sender_challenge(&senders[a[1] % NSLOTS], routers[a[0] % NSLOTS].challenge, a[2]);
            break;
        case 'p':
            if (!take(&rd, a, 2))
                return 0;
            if (senders[a[0] % NSLOTS].used)
                router_proof(&routers[a[1] % NSLOTS], senders[a[0] % NSLOTS].proof);
            break;
        case 'a':
            if (!take(&rd, a, 3))
                return 0;
            memcpy(buf, "MPRA", 4);
            put32(buf + 4, a[1] % 3);
            put32(buf + 8, a[2] % 4);
            put32(buf + 12, 0);
            sender_ack(&senders[a[0] % NSLOTS], buf);
            break;
        case 'H':
        case 'P':
            if (!take(&rd, a, 1) || !take(&rd, buf, 32))
                return 0;
            if (op == 'H')
                router_hello(&routers[a[0] % NSLOTS], buf);
            else
                router_proof(&routers[a[0] % NSLOTS], buf);
            break;
        case 'C':
            if (!take(&rd, a, 2) || !take(&rd, buf, MPR__CHALLENGE_SIZE))
                return 0;
            sender_challenge(&senders[a[0] % NSLOTS], buf, a[1]);
            break;
        case 'A':
            if (!take(&rd, a, 1) || !take(&rd, buf, MPR__ACK_SIZE))
                return 0;
            sender_ack(&senders[a[0] % NSLOTS], buf);
            break;
        case 'x': {
            uint8_t b[4];
            if (!take(&rd, b, 4))
                return 0;
            unsigned n = b[1] % NSLOTS;
            switch (b[0] % 3) {
            case 0: senders[n].hello[b[2] % MPR__HELLO_SIZE] ^= b[3]; break;
            case 1: senders[n].proof[b[2] % MPR__PROOF_SIZE] ^= b[3]; break;
            default: routers[n].challenge[b[2] % MPR__CHALLENGE_SIZE] ^= b[3]; break;
            }
            break;
        }
        case 'n':
            if (!take(&rd, a, 1))
                return 0;
            router_renew(&routers[a[0] % NSLOTS]);
            break;
        case 'F':
            rng_fail_next = 1;
            break;
        case 'L':
            if (!take(&rd, a, 1))
                return 0;
            keys.last_id += a[0];
            break;
        default:
            break;
        }
    }
    return 0;
}
