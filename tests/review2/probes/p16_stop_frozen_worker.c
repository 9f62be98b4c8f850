/* p16: mpr_router_stop "never waits for a worker": the worker is SIGSTOPped
 * with the pipe's control queue full (and its ring/connection busy); time
 * the stop, then SIGCONT: the worker's recv/send must say EPIPE. */
#include "probe.h"
int main(int argc, char **argv)
{
    const char *tr = argc > 1 ? argv[1] : "ring";
    setup_router(!strcmp(tr, "zmq") ? "tcp://127.0.0.1:0" : NULL);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (strcmp(tr, "ring")) setenv("MPR_TRANSPORT", tr, 1);
        if (mpr_sender_start(s)) _exit(3);
        report(s, "started");
        usleep(500000);
        static char b[MPR_CONTROL_MAX_SIZE]; size_t len; int rc, n = 0;
        while ((rc = mpr_sender_recv(s, b, sizeof b, &len, 5)) == 0 && n < 1000) n++;
        int rs = mpr_sender_send(s, "x", 1);
        fprintf(stderr, "CHILD %s: got %d control messages then recv -> %s; send -> %s\n", tr, n, mpr_strerror(rc), mpr_strerror(rs));
        _exit(0);
    }
    mpr_sender_free(s);
    double a = now_s();
    while (g_nreports < 1 && now_s() - a < 10) pump(0.01, NULL);
    kill(pid, SIGSTOP);
    static char b[MPR_CONTROL_MAX_SIZE];
    size_t msz = getenv("P16_SIZE") ? (size_t)atol(getenv("P16_SIZE")) : sizeof b; int nsent = 0;
    while (now_s() - a < 2) { if (mpr_receiver_send(r, b, msz)) pump(0.01, NULL); else nsent++; }
    printf("%s: %d control messages of %zu B accepted\n", tr, nsent, msz);
    a = now_s();
    int rc = mpr_router_stop(g_router);
    printf("%s: stop with a frozen worker and a full control queue -> %s in %.1f ms\n", tr, mpr_strerror(rc), (now_s() - a) * 1e3);
    kill(pid, SIGCONT);
    int st; a = now_s();
    while (now_s() - a < 15 && waitpid(pid, &st, WNOHANG) == 0) usleep(10000);
    mpr_router_free(g_router);
}
