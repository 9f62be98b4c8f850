/*
 * executor.c - the executor and its futures (<mprouter/executor.h>).
 *
 * Everything here runs on the main thread (the router's), except the
 * supervisor (workproc.h), which only keeps an alarm clock and kills and
 * reaps our processes, and wakes us through a pinger of our own pingee.
 *
 * Records:
 *   job     one per submitted job, behind a future handle (a checked
 *           number of the table below). Held by its handle, the waiting
 *           queue, the worker that runs it and pending notifications
 *           (refs); freed with the last of them. Outlives the executor.
 *   worker  one per process started: its pipe, pid, state and job. Lives
 *           until it is reaped AND its pipe is closed (after its BYE or
 *           lost record was routed: nothing can come through it any
 *           more), or the executor is freed.
 *   slot    one per worker the pool should have (options.workers): its
 *           current worker, its host, its count of start failures and its
 *           backoff.
 *
 * A worker's end: its pipe is done (BYE or the lost callback, after every
 * message it sent) and it is reaped (the supervisor). Whichever comes
 * first waits for the other for a while (REAP_WAIT_NS, PIPE_WAIT_NS); then
 * it is concluded: its job's outcome is decided, its slot starts a
 * replacement. A worker concluded before its pipe was done that had been
 * heard from keeps its pipe open, its messages ignored, until the router
 * reports the connection's end, or nothing has come through it for
 * PIPE_WAIT_NS, or DRAIN_WAIT_NS have passed: closing it earlier would
 * make the router warn once for each message still queued ("discarding
 * message from closed pipe"), and a worker killed while it flooded can
 * have millions queued.
 *
 * User callbacks are never called directly: state changes and progress
 * queue notifications, delivered one at a time when the outermost call
 * into the executor unwinds (leave()), so a callback can call anything,
 * and an executor freed inside one is freed after the last callback
 * returned (free_requested).
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/executor.h>

#include "base.h"
#include "job.h"
#include "workproc.h"

#define REAP_WAIT_NS 2000000000LL /* pipe done, process still there: then kill */
#define PIPE_WAIT_NS 2000000000LL /* reaped, pipe not done: then conclude */
#define DRAIN_WAIT_NS 60000000000LL /* concluded, pipe not done: then close it */
#define BACKOFF_MAX_S 60.0
#define WHY_SIZE 320

enum wstate { W_STARTING, W_IDLE, W_BUSY, W_ENDING };
enum kill_reason { K_NONE, K_START_TIMEOUT, K_GRACE, K_PROTOCOL, K_LOST, K_NO_EXIT, K_SHUTDOWN, K_SEND };

struct job;
struct worker;

struct slot {
    int index;
    const char *host;       /* LAUNCH: its host */
    struct worker *w;       /* its current worker, or NULL */
    int fails;              /* start failures in a row */
    int backing_off;
    int64_t backoff_until;
    double backoff_s;       /* the next backoff */
    char last_why[WHY_SIZE];
};

struct worker {
    mpr_executor *ex;
    struct slot *slot; /* NULL once concluded */
    struct worker *next;
    int64_t pid;
    mpr_receiver *receiver; /* NULL once the pipe is closed */
    enum wstate state;
    int pipe_done, bye, lost;
    int reaped, status;
    int killed;
    enum kill_reason kill_reason;
    int asked_exit;
    int healthy;
    int heard;         /* anything came through its pipe */
    char why[WHY_SIZE]; /* why it failed, if it did: first reason */
    struct job *job;   /* the job handed to it */
    struct job *ahead[MPR__JOB_AHEAD_MAX]; /* jobs_ahead: to run after job, in order */
    int nahead;
    uint64_t next_seq; /* the id of the next job handed to it (job.h) */
    int job_started;
    int64_t started_ns, ready_ns;
    int64_t grace_ns;    /* kill at (0: none) */
    int64_t done_ns;     /* pipe done or reaped, whichever came first */
    int64_t drain_ns;    /* concluded, pipe left open: close it at (0: none) */
    int64_t quiet_ns;    /* ... or PIPE_WAIT_NS after this, its last message */
    int jobs_done;
};

struct note {
    struct note *next;
    struct job *job; /* NULL: the shutdown's done callback */
    int progress;
    int state;
    unsigned char *data;
    size_t size;
};

struct job {
    uint64_t id;       /* given again each time it is handed to a worker (job.h) */
    mpr_executor *ex;  /* NULL once the executor is freed */
    mpr_future *handle; /* NULL once freed by the user */
    int refs;
    int state;
    int failure;
    char *error;
    unsigned char *result;
    size_t result_size;
    unsigned char *run; /* the RUN message, until it is handed over */
    size_t run_size;
    struct job *qprev, *qnext; /* the waiting queue */
    int queued;
    struct job *aprev, *anext; /* every job of the executor */
    struct worker *worker;
    int64_t pid;
    mpr_future_state_fn on_state;
    mpr_future_progress_fn on_progress;
    void *cb_arg;
    /* newest_progress_only */
    unsigned char *progress;
    size_t progress_size, progress_cap;
    int dirty;    /* newer progress than delivered */
    int in_dirty; /* in the executor's dirty list (holds a ref) */
    struct job *dirty_next;
};

struct mpr_executor {
    uint64_t token;
    mpr_router *router;
    const mpr_event_loop *loop;
    mpr_pingee *pingee;
    mpr_pinger *sup_pinger;  /* used by the supervisor thread */
    mpr_pinger *self_pinger; /* used by the main thread */
    mpr__sup *sup;
    int state;
    /* options */
    int nslots;
    int mode;
    int (*fork_fn)(void *);
    void *fork_arg;
    char *path;     /* EXEC, LAUNCH: argv[0] as found */
    char **argv;    /* EXEC: as given; LAUNCH: the template */
    int argc;
    char **hosts;
    int nhosts;
    double start_timeout_s, grace_s, healthy_s, backoff_s;
    int newest_only, max_fails, jobs_ahead;
    /* state */
    struct slot *slots;
    struct worker *workers;
    struct job *qhead, *qtail;
    struct job *all;
    struct job *dirty_head, *dirty_tail;
    struct note *nhead, *ntail;
    uint64_t next_id;
    int depth, draining, free_requested, self_pinged;
    int64_t shutdown_deadline;
    void (*done_fn)(void *);
    void *done_arg;
    mpr_executor_stats stats;
};

/* ------------------------------------------------------------------ */
/* future handles: a slot of one table for the process, and a          */
/* generation (as the router's receiver handles, handle.c)              */

#define FH_SLOT_BITS (sizeof(uintptr_t) >= 8 ? 32u : 20u)
#define FH_SLOT_MASK (((uintptr_t)1 << FH_SLOT_BITS) - 1)
#define FH_GEN_MASK (UINTPTR_MAX >> FH_SLOT_BITS)

struct fh_entry {
    struct job *job;
    uintptr_t gen;
    size_t next_free;
};

static mpr__mutex fh_lock = MPR__MUTEX_INIT;
static struct fh_entry *fh_table;
static size_t fh_cap, fh_free;

static int fh_new(struct job *job, mpr_future **out)
{
    mpr__mutex_lock(&fh_lock);
    if (!fh_free) {
        size_t n = fh_cap ? fh_cap * 2 : 256;
        struct fh_entry *t = n <= FH_SLOT_MASK - 1 ? realloc(fh_table, n * sizeof *t) : NULL;
        if (!t) {
            mpr__mutex_unlock(&fh_lock);
            return MPR_ENOMEM;
        }
        for (size_t i = fh_cap; i < n; i++) {
            t[i].job = NULL;
            t[i].gen = 0;
            t[i].next_free = i + 1 < n ? i + 2 : 0;
        }
        fh_free = fh_cap + 1;
        fh_table = t;
        fh_cap = n;
    }
    size_t slot = fh_free - 1;
    struct fh_entry *e = &fh_table[slot];
    fh_free = e->next_free;
    e->job = job;
    e->gen = (e->gen + 1) & FH_GEN_MASK;
    *out = (mpr_future *)(e->gen << FH_SLOT_BITS | (uintptr_t)(slot + 1));
    mpr__mutex_unlock(&fh_lock);
    return 0;
}

static struct job *fh_get(const mpr_future *h)
{
    uintptr_t v = (uintptr_t)h;
    size_t slot = (size_t)(v & FH_SLOT_MASK);
    struct job *job = NULL;
    mpr__mutex_lock(&fh_lock);
    if (slot >= 1 && slot <= fh_cap) {
        struct fh_entry *e = &fh_table[slot - 1];
        if (e->job && e->gen == v >> FH_SLOT_BITS)
            job = e->job;
    }
    mpr__mutex_unlock(&fh_lock);
    return job;
}

static void fh_free_handle(const mpr_future *h)
{
    uintptr_t v = (uintptr_t)h;
    size_t slot = (size_t)(v & FH_SLOT_MASK);
    mpr__mutex_lock(&fh_lock);
    if (slot >= 1 && slot <= fh_cap) {
        struct fh_entry *e = &fh_table[slot - 1];
        if (e->job && e->gen == v >> FH_SLOT_BITS) {
            e->job = NULL;
            e->next_free = fh_free;
            fh_free = slot;
        }
    }
    mpr__mutex_unlock(&fh_lock);
}

/* ------------------------------------------------------------------ */
/* jobs                                                                 */

static int is_final(int state)
{
    return state == MPR_FUTURE_COMPLETED || state == MPR_FUTURE_FAILED ||
           state == MPR_FUTURE_CANCELLED;
}

static void job_unref(struct job *job)
{
    if (--job->refs > 0)
        return;
    if (job->ex) {
        mpr_executor *ex = job->ex;
        if (job->aprev)
            job->aprev->anext = job->anext;
        else
            ex->all = job->anext;
        if (job->anext)
            job->anext->aprev = job->aprev;
    }
    free(job->error);
    free(job->result);
    free(job->run);
    free(job->progress);
    free(job);
}

static void queue_remove(mpr_executor *ex, struct job *job)
{
    if (!job->queued)
        return;
    if (job->qprev)
        job->qprev->qnext = job->qnext;
    else
        ex->qhead = job->qnext;
    if (job->qnext)
        job->qnext->qprev = job->qprev;
    else
        ex->qtail = job->qprev;
    job->qprev = job->qnext = NULL;
    job->queued = 0;
    ex->stats.jobs_waiting--;
    job_unref(job);
}

/* Queue a notification (the job's callbacks run at leave()). */
static void note_push(mpr_executor *ex, struct job *job, int progress, int state,
                      unsigned char *data, size_t size)
{
    struct note *n = calloc(1, sizeof *n);
    if (!n) {
        free(data);
        return; /* a callback lost for want of memory; the state itself is right */
    }
    n->job = job;
    n->progress = progress;
    n->state = state;
    n->data = data;
    n->size = size;
    if (job)
        job->refs++;
    if (ex->ntail)
        ex->ntail->next = n;
    else
        ex->nhead = n;
    ex->ntail = n;
}

static int wants_callbacks(const struct job *job)
{
    return job->handle && (job->on_state || job->on_progress);
}

static void set_state(mpr_executor *ex, struct job *job, int state)
{
    job->state = state;
    if (state == MPR_FUTURE_COMPLETED)
        ex->stats.jobs_completed++;
    else if (state == MPR_FUTURE_FAILED)
        ex->stats.jobs_failed++;
    else if (state == MPR_FUTURE_CANCELLED)
        ex->stats.jobs_cancelled++;
    if (wants_callbacks(job))
        note_push(ex, job, 0, state, NULL, 0);
}

/* newest_progress_only: deliver the job's kept progress now. */
static void flush_progress(mpr_executor *ex, struct job *job)
{
    if (!job->dirty)
        return;
    job->dirty = 0; /* it may stay in the dirty list, with nothing to deliver */
    if (wants_callbacks(job)) {
        unsigned char *copy = job->progress_size ? malloc(job->progress_size) : NULL;
        if (job->progress_size && !copy)
            return;
        if (copy)
            memcpy(copy, job->progress, job->progress_size);
        note_push(ex, job, 1, 0, copy, job->progress_size);
    }
}

static void finish(mpr_executor *ex, struct job *job, int state, int failure, const char *error)
{
    if (is_final(job->state))
        return;
    flush_progress(ex, job);
    if (job->state == MPR_FUTURE_WAITING && job->worker && state != MPR_FUTURE_CANCELLED)
        set_state(ex, job, MPR_FUTURE_EXECUTING); /* it did start */
    if (state == MPR_FUTURE_FAILED) {
        job->failure = failure;
        job->error = strdup(error ? error : "failed");
    }
    set_state(ex, job, state);
}

/* ------------------------------------------------------------------ */
/* entering and leaving: notifications, deferred free                   */

static void executor_release(mpr_executor *ex);

static void enter(mpr_executor *ex)
{
    ex->depth++;
}

static void deliver(mpr_executor *ex)
{
    ex->draining = 1;
    while (ex->nhead && !ex->free_requested) {
        struct note *n = ex->nhead;
        ex->nhead = n->next;
        if (!ex->nhead)
            ex->ntail = NULL;
        if (!n->job) {
            if (ex->done_fn)
                ex->done_fn(ex->done_arg);
        } else if (n->job->handle) {
            struct job *job = n->job;
            if (n->progress) {
                if (job->on_progress)
                    job->on_progress(job->cb_arg, job->handle, n->data, n->size);
            } else if (job->on_state) {
                job->on_state(job->cb_arg, job->handle, n->state);
            }
        }
        if (n->job)
            job_unref(n->job);
        free(n->data);
        free(n);
    }
    ex->draining = 0;
}

static void tidy(mpr_executor *ex);

static void leave(mpr_executor *ex)
{
    if (ex->depth == 1 && !ex->draining) {
        tidy(ex);
        deliver(ex);
    }
    if (--ex->depth == 0 && ex->free_requested)
        executor_release(ex);
}

/* Wake our own on_ping later (main thread). */
static void self_ping(mpr_executor *ex)
{
    if (!ex->self_pinged && ex->self_pinger) {
        ex->self_pinged = 1;
        ex->loop->pinger_ping(ex->self_pinger);
    }
}

/* ------------------------------------------------------------------ */
/* workers                                                              */

static int cancelled_or_cancelling(const struct job *job)
{
    return job && (job->state == MPR_FUTURE_CANCELLING || job->state == MPR_FUTURE_CANCELLED);
}

/* Tell the worker which of the jobs it holds are cancelled: one tag (the
 * pipe keeps the newest) with the set of them (job.h). Each tag names
 * every cancelled job it holds (their ids are consecutive, the oldest
 * first), so a worker that sees only the newest misses nothing. */
static void send_cancel_word(struct worker *w)
{
    if (w->killed || !w->receiver || (!w->job && !w->nahead))
        return;
    uint64_t base = w->job ? w->job->id : w->ahead[0]->id;
    uint32_t bits = 0;
    if (cancelled_or_cancelling(w->job))
        bits |= 1;
    for (int i = 0; i < w->nahead; i++)
        if (w->ahead[i]->state == MPR_FUTURE_CANCELLED)
            bits |= (uint32_t)1 << (w->ahead[i]->id - base);
    if (bits)
        mpr_receiver_cancel(w->receiver, mpr__job_cancel_tag(base, bits));
}

static void start_grace(mpr_executor *ex, struct worker *w);

static void on_message(void *arg, const void *data, size_t size);
static void on_lost(void *arg);
static void refill(mpr_executor *ex);
static void dispatch(mpr_executor *ex);
static void update_alarm(mpr_executor *ex);
static void check_pool(mpr_executor *ex);
static void check_shutdown(mpr_executor *ex);

static int64_t secs_ns(double s)
{
    return (int64_t)(s * 1e9);
}

static void set_wstate(struct worker *w, enum wstate state)
{
    int was = w->state == W_IDLE || w->state == W_BUSY;
    int is = state == W_IDLE || state == W_BUSY;
    if (was && !is)
        w->ex->stats.workers_ready--;
    else if (is && !was)
        w->ex->stats.workers_ready++;
    w->state = state;
}

static void kill_worker(struct worker *w, enum kill_reason reason, const char *why)
{
    if (w->killed)
        return;
    w->killed = 1;
    w->kill_reason = reason;
    set_wstate(w, W_ENDING);
    if (why && !w->why[0])
        snprintf(w->why, sizeof w->why, "%s", why);
    w->ex->stats.workers_killed++;
    if (w->pid > 0 && !w->reaped)
        mpr__sup_kill(w->ex->sup, w->pid);
}

static void close_pipe(struct worker *w)
{
    if (!w->receiver)
        return;
    mpr_receiver_set_callback(w->receiver, NULL, NULL);
    mpr_receiver_set_lost_callback(w->receiver, NULL, NULL);
    mpr_router_close_pipe(w->ex->router, w->receiver);
    w->receiver = NULL;
}

/* Count a start failure of the slot; back off after max_fails in a row. */
static void start_failure(mpr_executor *ex, struct slot *slot, const char *why)
{
    ex->stats.start_failures++;
    snprintf(slot->last_why, sizeof slot->last_why, "%s", why);
    if (++slot->fails < ex->max_fails)
        return;
    slot->backing_off = 1;
    slot->backoff_until = mpr__now_ns() + secs_ns(slot->backoff_s);
    ex->stats.backoffs++;
    mpr__warn("executor %p: worker %d failed to start %d times in a row (the last: %s); "
              "trying again in %.3g s",
              (void *)ex, slot->index, slot->fails, why, slot->backoff_s);
    double limit = ex->backoff_s > BACKOFF_MAX_S ? ex->backoff_s : BACKOFF_MAX_S;
    slot->backoff_s = slot->backoff_s * 2 > limit ? limit : slot->backoff_s * 2;
}

/* argv of a launch for host: each "{host}" replaced. */
static char **launch_argv(mpr_executor *ex, const char *host)
{
    char **v = calloc((size_t)ex->argc + 1, sizeof *v);
    if (!v)
        return NULL;
    size_t hl = strlen(host);
    for (int i = 0; i < ex->argc; i++) {
        const char *a = ex->argv[i];
        size_t n = 0;
        for (const char *p = a; (p = strstr(p, "{host}")); p += 6)
            n++;
        size_t len = strlen(a) + n * hl + 1;
        char *s = malloc(len), *o = s;
        if (!s)
            goto fail;
        for (const char *p = a; *p;) {
            if (!strncmp(p, "{host}", 6)) {
                memcpy(o, host, hl);
                o += hl;
                p += 6;
            } else {
                *o++ = *p++;
            }
        }
        *o = 0;
        v[i] = s;
    }
    return v;
fail:
    for (int i = 0; i < ex->argc; i++)
        free(v[i]);
    free(v);
    return NULL;
}

static void free_argv(char **v, int n)
{
    if (!v)
        return;
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Start a worker in slot. 0, or a start failure already counted. */
static int spawn(mpr_executor *ex, struct slot *slot)
{
    char why[WHY_SIZE];
    mpr_sender *sender = NULL;
    mpr_receiver *receiver = NULL;
    int rc = mpr_router_pipe(ex->router, &sender, &receiver);
    if (rc < 0) {
        snprintf(why, sizeof why, "cannot make a pipe: %s", mpr_strerror(rc));
        start_failure(ex, slot, why);
        return rc;
    }
    char line[4096];
    rc = mpr_sender_to_string(sender, line, sizeof line - 1);
    mpr_sender_free(sender);
    if (rc < 0 || (size_t)rc >= sizeof line - 1) {
        mpr_router_close_pipe(ex->router, receiver);
        snprintf(why, sizeof why, "cannot write the sender string: %s",
                 mpr_strerror(rc < 0 ? rc : MPR_EMSGSIZE));
        start_failure(ex, slot, why);
        return rc < 0 ? rc : MPR_EMSGSIZE;
    }
    size_t len = (size_t)rc;
    line[len++] = '\n';
    struct worker *w = calloc(1, sizeof *w);
    if (!w) {
        mpr__wipe(line, sizeof line);
        mpr_router_close_pipe(ex->router, receiver);
        start_failure(ex, slot, "out of memory");
        return MPR_ENOMEM;
    }
    w->ex = ex;
    w->slot = slot;
    w->receiver = receiver;
    w->next_seq = 1;
    mpr__spawn spec;
    memset(&spec, 0, sizeof spec);
    char **argv = NULL;
    if (ex->mode == MPR_START_FORK) {
        spec.fn = ex->fork_fn;
        spec.arg = ex->fork_arg;
    } else {
        argv = ex->mode == MPR_START_LAUNCH ? launch_argv(ex, slot->host) : ex->argv;
        spec.path = ex->path;
        spec.argv = argv;
    }
    mpr__fd in_fd = MPR__NO_FD;
    why[0] = 0;
    if (!spec.fn && !argv)
        rc = MPR_ENOMEM, snprintf(why, sizeof why, "out of memory");
    else
        rc = mpr__proc_spawn(&spec, line, len, &w->pid, &in_fd, why, sizeof why);
    mpr__wipe(line, sizeof line);
    if (argv != ex->argv)
        free_argv(argv, ex->argc);
    if (rc == 0)
        rc = mpr__sup_watch(ex->sup, w->pid, in_fd); /* kills and reaps it if it fails */
    if (rc < 0) {
        /* Nothing ran our code: nothing can come through the pipe. */
        mpr_router_close_pipe(ex->router, receiver);
        if (!why[0])
            snprintf(why, sizeof why, "cannot watch the process: %s", mpr_strerror(rc));
        mpr__warn("executor %p: worker %d: %s", (void *)ex, slot->index, why);
        free(w);
        start_failure(ex, slot, why);
        return rc;
    }
    mpr_receiver_set_callback(receiver, on_message, w);
    mpr_receiver_set_lost_callback(receiver, on_lost, w);
    w->state = W_STARTING;
    w->started_ns = mpr__now_ns();
    w->next = ex->workers;
    ex->workers = w;
    slot->w = w;
    ex->stats.workers_started++;
    ex->stats.workers_alive++;
    return 0;
}

/* Is this end a start failure (executor.h, CRASHES AND RESTARTS)? */
static int counts_as_start_failure(const struct worker *w, int had_job)
{
    if (w->asked_exit || w->kill_reason == K_GRACE || w->kill_reason == K_SHUTDOWN)
        return 0;
    if (had_job || w->jobs_done || w->healthy)
        return 0;
    return 1;
}

/* Where a launched worker runs: " on host H" (LAUNCH), else "". */
static const char *host_of(const struct worker *w, char *buf, size_t size)
{
    if (w->ex->mode != MPR_START_LAUNCH || !w->slot || !w->slot->host)
        return "";
    snprintf(buf, size, " on host %.64s", w->slot->host);
    return buf;
}

/* The text of how a worker ended: "worker (pid N) killed by ...", and
 * for a launch template "worker (pid N on host H) exited with ...", the
 * pid being the launcher's. */
static void describe_end(const struct worker *w, char *buf, size_t size)
{
    char how[128], where[80];
    if (w->reaped)
        mpr__proc_describe(w->status, how, sizeof how);
    else
        snprintf(how, sizeof how, "was not reaped");
    const char *host = host_of(w, where, sizeof where);
    if (w->why[0])
        snprintf(buf, size, "worker (pid %lld%s) %s; %s", (long long)w->pid, host, how, w->why);
    else
        snprintf(buf, size, "worker (pid %lld%s) %s", (long long)w->pid, host, how);
}

/* The worker has ended (reaped, pipe done or given up on): decide its
 * job, free its slot, drop it once its pipe is closed. */
static void conclude(mpr_executor *ex, struct worker *w)
{
    if (!w->slot)
        return;
    struct slot *slot = w->slot;
    struct job *job = w->job;
    char text[WHY_SIZE + 256];
    describe_end(w, text, sizeof text);
    if (job) {
        if (!is_final(job->state)) {
            if (job->state == MPR_FUTURE_CANCELLING || w->kill_reason == K_GRACE ||
                w->kill_reason == K_SHUTDOWN) {
                finish(ex, job, MPR_FUTURE_CANCELLED, 0, NULL);
            } else if (w->kill_reason == K_PROTOCOL) {
                finish(ex, job, MPR_FUTURE_FAILED, MPR_FAILURE_PROTOCOL, text);
            } else if ((w->lost && w->kill_reason == K_LOST) ||
                       (w->lost && mpr__proc_exit_code(w->status) == 4)) {
                /* Over a network (a launch template): the router heard
                 * nothing from it for its reconnect window, and either
                 * we killed its launcher or it gave up by itself (exit
                 * status 4: its router gone). */
                char lost[sizeof text + 160];
                if (ex->mode == MPR_START_LAUNCH)
                    snprintf(lost, sizeof lost,
                             "worker lost over the network: not heard from for the router's "
                             "reconnect window%s (%s)",
                             w->kill_reason == K_LOST ? "; its launcher was killed" : "", text);
                else if (w->kill_reason == K_LOST)
                    snprintf(lost, sizeof lost,
                             "worker lost: its connection ended and it did not end (%s)", text);
                else
                    snprintf(lost, sizeof lost, "%s", text);
                finish(ex, job, MPR_FUTURE_FAILED, MPR_FAILURE_LOST, lost);
            } else {
                finish(ex, job, MPR_FUTURE_FAILED, MPR_FAILURE_CRASHED, text);
            }
        }
        job->worker = NULL;
        w->job = NULL;
        ex->stats.jobs_running--;
        job_unref(job);
    }
    while (w->nahead > 0) {
        /* Never started: back to the front of the queue, in their order
         * (with the worker's reference), unless cancelled meanwhile. */
        struct job *next = w->ahead[--w->nahead];
        next->worker = NULL;
        next->pid = 0;
        ex->stats.jobs_running--;
        if (is_final(next->state) || ex->state != MPR_EXECUTOR_RUNNING) {
            if (!is_final(next->state))
                finish(ex, next, MPR_FUTURE_CANCELLED, 0, NULL);
            job_unref(next);
        } else {
            next->queued = 1;
            next->qprev = NULL;
            next->qnext = ex->qhead;
            if (ex->qhead)
                ex->qhead->qprev = next;
            else
                ex->qtail = next;
            ex->qhead = next;
            ex->stats.jobs_waiting++;
        }
    }
    set_wstate(w, W_ENDING);
    if (counts_as_start_failure(w, job != NULL))
        start_failure(ex, slot, text);
    else if (ex->state == MPR_EXECUTOR_RUNNING && !w->asked_exit && w->kill_reason != K_GRACE)
        mpr__warn("executor %p: %s; starting another", (void *)ex, text);
    slot->w = NULL;
    w->slot = NULL;
    if (!w->pipe_done && w->receiver) {
        /* Given up on (PIPE_WAIT_NS passed). Heard from: its connection's
         * end comes after what it sent; till then its messages are
         * ignored (on_message). */
        if (w->heard) {
            w->quiet_ns = mpr__now_ns();
            w->drain_ns = w->quiet_ns + DRAIN_WAIT_NS;
        } else {
            close_pipe(w);
        }
    }
    refill(ex);
    dispatch(ex);
    check_pool(ex);
}

/* Free the records of workers that are concluded and done with. */
static void sweep_workers(mpr_executor *ex)
{
    for (struct worker **pp = &ex->workers; *pp;) {
        struct worker *w = *pp;
        if (!w->slot && w->reaped && !w->receiver) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

/* Whatever the worker's end is waiting for. */
static void progress_end(mpr_executor *ex, struct worker *w)
{
    if (!w->slot)
        return;
    int64_t now = mpr__now_ns();
    if (w->reaped && w->pipe_done) {
        conclude(ex, w);
        return;
    }
    if (!w->done_ns)
        w->done_ns = now;
    if (w->pipe_done && !w->reaped) {
        mpr__sup_expect(ex->sup, w->pid);
        if (now - w->done_ns >= REAP_WAIT_NS)
            kill_worker(w, w->lost && !w->bye ? K_LOST : K_NO_EXIT,
                        w->lost ? NULL : "it did not exit after its last message");
    } else if (w->reaped && !w->pipe_done) {
        /* Nothing was ever heard: nothing is on its way either (our
         * code never connected), or only a last few messages. */
        if (now - w->done_ns >= (w->heard ? PIPE_WAIT_NS : PIPE_WAIT_NS / 4))
            conclude(ex, w);
    }
}

static void pipe_done(mpr_executor *ex, struct worker *w)
{
    w->pipe_done = 1;
    close_pipe(w);
    if (w->slot)
        set_wstate(w, W_ENDING); /* no new job for it */
    progress_end(ex, w);
}

/* The worker broke the protocol: kill it; its job fails. */
static void violation(mpr_executor *ex, struct worker *w, const char *what)
{
    char why[WHY_SIZE];
    snprintf(why, sizeof why, "it broke the job protocol: %s", what);
    mpr__warn("executor %p: worker (pid %lld) %s; killing it", (void *)ex, (long long)w->pid, why);
    ex->stats.protocol_errors++;
    kill_worker(w, K_PROTOCOL, why);
}

/* The job in hand ended (RESULT, FAILED, CANCELLED from the worker). */
static void job_ended(mpr_executor *ex, struct worker *w, const mpr__job_msg *m)
{
    struct job *job = w->job;
    if (!is_final(job->state)) {
        if (m->kind == MPR__JOB_RESULT) {
            unsigned char *copy = m->size ? malloc(m->size) : NULL;
            if (m->size && !copy) {
                finish(ex, job, MPR_FUTURE_FAILED, MPR_FAILURE_TASK,
                       "out of memory for the result");
            } else {
                if (copy)
                    memcpy(copy, m->data, m->size);
                job->result = copy;
                job->result_size = m->size;
                finish(ex, job, MPR_FUTURE_COMPLETED, 0, NULL);
            }
        } else if (m->kind == MPR__JOB_FAILED) {
            char *text = malloc(m->size + 1);
            if (text) {
                memcpy(text, m->data, m->size);
                text[m->size] = 0;
            }
            finish(ex, job, MPR_FUTURE_FAILED, MPR_FAILURE_TASK, text ? text : "failed");
            free(text);
        } else if (job->state == MPR_FUTURE_CANCELLING) {
            finish(ex, job, MPR_FUTURE_CANCELLED, 0, NULL);
        } else {
            violation(ex, w, "CANCELLED for a job nobody cancelled");
            return;
        }
    }
    job->worker = NULL;
    w->job = NULL;
    w->job_started = 0;
    w->grace_ns = 0;
    w->jobs_done++;
    ex->stats.jobs_running--;
    job_unref(job);
    if (w->slot && !w->healthy) {
        w->healthy = 1;
        w->slot->fails = 0;
        w->slot->backoff_s = ex->backoff_s;
    }
    if (w->nahead > 0) {
        /* The worker goes on with the next by itself. */
        job = w->ahead[0];
        w->nahead--;
        memmove(w->ahead, w->ahead + 1, (size_t)w->nahead * sizeof w->ahead[0]);
        w->job = job;
        job->pid = w->pid;
        free(job->run);
        job->run = NULL;
        if (job->state == MPR_FUTURE_CANCELLED)
            start_grace(ex, w); /* it skips it, or stops at once */
    } else if (w->state == W_BUSY) {
        set_wstate(w, W_IDLE);
    }
    dispatch(ex);
}

static void on_message(void *arg, const void *data, size_t size)
{
    struct worker *w = arg;
    mpr_executor *ex = w->ex;
    enter(ex);
    w->heard = 1;
    mpr__job_msg m;
    const char *why = NULL;
    if (w->killed || w->pipe_done || !w->slot) {
        /* Given up on: nothing it says counts, but its BYE still says
         * that nothing more comes (the router reports no lost sender
         * after a clean stop): a worker killed at the shutdown's
         * deadline has often just answered EXIT. */
        if (w->drain_ns)
            w->quiet_ns = mpr__now_ns();
        if (!w->pipe_done && w->receiver && mpr__job_parse_worker(data, size, &m, NULL) == 0 &&
            m.kind == MPR__JOB_BYE) {
            w->bye = 1;
            pipe_done(ex, w);
        }
        goto out;
    }
    if (mpr__job_parse_worker(data, size, &m, &why) < 0) {
        char what[128];
        snprintf(what, sizeof what, "%zu bytes of garbage (%s)", size, why);
        violation(ex, w, what);
        goto out;
    }
    struct job *job = w->job;
    int for_job = m.job != 0;
    if (for_job && (!job || job->id != m.job)) {
        char what[128];
        snprintf(what, sizeof what, "a message about job %llu, which it was not given",
                 (unsigned long long)m.job);
        violation(ex, w, what);
        goto out;
    }
    switch (m.kind) {
    case MPR__JOB_READY:
        if (w->state != W_STARTING || m.version != MPR__JOB_VERSION) {
            violation(ex, w, w->state != W_STARTING ? "READY twice" : "another protocol version");
            break;
        }
        set_wstate(w, W_IDLE);
        w->ready_ns = mpr__now_ns();
        dispatch(ex);
        break;
    case MPR__JOB_INIT_FAILED:
        if (w->state != W_STARTING) {
            violation(ex, w, "INIT_FAILED after READY");
            break;
        }
        snprintf(w->why, sizeof w->why, "%.*s", (int)m.size, (const char *)m.data);
        break;
    case MPR__JOB_STARTED:
        if (w->job_started) {
            violation(ex, w, "STARTED twice");
            break;
        }
        w->job_started = 1;
        if (job->state == MPR_FUTURE_WAITING)
            set_state(ex, job, MPR_FUTURE_EXECUTING);
        break;
    case MPR__JOB_PROGRESS:
        if (!w->job_started) {
            violation(ex, w, "PROGRESS before STARTED");
            break;
        }
        if (job->state != MPR_FUTURE_EXECUTING && job->state != MPR_FUTURE_CANCELLING)
            break;
        if (!wants_callbacks(job) || !job->on_progress)
            break;
        if (ex->newest_only) {
            if (m.size > job->progress_cap) {
                unsigned char *p = realloc(job->progress, m.size);
                if (!p)
                    break;
                job->progress = p;
                job->progress_cap = m.size;
            }
            if (m.size)
                memcpy(job->progress, m.data, m.size);
            job->progress_size = m.size;
            job->dirty = 1;
            if (!job->in_dirty) {
                job->in_dirty = 1;
                job->refs++;
                job->dirty_next = NULL;
                if (ex->dirty_tail)
                    ex->dirty_tail->dirty_next = job;
                else
                    ex->dirty_head = job;
                ex->dirty_tail = job;
                self_ping(ex);
            }
        } else {
            unsigned char *copy = m.size ? malloc(m.size) : NULL;
            if (m.size && !copy)
                break;
            if (copy)
                memcpy(copy, m.data, m.size);
            note_push(ex, job, 1, 0, copy, m.size);
        }
        break;
    case MPR__JOB_RESULT:
    case MPR__JOB_FAILED:
    case MPR__JOB_CANCELLED:
        job_ended(ex, w, &m);
        break;
    case MPR__JOB_BYE:
        if (job) {
            violation(ex, w, "BYE in the middle of a job");
            break;
        }
        w->bye = 1;
        pipe_done(ex, w);
        break;
    }
out:
    leave(ex);
}

static void on_lost(void *arg)
{
    struct worker *w = arg;
    mpr_executor *ex = w->ex;
    enter(ex);
    w->lost = 1;
    pipe_done(ex, w);
    leave(ex);
}

/* Start workers in the empty slots that may. */
static void refill(mpr_executor *ex)
{
    if (ex->state != MPR_EXECUTOR_RUNNING || ex->free_requested)
        return;
    for (int i = 0; i < ex->nslots; i++) {
        struct slot *slot = &ex->slots[i];
        /* Bounded: each failed spawn counts, and max_fails of them in a
         * row put the slot into its backoff. */
        while (!slot->w && !slot->backing_off && spawn(ex, slot) < 0) {
        }
    }
}

/* Hand the first waiting job to w, as its job or ahead of it. 0, or
 * < 0: the queue stays as it was (MPR_EAGAIN / MPR_ENOMEM: try again at
 * the next event; else the worker is killed). */
static int hand(mpr_executor *ex, struct worker *w, int ahead)
{
    struct job *job = ex->qhead;
    /* A new id for each handing: a worker's are consecutive (job.h). */
    uint64_t id = w->next_seq;
    mpr__job_put_header(job->run, MPR__JOB_RUN, id);
    int rc = mpr_receiver_send(w->receiver, job->run, job->run_size);
    if (rc == MPR_ENOMEM || rc == MPR_EAGAIN)
        return rc;
    if (rc < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot hand it a job: %s", mpr_strerror(rc));
        kill_worker(w, K_SEND, why);
        return rc;
    }
    job->id = id;
    w->next_seq++;
    job->refs++; /* the worker's */
    queue_remove(ex, job);
    job->worker = w;
    ex->stats.jobs_running++;
    if (ahead) {
        w->ahead[w->nahead++] = job; /* its RUN kept: it may go back to the queue */
        return 0;
    }
    free(job->run);
    job->run = NULL;
    job->pid = w->pid;
    w->job = job;
    w->job_started = 0;
    set_wstate(w, W_BUSY);
    return 0;
}

/* Hand waiting jobs to idle workers, then (jobs_ahead) ahead to busy
 * ones: one each, then a second each, and so on. */
static void dispatch(mpr_executor *ex)
{
    if (!ex->qhead || ex->free_requested)
        return;
    for (int pass = 0; pass <= ex->jobs_ahead; pass++) {
        for (int i = 0; i < ex->nslots && ex->qhead; i++) {
            struct worker *w = ex->slots[i].w;
            if (!w || w->killed || w->asked_exit)
                continue;
            if (pass == 0 ? w->state != W_IDLE
                          : (w->state != W_BUSY || !w->job || w->nahead != pass - 1 ||
                             w->grace_ns ||
                             (w->job->state != MPR_FUTURE_WAITING &&
                              w->job->state != MPR_FUTURE_EXECUTING)))
                continue;
            int rc = hand(ex, w, pass > 0);
            if (rc == MPR_ENOMEM || rc == MPR_EAGAIN)
                return; /* tried again at the next event */
        }
    }
}

/* While every slot backs off, no job can run: the waiting ones fail. */
static void check_pool(mpr_executor *ex)
{
    if (ex->state != MPR_EXECUTOR_RUNNING || !ex->qhead)
        return;
    const struct slot *last = NULL;
    for (int i = 0; i < ex->nslots; i++) {
        if (!ex->slots[i].backing_off)
            return;
        if (!last || ex->slots[i].backoff_until < last->backoff_until)
            last = &ex->slots[i];
    }
    char text[WHY_SIZE + 200];
    double in = (double)(last->backoff_until - mpr__now_ns()) / 1e9;
    snprintf(text, sizeof text,
             "no worker could be started: %d tries in a row failed for each worker; the last: "
             "%s; trying again in %.3g s",
             last->fails, last->last_why, in < 0 ? 0 : in);
    while (ex->qhead) {
        struct job *job = ex->qhead;
        job->refs++;
        queue_remove(ex, job);
        finish(ex, job, MPR_FUTURE_FAILED, MPR_FAILURE_NOT_STARTED, text);
        job_unref(job);
    }
}

/* Deadlines: start, grace, health, ends, backoffs, shutdown. */
static void run_timers(mpr_executor *ex)
{
    int64_t now = mpr__now_ns();
    if (ex->state == MPR_EXECUTOR_SHUTTING_DOWN && ex->shutdown_deadline &&
        now >= ex->shutdown_deadline) {
        ex->shutdown_deadline = 0;
        for (struct worker *w = ex->workers; w; w = w->next) {
            if (!w->slot)
                continue;
            if (w->job && !is_final(w->job->state))
                finish(ex, w->job, MPR_FUTURE_CANCELLED, 0, NULL);
            for (int i = 0; i < w->nahead; i++)
                if (!is_final(w->ahead[i]->state))
                    finish(ex, w->ahead[i], MPR_FUTURE_CANCELLED, 0, NULL);
            if (!w->reaped)
                kill_worker(w, K_SHUTDOWN, "killed at the shutdown's deadline");
        }
    }
    for (struct worker *w = ex->workers; w; w = w->next) {
        if (!w->slot || w->killed)
            continue;
        if (w->state == W_STARTING && ex->start_timeout_s >= 0 && !w->pipe_done &&
            now - w->started_ns >= secs_ns(ex->start_timeout_s)) {
            char why[128];
            snprintf(why, sizeof why, "it did not report ready within %.3g s",
                     ex->start_timeout_s);
            kill_worker(w, K_START_TIMEOUT, why);
            continue;
        }
        if (w->grace_ns && now >= w->grace_ns && w->job) {
            char why[128];
            snprintf(why, sizeof why, "its task did not stop within %.3g s of cancel",
                     ex->grace_s);
            finish(ex, w->job, MPR_FUTURE_CANCELLED, 0, NULL);
            kill_worker(w, K_GRACE, why);
            continue;
        }
        if (!w->healthy && w->ready_ns && now - w->ready_ns >= secs_ns(ex->healthy_s)) {
            w->healthy = 1;
            w->slot->fails = 0;
            w->slot->backoff_s = ex->backoff_s;
        }
    }
    for (struct worker *w = ex->workers; w; w = w->next) {
        if (w->slot && (w->pipe_done || w->reaped))
            progress_end(ex, w);
        else if (!w->slot && w->receiver && w->drain_ns &&
                 (now >= w->drain_ns || now - w->quiet_ns >= PIPE_WAIT_NS))
            close_pipe(w); /* its connection's end did not come; it is quiet */
    }
    for (int i = 0; i < ex->nslots; i++) {
        struct slot *slot = &ex->slots[i];
        if (slot->backing_off && now >= slot->backoff_until)
            slot->backing_off = 0;
    }
    refill(ex);
    dispatch(ex);
    check_pool(ex);
}

static void update_alarm(mpr_executor *ex)
{
    if (!ex->sup)
        return;
    int64_t next = 0;
#define EARLIEST(t)                            \
    do {                                       \
        int64_t t_ = (t);                      \
        if (t_ > 0 && (!next || t_ < next))    \
            next = t_;                         \
    } while (0)
    if (ex->state == MPR_EXECUTOR_SHUTTING_DOWN)
        EARLIEST(ex->shutdown_deadline);
    for (struct worker *w = ex->workers; w; w = w->next) {
        if (!w->slot) {
            if (w->receiver && w->drain_ns)
                EARLIEST(w->quiet_ns + PIPE_WAIT_NS < w->drain_ns ? w->quiet_ns + PIPE_WAIT_NS
                                                                  : w->drain_ns);
            continue;
        }
        if (w->state == W_STARTING && ex->start_timeout_s >= 0 && !w->killed)
            EARLIEST(w->started_ns + secs_ns(ex->start_timeout_s));
        if (w->grace_ns && !w->killed)
            EARLIEST(w->grace_ns);
        if (!w->healthy && w->ready_ns)
            EARLIEST(w->ready_ns + secs_ns(ex->healthy_s));
        if (w->done_ns)
            EARLIEST(w->done_ns + (w->reaped && !w->heard ? PIPE_WAIT_NS / 4 : REAP_WAIT_NS));
    }
    for (int i = 0; i < ex->nslots; i++)
        if (ex->slots[i].backing_off)
            EARLIEST(ex->slots[i].backoff_until);
#undef EARLIEST
    mpr__sup_alarm(ex->sup, next);
}

static void handle_reaped(mpr_executor *ex, const mpr__reaped *r)
{
    for (struct worker *w = ex->workers; w; w = w->next) {
        if (w->pid != r->pid || w->reaped)
            continue;
        w->reaped = 1;
        w->status = r->status;
        ex->stats.workers_ended++;
        ex->stats.workers_alive--;
        if (w->slot && w->state == W_STARTING && !w->why[0] && r->status >= 0) {
            /* Our worker's own exit statuses before it is ready. */
            int code = mpr__proc_exit_code(r->status);
            const char *what = code == 2   ? "it got no usable sender string"
                               : code == 5 ? "it could not connect to the router"
                               : code == 3 ? "its standard input ended"
                                           : NULL;
            if (what)
                snprintf(w->why, sizeof w->why, "%s", what);
        }
        progress_end(ex, w);
        return;
    }
}

/* Everything done? Then join the supervisor and say so. */
static void check_shutdown(mpr_executor *ex)
{
    if (ex->state != MPR_EXECUTOR_SHUTTING_DOWN || ex->workers)
        return;
    mpr__sup_free(ex->sup, 1);
    ex->sup = NULL;
    if (ex->sup_pinger) {
        ex->loop->pinger_free(ex->sup_pinger);
        ex->sup_pinger = NULL;
    }
    ex->state = MPR_EXECUTOR_SHUT_DOWN;
    note_push(ex, NULL, 0, 0, NULL, 0);
}

static void on_ping(void *arg)
{
    mpr_executor *ex = arg;
    enter(ex);
    ex->self_pinged = 0;
    if (ex->sup) {
        mpr__reaped r[32];
        size_t n;
        while ((n = mpr__sup_take(ex->sup, r, MPR__ARRAY_SIZE(r))) > 0)
            for (size_t i = 0; i < n; i++)
                handle_reaped(ex, &r[i]);
    }
    if (ex->state != MPR_EXECUTOR_SHUT_DOWN)
        run_timers(ex);
    while (ex->dirty_head) {
        struct job *job = ex->dirty_head;
        ex->dirty_head = job->dirty_next;
        if (!ex->dirty_head)
            ex->dirty_tail = NULL;
        job->in_dirty = 0;
        flush_progress(ex, job);
        job_unref(job);
    }
    leave(ex);
}

/* At the outermost leave (no caller holds a worker): drop the workers
 * that are done with, finish a shutdown, set the next alarm. */
static void tidy(mpr_executor *ex)
{
    if (ex->free_requested)
        return;
    sweep_workers(ex);
    check_shutdown(ex);
    update_alarm(ex);
}

static void sup_notify(void *arg)
{
    mpr_executor *ex = arg;
    ex->loop->pinger_ping(ex->sup_pinger);
}

/* ------------------------------------------------------------------ */
/* the public calls                                                      */

void mpr_executor_options_init(mpr_executor_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->workers = 4;
    o->start = MPR_START_EXEC;
    o->start_timeout_s = 30;
    o->cancel_grace_s = 5;
    o->max_start_failures = 3;
    o->healthy_after_s = 1;
    o->backoff_s = 5;
}

static int count_strings(const char *const *v)
{
    int n = 0;
    while (v && v[n])
        n++;
    return n;
}

static char **copy_strings(const char *const *v, int n)
{
    char **c = calloc((size_t)n + 1, sizeof *c);
    if (!c)
        return NULL;
    for (int i = 0; i < n; i++)
        if (!(c[i] = strdup(v[i]))) {
            free_argv(c, i);
            return NULL;
        }
    return c;
}

/* < 0 or infinity: none (-1); NaN: invalid. */
static int time_opt(double in, double *out)
{
    if (isnan(in))
        return MPR_EINVAL;
    *out = (in < 0 || isinf(in)) ? -1 : in;
    return 0;
}

static void free_config(mpr_executor *ex)
{
    free(ex->path);
    free_argv(ex->argv, ex->argc);
    free_argv(ex->hosts, ex->nhosts);
    free(ex->slots);
}

int mpr_executor_new(mpr_executor **out, mpr_router *router, const mpr_event_loop *loop,
                     const mpr_executor_options *o)
{
    if (!out || !router || !loop || !o || o->size < offsetof(mpr_executor_options, jobs_ahead))
        return MPR_EINVAL;
    if (o->workers < 1 || o->workers > 1024 || o->max_start_failures < 1)
        return MPR_EINVAL;
    int jobs_ahead =
        o->size >= offsetof(mpr_executor_options, jobs_ahead) + sizeof o->jobs_ahead ? o->jobs_ahead
                                                                                     : 0;
    if (jobs_ahead < 0 || jobs_ahead > MPR__JOB_AHEAD_MAX)
        return MPR_EINVAL;
    int argc = count_strings(o->argv);
    int nhosts = count_strings(o->hosts);
    if (o->start == MPR_START_FORK ? !o->fork_fn
        : o->start == MPR_START_EXEC ? argc < 1
        : o->start == MPR_START_LAUNCH ? argc < 1 || nhosts < 1
                                       : 1)
        return MPR_EINVAL;
    if (isnan(o->healthy_after_s) || isnan(o->backoff_s) || o->healthy_after_s < 0 ||
        o->backoff_s < 0 || isinf(o->backoff_s))
        return MPR_EINVAL;
    /* Is the router running? A pipe says (one that never connects is
     * closed at once, quietly). */
    mpr_sender *probe_s = NULL;
    mpr_receiver *probe_r = NULL;
    int rc = mpr_router_pipe(router, &probe_s, &probe_r);
    if (rc < 0)
        return rc;
    mpr_sender_free(probe_s);
    mpr_router_close_pipe(router, probe_r);
    mpr_executor *ex = calloc(1, sizeof *ex);
    if (!ex)
        return MPR_ENOMEM;
    ex->token = mpr__process_token();
    ex->router = router;
    ex->loop = loop;
    ex->nslots = o->workers;
    ex->mode = o->start;
    ex->fork_fn = o->fork_fn;
    ex->fork_arg = o->fork_arg;
    ex->healthy_s = isinf(o->healthy_after_s) ? 1e9 : o->healthy_after_s;
    ex->backoff_s = o->backoff_s;
    ex->newest_only = o->newest_progress_only != 0;
    ex->jobs_ahead = jobs_ahead;
    ex->max_fails = o->max_start_failures;
    ex->next_id = 1;
    if (time_opt(o->start_timeout_s, &ex->start_timeout_s) < 0 ||
        time_opt(o->cancel_grace_s, &ex->grace_s) < 0)
        rc = MPR_EINVAL;
    if (!rc && ex->mode != MPR_START_FORK) {
        ex->argc = argc;
        if (!(ex->argv = copy_strings(o->argv, argc)))
            rc = MPR_ENOMEM;
        else {
            int f = mpr__proc_find(ex->argv[0], &ex->path);
            if (f == MPR_ENOENT && !(ex->path = strdup(ex->argv[0])))
                f = MPR_ENOMEM; /* not found: the start says so */
            else if (f == MPR_ENOENT)
                f = 0;
            rc = f;
        }
        if (!rc && ex->mode == MPR_START_LAUNCH) {
            ex->nhosts = nhosts;
            if (!(ex->hosts = copy_strings(o->hosts, nhosts)))
                rc = MPR_ENOMEM;
        }
    }
    if (!rc && !(ex->slots = calloc((size_t)ex->nslots, sizeof *ex->slots)))
        rc = MPR_ENOMEM;
    if (rc) {
        free_config(ex);
        free(ex);
        return rc;
    }
    for (int i = 0; i < ex->nslots; i++) {
        ex->slots[i].index = i;
        ex->slots[i].backoff_s = ex->backoff_s;
        if (ex->mode == MPR_START_LAUNCH)
            ex->slots[i].host = ex->hosts[i % ex->nhosts];
    }
    rc = loop->pingee_new(loop, on_ping, ex, &ex->pingee);
    if (!rc) {
        loop->pingee_connect(ex->pingee);
        rc = loop->pinger_new(ex->pingee, &ex->sup_pinger);
    }
    if (!rc) {
        loop->pinger_connect(ex->sup_pinger);
        rc = loop->pinger_new(ex->pingee, &ex->self_pinger);
    }
    if (!rc) {
        loop->pinger_connect(ex->self_pinger);
        rc = mpr__sup_new(&ex->sup, sup_notify, ex);
    }
    if (rc) {
        if (ex->self_pinger)
            loop->pinger_free(ex->self_pinger);
        if (ex->sup_pinger)
            loop->pinger_free(ex->sup_pinger);
        if (ex->pingee)
            loop->pingee_free(ex->pingee);
        free_config(ex);
        free(ex);
        return rc;
    }
    ex->state = MPR_EXECUTOR_RUNNING;
    enter(ex);
    refill(ex);
    leave(ex);
    *out = ex;
    return 0;
}

/* Free everything; the abrupt way if not shut down (executor.h). */
static void executor_release(mpr_executor *ex)
{
    const mpr_event_loop *loop = ex->loop;
    if (mpr__forked(ex->token)) {
        /* A forked copy: its descriptors, threads and processes are the
         * parent's. Only memory (and the jobs are the parent's too). */
        free_config(ex);
        free(ex);
        return;
    }
    if (ex->sup) {
        mpr__sup_free(ex->sup, 1); /* kills and reaps every process left */
        ex->sup = NULL;
    }
    for (struct worker *w = ex->workers, *next; w; w = next) {
        next = w->next;
        close_pipe(w);
        for (int i = -1; i < w->nahead; i++) {
            struct job *job = i < 0 ? w->job : w->ahead[i];
            if (!job)
                continue;
            if (!is_final(job->state)) {
                job->state = MPR_FUTURE_CANCELLED;
                ex->stats.jobs_cancelled++;
            }
            job->worker = NULL;
            job_unref(job);
        }
        free(w);
    }
    ex->workers = NULL;
    while (ex->qhead) {
        struct job *job = ex->qhead;
        job->state = MPR_FUTURE_CANCELLED;
        queue_remove(ex, job);
    }
    while (ex->dirty_head) {
        struct job *job = ex->dirty_head;
        ex->dirty_head = job->dirty_next;
        job_unref(job);
    }
    for (struct note *n = ex->nhead, *next; n; n = next) {
        next = n->next;
        if (n->job)
            job_unref(n->job);
        free(n->data);
        free(n);
    }
    /* Jobs still held by their futures outlive us. */
    for (struct job *job = ex->all; job; job = job->anext) {
        if (!is_final(job->state))
            job->state = MPR_FUTURE_CANCELLED;
        job->ex = NULL;
    }
    if (ex->sup_pinger)
        loop->pinger_free(ex->sup_pinger);
    if (ex->self_pinger)
        loop->pinger_free(ex->self_pinger);
    if (ex->pingee)
        loop->pingee_free(ex->pingee);
    free_config(ex);
    free(ex);
}

void mpr_executor_free(mpr_executor *ex)
{
    if (!ex)
        return;
    if (!mpr__forked(ex->token) && ex->depth > 0) {
        ex->free_requested = 1;
        return;
    }
    executor_release(ex);
}

int mpr_executor_submit(mpr_executor *ex, const char *task, const void *args, size_t size,
                        mpr_future **future)
{
    if (!ex || !task || !future || (!args && size))
        return MPR_EINVAL;
    if (mpr__forked(ex->token))
        return MPR_EOWNER;
    size_t nlen = strnlen(task, MPR__JOB_NAME_MAX + 1);
    if (nlen == 0 || nlen > MPR__JOB_NAME_MAX)
        return MPR_EINVAL;
    if (ex->state != MPR_EXECUTOR_RUNNING || ex->free_requested)
        return MPR_ESTATE;
    size_t n = mpr__job_run_size(nlen, size);
    if (n == (size_t)-1 || n > MPR_CONTROL_MAX_SIZE)
        return MPR_EMSGSIZE;
    struct job *job = calloc(1, sizeof *job);
    if (!job || !(job->run = malloc(n))) {
        free(job);
        return MPR_ENOMEM;
    }
    if (fh_new(job, &job->handle) < 0) {
        free(job->run);
        free(job);
        return MPR_ENOMEM;
    }
    job->id = ex->next_id++;
    job->ex = ex;
    job->refs = 2; /* the handle, the queue */
    job->state = MPR_FUTURE_WAITING;
    job->run_size = n;
    mpr__job_put_run(job->run, job->id, task, nlen, args, size);
    job->anext = ex->all;
    if (ex->all)
        ex->all->aprev = job;
    ex->all = job;
    job->queued = 1;
    job->qprev = ex->qtail;
    if (ex->qtail)
        ex->qtail->qnext = job;
    else
        ex->qhead = job;
    ex->qtail = job;
    ex->stats.jobs_submitted++;
    ex->stats.jobs_waiting++;
    *future = job->handle;
    enter(ex);
    dispatch(ex);
    if (ex->qhead) {
        int all_off = 1;
        for (int i = 0; i < ex->nslots && all_off; i++)
            all_off = ex->slots[i].backing_off;
        if (all_off)
            self_ping(ex); /* it fails there: never before the caller set callbacks */
    }
    leave(ex);
    return 0;
}

int mpr_executor_shutdown(mpr_executor *ex, double timeout_s, void (*done)(void *), void *arg)
{
    if (!ex || isnan(timeout_s))
        return MPR_EINVAL;
    if (mpr__forked(ex->token))
        return MPR_EOWNER;
    if (ex->state != MPR_EXECUTOR_RUNNING || ex->free_requested)
        return MPR_ESTATE;
    enter(ex);
    ex->state = MPR_EXECUTOR_SHUTTING_DOWN;
    ex->done_fn = done;
    ex->done_arg = arg;
    if (timeout_s >= 0 && !isinf(timeout_s)) {
        ex->shutdown_deadline = mpr__now_ns() + secs_ns(timeout_s);
        if (ex->shutdown_deadline == 0)
            ex->shutdown_deadline = 1;
    }
    while (ex->qhead) {
        struct job *job = ex->qhead;
        job->refs++;
        queue_remove(ex, job);
        finish(ex, job, MPR_FUTURE_CANCELLED, 0, NULL);
        job_unref(job);
    }
    for (struct worker *w = ex->workers; w; w = w->next) {
        if (!w->slot)
            continue;
        struct job *job = w->job;
        if (job && !w->killed) {
            if (job->state == MPR_FUTURE_WAITING)
                finish(ex, job, MPR_FUTURE_CANCELLED, 0, NULL);
            else if (job->state == MPR_FUTURE_EXECUTING)
                set_state(ex, job, MPR_FUTURE_CANCELLING);
            for (int i = 0; i < w->nahead; i++)
                if (!is_final(w->ahead[i]->state))
                    finish(ex, w->ahead[i], MPR_FUTURE_CANCELLED, 0, NULL);
            send_cancel_word(w);
        }
        if (!w->killed && !w->pipe_done && w->receiver) {
            unsigned char msg[MPR__JOB_HEADER];
            mpr__job_put_header(msg, MPR__JOB_EXIT, 0);
            int rc = mpr_receiver_send(w->receiver, msg, sizeof msg);
            w->asked_exit = 1;
            if (rc < 0 && rc != MPR_EPIPE)
                kill_worker(w, K_SHUTDOWN, "it could not be asked to exit");
        } else {
            w->asked_exit = 1;
        }
    }
    if (ex->shutdown_deadline && ex->shutdown_deadline <= mpr__now_ns())
        run_timers(ex);
    leave(ex);
    return 0;
}

int mpr_executor_state(const mpr_executor *ex)
{
    if (!ex)
        return MPR_EINVAL;
    if (mpr__forked(ex->token))
        return MPR_EOWNER;
    return ex->state;
}

int mpr_executor_get_stats(const mpr_executor *ex, mpr_executor_stats *out)
{
    if (!ex || !out)
        return MPR_EINVAL;
    if (mpr__forked(ex->token))
        return MPR_EOWNER;
    *out = ex->stats;
    return 0;
}

const char *mpr_future_state_name(int state)
{
    static const char *const names[] = {"WAITING",   "EXECUTING", "CANCELLING",
                                        "COMPLETED", "FAILED",    "CANCELLED"};
    return state >= 0 && state < (int)MPR__ARRAY_SIZE(names) ? names[state] : "unknown";
}

int mpr_future_set_callbacks(mpr_future *f, mpr_future_state_fn on_state,
                             mpr_future_progress_fn on_progress, void *arg)
{
    struct job *job = fh_get(f);
    if (!job)
        return MPR_ENOENT;
    job->on_state = on_state;
    job->on_progress = on_progress;
    job->cb_arg = (on_state || on_progress) ? arg : NULL;
    return 0;
}

int mpr_future_state(const mpr_future *f)
{
    struct job *job = fh_get(f);
    return job ? job->state : MPR_ENOENT;
}

/* Kill the worker if its cancelled job has not ended within the grace. */
static void start_grace(mpr_executor *ex, struct worker *w)
{
    if (ex->grace_s >= 0 && !w->grace_ns) {
        w->grace_ns = mpr__now_ns() + secs_ns(ex->grace_s);
        if (w->grace_ns == 0)
            w->grace_ns = 1;
        if (ex->grace_s == 0)
            run_timers(ex);
    }
}

/* Cancel (shared by cancel and free). */
static void cancel_job(mpr_executor *ex, struct job *job)
{
    if (job->queued) {
        job->refs++;
        queue_remove(ex, job);
        finish(ex, job, MPR_FUTURE_CANCELLED, 0, NULL);
        job_unref(job);
        return;
    }
    struct worker *w = job->worker;
    if (job->state == MPR_FUTURE_WAITING)
        finish(ex, job, MPR_FUTURE_CANCELLED, 0, NULL);
    else
        set_state(ex, job, MPR_FUTURE_CANCELLING);
    if (w && !w->killed) {
        send_cancel_word(w);
        /* A job ahead is skipped when the worker comes to it; the grace
         * starts then (job_ended). */
        if (job == w->job)
            start_grace(ex, w);
    }
}

int mpr_future_cancel(mpr_future *f)
{
    struct job *job = fh_get(f);
    if (!job)
        return MPR_ENOENT;
    mpr_executor *ex = job->ex;
    if (!ex || (job->state != MPR_FUTURE_WAITING && job->state != MPR_FUTURE_EXECUTING))
        return MPR_ESTATE;
    if (mpr__forked(ex->token))
        return MPR_EOWNER;
    enter(ex);
    cancel_job(ex, job);
    leave(ex);
    return 0;
}

int mpr_future_result(const mpr_future *f, const void **data, size_t *size)
{
    struct job *job = fh_get(f);
    if (!job)
        return MPR_ENOENT;
    if (!data || !size)
        return MPR_EINVAL;
    if (job->state != MPR_FUTURE_COMPLETED)
        return MPR_ESTATE;
    *data = job->result;
    *size = job->result_size;
    return 0;
}

int mpr_future_error(const mpr_future *f, const char **message)
{
    struct job *job = fh_get(f);
    if (!job)
        return MPR_ENOENT;
    if (job->state != MPR_FUTURE_FAILED)
        return MPR_ESTATE;
    if (message)
        *message = job->error ? job->error : "failed";
    return job->failure;
}

int64_t mpr_future_worker_pid(const mpr_future *f)
{
    struct job *job = fh_get(f);
    if (!job)
        return MPR_ENOENT;
    return job->pid;
}

void mpr_future_free(mpr_future *f)
{
    struct job *job = fh_get(f);
    if (!job)
        return;
    mpr_executor *ex = job->ex;
    job->on_state = NULL;
    job->on_progress = NULL;
    job->cb_arg = NULL;
    if (ex && !mpr__forked(ex->token)) {
        enter(ex);
        if (job->state == MPR_FUTURE_WAITING || job->state == MPR_FUTURE_EXECUTING)
            cancel_job(ex, job);
        fh_free_handle(f);
        job->handle = NULL;
        job_unref(job);
        leave(ex);
        return;
    }
    fh_free_handle(f);
    job->handle = NULL;
    job_unref(job);
}
