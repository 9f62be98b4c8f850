/* p7: a worker busy computing (only mpr_sender_cancelled, never recv) while
 * the application has filled the pipe's control queue (until EAGAIN) and then
 * cancels: does the cancel reach the worker ("a request travels on its own")?
 * argv[1]: ring (default) | socket | zmq. Also the worker's RSS afterwards. */
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
        double a = now_s(); uint64_t c = 0;
        while (now_s() - a < 8 && (c = mpr_sender_cancelled(s)) != 42) ;
        int rc; report(s, "busy worker: cancelled() = %llu after %.0f ms (expect 42 soon after the cancel); RSS %ld KiB", (unsigned long long)c, (now_s() - a) * 1e3, rss_kib(getpid()));
        static char b[MPR_CONTROL_MAX_SIZE]; size_t len; int n = 0;
        double t0 = now_s(); while ((rc = mpr_sender_recv(s, b, sizeof b, &len, 0.5)) == 0 && n < 10000) n++;
        fprintf(stderr, "CHILD %s: recv loop ended %s after %d msgs, %.1f s\n", tr, mpr_strerror(rc), n, now_s() - t0);
        report(s, "then recv took %d messages", n);
        _exit(0);
    }
    mpr_sender_free(s);
    double a = now_s();
    while (g_nreports < 1 && now_s() - a < 10) pump(0.01, NULL);
    static char b[65536]; size_t acc = 0; int rc;
    a = now_s();
    size_t cap = getenv("P7_BYTES") ? (size_t)atol(getenv("P7_BYTES")) : (size_t)-1;
    while (now_s() - a < 1.5 && acc < cap) { rc = mpr_receiver_send(r, b, sizeof b); if (rc == 0) acc += sizeof b; else pump(0.01, NULL); }
    double t = now_s();
    rc = mpr_receiver_cancel(r, 42);
    printf("%s: %.2f MiB control messages queued; cancel(42) -> %s in %.2f ms\n", tr, acc / 1048576.0, mpr_strerror(rc), (now_s() - t) * 1e3);
    a = now_s();
    while (g_nreports < 3 && now_s() - a < 15) pump(0.01, NULL);
    print_reports();
    kill(pid, SIGKILL); waitpid(pid, NULL, 0);
    mpr_router_free(g_router);
}
