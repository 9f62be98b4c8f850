/*
 * mpr_test_ctlworker - a worker for the tests of the way back
 * (tests/control), driven by lines on standard input. The first line is
 * the sender string; then one command a line, each answered by one line
 * on standard output:
 *
 *   start                 -> "start RC"
 *   recv SIZE TIMEOUT_S   -> "recv RC LEN" (buffer of SIZE bytes)
 *   echo N TIMEOUT_S      -> take N control messages and send each back
 *                            as a message, unchanged: "echo RC COUNT"
 *                            (RC of the recv or send that ended it early)
 *   cancelled             -> "cancelled TAG"
 *   waitcancel TAG MS     -> call mpr_sender_cancelled until it returns
 *                            TAG (a pause of 100 us between calls), at
 *                            most MS milliseconds: "waitcancel ok CALLS"
 *                            or "waitcancel timeout LAST"
 *   send SIZE             -> a message of SIZE bytes: "send RC"
 *   stop                  -> "stop RC"
 *   hold                  -> read nothing more, ever (a worker that does
 *                            not read its way back): no answer
 *   exit                  -> ends (the sender freed: a lost sender if
 *                            still open)
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mprouter/mprouter.h>

static void say(const char *fmt, long a, long b, long c)
{
    printf(fmt, a, b, c);
    putchar('\n');
    fflush(stdout);
}

int main(void)
{
    char line[4096];
    if (!fgets(line, sizeof line, stdin))
        return 2;
    line[strcspn(line, "\n")] = 0;
    mpr_sender *s = NULL;
    if (mpr_sender_from_string(&s, line) != 0)
        return 2;
    memset(line, 0, sizeof line);
    size_t cap = MPR_CONTROL_MAX_SIZE + 1;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return 2;
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32] = "";
        double a = 0, b = 0;
        if (sscanf(line, "%31s %lf %lf", cmd, &a, &b) < 1)
            continue;
        if (!strcmp(cmd, "start")) {
            say("start %ld", mpr_sender_start(s), 0, 0);
        } else if (!strcmp(cmd, "recv")) {
            size_t len = 0;
            size_t size = (size_t)a < cap ? (size_t)a : cap;
            int rc = mpr_sender_recv(s, buf, size, &len, b);
            say("recv %ld %ld", rc, (long)len, 0);
        } else if (!strcmp(cmd, "echo")) {
            long n = (long)a, done = 0;
            int rc = 0;
            while (done < n) {
                size_t len = 0;
                rc = mpr_sender_recv(s, buf, cap, &len, b);
                if (rc == 0)
                    rc = mpr_sender_send(s, buf, len);
                if (rc != 0)
                    break;
                done++;
            }
            say("echo %ld %ld", rc, done, 0);
        } else if (!strcmp(cmd, "cancelled")) {
            printf("cancelled %llu\n", (unsigned long long)mpr_sender_cancelled(s));
            fflush(stdout);
        } else if (!strcmp(cmd, "waitcancel")) {
            uint64_t want = (uint64_t)a, last = 0;
            struct timespec t0, t;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            long calls = 0;
            int ok = 0;
            for (;;) {
                calls++;
                last = mpr_sender_cancelled(s);
                if (last == want) {
                    ok = 1;
                    break;
                }
                clock_gettime(CLOCK_MONOTONIC, &t);
                if ((t.tv_sec - t0.tv_sec) * 1000.0 + (t.tv_nsec - t0.tv_nsec) / 1e6 > b)
                    break;
                struct timespec pause = {0, 100000};
                nanosleep(&pause, NULL);
            }
            if (ok)
                say("waitcancel ok %ld", calls, 0, 0);
            else
                printf("waitcancel timeout %llu\n", (unsigned long long)last), fflush(stdout);
        } else if (!strcmp(cmd, "send")) {
            size_t size = (size_t)a < cap ? (size_t)a : cap;
            for (size_t i = 0; i < size; i++)
                buf[i] = (unsigned char)(i * 7);
            say("send %ld", mpr_sender_send(s, buf, size), 0, 0);
        } else if (!strcmp(cmd, "stop")) {
            say("stop %ld", mpr_sender_stop(s), 0, 0);
        } else if (!strcmp(cmd, "hold")) {
            for (;;)
                pause();
        } else if (!strcmp(cmd, "exit")) {
            break;
        }
    }
    mpr_sender_free(s);
    free(buf);
    return 0;
}
