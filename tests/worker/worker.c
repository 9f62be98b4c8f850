/*
 * mpr_test_worker - a worker program for the tests: gets its sender as a
 * string and sends test messages (tests/common/payload.h).
 *
 *   mpr_test_worker SENDER COUNT SIZE [TAG] [--interval-ms N] [--no-stop]
 *                   [--kill-after N] [--interval-us N] [--wait-at N] [--report]
 *
 * SENDER "-" (what the tests use) reads the string from the first line of
 * standard input, the way a worker should get it: a command line is
 * readable by every user of the machine.
 *
 * Prints "started" when the sender is connected and "sent N" at the end.
 * Exit status: 0 on success, 2 for bad arguments, 3 if start failed, 4 if a
 * send failed (the error is printed).
 *
 * --wait-at N: before message N, wait for a line (or the end) on standard
 * input, after the sender string: a test releases the worker when it is
 * ready (a bystander that sends half, then the rest).
 * --interval-us N: a pause of N microseconds after every message.
 * --report: a send that fails ends the loop but not the program: stop is
 * called all the same, and the last line says what happened,
 *     result sent=K error=E stop=RC
 * (K sends returned 0, E the first send error or 0, RC what stop
 * returned); "start failed: TEXT (RC)" if start failed. Exit status 0 if
 * every message was sent and stop returned 0, 5 otherwise (3 if start
 * failed).
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
    unsigned long tag = 0, interval_ms = 0, kill_after = 0, interval_us = 0, wait_at = 0;
    int stop = 1, report = 0, waited = 0;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--interval-ms") && i + 1 < argc)
            interval_ms = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kill-after") && i + 1 < argc)
            kill_after = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--no-stop"))
            stop = 0;
        else if (!strcmp(argv[i], "--interval-us") && i + 1 < argc)
            interval_us = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--wait-at") && i + 1 < argc)
            wait_at = strtoul(argv[++i], NULL, 10), waited = 1;
        else if (!strcmp(argv[i], "--report"))
            report = 1;
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
        if (report)
            printf("start failed: %s (%d)\n", mpr_strerror(rc), rc);
        else
            printf("start failed: %s\n", mpr_strerror(rc));
        fflush(stdout);
        mpr_sender_free(sender); /* (LeakSanitizer looks at every exit) */
        return 3;
    }
    printf("started\n");
    fflush(stdout);

    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return 4;
    unsigned long sent = 0;
    int error = 0;
    for (unsigned long seq = 0; seq < count; seq++) {
        if (kill_after && seq == kill_after)
            raise(SIGKILL);
        if (waited && seq == wait_at) {
            char line[64];
            if (!fgets(line, sizeof line, stdin)) {
                /* the end of standard input releases us too */
            }
        }
        mpr_test_fill(buf, size, (uint32_t)seq, (uint32_t)tag);
        rc = mpr_sender_send(sender, buf, size);
        if (rc < 0) {
            printf("send failed: %s\n", mpr_strerror(rc));
            if (!report) {
                fflush(stdout);
                mpr_sender_free(sender);
                free(buf);
                return 4;
            }
            error = rc;
            break;
        }
        sent++;
        if (interval_ms) {
            struct timespec ts = {(time_t)(interval_ms / 1000), (long)(interval_ms % 1000) * 1000000};
            nanosleep(&ts, NULL);
        }
        if (interval_us) {
            struct timespec ts = {(time_t)(interval_us / 1000000), (long)(interval_us % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    int stop_rc = 0;
    if (stop)
        stop_rc = mpr_sender_stop(sender);
    if (report) {
        printf("result sent=%lu error=%d stop=%d\n", sent, error, stop_rc);
        fflush(stdout);
        mpr_sender_free(sender);
        free(buf);
        return sent == count && error == 0 && stop_rc == 0 ? 0 : 5;
    }
    mpr_sender_free(sender);
    free(buf);
    printf("sent %lu\n", count);
    return 0;
}
