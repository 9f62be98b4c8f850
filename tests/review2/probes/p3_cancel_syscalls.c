/* p3: does mpr_sender_cancelled make system calls? Run under
 * strace -f -c and compare PROBE_N=0 with PROBE_N=1000000. Also checks the
 * newest tag wins and is seen within a bounded time. */
#include "probe.h"
int main(void)
{
    long n = getenv("PROBE_N") ? atol(getenv("PROBE_N")) : 1000000;
    setup_router(NULL);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (getenv("PROBE_TRANSPORT")) setenv("MPR_TRANSPORT", getenv("PROBE_TRANSPORT"), 1);
        if (mpr_sender_start(s)) _exit(3);
        report(s, "started");
        double a = now_s(); uint64_t c = 0, first = 0;
        while (now_s() - a < 5 && (c = mpr_sender_cancelled(s)) != 1000) if (!first && c) first = c;
        report(s, "saw tag %llu after %.1f ms (first nonzero %llu)", (unsigned long long)c, (now_s() - a) * 1e3, (unsigned long long)first);
        a = now_s();
        uint64_t acc = 0;
        for (long i = 0; i < n; i++) acc += mpr_sender_cancelled(s);
        report(s, "%ld calls in %.1f ms", n, (now_s() - a) * 1e3);
        mpr_sender_stop(s);
        _exit(0);
    }
    mpr_sender_free(s);
    volatile int f = 0;
    while (g_nreports < 1) pump(0.01, &f);
    for (uint64_t t = 1; t <= 1000; t++) mpr_receiver_cancel(r, t);
    double a = now_s();
    while (g_nreports < 3 && now_s() - a < 20) pump(0.01, NULL);
    print_reports();
    waitpid(pid, NULL, 0);
    mpr_router_free(g_router);
}
