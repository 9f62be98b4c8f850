/*
 * console.c - the smallest complete use of the mprouter C API.
 *
 * The main thread runs a plain poll() loop over the fd event loop's
 * descriptor. Four forked workers each count the primes in a slice of a
 * range and report progress and their result through their pipe.
 */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mprouter/mprouter.h>

#define WORKERS 4
#define LIMIT 2000000u

/* What a worker sends: progress updates, then its result. */
struct report {
    int worker;
    int done; /* 1 in the last message */
    unsigned percent;
    unsigned long primes;
};

struct task {
    int worker;
    int finished;
    unsigned long primes;
};

static int is_prime(unsigned n)
{
    if (n < 2)
        return 0;
    for (unsigned d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return 1;
}

/* Runs in the forked child: only sender calls, then _exit. */
static void worker(mpr_sender *sender, int index, unsigned lo, unsigned hi)
{
    if (mpr_sender_start(sender) < 0)
        _exit(1);
    struct report r = {index, 0, 0, 0};
    unsigned step = (hi - lo) / 10;
    for (unsigned n = lo; n < hi; n++) {
        r.primes += is_prime(n);
        if (step && (n - lo) % step == step - 1 && r.percent < 90) {
            r.percent += 10;
            mpr_sender_send(sender, &r, sizeof r);
        }
    }
    r.done = 1;
    r.percent = 100;
    int rc = mpr_sender_send(sender, &r, sizeof r);
    mpr_sender_stop(sender);
    mpr_sender_free(sender);
    _exit(rc == 0 ? 0 : 1);
}

static void on_message(void *arg, const void *data, size_t size)
{
    struct task *t = arg;
    struct report r;
    if (size != sizeof r)
        return;
    memcpy(&r, data, sizeof r);
    printf("worker %d: %3u%%%s\n", r.worker, r.percent, r.done ? " done" : "");
    if (r.done) {
        t->finished = 1;
        t->primes = r.primes;
    }
}

static void on_lost(void *arg)
{
    struct task *t = arg;
    if (!t->finished) {
        fprintf(stderr, "worker %d died before it finished\n", t->worker);
        t->finished = -1;
    }
}

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", what, mpr_strerror(rc));
        exit(1);
    }
}

int main(void)
{
    mpr_fd_loop *loop;
    mpr_router *router;
    check(mpr_fd_loop_new(&loop), "mpr_fd_loop_new");
    check(mpr_router_new(&router, mpr_fd_loop_event_loop(loop)), "mpr_router_new");
    check(mpr_router_start(router), "mpr_router_start");

    struct task tasks[WORKERS];
    mpr_receiver *receivers[WORKERS];
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        mpr_sender *sender;
        check(mpr_router_pipe(router, &sender, &receivers[i]), "mpr_router_pipe");
        tasks[i] = (struct task){i, 0, 0};
        mpr_receiver_set_callback(receivers[i], on_message, &tasks[i]);
        mpr_receiver_set_lost_callback(receivers[i], on_lost, &tasks[i]);
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("fork");
            return 1;
        }
        if (pids[i] == 0)
            worker(sender, i, LIMIT / WORKERS * (unsigned)i, LIMIT / WORKERS * (unsigned)(i + 1));
        mpr_sender_free(sender); /* the parent's copy */
    }

    /* The event loop: wait for the descriptor, dispatch, until all done. */
    int pending = WORKERS;
    while (pending > 0) {
        struct pollfd p = {mpr_fd_loop_fd(loop), POLLIN, 0};
        if (poll(&p, 1, -1) < 0)
            continue;
        check(mpr_fd_loop_dispatch(loop), "mpr_fd_loop_dispatch");
        pending = 0;
        for (int i = 0; i < WORKERS; i++)
            pending += tasks[i].finished == 0;
    }

    unsigned long total = 0;
    int failed = 0;
    for (int i = 0; i < WORKERS; i++) {
        waitpid(pids[i], NULL, 0);
        check(mpr_router_close_pipe(router, receivers[i]), "mpr_router_close_pipe");
        if (tasks[i].finished < 0)
            failed = 1;
        total += tasks[i].primes;
    }
    check(mpr_router_stop(router), "mpr_router_stop");
    mpr_router_free(router);
    mpr_fd_loop_free(loop);
    printf("primes below %u: %lu\n", LIMIT, total);
    return failed;
}
