/* probe.h - shared helpers for the review2 probes (bounded, loopback only). */
#define _GNU_SOURCE
#include <mprouter/mprouter.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static mpr_fd_loop *g_loop;
static mpr_router *g_router;

static void quiet_log(void *arg, int level, const char *msg)
{
    (void)arg;
    if (getenv("PROBE_VERBOSE"))
        fprintf(stderr, "[log %d] %s\n", level, msg);
}

static void setup_router(const char *remote)
{
    mpr_set_log_handler(quiet_log, NULL);
    if (mpr_fd_loop_new(&g_loop) || mpr_router_new(&g_router, mpr_fd_loop_event_loop(g_loop))) {
        printf("setup failed\n");
        exit(2);
    }
    if (remote) {
        int rc = mpr_router_set_remote(g_router, remote, NULL);
        if (rc) { printf("set_remote %s\n", mpr_strerror(rc)); exit(2); }
        mpr_router_set_remote_window(g_router, getenv("PROBE_WINDOW") ? atof(getenv("PROBE_WINDOW")) : 10.0);
    }
    int rc = mpr_router_start(g_router);
    if (rc) { printf("start %s\n", mpr_strerror(rc)); exit(2); }
}

/* Run the fd loop for up to secs seconds, or until *flag is set. */
static void pump(double secs, volatile int *flag)
{
    double end = now_s() + secs;
    while (now_s() < end && !(flag && *flag)) {
        struct pollfd p = {mpr_fd_loop_fd(g_loop), POLLIN, 0};
        poll(&p, 1, 10);
        mpr_fd_loop_dispatch(g_loop);
    }
}

/* Messages from the worker: text reports collected here. */
static char g_reports[64][256];
static int g_nreports;
static volatile int g_lost;
static void on_msg(void *arg, const void *data, size_t size)
{
    (void)arg;
    if (g_nreports < 64) {
        size_t n = size < 255 ? size : 255;
        memcpy(g_reports[g_nreports], data, n);
        g_reports[g_nreports][n] = 0;
        g_nreports++;
    }
}
static void on_lost(void *arg) { (void)arg; g_lost = 1; }

static void report(mpr_sender *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void report(mpr_sender *s, const char *fmt, ...)
{
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    mpr_sender_send(s, b, (size_t)n);
}

static void print_reports(void)
{
    for (int i = 0; i < g_nreports; i++)
        printf("  worker: %s\n", g_reports[i]);
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    fclose(f);
    return v;
}
