/*
 * job.h - the job protocol between an executor and its workers
 * (<mprouter/executor.h>, <mprouter/worker.h>): the bytes of the messages
 * each side sends through the worker's pipe, with their encoders and
 * strict parsers. Pure code without I/O, so it can be fuzzed
 * (tests/fuzz/fuzz_job.c). Never installed.
 *
 * Every message, either way, begins with a 12-byte header:
 *
 *   byte 0       kind (below)
 *   bytes 1..3   0
 *   bytes 4..11  job id, u64 little-endian: > 0 for the kinds about a
 *                job, 0 for the others
 *
 * then the kind's payload:
 *
 * WORKER -> EXECUTOR (ordinary messages of the pipe, mpr_sender_send):
 *   READY        job 0; u32 protocol version (MPR__JOB_VERSION), u32 the
 *                worker's pid (as it sees it). Exactly 8 bytes. First
 *                message of a worker, once its initialisation is done.
 *   INIT_FAILED  job 0; a text (below): why the initialisation failed.
 *                Instead of READY; the worker then exits.
 *   STARTED      a job; empty. The task is about to run.
 *   PROGRESS     a job; any bytes (the task's mpr_task_progress).
 *   RESULT       a job; any bytes. The job COMPLETED.
 *   FAILED       a job; a text: the task's message.
 *   CANCELLED    a job; empty. The job ended CANCELLED (the request
 *                reached the worker before the task returned, or before
 *                it started).
 *   BYE          job 0; empty. The last message: the worker exits.
 *
 * EXECUTOR -> WORKER (control messages, mpr_receiver_send):
 *   RUN          a job; u8 name length n (1..255), n bytes of the task's
 *                name (no NUL), then the argument bytes (the rest).
 *   EXIT         job 0; empty. Exit once the job in hand (if any) ended.
 *
 * A text is 0..MPR__JOB_TEXT_MAX bytes without a NUL (UTF-8 meant, not
 * checked). Anything else is refused: an unknown kind, a reserved byte
 * that is not 0, a job id 0 where a job is needed (or not 0 where none
 * is), a payload of the wrong size, a text too long or with a NUL, a
 * message of one direction parsed as the other.
 */
#ifndef MPR_JOB_H
#define MPR_JOB_H

#include <stddef.h>
#include <stdint.h>

#define MPR__JOB_VERSION 2u
#define MPR__JOB_HEADER 12
/* Job ids are given per worker, 1, 2, 3... in the order its jobs are
 * handed to it (a job gets a new one each time it is handed over). A
 * cancel tag (mpr_receiver_cancel) with the top bit set is a set of its
 * jobs: bits 0..47 a job id b, bit 48 + i the job b + i (i < 15); the
 * executor names in it every cancelled job the worker holds (the one it
 * runs and those handed to it ahead), so the newest tag alone says all.
 * A tag without the top bit names the one job of that id. */
#define MPR__JOB_CANCEL_SET ((uint64_t)1 << 63)
#define MPR__JOB_CANCEL_SHIFT 48
#define MPR__JOB_CANCEL_BASE_MASK (((uint64_t)1 << MPR__JOB_CANCEL_SHIFT) - 1)
#define MPR__JOB_CANCEL_SPAN 15
/* At most this many jobs ahead of the one a worker runs. */
#define MPR__JOB_AHEAD_MAX (MPR__JOB_CANCEL_SPAN - 1)
#define MPR__JOB_TEXT_MAX 4096
#define MPR__JOB_NAME_MAX 255

enum mpr__job_kind {
    /* worker -> executor */
    MPR__JOB_READY = 1,
    MPR__JOB_INIT_FAILED = 2,
    MPR__JOB_STARTED = 3,
    MPR__JOB_PROGRESS = 4,
    MPR__JOB_RESULT = 5,
    MPR__JOB_FAILED = 6,
    MPR__JOB_CANCELLED = 7,
    MPR__JOB_BYE = 8,
    /* executor -> worker */
    MPR__JOB_RUN = 64,
    MPR__JOB_EXIT = 65
};

/* A parsed message: pointers into the parsed bytes. */
typedef struct mpr__job_msg {
    int kind;
    uint64_t job;
    const unsigned char *data; /* the payload after any fixed fields */
    size_t size;
    uint32_t version, pid;     /* READY */
    const char *name;          /* RUN: the task's name (not NUL-terminated) */
    size_t name_len;
} mpr__job_msg;

/* The cancel tag naming the jobs base + i for each bit i of bits
 * (bits < 1 << MPR__JOB_CANCEL_SPAN), and whether a tag names job. */
uint64_t mpr__job_cancel_tag(uint64_t base, uint32_t bits);
int mpr__job_cancel_names(uint64_t tag, uint64_t job);
/* Parse a message from a worker (READY .. BYE). 0 with *m, or MPR_EPROTO;
 * *why (if why) then says what is wrong (a static string). */
int mpr__job_parse_worker(const void *buf, size_t n, mpr__job_msg *m, const char **why);
/* Parse a control message from the executor (RUN, EXIT). The same. */
int mpr__job_parse_control(const void *buf, size_t n, mpr__job_msg *m, const char **why);

/* Write the 12-byte header of a message into p. */
void mpr__job_put_header(unsigned char *p, int kind, uint64_t job);
/* Bytes of a RUN message with a name of name_len and size bytes of
 * arguments; (size_t)-1 if that overflows. */
size_t mpr__job_run_size(size_t name_len, size_t size);
/* Write a RUN message into p (mpr__job_run_size bytes). */
void mpr__job_put_run(unsigned char *p, uint64_t job, const char *name, size_t name_len,
                      const void *args, size_t size);
/* Write a READY message (MPR__JOB_HEADER + 8 bytes) into p. */
void mpr__job_put_ready(unsigned char *p, uint32_t pid);
/* Is this a valid text (length, no NUL)? */
int mpr__job_text_ok(const void *p, size_t n);

#endif /* MPR_JOB_H */
