/* tst_win_many.c - 32 worker processes start at once (more clients than
 * the endpoint has waiting pipe instances: some wait in WaitNamedPipe),
 * each sends 300 messages over its ring; then 16 over frames. Every
 * message arrives, in order, whole; nobody is lost or rejected. */
#include "cunit.h"
#include "winproc.h"

typedef struct {
    wp_pipe *p;
    int n;
    uint64_t want;
} all_arg;

static int all_arrived(void *arg)
{
    all_arg *a = arg;
    for (int i = 0; i < a->n; i++)
        if (a->p[i].count < a->want)
            return 0;
    return 1;
}

static void many(int n, long count, const char *extra)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    wp_pipe *p = calloc((size_t)n, sizeof *p);
    wp_child *c = calloc((size_t)n, sizeof *c);
    REQUIRE(p && c);
    char arg[64];
    snprintf(arg, sizeof arg, "%ld -1 %s", count, extra);
    for (int i = 0; i < n; i++) {
        mpr_sender *s;
        REQUIRE(wp_pipe_open(r.router, &p[i], WP_VARIED, 0, &s) == 0);
        CHECK(wp_start_sender(&c[i], "worker-send", arg, s, 0) == 0);
        mpr_sender_free(s);
    }
    all_arg a = {p, n, (uint64_t)count};
    CHECK(wp_run_until(&r, all_arrived, &a, 120000));
    int exited_ok = 0;
    for (int i = 0; i < n; i++) {
        exited_ok += wp_wait(&c[i], 30000) == 0;
        wp_close(&c[i]);
    }
    CHECK_EQ(exited_ok, n);
    wp_run_for(&r, 100);
    int complete = 0, bad = 0, lost = 0;
    for (int i = 0; i < n; i++) {
        complete += p[i].count == (uint64_t)count;
        bad += p[i].bad;
        lost += p[i].lost;
        mpr_router_close_pipe(r.router, p[i].rcv);
    }
    CHECK_EQ(complete, n);
    CHECK_EQ(bad, 0);
    CHECK_EQ(lost, 0);
    mpr_router_stats st;
    mpr_router_get_stats(r.router, &st);
    CHECK_EQ(st.connections_accepted, n);
    CHECK_EQ(st.connections_rejected, 0);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    wp_router_free(&r);
    free(p);
    free(c);
}

CU_TEST(many_workers_ring, .timeout_s = 180)
{
    many(32, 300, "");
}

CU_TEST(many_workers_frames, .timeout_s = 180)
{
    many(16, 300, "frames");
}

WP_MAIN()
