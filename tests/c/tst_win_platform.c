/* tst_win_platform.c - the parts of platform_win.c the router's tests do
 * not reach through the public API (the remote transport, which would use
 * them, is not in the Windows build yet): tcp (listen, a non-blocking
 * connect waited for with MPR__WAIT_OUT, accept through the poller, a
 * refused connect, an address in use, a host that does not resolve), the
 * poller's promises (level-triggered, the always-set, a removed watch
 * whose memory is freed at once, events, a wake-up from another thread),
 * the local endpoint within one process (the peer's pid and user, the end
 * of the stream, nobody listening), a section handed over with
 * mpr__ipc_send_shm and pulled after its sender closed it, refused when
 * too small, too large, SEC_RESERVE or not a section at all; mpr__wait
 * on an event, condition variables with a deadline, the error map.
 * Internal: includes src/platform.h and links the static library. */
#include "cunit.h"

#include <mprouter/common.h>

#include "platform.h"

static int tcp_pair(mpr__fd *l, mpr__fd *c, mpr__fd *a)
{
    char bound[64], host[64], port[16];
    if (mpr__tcp_listen("127.0.0.1", "0", l, bound, sizeof bound) < 0)
        return -1;
    const char *colon = strrchr(bound, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - bound), bound);
    snprintf(port, sizeof port, "%s", colon + 1);
    if (mpr__tcp_connect(host, port, c) < 0)
        return -1;
    mpr__waitfd w = {*c, MPR__WAIT_OUT, 0};
    if (mpr__wait(&w, 1, 5000) != 1 || mpr__tcp_connected(*c) != 0)
        return -1;
    char peer[64];
    for (int i = 0; i < 500; i++) {
        int rc = mpr__tcp_accept(*l, a, peer, sizeof peer);
        if (rc == 0)
            return strncmp(peer, "127.0.0.1:", 10) == 0 ? 0 : -1;
        if (rc != MPR_EAGAIN)
            return -1;
        Sleep(10);
    }
    return -1;
}

CU_TEST(tcp_connect_accept_stream)
{
    mpr__fd l, c, a;
    REQUIRE(tcp_pair(&l, &c, &a) == 0);
    char buf[64];
    CHECK_EQ(mpr__stream_recv(a, buf, sizeof buf), MPR_EAGAIN);
    CHECK_EQ(mpr__stream_send_some(c, "hello", 5), 5);
    mpr__waitfd w = {a, MPR__WAIT_IN, 0};
    CHECK_EQ(mpr__wait(&w, 1, 5000), 1);
    CHECK(w.ready & MPR__WAIT_IN);
    CHECK_EQ(mpr__stream_unread(a), 5);
    CHECK_EQ(mpr__stream_recv(a, buf, sizeof buf), 5);
    CHECK(!memcmp(buf, "hello", 5));
    static unsigned char big[1 << 20];
    memset(big, 7, sizeof big);
    CHECK_EQ(mpr__stream_send_all(c, "ab", 2, big, 100000), 0);
    size_t got = 0;
    while (got < 100002) {
        mpr__waitfd wi = {a, MPR__WAIT_IN, 0};
        if (mpr__wait(&wi, 1, 5000) != 1)
            break;
        long n = mpr__stream_recv(a, big + 200000, 65536);
        if (n > 0)
            got += (size_t)n;
        else if (n != MPR_EAGAIN)
            break;
    }
    CHECK_EQ(got, 100002);
    CHECK(!mpr__stream_peer_gone(a));
    mpr__stream_shutdown_close(c);
    w.ready = 0;
    CHECK_EQ(mpr__wait(&w, 1, 5000), 1);
    CHECK_EQ(mpr__stream_recv(a, buf, sizeof buf), 0); /* the end */
    mpr__fd_close(a);
    mpr__fd_close(l);
}

CU_TEST(tcp_refused_inuse_unresolved)
{
    mpr__fd l, c;
    char bound[64];
    REQUIRE(mpr__tcp_listen("127.0.0.1", "0", &l, bound, sizeof bound) == 0);
    const char *port = strrchr(bound, ':') + 1;
    mpr__fd l2;
    char b2[64];
    CHECK_EQ(mpr__tcp_listen("127.0.0.1", port, &l2, b2, sizeof b2), MPR_EADDRINUSE);
    char portcopy[16];
    snprintf(portcopy, sizeof portcopy, "%s", port);
    mpr__fd_close(l); /* now nobody listens there */
    REQUIRE(mpr__tcp_connect("127.0.0.1", portcopy, &c) == 0);
    mpr__waitfd w = {c, MPR__WAIT_OUT, 0};
    CHECK_EQ(mpr__wait(&w, 1, 5000), 1);
    CHECK_EQ(mpr__tcp_connected(c), MPR_ECONNREFUSED);
    mpr__fd_close(c);
    CHECK_EQ(mpr__tcp_connect("no-such-host.invalid", "1", &c), MPR_EINVAL);
    CHECK_EQ(mpr__tcp_listen("[zz", "0", &l, bound, sizeof bound), MPR_EINVAL);
    char name[256];
    CHECK_EQ(mpr__hostname(name, sizeof name), 0);
    CHECK(name[0] != 0);
}

static int fired;
static void on_event(mpr__watch *w)
{
    (void)w;
    fired++;
}

static int waits_for(mpr__poller *p, int always_only, mpr__watch *w, int timeout_ms)
{
    mpr__watch *ready[8];
    int n = mpr__poller_wait(p, always_only, timeout_ms, ready, 8);
    for (int i = 0; i < n; i++)
        if (ready[i] == w)
            return 1;
    return 0;
}

CU_TEST(poller_level_triggered_and_always_set)
{
    mpr__fd l, c, a;
    REQUIRE(tcp_pair(&l, &c, &a) == 0);
    mpr__poller *p;
    REQUIRE(mpr__poller_new(&p) == 0);
    mpr__watch wa = {on_event, MPR__NO_FD, 0, 0, NULL};
    REQUIRE(mpr__poller_add(p, &wa, a, 0) == 0);
    CHECK(!waits_for(p, 0, &wa, 50));
    CHECK_EQ(mpr__stream_send_some(c, "0123456789", 10), 10);
    CHECK(waits_for(p, 0, &wa, 5000));
    char buf[8];
    CHECK_EQ(mpr__stream_recv(a, buf, 5), 5);
    CHECK(waits_for(p, 0, &wa, 5000)); /* still readable: reported again */
    CHECK_EQ(mpr__stream_recv(a, buf, 8), 5);
    CHECK(!waits_for(p, 0, &wa, 50));
    /* Not in the always-set: not reported there, kept for the normal set. */
    CHECK_EQ(mpr__stream_send_some(c, "x", 1), 1);
    CHECK(!waits_for(p, 1, &wa, 200));
    CHECK(waits_for(p, 0, &wa, 5000));
    mpr__poller_set_always(p, &wa, 1);
    CHECK(waits_for(p, 1, &wa, 5000));
    CHECK_EQ(mpr__stream_recv(a, buf, 8), 1);
    mpr__poller_del(p, &wa);
    CHECK(wa.gone);
    mpr__poller_free(p);
    mpr__fd_close(a);
    mpr__fd_close(c);
    mpr__fd_close(l);
}

CU_TEST(poller_removed_watch_freed_at_once)
{
    mpr__poller *p;
    REQUIRE(mpr__poller_new(&p) == 0);
    mpr__fd l, c, a;
    REQUIRE(tcp_pair(&l, &c, &a) == 0);
    for (int round = 0; round < 50; round++) {
        mpr__watch *w = calloc(1, sizeof *w);
        w->on_event = on_event;
        REQUIRE(mpr__poller_add(p, w, a, 1) == 0);
        CHECK(!waits_for(p, 0, w, 0)); /* armed, nothing there */
        mpr__poller_del(p, w);
        memset(w, 0xEE, sizeof *w); /* a completion delivered now would crash */
        free(w);
        if (round % 2)
            mpr__stream_send_some(c, "z", 1); /* completes the cancelled read, maybe */
        mpr__watch *ready[8];
        CHECK_EQ(mpr__poller_wait(p, 0, 5, ready, 8), 0);
        char buf[8];
        mpr__stream_recv(a, buf, sizeof buf);
    }
    mpr__fd_close(a);
    mpr__fd_close(c);
    mpr__fd_close(l);
    mpr__poller_free(p); /* waits for the cancelled reads' packets */
}

static DWORD WINAPI wake_later(void *arg)
{
    Sleep(100);
    mpr__poller_wake(arg);
    return 0;
}

CU_TEST(poller_events_listener_and_wake)
{
    mpr__poller *p;
    REQUIRE(mpr__poller_new(&p) == 0);
    mpr__event e;
    REQUIRE(mpr__event_open(&e) == 0);
    mpr__watch we = {on_event, MPR__NO_FD, 0, 0, NULL};
    REQUIRE(mpr__poller_add(p, &we, mpr__event_fd(&e), 1) == 0);
    CHECK(!waits_for(p, 0, &we, 50));
    mpr__event_set(&e);
    CHECK(waits_for(p, 1, &we, 5000));
    CHECK(waits_for(p, 0, &we, 5000)); /* set until cleared */
    mpr__event_clear(&e);
    CHECK(!waits_for(p, 0, &we, 50));
    /* A tcp listener: readable while a connection waits. */
    mpr__fd l, c;
    char bound[64];
    REQUIRE(mpr__tcp_listen("127.0.0.1", "0", &l, bound, sizeof bound) == 0);
    mpr__watch wl = {on_event, MPR__NO_FD, 0, 0, NULL};
    REQUIRE(mpr__poller_add(p, &wl, l, 1) == 0);
    CHECK(!waits_for(p, 0, &wl, 50));
    REQUIRE(mpr__tcp_connect("127.0.0.1", strrchr(bound, ':') + 1, &c) == 0);
    CHECK(waits_for(p, 0, &wl, 5000));
    CHECK(waits_for(p, 0, &wl, 5000)); /* not taken yet: again */
    mpr__fd a;
    char peer[64];
    CHECK_EQ(mpr__tcp_accept(l, &a, peer, sizeof peer), 0);
    CHECK(!waits_for(p, 0, &wl, 100));
    /* The accepted socket works with the poller (no event selection). */
    mpr__watch wa = {on_event, MPR__NO_FD, 0, 0, NULL};
    REQUIRE(mpr__poller_add(p, &wa, a, 0) == 0);
    CHECK_EQ(mpr__stream_send_some(c, "q", 1), 1);
    CHECK(waits_for(p, 0, &wa, 5000));
    /* A wake-up from another thread: the wait returns 0, early. */
    HANDLE t = CreateThread(NULL, 0, wake_later, p, 0, NULL);
    int64_t t0 = mpr__now_ns();
    mpr__watch *ready[8];
    char buf[4];
    mpr__stream_recv(a, buf, sizeof buf);
    int n = mpr__poller_wait(p, 0, 5000, ready, 8);
    int64_t ms = (mpr__now_ns() - t0) / 1000000;
    CHECK_EQ(n, 0);
    CHECK(ms < 3000);
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
    mpr__poller_del(p, &wa);
    mpr__poller_del(p, &wl);
    mpr__poller_del(p, &we);
    mpr__poller_free(p);
    mpr__fd_close(a);
    mpr__fd_close(c);
    mpr__fd_close(l);
    mpr__event_close(&e);
}

CU_TEST(wait_on_event_and_timeouts)
{
    mpr__event e;
    REQUIRE(mpr__event_open(&e) == 0);
    mpr__waitfd w = {mpr__event_fd(&e), MPR__WAIT_IN, 0};
    int64_t t0 = mpr__now_ns();
    CHECK_EQ(mpr__wait(&w, 1, 100), 0);
    int64_t ms = (mpr__now_ns() - t0) / 1000000;
    CHECK(ms >= 90 && ms < 2000);
    mpr__event_set(&e);
    CHECK_EQ(mpr__wait(&w, 1, 1000), 1);
    CHECK_EQ(w.ready, MPR__WAIT_IN);
    mpr__event_close(&e);

    mpr__mutex m;
    mpr__cond cv;
    mpr__mutex_init(&m);
    mpr__cond_init(&cv);
    mpr__mutex_lock(&m);
    t0 = mpr__now_ns();
    mpr__cond_wait_until(&cv, &m, t0 + 150 * 1000000);
    ms = (mpr__now_ns() - t0) / 1000000;
    mpr__mutex_unlock(&m);
    CHECK(ms >= 140 && ms < 2000);
    mpr__cond_destroy(&cv);
    mpr__mutex_destroy(&m);
}

/* A client and a server end of the local endpoint, in this process. */
static int ipc_pair(mpr__ipc_listener *l, mpr__fd *client, mpr__fd *server, mpr__ipc_peer *who)
{
    char name[MPR__IPC_NAME_MAX + 1];
    if (mpr__ipc_listen(l, name, sizeof name) < 0 || strncmp(name, "mprouter-", 9) != 0)
        return -1;
    if (mpr__ipc_accept(l, server, who) != MPR_EAGAIN)
        return -1;
    if (mpr__ipc_connect(name, client, mpr__now_ns() + 10000000000LL) < 0)
        return -1;
    mpr__waitfd w = {l->fd, MPR__WAIT_IN, 0};
    if (mpr__wait(&w, 1, 5000) != 1)
        return -1;
    return mpr__ipc_accept(l, server, who);
}

CU_TEST(ipc_endpoint_and_peer)
{
    mpr__ipc_listener l;
    mpr__fd c, sv;
    mpr__ipc_peer who;
    REQUIRE(ipc_pair(&l, &c, &sv, &who) == 0);
    CHECK_EQ(who.pid, (long)GetCurrentProcessId());
    CHECK(who.same_user);
    CHECK(mpr__ipc_peer_is_us(c));
    CHECK_EQ(mpr__stream_send_some(c, "abc", 3), 3);
    char buf[8];
    mpr__waitfd w = {sv, MPR__WAIT_IN, 0};
    CHECK_EQ(mpr__wait(&w, 1, 5000), 1);
    CHECK_EQ(mpr__stream_unread(sv), 3);
    CHECK_EQ(mpr__ipc_recv(sv, buf, sizeof buf, NULL, NULL), 3);
    CHECK_EQ(mpr__stream_recv(sv, buf, sizeof buf), MPR_EAGAIN);
    CHECK(!mpr__stream_peer_gone(c));
    mpr__stream_shutdown_close(sv);
    CHECK(mpr__stream_peer_gone(c));
    CHECK_EQ(mpr__stream_recv(c, buf, sizeof buf), 0);
    CHECK_EQ(mpr__stream_send_some(c, "x", 1), MPR_EPIPE);
    mpr__fd_close(c);
    char name[MPR__IPC_NAME_MAX + 1];
    snprintf(name, sizeof name, "mprouter-%lu-gone", (unsigned long)GetCurrentProcessId());
    CHECK_EQ(mpr__ipc_connect(name, &c, mpr__now_ns() + 10000000000LL), MPR_ECONNREFUSED);
    mpr__ipc_unlisten(&l);
}

/* Send a handle with mpr__ipc_send_shm (closed right after, as the sender
 * does), receive it with mpr__ipc_recv, map it: 0, or MPR_EPROTO. */
static int hand_over(HANDLE section, size_t min, size_t max)
{
    mpr__ipc_listener l;
    mpr__fd c, sv;
    mpr__ipc_peer who;
    if (ipc_pair(&l, &c, &sv, &who) < 0)
        return -100;
    int rc = mpr__ipc_send_shm(c, "PROOF", 5, (mpr__fd)section);
    CloseHandle(section);
    mpr__fd shm = MPR__NO_FD;
    int dropped = 0;
    char buf[16];
    long n = MPR_EAGAIN;
    for (int i = 0; i < 100 && n == MPR_EAGAIN; i++) {
        mpr__waitfd w = {sv, MPR__WAIT_IN, 0};
        mpr__wait(&w, 1, 100);
        n = mpr__ipc_recv(sv, buf, sizeof buf, &shm, &dropped);
    }
    if (rc < 0 || n != 5 || memcmp(buf, "PROOF", 5) != 0 || dropped)
        rc = -101;
    else if (shm < 0)
        rc = -102;
    else {
        void *addr;
        size_t size;
        rc = mpr__shm_map(shm, min, max, &addr, &size);
        if (rc == 0) {
            rc = size >= min && size <= max && ((unsigned char *)addr)[0] == 0x5A ? 0 : -103;
            mpr__shm_unmap(addr, size);
        }
        mpr__fd_close(shm);
    }
    mpr__fd_close(c);
    mpr__fd_close(sv);
    mpr__ipc_unlisten(&l);
    return rc;
}

CU_TEST(shm_handed_over_and_checked)
{
    const size_t size = 4096 + 65536;
    /* A ring-shaped section, filled by its maker, mapped by the other. */
    mpr__fd h;
    void *addr;
    REQUIRE(mpr__shm_create(size, &h, &addr) == 0);
    ((unsigned char *)addr)[0] = 0x5A;
    CHECK_EQ(hand_over((HANDLE)h, size, size), 0);
    mpr__shm_unmap(addr, size);
    /* Too small or too large for what the receiver takes. */
    REQUIRE(mpr__shm_create(size, &h, &addr) == 0);
    CHECK_EQ(hand_over((HANDLE)h, size + 4096, 1 << 24), MPR_EPROTO);
    mpr__shm_unmap(addr, size);
    REQUIRE(mpr__shm_create(size, &h, &addr) == 0);
    CHECK_EQ(hand_over((HANDLE)h, 4096, size - 4096), MPR_EPROTO);
    mpr__shm_unmap(addr, size);
    /* Pages reserved, not committed: refused (they would fault). */
    HANDLE r = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE | SEC_RESERVE, 0,
                                  (DWORD)size, NULL);
    REQUIRE(r != NULL);
    CHECK_EQ(hand_over(r, 4096, 1 << 24), MPR_EPROTO);
    /* Not a section at all. */
    HANDLE e = CreateEventW(NULL, TRUE, FALSE, NULL);
    CHECK_EQ(hand_over(e, 4096, 1 << 24), MPR_EPROTO);
}

CU_TEST(errors_and_basics)
{
    CHECK_EQ(mpr__errno_code(ERROR_BROKEN_PIPE), MPR_EPIPE);
    CHECK_EQ(mpr__errno_code(ERROR_FILE_NOT_FOUND), MPR_ENOENT);
    CHECK_EQ(mpr__errno_code(WSAECONNREFUSED), MPR_ECONNREFUSED);
    CHECK_EQ(mpr__errno_code(WSAEADDRINUSE), MPR_EADDRINUSE);
    CHECK_EQ(mpr__errno_code(ERROR_NOT_ENOUGH_MEMORY), MPR_ENOMEM);
    CHECK_EQ(mpr__errno_code(12345678), MPR_EIO);
    CHECK_EQ(mpr__fd_room(), 1);
    uint64_t t = mpr__process_token();
    CHECK(t != 0 && t == mpr__process_token() && !mpr__forked(t));
    unsigned char r1[32], r2[32];
    CHECK_EQ(mpr__random(r1, sizeof r1), 0);
    CHECK_EQ(mpr__random(r2, sizeof r2), 0);
    CHECK(memcmp(r1, r2, sizeof r1) != 0);
    void *sec = mpr__secure_alloc(100);
    CHECK(sec != NULL);
    mpr__secure_free(sec, 100);
    CHECK(mpr__thread_is_self(mpr__thread_self()));
}

CU_MAIN()
