/*
 * payload.h - deterministic test messages, shared by the C worker program
 * and the C++ tests: message #seq of a stream tagged tag, size bytes.
 * Bytes 0..3 hold seq, 4..7 hold tag (little-endian) when they fit; the
 * rest is a pattern of (seq, tag, position), so any corruption, loss or
 * reordering shows.
 */
#ifndef MPR_TEST_PAYLOAD_H
#define MPR_TEST_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

static inline unsigned char mpr_test_pattern(uint32_t seq, uint32_t tag, size_t i)
{
    return (unsigned char)((seq * 131u + tag * 31u + (uint32_t)i * 7u + (uint32_t)(i >> 13)) & 0xffu);
}

static inline void mpr_test_fill(unsigned char *buf, size_t size, uint32_t seq, uint32_t tag)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = mpr_test_pattern(seq, tag, i);
    if (size >= 8) {
        for (int b = 0; b < 4; b++) {
            buf[b] = (unsigned char)(seq >> (8 * b));
            buf[4 + b] = (unsigned char)(tag >> (8 * b));
        }
    }
}

/* 1 if buf is exactly message #seq of stream tag. */
static inline int mpr_test_check(const unsigned char *buf, size_t size, uint32_t seq, uint32_t tag)
{
    for (size_t i = size >= 8 ? 8 : 0; i < size; i++)
        if (buf[i] != mpr_test_pattern(seq, tag, i))
            return 0;
    if (size >= 8) {
        for (int b = 0; b < 4; b++)
            if (buf[b] != (unsigned char)(seq >> (8 * b)) ||
                buf[4 + b] != (unsigned char)(tag >> (8 * b)))
                return 0;
    }
    return 1;
}

/* FNV-1a, 64 bits: a checksum for large messages. */
static inline uint64_t mpr_test_fnv(const unsigned char *buf, size_t size)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++) {
        h ^= buf[i];
        h *= 1099511628211ull;
    }
    return h;
}

#endif /* MPR_TEST_PAYLOAD_H */
