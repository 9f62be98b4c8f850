/* p17: a worker THREAD waits in recv(-1) (ring, same process) while the main
 * thread frees the router (mpr_router_free while running): the thread must
 * get EPIPE, not hang. Also cancelled() from a third thread meanwhile. */
#include "probe.h"
static mpr_sender *gs;
static volatile int done_rc = 1, done = 0; static double done_at;
static void *worker(void *arg)
{
    (void)arg;
    if (mpr_sender_start(gs)) { done = -1; return NULL; }
    mpr_sender_send(gs, "started", 7);
    char b[64]; size_t len; int rc, n = 0;
    while ((rc = mpr_sender_recv(gs, b, sizeof b, &len, -1)) == 0) n++;
    done_rc = rc; done_at = now_s(); done = n + 1;
    mpr_sender_free(gs);
    return NULL;
}
static void *peeker(void *arg)
{
    (void)arg; uint64_t m = 0;
    for (int i = 0; i < 2000000 && !done; i++) { uint64_t c = mpr_sender_cancelled(gs); if (c > m) m = c; }
    return (void *)(uintptr_t)m;
}
int main(void)
{
    setup_router(NULL);
    mpr_receiver *r;
    mpr_router_pipe(g_router, &gs, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    pthread_t t, p; pthread_create(&t, NULL, worker, NULL);
    double a = now_s();
    while (g_nreports < 1 && now_s() - a < 10) pump(0.01, NULL);
    pthread_create(&p, NULL, peeker, NULL);
    for (int i = 0; i < 10; i++) mpr_receiver_send(r, "job", 3);
    mpr_receiver_cancel(r, 11);
    pump(0.3, NULL);
    double f = now_s();
    mpr_router_free(g_router);
    a = now_s();
    while (!done && now_s() - a < 10) usleep(1000);
    void *m; if (done) pthread_join(p, &m); else m = NULL;
    printf("thread worker: %s; got %d jobs; recv -> %s %.1f ms after router_free; peeker saw max tag %lu\n",
           done ? "ended" : "HUNG", done - 1, mpr_strerror(done_rc), done ? (done_at - f) * 1e3 : -1.0, (unsigned long)(uintptr_t)m);
    if (done) pthread_join(t, NULL);
    return 0;
}
