/*
 * fuzz_ring - libFuzzer target for the shared-memory ring record parser of
 * src/wire.c (mpr__ring_next): a peer controls every byte of the ring and
 * its head index; the router's tail only ever moves by what the parser
 * returned.
 *
 * fuzz-sources: src/wire.c src/base.c
 *
 * Input: [0] picks the ring size (8 B .. 64 KiB), [1..8] head as a
 * u64 (little-endian, relative to the start tail), [9..16] start tail
 * (rounded down to 8, as the router keeps it), then the ring contents (the
 * rest of the ring is zero). The ring is a malloc of exactly cap bytes, so
 * AddressSanitizer catches any read outside it.
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
            fprintf(stderr, "fuzz_ring: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                \
        }                                                                           \
    } while (0)

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 17)
        return 0;
    uint64_t cap = (uint64_t)1 << (3 + data[0] % 14); /* 8 B .. 64 KiB */
    uint64_t tail = get_u64(data + 9) & ~(uint64_t)7;
    uint64_t head = tail + get_u64(data + 1);
    unsigned char *ring = calloc(1, cap);
    CHECK(ring);
    size_t n = size - 17 < cap ? size - 17 : (size_t)cap;
    /* Lay the contents out from the tail's position, wrapping like the ring. */
    for (size_t i = 0; i < n; i++)
        ring[(tail + i) & (cap - 1)] = data[17 + i];

    for (int steps = 0; steps < 100000; steps++) {
        mpr__ring_rec rec;
        int rc = mpr__ring_next(ring, cap, tail, head, &rec);
        CHECK(rc == 0 || rc == 1 || rc == MPR_EPROTO);
        if (rc == 0) {
            CHECK(head == tail);
            break;
        }
        if (rc < 0)
            break;
        /* A record lies inside the ring and inside what was published. */
        uint64_t pos = tail & (cap - 1);
        CHECK(rec.size >= 8 && (rec.size & 7) == 0);
        CHECK(rec.size <= head - tail);
        CHECK(pos + rec.size <= cap);
        CHECK(rec.payload == ring + pos + 8 || rec.type == MPR__RING_PAD);
        if (rec.type != MPR__RING_PAD) {
            CHECK(8 + (uint64_t)rec.len <= rec.size);
            /* Touch every payload byte: ASan reports any outside the ring. */
            volatile unsigned char sum = 0;
            for (uint32_t i = 0; i < rec.len; i++)
                sum ^= rec.payload[i];
            (void)sum;
        }
        switch (rec.type) {
        case MPR__RING_MSG:
        case MPR__RING_PAD:
            break;
        case MPR__RING_FRAG_START:
            CHECK(rec.len == 8);
            break;
        case MPR__RING_FRAG_DATA: /* the parser is per record; ordering is the router's */
            break;
        case MPR__RING_BYE:
            CHECK(rec.len == 0);
            break;
        default:
            CHECK(!"unknown record type accepted");
        }
        tail += rec.size;
    }
    free(ring);
    return 0;
}
