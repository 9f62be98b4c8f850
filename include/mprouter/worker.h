/**
 * @file mprouter/worker.h
 * @brief The worker side of an executor (<mprouter/executor.h>).
 *
 * A worker program (or the function of MPR_START_FORK) calls
 * mpr_worker_main() with a table of named task functions:
 *
 *     static int square(mpr_task *task, const void *arg, size_t size)
 *     {
 *         int64_t x;
 *         if (size != sizeof x)
 *             return mpr_task_fail(task, "square needs 8 bytes, got %zu", size);
 *         memcpy(&x, arg, sizeof x);
 *         x *= x;
 *         return mpr_task_result(task, &x, sizeof x);
 *     }
 *
 *     int main(void)
 *     {
 *         static const mpr_task_def tasks[] = {{"square", square}, {NULL, NULL}};
 *         return mpr_worker_main(tasks, NULL, NULL);
 *     }
 *
 * The life of a worker: it reads its pipe's sender string from the first
 * line of standard input (the executor writes it there), starts the
 * sender, runs the initialisation once (load data, ...), reports ready,
 * then runs the jobs it is given, one at a time, until the executor tells
 * it to exit. It exits by itself, so that no worker outlives its
 * application:
 *   - when its standard input ends (the executor holds the only write end;
 *     keep standard input alone: a worker started by hand with
 *     `echo STRING | prog` exits at once after the string), at once, even
 *     in the middle of a task (a thread of the worker watches it);
 *   - when its router is gone (MPR_EPIPE while it waits for a job, or
 *     from a send);
 *   - on Linux, when the executor's process dies (PR_SET_PDEATHSIG, set
 *     by the executor in fork and exec mode).
 *
 * Inside a task (THE THREAD THAT CALLED mpr_worker_main ONLY): report
 * progress (mpr_task_progress), test for cancel (mpr_task_cancelled:
 * cheap, no system call on the ring transport), set the result
 * (mpr_task_result) or fail with a message (mpr_task_fail). The job's end:
 *   - if the cancel request for this job has reached the worker when the
 *     task returns (whether the task looked or not), the job is CANCELLED
 *     and what the task set is dropped;
 *   - else, if the task called mpr_task_fail or returned non-zero, it is
 *     FAILED with the message (or "task returned N");
 *   - else COMPLETED, with the bytes of the last mpr_task_result (none if
 *     it was not called).
 *
 * Exit statuses of mpr_worker_main (and of the process):
 *   0 the executor asked it to exit; 2 no usable sender string on standard
 *   input; 3 standard input ended (the application is gone); 4 the router
 *   is gone (MPR_EPIPE); 5 the sender could not start (the reason on
 *   standard error); 6 the initialisation failed (reported to the
 *   executor first); 7 the executor sent bytes that are not the job
 *   protocol; 8 out of memory.
 */
#ifndef MPROUTER_WORKER_H
#define MPROUTER_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include <mprouter/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The job a task runs (opaque): valid during the task function's call. */
typedef struct mpr_task mpr_task;

/** A task function: runs one job with the job's argument bytes (valid
 * during the call). Returns 0 for success (the job COMPLETES with the
 * result set by mpr_task_result) or non-zero for failure (FAILED, see the
 * top of this file). */
typedef int (*mpr_task_fn)(mpr_task *task, const void *arg, size_t size);

/** One row of a worker's task table; the table ends with {NULL, NULL}. */
typedef struct mpr_task_def {
    const char *name; /**< the name jobs give (1 .. 255 bytes) */
    mpr_task_fn fn;   /**< the function that runs them */
} mpr_task_def;

/** The per-worker initialisation: runs once, before the worker reports
 * ready, with the context given to mpr_worker_main. Returns 0, or
 * non-zero after writing a NUL-terminated reason into message (size
 * bytes): the worker then reports "initialisation failed: REASON" (a start
 * failure, see <mprouter/executor.h>) and exits with status 6. */
typedef int (*mpr_worker_init_fn)(void *context, char *message, size_t size);

/** Run a worker (see the top of this file): returns its exit status, for
 * main to return (it never returns before the executor asks it to exit,
 * or something ends it; standard input's end ends the process at once
 * with _exit(3)). tasks: the table, ending with {NULL, NULL}; init: NULL
 * or the initialisation; context: given to init and to every task
 * (mpr_task_context). Call it once per process, from main's thread. */
MPR_EXTERN int mpr_worker_main(const mpr_task_def *tasks, mpr_worker_init_fn init,
                               void *context);

/** Report progress: size bytes (copied; data may be NULL if size is 0)
 * to the future's progress callback, in order. Returns 0; MPR_EPIPE if
 * the router is gone (the worker exits after the task returns;
 * mpr_task_cancelled is true from then on); MPR_EMSGSIZE (above the
 * router's largest message, less 12 bytes); MPR_EINVAL (NULL task, data
 * NULL with size > 0, or a task that has returned). */
MPR_EXTERN int mpr_task_progress(mpr_task *task, const void *data, size_t size);

/** Non-zero once the job has been asked to cancel (or the router is
 * gone): the task should return soon. Costs a load of a word of the
 * shared ring on the ring transport (see mpr_sender_cancelled): call it
 * as often as you like. 0 for NULL. */
MPR_EXTERN int mpr_task_cancelled(mpr_task *task);

/** Set the job's result: size bytes, copied (data may be NULL if size is
 * 0); a later call replaces it. Sent when the task returns 0. Returns 0;
 * MPR_ENOMEM; MPR_EMSGSIZE (above the router's largest message, less 12
 * bytes); MPR_EINVAL (NULL task, data NULL with size > 0). */
MPR_EXTERN int mpr_task_result(mpr_task *task, const void *data, size_t size);

/** Fail the job with a message (printf format; at most 4095 bytes are
 * kept, cut at a character boundary of UTF-8). Returns -1, so that a
 * task can `return mpr_task_fail(task, "...")`. A NULL task: -1, nothing
 * else. */
MPR_EXTERN int mpr_task_fail(mpr_task *task, const char *format, ...)
#if defined(__MINGW32__)
    __attribute__((format(gnu_printf, 2, 3)))
#elif defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/** The job's id (the number the executor gave it when it handed it to
 * this worker, > 0: 1, 2, 3... per worker; 0 for NULL). */
MPR_EXTERN uint64_t mpr_task_id(const mpr_task *task);

/** The context given to mpr_worker_main (NULL for a NULL task). */
MPR_EXTERN void *mpr_task_context(const mpr_task *task);

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_WORKER_H */
