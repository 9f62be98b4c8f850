/* tst_win_hostile.c - peers on the router's named pipe that are not
 * senders, each costing only itself while a bystander worker keeps
 * sending: garbage, a forged sender string (wrong key: the real router
 * cannot prove it to that key; an id never issued), a HELLO then silence
 * past the handshake timeout, a peer that closes in the middle of its
 * HELLO, and 20 idle connections that do not keep a real sender out. The
 * HELLO's bytes are wire.h's (32 bytes: "MPR1", version 4, pipe id, flags
 * 0, a nonce); everything else is the public API. */
#include "cunit.h"
#include "winproc.h"

#define HANDSHAKE_S 1.0

/* The pipe name of a sender string ("mpr3:NAME:ID:KEY..."). */
static void pipe_path(const char *str, char *path, size_t size)
{
    const char *name = str + 5, *colon = strchr(name, ':');
    snprintf(path, size, "\\\\.\\pipe\\%.*s", (int)(colon - name), name);
}

typedef struct {
    HANDLE h;
    OVERLAPPED ov;
    unsigned char buf[256];
    int pending;
} raw_peer;

static int raw_connect(raw_peer *p, const char *str)
{
    char path[300];
    pipe_path(str, path, sizeof path);
    memset(p, 0, sizeof *p);
    for (int tries = 0; tries < 50; tries++) {
        p->h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                           FILE_FLAG_OVERLAPPED, NULL);
        if (p->h != INVALID_HANDLE_VALUE)
            break;
        if (GetLastError() != ERROR_PIPE_BUSY)
            return -1;
        WaitNamedPipeA(path, 1000);
    }
    if (p->h == INVALID_HANDLE_VALUE)
        return -1;
    p->ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    return 0;
}

static int raw_write(raw_peer *p, const void *data, DWORD n)
{
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    DWORD done = 0;
    BOOL ok = WriteFile(p->h, data, n, NULL, &ov);
    if (!ok && GetLastError() == ERROR_IO_PENDING)
        ok = TRUE;
    ok = ok && GetOverlappedResult(p->h, &ov, &done, TRUE);
    CloseHandle(ov.hEvent);
    return ok && done == n ? 0 : -1;
}

/* Read for up to ms, running the router's loop meanwhile: the bytes read
 * (into p->buf, at most want), or -1 once the router closed the pipe with
 * nothing (more) to read. */
static int raw_read(raw_peer *p, wp_router *r, DWORD want, DWORD ms)
{
    if (!p->pending) {
        ResetEvent(p->ov.hEvent);
        if (!ReadFile(p->h, p->buf, want, NULL, &p->ov) && GetLastError() != ERROR_IO_PENDING)
            return -1;
        p->pending = 1;
    }
    HANDLE hs[2] = {p->ov.hEvent, (HANDLE)mpr_fd_loop_handle(r->loop)};
    ULONGLONG end = GetTickCount64() + ms;
    for (ULONGLONG now; (now = GetTickCount64()) < end;) {
        DWORD w = WaitForMultipleObjects(2, hs, FALSE, (DWORD)(end - now));
        if (w == WAIT_OBJECT_0 + 1) {
            mpr_fd_loop_dispatch(r->loop);
            continue;
        }
        if (w != WAIT_OBJECT_0)
            break;
        DWORD got = 0;
        p->pending = 0;
        if (!GetOverlappedResult(p->h, &p->ov, &got, FALSE))
            return -1;
        return (int)got;
    }
    return 0; /* still open, nothing came */
}

/* Has the router closed it within ms (reading whatever comes)? */
static int raw_closed_within(raw_peer *p, wp_router *r, DWORD ms)
{
    ULONGLONG end = GetTickCount64() + ms;
    for (ULONGLONG now; (now = GetTickCount64()) < end;)
        if (raw_read(p, r, sizeof p->buf, (DWORD)(end - now)) < 0)
            return 1;
    return 0;
}

static void raw_close(raw_peer *p)
{
    if (p->pending) {
        CancelIoEx(p->h, &p->ov);
        DWORD n;
        GetOverlappedResult(p->h, &p->ov, &n, TRUE);
    }
    CloseHandle(p->h);
    CloseHandle(p->ov.hEvent);
    memset(p, 0, sizeof *p);
}

static void hello_bytes(unsigned char out[32], uint32_t id)
{
    uint32_t w[4] = {0x3152504du /* "MPR1" */, 4u, id, 0u};
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 4; b++)
            out[4 * i + b] = (unsigned char)(w[i] >> (8 * b));
    for (int i = 16; i < 32; i++)
        out[i] = (unsigned char)(i * 37 + 11);
}

typedef struct {
    wp_router r;
    wp_pipe by; /* the bystander's account */
    wp_child byc;
} fixture;

static int setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    if (wp_router_new(&f->r) < 0 || mpr_router_set_handshake_timeout(f->r.router, HANDSHAKE_S) < 0 ||
        mpr_router_start(f->r.router) < 0)
        return -1;
    mpr_sender *s;
    if (wp_pipe_open(f->r.router, &f->by, WP_VARIED, 0, &s) < 0)
        return -1;
    int rc = wp_start_sender(&f->byc, "worker-paced", "6000", s, 0);
    mpr_sender_free(s);
    return rc;
}

static int bystander_done(void *arg)
{
    return ((fixture *)arg)->by.count >= 6000;
}

/* The bystander got everything, in order, and stopped cleanly. */
static void finish(fixture *f)
{
    CHECK(wp_run_until(&f->r, bystander_done, f, 60000));
    CHECK_EQ(wp_wait(&f->byc, 20000), 0);
    wp_close(&f->byc);
    wp_run_for(&f->r, 100);
    CHECK_EQ(f->by.count, 6000);
    CHECK_EQ(f->by.bad, 0);
    CHECK_EQ(f->by.lost, 0);
    mpr_router_close_pipe(f->r.router, f->by.rcv);
    CHECK_EQ(mpr_router_stop(f->r.router), 0);
    wp_router_free(&f->r);
    mpr_set_log_handler(NULL, NULL);
}

/* A real sender on a new pipe still gets through. */
static void real_sender_works(fixture *f)
{
    wp_pipe p;
    mpr_sender *s;
    REQUIRE(wp_pipe_open(f->r.router, &p, WP_FIXED, 100, &s) == 0);
    wp_child c;
    REQUIRE(wp_start_sender(&c, "worker-send", "50 100", s, 0) == 0);
    mpr_sender_free(s);
    ULONGLONG end = GetTickCount64() + 20000;
    while (p.count < 50 && GetTickCount64() < end)
        wp_run_for(&f->r, 20);
    CHECK_EQ(wp_wait(&c, 20000), 0);
    wp_close(&c);
    CHECK_EQ(p.count, 50);
    CHECK_EQ(p.bad, 0);
    CHECK_EQ(mpr_router_close_pipe(f->r.router, p.rcv), 0);
}

CU_TEST(garbage)
{
    fixture f;
    REQUIRE(setup(&f) == 0);
    wp_log_start();
    raw_peer p;
    char str[512];
    mpr_sender *s;
    mpr_receiver *rcv;
    REQUIRE(mpr_router_pipe(f.r.router, &s, &rcv) == 0);
    mpr_sender_to_string(s, str, sizeof str);
    REQUIRE(raw_connect(&p, str) == 0);
    unsigned char junk[64];
    memset(junk, 0xAB, sizeof junk);
    CHECK_EQ(raw_write(&p, junk, sizeof junk), 0);
    CHECK(raw_closed_within(&p, &f.r, 5000)); /* at once, not after the timeout */
    raw_close(&p);
    CHECK(wp_log_has("rejected connection"));
    /* The pipe it used is still good for its real sender. */
    CHECK_EQ(mpr_sender_start(s), 0);
    CHECK_EQ(mpr_sender_send(s, "ok", 2), 0);
    CHECK_EQ(mpr_sender_stop(s), 0);
    mpr_sender_free(s);
    mpr_router_close_pipe(f.r.router, rcv);
    real_sender_works(&f);
    mpr_router_stats st;
    mpr_router_get_stats(f.r.router, &st);
    CHECK(st.connections_rejected >= 1);
    finish(&f);
}

CU_TEST(forged_strings)
{
    fixture f;
    REQUIRE(setup(&f) == 0);
    wp_log_start();
    mpr_sender *s, *forged;
    mpr_receiver *rcv;
    REQUIRE(mpr_router_pipe(f.r.router, &s, &rcv) == 0);
    char str[512], bad[512];
    mpr_sender_to_string(s, str, sizeof str);
    /* Another key for the same pipe: the router cannot prove this key,
     * so the sender takes it for an impostor. */
    snprintf(bad, sizeof bad, "%s", str);
    char *key = strrchr(bad, ':') + 1;
    key[0] = key[0] == '0' ? '1' : '0';
    REQUIRE(mpr_sender_from_string(&forged, bad) == 0);
    CHECK_EQ(mpr_sender_start(forged), MPR_ECONNREFUSED);
    mpr_sender_free(forged);
    /* An id the router never issued. */
    char *id = strchr(bad + 5, ':') + 1;
    char rest[512];
    snprintf(rest, sizeof rest, "%s", strchr(id, ':'));
    snprintf(id, (size_t)(bad + sizeof bad - id), "999%s", rest);
    REQUIRE(mpr_sender_from_string(&forged, bad) == 0);
    CHECK_EQ(mpr_sender_start(forged), MPR_EACCES);
    mpr_sender_free(forged);
    /* The real one still works, once. */
    CHECK_EQ(mpr_sender_start(s), 0);
    CHECK_EQ(mpr_sender_send(s, "ok", 2), 0);
    CHECK_EQ(mpr_sender_stop(s), 0);
    mpr_sender_free(s);
    mpr_sender *again;
    REQUIRE(mpr_sender_from_string(&again, str) == 0);
    CHECK_EQ(mpr_sender_start(again), MPR_EALREADY); /* one pipe, one sender */
    mpr_sender_free(again);
    mpr_router_close_pipe(f.r.router, rcv);
    real_sender_works(&f);
    finish(&f);
}

CU_TEST(hello_then_silence)
{
    fixture f;
    REQUIRE(setup(&f) == 0);
    wp_log_start();
    mpr_sender *s;
    mpr_receiver *rcv;
    REQUIRE(mpr_router_pipe(f.r.router, &s, &rcv) == 0);
    char str[512];
    mpr_sender_to_string(s, str, sizeof str);
    raw_peer p;
    REQUIRE(raw_connect(&p, str) == 0);
    unsigned char hello[32];
    hello_bytes(hello, mpr_sender_id(s));
    ULONGLONG t0 = GetTickCount64();
    CHECK_EQ(raw_write(&p, hello, sizeof hello), 0);
    /* The CHALLENGE: 48 bytes, "MPRC". */
    int got = 0;
    unsigned char challenge[48];
    while (got < 48) {
        int n = raw_read(&p, &f.r, (DWORD)(48 - got), 5000);
        if (n <= 0)
            break;
        memcpy(challenge + got, p.buf, (size_t)n);
        got += n;
    }
    CHECK_EQ(got, 48);
    CHECK(got == 48 && !memcmp(challenge, "MPRC", 4));
    /* Then nothing from us: closed after the handshake timeout. */
    CHECK(raw_closed_within(&p, &f.r, (DWORD)(HANDSHAKE_S * 1000) + 5000));
    ULONGLONG dt = GetTickCount64() - t0;
    CHECK(dt >= (ULONGLONG)(HANDSHAKE_S * 1000) - 50);
    raw_close(&p);
    CHECK(wp_log_has("no handshake within"));
    /* Its pipe was not taken: the real sender gets it. */
    CHECK_EQ(mpr_sender_start(s), 0);
    CHECK_EQ(mpr_sender_stop(s), 0);
    mpr_sender_free(s);
    mpr_router_close_pipe(f.r.router, rcv);
    real_sender_works(&f);
    finish(&f);
}

CU_TEST(close_mid_hello)
{
    fixture f;
    REQUIRE(setup(&f) == 0);
    wp_log_start();
    mpr_sender *s;
    mpr_receiver *rcv;
    REQUIRE(mpr_router_pipe(f.r.router, &s, &rcv) == 0);
    char str[512];
    mpr_sender_to_string(s, str, sizeof str);
    for (int i = 0; i < 5; i++) {
        raw_peer p;
        REQUIRE(raw_connect(&p, str) == 0);
        unsigned char hello[32];
        hello_bytes(hello, mpr_sender_id(s));
        CHECK_EQ(raw_write(&p, hello, 10), 0);
        raw_close(&p);
    }
    ULONGLONG end = GetTickCount64() + 5000;
    while (!wp_log_has("closed before the handshake") && GetTickCount64() < end)
        wp_run_for(&f.r, 20);
    CHECK(wp_log_has("closed before the handshake"));
    CHECK_EQ(mpr_sender_start(s), 0);
    CHECK_EQ(mpr_sender_stop(s), 0);
    mpr_sender_free(s);
    mpr_router_close_pipe(f.r.router, rcv);
    real_sender_works(&f);
    finish(&f);
}

CU_TEST(idle_connections_do_not_block)
{
    fixture f;
    REQUIRE(setup(&f) == 0);
    wp_log_echo = 0;
    wp_log_start();
    mpr_sender *s;
    mpr_receiver *rcv;
    REQUIRE(mpr_router_pipe(f.r.router, &s, &rcv) == 0);
    char str[512];
    mpr_sender_to_string(s, str, sizeof str);
    raw_peer idle[20];
    int n = 0;
    for (; n < 20; n++)
        if (raw_connect(&idle[n], str) < 0)
            break;
    CHECK_EQ(n, 20);
    ULONGLONG t0 = GetTickCount64();
    real_sender_works(&f);
    CHECK(GetTickCount64() - t0 < 15000);
    for (int i = 0; i < n; i++)
        raw_close(&idle[i]);
    mpr_sender_free(s);
    mpr_router_close_pipe(f.r.router, rcv);
    wp_log_echo = 1;
    finish(&f);
}

WP_MAIN()
