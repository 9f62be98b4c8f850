/*
 * fuzz_ctl - libFuzzer target for the parsers of the way back (receiver ->
 * sender, src/wire.c): the items of a local connection
 * (mpr__ctl_item_next) and the router's frames over the remote transport
 * (mpr__down_parse), as a sender reads them.
 *
 * fuzz-sources: src/wire.c src/base.c
 *
 * Input: 2 control bytes, then the bytes.
 *   [0] bit 0: 0 = a local stream of items, 1 = a sequence of remote
 *       frames, each prefixed by a 2-byte length (little-endian, cut to
 *       what is left)
 *   [1] seed of the chunking (local): the stream arrives in pieces of
 *       1..64 bytes, each parse restarted from the front of what is not
 *       taken yet, as the sender's inbox does
 *
 * Checked: an item or frame never points outside its input; a local item
 * is only complete when all its bytes are there, and the chunked parse
 * gives the same items as a parse of the whole stream, and the same error;
 * a CTRL piece lies inside its message (offset + n <= total <= the
 * largest control message), a CANCEL tag is never 0; a frame built with
 * mpr__ctrl_header / mpr__small_frame parses back to its fields.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/common.h>

#include "wire.h"

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "fuzz_ctl: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

typedef struct {
    int type;
    uint64_t tag;
    size_t size;
    uint32_t sum;
} seen;

static uint32_t sum_of(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* Parse all of buf: the items, and the final result (0 = wants more). */
static int parse_all(const unsigned char *buf, size_t n, seen *out, size_t max, size_t *count)
{
    size_t off = 0;
    *count = 0;
    for (;;) {
        mpr__ctl_item it;
        int rc = mpr__ctl_item_next(buf + off, n - off, &it);
        if (rc <= 0)
            return rc;
        CHECK(it.used >= 1 && it.used <= n - off);
        if (it.type == MPR__CTL_MSG) {
            CHECK(it.size <= MPR_CONTROL_MAX_SIZE);
            CHECK(it.used == MPR__CTL_MSG_HDR + it.size);
            CHECK(it.size == 0 || (it.data >= buf + off && it.data + it.size <= buf + n));
        } else if (it.type == MPR__CTL_CANCEL) {
            CHECK(it.tag != 0);
        } else {
            CHECK(it.type == MPR__CTL_ROOM);
        }
        if (*count < max) {
            out[*count].type = it.type;
            out[*count].tag = it.tag;
            out[*count].size = it.size;
            out[*count].sum = it.type == MPR__CTL_MSG ? sum_of(it.data, it.size) : 0;
        }
        (*count)++;
        off += it.used;
    }
}

static void local_stream(const unsigned char *p, size_t n, unsigned seed)
{
    enum { MAX = 4096 };
    static seen whole[MAX], chunked[MAX];
    size_t nwhole;
    int rc_whole = parse_all(p, n, whole, MAX, &nwhole);

    /* The same stream in pieces, as a sender's inbox takes it. */
    unsigned char *in = malloc(n ? n : 1);
    CHECK(in);
    size_t in_len = 0, fed = 0, nchunked = 0;
    int rc_chunked = 0;
    while (rc_chunked >= 0) {
        size_t off = 0;
        for (;;) {
            mpr__ctl_item it;
            int rc = mpr__ctl_item_next(in + off, in_len - off, &it);
            if (rc == 0)
                break;
            if (rc < 0) {
                rc_chunked = rc;
                break;
            }
            CHECK(it.used <= in_len - off);
            if (nchunked < MAX) {
                chunked[nchunked].type = it.type;
                chunked[nchunked].tag = it.tag;
                chunked[nchunked].size = it.size;
                chunked[nchunked].sum = it.type == MPR__CTL_MSG ? sum_of(it.data, it.size) : 0;
            }
            nchunked++;
            off += it.used;
        }
        memmove(in, in + off, in_len - off);
        in_len -= off;
        if (rc_chunked < 0 || fed == n)
            break;
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 64;
        if (piece > n - fed)
            piece = n - fed;
        memcpy(in + in_len, p + fed, piece);
        in_len += piece;
        fed += piece;
    }
    free(in);
    CHECK(rc_chunked == rc_whole);
    CHECK(nchunked == nwhole);
    for (size_t i = 0; i < nwhole && i < MAX; i++) {
        CHECK(whole[i].type == chunked[i].type);
        CHECK(whole[i].tag == chunked[i].tag);
        CHECK(whole[i].size == chunked[i].size);
        CHECK(whole[i].sum == chunked[i].sum);
    }
}

static void remote_frame(const unsigned char *p, size_t n)
{
    mpr__down_frame f;
    int rc = mpr__down_parse(p, n, &f);
    CHECK(rc == 0 || rc == MPR_EPROTO);
    if (rc != 0)
        return;
    if (f.kind == MPR__CTRL_MAGIC) {
        CHECK(f.total <= MPR_CONTROL_MAX_SIZE);
        CHECK(f.cseq != 0);
        CHECK(f.n <= MPR__CTRL_PIECE);
        CHECK(f.offset <= f.total && f.n <= f.total - f.offset);
        CHECK(f.piece == p + MPR__CTRL_HDR && f.piece + f.n == p + n);
        CHECK(f.n > 0 || f.total == 0);
        /* The writer's own header parses back to the same fields. */
        unsigned char *again = malloc(MPR__CTRL_HDR + f.n);
        CHECK(again);
        mpr__ctrl_header(again, f.total, f.cseq, f.offset);
        memcpy(again + MPR__CTRL_HDR, f.piece, f.n);
        mpr__down_frame g;
        CHECK(mpr__down_parse(again, MPR__CTRL_HDR + f.n, &g) == 0);
        CHECK(g.kind == f.kind && g.total == f.total && g.cseq == f.cseq &&
              g.offset == f.offset && g.n == f.n);
        free(again);
    } else if (f.kind == MPR__CANCEL_MAGIC) {
        CHECK(f.tag != 0);
        CHECK(n == MPR__DATA_HDR);
        unsigned char again[MPR__DATA_HDR];
        mpr__small_frame(again, MPR__CANCEL_MAGIC, f.tag);
        CHECK(memcmp(again, p, MPR__DATA_HDR) == 0);
    } else {
        CHECK(f.kind == MPR__STATE_MAGIC);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const int mode = data[0] & 1;
    const unsigned seed = data[1];
    data += 2;
    size -= 2;
    if (mode == 0) {
        local_stream(data, size, seed);
        return 0;
    }
    while (size >= 2) {
        size_t len = (size_t)data[0] | ((size_t)data[1] << 8);
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        /* A copy of exactly the frame: AddressSanitizer sees any read past it. */
        unsigned char *frame = malloc(len ? len : 1);
        CHECK(frame);
        memcpy(frame, data, len);
        remote_frame(frame, len);
        free(frame);
        data += len;
        size -= len;
    }
    return 0;
}
