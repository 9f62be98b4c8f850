/*
 * mpr_test_worker - a worker program for the tests: gets its sender as a
 * string and sends test messages (tests/common/payload.h).
 *
 *   mpr_test_worker SENDER COUNT SIZE [TAG] [--interval-ms N] [--no-stop]
 *                   [--kill-after N]
 *
 * SENDER "-" (what the tests use) reads the string from the first line of
 * standard input, the way a worker should get it: a command line is
 * readable by every user of the machine.
 *
 * Prints "started" when the sender is connected and "sent N" at the end.
 * Exit status: 0 on success, 2 for bad arguments, 3 if start failed, 4 if a
 * send failed (the error is printed).
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mprouter/mprouter.h>

#include "../common/payload.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s SENDER COUNT SIZE [TAG] [options]\n", argv[0]);
        return 2;
    }
    unsigned long count = strtoul(argv[2], NULL, 10);
    size_t size = strtoul(argv[3], NULL, 10);
    unsigned long tag = 0, interval_ms = 0, kill_after = 0;
    int stop = 1;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--interval-ms") && i + 1 < argc)
            interval_ms = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kill-after") && i + 1 < argc)
            kill_after = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--no-stop"))
            stop = 0;
        else
            tag = strtoul(argv[i], NULL, 10);
    }

    char text[1024];
    const char *string = argv[1];
    if (!strcmp(string, "-")) {
        if (!fgets(text, sizeof text, stdin)) {
            fprintf(stderr, "no sender string on standard input\n");
            return 2;
        }
        text[strcspn(text, "\n")] = '\0';
        string = text;
    }
    mpr_sender *sender;
    int rc = mpr_sender_from_string(&sender, string);
    if (rc < 0) {
        fprintf(stderr, "mpr_sender_from_string: %s\n", mpr_strerror(rc));
        return 2;
    }
    rc = mpr_sender_start(sender);
    if (rc < 0) {
        printf("start failed: %s\n", mpr_strerror(rc));
        return 3;
    }
    printf("started\n");
    fflush(stdout);

    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return 4;
    for (unsigned long seq = 0; seq < count; seq++) {
        if (kill_after && seq == kill_after)
            raise(SIGKILL);
        mpr_test_fill(buf, size, (uint32_t)seq, (uint32_t)tag);
        rc = mpr_sender_send(sender, buf, size);
        if (rc < 0) {
            printf("send failed: %s\n", mpr_strerror(rc));
            return 4;
        }
        if (interval_ms) {
            struct timespec ts = {(time_t)(interval_ms / 1000), (long)(interval_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (stop)
        mpr_sender_stop(sender);
    mpr_sender_free(sender);
    free(buf);
    printf("sent %lu\n", count);
    return 0;
}
