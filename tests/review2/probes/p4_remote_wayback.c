/* p4: the way back over tcp (MPR_TRANSPORT=zmq, 127.0.0.1).
 *  mode "bound":   worker never reads; how many bytes does the router accept,
 *                  what does the worker hold (RSS)?
 *  mode "order":   2000 numbered control messages of varying size; the worker
 *                  checks order/gaps/dups; optional PROBE_OUTAGE=secs: drop the
 *                  router's port with nft during the stream (run inside
 *                  `unshare -n` with lo up!), PROBE_STOPW=secs: SIGSTOP the worker.
 *  mode "stop":    router stopped while the worker waits in recv(-1). */
#include "probe.h"
static size_t SZ(int k) { return getenv("PROBE_BIG") ? 4 + (size_t)((k * 99991u) % (MPR_CONTROL_MAX_SIZE - 4)) : 4 + (size_t)(k * 997 % 60000); }

static int nft(const char *cmd) { return system(cmd); }

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "order";
    setup_router("tcp://127.0.0.1:0");
    char ep[128];
    mpr_router_remote_endpoint(g_router, ep, sizeof ep);
    int port = atoi(strrchr(ep, ':') + 1);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    mpr_receiver_set_lost_callback(r, on_lost, NULL);
    const int N = 2000;
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MPR_TRANSPORT", "zmq", 1);
        int rc = mpr_sender_start(s);
        if (rc) { fprintf(stderr, "start %s\n", mpr_strerror(rc)); _exit(3); }
        report(s, "started");
        static unsigned char b[MPR_CONTROL_MAX_SIZE];
        size_t len;
        if (!strcmp(mode, "bound")) {
            for (int i = 0; i < 80; i++) { usleep(50000); }
            report(s, "worker RSS %ld KiB", rss_kib(getpid()));
            sleep(3);
            _exit(0);
        }
        if (!strcmp(mode, "stop")) {
            report(s, "waiting");
            double a = now_s();
            rc = mpr_sender_recv(s, b, sizeof b, &len, -1);
            fprintf(stderr, "CHILD: recv(-1) with router stopped -> %s after %.0f ms\n", mpr_strerror(rc), (now_s() - a) * 1e3);
            _exit(0);
        }
        int expect = 0, bad = 0, dup = 0, gap = 0;
        double a = now_s();
        while (expect < N && now_s() - a < 40) {
            rc = mpr_sender_recv(s, b, sizeof b, &len, 0.5);
            if (rc == MPR_ETIMEDOUT) continue;
            if (rc) { report(s, "recv -> %s at %d", mpr_strerror(rc), expect); break; }
            int k; memcpy(&k, b, 4);
            if (len != SZ(k)) bad++;
            if (k < expect) dup++; else if (k > expect) gap++;
            expect = k + 1;
        }
        report(s, "received up to %d/%d: dups %d, gaps %d, bad length %d, %.1f s", expect, N, dup, gap, bad, now_s() - a);
        rc = mpr_sender_stop(s);
        report(s, "stop -> %s", mpr_strerror(rc));
        _exit(0);
    }
    mpr_sender_free(s);
    double a = now_s();
    while (g_nreports < 1 && now_s() - a < 15) pump(0.01, NULL);
    if (!g_nreports) { printf("worker did not start\n"); kill(pid, SIGKILL); return 1; }
    static unsigned char b[MPR_CONTROL_MAX_SIZE];
    if (!strcmp(mode, "bound")) {
        size_t acc = 0; int rc = 0; long rss0 = rss_kib(getpid());
        a = now_s();
        while (now_s() - a < 4) {
            rc = mpr_receiver_send(r, b, 65536);
            if (rc == 0) acc += 65536; else pump(0.01, NULL);
        }
        printf("router accepted %zu bytes (%.2f MiB, bound %zu) for a worker that never reads; last rc %s; router RSS +%ld KiB\n",
               acc, acc / 1048576.0, MPR_CONTROL_QUEUE_SIZE, mpr_strerror(rc), rss_kib(getpid()) - rss0);
        pump(1.5, NULL);
        print_reports();
        waitpid(pid, NULL, 0);
    } else if (!strcmp(mode, "stop")) {
        pump(0.5, NULL);
        mpr_router_stop(g_router);
        int st; a = now_s();
        while (waitpid(pid, &st, WNOHANG) == 0 && now_s() - a < 30) usleep(10000);
        if (now_s() - a >= 30) { printf("worker still in recv 30 s after stop\n"); kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
    } else {
        double outage = getenv("PROBE_OUTAGE") ? atof(getenv("PROBE_OUTAGE")) : 0;
        double stopw = getenv("PROBE_STOPW") ? atof(getenv("PROBE_STOPW")) : 0;
        int k = 0, eagain = 0, slow10 = 0; double worst = 0; int down = 0, stopped = 0;
        a = now_s();
        char cmd[256];
        while (k < N && now_s() - a < 40) {
            if (outage > 0 && k == 300 && !down) {
                snprintf(cmd, sizeof cmd, "nft add table inet p4 && nft add chain inet p4 c '{ type filter hook input priority 0; }' && nft add rule inet p4 c tcp dport %d drop && nft add rule inet p4 c tcp sport %d drop", port, port);
                printf("outage on: %d\n", nft(cmd)); down = 1;
                double t = now_s();
                while (now_s() - t < outage) {
                    memcpy(b, &k, 4);
                    int rc = mpr_receiver_send(r, b, SZ(k));
                    if (rc == 0) k++; else if (rc == MPR_EAGAIN) eagain++; else { printf("send during outage -> %s\n", mpr_strerror(rc)); break; }
                    pump(0.005, NULL);
                }
                printf("outage off: %d (k=%d)\n", nft("nft delete table inet p4"), k);
            }
            if (stopw > 0 && k == 300 && !stopped) { kill(pid, SIGSTOP); stopped = 1; double t = now_s();
                while (now_s() - t < stopw) { memcpy(b, &k, 4); if (mpr_receiver_send(r, b, SZ(k)) == 0) k++; pump(0.005, NULL); }
                kill(pid, SIGCONT); printf("worker continued (k=%d)\n", k); }
            memcpy(b, &k, 4);
            double t = now_s();
            int rc = mpr_receiver_send(r, b, SZ(k));
            if (now_s() - t > worst) worst = now_s() - t;
            if (now_s() - t > 0.01) { slow10++; if (getenv("PROBE_VERBOSE")) printf("slow send #%d size %zu: %.1f ms rc %d\n", k, SZ(k), (now_s() - t) * 1e3, rc); }
            if (rc == 0) k++;
            else if (rc == MPR_EAGAIN) { eagain++; pump(0.002, NULL); }
            else { printf("send %d -> %s\n", k, mpr_strerror(rc)); break; }
        }
        printf("sent %d (EAGAIN %d times), slowest send %.2f ms, %d sends over 10 ms, %.1f s\n", k, eagain, worst * 1e3, slow10, now_s() - a);
        a = now_s();
        while (g_nreports < 3 && now_s() - a < 45) pump(0.01, NULL);
        print_reports();
        printf("lost=%d\n", g_lost);
        waitpid(pid, NULL, 0);
    }
    mpr_router_free(g_router);
    return 0;
}
