// tst_review - tests for promises that an independent review found broken.
//
// Each case quotes the promise it checks (README.md or a public header),
// failed on the code the review was written against (each comment gives
// the numbers found) and passes once the promise holds.
#include <QtTest>

#include <mprouter/mprouter.h>

#include "netrelay.h"

#include <array>
#include <atomic>
#include <vector>
#include <cmath>
#include <csignal>
#include <cstring>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

// A router on the fd loop, pumped by hand (no Qt event loop needed).
struct Rig {
    mpr_fd_loop *loop = nullptr;
    mpr_router *router = nullptr;
    Rig()
    {
        if (mpr_fd_loop_new(&loop) == 0)
            mpr_router_new(&router, mpr_fd_loop_event_loop(loop));
    }
    ~Rig()
    {
        mpr_router_free(router);
        mpr_fd_loop_free(loop);
    }
    // Dispatch for up to secs, or until done() is true.
    template <class F>
    void pump(double secs, F done)
    {
        double end = review_now() + secs;
        while (review_now() < end && !done()) {
            struct pollfd p = {mpr_fd_loop_fd(loop), POLLIN, 0};
            if (poll(&p, 1, 20) > 0)
                mpr_fd_loop_dispatch(loop);
        }
    }
    void pump(double secs)
    {
        pump(secs, [] { return false; });
    }
};

template <class T>
T *sharedPage()
{
    void *p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return nullptr;
    return new (p) T();
}

template <class T>
void freeSharedPage(T *p)
{
    if (p)
        munmap(p, sizeof(T));
}

// In-order counting receiver: payloads start with a 64-bit sequence number.
struct Counter {
    long got = 0;
    long outOfOrder = 0;
    bool lost = false;
    static void onMessage(void *arg, const void *data, size_t size)
    {
        auto *c = static_cast<Counter *>(arg);
        long seq = -1;
        if (size >= sizeof seq)
            memcpy(&seq, data, sizeof seq);
        if (seq != c->got)
            c->outOfOrder++;
        c->got++;
    }
    static void onLost(void *arg) { static_cast<Counter *>(arg)->lost = true; }
};

void quietLog(void *, int, const char *) {}

} // namespace

class Review : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase();
    void cleanupTestCase();

    void closePipeOfNullIsNoSuchPipe();
    void readmePlatformsLinkHasItsSection();
};

void Review::initTestCase()
{
    signal(SIGPIPE, SIG_IGN); // the relay's own writes; mprouter never raises it
    mpr_set_log_handler(quietLog, nullptr);
}

void Review::cleanupTestCase()
{
    mpr_set_log_handler(nullptr, nullptr);
}

// router.h, mpr_router_close_pipe: "MPR_ENOENT if the receiver is not an
// open pipe of this router (nothing changes). ... any value that was never
// a handle gives MPR_ENOENT". NULL was never a handle; the call returns
// MPR_EINVAL, which close_pipe does not list. (Low severity.)
void Review::closePipeOfNullIsNoSuchPipe()
{
    Rig rig;
    QVERIFY(rig.router);
    QCOMPARE(mpr_router_start(rig.router), 0);
    QCOMPARE(mpr_router_close_pipe(rig.router, nullptr), int(MPR_ENOENT));
}

// README.md, first section: "See [Platforms](#platforms) for what is built
// and tested where." There is no "Platforms" section to link to.
void Review::readmePlatformsLinkHasItsSection()
{
    QFile f(QStringLiteral(REVIEW_SOURCE_ROOT "/README.md"));
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(f.readAll());
    QVERIFY(text.contains(QStringLiteral("](#platforms)")));
    bool found = false;
    for (const QString &line : text.split(QLatin1Char('\n')))
        if (line.startsWith(QLatin1Char('#')) && line.contains(QStringLiteral("Platforms")))
            found = true;
    QVERIFY2(found, "README.md links to #platforms but has no Platforms heading");
}

QTEST_GUILESS_MAIN(Review)
#include "tst_review.moc"
