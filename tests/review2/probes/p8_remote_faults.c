/* p8: remote faults around the way back (127.0.0.1, MPR_TRANSPORT=zmq).
 *  slowrouter FREEZE: the router process SIGSTOPs itself FREEZE s (a helper
 *      SIGCONTs it) while the worker waits in recv(-1) and sends; window W.
 *  stopworker FREEZE: the worker is SIGSTOPped FREEZE s, then continued and
 *      calls recv(-1) / send / stop.
 *  lostword: router stop while its port is dropped (run in unshare -n): the
 *      worker in recv(-1) must get EPIPE after about the window.
 *  Worker prints its results on stderr (CHILD: ...). */
#include "probe.h"
int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "slowrouter";
    double freeze = argc > 2 ? atof(argv[2]) : 4;
    setup_router("tcp://127.0.0.1:0");
    char ep[128]; mpr_router_remote_endpoint(g_router, ep, sizeof ep);
    int port = atoi(strrchr(ep, ':') + 1);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    mpr_receiver_set_lost_callback(r, on_lost, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MPR_TRANSPORT", "zmq", 1);
        if (mpr_sender_start(s)) _exit(3);
        report(s, "started");
        char b[64]; size_t len; double a = now_s();
        int rc = mpr_sender_recv(s, b, sizeof b, &len, -1);
        fprintf(stderr, "CHILD: first recv(-1) -> %s after %.0f ms\n", mpr_strerror(rc), (now_s() - a) * 1e3);
        int sends = 0;
        for (int i = 0; i < 1000; i++) if (mpr_sender_send(s, "m", 1) == 0) sends++;
        a = now_s();
        rc = mpr_sender_recv(s, b, sizeof b, &len, 30);
        fprintf(stderr, "CHILD: second recv(30) -> %s after %.0f ms\n", mpr_strerror(rc), (now_s() - a) * 1e3);
        a = now_s();
        rc = mpr_sender_stop(s);
        fprintf(stderr, "CHILD: %d sends ok, stop -> %s after %.0f ms\n", sends, mpr_strerror(rc), (now_s() - a) * 1e3);
        _exit(0);
    }
    mpr_sender_free(s);
    double a = now_s();
    while (g_nreports < 1 && now_s() - a < 15) pump(0.01, NULL);
    if (!strcmp(mode, "slowrouter")) {
        mpr_receiver_send(r, "one", 3);
        pump(0.3, NULL);
        pid_t helper = fork();
        if (helper == 0) { usleep((useconds_t)(freeze * 1e6)); kill(getppid(), SIGCONT); _exit(0); }
        printf("router frozen %.1f s\n", freeze); fflush(stdout);
        raise(SIGSTOP);
        waitpid(helper, NULL, 0);
        printf("router resumed\n");
        pump(0.5, NULL);
        printf("receiver_send after resume -> %s\n", mpr_strerror(mpr_receiver_send(r, "two", 3)));
    } else if (!strcmp(mode, "stopworker")) {
        mpr_receiver_send(r, "one", 3);
        pump(0.3, NULL);
        kill(pid, SIGSTOP);
        pump(freeze, NULL);
        printf("worker frozen %.1f s: lost=%d; receiver_send -> %s\n", freeze, g_lost, mpr_strerror(mpr_receiver_send(r, "two", 3)));
        kill(pid, SIGCONT);
    } else if (!strcmp(mode, "lostword")) {
        mpr_receiver_send(r, "one", 3);
        pump(0.3, NULL);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "nft add table inet p8 && nft add chain inet p8 c '{ type filter hook input priority 0; }' && nft add rule inet p8 c tcp dport %d drop && nft add rule inet p8 c tcp sport %d drop", port, port);
        printf("drop: %d\n", system(cmd));
        mpr_router_stop(g_router);
        printf("router stopped at %.1f\n", now_s() - a);
    }
    a = now_s();
    int st;
    while (now_s() - a < 40) { pump(0.01, NULL); if (waitpid(pid, &st, WNOHANG) == pid) break; }
    printf("worker ended after %.1f s more (%s); messages routed %d, lost=%d\n", now_s() - a, now_s() - a >= 40 ? "KILLED, hung" : "ok", g_nreports, g_lost);
    if (now_s() - a >= 40) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); }
    if (!strcmp(mode, "lostword")) system("nft delete table inet p8");
    mpr_router_free(g_router);
}
