/* p6: (a) request/reply with route_until: send a job, then route_until the
 * reply (no event-loop dispatch at all); (b) newest cancel tag wins even if
 * smaller; (c) 1 MiB control messages and an empty one (over tcp with argv[1]=zmq);
 * (d) receiver_send after the worker stopped normally -> EPIPE. */
#include "probe.h"
static int have_reply(void *arg) { (void)arg; return g_nreports > 0; }
static int have_n(void *arg) { return g_nreports >= *(int *)arg; }
int main(int argc, char **argv)
{
    const char *tr = argc > 1 ? argv[1] : NULL;
    setup_router(tr && !strcmp(tr, "zmq") ? "tcp://127.0.0.1:0" : NULL);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (tr) setenv("MPR_TRANSPORT", tr, 1);
        int rc = mpr_sender_start(s);
        if (rc) { fprintf(stderr, "start %s\n", mpr_strerror(rc)); _exit(3); }
        static char b[MPR_CONTROL_MAX_SIZE]; size_t len;
        rc = mpr_sender_recv(s, b, sizeof b, &len, 5);
        report(s, "job: %s len %zu", mpr_strerror(rc), len);
        /* (b) */
        double a = now_s(); uint64_t c = 0;
        while (now_s() - a < 3 && (c = mpr_sender_cancelled(s)) != 5) usleep(1000);
        report(s, "cancelled after cancel(1000), cancel(5): %llu (expect 5)", (unsigned long long)c);
        /* (c) */
        int ok = 0;
        for (int i = 0; i < 6; i++) {
            rc = mpr_sender_recv(s, b, sizeof b, &len, 5);
            size_t want = (i % 2) ? 0 : MPR_CONTROL_MAX_SIZE;
            int good = rc == 0 && len == want && (want == 0 || ((unsigned char)b[want - 1] == (unsigned char)(i + 1) && (unsigned char)b[0] == (unsigned char)(i + 1)));
            if (good) ok++;
            else report(s, "msg %d: %s len %zu", i, mpr_strerror(rc), len);
        }
        report(s, "1 MiB / empty messages intact: %d/6", ok);
        rc = mpr_sender_stop(s);
        report(s, "stop: %s", mpr_strerror(rc)); /* lost, the sender is closed */
        _exit(0);
    }
    mpr_sender_free(s);
    /* (a): never dispatch the fd loop */
    mpr_receiver_send(r, "job-1", 5);
    int rc = mpr_router_route_until(g_router, have_reply, NULL, 8.0);
    printf("(a) route_until after receiver_send, no dispatch: %s\n", mpr_strerror(rc));
    mpr_receiver_cancel(r, 1000);
    mpr_receiver_cancel(r, 5);
    int n = 2; rc = mpr_router_route_until(g_router, have_n, &n, 8.0);
    static unsigned char b[MPR_CONTROL_MAX_SIZE];
    int sent = 0; double a = now_s();
    while (sent < 6 && now_s() - a < 10) {
        size_t sz = (sent % 2) ? 0 : MPR_CONTROL_MAX_SIZE;
        memset(b, sent + 1, sizeof b);
        rc = mpr_receiver_send(r, b, sz);
        if (rc == 0) sent++; else if (rc != MPR_EAGAIN) { printf("send -> %s\n", mpr_strerror(rc)); break; }
        int z = 0; mpr_router_route_until(g_router, have_n, &z, 0.01);
    }
    n = 3; rc = mpr_router_route_until(g_router, have_n, &n, 15.0);
    n = 4; mpr_router_route_until(g_router, have_n, &n, 5.0);
    int st; a = now_s(); while (waitpid(pid, &st, WNOHANG) == 0 && now_s() - a < 10) usleep(10000);
    int z = 0; mpr_router_route_until(g_router, have_n, &z, 0.5);
    z = 100; mpr_router_route_until(g_router, have_n, &z, 0.5);
    print_reports();
    printf("(d) receiver_send after the worker's stop: %s; cancel: %s\n", mpr_strerror(mpr_receiver_send(r, "x", 1)), mpr_strerror(mpr_receiver_cancel(r, 9)));
    mpr_router_free(g_router);
}
