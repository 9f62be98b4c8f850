/* execworker - a worker program of the executor (tests/executor,
 * tests/executor_remote): runs mpr_worker_main with the tasks below and a
 * per-worker initialisation that counts its runs. "--die" as its first
 * argument: it exits with status 1 at once (a worker that dies every time
 * it starts). "--hostile": a worker that speaks the job protocol by hand
 * (hostile_main below) and breaks it in the ways its tasks are named
 * after. "--ready-exit": it reports ready, then exits with status 9 at
 * once. */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mprouter/sender.h>
#include <mprouter/worker.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The arguments back as the result. */
static int echo(mpr_task *task, const void *arg, size_t size)
{
    return mpr_task_result(task, arg, size);
}

/* Fails with the arguments as the message. */
static int fail(mpr_task *task, const void *arg, size_t size)
{
    return mpr_task_fail(task, "%.*s", (int)size, (const char *)arg);
}

/* Arguments: a u32 n. Progress 0 .. n-1 (each a u32), then result "done". */
static int progress(mpr_task *task, const void *arg, size_t size)
{
    uint32_t n;
    if (size != sizeof n)
        return mpr_task_fail(task, "progress needs 4 bytes, got %zu", size);
    memcpy(&n, arg, sizeof n);
    for (uint32_t i = 0; i < n; i++)
        if (mpr_task_progress(task, &i, sizeof i) != 0)
            return mpr_task_fail(task, "progress %u failed", i);
    return mpr_task_result(task, "done", 4);
}

/* Runs until cancelled, testing for cancel every millisecond (at most
 * 120 s, then fails). */
static int spin(mpr_task *task, const void *arg, size_t size)
{
    (void)arg;
    (void)size;
    for (int i = 0; i < 120000; i++) {
        if (mpr_task_cancelled(task))
            return 0;
        sleep_ms(1);
    }
    return mpr_task_fail(task, "spin was never cancelled");
}

/* Arguments: a path. Creates that file (the proof that the task ran),
 * result "touched". */
static int touch(mpr_task *task, const void *arg, size_t size)
{
    char path[4096];
    if (size == 0 || size >= sizeof path)
        return mpr_task_fail(task, "touch needs a path");
    memcpy(path, arg, size);
    path[size] = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return mpr_task_fail(task, "cannot create %s", path);
    close(fd);
    return mpr_task_result(task, "touched", 7);
}

/* Ignores cancel: sleeps for good (the executor must kill it). */
static int stuck(mpr_task *task, const void *arg, size_t size)
{
    (void)task;
    (void)arg;
    (void)size;
    for (;;)
        sleep_ms(1000);
    return 0;
}

/* The per-worker initialisation: counts its runs in the context. */
static int init(void *context, char *message, size_t size)
{
    (void)message;
    (void)size;
    ++*(int *)context;
    return 0;
}

/* The number of times init ran in this process, as text. */
static int inits(mpr_task *task, const void *arg, size_t size)
{
    (void)arg;
    (void)size;
    char text[16];
    int n = snprintf(text, sizeof text, "%d", *(int *)mpr_task_context(task));
    return mpr_task_result(task, text, (size_t)n);
}

/* ---- the hostile worker ------------------------------------------------ */
/* The job protocol (src/job.h), written here again from its description:
 * a 12-byte header (kind, 3 bytes 0, job id u64 little-endian), then the
 * kind's payload. */
enum {
    K_READY = 1, K_INIT_FAILED = 2, K_STARTED = 3, K_PROGRESS = 4, K_RESULT = 5,
    K_FAILED = 6, K_CANCELLED = 7, K_BYE = 8, K_RUN = 64, K_EXIT = 65
};

static mpr_sender *hs;

static void put_header(unsigned char *p, int kind, uint64_t job)
{
    p[0] = (unsigned char)kind;
    p[1] = p[2] = p[3] = 0;
    for (int i = 0; i < 8; i++)
        p[4 + i] = (unsigned char)(job >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Send a message of the protocol; exits when the router is gone. */
static void hsend(int kind, uint64_t job, const void *payload, size_t size)
{
    unsigned char *m = malloc(12 + size);
    if (!m)
        exit(8);
    put_header(m, kind, job);
    if (size)
        memcpy(m + 12, payload, size);
    int rc = mpr_sender_send(hs, m, 12 + size);
    free(m);
    if (rc < 0)
        exit(4);
}

static void hsend_raw(const void *data, size_t size)
{
    if (mpr_sender_send(hs, data, size) < 0)
        exit(4);
}

/* Wait for the executor to kill this worker: take control messages for
 * at most 60 s (an EXIT ends it; so does the end of the router). */
static void await_kill(void)
{
    unsigned char buf[256];
    for (int i = 0; i < 600; i++) {
        size_t len = 0;
        int rc = mpr_sender_recv(hs, buf, sizeof buf, &len, 0.1);
        if (rc == MPR_ETIMEDOUT || rc == MPR_EMSGSIZE)
            continue;
        if (rc < 0 || (len >= 12 && buf[0] == K_EXIT))
            exit(0);
    }
    exit(9);
}

/* Does a cancel tag name job? (job.h, version 2: a tag with the top bit
 * set is a set, bits 0..47 a job id b, bit 48 + i the job b + i; else the
 * one job of that id.) */
static int cancels(uint64_t tag, uint64_t job)
{
    if (!(tag >> 63))
        return tag == job;
    const uint64_t base = tag & (((uint64_t)1 << 48) - 1);
    return job >= base && job - base < 15 && ((tag >> (48 + (job - base))) & 1);
}

static void run(uint64_t job, const char *name, size_t nlen, const unsigned char *arg, size_t size)
{
#define IS(s) (nlen == strlen(s) && memcmp(name, s, nlen) == 0)
    if (IS("echo")) {
        hsend(K_STARTED, job, NULL, 0);
        hsend(K_RESULT, job, arg, size);
    } else if (IS("spin")) {
        /* as spin above: until cancelled, at most 120 s */
        hsend(K_STARTED, job, NULL, 0);
        for (int i = 0; i < 120000; i++) {
            if (cancels(mpr_sender_cancelled(hs), job)) {
                hsend(K_CANCELLED, job, NULL, 0);
                return;
            }
            sleep_ms(1);
        }
        hsend(K_FAILED, job, "spin was never cancelled", 24);
    } else if (IS("wrongjob")) {
        /* Progress, then a result, for the job id after its own (args
         * "next": not given to it yet; job ids are per worker, job.h), or
         * 1000 after it ("far"). */
        uint64_t other = size == 4 && memcmp(arg, "next", 4) == 0 ? job + 1 : job + 1000;
        hsend(K_STARTED, job, NULL, 0);
        hsend(K_PROGRESS, other, "p", 1);
        hsend(K_RESULT, other, "stolen", 6);
        await_kill();
    } else if (IS("resulttwice")) {
        hsend(K_STARTED, job, NULL, 0);
        hsend(K_RESULT, job, arg, size);
        hsend(K_RESULT, job, "again", 5);
        await_kill();
    } else if (IS("raw") || IS("rawfirst")) {
        /* The arguments as one message (after STARTED for "raw"); 8 bytes
         * 0xEE at offset 4 are replaced by the job's id. */
        unsigned char *m = malloc(size ? size : 1);
        if (!m)
            exit(8);
        if (size)
            memcpy(m, arg, size);
        static const unsigned char mark[8] = {0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee};
        if (size >= 12 && memcmp(m + 4, mark, 8) == 0)
            for (int i = 0; i < 8; i++)
                m[4 + i] = (unsigned char)(job >> (8 * i));
        if (IS("raw"))
            hsend(K_STARTED, job, NULL, 0);
        hsend_raw(m, size);
        free(m);
        await_kill();
    } else if (IS("garbage")) {
        /* u32 n: n bytes that are no message at all (a fixed pattern). */
        uint32_t n = 0;
        if (size == 4)
            memcpy(&n, arg, 4);
        unsigned char *m = malloc(n ? n : 1);
        if (!m)
            exit(8);
        uint32_t x = 2463534242u;
        for (uint32_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            m[i] = (unsigned char)(x | 0x80); /* never a kind of the protocol */
        }
        hsend(K_STARTED, job, NULL, 0);
        hsend_raw(m, n);
        free(m);
        await_kill();
    } else if (IS("hugeprogress")) {
        /* u32 n: one progress of n bytes (byte i is i % 251), then the
         * result "done". */
        uint32_t n = 0;
        if (size == 4)
            memcpy(&n, arg, 4);
        unsigned char *p = malloc(n ? n : 1);
        if (!p)
            exit(8);
        for (uint32_t i = 0; i < n; i++)
            p[i] = (unsigned char)(i % 251);
        hsend(K_STARTED, job, NULL, 0);
        hsend(K_PROGRESS, job, p, n);
        free(p);
        hsend(K_RESULT, job, "done", 4);
    } else if (IS("flood")) {
        /* Progress (a u32 count) as fast as it can, ignoring cancel, for
         * at most 60 s or 20 million messages (or the u32 in args); then
         * the result "flooded". */
        uint32_t max = 20000000;
        if (size == 4)
            memcpy(&max, arg, 4);
        hsend(K_STARTED, job, NULL, 0);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (uint32_t i = 0; i < max; i++) {
            hsend(K_PROGRESS, job, &i, 4);
            if (i % 1024 == 0) {
                clock_gettime(CLOCK_MONOTONIC, &t);
                if (t.tv_sec - t0.tv_sec > 60)
                    break;
            }
        }
        hsend(K_RESULT, job, "flooded", 7);
    } else {
        hsend(K_STARTED, job, NULL, 0);
        hsend(K_FAILED, job, "no such task", 12);
    }
#undef IS
}

/* Read the sender string, connect, READY, then take RUN and EXIT (or,
 * with exit_after_ready, exit with status 9 right after READY). */
static int hostile_main(int exit_after_ready)
{
    char line[8192];
    if (!fgets(line, sizeof line, stdin))
        return 2;
    line[strcspn(line, "\n")] = 0;
    if (mpr_sender_from_string(&hs, line) < 0)
        return 2;
    if (mpr_sender_start(hs) < 0)
        return 5;
    unsigned char ready[8] = {2, 0, 0, 0, 0, 0, 0, 0}; /* version 2 (job.h) */
    uint32_t pid = (uint32_t)getpid();
    for (int i = 0; i < 4; i++)
        ready[4 + i] = (unsigned char)(pid >> (8 * i));
    hsend(K_READY, 0, ready, sizeof ready);
    if (exit_after_ready)
        return 9;
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return 8;
    for (;;) {
        size_t len = 0;
        int rc = mpr_sender_recv(hs, buf, cap, &len, -1);
        if (rc == MPR_ETIMEDOUT)
            continue;
        if (rc < 0)
            return 4;
        if (len >= 12 && buf[0] == K_EXIT) {
            hsend(K_BYE, 0, NULL, 0);
            break;
        }
        if (len < 13 || buf[0] != K_RUN || 13 + (size_t)buf[12] > len)
            return 7;
        size_t nlen = buf[12];
        run(get_u64(buf + 4), (const char *)buf + 13, nlen, buf + 13 + nlen, len - 13 - nlen);
    }
    free(buf);
    mpr_sender_stop(hs);
    mpr_sender_free(hs);
    return 0;
}

int main(int argc, char **argv)
{
    static const mpr_task_def tasks[] = {{"echo", echo},   {"fail", fail}, {"progress", progress},
                                         {"spin", spin},   {"stuck", stuck}, {"inits", inits},
                                         {"touch", touch}, {NULL, NULL}};
    if (argc > 1 && strcmp(argv[1], "--die") == 0)
        return 1;
    if (argc > 1 && strcmp(argv[1], "--hostile") == 0)
        return hostile_main(0);
    if (argc > 1 && strcmp(argv[1], "--ready-exit") == 0)
        return hostile_main(1);
    static int init_runs;
    return mpr_worker_main(tasks, init, &init_runs);
}
