// tst_remote - the remote transport on loopback: its API, what a sender
// string carries, and peers that do not play by the rules - a client
// without CURVE, a wrong server key, garbage on the port, a silent peer,
// a forged or another pipe's key, an id never issued, frames without a
// HELLO, a peer beyond its credit, an oversized frame, a thousand
// connecting peers. Each costs only itself: a warning and a count, and a
// remote bystander pipe keeps flowing. Then delivery: stop returns 0 only
// when the router has everything, and with a queue limit remote senders
// wait too.
//
// Hostile peers are real ZeroMQ clients (libzmq) or raw TCP sockets; their
// frames are written out from src/wire.h (tests/common/peers.h).
#include <QtTest>

#include <arpa/inet.h>
#include <atomic>
#include <thread>
#include <memory>
#include <netinet/in.h>
#include <sys/mman.h>
#include <zmq.h>

#include "peers.h"

using namespace mprtest;

namespace {

// "mpr3:NAME:ID:KEY:SERVERKEY:tcp://HOST:PORT": the server key is 40
// characters of Z85 (which has ':' in it).
struct Remote
{
    QByteArray serverKey, endpoint;
    QString host;
    quint16 port = 0;
};

bool parseRemote(const mpr_sender *s, Remote *out)
{
    char buf[512];
    int n = mpr_sender_to_string(s, buf, sizeof buf);
    if (n <= 0 || n >= int(sizeof buf))
        return false;
    QByteArray text(buf, n);
    int at = 0;
    for (int i = 0; i < 4; i++) {
        at = text.indexOf(':', at) + 1;
        if (at <= 0)
            return false;
    }
    out->serverKey = text.mid(at, 40);
    if (text.size() < at + 41 || text[at + 40] != ':')
        return false;
    out->endpoint = text.mid(at + 41);
    const QByteArray hostPort = out->endpoint.mid(6);
    out->host = QString::fromLatin1(hostPort.left(hostPort.lastIndexOf(':')));
    out->port = quint16(hostPort.mid(hostPort.lastIndexOf(':') + 1).toUInt());
    return out->serverKey.size() == 40 && out->endpoint.startsWith("tcp://");
}

// A ZeroMQ DEALER of our own: with CURVE (a server key) or without.
class Client
{
public:
    Client() : ctx(zmq_ctx_new()) {}
    ~Client()
    {
        if (sock)
            zmq_close(sock);
        zmq_ctx_term(ctx);
    }
    bool open(const QByteArray &endpoint, const QByteArray &serverKey)
    {
        sock = zmq_socket(ctx, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        if (!serverKey.isEmpty()) {
            char pub[41], sec[41];
            zmq_curve_keypair(pub, sec);
            zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, serverKey.constData(), 40);
            zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40);
            zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40);
        }
        return zmq_connect(sock, endpoint.constData()) == 0;
    }
    bool send(const QByteArray &b) { return zmq_send(sock, b.constData(), size_t(b.size()), 0) == b.size(); }
    // One message within timeoutMs, or empty.
    QByteArray recv(int timeoutMs)
    {
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, timeoutMs) != 1)
            return QByteArray();
        char buf[4096];
        int n = zmq_recv(sock, buf, sizeof buf, 0);
        return n > 0 ? QByteArray(buf, qMin(n, int(sizeof buf))) : QByteArray();
    }
    // HELLO, then the CHALLENGE's nonce (checked against key); empty on failure.
    QByteArray hello(uint32_t id, const QByteArray &key, QByteArray *nonceS)
    {
        if (!send(mprtest::hello(id, Version, 0, nonceS)))
            return QByteArray();
        const QByteArray ch = recv(10000);
        if (ch.size() != ChallengeSize || ch.mid(32, 16) != tag(key, 'r', id, *nonceS, ch.mid(16, 16)))
            return QByteArray();
        return ch.mid(16, 16);
    }
    void *ctx;
    void *sock = nullptr;
};

int tcpConnect(const QString &host, quint16 port)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, host.toLatin1().constData(), &a.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

QByteArray dataFrame(uint64_t seq, const QByteArray &records)
{
    QByteArray b;
    putU32(b, 0x4452504du); // "MPRD"
    putU32(b, 0);
    putU32(b, uint32_t(seq));
    putU32(b, uint32_t(seq >> 32));
    return b + records;
}

QByteArray msgRecord(const QByteArray &payload)
{
    QByteArray b;
    putU32(b, 1); // MSG
    putU32(b, uint32_t(payload.size()));
    b += payload;
    while (b.size() % 8)
        b.append('\0');
    return b;
}

// Warnings about rejected connections, in full or counted in summaries.
int rejectionsLogged(const LogCapture &log, const QString &reason)
{
    int n = 0;
    const QRegularExpression count(QRegularExpression::escape(reason) + ": (\\d+)");
    for (const QString &m : log.messages()) {
        if (m.contains("rejected connection from") && m.contains(reason))
            n++;
        else if (m.contains("more rejected connections"))
            n += count.match(m).captured(1).toInt();
    }
    return n;
}

} // namespace

class tst_Remote : public QObject
{
    Q_OBJECT

private slots:
    void initTestCase();
    void init();
    void cleanup();

    void setRemoteChecksItsArguments_data();
    void setRemoteChecksItsArguments();
    void remoteEndpoint();
    void portInUse();
    void stringRoundTrip();
    void tamperedServerKey();
    void hostilePeers_data();
    void hostilePeers();
    void aThousandConnectingPeers();
    void stopReturnsZeroOnlyWhenAllIsTaken();
    void queueLimitHoldsRemoteSenders();
    void oneSenderPerPipeOverTheNetwork();
    void fullZeroMqQueueLosesNoFrame();

private:
    std::unique_ptr<LoopDriver> driver;
    mpr_router *router = nullptr;
};

void tst_Remote::initTestCase()
{
    qputenv("MPR_TRANSPORT", "zmq"); // every sender here, and in children, goes remote
}

void tst_Remote::init()
{
    driver = makeFdLoopDriver();
    QCOMPARE(mpr_router_new(&router, driver->loop()), 0);
    QCOMPARE(mpr_router_set_remote(router, "tcp://127.0.0.1:0", nullptr), 0);
    QCOMPARE(mpr_router_set_remote_window(router, 2.0), 0);
    QCOMPARE(mpr_router_set_handshake_timeout(router, 1.0), 0);
    QCOMPARE(mpr_router_start(router), 0);
}

void tst_Remote::cleanup()
{
    mpr_router_free(router);
    router = nullptr;
    driver.reset();
}

// ---- the API -----------------------------------------------------------------

void tst_Remote::setRemoteChecksItsArguments_data()
{
    QTest::addColumn<QString>("bind");
    QTest::addColumn<QString>("host");
    QTest::addColumn<int>("expected");
    const int ok = 0, inval = MPR_EINVAL;
    QTest::newRow("any port on loopback") << "tcp://127.0.0.1:0" << QString() << ok;
    QTest::newRow("a wildcard address, a port") << "tcp://*:5555" << "worker-gateway.example" << ok;
    QTest::newRow("IPv6") << "tcp://[::1]:0" << "[::1]" << ok;
    QTest::newRow("a host name and a fixed port") << "tcp://localhost:7000" << QString() << ok;
    QTest::newRow("no scheme") << "127.0.0.1:0" << QString() << inval;
    QTest::newRow("not tcp") << "ipc:///tmp/mprouter" << QString() << inval;
    QTest::newRow("no port") << "tcp://127.0.0.1" << QString() << inval;
    QTest::newRow("port too big") << "tcp://127.0.0.1:65536" << QString() << inval;
    QTest::newRow("a space in the host") << "tcp://a b:1" << QString() << inval;
    QTest::newRow("a shell character") << "tcp://a;b:1" << QString() << inval;
    QTest::newRow("a bad advertised host") << "tcp://127.0.0.1:0" << "host name" << inval;
    QTest::newRow("a wildcard as the advertised host") << "tcp://127.0.0.1:0" << "*" << inval;
}

void tst_Remote::setRemoteChecksItsArguments()
{
    QFETCH(QString, bind);
    QFETCH(QString, host);
    QFETCH(int, expected);
    mpr_router *r;
    QCOMPARE(mpr_router_new(&r, driver->loop()), 0);
    const QByteArray b = bind.toLatin1(), h = host.toLatin1();
    QCOMPARE(mpr_router_set_remote(r, b.constData(), host.isNull() ? nullptr : h.constData()),
             expected);
    QCOMPARE(mpr_router_set_remote(r, nullptr, "host"), int(MPR_EINVAL)); // a host without an endpoint
    QCOMPARE(mpr_router_set_remote(r, nullptr, nullptr), 0);              // off
    QCOMPARE(mpr_router_set_remote_window(r, 0), int(MPR_EINVAL));
    QCOMPARE(mpr_router_set_remote_window(r, std::nan("")), int(MPR_EINVAL));
    QCOMPARE(mpr_router_set_remote_window(r, 3601), int(MPR_EINVAL));
    mpr_router_free(r);
}

void tst_Remote::remoteEndpoint()
{
    char buf[256];
    const int n = mpr_router_remote_endpoint(router, buf, sizeof buf);
    QVERIFY(n > 0 && n < int(sizeof buf));
    QVERIFY2(QRegularExpression("^tcp://127\\.0\\.0\\.1:[1-9][0-9]*$").match(QString(buf)).hasMatch(), buf);
    QCOMPARE(mpr_router_remote_endpoint(router, nullptr, 0), n); // snprintf-style
    char small[8];
    QCOMPARE(mpr_router_remote_endpoint(router, small, sizeof small), n);
    QCOMPARE(QByteArray(small), QByteArray(buf).left(7));
    QCOMPARE(mpr_router_remote_endpoint(router, nullptr, 5), int(MPR_EINVAL));
    // Not running; running without a remote endpoint.
    QCOMPARE(mpr_router_stop(router), 0);
    QCOMPARE(mpr_router_remote_endpoint(router, buf, sizeof buf), int(MPR_ESTATE));
    QCOMPARE(mpr_router_set_remote(router, nullptr, nullptr), 0);
    QCOMPARE(mpr_router_start(router), 0);
    QCOMPARE(mpr_router_remote_endpoint(router, buf, sizeof buf), int(MPR_ENOENT));
    // Advertised under another name.
    QCOMPARE(mpr_router_stop(router), 0);
    QCOMPARE(mpr_router_set_remote(router, "tcp://127.0.0.1:0", "worker-gateway.example"), 0);
    QCOMPARE(mpr_router_start(router), 0);
    QVERIFY(mpr_router_remote_endpoint(router, buf, sizeof buf) > 0);
    QVERIFY2(QByteArray(buf).startsWith("tcp://worker-gateway.example:"), buf);
}

// A port somebody else holds: start fails and says why; nothing changes.
void tst_Remote::portInUse()
{
    char buf[256];
    QVERIFY(mpr_router_remote_endpoint(router, buf, sizeof buf) > 0);
    mpr_router *second;
    QCOMPARE(mpr_router_new(&second, driver->loop()), 0);
    QCOMPARE(mpr_router_set_remote(second, buf, nullptr), 0);
    QCOMPARE(mpr_router_start(second), int(MPR_EADDRINUSE));
    QCOMPARE(mpr_router_stop(second), int(MPR_ESTATE)); // it never ran
    QCOMPARE(mpr_router_set_remote(second, "tcp://127.0.0.1:0", nullptr), 0);
    QCOMPARE(mpr_router_start(second), 0); // and starts once the port is free
    mpr_router_free(second);
}

void tst_Remote::stringRoundTrip()
{
    Pipe p;
    QVERIFY(p.open(router));
    char text[512];
    const int n = mpr_sender_to_string(p.sender, text, sizeof text);
    QVERIFY(n > 0 && n < int(sizeof text));
    mpr_sender *copy = nullptr;
    QCOMPARE(mpr_sender_from_string(&copy, text), 0);
    char again[512];
    QCOMPARE(mpr_sender_to_string(copy, again, sizeof again), n);
    QCOMPARE(QByteArray(again), QByteArray(text));
    Remote r;
    QVERIFY(parseRemote(copy, &r));
    char endpoint[256];
    QVERIFY(mpr_router_remote_endpoint(router, endpoint, sizeof endpoint) > 0);
    QCOMPARE(r.endpoint, QByteArray(endpoint));
    // Malformed remote parts.
    const QByteArray good(text);
    const int keyAt = good.size() - r.endpoint.size() - 41;
    for (const QByteArray &bad :
         {good.left(good.size() - r.endpoint.size() - 1),                     // no endpoint
          good.left(keyAt) + "short:" + r.endpoint,                           // a short key
          good.left(keyAt) + QByteArray(40, ' ') + ":" + r.endpoint,          // not Z85
          good.left(good.size() - r.endpoint.size()) + "udp://127.0.0.1:1",   // not tcp
          good + ":extra"}) {
        mpr_sender *s = nullptr;
        QCOMPARE(mpr_sender_from_string(&s, bad.constData()), int(MPR_EINVAL));
        QVERIFY(!s);
    }
    // The copy starts and delivers, over ZeroMQ.
    QCOMPARE(sendSequence(copy, 5, 16, 1), 0);
    QTRY_VERIFY(p.inbox.isSequence(5, 16, 1));
    mpr_sender_free(copy);
}

// A string whose server key was changed: CURVE fails, so to the sender it
// is not its router, at once; the router warns and counts.
void tst_Remote::tamperedServerKey()
{
    LogCapture log;
    Pipe p;
    QVERIFY(p.open(router));
    char text[512];
    const int n = mpr_sender_to_string(p.sender, text, sizeof text);
    Remote r;
    QVERIFY(parseRemote(p.sender, &r));
    char keyOut[41], secret[41];
    zmq_curve_keypair(keyOut, secret);
    QByteArray forged(text, n);
    forged.replace(r.serverKey, QByteArray(keyOut, 40));
    mpr_sender *s = nullptr;
    QCOMPARE(mpr_sender_from_string(&s, forged.constData()), 0);
    QElapsedTimer t;
    t.start();
    QCOMPARE(mpr_sender_start(s), int(MPR_ECONNREFUSED));
    mpr_sender_free(s);
    QTRY_VERIFY(rejectionsLogged(log, "a tcp peer") >= 1 || log.count("a tcp peer") >= 1);
    mpr_router_stats st;
    mpr_router_get_stats(router, &st);
    QVERIFY(st.connections_rejected >= 1);
    QCOMPARE(st.connections_accepted, quint64(0));
    // The real string still works.
    QCOMPARE(sendSequence(p.sender, 3, 8, 2), 0);
    QTRY_VERIFY(p.inbox.isSequence(3, 8, 2));
}

// ---- hostile peers -------------------------------------------------------------

void tst_Remote::hostilePeers_data()
{
    QTest::addColumn<QString>("kind");
    QTest::addColumn<QString>("reason");   // in the warning ("" for none)
    QTest::addColumn<QString>("counted");  // the counter that moves: rejected, broken, or none
    // (Refused by ZeroMQ itself: the warning names a tcp peer and the most
    // likely reason, which the socket monitor cannot tie to one connection.)
    QTest::newRow("a ZeroMQ client without CURVE") << "plain" << "a tcp peer" << "rejected";
    QTest::newRow("CURVE with a wrong server key") << "wrong server" << "a tcp peer" << "rejected";
    QTest::newRow("garbage on the port") << "garbage" << "a tcp peer" << "rejected";
    QTest::newRow("a silent TCP peer") << "silent" << "a tcp peer" << "rejected";
    QTest::newRow("a forged pipe key") << "forged" << "proof does not match" << "rejected";
    QTest::newRow("another pipe's key") << "other key" << "proof does not match" << "rejected";
    QTest::newRow("an id never issued") << "unissued" << "connection id never issued" << "rejected";
    QTest::newRow("data without a HELLO") << "no hello" << "no HELLO" << "rejected";
    QTest::newRow("a HELLO of another version") << "version" << "unsupported protocol version"
                                                << "rejected";
    QTest::newRow("sending beyond its credit") << "credit" << "closing connection: protocol error"
                                               << "broken";
    QTest::newRow("a frame over the maximum size") << "oversized" << "" << "none";
    QTest::newRow("garbage records in a DATA frame") << "bad records"
                                                     << "closing connection: protocol error"
                                                     << "broken";
}

void tst_Remote::hostilePeers()
{
    QFETCH(QString, kind);
    QFETCH(QString, reason);
    QFETCH(QString, counted);
    LogCapture log;
    if (kind == "credit") {
        // Credit stops while the queue is throttled: a small limit, and no
        // routing until the frames are out.
        QCOMPARE(mpr_router_stop(router), 0);
        QCOMPARE(mpr_router_set_queue_limit(router, 64 * 1024), 0);
        QCOMPARE(mpr_router_start(router), 0);
    }
    Pipe victim;
    QVERIFY(victim.open(router));
    Bystander good;
    START_BYSTANDER(good, 81);
    const mpr_router_stats before = stats(router);
    Remote r;
    QVERIFY(parseRemote(victim.sender, &r));
    const Credentials &c = victim.cred;

    Client client;
    int raw = -1;
    if (kind == "plain") {
        QVERIFY(client.open(r.endpoint, QByteArray()));
        client.send(hello(c.id));
    } else if (kind == "wrong server") {
        char pub[41], sec[41];
        zmq_curve_keypair(pub, sec);
        QVERIFY(client.open(r.endpoint, QByteArray(pub, 40)));
        client.send(hello(c.id));
    } else if (kind == "garbage" || kind == "silent") {
        raw = tcpConnect(r.host, r.port);
        QVERIFY(raw >= 0);
        if (kind == "garbage") {
            QByteArray junk(256, '\0');
            for (char &ch : junk)
                ch = char(QRandomGenerator::global()->bounded(256));
            junk[0] = 'G'; // not a ZMTP greeting
            writeAll(raw, junk.constData(), size_t(junk.size()));
        }
    } else {
        QVERIFY(client.open(r.endpoint, r.serverKey));
        QByteArray nonceS, nonceR;
        if (kind == "unissued") {
            client.send(hello(good.pipe.cred.id + 100));
        } else if (kind == "version") {
            client.send(hello(c.id, 2));
        } else if (kind == "no hello") {
            client.send(dataFrame(1, msgRecord(payload(0, 99, 16))));
        } else {
            nonceR = client.hello(c.id, c.secret, &nonceS);
            QVERIFY2(!nonceR.isEmpty(), "no CHALLENGE");
            QByteArray key = kind == "forged" ? QByteArray(16, 'k')
                             : kind == "other key" ? good.pipe.cred.secret
                                                   : c.secret;
            client.send(proof(tag(key, 's', c.id, nonceR, nonceS)));
            if (kind == "credit" || kind == "oversized" || kind == "bad records") {
                const QByteArray ack = client.recv(10000);
                QCOMPARE(ack.size(), AckSize);
                QCOMPARE(getU32(ack, 8), 2u); // remote mode
                if (kind == "credit") {
                    // 20 frames of 512 KiB against a credit of one frame
                    // (the limit leaves no more room), and none given
                    // while throttled (nobody routes until the router has
                    // seen them).
                    QByteArray big(512 * 1024 - 8, 'c');
                    for (uint64_t seq = 1; seq <= 20; seq++)
                        client.send(dataFrame(seq, msgRecord(big)));
                    QElapsedTimer t;
                    t.start();
                    while (stats(router).connections_broken == before.connections_broken
                           && t.elapsed() < T_LONG)
                        sleepMs(10);
                } else if (kind == "oversized") {
                    client.send(dataFrame(1, msgRecord(QByteArray(2 << 20, 'o'))));
                } else {
                    QByteArray junk = msgRecord(payload(0, 99, 16));
                    putU32(junk, 42); // an unknown type after a good record
                    junk += "garbage!";
                    client.send(dataFrame(1, junk));
                }
            }
        }
    }
    if (counted == "rejected")
        QTRY_VERIFY_WITH_TIMEOUT(stats(router).connections_rejected > before.connections_rejected,
                                 T_LONG);
    else if (counted == "broken")
        QTRY_VERIFY_WITH_TIMEOUT(stats(router).connections_broken > before.connections_broken, T_LONG);
    if (!reason.isEmpty())
        QTRY_VERIFY2_WITH_TIMEOUT(log.count(reason) >= 1 || rejectionsLogged(log, reason) >= 1,
                                  qPrintable(log.messages().join('\n')), T_LONG);
    FINISH_BYSTANDER(good);
    if (counted != "broken") {
        QVERIFY(victim.untouched());
    } else {
        // What came within the rules: the good record before the bad part,
        // or the frames within the credit; then the notice.
        QTRY_COMPARE(victim.inbox.lost, 1);
        QVERIFY(victim.inbox.messages.size() <= 1);
    }
    // Only the peers that proved the pipe were accepted.
    QCOMPARE(stats(router).connections_accepted,
             before.connections_accepted + (counted == "broken" || kind == "oversized" ? 1u : 0u));
    if (raw >= 0)
        ::close(raw);
    if (kind == "credit") {
        QCOMPARE(mpr_router_stop(router), 0);
        QCOMPARE(mpr_router_set_queue_limit(router, 0), 0);
        QCOMPARE(mpr_router_start(router), 0);
    }
}

// A thousand peers connect and go without a word (bounded: 1000
// connections in all, a few at a time): each costs only itself, the
// bystander keeps flowing, and the descriptors come back.
void tst_Remote::aThousandConnectingPeers()
{
    LogCapture log;
    Bystander good;
    START_BYSTANDER(good, 82);
    char endpoint[256];
    QVERIFY(mpr_router_remote_endpoint(router, endpoint, sizeof endpoint) > 0);
    const QByteArray ep(endpoint);
    const QString host = QString::fromLatin1(ep.mid(6, ep.lastIndexOf(':') - 6));
    const quint16 port = quint16(ep.mid(ep.lastIndexOf(':') + 1).toUInt());
    const int fdsBefore = procEntries("/proc/self/fd").size();
    const mpr_router_stats before = stats(router);
    std::vector<int> open;
    for (int i = 0; i < 1000; i++) {
        int fd = tcpConnect(host, port);
        if (fd >= 0)
            open.push_back(fd);
        if (open.size() >= 50 || i == 999) { // a wave of 50, then they go
            for (int f : open)
                ::close(f);
            open.clear();
        }
    }
    FINISH_BYSTANDER(good);
    // Each counted once, and the warnings do not flood.
    QTRY_COMPARE_WITH_TIMEOUT(stats(router).connections_rejected,
                              before.connections_rejected + 1000, T_LONG);
    QVERIFY(log.count("rejected connection from") <= 5 * 10);
    QTRY_VERIFY_WITH_TIMEOUT(procEntries("/proc/self/fd").size() <= fdsBefore + 2, T_LONG);
    QCOMPARE(stats(router).connections_accepted, quint64(1));
}

// ---- delivery -------------------------------------------------------------------

// mpr_sender_stop returns 0 once the router has taken everything; when the
// router went away first, an error (never 0).
void tst_Remote::stopReturnsZeroOnlyWhenAllIsTaken()
{
#if defined(__SANITIZE_THREAD__)
    QSKIP("ThreadSanitizer: a forked worker cannot start a remote sender's thread "
          "(tests/common/routersuite.cpp)");
#endif
    Pipe p, q;
    QVERIFY(p.open(router));
    QVERIFY(q.open(router));
    // All taken.
    QCOMPARE(sendSequence(p.sender, 2000, 100, 3), 0);
    QCOMPARE(p.inbox.messages.size(), 0); // not routed yet: taken is not routed
    QTRY_VERIFY(p.inbox.isSequence(2000, 100, 3));
    // The router stops before the worker's stop.
    auto *rc = static_cast<std::atomic<int> *>(mmap(nullptr, 2 * sizeof(std::atomic<int>),
                                                    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    QVERIFY(rc != MAP_FAILED);
    new (&rc[0]) std::atomic<int>(1);
    new (&rc[1]) std::atomic<int>(1);
    int go[2];
    QCOMPARE(::pipe(go), 0);
    Child worker;
    mpr_sender *s = q.sender;
    worker.pid = forkWorker([=] {
        ::close(go[1]);
        rc[0] = sendSequence(s, 10, 16, 4, false);
        char byte;
        while (::read(go[0], &byte, 1) < 0 && errno == EINTR) {
        }
        rc[1] = mpr_sender_stop(s);
        return 0;
    });
    ::close(go[0]);
    QTRY_COMPARE(q.inbox.messages.size(), 10);
    LogCapture quiet;
    QCOMPARE(mpr_router_stop(router), 0);
    ::close(go[1]);
    QTRY_VERIFY_WITH_TIMEOUT(worker.exited(), T_LONG);
    QCOMPARE(rc[0].load(), 0);
    QVERIFY2(rc[1].load() == MPR_EPIPE || rc[1].load() == MPR_ETIMEDOUT,
             qPrintable(QString("stop gave %1").arg(rc[1].load())));
    munmap(rc, 2 * sizeof(std::atomic<int>));
    QCOMPARE(mpr_router_start(router), 0);
}

// With a queue limit and a main thread that does not route, a remote
// sender waits (credit) instead of the router buffering without bound.
void tst_Remote::queueLimitHoldsRemoteSenders()
{
#if defined(__SANITIZE_THREAD__)
    QSKIP("ThreadSanitizer: a forked worker cannot start a remote sender's thread "
          "(tests/common/routersuite.cpp)");
#endif
    QCOMPARE(mpr_router_stop(router), 0);
    QCOMPARE(mpr_router_set_queue_limit(router, 64 * 1024), 0);
    QCOMPARE(mpr_router_start(router), 0);
    Pipe p;
    QVERIFY(p.open(router));
    auto *sent = static_cast<std::atomic<int> *>(mmap(nullptr, sizeof(std::atomic<int>),
                                                      PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    QVERIFY(sent != MAP_FAILED);
    new (sent) std::atomic<int>(0);
    const int count = 64 * 1024; // 64 MiB of 1 KiB messages
    Child worker;
    mpr_sender *s = p.sender;
    worker.pid = forkWorker([=] {
        if (mpr_sender_start(s) != 0)
            return 2;
        QByteArray buf(1024, '\0');
        auto *b = reinterpret_cast<unsigned char *>(buf.data());
        for (int i = 0; i < count; i++) {
            mpr_test_fill(b, 1024, uint32_t(i), 7);
            if (mpr_sender_send(s, b, 1024) != 0)
                return 3;
            sent->store(i + 1);
        }
        return mpr_sender_stop(s) == 0 ? 0 : 4;
    });
    // No routing: the worker stops at its credit, its ring and ZeroMQ's
    // queues, far below the whole stream.
    int last = -1, still = 0;
    QElapsedTimer t;
    t.start();
    while (still < 5 && t.elapsed() < T_LONG) {
        sleepMs(50);
        const int now = sent->load();
        still = now == last && now > 0 ? still + 1 : 0;
        last = now;
    }
    QVERIFY2(still >= 5, "the remote sender never waited");
    QVERIFY2(last < count / 2, qPrintable(QString("%1 of %2 sent before waiting").arg(last).arg(count)));
    // Routing lets it finish, everything in order.
    QTRY_VERIFY_WITH_TIMEOUT(worker.exited(), 2 * T_LONG);
    QVERIFY(worker.exitedWith(0));
    QTRY_COMPARE_WITH_TIMEOUT(p.inbox.messages.size(), count, T_LONG);
    QVERIFY(p.inbox.isSequence(count, 1024, 7));
    munmap(sent, sizeof(std::atomic<int>));
}

void tst_Remote::oneSenderPerPipeOverTheNetwork()
{
    LogCapture log;
    Pipe p;
    QVERIFY(p.open(router));
    char text[512];
    QVERIFY(mpr_sender_to_string(p.sender, text, sizeof text) > 0);
    mpr_sender *again = nullptr;
    QCOMPARE(mpr_sender_from_string(&again, text), 0);
    QCOMPARE(mpr_sender_start(p.sender), 0);
    QCOMPARE(mpr_sender_start(again), int(MPR_EALREADY));
    mpr_sender_free(again);
    QCOMPARE(mpr_sender_send(p.sender, "one", 3), 0);
    QCOMPARE(mpr_sender_stop(p.sender), 0);
    QTRY_COMPARE(p.inbox.messages.size(), 1);
    QTRY_VERIFY(log.count("the pipe already had its sender") >= 1);
}

// Four senders flat out with small messages: the sender thread makes many
// small frames, and ZeroMQ's queue (its high-water mark) refuses some.
// Such a frame must wait, in order, not be skipped while later ones go
// out (the router would drop everything after the gap until a resend that
// hits the same limit, and stop would time out).
void tst_Remote::fullZeroMqQueueLosesNoFrame()
{
    const int senders = 4, count = 300000;
    std::vector<std::unique_ptr<Pipe>> pipes;
    for (int i = 0; i < senders; i++) {
        pipes.emplace_back(new Pipe);
        QVERIFY(pipes.back()->open(router));
    }
    const int running = 1; // sendSequence gives 0 or a negative MPR_ code
    std::atomic<int> results[senders];
    std::vector<std::thread> threads;
    for (int i = 0; i < senders; i++) {
        results[i] = running;
        mpr_sender *s = pipes[size_t(i)]->sender;
        threads.emplace_back([s, i, &results] { results[i] = sendSequence(s, count, 32, uint32_t(20 + i)); });
    }
    auto done = [&] {
        for (int i = 0; i < senders; i++) {
            const int r = results[i].load();
            if (r < 0)
                return true; // failed: no use waiting
            if (r == running || pipes[size_t(i)]->inbox.messages.size() < count)
                return false;
        }
        return true;
    };
    QTRY_VERIFY_WITH_TIMEOUT(done(), T_LONG);
    for (auto &t : threads)
        t.join();
    for (int i = 0; i < senders; i++) {
        QCOMPARE(results[i].load(), 0); // stop: the router took it all
        QVERIFY(pipes[size_t(i)]->inbox.isSequence(count, 32, uint32_t(20 + i)));
    }
}

QTEST_GUILESS_MAIN(tst_Remote)
#include "tst_remote.moc"
