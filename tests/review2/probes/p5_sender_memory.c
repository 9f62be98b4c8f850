/* p5: memory a LOCAL worker holds for control messages it never reads,
 * while it waits in send (queue limit, main thread not routing). The router
 * keeps calling mpr_receiver_send (64 KiB) for PROBE_SECS seconds without
 * dispatching; we measure bytes accepted and the worker's RSS. */
#include "probe.h"
int main(void)
{
    double secs = getenv("PROBE_SECS") ? atof(getenv("PROBE_SECS")) : 5;
    mpr_set_log_handler(quiet_log, NULL);
    mpr_fd_loop_new(&g_loop);
    mpr_router_new(&g_router, mpr_fd_loop_event_loop(g_loop));
    mpr_router_set_queue_limit(g_router, 1 << 20);
    mpr_router_start(g_router);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    int ready[2]; pipe(ready);
    pid_t pid = fork();
    if (pid == 0) {
        if (getenv("PROBE_TRANSPORT")) setenv("MPR_TRANSPORT", getenv("PROBE_TRANSPORT"), 1);
        if (mpr_sender_start(s)) _exit(3);
        write(ready[1], "x", 1);
        static char b[65536];
        for (int i = 0; i < 100000; i++) if (mpr_sender_send(s, b, sizeof b)) break;
        _exit(0);
    }
    mpr_sender_free(s);
    char c; read(ready[0], &c, 1);
    usleep(300000);
    long w0 = rss_kib(pid);
    static char b[65536];
    size_t acc = 0; double a = now_s(), worst = 0;
    long maxw = 0;
    while (now_s() - a < secs) {
        double t = now_s();
        int rc = mpr_receiver_send(r, b, sizeof b);
        if (now_s() - t > worst) worst = now_s() - t;
        if (rc == 0) acc += sizeof b; else if (rc != MPR_EAGAIN) { printf("send -> %s\n", mpr_strerror(rc)); break; } else usleep(1000);
        long w = rss_kib(pid); if (w > maxw) maxw = w;
        if (maxw > 1024 * 1024) break; /* 1 GiB: enough */
    }
    printf("transport %s: not routing, worker blocked in send: router accepted %.1f MiB of control messages in %.1f s; worker RSS %ld -> %ld KiB (max); slowest receiver_send %.2f ms; router RSS %ld KiB\n",
           getenv("PROBE_TRANSPORT") ? getenv("PROBE_TRANSPORT") : "ring", acc / 1048576.0, now_s() - a, w0, maxw, worst * 1e3, rss_kib(getpid()));
    kill(pid, SIGKILL); waitpid(pid, NULL, 0);
    mpr_router_free(g_router);
}
