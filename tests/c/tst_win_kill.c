/* tst_win_kill.c - a worker killed with TerminateProcess in the middle of
 * its stream: its receiver gets every message that arrived, in order and
 * whole, then one lost callback and nothing after it; a bystander pipe
 * (another worker) is not disturbed and stops cleanly. Over the ring, over
 * frames, and in the middle of a 64 MiB message. */
#include "cunit.h"
#include "winproc.h"

typedef struct {
    wp_pipe *p;
    uint64_t count;
} upto;

static int reached(void *arg)
{
    upto *u = arg;
    return u->p->count >= u->count;
}

static int lost_seen(void *arg)
{
    return ((wp_pipe *)arg)->lost > 0;
}

static void kill_mid_stream(const char *extra)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    wp_pipe victim, by;
    mpr_sender *s;
    wp_child vc, bc;
    char arg[32];
    REQUIRE(wp_pipe_open(r.router, &victim, WP_VARIED, 0, &s) == 0);
    snprintf(arg, sizeof arg, "0 -1 %s", extra);
    REQUIRE(wp_start_sender(&vc, "worker-stream", arg, s, 1) == 0);
    mpr_sender_free(s);
    REQUIRE(wp_pipe_open(r.router, &by, WP_VARIED, 0, &s) == 0);
    snprintf(arg, sizeof arg, "4000 -1 %s", extra);
    REQUIRE(wp_start_sender(&bc, "worker-paced", arg, s, 0) == 0);
    mpr_sender_free(s);
    upto u = {&victim, 2000};
    CHECK(wp_run_until(&r, reached, &u, 30000));
    CHECK(TerminateProcess(vc.pi.hProcess, 77));
    CHECK_EQ(wp_wait(&vc, 10000), 77);
    CHECK(wp_run_until(&r, lost_seen, &victim, 10000));
    wp_run_for(&r, 300);
    CHECK_EQ(victim.lost, 1);
    CHECK_EQ(victim.after_lost, 0);
    CHECK_EQ(victim.bad, 0);
    CHECK(victim.count >= 2000);
    upto b = {&by, 4000};
    CHECK(wp_run_until(&r, reached, &b, 60000));
    CHECK_EQ(wp_wait(&bc, 20000), 0);
    wp_run_for(&r, 100);
    CHECK_EQ(by.count, 4000);
    CHECK_EQ(by.bad, 0);
    CHECK_EQ(by.lost, 0);
    mpr_router_stats st;
    mpr_router_get_stats(r.router, &st);
    CHECK_EQ(st.senders_lost, 1);
    wp_close(&vc);
    wp_close(&bc);
    mpr_router_close_pipe(r.router, victim.rcv);
    mpr_router_close_pipe(r.router, by.rcv);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    wp_router_free(&r);
}

CU_TEST(killed_mid_stream_ring)
{
    kill_mid_stream("");
}

CU_TEST(killed_mid_stream_frames)
{
    kill_mid_stream("frames");
}

/* Killed while its 64 MiB message is on the way: nothing of it is
 * delivered, the lost callback comes after the two messages before. */
CU_TEST(killed_mid_message, .timeout_s = 120)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    wp_pipe p;
    mpr_sender *s;
    REQUIRE(wp_pipe_open(r.router, &p, WP_SIZES, 0, &s) == 0);
    wp_child c;
    REQUIRE(wp_start_sender(&c, "worker-sizes", "3 0", s, 0) == 0);
    mpr_sender_free(s);
    upto u = {&p, 2};
    CHECK(wp_run_until(&r, reached, &u, 30000));
    TerminateProcess(c.pi.hProcess, 77);
    wp_wait(&c, 10000);
    CHECK(wp_run_until(&r, lost_seen, &p, 10000));
    wp_run_for(&r, 200);
    CHECK_EQ(p.lost, 1);
    CHECK_EQ(p.after_lost, 0);
    CHECK_EQ(p.bad, 0);
    CHECK(p.count == 2 || p.count == 3); /* the last one whole, or not at all */
    wp_close(&c);
    mpr_router_close_pipe(r.router, p.rcv);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    wp_router_free(&r);
}

WP_MAIN()
