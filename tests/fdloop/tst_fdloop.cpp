// The fd event loop on its own, driven by plain poll() as a C program would.
#include <QtTest>

#include <poll.h>
#include <thread>
#include <vector>

#include <mprouter/mprouter.h>

namespace {

bool readable(mpr_fd_loop *loop, int timeoutMs = 0)
{
    struct pollfd p = {mpr_fd_loop_fd(loop), POLLIN, 0};
    return poll(&p, 1, timeoutMs) == 1 && (p.revents & POLLIN);
}

struct Calls
{
    std::vector<int> log; // tags of the callbacks, in order
    static void tagA(void *arg) { static_cast<Calls *>(arg)->log.push_back(1); }
    static void tagB(void *arg) { static_cast<Calls *>(arg)->log.push_back(2); }
};

struct Loop
{
    mpr_fd_loop *loop = nullptr;
    const mpr_event_loop *ev = nullptr;
    Loop()
    {
        mpr_fd_loop_new(&loop);
        ev = mpr_fd_loop_event_loop(loop);
    }
    ~Loop() { mpr_fd_loop_free(loop); }
    mpr_pingee *pingee(void (*fn)(void *), void *arg)
    {
        mpr_pingee *p = nullptr;
        ev->pingee_new(ev, fn, arg, &p);
        ev->pingee_connect(p);
        return p;
    }
    mpr_pinger *pinger(mpr_pingee *p)
    {
        mpr_pinger *g = nullptr;
        ev->pinger_new(p, &g);
        ev->pinger_connect(g);
        return g;
    }
};

} // namespace

class tst_FdLoop : public QObject
{
    Q_OBJECT
private slots:
    void onePingOneCall();
    void pingsFromThreads_data();
    void pingsFromThreads();
    void orderAcrossPingees();
    void pingsDuringDispatchWaitForNextCall();
    void disconnectedPingeeRunsNothing();
    void disconnectedPingerDoesNothing();
    void pingerOutlivesPingeeAndLoop();
    void dispatchIsNotReentrant();
    void badArguments();
};

void tst_FdLoop::onePingOneCall()
{
    Loop l;
    Calls calls;
    mpr_pingee *p = l.pingee(Calls::tagA, &calls);
    mpr_pinger *g = l.pinger(p);
    QVERIFY(!readable(l.loop));
    QCOMPARE(mpr_fd_loop_dispatch(l.loop), 0);
    l.ev->pinger_ping(g);
    QVERIFY(readable(l.loop));
    QVERIFY(readable(l.loop)); // level-triggered: still readable
    QCOMPARE(mpr_fd_loop_dispatch(l.loop), 1);
    QCOMPARE(calls.log.size(), size_t(1));
    QVERIFY(!readable(l.loop));
    l.ev->pinger_free(g);
    l.ev->pingee_free(p);
}

void tst_FdLoop::pingsFromThreads_data()
{
    QTest::addColumn<int>("threads");
    QTest::addColumn<int>("pings");
    QTest::newRow("1 x 7") << 1 << 7;
    QTest::newRow("5 x 3") << 5 << 3;
    QTest::newRow("8 x 2000") << 8 << 2000;
}

void tst_FdLoop::pingsFromThreads()
{
    QFETCH(int, threads);
    QFETCH(int, pings);
    Loop l;
    Calls calls;
    mpr_pingee *p = l.pingee(Calls::tagA, &calls);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++)
        pool.emplace_back([&] {
            mpr_pinger *g = l.pinger(p);
            for (int i = 0; i < pings; i++)
                l.ev->pinger_ping(g);
            l.ev->pinger_disconnect(g);
            l.ev->pinger_free(g);
        });
    // Dispatch while the threads ping, the way a poll() loop would.
    size_t expected = size_t(threads) * size_t(pings);
    while (calls.log.size() < expected) {
        QVERIFY(readable(l.loop, 10000));
        QVERIFY(mpr_fd_loop_dispatch(l.loop) > 0);
    }
    for (auto &t : pool)
        t.join();
    QCOMPARE(calls.log.size(), expected);
    QVERIFY(!readable(l.loop));
    QCOMPARE(mpr_fd_loop_dispatch(l.loop), 0);
    l.ev->pingee_free(p);
}

void tst_FdLoop::orderAcrossPingees()
{
    Loop l;
    Calls calls;
    mpr_pingee *a = l.pingee(Calls::tagA, &calls);
    mpr_pingee *b = l.pingee(Calls::tagB, &calls);
    mpr_pinger *ga = l.pinger(a), *gb = l.pinger(b);
    for (int i = 0; i < 3; i++) {
        l.ev->pinger_ping(ga);
        l.ev->pinger_ping(gb);
        l.ev->pinger_ping(gb);
    }
    QCOMPARE(mpr_fd_loop_dispatch(l.loop), 9);
    QCOMPARE(calls.log, (std::vector<int>{1, 2, 2, 1, 2, 2, 1, 2, 2}));
    l.ev->pinger_free(ga);
    l.ev->pinger_free(gb);
    l.ev->pingee_free(a);
    l.ev->pingee_free(b);
}

namespace {
struct Repinger
{
    const mpr_event_loop *ev;
    mpr_pinger *pinger = nullptr;
    int calls = 0;
    static void onPing(void *arg)
    {
        auto self = static_cast<Repinger *>(arg);
        if (self->calls++ < 3)
            self->ev->pinger_ping(self->pinger);
    }
};
} // namespace

void tst_FdLoop::pingsDuringDispatchWaitForNextCall()
{
    Loop l;
    Repinger r{l.ev};
    mpr_pingee *p = l.pingee(Repinger::onPing, &r);
    r.pinger = l.pinger(p);
    l.ev->pinger_ping(r.pinger);
    for (int round = 1; round <= 4; round++) {
        QVERIFY(readable(l.loop));
        QCOMPARE(mpr_fd_loop_dispatch(l.loop), 1); // never loops on its own pings
        QCOMPARE(r.calls, round);
    }
    QVERIFY(!readable(l.loop));
    l.ev->pinger_free(r.pinger);
    l.ev->pingee_free(p);
}

void tst_FdLoop::disconnectedPingeeRunsNothing()
{
    Loop l;
    Calls calls;
    mpr_pingee *p = l.pingee(Calls::tagA, &calls);
    mpr_pinger *g = l.pinger(p);
    l.ev->pinger_ping(g); // queued before the disconnect
    l.ev->pingee_disconnect(p);
    l.ev->pinger_ping(g); // after it
    QCOMPARE(mpr_fd_loop_dispatch(l.loop), 0);
    QVERIFY(calls.log.empty());
    l.ev->pingee_connect(p); // the callback is gone for good
    l.ev->pinger_ping(g);
    QCOMPARE(mpr_fd_loop_dispatch(l.loop), 0);
    QVERIFY(calls.log.empty());
    l.ev->pinger_free(g);
    l.ev->pingee_free(p);
}

void tst_FdLoop::disconnectedPingerDoesNothing()
{
    Loop l;
    Calls calls;
    mpr_pingee *p = l.pingee(Calls::tagA, &calls);
    mpr_pinger *g = l.pinger(p);
    l.ev->pinger_disconnect(g);
    l.ev->pinger_ping(g);
    QVERIFY(!readable(l.loop));
    l.ev->pinger_free(g);
    l.ev->pingee_free(p);
}

void tst_FdLoop::pingerOutlivesPingeeAndLoop()
{
    // Pending pings and pingers keep what they need alive (ASan checks).
    Calls calls;
    mpr_pinger *g;
    {
        Loop l;
        mpr_pingee *p = l.pingee(Calls::tagA, &calls);
        g = l.pinger(p);
        l.ev->pinger_ping(g);
        l.ev->pingee_free(p); // pending ping + pinger still refer to it
        QCOMPARE(mpr_fd_loop_dispatch(l.loop), 0);
    } // loop freed
    QVERIFY(calls.log.empty());
    // The pinger may still be freed: its shared state lives on.
    // The loop's struct went with it; every fd loop has the same functions.
    std::thread([g] {
        Loop other;
        other.ev->pinger_ping(g);
        other.ev->pinger_free(g);
    }).join();
}

namespace {
struct Nested
{
    mpr_fd_loop *loop;
    int rc = 1;
    static void onPing(void *arg)
    {
        auto self = static_cast<Nested *>(arg);
        self->rc = mpr_fd_loop_dispatch(self->loop);
    }
};
} // namespace

void tst_FdLoop::dispatchIsNotReentrant()
{
    Loop l;
    Nested n{l.loop};
    mpr_pingee *p = l.pingee(Nested::onPing, &n);
    mpr_pinger *g = l.pinger(p);
    l.ev->pinger_ping(g);
    QCOMPARE(mpr_fd_loop_dispatch(l.loop), 1);
    QCOMPARE(n.rc, int(MPR_ESTATE));
    l.ev->pinger_free(g);
    l.ev->pingee_free(p);
}

void tst_FdLoop::badArguments()
{
    QCOMPARE(mpr_fd_loop_new(nullptr), int(MPR_EINVAL));
    QCOMPARE(mpr_fd_loop_dispatch(nullptr), int(MPR_EINVAL));
    QCOMPARE(mpr_fd_loop_fd(nullptr), -1);
    QCOMPARE(mpr_fd_loop_handle(nullptr), nullptr);
    mpr_fd_loop_free(nullptr);
    Loop l;
    QCOMPARE(mpr_fd_loop_handle(l.loop), nullptr); // a descriptor here, no handle
    mpr_pingee *p = nullptr;
    QCOMPARE(l.ev->pingee_new(l.ev, nullptr, nullptr, &p), int(MPR_EINVAL));
    mpr_router *router = nullptr;
    QCOMPARE(mpr_router_new(&router, nullptr), int(MPR_EINVAL));
    mpr_event_loop partial = *l.ev;
    partial.pinger_ping = nullptr;
    QCOMPARE(mpr_router_new(&router, &partial), int(MPR_EINVAL));
    QVERIFY(!router);
}

QTEST_GUILESS_MAIN(tst_FdLoop)
#include "tst_fdloop.moc"
