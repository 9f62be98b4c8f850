// tst_control - the way back (router.h: mpr_receiver_send,
// mpr_receiver_cancel; sender.h: mpr_sender_recv, mpr_sender_cancelled) on
// every transport: the shared-memory ring, the socket, and tcp with CURVE
// (loopback). Workers are real processes (tests/ctlworker) driven line by
// line; a few cases use a sender in this process for the calls' edges.
//
// Every contract of the headers is checked as stated: order and sizes
// (0 bytes to MPR_CONTROL_MAX_SIZE), what is sent before the worker
// connects, the bound per pipe (MPR_EAGAIN, then everything arrives once
// the worker reads), the newest cancel tag, the errors of every call, the
// end of the way back when the sender or the router ends.
#include <QtTest>

#include <atomic>
#include <cmath>
#include <thread>

#include "procs.h"
#include "testsupport.h"

using namespace mprtest;

namespace {

// The bytes of control message i of size n.
QByteArray pattern(int i, int n)
{
    QByteArray b(n, Qt::Uninitialized);
    for (int j = 0; j < n; j++)
        b[j] = char((i * 31 + j * 7 + (j >> 8)) & 0xff);
    return b;
}

class CtlWorker
{
public:
    bool start(const QByteArray &senderString, const QByteArray &transport, bool connect = true)
    {
        QList<QPair<QByteArray, QByteArray>> env;
        env << qMakePair(QByteArray("MPR_TRANSPORT"),
                         transport.isEmpty() ? QByteArray() : transport);
        if (!proc.start(QStringLiteral(MPR_TEST_CTLWORKER), {}, env))
            return false;
        proc.write(senderString + "\n");
        return !connect || ask("start") == "start 0";
    }
    // One command and its answer, the event loop running meanwhile (the
    // router delivers what the worker sends).
    QByteArray ask(const QByteArray &line, int timeoutMs = 20000)
    {
        proc.write(line + "\n");
        return answer(timeoutMs);
    }
    QByteArray answer(int timeoutMs = 20000)
    {
        QElapsedTimer t;
        t.start();
        while (t.elapsed() < timeoutMs) {
            const QByteArray l = proc.readLine(5);
            if (!l.isNull())
                return l;
            QCoreApplication::processEvents(QEventLoop::AllEvents, 5);
        }
        return QByteArray("(no answer; stderr: ") + proc.errors() + ")";
    }
    Proc proc;
};

} // namespace

class tst_Control : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase_data();
    void init();
    void cleanup();

    void sentBeforeTheWorkerConnects();
    void inOrderEverySize();
    void badCalls();
    void recvEdges();
    void boundedWhenTheWorkerDoesNotRead();
    void cancelWhileComputing();
    void newestCancelWins();
    void endsWithTheSender_data();
    void endsWithTheSender();
    void routerStopEndsRecv();
    void ownerThreadOnly();

private:
    bool makePipe(mpr_receiver **receiver, QByteArray *text);
    QByteArray transport() const;

    std::unique_ptr<LoopDriver> driver;
    mpr_router *router = nullptr;
    Inbox inbox;
};

void tst_Control::initTestCase_data()
{
    QTest::addColumn<QByteArray>("transport");
    QTest::newRow("ring") << QByteArray();
    QTest::newRow("socket") << QByteArray("socket");
#ifndef MPR_TEST_NO_REMOTE
    QTest::newRow("tcp") << QByteArray("zmq");
#endif
}

QByteArray tst_Control::transport() const
{
    QFETCH_GLOBAL(QByteArray, transport);
    return transport;
}

void tst_Control::init()
{
    if (transport().isEmpty())
        qunsetenv("MPR_TRANSPORT");
    else
        qputenv("MPR_TRANSPORT", transport()); // for senders in this process
    driver = makeFdLoopDriver();
    QCOMPARE(mpr_router_new(&router, driver->loop()), 0);
    if (transport() == "zmq") {
        QCOMPARE(mpr_router_set_remote(router, "tcp://127.0.0.1:0", nullptr), 0);
        QCOMPARE(mpr_router_set_remote_window(router, 2.0), 0);
    }
    QCOMPARE(mpr_router_start(router), 0);
    inbox = Inbox();
}

void tst_Control::cleanup()
{
    mpr_router_free(router);
    router = nullptr;
    driver.reset();
    qunsetenv("MPR_TRANSPORT");
}

bool tst_Control::makePipe(mpr_receiver **receiver, QByteArray *text)
{
    mpr_sender *s = nullptr;
    if (mpr_router_pipe(router, &s, receiver) != 0)
        return false;
    inbox.attach(*receiver);
    char buf[512];
    const int n = mpr_sender_to_string(s, buf, sizeof buf);
    mpr_sender_free(s);
    if (n <= 0 || n >= int(sizeof buf))
        return false;
    *text = QByteArray(buf, n);
    return true;
}

// What the application sends before its worker has even started waits in
// the router and is delivered, in order, when the worker connects; so
// does a cancel request.
void tst_Control::sentBeforeTheWorkerConnects()
{
    mpr_receiver *r;
    QByteArray text;
    QVERIFY(makePipe(&r, &text));
    for (int i = 0; i < 3; i++) {
        const QByteArray m = pattern(i, 100 + i);
        QCOMPARE(mpr_receiver_send(r, m.constData(), size_t(m.size())), 0);
    }
    QCOMPARE(mpr_receiver_cancel(r, 7), 0);
    CtlWorker w;
    QVERIFY(w.start(text, transport()));
    QCOMPARE(w.ask("echo 3 10"), QByteArray("echo 0 3"));
    QTRY_COMPARE_WITH_TIMEOUT(inbox.messages.size(), 3, 10000);
    for (int i = 0; i < 3; i++)
        QCOMPARE(inbox.messages[i], pattern(i, 100 + i));
    QCOMPARE(w.ask("waitcancel 7 10000").left(13), QByteArray("waitcancel ok"));
    QCOMPARE(w.ask("stop"), QByteArray("stop 0"));
}

// Every size from 0 to MPR_CONTROL_MAX_SIZE, in order and whole (over tcp
// the large ones travel in many pieces).
void tst_Control::inOrderEverySize()
{
    mpr_receiver *r;
    QByteArray text;
    QVERIFY(makePipe(&r, &text));
    CtlWorker w;
    QVERIFY(w.start(text, transport()));
    const QList<int> sizes = {0,      1,      7,      8,      4096, 65535, 65536, 65537,
                              200000, 999999, int(MPR_CONTROL_MAX_SIZE), 0, 3};
    for (int i = 0; i < sizes.size(); i++) {
        const QByteArray m = pattern(i, sizes[i]);
        QCOMPARE(mpr_receiver_send(r, m.constData(), size_t(m.size())), 0);
    }
    QCOMPARE(w.ask("echo " + QByteArray::number(sizes.size()) + " 20"),
             "echo 0 " + QByteArray::number(sizes.size()));
    QTRY_COMPARE_WITH_TIMEOUT(inbox.messages.size(), sizes.size(), 20000);
    for (int i = 0; i < sizes.size(); i++)
        QVERIFY2(inbox.messages[i] == pattern(i, sizes[i]), qPrintable(QString::number(i)));
    QCOMPARE(w.ask("stop"), QByteArray("stop 0"));
}

// Clear errors for bad input, and nothing queued by them.
void tst_Control::badCalls()
{
    mpr_receiver *r;
    QByteArray text;
    QVERIFY(makePipe(&r, &text));
    QCOMPARE(mpr_receiver_send(r, nullptr, 1), int(MPR_EINVAL));
    QCOMPARE(mpr_receiver_send(r, nullptr, 0), 0); // an empty message
    QByteArray big(int(MPR_CONTROL_MAX_SIZE) + 1, 'x');
    QCOMPARE(mpr_receiver_send(r, big.constData(), size_t(big.size())), int(MPR_EMSGSIZE));
    QCOMPARE(mpr_receiver_cancel(r, 0), int(MPR_EINVAL));
    QCOMPARE(mpr_receiver_send(nullptr, "x", 1), int(MPR_ENOENT));
    QCOMPARE(mpr_receiver_cancel(nullptr, 1), int(MPR_ENOENT));
    // A closed pipe's handle names nothing, also not a pipe made later.
    mpr_receiver *closed;
    QByteArray text2;
    QVERIFY(makePipe(&closed, &text2));
    QCOMPARE(mpr_router_close_pipe(router, closed), 0);
    QCOMPARE(mpr_receiver_send(closed, "x", 1), int(MPR_ENOENT));
    QCOMPARE(mpr_receiver_cancel(closed, 1), int(MPR_ENOENT));
    // The worker gets exactly the one empty message.
    CtlWorker w;
    QVERIFY(w.start(text, transport()));
    QCOMPARE(w.ask("recv 10 10"), QByteArray("recv 0 0"));
    QCOMPARE(w.ask("recv 10 0"), QByteArray("recv " + QByteArray::number(MPR_ETIMEDOUT) + " 0"));
    QCOMPARE(w.ask("stop"), QByteArray("stop 0"));
    // After stop, the pipe refuses (once the router has seen the stop).
    QTRY_COMPARE_WITH_TIMEOUT(mpr_receiver_send(r, "x", 1), int(MPR_EPIPE), 10000);
    QCOMPARE(mpr_receiver_cancel(r, 5), int(MPR_EPIPE));
    // And the router stopped: its receivers are gone.
    QCOMPARE(mpr_router_stop(router), 0);
    QCOMPARE(mpr_receiver_send(r, "x", 1), int(MPR_ENOENT));
}

// A sender in this process: the edges of recv and cancelled.
void tst_Control::recvEdges()
{
    mpr_sender *s;
    mpr_receiver *r;
    QCOMPARE(mpr_router_pipe(router, &s, &r), 0);
    size_t len = 99;
    char buf[16];
    QCOMPARE(mpr_sender_recv(s, buf, sizeof buf, &len, 0), int(MPR_ESTATE)); // not started
    QCOMPARE(mpr_sender_cancelled(s), quint64(0));
    QCOMPARE(mpr_sender_start(s), 0);
    QCOMPARE(mpr_sender_recv(s, buf, sizeof buf, nullptr, 0), int(MPR_EINVAL));
    QCOMPARE(mpr_sender_recv(s, nullptr, 1, &len, 0), int(MPR_EINVAL));
    QCOMPARE(mpr_sender_recv(s, buf, sizeof buf, &len, std::nan("")), int(MPR_EINVAL));
    QCOMPARE(mpr_sender_recv(s, buf, sizeof buf, &len, 0), int(MPR_ETIMEDOUT));
    QElapsedTimer t;
    t.start();
    QCOMPARE(mpr_sender_recv(s, buf, sizeof buf, &len, 0.05), int(MPR_ETIMEDOUT));
    QVERIFY(t.elapsed() >= 45); // it waited (no upper bound: the machine may be slow)
    // Too small a buffer: the size, and the message stays.
    QCOMPARE(mpr_receiver_send(r, "0123456789abcdefXYZ", 19), 0);
    QCOMPARE(mpr_sender_recv(s, buf, sizeof buf, &len, 10), int(MPR_EMSGSIZE));
    QCOMPARE(len, size_t(19));
    QByteArray whole(19, 0);
    QCOMPARE(mpr_sender_recv(s, whole.data(), 19, &len, 0), 0);
    QCOMPARE(whole, QByteArray("0123456789abcdefXYZ"));
    // NULL buffer with size 0: an empty message fits.
    QCOMPARE(mpr_receiver_send(r, nullptr, 0), 0);
    QCOMPARE(mpr_sender_recv(s, nullptr, 0, &len, 10), 0);
    QCOMPARE(len, size_t(0));
    // A message sent right before a recv with timeout 0 is not promised:
    // with a timeout it is there.
    QCOMPARE(mpr_receiver_send(r, "q", 1), 0);
    QCOMPARE(mpr_sender_recv(s, buf, sizeof buf, &len, 10), 0);
    QCOMPARE(mpr_receiver_cancel(r, 99), 0);
    QTRY_COMPARE_WITH_TIMEOUT(mpr_sender_cancelled(s), quint64(99), 10000);
    QCOMPARE(mpr_sender_stop(s), 0);
    QCOMPARE(mpr_sender_recv(s, buf, sizeof buf, &len, 0), int(MPR_ESTATE));
    QCOMPARE(mpr_sender_cancelled(s), quint64(99)); // the last seen, after stop
    mpr_sender_free(s);
    QCOMPARE(mpr_sender_cancelled(nullptr), quint64(0));
}

// A worker that does not read: the pipe takes MPR_CONTROL_QUEUE_SIZE
// bytes (plus what its connection holds, locally), then MPR_EAGAIN; once
// the worker reads, every message arrives, in order, and sending works
// again.
void tst_Control::boundedWhenTheWorkerDoesNotRead()
{
    mpr_receiver *r;
    QByteArray text;
    QVERIFY(makePipe(&r, &text));
    CtlWorker w;
    QVERIFY(w.start(text, transport()));
    const int size = 64 * 1024;
    int sent = 0, rc = 0;
    const int most = 1024; // 64 MiB: far beyond any bound
    while (sent < most && (rc = mpr_receiver_send(r, pattern(sent, size).constData(), size)) == 0)
        sent++;
    QCOMPARE(rc, int(MPR_EAGAIN));
    const qint64 bytes = qint64(sent) * size;
    QVERIFY2(bytes >= qint64(MPR_CONTROL_QUEUE_SIZE) - size, qPrintable(QString::number(bytes)));
    // Locally, the connection's buffers take some more (a few hundred KiB
    // on Linux); over tcp the bound is exact: what the worker has not taken.
    if (transport() == "zmq")
        QCOMPARE(bytes, qint64(MPR_CONTROL_QUEUE_SIZE));
    else
        QVERIFY2(bytes <= 2 * qint64(MPR_CONTROL_QUEUE_SIZE), qPrintable(QString::number(bytes)));
    QCOMPARE(w.ask("echo " + QByteArray::number(sent) + " 20"), "echo 0 " + QByteArray::number(sent));
    QTRY_COMPARE_WITH_TIMEOUT(inbox.messages.size(), sent, 20000);
    for (int i = 0; i < sent; i++)
        QVERIFY2(inbox.messages[i] == pattern(i, size), qPrintable(QString::number(i)));
    // Room again: the messages the worker took were released.
    QTRY_COMPARE_WITH_TIMEOUT(mpr_receiver_send(r, "more", 4), 0, 10000);
    QCOMPARE(w.ask("recv 100 10"), QByteArray("recv 0 4"));
    QCOMPARE(w.ask("stop"), QByteArray("stop 0"));
}

// The worker tests for cancel in its loop; the request reaches it.
void tst_Control::cancelWhileComputing()
{
    mpr_receiver *r;
    QByteArray text;
    QVERIFY(makePipe(&r, &text));
    CtlWorker w;
    QVERIFY(w.start(text, transport()));
    QCOMPARE(w.ask("cancelled"), QByteArray("cancelled 0"));
    w.proc.write("waitcancel 42 20000\n");
    QCOMPARE(mpr_receiver_cancel(r, 42), 0);
    QCOMPARE(w.answer().left(13), QByteArray("waitcancel ok"));
    QCOMPARE(w.ask("cancelled"), QByteArray("cancelled 42"));
    QCOMPARE(w.ask("stop"), QByteArray("stop 0"));
}

// Only the newest tag is kept: a worker that looks after three requests
// sees the last.
void tst_Control::newestCancelWins()
{
    mpr_receiver *r;
    QByteArray text;
    QVERIFY(makePipe(&r, &text));
    CtlWorker w;
    QVERIFY(w.start(text, transport()));
    QCOMPARE(mpr_receiver_cancel(r, 1), 0);
    QCOMPARE(mpr_receiver_cancel(r, 2), 0);
    QCOMPARE(mpr_receiver_cancel(r, 3), 0);
    QCOMPARE(w.ask("waitcancel 3 20000").left(13), QByteArray("waitcancel ok"));
    // A repeat is harmless; a later one replaces it.
    QCOMPARE(mpr_receiver_cancel(r, 3), 0);
    QCOMPARE(mpr_receiver_cancel(r, 10), 0);
    QCOMPARE(w.ask("waitcancel 10 20000").left(13), QByteArray("waitcancel ok"));
    QCOMPARE(w.ask("stop"), QByteArray("stop 0"));
}

// When the sender ends (stopped, killed), the pipe refuses the way back,
// and what was queued for it is dropped.
void tst_Control::endsWithTheSender_data()
{
    QTest::addColumn<bool>("kill");
    QTest::newRow("stopped") << false;
    QTest::newRow("killed") << true;
}

void tst_Control::endsWithTheSender()
{
    QFETCH(bool, kill);
    mpr_receiver *r;
    QByteArray text;
    QVERIFY(makePipe(&r, &text));
    CtlWorker w;
    QVERIFY(w.start(text, transport()));
    QCOMPARE(mpr_receiver_send(r, "a", 1), 0);
    if (kill)
        w.proc.kill();
    else
        QCOMPARE(w.ask("stop"), QByteArray("stop 0"));
    // Over tcp a killed worker is lost after the window (2 s here).
    QTRY_COMPARE_WITH_TIMEOUT(mpr_receiver_send(r, "x", 1), int(MPR_EPIPE), 20000);
    QCOMPARE(mpr_receiver_cancel(r, 1), int(MPR_EPIPE));
    if (kill)
        QTRY_COMPARE_WITH_TIMEOUT(inbox.lost, 1, 20000);
    else
        QCOMPARE(inbox.lost, 0);
}

// A worker waiting for work learns that its router has gone.
void tst_Control::routerStopEndsRecv()
{
    mpr_receiver *r;
    QByteArray text;
    QVERIFY(makePipe(&r, &text));
    CtlWorker w;
    QVERIFY(w.start(text, transport()));
    QCOMPARE(mpr_receiver_send(r, "job", 3), 0);
    QCOMPARE(w.ask("recv 100 10"), QByteArray("recv 0 3"));
    w.proc.write("recv 100 -1\n"); // no limit
    QCOMPARE(mpr_router_stop(router), 0);
    QCOMPARE(w.answer(), "recv " + QByteArray::number(MPR_EPIPE) + " 0");
    QCOMPARE(w.ask("stop"), "stop " + QByteArray::number(MPR_EPIPE));
}

// The calls belong to the sender's thread: recv from another thread is
// MPR_EOWNER; cancelled there says the last tag the owner saw.
void tst_Control::ownerThreadOnly()
{
    mpr_sender *s;
    mpr_receiver *r;
    QCOMPARE(mpr_router_pipe(router, &s, &r), 0);
    QCOMPARE(mpr_sender_start(s), 0);
    QCOMPARE(mpr_receiver_cancel(r, 5), 0);
    QTRY_COMPARE_WITH_TIMEOUT(mpr_sender_cancelled(s), quint64(5), 10000);
    QCOMPARE(mpr_receiver_cancel(r, 6), 0);
    std::atomic<int> rc{1};
    std::atomic<quint64> seen{1};
    std::thread other([&] {
        size_t len;
        char b[4];
        rc = mpr_sender_recv(s, b, sizeof b, &len, 0);
        seen = mpr_sender_cancelled(s);
    });
    other.join();
    QCOMPARE(rc.load(), int(MPR_EOWNER));
    QCOMPARE(seen.load(), quint64(5)); // the owner has not looked since
    QTRY_COMPARE_WITH_TIMEOUT(mpr_sender_cancelled(s), quint64(6), 10000);
    QCOMPARE(mpr_sender_stop(s), 0);
    mpr_sender_free(s);
}

QTEST_GUILESS_MAIN(tst_Control)
#include "tst_control.moc"
