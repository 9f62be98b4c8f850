/**
 * @file mprouter/executor.h
 * @brief Jobs, not pipes: a pool of worker processes with futures.
 *
 * An executor owns N worker processes that it starts itself, hands them
 * jobs (a task name and argument bytes) one at a time (or a few ahead:
 * mpr_executor_options.jobs_ahead), and gives the
 * application a future per job, with the states of traits-futures:
 *
 *     WAITING --(a worker starts it)--> EXECUTING --> COMPLETED | FAILED
 *        |                                  |
 *        | cancel                           | cancel
 *        v                                  v
 *     CANCELLED (at once)              CANCELLING --> CANCELLED
 *                                                 (or COMPLETED / FAILED
 *                                                  if the task ended before
 *                                                  the request reached it)
 *
 * The worker side is <mprouter/worker.h>: a worker program calls
 * mpr_worker_main() with a table of named task functions.
 *
 * DESIGN NOTE. The executor is built only from the public router and
 * sender API: each worker process has one pipe of the application's
 * router. Jobs go to the worker as control messages (mpr_receiver_send:
 * job id, task name, arguments); cancel is the pipe's cancel request
 * (mpr_receiver_cancel with the job id as tag), which a task tests without
 * a system call; the worker's progress, result or failure come back as
 * ordinary messages (job id, kind, bytes), in order. The job protocol is a
 * small binary format of our own, parsed strictly on both sides (fuzzed):
 * a worker that breaks it, or speaks of a job it was not given, is killed
 * and replaced, and only its own job fails. The executor runs on the
 * router's main thread, driven by the event loop; a supervisor thread of
 * its own keeps the timers (start deadline, cancel grace, restart
 * backoff, shutdown deadline), kills and reaps the workers
 * (waitpid(pid, WNOHANG) on its own pids only, never waitpid(-1)), and
 * wakes the main thread through a pingee of the same event loop. A
 * worker's death shows first as its pipe's lost callback (after every
 * message it sent), then as its exit status, and its job fails with the
 * signal name or exit status. All user callbacks run on the main thread,
 * one at a time, never from inside another one of this executor: a
 * callback may call anything here, free its future, submit, shut down or
 * free the executor (freeing is deferred until the executor's code has
 * unwound). Like Qt's QFuture and KCoreAddons' KJob: read result() or
 * error() once the future is finished; there is no blocking wait (the
 * event loop must run).
 *
 * STARTING WORKERS. Three ways (mpr_executor_options.start):
 *   - MPR_START_FORK: fork() and run a C function of the application in
 *     the child (which normally calls mpr_worker_main()). What fork means
 *     for a threaded application (and every application with a router is
 *     one: the router's monitor thread, this executor's supervisor): only
 *     the thread that calls fork() exists in the child; locks held by
 *     other threads at that moment (malloc's arena locks are handled by
 *     the C library, but not those of other libraries, nor mprouter's own
 *     log lock) stay locked for good in the child, and the child's copy of
 *     objects those threads were changing may be half changed. So the
 *     child must run only the worker entry, touch no object of the parent
 *     (the router, this executor, Qt), and never return into the parent's
 *     code: the function's return value is the child's exit status
 *     (_exit, so no atexit handlers and no stdio flush of the parent's
 *     buffers). The child keeps only its standard input (the executor's
 *     pipe), output and error: every other descriptor is closed before
 *     the function runs. RECOMMENDED for threaded programs: MPR_START_EXEC.
 *   - MPR_START_EXEC: run a program (fork + exec in the child, nothing
 *     else before exec but async-signal-safe calls). The pipe's sender
 *     string is written to the program's standard input, never on its
 *     command line or in its environment (both readable by every user in
 *     /proc).
 *   - MPR_START_LAUNCH: a launch template for other hosts, an argv such
 *     as {"ssh", "{host}", "prog", NULL} or {"srun", "-N1", "-w", "{host}",
 *     "prog", NULL}: each "{host}" in it is replaced by the worker's host
 *     (worker i runs on hosts[i % number of hosts], and so does its
 *     replacement); no shell is involved. The sender string goes on the
 *     launcher's standard input (ssh and srun forward it). Workers on
 *     other hosts reach the router over the remote transport: call
 *     mpr_router_set_remote() before mpr_router_start().
 *
 * NO WORKER OUTLIVES THE APPLICATION, even when it is SIGKILLed: a worker
 * exits when its standard input ends (the application holds the only
 * write end: it ends when the application dies, and for a launcher such
 * as ssh the remote end ends with it), when its router is gone
 * (MPR_EPIPE), and on Linux in fork and exec mode at once by the signal of
 * prctl(PR_SET_PDEATHSIG, SIGKILL), set in the child before exec and
 * checked against the race with the parent's death (getppid afterwards).
 * Linux sends that signal when the THREAD that forked ends: workers are
 * forked on the executor's main thread, so keep that thread alive while
 * the executor is (the main thread of a program always is).
 *
 * CRASHES AND RESTARTS. A worker that dies (signal, exit, lost
 * connection, killed by the executor) fails only the job it was running,
 * with the reason (mpr_future_error), and is replaced. Restarts are
 * bounded per worker slot: a START FAILURE is a worker that ended without
 * being asked to before it reported ready (it could not be started, its
 * per-worker initialisation failed, it missed the start deadline, it
 * broke the protocol), or less than healthy_after_s after it did,
 * without having run a job. After max_start_failures of them in a row
 * the slot starts nothing for backoff_s (doubled at each further round,
 * at most 60 s; back to backoff_s once a worker of the slot is healthy),
 * and a warning is logged. While EVERY slot is in that backoff, no job can
 * run: the waiting jobs, and jobs submitted meanwhile, FAIL with
 * MPR_FAILURE_NOT_STARTED and the reason of the last start failure
 * ("no worker could be started: ..."). A worker that dies while it runs a
 * job (a job that crashes it) is not a start failure: it is replaced at
 * once, one replacement per such job.
 *
 * CANCEL. Cooperative: the worker's task sees the request
 * (mpr_task_cancelled, cheap) and returns; the job ends CANCELLED. A task
 * that does not return within cancel_grace_s of the request has its
 * worker killed (SIGKILL; for a launcher, the launcher, whose remote side
 * then sees its input end): its job is CANCELLED, the worker replaced.
 *
 * HOSTILE OR RUNAWAY WORKERS. A worker that breaks the job protocol
 * (bytes that are no message of it, a kind or size it refuses, a message
 * about a job it was not given, a second result: the first one stands)
 * is killed and replaced; only the job it holds fails
 * (MPR_FAILURE_PROTOCOL). What it still had queued is dropped quietly.
 * Progress is not limited in size or rate: a worker that sends faster
 * than the main thread routes is bounded only by the router's queue
 * limit (mpr_router_set_queue_limit; none by default). Without one, its
 * messages pile up in the router's memory and the other workers'
 * messages wait behind them; with one, its sends block and the other
 * jobs go on. Set a limit when workers are not trusted to be modest.
 *
 * SHUTDOWN (mpr_executor_shutdown) is asynchronous: it returns at once,
 * and the event loop must run until the executor reports that it is shut
 * down (its callback, or mpr_executor_state() == MPR_EXECUTOR_SHUT_DOWN);
 * then no worker process, descriptor or thread of the executor is left
 * and every pipe it made is closed, after the last message through it,
 * so the router never warns about them ("unclosed pipes" at its stop, or
 * "discarding message from closed pipe").
 *
 * THREADS: every call in this file is MAIN THREAD ONLY (the thread of the
 * router's event loop), and every callback runs there. A process that
 * inherited an executor through fork() gets MPR_EOWNER from every call
 * (mpr_executor_free frees only its own copy of the memory).
 */
#ifndef MPROUTER_EXECUTOR_H
#define MPROUTER_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include <mprouter/common.h>
#include <mprouter/event_loop.h>
#include <mprouter/router.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An executor (opaque): made by mpr_executor_new. MAIN THREAD ONLY. */
typedef struct mpr_executor mpr_executor;

/** A future (opaque): made by mpr_executor_submit, owned by the caller
 * until mpr_future_free. It is a checked number, not a pointer: a handle
 * already freed, or any value that was never one, gives MPR_ENOENT (or is
 * ignored by mpr_future_free), never a crash. A future outlives its
 * executor: after mpr_executor_free it keeps its final state, result and
 * error until it is freed. */
typedef struct mpr_future mpr_future;

/** The states of a future (traits-futures' states). */
enum mpr_future_state {
    MPR_FUTURE_WAITING = 0,    /**< submitted, not started by a worker yet */
    MPR_FUTURE_EXECUTING = 1,  /**< a worker runs it */
    MPR_FUTURE_CANCELLING = 2, /**< cancel asked while it ran; the task has not ended yet */
    MPR_FUTURE_COMPLETED = 3,  /**< final: the task returned a result (mpr_future_result) */
    MPR_FUTURE_FAILED = 4,     /**< final: it failed, and mpr_future_error says why */
    MPR_FUTURE_CANCELLED = 5   /**< final: it was cancelled (or the executor shut down) */
};

/** Why a FAILED future failed (mpr_future_error). */
enum mpr_failure {
    /** The task itself: its mpr_task_fail() message, "task returned N", or
     * "the worker has no task named X". */
    MPR_FAILURE_TASK = 1,
    /** Its worker died while it ran: "worker (pid N) killed by signal 11
     * (SIGSEGV)", "worker (pid N) exited with status 3", ...; with a
     * launch template "worker (pid N on host H) ...", N the launcher's
     * pid (as in every reason of this executor). */
    MPR_FAILURE_CRASHED = 2,
    /** Its worker's connection was lost and the worker did not end:
     * over a network, not heard from for the router's reconnect window
     * (mpr_router_set_remote_window); the executor killed its launcher
     * (2 s after the router reported the loss, unless it ended by
     * itself). With a launch template the message begins "worker lost
     * over the network" and names the host; the slot's replacement starts
     * at once on the same host (a job that ends its worker is not a start
     * failure: if the host stays unreachable, the replacements' start
     * failures lead to the backoff of CRASHES AND RESTARTS). */
    MPR_FAILURE_LOST = 3,
    /** No worker could be started to run it (see CRASHES AND RESTARTS at
     * the top): the message gives the last start failure. */
    MPR_FAILURE_NOT_STARTED = 4,
    /** Its worker broke the job protocol (garbage, or a message about a
     * job it was not given); the executor killed it. */
    MPR_FAILURE_PROTOCOL = 5
};

/** The state of an executor (mpr_executor_state). */
enum mpr_executor_state {
    MPR_EXECUTOR_RUNNING = 0,       /**< takes jobs */
    MPR_EXECUTOR_SHUTTING_DOWN = 1, /**< mpr_executor_shutdown was called; workers are ending */
    MPR_EXECUTOR_SHUT_DOWN = 2      /**< nothing of it is left but its memory: free it */
};

/** How the executor starts its workers (see STARTING WORKERS above). */
enum mpr_start_mode {
    MPR_START_FORK = 1,  /**< fork() and run options.fork_fn in the child */
    MPR_START_EXEC = 2,  /**< run the program options.argv */
    MPR_START_LAUNCH = 3 /**< run the template options.argv with {host} from options.hosts */
};

/** Options of mpr_executor_new. Fill them with
 * mpr_executor_options_init() first, then change what you need; the
 * strings and arrays are copied by mpr_executor_new. */
typedef struct mpr_executor_options {
    /** sizeof(mpr_executor_options) as the caller was compiled; set by
     * mpr_executor_options_init. Lets the struct grow. */
    size_t size;
    /** Worker processes (1 .. 1024). Default 4. */
    int workers;
    /** MPR_START_FORK, MPR_START_EXEC or MPR_START_LAUNCH. Default
     * MPR_START_EXEC. */
    int start;
    /** MPR_START_FORK: the function the child runs; its return value is
     * the child's exit status. It normally is a call of mpr_worker_main(). */
    int (*fork_fn)(void *arg);
    /** The argument of fork_fn. */
    void *fork_arg;
    /** MPR_START_EXEC: the program and its arguments, NULL-terminated;
     * argv[0] is the program (a name without '/' is looked up in PATH when
     * the executor is made). MPR_START_LAUNCH: the launch template, the
     * same way, each "{host}" in any element replaced by the worker's
     * host. The sender string always goes on standard input. */
    const char *const *argv;
    /** MPR_START_LAUNCH: the hosts, NULL-terminated (at least one);
     * worker i runs on hosts[i % n]. Ignored otherwise. */
    const char *const *hosts;
    /** A worker that has not reported ready (connected, and its
     * initialisation done) this long after it was started is killed, a
     * start failure. < 0 or infinity: no limit. Default 30 s. */
    double start_timeout_s;
    /** A task that has not returned this long after cancel was asked has
     * its worker killed (its job CANCELLED, the worker replaced). 0: kill
     * at once; < 0 or infinity: never kill. Default 5 s. */
    double cancel_grace_s;
    /** Non-zero: keep only the newest progress of a job when the main
     * thread falls behind: a flood of progress costs one progress callback
     * per job per turn of the event loop, always the newest value, and the
     * last one before the job ends is always delivered. Default 0: every
     * progress message is delivered, in order. */
    int newest_progress_only;
    /** Start failures in a row after which a slot backs off (see CRASHES
     * AND RESTARTS). Default 3; at least 1. */
    int max_start_failures;
    /** A worker that has reported ready and lived this long (or finished
     * a job) is healthy: its slot's count of start failures goes back to
     * 0. Default 1 s. */
    double healthy_after_s;
    /** The first backoff of a slot; doubled each time it backs off again,
     * at most 60 s (or backoff_s if larger). Default 5 s. */
    double backoff_s;
    /** 0 .. 14: hand each busy worker up to this many jobs ahead of
     * time, so that it starts the next as soon as one ends, without
     * waiting for the main thread to see that end (many short jobs run
     * two or more times as fast). Jobs are still taken from the queue in
     * order, to idle workers first, then one ahead to each busy worker,
     * then a second, and so on. A job handed ahead stays WAITING until
     * its worker starts it. A cancel makes it CANCELLED at once, as for
     * any WAITING job, and the worker skips it (the request reaches it at
     * the latest with the cancel of any job it holds before that one;
     * only a cancel that comes while the job in front is ending on its own
     * can meet the job already started, as for a job handed to an idle
     * worker: its task then sees the request at once and its outcome is
     * dropped). If its worker ends (crash, kill, grace time) before it
     * started the job, the job goes back to the front of the queue and
     * runs on another worker: it never fails for that worker's end. The
     * price: a job handed ahead waits for the jobs in front of it even if
     * another worker becomes free (choose it for many short jobs, not for
     * a mix with long ones). Default 0: a job is handed only to a worker
     * with nothing to do. (Read only if options->size covers it: 0 for
     * callers compiled before it existed.) */
    int jobs_ahead;
} mpr_executor_options;

/** Fill *options with the defaults (and options->size). ANY THREAD. */
MPR_EXTERN void mpr_executor_options_init(mpr_executor_options *options);

/** Make an executor and start its workers. router must be running (its
 * pipes are made at once and for every replacement); loop must be the
 * event loop the router was made with: the executor makes a pingee of its
 * own on it (to wake the main thread from its supervisor thread), so the
 * loop must outlive the executor. Every worker is started before this
 * returns (fork, or fork + exec: a program that cannot be run is a start
 * failure, seen at once with the reason, "cannot run PROG: ..."); a
 * worker becomes ready when it has connected and run its
 * initialisation. MAIN THREAD.
 * Returns 0 with *out; MPR_EINVAL (NULL argument, options->size too
 * small, workers out of range, an unknown start mode, fork_fn or argv
 * missing for its mode, no hosts for MPR_START_LAUNCH, a NaN time,
 * max_start_failures < 1); MPR_ESTATE (the router is not running);
 * MPR_ENOMEM, or a system error (MPR_EMFILE, ...) with nothing started. */
MPR_EXTERN int mpr_executor_new(mpr_executor **out, mpr_router *router,
                                const mpr_event_loop *loop,
                                const mpr_executor_options *options);

/** Shut down and free. On an executor that is SHUT_DOWN, it only frees
 * memory. Otherwise it is the abrupt way: every worker is killed at once
 * (SIGKILL) and reaped (this waits for that, never for a task), the
 * supervisor thread is joined, the pipes are closed (messages their
 * workers sent that were not routed yet are dropped: the router may warn
 * about them; shut down first to avoid that), and every future not yet
 * final becomes CANCELLED WITHOUT any callback. Futures stay valid (see
 * mpr_future). MAIN THREAD; also from inside a callback of this executor
 * (then it takes effect when the executor's code has unwound: no further
 * callback of it runs). NULL is a no-op. In a forked copy: frees that
 * copy's memory only. */
MPR_EXTERN void mpr_executor_free(mpr_executor *executor);

/** Submit a job: run the task named task (1 .. 255 bytes, no NUL; the
 * names of the worker's table, <mprouter/worker.h>) with size bytes of
 * args (copied; args may be NULL if size is 0). The job waits in a queue
 * (first in, first out) until a worker is idle; a worker runs one job at
 * a time. The new future is WAITING; no callback runs for that state.
 * MAIN THREAD.
 * Returns 0 with *future; MPR_EINVAL (NULL executor, task or future, args
 * NULL with size > 0, a task name empty, longer than 255 bytes or with a
 * NUL); MPR_EMSGSIZE (the job would not fit in one control message:
 * size + name + 13 bytes above MPR_CONTROL_MAX_SIZE); MPR_ESTATE (the
 * executor is shutting down or shut down); MPR_EOWNER (a forked copy);
 * MPR_ENOMEM. */
MPR_EXTERN int mpr_executor_submit(mpr_executor *executor, const char *task, const void *args,
                                   size_t size, mpr_future **future);

/** Begin an orderly shutdown; it returns at once. Every WAITING future
 * becomes CANCELLED now (its callback runs before this returns, unless
 * this is called from inside a callback of this executor: then right
 * after that callback); every EXECUTING one is asked to cancel (it
 * becomes CANCELLING); every worker is asked to exit once its task has
 * ended. When timeout_s has passed (0: at once; < 0 or infinity: never),
 * the workers still alive are killed, and their jobs become CANCELLED.
 * When every worker has ended and every pipe is closed, the supervisor
 * thread is joined, the state becomes MPR_EXECUTOR_SHUT_DOWN and done(arg)
 * runs (if done is not NULL) on the main thread: free the executor then
 * (also from inside done). The event loop must run meanwhile. MAIN THREAD.
 * Returns 0; MPR_ESTATE if it is already shutting down or shut down
 * (nothing changes); MPR_EINVAL (NULL executor, NaN timeout); MPR_EOWNER
 * (a forked copy). */
MPR_EXTERN int mpr_executor_shutdown(mpr_executor *executor, double timeout_s,
                                     void (*done)(void *arg), void *arg);

/** The executor's state (mpr_executor_state), or MPR_EINVAL for NULL,
 * MPR_EOWNER in a forked copy. MAIN THREAD. */
MPR_EXTERN int mpr_executor_state(const mpr_executor *executor);

/** Counters since the executor was made, and its workers now. */
typedef struct mpr_executor_stats {
    uint64_t workers_started;  /**< processes started (replacements included) */
    uint64_t workers_ended;    /**< processes reaped */
    uint64_t workers_killed;   /**< killed by the executor (grace, deadline, protocol, lost, shutdown) */
    uint64_t start_failures;   /**< see CRASHES AND RESTARTS */
    uint64_t backoffs;         /**< times a slot backed off */
    uint64_t protocol_errors;  /**< workers killed for breaking the job protocol */
    uint64_t jobs_submitted;   /**< futures made */
    uint64_t jobs_completed;   /**< futures that became COMPLETED */
    uint64_t jobs_failed;      /**< futures that became FAILED */
    uint64_t jobs_cancelled;   /**< futures that became CANCELLED */
    uint32_t workers_alive;    /**< processes started and not reaped yet */
    uint32_t workers_ready;    /**< workers idle or running a job */
    uint32_t jobs_waiting;     /**< futures WAITING in the queue (not handed to a worker) */
    uint32_t jobs_running;     /**< jobs handed to a worker and not ended */
} mpr_executor_stats;

/** Copy the executor's counters into *out. MAIN THREAD. Returns 0,
 * MPR_EINVAL (NULL) or MPR_EOWNER (a forked copy). */
MPR_EXTERN int mpr_executor_get_stats(const mpr_executor *executor, mpr_executor_stats *out);

/** The name of a state ("WAITING", "EXECUTING", "CANCELLING",
 * "COMPLETED", "FAILED", "CANCELLED"), or "unknown". ANY THREAD; static
 * string. */
MPR_EXTERN const char *mpr_future_state_name(int state);

/** The callback of state changes: state is the new state. Runs on the
 * main thread once per change, in order (WAITING -> EXECUTING ->
 * COMPLETED, ...; a job that ends before its start was seen still goes
 * through EXECUTING). */
typedef void (*mpr_future_state_fn)(void *arg, mpr_future *future, int state);
/** The callback of progress: the bytes of one mpr_task_progress() call of
 * the task (valid only during the call). Runs on the main thread, in the
 * order sent, only while the future is EXECUTING or CANCELLING, and before
 * the callback of its final state. */
typedef void (*mpr_future_progress_fn)(void *arg, mpr_future *future, const void *data,
                                       size_t size);

/** Set (or with NULL, clear) the future's callbacks; they get arg. They
 * run only for changes and progress after this call: set them right after
 * mpr_executor_submit (nothing happens to a future before the main thread
 * returns to the event loop, except through calls of your own such as
 * mpr_future_cancel). A callback may call any function of this file (also
 * mpr_future_free on its own future, and mpr_executor_free). MAIN THREAD.
 * Returns 0 or MPR_ENOENT (not a live future). */
MPR_EXTERN int mpr_future_set_callbacks(mpr_future *future, mpr_future_state_fn on_state,
                                        mpr_future_progress_fn on_progress, void *arg);

/** The future's state (mpr_future_state, >= 0) or MPR_ENOENT. MAIN THREAD. */
MPR_EXTERN int mpr_future_state(const mpr_future *future);

/** Ask to cancel the job. WAITING: CANCELLED at once (it never runs; the
 * one exception, a job already handed to a worker that the request meets
 * as it starts it, is told under jobs_ahead).
 * EXECUTING: CANCELLING at once; the worker's task sees the request, and
 * the job ends CANCELLED, or COMPLETED or FAILED as the task ended if it
 * ended before the request reached it; a task that does not end within
 * the grace time has its worker killed (CANCELLED). The state callback of
 * the change runs before this returns (unless called from inside a
 * callback of this executor: right after that one). MAIN THREAD.
 * Returns 0; MPR_ESTATE if the future is CANCELLING already (a second
 * cancel) or final (COMPLETED, FAILED, CANCELLED): nothing changes;
 * MPR_ENOENT (not a live future). */
MPR_EXTERN int mpr_future_cancel(mpr_future *future);

/** The result of a COMPLETED future: *data (valid until the future is
 * freed; NULL if size is 0) and *size. MAIN THREAD. Returns 0; MPR_ESTATE
 * if it is not COMPLETED (also FAILED or CANCELLED); MPR_EINVAL (data or
 * size NULL); MPR_ENOENT. */
MPR_EXTERN int mpr_future_result(const mpr_future *future, const void **data, size_t *size);

/** Why a FAILED future failed: *message (a NUL-terminated text, valid
 * until the future is freed; message may be NULL). MAIN THREAD. Returns
 * the mpr_failure (> 0); MPR_ESTATE if it is not FAILED; MPR_ENOENT. */
MPR_EXTERN int mpr_future_error(const mpr_future *future, const char **message);

/** The pid of the process that runs or ran the job (for a launch
 * template, the launcher's: ssh's, srun's), or 0 if it has not been handed
 * to a worker. MAIN THREAD. Returns the pid (> 0), 0, or MPR_ENOENT. */
MPR_EXTERN int64_t mpr_future_worker_pid(const mpr_future *future);

/** Free a future. If it is not final yet, the job is cancelled first (as
 * mpr_future_cancel, without callbacks) and its outcome is dropped. No
 * callback of it runs after this. MAIN THREAD; also from inside its own
 * callback. NULL, or a handle already freed: a no-op. */
MPR_EXTERN void mpr_future_free(mpr_future *future);

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_EXECUTOR_H */
