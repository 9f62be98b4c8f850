/* tst_win_leak.c - nothing left behind by a start/stop cycle: the
 * process's handle count (GetProcessHandleCount, or every handle value
 * probed: wine 8 counts 0) and its number of threads
 * (a Toolhelp snapshot) after cycles with workers, frames and a sender on
 * the main thread are what they were after a first cycle. The first cycle
 * is not counted: it makes what lives as long as the process (Winsock is
 * not started here; the thread pool's wait thread of RegisterWait, our
 * user's token data, the C runtime's). Tolerance: 2 handles and 1 thread
 * for that pool, whose threads come and go on their own timers. */
#include "cunit.h"
#include "winproc.h"

#include <tlhelp32.h>

/* GetProcessHandleCount; wine 8 answers 0 there, so the handles are also
 * counted one by one: every value GetHandleInformation takes (handle
 * values are multiples of 4, low ones first). The larger of the two. */
static DWORD handles(void)
{
    DWORD n = 0, probed = 0, flags;
    GetProcessHandleCount(GetCurrentProcess(), &n);
    for (uintptr_t v = 4; v < 0x8000; v += 4)
        probed += GetHandleInformation((HANDLE)v, &flags) != 0;
    return n > probed ? n : probed;
}

static int threads(void)
{
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    if (snap == INVALID_HANDLE_VALUE)
        return -1;
    THREADENTRY32 te;
    te.dwSize = sizeof te;
    int n = 0;
    DWORD me = GetCurrentProcessId();
    for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te))
        n += te.th32OwnerProcessID == me;
    CloseHandle(snap);
    return n;
}

static int all_done(void *arg)
{
    wp_pipe *p = arg;
    return p[0].count >= 200 && p[1].count >= 200;
}

/* A router's life: a worker over the ring, one over frames, a sender on
 * this thread, a pipe left open (the warning), stop, free. */
static void cycle(void)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    wp_pipe p[3];
    wp_child c[2];
    mpr_sender *s;
    REQUIRE(wp_pipe_open(r.router, &p[0], WP_VARIED, 0, &s) == 0);
    REQUIRE(wp_start_sender(&c[0], "worker-send", "200 -1", s, 0) == 0);
    mpr_sender_free(s);
    REQUIRE(wp_pipe_open(r.router, &p[1], WP_VARIED, 0, &s) == 0);
    REQUIRE(wp_start_sender(&c[1], "worker-send", "200 -1 frames", s, 0) == 0);
    mpr_sender_free(s);
    REQUIRE(wp_pipe_open(r.router, &p[2], WP_VARIED, 0, &s) == 0);
    REQUIRE(mpr_sender_start(s) == 0);
    unsigned char buf[8192];
    CHECK_EQ(wp_send(s, WP_VARIED, 0, 0, buf), 0);
    CHECK(wp_run_until(&r, all_done, p, 30000));
    CHECK_EQ(wp_wait(&c[0], 10000), 0);
    CHECK_EQ(wp_wait(&c[1], 10000), 0);
    wp_close(&c[0]);
    wp_close(&c[1]);
    wp_log_echo = 0;
    CHECK_EQ(mpr_router_stop(r.router), 0); /* p[2] still open */
    wp_log_echo = 1;
    CHECK_EQ(mpr_sender_send(s, "x", 1), MPR_EPIPE);
    mpr_sender_free(s);
    wp_router_free(&r);
}

/* The count sees one handle more, and one less. */
CU_TEST(the_count_counts)
{
    DWORD h0 = handles();
    HANDLE e = CreateEventW(NULL, TRUE, FALSE, NULL);
    CHECK_EQ(handles(), h0 + 1);
    CloseHandle(e);
    CHECK_EQ(handles(), h0);
}

CU_TEST(no_handle_or_thread_left, .timeout_s = 180)
{
    wp_log_start();
    cycle();
    Sleep(200);
    DWORD h0 = handles();
    int t0 = threads();
    for (int i = 0; i < 5; i++)
        cycle();
    Sleep(200);
    DWORD h1 = handles();
    int t1 = threads();
    printf("       handles %lu -> %lu, threads %d -> %d after 5 cycles\n", (unsigned long)h0,
           (unsigned long)h1, t0, t1);
    CHECK(h0 > 0);
    CHECK(h1 <= h0 + 2);
    CHECK(t1 >= 1 && t1 <= t0 + 1);
    mpr_set_log_handler(NULL, NULL);
}

CU_TEST(start_stop_alone)
{
    wp_router r;
    REQUIRE(wp_router_new(&r) == 0);
    REQUIRE(mpr_router_start(r.router) == 0);
    REQUIRE(mpr_router_stop(r.router) == 0);
    DWORD h0 = handles();
    int t0 = threads();
    for (int i = 0; i < 20; i++) {
        REQUIRE(mpr_router_start(r.router) == 0);
        REQUIRE(mpr_router_stop(r.router) == 0);
    }
    DWORD h1 = handles();
    int t1 = threads();
    printf("       handles %lu -> %lu, threads %d -> %d after 20 start/stop\n", (unsigned long)h0,
           (unsigned long)h1, t0, t1);
    CHECK(h0 > 0);
    CHECK(h1 <= h0 + 2);
    CHECK(t1 <= t0 + 1);
    wp_router_free(&r);
}

WP_MAIN()
