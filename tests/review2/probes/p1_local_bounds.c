/* p1: the way back, locally. Bounds before the worker connects, order and
 * content after, argument errors, a SIGSTOPped worker (never blocks, bound),
 * a worker that never reads (router RSS). Transport: env PROBE_TRANSPORT
 * (socket/ring) for the worker. */
#include "probe.h"

#define CMAX MPR_CONTROL_MAX_SIZE

static void fill(unsigned char *b, size_t n, unsigned seq)
{
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(seq * 31 + i * 7);
}

int main(void)
{
    setup_router(getenv("PROBE_TRANSPORT") && !strcmp(getenv("PROBE_TRANSPORT"), "zmq") ? "tcp://127.0.0.1:0" : NULL);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    mpr_receiver_set_lost_callback(r, on_lost, NULL);
    unsigned char *buf = malloc(CMAX + 1);

    printf("send NULL,5 -> %s\n", mpr_strerror(mpr_receiver_send(r, NULL, 5)));
    printf("send MAX+1 -> %s\n", mpr_strerror(mpr_receiver_send(r, buf, CMAX + 1)));
    printf("send SIZE_MAX -> %s\n", mpr_strerror(mpr_receiver_send(r, buf, SIZE_MAX)));
    printf("cancel 0 -> %s\n", mpr_strerror(mpr_receiver_cancel(r, 0)));
    printf("send bogus handle -> %s\n", mpr_strerror(mpr_receiver_send((mpr_receiver *)(uintptr_t)0x12345, buf, 1)));

    /* before the worker connects: queue until EAGAIN */
    size_t queued = 0; unsigned seq = 0; int rc = 0;
    rc = mpr_receiver_send(r, NULL, 0); /* empty message first */
    if (rc == 0) seq++;
    while (seq < 100) {
        fill(buf, CMAX, seq);
        rc = mpr_receiver_send(r, buf, CMAX);
        if (rc) break;
        queued += CMAX; seq++;
    }
    printf("before connect: %u messages (%zu bytes + one empty) queued, then %s\n", seq, queued, mpr_strerror(rc));
    int rc_small = mpr_receiver_send(r, buf, 1);
    printf("  then 1 byte -> %s\n", mpr_strerror(rc_small));
    if (rc_small == 0) seq++;
    mpr_receiver_cancel(r, 7);
    mpr_receiver_cancel(r, 9);

    const char *tr = getenv("PROBE_TRANSPORT");
    pid_t pid = fork();
    if (pid == 0) {
        if (tr) setenv("MPR_TRANSPORT", tr, 1);
        int rc = mpr_sender_start(s);
        if (rc) _exit(3);
        unsigned char *got = malloc(CMAX);
        size_t len; unsigned bad = 0, n = 0;
        for (unsigned i = 0; i < seq; i++) {
            rc = mpr_sender_recv(s, got, CMAX, &len, 5.0);
            if (rc) { report(s, "recv %u -> %s", i, mpr_strerror(rc)); break; }
            n++;
            size_t want = (i == 0) ? 0 : (i == seq - 1 && rc_small == 0) ? 1 : CMAX;
            unsigned useq = (i == seq - 1 && rc_small == 0) ? seq - 2 : i;
            (void)useq;
            if (len != want) bad++;
        }
        uint64_t c = 0;
        for (int k = 0; k < 500 && (c = mpr_sender_cancelled(s)) == 0; k++) usleep(2000);
        report(s, "received %u/%u, wrong length %u, cancelled=%llu", n, seq, bad, (unsigned long long)c);
        /* now wait: the parent SIGSTOPs us; afterwards never read */
        report(s, "ready");
        sleep(30);
        _exit(0);
    }
    mpr_sender_free(s);
    volatile int dummy = 0;
    for (int k = 0; k < 1000 && g_nreports < 2; k++) pump(0.01, &dummy);
    print_reports();

    /* SIGSTOP the worker; send until EAGAIN, time each call */
    kill(pid, SIGSTOP);
    usleep(100000);
    long rss0 = rss_kib(getpid());
    double worst = 0; size_t accepted = 0; int calls = 0;
    double t0 = now_s();
    for (calls = 0; calls < 4000 && now_s() - t0 < 10; calls++) {
        double a = now_s();
        fill(buf, 65536, calls);
        rc = mpr_receiver_send(r, buf, 65536);
        double d = now_s() - a;
        if (d > worst) worst = d;
        if (rc == MPR_EAGAIN) { pump(0.002, NULL); continue; }
        if (rc) break;
        accepted += 65536;
    }
    long rss1 = rss_kib(getpid());
    printf("stopped worker: %d calls in %.2f s, %zu bytes accepted (%.2f MiB), last rc %s, slowest call %.3f ms, router RSS +%ld KiB\n",
           calls, now_s() - t0, accepted, accepted / 1048576.0, mpr_strerror(rc), worst * 1e3, rss1 - rss0);
    kill(pid, SIGCONT);
    /* worker never reads: keep pushing for 2 s */
    t0 = now_s(); size_t acc2 = 0;
    while (now_s() - t0 < 2) {
        rc = mpr_receiver_send(r, buf, 65536);
        if (rc == 0) acc2 += 65536; else pump(0.005, NULL);
    }
    printf("running worker that never reads: %zu more bytes accepted in 2 s, router RSS +%ld KiB, worker RSS %ld KiB\n",
           acc2, rss_kib(getpid()) - rss0, rss_kib(pid));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    pump(0.5, &g_lost);
    printf("lost=%d; send after lost -> %s; cancel after lost -> %s\n", g_lost,
           mpr_strerror(mpr_receiver_send(r, buf, 1)), mpr_strerror(mpr_receiver_cancel(r, 3)));
    mpr_router_close_pipe(g_router, r);
    mpr_router_free(g_router);
    return 0;
}
