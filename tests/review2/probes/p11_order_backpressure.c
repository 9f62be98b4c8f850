/* p11: order of control messages while the worker is blocked in send
 * (queue limit 256 KiB, the main thread routes only every 50 ms): numbered
 * control messages of 4 B .. 300 KB; the worker interleaves sends and
 * recv(0) and checks order, gaps, duplicates, lengths. argv[1]: transport. */
#include "probe.h"
static size_t sz(int k) { return 4 + (size_t)((k * 7919u) % 300000u); }
int main(int argc, char **argv)
{
    const char *tr = argc > 1 ? argv[1] : "ring";
    mpr_set_log_handler(quiet_log, NULL);
    mpr_fd_loop_new(&g_loop);
    mpr_router_new(&g_router, mpr_fd_loop_event_loop(g_loop));
    mpr_router_set_queue_limit(g_router, 256 << 10);
    if (!strcmp(tr, "zmq")) mpr_router_set_remote(g_router, "tcp://127.0.0.1:0", NULL);
    mpr_router_start(g_router);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    int res[2]; pipe(res);
    pid_t pid = fork();
    if (pid == 0) {
        if (strcmp(tr, "ring")) setenv("MPR_TRANSPORT", tr, 1);
        if (mpr_sender_start(s)) _exit(3);
        static unsigned char b[MPR_CONTROL_MAX_SIZE]; static char big[65536]; size_t len;
        int expect = 0, dup = 0, gap = 0, bad = 0, sends = 0; double a = now_s();
        while (now_s() - a < 5) {
            for (int i = 0; i < 8; i++) if (mpr_sender_send(s, big, sizeof big) == 0) sends++;
            while (mpr_sender_recv(s, b, sizeof b, &len, 0) == 0) {
                int k; memcpy(&k, b, 4);
                if (len != sz(k) || b[len - 1] != (unsigned char)k) bad++;
                if (k < expect) dup++; else if (k > expect) gap++;
                expect = k + 1;
            }
        }
        char out[200]; int n = snprintf(out, sizeof out, "%s: worker got up to #%d: dups %d gaps %d bad %d; %d sends", tr, expect, dup, gap, bad, sends);
        write(res[1], out, n);
        _exit(0);
    }
    mpr_sender_free(s);
    static unsigned char b[MPR_CONTROL_MAX_SIZE];
    int k = 0; double a = now_s(), last = 0;
    while (now_s() - a < 5) {
        memcpy(b, &k, 4); b[sz(k) - 1] = (unsigned char)k;
        if (mpr_receiver_send(r, b, sz(k)) == 0) k++;
        if (now_s() - last > 0.05) { last = now_s(); mpr_fd_loop_dispatch(g_loop); } else usleep(500);
    }
    printf("router sent %d control messages\n", k);
    while (now_s() - a < 6) pump(0.01, NULL);
    char out[200] = ""; int n = read(res[0], out, sizeof out - 1); if (n > 0) out[n] = 0;
    printf("%s\n", out);
    kill(pid, SIGKILL); waitpid(pid, NULL, 0);
    mpr_router_free(g_router);
}
