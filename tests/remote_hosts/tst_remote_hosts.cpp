// tst_remote_hosts - workers on other hosts, simulated: each case makes a
// network namespace joined to ours by a veth pair (tests/common/netns.h).
// The workers run inside it, where the router's abstract socket does not
// exist, so their senders find the router over ZeroMQ by themselves (no
// MPR_TRANSPORT). Then faults on that link: down for 2 s mid-stream (all
// arrives, once, in order), down for longer than the reconnect window (the
// lost callback after the last delivered message), 2 % packet loss inside
// the namespace, a 50 ms delay through a relay, the worker SIGKILLed, the
// router stopped while they send (MPR_EPIPE, never a hang).
//
// Traffic goes only to the veth pair's addresses and to loopback. Needs
// root and ip (iproute2), and nft for the loss case; skipped with a message
// that says so where the machine cannot.
#include <QtTest>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <memory>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <thread>
#include <unistd.h>

#include "netns.h"
#include "payload.h"
#include "rawpeer.h"
#include "testsupport.h"

using namespace mprtest;

namespace {

const int Long = 60000;

// What a worker did, in memory shared with the test.
struct Progress
{
    std::atomic<int> attempted{0}; // sends begun (counted before the call)
    std::atomic<int> sent{0};      // sends that returned 0
    std::atomic<int> failed{0};    // the first error of a send (0: none)
    std::atomic<int> stopped{1};   // mpr_sender_stop's result (1: not yet)
    std::atomic<int> localSeen{0}; // 1 if the router's abstract socket was reachable
};

Progress *newProgress()
{
    void *p = mmap(nullptr, sizeof(Progress), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? nullptr : new (p) Progress;
}

// A pipe's receiver: messages, and where the lost notice came.
struct Received
{
    QVector<QByteArray> messages;
    int lost = 0;
    int lostAfter = -1; // messages before the notice
    void attach(mpr_receiver *r)
    {
        mpr_receiver_set_callback(
            r,
            [](void *arg, const void *data, size_t size) {
                static_cast<Received *>(arg)->messages.append(
                    QByteArray(static_cast<const char *>(data), int(size)));
            },
            this);
        mpr_receiver_set_lost_callback(
            r,
            [](void *arg) {
                auto *self = static_cast<Received *>(arg);
                self->lost++;
                self->lostAfter = self->messages.size();
            },
            this);
    }
    bool inOrder(int n, size_t size, uint32_t tag) const
    {
        if (messages.size() != n)
            return false;
        QByteArray expected(int(size), '\0');
        for (int i = 0; i < n; i++) {
            mpr_test_fill(reinterpret_cast<unsigned char *>(expected.data()), size, uint32_t(i), tag);
            if (messages[i] != expected)
                return false;
        }
        return true;
    }
};

// Can the abstract socket name be connected to from here?
bool abstractReachable(const QByteArray &name)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr;
    socklen_t len = socklen_t(hp_local_addr(name.constData(), &addr, 0));
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr *>(&addr), len) == 0;
    ::close(fd);
    return ok;
}

// The worker's body: start (ZeroMQ found by itself), count messages of
// size bytes, a pause of pauseUs every 64 messages, stop if asked.
int work(mpr_sender *s, Progress *p, const QByteArray &name, int count, size_t size, uint32_t tag,
         int pauseUs, bool stop)
{
    p->localSeen = abstractReachable(name) ? 1 : 0;
    int rc = mpr_sender_start(s);
    if (rc != 0) {
        p->failed = rc;
        return 2;
    }
    QByteArray buf(int(size), '\0');
    auto *b = reinterpret_cast<unsigned char *>(buf.data());
    for (int i = 0; i < count; i++) {
        mpr_test_fill(b, size, uint32_t(i), tag);
        p->attempted = i + 1; // before: the message may arrive before send returns
        rc = mpr_sender_send(s, b, size);
        if (rc != 0) {
            p->failed = rc;
            return 3;
        }
        p->sent = i + 1;
        if (pauseUs && i % 64 == 63)
            usleep(useconds_t(pauseUs));
    }
    if (stop)
        p->stopped = mpr_sender_stop(s);
    return 0;
}

// The same, but a send that fails ends the stream, not the worker: stop is
// called all the same (what it returns says whether anything was lost).
int workThenStop(mpr_sender *s, Progress *p, int count, size_t size, uint32_t tag, int pauseUs)
{
    int rc = mpr_sender_start(s);
    if (rc != 0) {
        p->failed = rc;
        return 2;
    }
    QByteArray buf(int(size), '\0');
    auto *b = reinterpret_cast<unsigned char *>(buf.data());
    for (int i = 0; i < count; i++) {
        mpr_test_fill(b, size, uint32_t(i), tag);
        p->attempted = i + 1;
        rc = mpr_sender_send(s, b, size);
        if (rc != 0) {
            p->failed = rc;
            break;
        }
        p->sent = i + 1;
        if (pauseUs && i % 64 == 63)
            usleep(useconds_t(pauseUs));
    }
    p->stopped = mpr_sender_stop(s);
    return 0;
}

// A forked worker that must not outlive its test: killed and reaped when
// the test leaves early.
struct Reaper
{
    pid_t pid = -1;
    ~Reaper()
    {
        int status;
        if (pid > 0 && !reaped(pid, &status)) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
    }
};

// Route every message the router has received (it then stays out of
// event-loop mode until its next start).
void routeAll(mpr_router *r)
{
    mpr_router_route_until(r, [](void *) { return 0; }, nullptr, 0);
}

// A TCP relay on loopback that holds every chunk for delayMs in each
// direction: a slow link without netem.
class DelayRelay
{
public:
    DelayRelay(const QString &listenHost, const QString &toHost, quint16 toPort, int delayMs)
        : m_to(toHost), m_toPort(toPort), m_delay(delayMs)
    {
        m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a = {};
        a.sin_family = AF_INET;
        inet_pton(AF_INET, listenHost.toLatin1().constData(), &a.sin_addr);
        if (::bind(m_listen, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0 || ::listen(m_listen, 8) < 0)
            return;
        socklen_t len = sizeof a;
        getsockname(m_listen, reinterpret_cast<sockaddr *>(&a), &len);
        m_port = ntohs(a.sin_port);
        ::pipe(m_quit);
        m_thread = std::thread([this] { loop(); });
    }
    ~DelayRelay()
    {
        if (m_thread.joinable()) {
            ::write(m_quit[1], "q", 1);
            m_thread.join();
        }
        for (int fd : {m_listen, m_quit[0], m_quit[1]})
            if (fd >= 0)
                ::close(fd);
    }
    quint16 port() const { return m_port; }

private:
    struct Chunk
    {
        qint64 due;
        QByteArray bytes;
    };
    struct Side
    {
        int fd = -1;
        bool eof = false;     // read end of file: no longer polled
        QList<Chunk> pending; // to write to fd when due
    };
    int connectTo()
    {
        int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a = {};
        a.sin_family = AF_INET;
        a.sin_port = htons(m_toPort);
        inet_pton(AF_INET, m_to.toLatin1().constData(), &a.sin_addr);
        if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0) {
            ::close(fd);
            return -1;
        }
        return fd;
    }
    void loop()
    {
        QElapsedTimer clock;
        clock.start();
        std::vector<std::pair<Side, Side>> links; // (client, router)
        for (;;) {
            std::vector<pollfd> fds = {{m_quit[0], POLLIN, 0}, {m_listen, POLLIN, 0}};
            for (auto &l : links) {
                fds.push_back({l.first.eof ? -1 : l.first.fd, POLLIN, 0});
                fds.push_back({l.second.eof ? -1 : l.second.fd, POLLIN, 0});
            }
            const size_t polled = links.size(); // a link accepted below has no pollfd yet
            ::poll(fds.data(), nfds_t(fds.size()), 5);
            if (fds[0].revents)
                break;
            if (fds[1].revents & POLLIN) {
                int c = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
                int r = c >= 0 ? connectTo() : -1;
                if (r >= 0) {
                    links.push_back({Side{c, false, {}}, Side{r, false, {}}});
                } else if (c >= 0) {
                    ::close(c);
                }
            }
            const qint64 now = clock.elapsed();
            for (size_t i = 0; i < links.size(); i++) {
                Side *sides[2] = {&links[i].first, &links[i].second};
                for (int k = 0; k < 2 && i < polled; k++) {
                    const pollfd &p = fds[2 + 2 * i + size_t(k)];
                    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
                        char buf[65536];
                        ssize_t n = ::read(sides[k]->fd, buf, sizeof buf);
                        if (n > 0)
                            sides[1 - k]->pending.append({now + m_delay, QByteArray(buf, int(n))});
                        else if (n == 0 || (errno != EINTR && errno != EAGAIN))
                            sides[k]->eof = true;
                    }
                }
                for (Side *s : sides) {
                    while (!s->pending.isEmpty() && s->pending.first().due <= now) {
                        const QByteArray &b = s->pending.first().bytes;
                        for (qint64 done = 0; done < b.size();) {
                            ssize_t w = ::send(s->fd, b.constData() + done, size_t(b.size() - done),
                                               MSG_NOSIGNAL);
                            if (w <= 0)
                                break;
                            done += w;
                        }
                        s->pending.removeFirst();
                    }
                }
            }
        }
        for (auto &l : links) {
            ::close(l.first.fd);
            ::close(l.second.fd);
        }
    }
    QString m_to;
    quint16 m_toPort, m_port = 0;
    int m_delay;
    int m_listen = -1, m_quit[2] = {-1, -1};
    std::thread m_thread;
};

} // namespace

class tst_RemoteHosts : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void workerOnAnotherHost();
    void linkDownForTwoSeconds();
    void linkDownLongerThanTheWindow();
    void packetLoss();
    void slowLinkThroughARelay();
    void remoteWorkerKilled();
    void routerStoppedWhileRemoteWorkersSend();
    // Issue 15 (tests/remote/FAILING_FIRST.md).
    void oneWayPartitionIsReportedByStop_data();
    void oneWayPartitionIsReportedByStop();
    void shortWindowHealsATwoSecondOutage_data();
    void shortWindowHealsATwoSecondOutage();

private:
    bool startRouter(const QString &bind, double window, const char *advertise = nullptr);
    std::unique_ptr<LoopDriver> driver;
    std::unique_ptr<NetNs> ns;
    mpr_router *router = nullptr;
    QByteArray localName; // the router's abstract socket name
};

void tst_RemoteHosts::initTestCase()
{
#if defined(__SANITIZE_THREAD__)
    // Every worker here is forked from this multi-threaded process and
    // starts a remote sender, whose thread ThreadSanitizer cannot follow
    // in such a child (routersuite.cpp, SKIP_IF_FORKED_THREADS). These run
    // in the plain and ASan builds.
    QSKIP("ThreadSanitizer: a forked worker cannot start a remote sender's thread");
#endif
    QString why;
    if (!NetNs::available(&why))
        QSKIP(qPrintable(why));
    qunsetenv("MPR_TRANSPORT"); // the senders choose by themselves
}

void tst_RemoteHosts::init()
{
    driver = makeFdLoopDriver();
    ns.reset(new NetNs);
    QVERIFY2(ns->ok(), qPrintable(ns->why()));
}

void tst_RemoteHosts::cleanup()
{
    mpr_router_free(router);
    router = nullptr;
    driver.reset();
    ns.reset(); // removes the namespace and its link
}

bool tst_RemoteHosts::startRouter(const QString &bind, double window, const char *advertise)
{
    if (mpr_router_new(&router, driver->loop()) != 0
        || mpr_router_set_remote(router, bind.toLatin1().constData(), advertise) != 0
        || mpr_router_set_remote_window(router, window) != 0 || mpr_router_start(router) != 0)
        return false;
    return true;
}

// Pipe, receiver and the sender's abstract name.
#define OPEN(sender, received)                                                          \
    mpr_sender *sender = nullptr;                                                       \
    mpr_receiver *sender##Receiver = nullptr;                                           \
    QCOMPARE(mpr_router_pipe(router, &sender, &sender##Receiver), 0);                   \
    received.attach(sender##Receiver);                                                  \
    {                                                                                   \
        char text[512];                                                                 \
        QVERIFY(mpr_sender_to_string(sender, text, sizeof text) > 0);                   \
        localName = QByteArray(text).split(':').value(1);                               \
    }

void tst_RemoteHosts::workerOnAnotherHost()
{
    QVERIFY(startRouter(QStringLiteral("tcp://%1:0").arg(ns->hostAddress()), 5.0));
    Received got;
    OPEN(sender, got);
    Progress *p = newProgress();
    QVERIFY(p);
    pid_t pid = ns->fork([&] { return work(sender, p, localName, 2000, 64, 1, 0, true); });
    QVERIFY(pid > 0);
    mpr_sender_free(sender);
    int status = 0;
    QTRY_VERIFY_WITH_TIMEOUT(reaped(pid, &status), Long);
    QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0,
             qPrintable(QString("status %1, send error %2").arg(status).arg(p->failed.load())));
    QCOMPARE(p->localSeen.load(), 0); // only ZeroMQ could work from there
    QCOMPARE(p->stopped.load(), 0);
    QTRY_COMPARE_WITH_TIMEOUT(got.messages.size(), 2000, Long);
    QVERIFY(got.inOrder(2000, 64, 1));
    QCOMPARE(got.lost, 0);
    mpr_router_stats st;
    mpr_router_get_stats(router, &st);
    QCOMPARE(st.connections_accepted, quint64(1));
    QCOMPARE(st.connections_rejected, quint64(0));
    munmap(p, sizeof *p);
}

// The link goes down for 2 s in the middle of a stream and comes back:
// nothing is lost, nothing arrives twice, all in order.
void tst_RemoteHosts::linkDownForTwoSeconds()
{
    QVERIFY(startRouter(QStringLiteral("tcp://%1:0").arg(ns->hostAddress()), 10.0));
    Received got;
    OPEN(sender, got);
    Progress *p = newProgress();
    const int count = 20000;
    pid_t pid = ns->fork([&] { return work(sender, p, localName, count, 100, 2, 200, true); });
    QVERIFY(pid > 0);
    mpr_sender_free(sender);
    QTRY_VERIFY_WITH_TIMEOUT(got.messages.size() >= 2000, Long);
    QVERIFY(ns->setLinkUp(false));
    const int before = got.messages.size();
    QTest::qWait(2000); // the fault itself: 2 s down (the loop keeps routing)
    QVERIFY(ns->setLinkUp(true));
    int status = 0;
    QTRY_VERIFY_WITH_TIMEOUT(reaped(pid, &status), Long);
    QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0,
             qPrintable(QString("status %1, send error %2").arg(status).arg(p->failed.load())));
    QCOMPARE(p->stopped.load(), 0); // the router took everything
    QTRY_COMPARE_WITH_TIMEOUT(got.messages.size(), count, Long);
    QVERIFY2(got.inOrder(count, 100, 2), "lost, doubled or out of order");
    QVERIFY(before < count); // the outage was in the middle of the stream
    QCOMPARE(got.lost, 0);
    munmap(p, sizeof *p);
}

// Down for longer than the reconnect window: the router reports the sender
// lost after the last message it delivered; the worker learns that its
// router is gone (MPR_EPIPE), later, without hanging.
void tst_RemoteHosts::linkDownLongerThanTheWindow()
{
    QVERIFY(startRouter(QStringLiteral("tcp://%1:0").arg(ns->hostAddress()), 2.0));
    Received got;
    OPEN(sender, got);
    Progress *p = newProgress();
    pid_t pid = ns->fork([&] { return work(sender, p, localName, 1000000, 64, 3, 1000, true); });
    QVERIFY(pid > 0);
    mpr_sender_free(sender);
    QTRY_VERIFY_WITH_TIMEOUT(got.messages.size() >= 1000, Long);
    QVERIFY(ns->setLinkUp(false));
    QTRY_COMPARE_WITH_TIMEOUT(got.lost, 1, Long); // after the 2 s window
    QVERIFY(ns->setLinkUp(true));
    QCOMPARE(got.lostAfter, got.messages.size()); // nothing after the notice
    QVERIFY(got.inOrder(got.messages.size(), 64, 3));
    int status = 0;
    QTRY_VERIFY_WITH_TIMEOUT(reaped(pid, &status), Long);
    QCOMPARE(WEXITSTATUS(status), 3); // a send failed...
    QCOMPARE(p->failed.load(), int(MPR_EPIPE)); // ...because the router was gone
    QCOMPARE(got.lost, 1);
    munmap(p, sizeof *p);
}

// 2 % of the packets the namespace sends are dropped (nftables): all
// arrives, once, in order.
void tst_RemoteHosts::packetLoss()
{
    QVERIFY(startRouter(QStringLiteral("tcp://%1:0").arg(ns->hostAddress()), 10.0));
    if (!ns->setLoss(2))
        QSKIP("needs nft (nftables) in the namespace to drop packets");
    Received got;
    OPEN(sender, got);
    Progress *p = newProgress();
    const int count = 20000;
    pid_t pid = ns->fork([&] { return work(sender, p, localName, count, 200, 4, 100, true); });
    QVERIFY(pid > 0);
    mpr_sender_free(sender);
    int status = 0;
    QTRY_VERIFY_WITH_TIMEOUT(reaped(pid, &status), 2 * Long);
    QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0,
             qPrintable(QString("status %1, send error %2").arg(status).arg(p->failed.load())));
    QCOMPARE(p->stopped.load(), 0);
    QTRY_COMPARE_WITH_TIMEOUT(got.messages.size(), count, Long);
    QVERIFY2(got.inOrder(count, 200, 4), "lost, doubled or out of order");
    QCOMPARE(got.lost, 0);
    munmap(p, sizeof *p);
}

// A 50 ms delay each way through a relay in this test (on loopback: the
// router at 127.0.0.1, the relay at 127.0.0.2, which the router advertises).
void tst_RemoteHosts::slowLinkThroughARelay()
{
    QVERIFY(startRouter(QStringLiteral("tcp://127.0.0.1:0"), 10.0, "127.0.0.2"));
    char endpoint[256];
    QVERIFY(mpr_router_remote_endpoint(router, endpoint, sizeof endpoint) > 0);
    const quint16 port = quint16(QByteArray(endpoint).split(':').last().toUInt());
    Received got;
    OPEN(sender, got);
    // The relay listens where the router says it is (127.0.0.2, its port).
    DelayRelay relay(QStringLiteral("127.0.0.2"), QStringLiteral("127.0.0.1"), port, 50);
    if (relay.port() == 0)
        QSKIP("cannot listen on 127.0.0.2");
    // Its port, in the string the worker gets.
    char text[512];
    QVERIFY(mpr_sender_to_string(sender, text, sizeof text) > 0);
    QByteArray str(text);
    str.replace(QByteArray(":") + QByteArray::number(port),
                QByteArray(":") + QByteArray::number(relay.port()));
    mpr_sender *viaRelay = nullptr;
    QCOMPARE(mpr_sender_from_string(&viaRelay, str.constData()), 0);
    mpr_sender_free(sender);
    Progress *p = newProgress();
    const int count = 5000;
    qputenv("MPR_TRANSPORT", "zmq"); // on this host: through the relay, not the local socket
    pid_t pid = forkWorker([&] { return work(viaRelay, p, localName, count, 64, 5, 200, true); });
    qunsetenv("MPR_TRANSPORT");
    QVERIFY(pid > 0);
    mpr_sender_free(viaRelay);
    int status = 0;
    QTRY_VERIFY_WITH_TIMEOUT(reaped(pid, &status), 2 * Long);
    QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0,
             qPrintable(QString("status %1, send error %2").arg(status).arg(p->failed.load())));
    QCOMPARE(p->stopped.load(), 0);
    QTRY_COMPARE_WITH_TIMEOUT(got.messages.size(), count, Long);
    QVERIFY(got.inOrder(count, 64, 5));
    QCOMPARE(got.lost, 0);
    munmap(p, sizeof *p);
}

// SIGKILL on the other host: lost after the window, after its messages.
void tst_RemoteHosts::remoteWorkerKilled()
{
    QVERIFY(startRouter(QStringLiteral("tcp://%1:0").arg(ns->hostAddress()), 2.0));
    Received got;
    OPEN(sender, got);
    Progress *p = newProgress();
    pid_t pid = ns->fork([&] { return work(sender, p, localName, 1000000, 64, 6, 1000, true); });
    QVERIFY(pid > 0);
    mpr_sender_free(sender);
    QTRY_VERIFY_WITH_TIMEOUT(got.messages.size() >= 500, Long);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    QTRY_COMPARE_WITH_TIMEOUT(got.lost, 1, Long);
    QCOMPARE(got.lostAfter, got.messages.size());
    QVERIFY(got.inOrder(got.messages.size(), 64, 6));
    // At most what it began to send: a message can arrive before its send
    // returns, and the SIGKILL can land in between.
    QVERIFY(got.messages.size() <= p->attempted.load());
    munmap(p, sizeof *p);
}

// The router stops while remote workers send: each gets MPR_EPIPE and
// exits; none hangs.
void tst_RemoteHosts::routerStoppedWhileRemoteWorkersSend()
{
    QVERIFY(startRouter(QStringLiteral("tcp://%1:0").arg(ns->hostAddress()), 3.0));
    const int workers = 3;
    Received got[workers];
    std::vector<pid_t> pids;
    Progress *p[workers];
    ForkGate gate; // all forked before any sends
    for (int i = 0; i < workers; i++) {
        OPEN(sender, got[i]);
        p[i] = newProgress();
        Progress *pi = p[i];
        pids.push_back(ns->fork([&, pi, i] {
            gate.waitInChild();
            return work(sender, pi, localName, 100000000, 64, uint32_t(10 + i), 500, true);
        }));
        mpr_sender_free(sender);
    }
    gate.open();
    QTRY_VERIFY_WITH_TIMEOUT(got[0].messages.size() >= 200 && got[1].messages.size() >= 200
                                 && got[2].messages.size() >= 200,
                             Long);
    LogCapture quiet; // 3 unclosed pipes
    QCOMPARE(mpr_router_stop(router), 0);
    for (int i = 0; i < workers; i++) {
        int status = 0;
        QTRY_VERIFY_WITH_TIMEOUT(reaped(pids[size_t(i)], &status), Long);
        QCOMPARE(WEXITSTATUS(status), 3);
        QCOMPARE(p[i]->failed.load(), int(MPR_EPIPE));
        munmap(p[i], sizeof(Progress));
    }
}

// ---- issue 15 -------------------------------------------------------------------

void tst_RemoteHosts::oneWayPartitionIsReportedByStop_data()
{
    QTest::addColumn<bool>("towardsWorker"); // which way packets are dropped
    QTest::newRow("the router's packets to the worker dropped") << true;
    QTest::newRow("the worker's packets to the router dropped") << false;
}

// One direction of the link drops everything for 5 s, longer than the 3 s
// window, in the middle of a stream; then it heals and the worker goes on
// until a send fails, and stops. Its stop may return 0 only if every
// message whose send returned 0 arrived, in order; a loss must be
// reported by stop.
void tst_RemoteHosts::oneWayPartitionIsReportedByStop()
{
    QFETCH(bool, towardsWorker);
    if (!ns->setDrop(false, false))
        QSKIP("needs nft (nftables) in the namespace to drop packets one way");
    QVERIFY(startRouter(QStringLiteral("tcp://%1:0").arg(ns->hostAddress()), 3.0));
    Received got;
    OPEN(sender, got);
    Progress *p = newProgress();
    QVERIFY(p);
    pid_t pid = ns->fork([&] { return workThenStop(sender, p, 1000000, 64, 7, 1000); });
    Reaper reaper{pid};
    QVERIFY(pid > 0);
    mpr_sender_free(sender);
    QTRY_VERIFY_WITH_TIMEOUT(got.messages.size() >= 2000, Long);
    QVERIFY(ns->setDrop(!towardsWorker, towardsWorker));
    QTest::qWait(5000); // the fault: one way, longer than the window (we keep routing)
    QVERIFY(ns->setDrop(false, false));
    int status = 0;
    QTRY_VERIFY_WITH_TIMEOUT(reaped(pid, &status), Long);
    QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0,
             qPrintable(QString("status %1, start error %2").arg(status).arg(p->failed.load())));
    routeAll(router);
    const int received = got.messages.size();
    QVERIFY2(got.inOrder(received, 64, 7), "what arrived is not the stream's start, in order");
    const QString what = QStringLiteral("%1 sends returned 0 (then %2), %3 messages arrived, stop returned "
                                        "%4 (%5)")
                             .arg(p->sent.load())
                             .arg(QString::fromLatin1(mpr_strerror(p->failed.load())))
                             .arg(received)
                             .arg(p->stopped.load())
                             .arg(QString::fromLatin1(mpr_strerror(p->stopped.load())));
    qInfo("%s", qPrintable(what));
    QVERIFY2(received <= p->sent.load(), qPrintable(what));
    QVERIFY2(p->stopped.load() != 0 || received == p->sent.load(),
             qPrintable("stop returned 0 after a loss: " + what));
    munmap(p, sizeof *p);
}

void tst_RemoteHosts::shortWindowHealsATwoSecondOutage_data()
{
    QTest::addColumn<int>("run");
    QTest::addColumn<bool>("sendDuring"); // the rest is sent while the link is down
    QTest::newRow("the rest sent and stop called during the outage, run 1") << 1 << true;
    QTest::newRow("the rest sent and stop called during the outage, run 2") << 2 << true;
    QTest::newRow("the rest sent and stop called during the outage, run 3") << 3 << true;
    QTest::newRow("the rest sent after the outage") << 4 << false;
}

// With a 3 s window, the link down for 2 s both ways must heal: nothing
// lost, the sender not reported lost, stop returns 0. The worker has sent
// half of its messages and waits (a worker between two pieces of work)
// when the link goes down; it sends the rest and stops while the link is
// down (the first rows, run three times) or once it is back.
void tst_RemoteHosts::shortWindowHealsATwoSecondOutage()
{
    QFETCH(int, run);
    QFETCH(bool, sendDuring);
    QVERIFY(startRouter(QStringLiteral("tcp://%1:0").arg(ns->hostAddress()), 3.0));
    Received got;
    OPEN(sender, got);
    Progress *p = newProgress();
    QVERIFY(p);
    const int half = 2000;
    const uint32_t tag = uint32_t(20 + run);
    int go[2];
    QCOMPARE(::pipe(go), 0);
    pid_t pid = ns->fork([&] {
        ::close(go[1]);
        int rc = mpr_sender_start(sender);
        QByteArray buf(100, '\0');
        auto *b = reinterpret_cast<unsigned char *>(buf.data());
        for (int i = 0; i < 2 * half && rc == 0; i++) {
            if (i == half) {
                char byte;
                while (::read(go[0], &byte, 1) < 0 && errno == EINTR) {
                }
            }
            mpr_test_fill(b, 100, uint32_t(i), tag);
            p->attempted = i + 1;
            rc = mpr_sender_send(sender, b, 100);
            if (rc == 0)
                p->sent = i + 1;
        }
        p->failed = rc;
        p->stopped = mpr_sender_stop(sender);
        return 0;
    });
    ::close(go[0]);
    struct Gate // our end: closing it releases the worker (also if the test leaves early)
    {
        int fd;
        void open()
        {
            if (fd >= 0)
                ::close(fd);
            fd = -1;
        }
        ~Gate() { open(); }
    } gate{go[1]};
    Reaper reaper{pid};
    QVERIFY(pid > 0);
    mpr_sender_free(sender);
    QTRY_VERIFY_WITH_TIMEOUT(got.messages.size() >= half, Long);
    // Idle for half a second first: an idle sender is heard once a second
    // (its heartbeat), so in a real outage the router last heard from it
    // half a second before on average. The window counts from the break.
    QTest::qWait(500);
    QVERIFY(ns->setLinkUp(false));
    if (sendDuring)
        gate.open(); // the rest, now
    QTest::qWait(2000); // the fault itself: 2 s down, less than the window
    QVERIFY(ns->setLinkUp(true));
    if (!sendDuring)
        gate.open(); // the rest, now
    int status = 0;
    QTRY_VERIFY_WITH_TIMEOUT(reaped(pid, &status), Long);
    const QString what = QStringLiteral("send error %1 (%2), stop %3 (%4), %5 of %6 arrived, lost %7")
                             .arg(p->failed.load())
                             .arg(QString::fromLatin1(mpr_strerror(p->failed.load())))
                             .arg(p->stopped.load())
                             .arg(QString::fromLatin1(mpr_strerror(p->stopped.load())))
                             .arg(got.messages.size())
                             .arg(2 * half)
                             .arg(got.lost);
    QVERIFY2(WIFEXITED(status) && WEXITSTATUS(status) == 0, qPrintable(what));
    QVERIFY2(p->failed.load() == 0 && p->stopped.load() == 0, qPrintable(what));
    QTRY_COMPARE_WITH_TIMEOUT(got.messages.size(), 2 * half, Long);
    QVERIFY2(got.inOrder(2 * half, 100, tag), "lost, doubled or out of order");
    QVERIFY2(got.lost == 0, qPrintable(what));
    munmap(p, sizeof *p);
}

QTEST_GUILESS_MAIN(tst_RemoteHosts)
#include "tst_remote_hosts.moc"
