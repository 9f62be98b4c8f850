/*
 * fuzz_remote - libFuzzer target for the parsers of the remote transport in
 * src/wire.c: a frame from a remote sender as the router takes it apart
 * (mpr__remote_parse, then mpr__record_next over a DATA frame's records),
 * and the router's answers as a sender reads them (mpr__state_decode,
 * mpr__challenge_decode, mpr__ack_decode). Every byte of a frame comes from
 * a peer that got past CURVE with a valid server key, or from a router the
 * sender connected to.
 *
 * fuzz-sources: src/wire.c src/base.c
 *
 * Input: the frame (an exact-size malloc, so AddressSanitizer sees any read
 * outside it). The result is compared with a reference reading of the
 * frame written from the format in wire.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/common.h>

#include "wire.h"

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_remote: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static uint32_t u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t u64(const uint8_t *p)
{
    return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32;
}

/* The reference: is this a frame the router may take, and of what kind? */
static int ref_kind(const uint8_t *p, size_t n, uint64_t *seq)
{
    if (n < 4)
        return -1;
    uint32_t magic = u32(p);
    if (magic == 0x3152504du) /* HELLO */
        return n == 32 ? 0 : -1;
    if (magic == 0x5052504du) /* PROOF */
        return n == 32 ? 0 : -1;
    if (magic == 0x4452504du) { /* DATA */
        if (n < 16 || n - 16 > 512u * 1024u || u32(p + 4) != 0 || u64(p + 8) == 0)
            return -1;
        *seq = u64(p + 8);
        return 0;
    }
    if (magic == 0x4852504du || magic == 0x5852504du) /* HEART, ABORT */
        return n == 16 && u32(p + 4) == 0 && u64(p + 8) == 0 ? 0 : -1;
    if (magic == 0x4752504du) { /* GOT (the way back): any cseq; the router checks it */
        if (n != 16 || u32(p + 4) != 0)
            return -1;
        *seq = u64(p + 8);
        return 0;
    }
    return -1;
}

/* The reference walk over records: 1 if they are well formed and fill
 * exactly n bytes. */
static int ref_records(const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (n < 8)
            return 0;
        uint32_t type = u32(p), len = u32(p + 4);
        uint64_t size = 8 + (((uint64_t)len + 7) & ~(uint64_t)7);
        if (size > n)
            return 0;
        if (!(type == 1 || type == 3 || (type == 2 && len == 8) || (type == 5 && len == 0)))
            return 0;
        p += size;
        n -= (size_t)size;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *frame = malloc(size ? size : 1);
    CHECK(frame);
    memcpy(frame, data, size);

    /* The router's side. */
    uint64_t seq = 0;
    int expect = ref_kind(frame, size, &seq);
    mpr__remote_frame f;
    int rc = mpr__remote_parse(frame, size, &f);
    CHECK((rc == 0) == (expect == 0));
    if (rc == 0) {
        CHECK(f.kind == u32(frame));
        if (f.kind == MPR__GOT_MAGIC)
            CHECK(f.seq == seq);
        if (f.kind == MPR__DATA_MAGIC) {
            CHECK(f.seq == seq);
            CHECK(f.records == frame + MPR__DATA_HDR && f.nrecords == size - MPR__DATA_HDR);
            const unsigned char *p = f.records;
            size_t left = f.nrecords;
            int ok = 1;
            for (;;) {
                mpr__ring_rec rec;
                int r = mpr__record_next(p, left, &rec);
                if (r == 0)
                    break;
                if (r < 0) {
                    ok = 0;
                    break;
                }
                CHECK(rec.size >= 8 && rec.size <= left && (rec.size & 7) == 0);
                CHECK(rec.payload == p + 8 && (uint64_t)rec.len + 8 <= rec.size);
                volatile unsigned char sink = 0;
                for (uint32_t i = 0; i < rec.len; i++) /* the payload is readable, all of it */
                    sink ^= rec.payload[i];
                (void)sink;
                if (rec.type == MPR__RING_FRAG_START)
                    CHECK(rec.total == u64(p + 8));
                p += rec.size;
                left -= (size_t)rec.size;
            }
            CHECK(ok == ref_records(f.records, f.nrecords));
        }
    }

    /* The sender's side: what a router (or something at its address) says. */
    mpr__state st;
    if (mpr__state_decode(frame, size, &st) == 0) {
        CHECK(size == MPR__STATE_SIZE && u32(frame) == MPR__STATE_MAGIC);
        CHECK((st.flags & ~MPR__STATE_GONE) == 0 && st.seq == u64(frame + 8));
    }
    if (size == MPR__CHALLENGE_SIZE) {
        mpr__challenge ch;
        if (mpr__challenge_decode(frame, &ch) == 0)
            CHECK(u32(frame) == MPR__CHALLENGE_MAGIC && ch.max_msg == u32(frame + 8));
    }
    if (size == MPR__ACK_SIZE) {
        mpr__ack ack;
        if (mpr__ack_decode(frame, &ack) == 0)
            CHECK(ack.status <= MPR__ACK_TAKEN && ack.mode <= MPR__MODE_REMOTE);
    }
    free(frame);
    return 0;
}
