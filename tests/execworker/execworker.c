/* execworker - a worker program of the executor (tests/executor): runs
 * mpr_worker_main with the tasks below. "--die" as its first argument: it
 * exits with status 1 at once (a worker that dies every time it starts). */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
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

int main(int argc, char **argv)
{
    static const mpr_task_def tasks[] = {{"echo", echo},   {"fail", fail}, {"progress", progress},
                                         {"spin", spin},   {"stuck", stuck}, {"touch", touch},
                                         {NULL, NULL}};
    if (argc > 1 && strcmp(argv[1], "--die") == 0)
        return 1;
    return mpr_worker_main(tasks, NULL, NULL);
}
