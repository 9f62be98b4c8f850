/*
 * fuzz_job - libFuzzer target for the job protocol of src/job.c: the
 * messages a worker sends to its executor (mpr__job_parse_worker, which
 * the executor runs over every message of a worker it does not trust)
 * and the control messages an executor sends to a worker
 * (mpr__job_parse_control, run by every worker).
 *
 * fuzz-sources: src/job.c
 *
 * Input: one message. Both parsers run over it (in a buffer of exactly
 * its size, so AddressSanitizer sees any read past it). Checks:
 *   - each parser accepts exactly what a reference reading of job.h
 *     accepts (written here from the format, not from job.c);
 *   - for an accepted message, the decoded fields equal the bytes, every
 *     pointer lies inside the message, and encoding the decoded message
 *     again (mpr__job_put_*) gives back the same bytes;
 *   - a message is never accepted by both sides (the kinds are apart);
 *   - read as a cancel tag (its first 8 bytes) and a job id (the next 8),
 *     mpr__job_cancel_names agrees with the format of job.h, and a set
 *     made with mpr__job_cancel_tag names exactly its members.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/common.h>

#include "job.h"

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "fuzz_job: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                \
        }                                                                           \
    } while (0)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int has_nul(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!p[i])
            return 1;
    return 0;
}

/* The reference: does job.h's format accept this as a worker message? */
static int ref_worker(const uint8_t *b, size_t n)
{
    if (n < 12 || b[1] || b[2] || b[3])
        return 0;
    uint64_t job = le64(b + 4);
    size_t p = n - 12;
    const uint8_t *d = b + 12;
    switch (b[0]) {
    case 1: /* READY */
        return job == 0 && p == 8;
    case 2: /* INIT_FAILED */
        return job == 0 && p <= 4096 && !has_nul(d, p);
    case 8: /* BYE */
        return job == 0 && p == 0;
    case 3: /* STARTED */
    case 7: /* CANCELLED */
        return job != 0 && p == 0;
    case 6: /* FAILED */
        return job != 0 && p <= 4096 && !has_nul(d, p);
    case 4: /* PROGRESS */
    case 5: /* RESULT */
        return job != 0;
    default:
        return 0;
    }
}

static int ref_control(const uint8_t *b, size_t n)
{
    if (n < 12 || b[1] || b[2] || b[3])
        return 0;
    uint64_t job = le64(b + 4);
    size_t p = n - 12;
    if (b[0] == 65) /* EXIT */
        return job == 0 && p == 0;
    if (b[0] != 64 || job == 0 || p < 1) /* RUN */
        return 0;
    size_t len = b[12];
    return len >= 1 && len <= p - 1 && !has_nul(b + 13, len);
}

/* Cancel tags (job.h), read from the format. */
static void check_cancel_tags(const uint8_t *b, size_t size)
{
    if (size < 16)
        return;
    const uint64_t tag = le64(b), job = le64(b + 8);
    int named;
    if (tag >> 63) {
        const uint64_t base = tag & (((uint64_t)1 << 48) - 1);
        const uint64_t i = job - base;
        named = job >= base && i < 15 && ((tag >> (48 + i)) & 1);
    } else {
        named = tag == job;
    }
    CHECK(mpr__job_cancel_names(tag, job) == named);
    const uint64_t base = tag & (((uint64_t)1 << 48) - 1);
    const uint32_t bits = (uint32_t)(job & 0x7fff);
    const uint64_t set = mpr__job_cancel_tag(base, bits);
    for (uint64_t i = 0; i < 16; i++)
        CHECK(mpr__job_cancel_names(set, base + i) == (i < 15 && ((bits >> i) & 1)));
    if (base > 0)
        CHECK(!mpr__job_cancel_names(set, base - 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_cancel_tags(data, size);
    uint8_t *b = malloc(size ? size : 1);
    if (!b)
        return 0;
    memcpy(b, data, size);
    const uint8_t *end = b + size;
    uint8_t *again = malloc(size ? size : 1);
    CHECK(again);

    mpr__job_msg m;
    const char *why = NULL;
    int w = mpr__job_parse_worker(b, size, &m, &why) == 0;
    CHECK(w == ref_worker(b, size));
    if (w) {
        CHECK(m.kind == b[0] && m.job == le64(b + 4));
        CHECK(m.data >= b + 12 && m.data + m.size <= end);
        if (m.kind == MPR__JOB_READY) {
            CHECK(m.size == 0);
            mpr__job_put_ready(again, m.pid);
            /* put_ready writes our version: compare the rest */
            CHECK(memcmp(again, b, 12) == 0 && memcmp(again + 16, b + 16, 4) == 0);
            CHECK(m.version == (uint32_t)(b[12] | b[13] << 8 | b[14] << 16 | (uint32_t)b[15] << 24));
        } else {
            CHECK(m.data == b + 12 && m.size == size - 12);
            mpr__job_put_header(again, m.kind, m.job);
            memcpy(again + 12, m.data, m.size);
            CHECK(memcmp(again, b, size) == 0);
        }
    } else {
        CHECK(why != NULL);
    }

    why = NULL;
    int c = mpr__job_parse_control(b, size, &m, &why) == 0;
    CHECK(c == ref_control(b, size));
    CHECK(!(w && c));
    if (c) {
        CHECK(m.kind == b[0] && m.job == le64(b + 4));
        if (m.kind == MPR__JOB_RUN) {
            CHECK((const uint8_t *)m.name == b + 13 && m.name_len == b[12]);
            CHECK(m.data == b + 13 + m.name_len && m.data + m.size == end);
            size_t n = mpr__job_run_size(m.name_len, m.size);
            CHECK(n == size);
            mpr__job_put_run(again, m.job, m.name, m.name_len, m.data, m.size);
            CHECK(memcmp(again, b, size) == 0);
        } else {
            CHECK(m.kind == MPR__JOB_EXIT && size == 12);
        }
    } else {
        CHECK(why != NULL);
    }
    free(again);
    free(b);
    return 0;
}
