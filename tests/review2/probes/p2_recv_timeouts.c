/* p2: mpr_sender_recv timeouts (0, negative, NaN, tiny, huge, infinity),
 * wrong thread, forked copy, cancelled() cost, router stopped while the
 * worker waits in recv. The worker reports each measurement. The parent
 * sends one control message 400 ms after each "wait" report. */
#include "probe.h"
#include <float.h>

static mpr_sender *gs;
static void *other_thread(void *arg)
{
    (void)arg;
    char b[8]; size_t len;
    int rc = mpr_sender_recv(gs, b, sizeof b, &len, 0);
    uint64_t c = mpr_sender_cancelled(gs);
    report(gs, "(this report is sent from the wrong thread and must not arrive)");
    static char res[128];
    snprintf(res, sizeof res, "other thread: recv -> %s, cancelled -> %llu", mpr_strerror(rc), (unsigned long long)c);
    return res;
}

int main(void)
{
    setup_router(getenv("PROBE_TRANSPORT") && !strcmp(getenv("PROBE_TRANSPORT"), "zmq") ? "tcp://127.0.0.1:0" : NULL);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    const char *tr = getenv("PROBE_TRANSPORT");
    static const double waits[] = {-1.0, -INFINITY, INFINITY, 1e300, DBL_MAX, 1e19, 9.3e9, 1.8e10, 4294967296.0};
    const int nwaits = sizeof waits / sizeof waits[0];
    pid_t pid = fork();
    if (pid == 0) {
        if (tr) setenv("MPR_TRANSPORT", tr, 1);
        gs = s;
        if (mpr_sender_start(s)) _exit(3);
        char b[64]; size_t len; double a;
        a = now_s(); int rc = mpr_sender_recv(s, b, sizeof b, &len, 0.0);
        report(s, "timeout 0 -> %s in %.1f ms", mpr_strerror(rc), (now_s() - a) * 1e3);
        a = now_s(); rc = mpr_sender_recv(s, b, sizeof b, &len, NAN);
        report(s, "timeout NaN -> %s in %.1f ms", mpr_strerror(rc), (now_s() - a) * 1e3);
        a = now_s(); rc = mpr_sender_recv(s, b, sizeof b, &len, 1e-300);
        report(s, "timeout 1e-300 -> %s in %.1f ms", mpr_strerror(rc), (now_s() - a) * 1e3);
        a = now_s(); rc = mpr_sender_recv(s, b, sizeof b, &len, 0.2);
        report(s, "timeout 0.2 -> %s in %.1f ms", mpr_strerror(rc), (now_s() - a) * 1e3);
        rc = mpr_sender_recv(s, b, sizeof b, NULL, 0);
        report(s, "length NULL -> %s", mpr_strerror(rc));
        rc = mpr_sender_recv(s, NULL, 5, &len, 0);
        report(s, "buf NULL size 5 -> %s", mpr_strerror(rc));
        for (int i = 0; i < nwaits; i++) {
            report(s, "wait %d", i);
            a = now_s(); rc = mpr_sender_recv(s, b, sizeof b, &len, waits[i]);
            report(s, "timeout %g -> %s in %.1f ms (expect 0 after ~400 ms)", waits[i], mpr_strerror(rc), (now_s() - a) * 1e3);
        }
        /* EMSGSIZE keeps the message */
        report(s, "wait big");
        rc = mpr_sender_recv(s, b, 2, &len, 5);
        int rc2 = mpr_sender_recv(s, b, sizeof b, &len, 5);
        report(s, "small buf -> %s len %zu; again big -> %s len %zu", mpr_strerror(rc), len, mpr_strerror(rc2), len);
        /* wrong thread */
        pthread_t t; void *res;
        pthread_create(&t, NULL, other_thread, NULL);
        pthread_join(t, &res);
        report(s, "%s", (char *)res);
        /* forked copy */
        pid_t c = fork();
        if (c == 0) {
            int rc = mpr_sender_recv(s, b, sizeof b, &len, 0.1);
            _exit(rc == MPR_EOWNER ? 0 : 10 + (-rc));
        }
        int st; waitpid(c, &st, 0);
        report(s, "forked copy recv exit %d (0 = EOWNER)", WEXITSTATUS(st));
        /* cancelled() cost */
        uint64_t acc = 0;
        a = now_s();
        for (int i = 0; i < 10000000; i++) acc += mpr_sender_cancelled(s);
        report(s, "10M cancelled() calls %.1f ms (%.1f ns each) acc %llu", (now_s() - a) * 1e3, (now_s() - a) * 100, (unsigned long long)acc);
        /* router stop while waiting */
        report(s, "wait stop");
        a = now_s(); rc = mpr_sender_recv(s, b, sizeof b, &len, 20.0);
        double d = now_s() - a;
        int rc3 = mpr_sender_recv(s, b, sizeof b, &len, -1);
        int rc4 = mpr_sender_send(s, "x", 1);
        fprintf(stderr, "CHILD: recv while router stopped -> %s after %.1f ms; again(-1) -> %s; send -> %s\n",
                mpr_strerror(rc), d * 1e3, mpr_strerror(rc3), mpr_strerror(rc4));
        _exit(0);
    }
    mpr_sender_free(s);
    int seen = 0; double t0 = now_s();
    while (now_s() - t0 < 60) {
        pump(0.01, NULL);
        for (; seen < g_nreports; seen++) {
            printf("  worker: %s\n", g_reports[seen]);
            fflush(stdout);
            if (!strncmp(g_reports[seen], "wait", 4)) {
                pump(0.4, NULL);
                if (!strcmp(g_reports[seen], "wait stop")) {
                    mpr_router_stop(g_router);
                    goto done;
                }
                mpr_receiver_send(r, "hello world", 11);
            }
        }
    }
done:;
    int st;
    double a = now_s();
    while (waitpid(pid, &st, WNOHANG) == 0 && now_s() - a < 25) usleep(10000);
    if (waitpid(pid, &st, WNOHANG) == 0) { printf("worker still waiting 25 s after router stop\n"); kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
    mpr_router_free(g_router);
    return 0;
}
