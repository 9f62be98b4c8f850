/* p9: a remote sender that heard nothing from its router for the window
 * (router process frozen with SIGSTOP for FREEZE s, window 2 s): when does
 * mpr_sender_send start returning MPR_EPIPE?  mode "recv": the worker first
 * waits in recv (which reports EPIPE), then sends; mode "send": it only sends
 * (one message every 50 ms). */
#include "probe.h"
int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "recv";
    double freeze = argc > 2 ? atof(argv[2]) : 5;
    setenv("PROBE_WINDOW", "2", 0);
    setup_router("tcp://127.0.0.1:0");
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    int go[2]; pipe(go);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MPR_TRANSPORT", "zmq", 1);
        if (mpr_sender_start(s)) _exit(3);
        report(s, "started");
        char c; read(go[0], &c, 1); /* the router is frozen now */
        double a = now_s();
        if (!strcmp(mode, "recv")) {
            char b[8]; size_t len;
            int rc = mpr_sender_recv(s, b, sizeof b, &len, 30);
            fprintf(stderr, "CHILD: recv -> %s after %.0f ms\n", mpr_strerror(rc), (now_s() - a) * 1e3);
        }
        int ok = 0, first_fail_rc = 0; double first_fail = -1;
        while (now_s() - a < freeze + 1.5) {
            int rc = mpr_sender_send(s, "m", 1);
            if (rc == 0) ok++;
            else if (first_fail < 0) { first_fail = now_s() - a; first_fail_rc = rc; }
            usleep(50000);
        }
        int rc = mpr_sender_stop(s);
        fprintf(stderr, "CHILD: %s mode: %d sends returned 0 in %.1f s; first failing send at %.2f s (%s); stop -> %s\n",
                mode, ok, now_s() - a, first_fail, first_fail_rc ? mpr_strerror(first_fail_rc) : "-", mpr_strerror(rc));
        _exit(0);
    }
    mpr_sender_free(s);
    double a = now_s();
    while (g_nreports < 1 && now_s() - a < 15) pump(0.01, NULL);
    pid_t helper = fork();
    if (helper == 0) { usleep((useconds_t)(freeze * 1e6)); kill(getppid(), SIGCONT); _exit(0); }
    write(go[1], "g", 1);
    raise(SIGSTOP);
    waitpid(helper, NULL, 0);
    a = now_s(); int st;
    while (now_s() - a < 10) { pump(0.01, NULL); if (waitpid(pid, &st, WNOHANG) == pid) break; }
    mpr_router_get_stats(g_router, &(mpr_router_stats){0});
    printf("router resumed after %.1f s frozen; %d messages routed (1 = only 'started')\n", freeze, g_nreports);
    mpr_router_free(g_router);
}
