/*
 * consumer.c - a C program outside the mprouter tree, built against an
 * installed mprouter: a fork()ed worker sends one message, the main thread
 * receives it through the fd loop and a poll() loop.
 *
 * Prints "library: PATH" (the libmprouter it runs with), "version: ..." and
 * "received: hello from worker"; exits 0 on success.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mprouter/mprouter.h>

static int received;

static void on_message(void *arg, const void *data, size_t size)
{
    (void)arg;
    printf("received: %.*s\n", (int)size, (const char *)data);
    received = 1;
}

/* The file the loaded libmprouter comes from, from /proc/self/maps. */
static void print_library(void)
{
    char line[4096];
    FILE *maps = fopen("/proc/self/maps", "r");
    if (!maps)
        return;
    while (fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (path && strstr(path, "/libmprouter.so")) {
            printf("library: %s", path);
            break;
        }
    }
    fclose(maps);
}

#define CHECK(call)                                                       \
    do {                                                                  \
        int rc_ = (call);                                                 \
        if (rc_ < 0) {                                                    \
            fprintf(stderr, "%s: %s\n", #call, mpr_strerror(rc_));        \
            return 1;                                                     \
        }                                                                 \
    } while (0)

int main(void)
{
    mpr_fd_loop *loop;
    mpr_router *router;
    mpr_sender *sender;
    mpr_receiver *receiver;

    print_library();
    printf("version: %s (headers %s)\n", mpr_version(), MPR_VERSION_STRING);
    fflush(stdout);

    CHECK(mpr_fd_loop_new(&loop));
    CHECK(mpr_router_new(&router, mpr_fd_loop_event_loop(loop)));
    CHECK(mpr_router_start(router));
    CHECK(mpr_router_pipe(router, &sender, &receiver));
    mpr_receiver_set_callback(receiver, on_message, NULL);

    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) { /* the worker */
        int ok = mpr_sender_start(sender) == 0 &&
                 mpr_sender_send(sender, "hello from worker", 17) == 0 &&
                 mpr_sender_stop(sender) == 0;
        mpr_sender_free(sender);
        _exit(ok ? 0 : 1);
    }
    mpr_sender_free(sender); /* the parent's copy */

    /* At most 600 polls of 100 ms: a guard against hanging, not a timing. */
    struct pollfd p = { mpr_fd_loop_fd(loop), POLLIN, 0 };
    for (int i = 0; i < 600 && !received; i++) {
        if (poll(&p, 1, 100) > 0)
            CHECK(mpr_fd_loop_dispatch(loop));
    }

    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(mpr_router_close_pipe(router, receiver));
    CHECK(mpr_router_stop(router));
    mpr_router_free(router);
    mpr_fd_loop_free(loop);

    if (!received)
        fprintf(stderr, "no message\n");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "the worker failed\n");
    if (strcmp(mpr_version(), MPR_VERSION_STRING) != 0)
        fprintf(stderr, "library %s, headers %s\n", mpr_version(), MPR_VERSION_STRING);
    return received && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                   strcmp(mpr_version(), MPR_VERSION_STRING) == 0
               ? 0
               : 1;
}
