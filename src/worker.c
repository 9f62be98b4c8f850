/*
 * worker.c - the worker side of an executor (<mprouter/worker.h>): read
 * the sender string, start the sender, run the initialisation, report
 * ready, then take jobs (mpr_sender_recv) and run them until the executor
 * says EXIT. The job protocol is job.h's. Built on the public sender
 * calls only (and workproc.h for standard input).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/sender.h>
#include <mprouter/worker.h>

#include "base.h"
#include "job.h"
#include "workproc.h"

/* Exit statuses (worker.h). */
enum {
    EXIT_ASKED = 0,
    EXIT_NO_STRING = 2,
    EXIT_INPUT_ENDED = 3,
    EXIT_ROUTER_GONE = 4,
    EXIT_NO_START = 5,
    EXIT_INIT_FAILED = 6,
    EXIT_PROTOCOL = 7,
    EXIT_NO_MEMORY = 8
};

typedef struct worker {
    mpr_sender *sender;
    unsigned char *out; /* scratch for outgoing messages */
    size_t out_cap;
    int router_gone;
    int no_memory;
} worker;

struct mpr_task {
    worker *w;
    uint64_t job;
    void *context;
    int active; /* inside the task function */
    unsigned char *result;
    size_t result_size;
    int failed;
    char message[MPR__JOB_TEXT_MAX + 1];
};

/* Send header + payload as one message. 0 or the error of the send. */
static int send_msg(worker *w, int kind, uint64_t job, const void *payload, size_t size)
{
    if (size > (size_t)-1 - MPR__JOB_HEADER)
        return MPR_EMSGSIZE;
    size_t n = MPR__JOB_HEADER + size;
    if (n > MPR_MAX_MESSAGE_SIZE)
        return MPR_EMSGSIZE;
    if (n > w->out_cap) {
        size_t cap = w->out_cap ? w->out_cap : 4096;
        while (cap < n)
            cap = cap > MPR_MAX_MESSAGE_SIZE / 2 ? n : cap * 2;
        unsigned char *p = realloc(w->out, cap);
        if (!p) {
            w->no_memory = 1;
            return MPR_ENOMEM;
        }
        w->out = p;
        w->out_cap = cap;
    }
    mpr__job_put_header(w->out, kind, job);
    if (size)
        memcpy(w->out + MPR__JOB_HEADER, payload, size);
    int rc = mpr_sender_send(w->sender, w->out, n);
    if (rc == MPR_EPIPE)
        w->router_gone = 1;
    /* A large scratch buffer is not kept between messages. */
    if (w->out_cap > (1u << 20)) {
        free(w->out);
        w->out = NULL;
        w->out_cap = 0;
    }
    return rc;
}

/* Cut a text to the protocol's bound at a UTF-8 character boundary, and
 * at a NUL. Returns its length. */
static size_t text_len(const char *s, size_t n)
{
    const char *nul = memchr(s, 0, n);
    if (nul)
        n = (size_t)(nul - s);
    if (n > MPR__JOB_TEXT_MAX) {
        n = MPR__JOB_TEXT_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    return n;
}

int mpr_task_progress(mpr_task *task, const void *data, size_t size)
{
    if (!task || !task->active || (!data && size))
        return MPR_EINVAL;
    if (task->w->router_gone)
        return MPR_EPIPE;
    return send_msg(task->w, MPR__JOB_PROGRESS, task->job, data, size);
}

/* Does the pipe's newest cancel request name this job (job.h)? */
static int job_cancelled(worker *w, uint64_t job)
{
    return mpr__job_cancel_names(mpr_sender_cancelled(w->sender), job);
}

int mpr_task_cancelled(mpr_task *task)
{
    if (!task)
        return 0;
    return task->w->router_gone || job_cancelled(task->w, task->job);
}

int mpr_task_result(mpr_task *task, const void *data, size_t size)
{
    if (!task || (!data && size))
        return MPR_EINVAL;
    if (size > MPR_MAX_MESSAGE_SIZE - MPR__JOB_HEADER)
        return MPR_EMSGSIZE;
    unsigned char *copy = NULL;
    if (size) {
        copy = malloc(size);
        if (!copy)
            return MPR_ENOMEM;
        memcpy(copy, data, size);
    }
    free(task->result);
    task->result = copy;
    task->result_size = size;
    return 0;
}

int mpr_task_fail(mpr_task *task, const char *format, ...)
{
    if (!task)
        return -1;
    char buf[MPR__JOB_TEXT_MAX + 8];
    buf[0] = 0;
    if (format) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);
    }
    size_t n = text_len(buf, strlen(buf));
    memcpy(task->message, buf, n);
    task->message[n] = 0;
    task->failed = 1;
    return -1;
}

uint64_t mpr_task_id(const mpr_task *task)
{
    return task ? task->job : 0;
}

void *mpr_task_context(const mpr_task *task)
{
    return task ? task->context : NULL;
}

static const mpr_task_def *find_task(const mpr_task_def *tasks, const char *name, size_t len)
{
    for (const mpr_task_def *t = tasks; t && t->name; t++)
        if (t->fn && strlen(t->name) == len && memcmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

/* Run one job and report its end. 0, or an exit status. */
static int run_job(worker *w, const mpr_task_def *tasks, void *context, const mpr__job_msg *m)
{
    /* Cancelled before it started (the request names this job). */
    if (job_cancelled(w, m->job))
        return send_msg(w, MPR__JOB_CANCELLED, m->job, NULL, 0) == MPR_EPIPE ? EXIT_ROUTER_GONE : 0;
    if (send_msg(w, MPR__JOB_STARTED, m->job, NULL, 0) == MPR_EPIPE)
        return EXIT_ROUTER_GONE;
    const mpr_task_def *def = find_task(tasks, m->name, m->name_len);
    int rc;
    if (!def) {
        char msg[MPR__JOB_NAME_MAX + 64];
        int len = snprintf(msg, sizeof msg, "the worker has no task named \"%.*s\"",
                           (int)m->name_len, m->name);
        rc = send_msg(w, MPR__JOB_FAILED, m->job, msg, text_len(msg, (size_t)len));
        return rc == MPR_EPIPE ? EXIT_ROUTER_GONE : 0;
    }
    mpr_task *t = calloc(1, sizeof *t);
    if (!t)
        return EXIT_NO_MEMORY;
    t->w = w;
    t->job = m->job;
    t->context = context;
    t->active = 1;
    int ret = def->fn(t, m->size ? m->data : NULL, m->size);
    t->active = 0;
    if (w->router_gone) {
        rc = MPR_EPIPE;
    } else if (job_cancelled(w, m->job)) {
        rc = send_msg(w, MPR__JOB_CANCELLED, m->job, NULL, 0);
    } else if (t->failed || ret != 0) {
        char msg[64];
        const char *text = t->message;
        size_t len = strlen(t->message);
        if (!t->failed) {
            len = (size_t)snprintf(msg, sizeof msg, "task returned %d", ret);
            text = msg;
        }
        rc = send_msg(w, MPR__JOB_FAILED, m->job, text, len);
    } else {
        rc = send_msg(w, MPR__JOB_RESULT, m->job, t->result, t->result_size);
        if (rc == MPR_EMSGSIZE || rc == MPR_ENOMEM) {
            char msg[96];
            int len = snprintf(msg, sizeof msg, "cannot send a result of %zu bytes: %s",
                               t->result_size, mpr_strerror(rc));
            rc = send_msg(w, MPR__JOB_FAILED, m->job, msg, (size_t)len);
        }
    }
    free(t->result);
    free(t);
    if (rc == MPR_EPIPE)
        return EXIT_ROUTER_GONE;
    if (rc == MPR_ENOMEM)
        return EXIT_NO_MEMORY;
    return 0;
}

int mpr_worker_main(const mpr_task_def *tasks, mpr_worker_init_fn init, void *context)
{
    char line[8192];
    int rc = mpr__proc_read_line(line, sizeof line);
    if (rc < 0) {
        fprintf(stderr, "mprouter worker: no sender string on standard input: %s\n",
                mpr_strerror(rc));
        mpr__wipe(line, sizeof line);
        return EXIT_NO_STRING;
    }
    worker w;
    memset(&w, 0, sizeof w);
    rc = mpr_sender_from_string(&w.sender, line);
    mpr__wipe(line, sizeof line);
    if (rc < 0) {
        fprintf(stderr, "mprouter worker: bad sender string on standard input: %s\n",
                mpr_strerror(rc));
        return EXIT_NO_STRING;
    }
    /* From now on the end of standard input ends the process. */
    if (mpr__proc_exit_at_eof(EXIT_INPUT_ENDED) < 0) {
        fprintf(stderr, "mprouter worker: cannot watch standard input\n");
        mpr_sender_free(w.sender);
        return EXIT_NO_MEMORY;
    }
    rc = mpr_sender_start(w.sender);
    if (rc < 0) {
        fprintf(stderr, "mprouter worker: cannot connect to the router: %s\n", mpr_strerror(rc));
        mpr_sender_free(w.sender);
        return EXIT_NO_START;
    }
    int status = 0;
    if (init) {
        char msg[MPR__JOB_TEXT_MAX + 1];
        msg[0] = 0;
        if (init(context, msg, sizeof msg) != 0) {
            msg[sizeof msg - 1] = 0;
            char text[MPR__JOB_TEXT_MAX + 64];
            int len = snprintf(text, sizeof text, "initialisation failed: %s",
                               msg[0] ? msg : "(no reason given)");
            size_t n = text_len(text, len < 0 ? 0 : (size_t)len);
            send_msg(&w, MPR__JOB_INIT_FAILED, 0, text, n);
            mpr_sender_stop(w.sender);
            mpr_sender_free(w.sender);
            free(w.out);
            return EXIT_INIT_FAILED;
        }
    }
    unsigned char ready[MPR__JOB_HEADER + 8];
    mpr__job_put_ready(ready, (uint32_t)mpr__proc_self());
    if (mpr_sender_send(w.sender, ready, sizeof ready) < 0)
        status = EXIT_ROUTER_GONE;

    size_t cap = 64 * 1024;
    unsigned char *buf = malloc(cap);
    if (!buf)
        status = EXIT_NO_MEMORY;
    while (!status) {
        size_t len = 0;
        rc = mpr_sender_recv(w.sender, buf, cap, &len, -1);
        if (rc == MPR_EMSGSIZE && len > cap && len <= MPR_CONTROL_MAX_SIZE) {
            unsigned char *p = realloc(buf, len);
            if (!p) {
                status = EXIT_NO_MEMORY;
                break;
            }
            buf = p;
            cap = len;
            continue;
        }
        if (rc == MPR_ETIMEDOUT)
            continue;
        if (rc < 0) {
            status = EXIT_ROUTER_GONE;
            break;
        }
        mpr__job_msg m;
        const char *why = NULL;
        if (mpr__job_parse_control(buf, len, &m, &why) < 0) {
            fprintf(stderr, "mprouter worker: the executor sent %zu bytes that are not the job "
                            "protocol (%s)\n",
                    len, why);
            status = EXIT_PROTOCOL;
            break;
        }
        if (m.kind == MPR__JOB_EXIT) {
            if (send_msg(&w, MPR__JOB_BYE, 0, NULL, 0) < 0)
                status = EXIT_ROUTER_GONE;
            break;
        }
        status = run_job(&w, tasks, context, &m);
        if (!status && w.no_memory)
            status = EXIT_NO_MEMORY;
        /* A large job's buffer is not kept for the next one. */
        if (cap > 64 * 1024) {
            unsigned char *p = realloc(buf, 64 * 1024);
            if (p) {
                buf = p;
                cap = 64 * 1024;
            }
        }
    }
    free(buf);
    free(w.out);
    if (status == 0)
        mpr_sender_stop(w.sender);
    mpr_sender_free(w.sender);
    return status;
}
