/*
 * tst_qtpingee - the pingee and pinger of the Qt event loop.
 *
 * Pings are made from std::threads (plain threads that Qt knows nothing
 * about, like the router's monitor thread); on_ping must run in the Qt
 * event loop of the thread that made the pingee, once per ping.
 */
#include <mprouter/qt.h>

#include <QtCore/QAtomicInt>
#include <QtCore/QCoreApplication>
#include <QtCore/QEventLoop>
#include <QtCore/QTimer>
#include <QtCore/QPointer>
#include <QtCore/QSemaphore>
#include <QtCore/QThread>
#include <QtTest/QtTest>

#include <thread>
#include <vector>

#include "qteventloop_p.h"

namespace {

// What on_ping sees: how often it ran and whether always on one thread.
struct Counter
{
    int calls = 0;
    QThread *expectedThread = nullptr;
    bool wrongThread = false;

    static void onPing(void *arg)
    {
        Counter *c = static_cast<Counter *>(arg);
        ++c->calls;
        if (c->expectedThread && QThread::currentThread() != c->expectedThread)
            c->wrongThread = true;
    }
};

// Records where and how often an object was destroyed; safe to write from
// any thread.
struct DestroyWatch
{
    QAtomicInt count;
    QAtomicPointer<QThread> thread;

    void watch(QObject *object)
    {
        // No context object: a direct connection, run by the deleting thread.
        QObject::connect(object, &QObject::destroyed, [this] {
            thread.storeRelease(QThread::currentThread());
            count.ref();
        });
    }
};

// Run everything already posted, including deferred deletes, and give a
// real (nested) event loop one turn. Never sleeps.
void drainEvents()
{
    QCoreApplication::sendPostedEvents();
    QEventLoop eventLoop;
    QTimer::singleShot(0, &eventLoop, &QEventLoop::quit);
    eventLoop.exec();
    QCoreApplication::sendPostedEvents();
    QCoreApplication::sendPostedEvents(nullptr, QEvent::DeferredDelete);
}

} // namespace

class tst_QtPingee : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void eventLoopStruct();
    void onePing();
    void threePlusFourPingsFromOneThread();
    void pingsFromBackgroundThreads_data();
    void pingsFromBackgroundThreads();
    void twoPingeesKeepCountsApart();
    void pingAfterDisconnectRunsNothing_data();
    void pingAfterDisconnectRunsNothing();
    void disconnectedPingerKeepsNoReference_data();
    void disconnectedPingerKeepsNoReference();
    void disconnectedPingeeKeepsNoCallback();
    void pingsFromExitedThreadsArrive();
    void destroyedOnCreatingThread_data();
    void destroyedOnCreatingThread();
    void destroyedOnItsOwnQThread();
    void freeFromInsideOnPing();

private:
    const mpr_event_loop *loop = nullptr;
};

void tst_QtPingee::initTestCase()
{
    loop = mpr_qt_event_loop();
    QVERIFY(loop);
}

void tst_QtPingee::eventLoopStruct()
{
    QCOMPARE(mpr_qt_event_loop(), loop); // one static struct
    QCOMPARE(loop->size, sizeof(mpr_event_loop));
    QVERIFY(loop->pingee_new && loop->pingee_connect && loop->pingee_disconnect
            && loop->pingee_free && loop->pinger_new && loop->pinger_connect
            && loop->pinger_ping && loop->pinger_disconnect && loop->pinger_free);

    Counter counter;
    mpr_pingee *pingee = nullptr;
    QCOMPARE(loop->pingee_new(loop, nullptr, &counter, &pingee), int(MPR_EINVAL));
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &counter, nullptr), int(MPR_EINVAL));
    mpr_pinger *pinger = nullptr;
    QCOMPARE(loop->pinger_new(nullptr, &pinger), int(MPR_EINVAL));
}

void tst_QtPingee::onePing()
{
    Counter counter;
    counter.expectedThread = QThread::currentThread();
    mpr_pingee *pingee = nullptr;
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &counter, &pingee), 0);
    QCOMPARE(mpr::detail::qtPingeeObject(pingee)->thread(), QThread::currentThread());
    loop->pingee_connect(pingee);

    mpr_pinger *pinger = nullptr;
    QCOMPARE(loop->pinger_new(pingee, &pinger), 0);
    loop->pinger_connect(pinger);
    loop->pinger_ping(pinger);
    QCOMPARE(counter.calls, 0); // only the event loop runs on_ping
    QTRY_COMPARE(counter.calls, 1);
    drainEvents();
    QCOMPARE(counter.calls, 1);
    QVERIFY(!counter.wrongThread);

    loop->pinger_free(pinger);
    loop->pingee_free(pingee);
}

void tst_QtPingee::threePlusFourPingsFromOneThread()
{
    Counter counter;
    counter.expectedThread = QThread::currentThread();
    mpr_pingee *pingee = nullptr;
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &counter, &pingee), 0);
    loop->pingee_connect(pingee);

    QSemaphore secondBatch;
    std::thread thread([&] {
        mpr_pinger *pinger = nullptr;
        if (loop->pinger_new(pingee, &pinger) != 0)
            return;
        loop->pinger_connect(pinger);
        for (int i = 0; i < 3; ++i)
            loop->pinger_ping(pinger);
        secondBatch.acquire();
        for (int i = 0; i < 4; ++i)
            loop->pinger_ping(pinger);
        loop->pinger_free(pinger);
    });

    QTRY_COMPARE(counter.calls, 3);
    secondBatch.release();
    QTRY_COMPARE(counter.calls, 7);
    thread.join();
    drainEvents();
    QCOMPARE(counter.calls, 7);
    QVERIFY(!counter.wrongThread);
    loop->pingee_free(pingee);
}

void tst_QtPingee::pingsFromBackgroundThreads_data()
{
    QTest::addColumn<int>("threads");
    QTest::addColumn<int>("pingsPerThread");

    QTest::newRow("1 thread x 1 ping") << 1 << 1;
    QTest::newRow("5 threads x 3 pings") << 5 << 3;
    QTest::newRow("8 threads x 500 pings") << 8 << 500;
}

// Every thread makes its own pinger while the event loop runs.
void tst_QtPingee::pingsFromBackgroundThreads()
{
    QFETCH(int, threads);
    QFETCH(int, pingsPerThread);

    Counter counter;
    counter.expectedThread = QThread::currentThread();
    mpr_pingee *pingee = nullptr;
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &counter, &pingee), 0);
    loop->pingee_connect(pingee);

    QAtomicInt failures;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&] {
            mpr_pinger *pinger = nullptr;
            if (loop->pinger_new(pingee, &pinger) != 0) {
                failures.ref();
                return;
            }
            loop->pinger_connect(pinger);
            for (int i = 0; i < pingsPerThread; ++i)
                loop->pinger_ping(pinger);
            loop->pinger_disconnect(pinger);
            loop->pinger_free(pinger);
        });
    }

    QTRY_COMPARE(counter.calls, threads * pingsPerThread);
    for (std::thread &thread : pool)
        thread.join();
    QCOMPARE(failures.loadAcquire(), 0);
    drainEvents();
    QCOMPARE(counter.calls, threads * pingsPerThread); // exactly, not more
    QVERIFY(!counter.wrongThread);
    loop->pingee_free(pingee);
}

void tst_QtPingee::twoPingeesKeepCountsApart()
{
    Counter a, b;
    mpr_pingee *pingeeA = nullptr, *pingeeB = nullptr;
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &a, &pingeeA), 0);
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &b, &pingeeB), 0);
    loop->pingee_connect(pingeeA);
    loop->pingee_connect(pingeeB);

    std::thread thread([&] {
        mpr_pinger *pa = nullptr, *pb = nullptr;
        if (loop->pinger_new(pingeeA, &pa) != 0 || loop->pinger_new(pingeeB, &pb) != 0)
            return;
        loop->pinger_connect(pa);
        loop->pinger_connect(pb);
        for (int i = 0; i < 2; ++i)
            loop->pinger_ping(pa);
        for (int i = 0; i < 5; ++i)
            loop->pinger_ping(pb);
        loop->pinger_free(pa);
        loop->pinger_free(pb);
    });
    thread.join();

    QTRY_COMPARE(b.calls, 5);
    QTRY_COMPARE(a.calls, 2);
    drainEvents();
    QCOMPARE(a.calls, 2);
    QCOMPARE(b.calls, 5);
    loop->pingee_free(pingeeA);
    loop->pingee_free(pingeeB);
}

void tst_QtPingee::pingAfterDisconnectRunsNothing_data()
{
    QTest::addColumn<bool>("fromBackground");
    QTest::addColumn<bool>("queuedBeforeDisconnect");

    QTest::newRow("main thread, sent after disconnect") << false << false;
    QTest::newRow("background, sent after disconnect") << true << false;
    QTest::newRow("main thread, queued before disconnect") << false << true;
    QTest::newRow("background, queued before disconnect") << true << true;
}

void tst_QtPingee::pingAfterDisconnectRunsNothing()
{
    QFETCH(bool, fromBackground);
    QFETCH(bool, queuedBeforeDisconnect);

    Counter counter;
    mpr_pingee *pingee = nullptr;
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &counter, &pingee), 0);
    loop->pingee_connect(pingee);
    mpr_pinger *pinger = nullptr;
    QCOMPARE(loop->pinger_new(pingee, &pinger), 0);
    loop->pinger_connect(pinger);

    // The pingee works...
    loop->pinger_ping(pinger);
    QTRY_COMPARE(counter.calls, 1);

    auto pingThrice = [&] {
        for (int i = 0; i < 3; ++i)
            loop->pinger_ping(pinger);
    };
    auto ping = [&] {
        if (fromBackground)
            std::thread(pingThrice).join();
        else
            pingThrice();
    };

    // ...until it is disconnected.
    if (queuedBeforeDisconnect)
        ping();
    loop->pingee_disconnect(pingee);
    if (!queuedBeforeDisconnect)
        ping();

    drainEvents();
    QCOMPARE(counter.calls, 1);

    loop->pinger_free(pinger);
    loop->pingee_free(pingee);
}

void tst_QtPingee::disconnectedPingerKeepsNoReference_data()
{
    QTest::addColumn<bool>("disconnectPinger");

    QTest::newRow("disconnected pinger") << true;
    QTest::newRow("connected pinger (control)") << false;
}

void tst_QtPingee::disconnectedPingerKeepsNoReference()
{
    QFETCH(bool, disconnectPinger);

    Counter counter;
    mpr_pingee *pingee = nullptr;
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &counter, &pingee), 0);
    DestroyWatch watch;
    watch.watch(mpr::detail::qtPingeeObject(pingee));
    loop->pingee_connect(pingee);

    mpr_pinger *pinger = nullptr;
    QCOMPARE(loop->pinger_new(pingee, &pinger), 0);
    loop->pinger_connect(pinger);
    loop->pinger_ping(pinger);
    QTRY_COMPARE(counter.calls, 1);

    if (disconnectPinger)
        loop->pinger_disconnect(pinger);
    loop->pingee_free(pingee);

    if (disconnectPinger) {
        // Nothing but the creator held the pingee: it goes now.
        QTRY_COMPARE(watch.count.loadAcquire(), 1);
        loop->pinger_ping(pinger); // a disconnected pinger does nothing
    } else {
        // The pinger's reference keeps it alive...
        drainEvents();
        QCOMPARE(watch.count.loadAcquire(), 0);
        loop->pinger_ping(pinger); // ...and usable, though nothing runs
        drainEvents();
        QCOMPARE(counter.calls, 1);
        QCOMPARE(watch.count.loadAcquire(), 0);
    }
    loop->pinger_free(pinger);
    QTRY_COMPARE(watch.count.loadAcquire(), 1);
    QCOMPARE(watch.thread.loadAcquire(), QThread::currentThread());
    QCOMPARE(counter.calls, 1);
}

void tst_QtPingee::disconnectedPingeeKeepsNoCallback()
{
    Counter counter;
    mpr_pingee *pingee = nullptr;
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &counter, &pingee), 0);
    QVERIFY(mpr::detail::qtPingeeHoldsCallback(pingee));
    loop->pingee_connect(pingee);
    QVERIFY(mpr::detail::qtPingeeHoldsCallback(pingee));

    mpr_pinger *pinger = nullptr;
    QCOMPARE(loop->pinger_new(pingee, &pinger), 0);
    loop->pinger_connect(pinger);

    loop->pingee_disconnect(pingee);
    QVERIFY(!mpr::detail::qtPingeeHoldsCallback(pingee));

    // Connecting again cannot bring the callback back.
    loop->pingee_connect(pingee);
    loop->pinger_ping(pinger);
    drainEvents();
    QCOMPARE(counter.calls, 0);
    QVERIFY(!mpr::detail::qtPingeeHoldsCallback(pingee));

    loop->pinger_free(pinger);
    loop->pingee_free(pingee);
}

void tst_QtPingee::pingsFromExitedThreadsArrive()
{
    Counter counter;
    counter.expectedThread = QThread::currentThread();
    mpr_pingee *pingee = nullptr;
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &counter, &pingee), 0);
    loop->pingee_connect(pingee);

    const int threads = 4, pings = 3;
    for (int t = 0; t < threads; ++t) {
        std::thread([&] {
            mpr_pinger *pinger = nullptr;
            if (loop->pinger_new(pingee, &pinger) != 0)
                return;
            loop->pinger_connect(pinger);
            for (int i = 0; i < pings; ++i)
                loop->pinger_ping(pinger);
            loop->pinger_free(pinger);
        }).join();
    }
    // Every thread has exited, and the event loop has not run yet.
    QCOMPARE(counter.calls, 0);
    QTRY_COMPARE(counter.calls, threads * pings);
    drainEvents();
    QCOMPARE(counter.calls, threads * pings);
    QVERIFY(!counter.wrongThread);
    loop->pingee_free(pingee);
}

void tst_QtPingee::destroyedOnCreatingThread_data()
{
    QTest::addColumn<int>("backgroundPingers");
    QTest::addColumn<bool>("lastRefOnBackground");

    QTest::newRow("no pingers, pingee_free drops the last reference") << 0 << false;
    QTest::newRow("pinger gone first, pingee_free drops the last reference") << 1 << false;
    QTest::newRow("pinger on background thread drops the last reference") << 1 << true;
    QTest::newRow("4 background pingers drop the last references") << 4 << true;
}

void tst_QtPingee::destroyedOnCreatingThread()
{
    QFETCH(int, backgroundPingers);
    QFETCH(bool, lastRefOnBackground);

    Counter counter;
    mpr_pingee *pingee = nullptr;
    QCOMPARE(loop->pingee_new(loop, Counter::onPing, &counter, &pingee), 0);
    DestroyWatch watch;
    watch.watch(mpr::detail::qtPingeeObject(pingee));
    loop->pingee_connect(pingee);

    // The pingers are made here (they hold their references from now on)
    // and used and freed on background threads.
    std::vector<mpr_pinger *> pingers(size_t(backgroundPingers), nullptr);
    for (mpr_pinger *&pinger : pingers) {
        QCOMPARE(loop->pinger_new(pingee, &pinger), 0);
        loop->pinger_connect(pinger);
    }
    auto runPingers = [&] {
        std::vector<std::thread> pool;
        for (mpr_pinger *pinger : pingers) {
            pool.emplace_back([this, pinger] {
                loop->pinger_ping(pinger);
                loop->pinger_free(pinger);
            });
        }
        for (std::thread &thread : pool)
            thread.join();
    };

    if (lastRefOnBackground) {
        loop->pingee_free(pingee);
        drainEvents();
        QCOMPARE(watch.count.loadAcquire(), 0); // the pingers keep it alive
        runPingers();
    } else {
        runPingers();
        QCOMPARE(watch.count.loadAcquire(), 0); // the creator keeps it alive
        loop->pingee_free(pingee);
    }

    QTRY_COMPARE(watch.count.loadAcquire(), 1);
    QCOMPARE(watch.thread.loadAcquire(), QThread::currentThread());
    drainEvents();
    QCOMPARE(watch.count.loadAcquire(), 1);
}

// A pingee made on a QThread with its own event loop runs on_ping there and
// is deleted there, even when the main thread drops the last reference.
void tst_QtPingee::destroyedOnItsOwnQThread()
{
    QThread worker;
    QObject *context = new QObject; // runs code on the worker thread
    context->moveToThread(&worker);
    connect(&worker, &QThread::finished, context, &QObject::deleteLater);
    worker.start();

    Counter counter;
    counter.expectedThread = &worker;
    mpr_pingee *pingee = nullptr;
    int rc = -1;
    QMetaObject::invokeMethod(context, [&] {
        rc = loop->pingee_new(loop, Counter::onPing, &counter, &pingee);
        if (rc == 0)
            loop->pingee_connect(pingee);
    }, Qt::BlockingQueuedConnection);
    QCOMPARE(rc, 0);
    QCOMPARE(mpr::detail::qtPingeeObject(pingee)->thread(), &worker);
    DestroyWatch watch;
    watch.watch(mpr::detail::qtPingeeObject(pingee));

    mpr_pinger *pinger = nullptr;
    QCOMPARE(loop->pinger_new(pingee, &pinger), 0);
    loop->pinger_connect(pinger);
    QMetaObject::invokeMethod(context, [&] { loop->pingee_free(pingee); },
                              Qt::BlockingQueuedConnection);
    QCOMPARE(watch.count.loadAcquire(), 0);
    loop->pinger_ping(pinger); // runs nothing: the pingee is disconnected
    loop->pinger_free(pinger); // the last reference, on the main thread

    QTRY_COMPARE(watch.count.loadAcquire(), 1);
    QCOMPARE(watch.thread.loadAcquire(), &worker);
    QCOMPARE(counter.calls, 0);

    worker.quit();
    QVERIFY(worker.wait(5000));
}

namespace {
struct SelfFreeing
{
    const mpr_event_loop *loop = nullptr;
    mpr_pingee *pingee = nullptr;
    int calls = 0;

    static void onPing(void *arg)
    {
        SelfFreeing *s = static_cast<SelfFreeing *>(arg);
        ++s->calls;
        s->loop->pingee_disconnect(s->pingee);
        s->loop->pingee_free(s->pingee); // the last reference, inside on_ping
    }
};
} // namespace

// on_ping may free its own pingee (mpr_router_stop from a receiver
// callback does): the QObject is deleted after on_ping returns.
void tst_QtPingee::freeFromInsideOnPing()
{
    SelfFreeing self;
    self.loop = loop;
    QCOMPARE(loop->pingee_new(loop, SelfFreeing::onPing, &self, &self.pingee), 0);
    DestroyWatch watch;
    watch.watch(mpr::detail::qtPingeeObject(self.pingee));
    loop->pingee_connect(self.pingee);

    mpr_pinger *pinger = nullptr;
    QCOMPARE(loop->pinger_new(self.pingee, &pinger), 0);
    loop->pinger_connect(pinger);
    loop->pinger_ping(pinger);
    loop->pinger_ping(pinger); // queued behind the first: must run nothing
    loop->pinger_free(pinger);

    QTRY_COMPARE(watch.count.loadAcquire(), 1);
    QCOMPARE(watch.thread.loadAcquire(), QThread::currentThread());
    drainEvents();
    QCOMPARE(self.calls, 1);
}

QTEST_GUILESS_MAIN(tst_QtPingee)
#include "tst_qtpingee.moc"
