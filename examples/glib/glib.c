/*
 * glib.c - mprouter in a GLib program: the fd event loop driven by a
 * GMainLoop (g_unix_fd_add on the default GMainContext), with fork()ed
 * workers.
 *
 * Each of N workers (default 4, or argv[1]) sends 10 progress messages
 * "worker W: step S/10"; the main loop prints them as they arrive and
 * quits when every worker's last message is in. Exits 0 when every message
 * arrived in order.
 *
 * The same pattern serves any loop that can watch a descriptor: watch
 * mpr_fd_loop_fd() for readability (level-triggered) and call
 * mpr_fd_loop_dispatch() when it is readable. Never read the fd yourself.
 */
#define _POSIX_C_SOURCE 200809L
#include <glib.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mprouter/mprouter.h>

enum { STEPS = 10 };

typedef struct worker {
    int index;
    int next_step; /* the step expected next, 1..STEPS; STEPS + 1 when done */
    int out_of_order;
    mpr_receiver *receiver;
    pid_t pid;
} worker;

static GMainLoop *main_loop;
static int workers_left;

/* The fd loop's descriptor is readable: run the pending pings (which route
 * the messages, calling on_message). */
static gboolean on_fd_readable(gint fd, GIOCondition condition, gpointer data)
{
    (void)fd;
    (void)condition;
    int rc = mpr_fd_loop_dispatch(data);
    if (rc < 0)
        fprintf(stderr, "glib: mpr_fd_loop_dispatch: %s\n", mpr_strerror(rc));
    return G_SOURCE_CONTINUE;
}

/* A worker's message, on the main thread. */
static void on_message(void *arg, const void *data, size_t size)
{
    worker *w = arg;
    int step = 0;
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)(size < sizeof text ? size : sizeof text - 1),
             (const char *)data);
    if (sscanf(text, "worker %*d: step %d/", &step) != 1 || step != w->next_step)
        w->out_of_order = 1;
    w->next_step = step + 1;
    printf("%s\n", text);
    fflush(stdout);
    if (step == STEPS && --workers_left == 0)
        g_main_loop_quit(main_loop);
}

static void run_worker(mpr_sender *sender, int index)
{
    int ok = mpr_sender_start(sender) == 0;
    for (int step = 1; ok && step <= STEPS; step++) {
        char text[64];
        int n = snprintf(text, sizeof text, "worker %d: step %d/%d", index, step, STEPS);
        ok = mpr_sender_send(sender, text, (size_t)n) == 0;
    }
    ok = ok && mpr_sender_stop(sender) == 0;
    mpr_sender_free(sender);
    _exit(ok ? 0 : 1);
}

/* A guard against hanging (a lost worker), not a timing. */
static gboolean on_timeout(gpointer data)
{
    (void)data;
    fprintf(stderr, "glib: gave up waiting for the workers\n");
    g_main_loop_quit(main_loop);
    return G_SOURCE_REMOVE;
}

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : 4;
    if (count < 1 || count > 64) {
        fprintf(stderr, "usage: %s [workers (1-64)]\n", argv[0]);
        return 2;
    }

    mpr_fd_loop *loop;
    mpr_router *router;
    int rc = mpr_fd_loop_new(&loop);
    if (rc == 0)
        rc = mpr_router_new(&router, mpr_fd_loop_event_loop(loop));
    if (rc == 0)
        rc = mpr_router_start(router);
    if (rc < 0) {
        fprintf(stderr, "glib: %s\n", mpr_strerror(rc));
        return 1;
    }

    main_loop = g_main_loop_new(NULL, FALSE);
    guint watch = g_unix_fd_add(mpr_fd_loop_fd(loop), G_IO_IN, on_fd_readable, loop);
    guint timeout = g_timeout_add_seconds(120, on_timeout, NULL);

    worker *workers = calloc((size_t)count, sizeof *workers);
    if (!workers)
        return 1;
    for (int i = 0; i < count; i++) {
        mpr_sender *sender;
        workers[i].index = i;
        workers[i].next_step = 1;
        rc = mpr_router_pipe(router, &sender, &workers[i].receiver);
        if (rc < 0) {
            fprintf(stderr, "glib: mpr_router_pipe: %s\n", mpr_strerror(rc));
            return 1;
        }
        mpr_receiver_set_callback(workers[i].receiver, on_message, &workers[i]);
        workers[i].pid = fork();
        if (workers[i].pid == 0)
            run_worker(sender, i);
        mpr_sender_free(sender); /* the parent's copy */
        if (workers[i].pid < 0)
            return 1;
    }
    workers_left = count;
    printf("glib: %d workers started\n", count);
    fflush(stdout);

    g_main_loop_run(main_loop);

    int ok = 1;
    for (int i = 0; i < count; i++) {
        int status = 0;
        if (workers[i].next_step != STEPS + 1)
            kill(workers[i].pid, SIGKILL); /* gave up on it: do not wait for a stuck worker */
        waitpid(workers[i].pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || workers[i].out_of_order ||
            workers[i].next_step != STEPS + 1) {
            fprintf(stderr, "glib: worker %d failed\n", i);
            ok = 0;
        }
        mpr_router_close_pipe(router, workers[i].receiver);
    }
    g_source_remove(timeout);
    g_source_remove(watch);
    g_main_loop_unref(main_loop);
    mpr_router_stop(router);
    mpr_router_free(router);
    mpr_fd_loop_free(loop);
    free(workers);
    printf("glib: %s\n", ok ? "all messages arrived in order" : "FAILED");
    return ok ? 0 : 1;
}
