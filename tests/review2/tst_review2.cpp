// tst_review2 - review 2 (independent reviewer): promises of the README and
// the public headers that the current code breaks. Each case quotes the
// promise it checks. The worker side runs in this same program re-executed
// with --worker MODE (the sender string on standard input), started with
// mprtest::Proc (no bare fork of this multi-threaded process).
#include <QtTest>
#include <QCoreApplication>

#include <mprouter/mprouter.h>

#include "netns.h"
#include "procs.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static double nowS()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

// ---------------------------------------------------------------- worker side

static void wreport(mpr_sender *s, const QByteArray &text)
{
    mpr_sender_send(s, text.constData(), size_t(text.size()));
}

// Busy worker: spins on mpr_sender_cancelled (never recv) for up to 8 s,
// then reports "cancel=N ms=T".
static int workerBusyCancel(mpr_sender *s)
{
    wreport(s, "started");
    double a = nowS();
    uint64_t c = 0;
    while (nowS() - a < 8 && (c = mpr_sender_cancelled(s)) != 42) {
    }
    wreport(s, "cancel=" + QByteArray::number(qulonglong(c)) + " ms=" + QByteArray::number(int((nowS() - a) * 1e3)));
    return mpr_sender_stop(s) == 0 ? 0 : 1;
}

// Waits (busy, up to 12 s) until mpr_sender_cancelled gives 200, then
// reports "cancel=N".
static int workerCancelWait(mpr_sender *s)
{
    wreport(s, "started");
    double a = nowS();
    uint64_t c = 0;
    while (nowS() - a < 12 && (c = mpr_sender_cancelled(s)) != 200)
        usleep(1000);
    wreport(s, "cancel=" + QByteArray::number(qulonglong(c)));
    return mpr_sender_stop(s) == 0 ? 0 : 1;
}

static int workerMain(const char *mode)
{
    char text[4096];
    if (!fgets(text, sizeof text, stdin))
        return 2;
    text[strcspn(text, "\n")] = 0;
    mpr_sender *s = nullptr;
    if (mpr_sender_from_string(&s, text) != 0)
        return 3;
    if (mpr_sender_start(s) != 0)
        return 4;
    int rc = 5;
    if (!strcmp(mode, "busycancel"))
        rc = workerBusyCancel(s);
    else if (!strcmp(mode, "cancelwait"))
        rc = workerCancelWait(s);
    mpr_sender_free(s);
    return rc;
}


// "--app-fork": a small application in a process of its own (so that the
// test process itself never forks): a router, a forked worker (as in the
// README's tour) that reports the control messages it got within 2 s, and
// a careless child forked from the application after the worker connected
// that calls mpr_receiver_send and mpr_receiver_cancel on its inherited copy.
// Prints "child send=RC cancel=RC" and "worker: ..." on standard output.
static int appForkMain()
{
    mpr_fd_loop *loop;
    mpr_router *router;
    if (mpr_fd_loop_new(&loop) || mpr_router_new(&router, mpr_fd_loop_event_loop(loop)) ||
        mpr_router_start(router))
        return 2;
    mpr_sender *s;
    mpr_receiver *r;
    mpr_router_pipe(router, &s, &r);
    static QList<QByteArray> got;
    mpr_receiver_set_callback(
        r, [](void *, const void *d, size_t n) { got.append(QByteArray(static_cast<const char *>(d), int(n))); },
        nullptr);
    pid_t w = fork();
    if (w == 0) {
        if (mpr_sender_start(s))
            _exit(3);
        wreport(s, "started");
        QByteArray seen;
        char b[64];
        size_t len;
        double a = nowS();
        while (nowS() - a < 2)
            if (mpr_sender_recv(s, b, sizeof b, &len, 0.1) == 0)
                seen += QByteArray(b, int(len)) + "|";
        wreport(s, "got " + seen + " cancelled=" + QByteArray::number(qulonglong(mpr_sender_cancelled(s))));
        mpr_sender_stop(s);
        _exit(0);
    }
    mpr_sender_free(s);
    auto pump = [&](double secs, int n) {
        double end = nowS() + secs;
        while (nowS() < end && got.size() < n) {
            pollfd p = {mpr_fd_loop_fd(loop), POLLIN, 0};
            poll(&p, 1, 5);
            mpr_fd_loop_dispatch(loop);
        }
    };
    pump(10, 1);
    int fds[2];
    if (pipe(fds))
        return 4;
    pid_t c = fork();
    if (c == 0) {
        int rc1 = mpr_receiver_send(r, "from-child", 10);
        int rc2 = mpr_receiver_cancel(r, 777);
        char out[64];
        int n = snprintf(out, sizeof out, "child send=%d cancel=%d\n", rc1, rc2);
        if (write(fds[1], out, size_t(n)) < 0)
            _exit(1);
        _exit(0);
    }
    waitpid(c, nullptr, 0);
    char out[64] = "";
    ssize_t n = read(fds[0], out, sizeof out - 1);
    if (n > 0)
        out[n] = 0;
    printf("%s", out);
    pump(10, 2);
    printf("worker: %s\n", got.size() > 1 ? got.at(1).constData() : "(no report)");
    fflush(stdout);
    waitpid(w, nullptr, 0);
    mpr_router_free(router);
    mpr_fd_loop_free(loop);
    return 0;
}

// ---------------------------------------------------------------- router side

struct Harness {
    mpr_fd_loop *loop = nullptr;
    mpr_router *router = nullptr;
    QList<QByteArray> got;
    bool lost = false;
    ~Harness()
    {
        mpr_router_free(router);
        mpr_fd_loop_free(loop);
    }
    bool start(bool remote, double window = 10.0, const QByteArray &bind = "tcp://127.0.0.1:0")
    {
        if (mpr_fd_loop_new(&loop) || mpr_router_new(&router, mpr_fd_loop_event_loop(loop)))
            return false;
        if (remote) {
            if (mpr_router_set_remote(router, bind.constData(), nullptr))
                return false;
            mpr_router_set_remote_window(router, window);
        }
        return mpr_router_start(router) == 0;
    }
    static void onMsg(void *arg, const void *data, size_t size)
    {
        static_cast<Harness *>(arg)->got.append(QByteArray(static_cast<const char *>(data), int(size)));
    }
    static void onLost(void *arg) { static_cast<Harness *>(arg)->lost = true; }
    mpr_receiver *pipe(QByteArray *senderText)
    {
        mpr_sender *s;
        mpr_receiver *r;
        if (mpr_router_pipe(router, &s, &r))
            return nullptr;
        char buf[1024];
        mpr_sender_to_string(s, buf, sizeof buf);
        *senderText = buf;
        mpr_sender_free(s);
        mpr_receiver_set_callback(r, onMsg, this);
        mpr_receiver_set_lost_callback(r, onLost, this);
        return r;
    }
    void pump(double secs)
    {
        double end = nowS() + secs;
        while (nowS() < end) {
            pollfd p = {mpr_fd_loop_fd(loop), POLLIN, 0};
            poll(&p, 1, 5);
            mpr_fd_loop_dispatch(loop);
        }
    }
    bool waitFor(int n, double secs)
    {
        double end = nowS() + secs;
        while (got.size() < n && nowS() < end)
            pump(0.01);
        return got.size() >= n;
    }
};

static bool startWorker(mprtest::Proc &p, const char *mode, const QByteArray &senderText,
                        const char *transport)
{
    QList<QPair<QByteArray, QByteArray>> env;
    env.append({"MPR_TRANSPORT", transport ? QByteArray(transport) : QByteArray()});
    if (!p.start(QCoreApplication::applicationFilePath(), {"--worker", mode}, env))
        return false;
    return p.write(senderText + "\n");
}

class TestReview2 : public QObject
{
    Q_OBJECT
private slots:
    void cancelReachesBusyWorkerBehindFullControlQueue_data();
    void cancelReachesBusyWorkerBehindFullControlQueue();
    void forkedChildOfApplicationCannotSilentlyLoseControlMessages();
};

// router.h, THE WAY BACK: "mpr_receiver_cancel: ask the worker to cancel ...
// mpr_sender_cancelled returns it once it has reached the worker ... it is
// not ordered with control messages"; sender.h: "on the socket transport
// (MPR_TRANSPORT=socket) it looks at the connection at most once a
// millisecond ... A request travels on its own: ... it is not ordered with
// control messages". A worker busy with job 1 (testing only
// mpr_sender_cancelled) while the application has queued the next jobs up
// to the bound, then cancels: with MPR_TRANSPORT=socket the cancel waits
// behind the queued control messages and never reaches the worker.
void TestReview2::cancelReachesBusyWorkerBehindFullControlQueue_data()
{
    QTest::addColumn<QByteArray>("transport");
    QTest::newRow("ring") << QByteArray();
    QTest::newRow("socket") << QByteArray("socket");
#if !defined(MPR_TEST_NO_REMOTE)
    QTest::newRow("zmq") << QByteArray("zmq");
#endif
}

void TestReview2::cancelReachesBusyWorkerBehindFullControlQueue()
{
    QFETCH(QByteArray, transport);
    Harness h;
    QVERIFY(h.start(transport == "zmq"));
    QByteArray text;
    mpr_receiver *r = h.pipe(&text);
    QVERIFY(r);
    mprtest::Proc w;
    QVERIFY(startWorker(w, "busycancel", text, transport.isEmpty() ? nullptr : transport.constData()));
    QVERIFY2(h.waitFor(1, 15), "worker did not start");
    // queue control messages ("the next jobs") until the pipe's bound says EAGAIN
    static char job[65536];
    size_t queued = 0;
    double a = nowS();
    while (nowS() - a < 1.5) {
        int rc = mpr_receiver_send(r, job, sizeof job);
        if (rc == 0)
            queued += sizeof job;
        else {
            QCOMPARE(rc, int(MPR_EAGAIN));
            h.pump(0.01);
        }
    }
    QVERIFY(queued >= MPR_CONTROL_QUEUE_SIZE);
    QCOMPARE(mpr_receiver_cancel(r, 42), 0);
    QVERIFY2(h.waitFor(2, 15), "no report from the worker");
    QVERIFY2(h.got.at(1).startsWith("cancel=42 "),
             ("the busy worker never saw the cancel: " + h.got.at(1)).constData());
}


// README, Security and reliability: "Misuse is an error, not undefined
// behaviour. ... A forked child's copy of a router is freed without touching
// the parent's sockets or threads. Every call returns 0 or a documented
// code"; README: "No SIGPIPE, no hang, no hidden loss"; router.h: "the
// router's secret lives in memory that a fork()ed child reads as zeros".
// A child forked from the application calls mpr_receiver_send and
// mpr_receiver_cancel on its inherited copy of a receiver: both return 0
// (success) although nothing reaches any worker - a silent loss instead of
// an error (MPR_ESTATE or the like, as a forked sender gets MPR_EOWNER).
void TestReview2::forkedChildOfApplicationCannotSilentlyLoseControlMessages()
{
    mprtest::Proc app;
    QVERIFY(app.start(QCoreApplication::applicationFilePath(), {"--app-fork"}));
    QByteArray child = app.readLine(20000);
    QByteArray worker = app.readLine(20000);
    QVERIFY2(child.startsWith("child send="), child.constData());
    QVERIFY2(worker.startsWith("worker: got"), worker.constData());
    const bool sendOk = child.contains("send=0 ");
    const bool cancelOk = child.endsWith("cancel=0");
    const bool delivered = worker.contains("from-child");
    const bool cancelled = worker.contains("cancelled=777");
    QVERIFY2(!sendOk || delivered,
             ("mpr_receiver_send in a forked child returned 0 but nothing arrived: " + child + " / " + worker).constData());
    QVERIFY2(!cancelOk || cancelled,
             ("mpr_receiver_cancel in a forked child returned 0 but nothing arrived: " + child + " / " + worker).constData());
}


int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "--app-fork"))
        return appForkMain();
    if (argc >= 3 && !strcmp(argv[1], "--worker"))
        return workerMain(argv[2]);
    QCoreApplication app(argc, argv);
    TestReview2 t;
    return QTest::qExec(&t, argc, argv);
}

#include "tst_review2.moc"
