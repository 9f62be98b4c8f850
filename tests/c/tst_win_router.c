/* tst_win_router.c - the router's contract on Windows, through the public
 * API: start/stop/pipe/close_pipe and their errors, the unclosed-pipes
 * warning, messages in order from several worker processes (this program
 * started again), sizes from 0 bytes to 64 MiB with checksums over the
 * ring and over frames (MPR_TRANSPORT=socket), sending from the main
 * thread, route_until with a timeout of 0 after sends, the way back
 * (control messages and a cancel tag, ring and frames), and the fd loop's
 * event handle. Built against the static library and against the DLL
 * (tst_win_router_dll: the exports). */
#include "cunit.h"
#include "winproc.h"

static int on_ping_count;

static void count_ping(void *arg)
{
    (void)arg;
    on_ping_count++;
}

CU_TEST(fd_loop_handle)
{
    mpr_fd_loop *loop = NULL;
    REQUIRE(mpr_fd_loop_new(&loop) == 0);
    CHECK_EQ(mpr_fd_loop_fd(loop), -1); /* no descriptor on Windows */
    CHECK_EQ(mpr_fd_loop_fd(NULL), -1);
    CHECK(mpr_fd_loop_handle(NULL) == NULL);
    HANDLE h = (HANDLE)mpr_fd_loop_handle(loop);
    REQUIRE(h != NULL);
    CHECK_EQ(WaitForSingleObject(h, 0), WAIT_TIMEOUT);
    const mpr_event_loop *ev = mpr_fd_loop_event_loop(loop);
    mpr_pingee *pingee = NULL;
    mpr_pinger *pinger = NULL;
    REQUIRE(ev->pingee_new(ev, count_ping, NULL, &pingee) == 0);
    REQUIRE(ev->pinger_new(pingee, &pinger) == 0);
    ev->pingee_connect(pingee);
    ev->pinger_connect(pinger);
    on_ping_count = 0;
    ev->pinger_ping(pinger);
    ev->pinger_ping(pinger);
    /* Signalled while pings are pending (level: it stays so). */
    CHECK_EQ(WaitForSingleObject(h, 0), WAIT_OBJECT_0);
    CHECK_EQ(WaitForSingleObject(h, 0), WAIT_OBJECT_0);
    CHECK_EQ(mpr_fd_loop_dispatch(loop), 2);
    CHECK_EQ(on_ping_count, 2);
    CHECK_EQ(WaitForSingleObject(h, 0), WAIT_TIMEOUT);
    CHECK_EQ(mpr_fd_loop_dispatch(loop), 0);
    ev->pinger_free(pinger);
    ev->pingee_free(pingee);
    mpr_fd_loop_free(loop);
}

CU_TEST(start_stop_contract)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    mpr_sender *s = NULL;
    mpr_receiver *rcv = NULL;
    CHECK_EQ(mpr_router_stop(r.router), MPR_ESTATE);
    CHECK_EQ(mpr_router_pipe(r.router, &s, &rcv), MPR_ESTATE);
    REQUIRE(mpr_router_start(r.router) == 0);
    CHECK_EQ(mpr_router_start(r.router), MPR_EALREADY);
    REQUIRE(mpr_router_pipe(r.router, &s, &rcv) == 0);
    CHECK(mpr_receiver_id(rcv) >= 1);
    CHECK_EQ(mpr_receiver_id(rcv), mpr_sender_id(s));
    char str[512];
    int n = mpr_sender_to_string(s, str, sizeof str);
    CHECK(n > 0 && n < (int)sizeof str);
    CHECK(strstr(str, "mprouter-") != NULL); /* the pipe's name, after \\.\pipe\ */
    CHECK_EQ(mpr_router_close_pipe(r.router, rcv), 0);
    CHECK_EQ(mpr_router_close_pipe(r.router, rcv), MPR_ENOENT);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    CHECK_EQ(mpr_router_stop(r.router), MPR_ESTATE);
    CHECK_EQ(mpr_router_close_pipe(r.router, rcv), MPR_ESTATE);
    /* A sender of a router that stopped: nobody listens. */
    CHECK_EQ(mpr_sender_start(s), MPR_ECONNREFUSED);
    mpr_sender_free(s);
    /* Again, after a stop. */
    CHECK_EQ(mpr_router_start(r.router), 0);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    wp_router_free(&r);
}

CU_TEST(unclosed_pipes_warning)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    mpr_sender *s1, *s2;
    mpr_receiver *r1, *r2;
    REQUIRE(mpr_router_pipe(r.router, &s1, &r1) == 0);
    REQUIRE(mpr_router_pipe(r.router, &s2, &r2) == 0);
    wp_log_echo = 0;
    wp_log_start();
    CHECK_EQ(mpr_router_stop(r.router), 0);
    mpr_set_log_handler(NULL, NULL);
    wp_log_echo = 1;
    CHECK(wp_log_has("2 unclosed pipes"));
    mpr_sender_free(s1);
    mpr_sender_free(s2);
    wp_router_free(&r);
}

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

/* n workers, each count messages of size (-1: varied), all in order. */
static void workers(int n, long count, long size, const char *extra)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    wp_pipe *p = calloc((size_t)n, sizeof *p);
    wp_child *c = calloc((size_t)n, sizeof *c);
    REQUIRE(p && c);
    char arg[64];
    snprintf(arg, sizeof arg, "%ld %ld %s", count, size, extra);
    for (int i = 0; i < n; i++) {
        mpr_sender *s;
        REQUIRE(wp_pipe_open(r.router, &p[i], size < 0 ? WP_VARIED : WP_FIXED, (size_t)size, &s) == 0);
        CHECK(wp_start_sender(&c[i], "worker-send", arg, s, 0) == 0);
        mpr_sender_free(s);
    }
    all_arg a = {p, n, (uint64_t)count};
    CHECK(wp_run_until(&r, all_arrived, &a, 60000));
    for (int i = 0; i < n; i++) {
        CHECK_EQ(wp_wait(&c[i], 20000), 0);
        wp_close(&c[i]);
    }
    wp_run_for(&r, 100); /* a lost callback would come now */
    for (int i = 0; i < n; i++) {
        CHECK_EQ(p[i].count, count);
        CHECK_EQ(p[i].bad, 0);
        CHECK_EQ(p[i].lost, 0);
        CHECK_EQ(mpr_router_close_pipe(r.router, p[i].rcv), 0);
    }
    mpr_router_stats st;
    mpr_router_get_stats(r.router, &st);
    CHECK_EQ(st.connections_accepted, n);
    CHECK_EQ(st.messages_routed, (uint64_t)n * (uint64_t)count);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    wp_router_free(&r);
    free(p);
    free(c);
}

CU_TEST(workers_in_order_ring)
{
    workers(4, 3000, -1, "");
}

CU_TEST(workers_in_order_frames)
{
    workers(3, 1000, -1, "frames");
}

/* The way back: 40 control messages queued before the worker starts,
 * taken whole and in order and sent back; a cancel tag it sees; the pipe
 * refuses both once its sender has stopped. */
static int count_at_least(void *arg)
{
    all_arg *a = arg;
    return a->p->count >= a->want;
}

static int refuses(void *arg)
{
    return mpr_receiver_send(((wp_pipe *)arg)->rcv, "x", 1) == MPR_EPIPE;
}

static void way_back(const char *extra)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    wp_pipe p;
    mpr_sender *s;
    REQUIRE(wp_pipe_open(r.router, &p, WP_VARIED, 0, &s) == 0);
    unsigned char buf[8192];
    const uint32_t n = 40;
    for (uint32_t seed = 0; seed < n; seed++) {
        size_t size = wp_size_of(WP_VARIED, 0, seed);
        wp_make(buf, size, seed);
        CHECK_EQ(mpr_receiver_send(p.rcv, buf, size), 0);
    }
    wp_child c;
    char arg[32];
    snprintf(arg, sizeof arg, "%u -1 %s", (unsigned)n, extra);
    CHECK(wp_start_sender(&c, "worker-echo", arg, s, 0) == 0);
    mpr_sender_free(s);
    all_arg a = {&p, 1, n};
    CHECK(wp_run_until(&r, count_at_least, &a, 60000));
    CHECK_EQ(mpr_receiver_cancel(p.rcv, 0), MPR_EINVAL);
    CHECK_EQ(mpr_receiver_cancel(p.rcv, 77), 0);
    a.want = n + 1;
    CHECK(wp_run_until(&r, count_at_least, &a, 60000));
    CHECK_EQ(wp_wait(&c, 20000), 0);
    wp_close(&c);
    CHECK(wp_run_until(&r, refuses, &p, 20000));
    CHECK_EQ(mpr_receiver_cancel(p.rcv, 1), MPR_EPIPE);
    CHECK_EQ(p.count, n + 1);
    CHECK_EQ(p.bad, 0);
    CHECK_EQ(p.lost, 0);
    CHECK_EQ(mpr_router_close_pipe(r.router, p.rcv), 0);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    wp_router_free(&r);
}

CU_TEST(way_back_ring)
{
    way_back("");
}

CU_TEST(way_back_frames)
{
    way_back("frames");
}

/* 0 bytes, 1 MiB + 3, 64 MiB from a worker, checked byte for byte. */
static void sizes(const char *extra)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    wp_pipe p;
    mpr_sender *s;
    REQUIRE(wp_pipe_open(r.router, &p, WP_SIZES, 0, &s) == 0);
    wp_child c;
    char arg[32];
    snprintf(arg, sizeof arg, "3 0 %s", extra);
    CHECK(wp_start_sender(&c, "worker-sizes", arg, s, 0) == 0);
    mpr_sender_free(s);
    all_arg a = {&p, 1, 3};
    CHECK(wp_run_until(&r, all_arrived, &a, 120000));
    CHECK_EQ(wp_wait(&c, 20000), 0);
    wp_close(&c);
    CHECK_EQ(p.count, 3);
    CHECK_EQ(p.bad, 0);
    CHECK_EQ(p.bytes, wp_sizes[0] + wp_sizes[1] + wp_sizes[2]);
    CHECK_EQ(mpr_router_close_pipe(r.router, p.rcv), 0);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    wp_router_free(&r);
}

CU_TEST(sizes_ring, .timeout_s = 180)
{
    sizes("");
}

CU_TEST(sizes_frames, .timeout_s = 180)
{
    sizes("frames");
}

static int pipe_done(void *arg)
{
    all_arg *a = arg;
    return a->p->count >= a->want;
}

CU_TEST(send_from_main_thread)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    wp_pipe p;
    mpr_sender *s;
    REQUIRE(wp_pipe_open(r.router, &p, WP_VARIED, 0, &s) == 0);
    REQUIRE(mpr_sender_start(s) == 0);
    unsigned char buf[8192];
    for (uint32_t i = 0; i < 500; i++)
        CHECK_EQ(wp_send(s, WP_VARIED, 0, i, buf), 0);
    all_arg a = {&p, 1, 500};
    CHECK_EQ(mpr_router_route_until(r.router, pipe_done, &a, 10.0), 0);
    CHECK_EQ(p.count, 500);
    CHECK_EQ(p.bad, 0);
    CHECK_EQ(mpr_sender_stop(s), 0);
    mpr_sender_free(s);
    CHECK_EQ(mpr_router_close_pipe(r.router, p.rcv), 0);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    wp_router_free(&r);
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

/* Whatever a worker's sends returned before route_until is routed by it,
 * even with a timeout of 0. */
static void route_until_zero(const char *extra)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    wp_pipe p;
    mpr_sender *s;
    REQUIRE(wp_pipe_open(r.router, &p, WP_VARIED, 0, &s) == 0);
    wp_child c;
    char arg[32];
    snprintf(arg, sizeof arg, "2000 -1 %s", extra);
    REQUIRE(wp_start_sender(&c, "worker-hold", arg, s, 1) == 0);
    mpr_sender_free(s);
    char line[32];
    CHECK(wp_read_line(c.out, line, sizeof line) >= 0 && !strcmp(line, "sent"));
    CHECK_EQ(mpr_router_route_until(r.router, never, NULL, 0.0), MPR_ETIMEDOUT);
    CHECK_EQ(p.count, 2000);
    CHECK_EQ(p.bad, 0);
    /* The router stays usable: the worker stops, nothing is lost. */
    wp_say(&c, "stop");
    CHECK_EQ(wp_wait(&c, 20000), 0);
    CHECK_EQ(mpr_router_route_until(r.router, never, NULL, 0.2), MPR_ETIMEDOUT);
    CHECK_EQ(p.lost, 0);
    wp_close(&c);
    CHECK_EQ(mpr_router_close_pipe(r.router, p.rcv), 0);
    CHECK_EQ(mpr_router_stop(r.router), 0);
    wp_router_free(&r);
}

CU_TEST(route_until_timeout_zero_ring)
{
    route_until_zero("");
}

CU_TEST(route_until_timeout_zero_frames)
{
    route_until_zero("frames");
}

WP_MAIN()
