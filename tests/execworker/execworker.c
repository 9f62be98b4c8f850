/* execworker - a worker program of the executor (tests/executor,
 * tests/executor_remote): runs mpr_worker_main with the tasks below and a
 * per-worker initialisation that counts its runs. "--die" as its first
 * argument: it exits with status 1 at once (a worker that dies every time
 * it starts). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
    static const mpr_task_def tasks[] = {{"echo", echo},   {"fail", fail}, {"progress", progress},
                                         {"spin", spin},   {"stuck", stuck}, {"inits", inits},
                                         {NULL, NULL}};
    if (argc > 1 && strcmp(argv[1], "--die") == 0)
        return 1;
    static int init_runs;
    return mpr_worker_main(tasks, init, &init_runs);
}
