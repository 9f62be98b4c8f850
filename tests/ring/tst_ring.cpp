// Hostile and broken shared-memory rings (see src/wire.h for the format).
#include <QtTest>

#include <unistd.h>

#include "rawpeer.h"
#include "testsupport.h"

using namespace mprtest;

namespace {
// Record types and sizes of src/wire.h, restated for C++.
enum { MSG = 1, FRAG_START = 2, FRAG_DATA = 3, PAD = 4, BYE = 5 };
const uint32_t RING_FLAG = 1;
const uint64_t CAP = 64 * 1024;

mpr_router_stats stats(mpr_router *router)
{
    mpr_router_stats s;
    mpr_router_get_stats(router, &s);
    return s;
}
} // namespace

class tst_Ring : public QObject
{
    Q_OBJECT
private slots:
    void init();
    void cleanup();
    void handWrittenRingIsDelivered();
    void badHandshake_data();
    void badHandshake();
    void badRecords_data();
    void badRecords();
    void senderDiesInsideFragmentedMessage();

private:
    // Connect the hostile pipe's hand-made sender with a valid ring.
    bool connectRing(int *fd, hp_ring **ring);
    void checkGoodPipeUnharmed();

    std::unique_ptr<LoopDriver> driver;
    mpr_router *router = nullptr;
    mpr_sender *hostileSender = nullptr, *goodSender = nullptr;
    mpr_receiver *hostileReceiver = nullptr, *goodReceiver = nullptr;
    Inbox hostile, good;
    char name[128];
    uint32_t id = 0;
    unsigned char secret[16];
};

void tst_Ring::init()
{
    driver = makeFdLoopDriver();
    hostile = Inbox();
    good = Inbox();
    QCOMPARE(mpr_router_new(&router, driver->loop()), 0);
    QCOMPARE(mpr_router_set_max_message_size(router, 4096), 0);
    QCOMPARE(mpr_router_start(router), 0);
    QCOMPARE(mpr_router_pipe(router, &hostileSender, &hostileReceiver), 0);
    QCOMPARE(mpr_router_pipe(router, &goodSender, &goodReceiver), 0);
    hostile.attach(hostileReceiver);
    good.attach(goodReceiver);
    char text[256];
    QVERIFY(mpr_sender_to_string(hostileSender, text, sizeof text) > 0);
    QCOMPARE(hp_parse(text, name, sizeof name, &id, secret), 0);
}

void tst_Ring::cleanup()
{
    mpr_router_free(router);
    router = nullptr;
    mpr_sender_free(hostileSender);
    mpr_sender_free(goodSender);
    hostileSender = goodSender = nullptr;
    driver.reset();
}

bool tst_Ring::connectRing(int *fd, hp_ring **ring)
{
    *ring = hp_ring_new(CAP, 1, 0);
    *fd = hp_connect(name);
    uint32_t mode = 0;
    return *ring && *fd >= 0 && hp_handshake(*fd, id, secret, RING_FLAG, hp_ring_fd(*ring), &mode) == 1
           && mode == 1; // MPR__MODE_RING
}

void tst_Ring::checkGoodPipeUnharmed()
{
    QCOMPARE(sendSequence(goodSender, 20, 100, 1), 0);
    QTRY_COMPARE(good.messages.size(), 20);
    QVERIFY(good.isSequence(20, 100, 1));
}

void tst_Ring::handWrittenRingIsDelivered()
{
    // Proves the hand-made sender speaks the protocol: records up to the
    // end of the ring, a PAD, and records after the wrap all arrive.
    int fd;
    hp_ring *ring;
    QVERIFY(connectRing(&fd, &ring));
    QByteArray payload(4000, 'x');
    int sent = 0;
    while (hp_ring_head(ring) + 4008 <= CAP) {
        payload[0] = char(sent++);
        hp_ring_put(ring, MSG, uint32_t(payload.size()), payload.constData(), 1);
    }
    hp_wake(fd);
    QTRY_COMPARE(hostile.messages.size(), sent);
    // Pad to the end and go on from offset 0 (the router has read it all).
    hp_ring_put(ring, PAD, 0, nullptr, 0);
    hp_ring_set_head(ring, CAP);
    hp_ring_put(ring, MSG, 6, "after!", 1); // at offset 0 again
    hp_wake(fd);
    QTRY_COMPARE(hostile.messages.size(), sent + 1);
    QCOMPARE(hostile.messages.last(), QByteArray("after!"));
    hp_ring_free(ring); // unmaps our side only; the router keeps its mapping
    ::close(fd);        // no BYE: a lost sender
    QTRY_COMPARE(hostile.lost, 1);
    QCOMPARE(hostile.messages.size(), sent + 1);
    QCOMPARE(hostile.messages[sent - 1].at(0), char(sent - 1));
    checkGoodPipeUnharmed();
}

void tst_Ring::badHandshake_data()
{
    QTest::addColumn<bool>("withFd");
    QTest::addColumn<bool>("sealed");
    QTest::addColumn<quint64>("cap");
    QTest::addColumn<quint64>("extra");
    QTest::newRow("unsealed memfd (could shrink: SIGBUS)") << true << false << quint64(CAP) << quint64(0);
    QTest::newRow("size not a power of two") << true << true << quint64(CAP) << quint64(100);
    QTest::newRow("ring too small") << true << true << quint64(4096) << quint64(0);
    QTest::newRow("ring too large") << true << true << quint64(32 << 20) << quint64(0);
    QTest::newRow("ring flag without memfd") << false << true << quint64(CAP) << quint64(0);
}

void tst_Ring::badHandshake()
{
    QFETCH(bool, withFd);
    QFETCH(bool, sealed);
    QFETCH(quint64, cap);
    QFETCH(quint64, extra);
#if defined(MPR_PORTABLE)
    if (withFd && !sealed)
        QSKIP("the portable build reads a ring it cannot seal through a window (src/ring.c): "
              "tst_trust hostileRing shrinks one");
#endif
    LogCapture log;
    hp_ring *ring = withFd ? hp_ring_new(cap, sealed, extra) : nullptr;
    QVERIFY(!withFd || ring);
    int fd = hp_connect(name);
    QVERIFY(fd >= 0);
    // Closed after the PROOF that came with the ring, without an ACK.
    QCOMPARE(hp_handshake(fd, id, secret, RING_FLAG, ring ? hp_ring_fd(ring) : -1, nullptr), 0);
    QTRY_COMPARE(log.count("invalid shared-memory ring"), 1);
    QCOMPARE(stats(router).connections_rejected, quint64(1));
    QCOMPARE(stats(router).connections_accepted, quint64(0));
    ::close(fd);
    if (ring)
        hp_ring_free(ring);
    checkGoodPipeUnharmed();
    QCOMPARE(hostile.messages.size(), 0);
}

void tst_Ring::badRecords_data()
{
    QTest::addColumn<QString>("attack");
    QTest::addColumn<QString>("warning");
    QTest::newRow("unknown record type") << "type" << "protocol error";
    QTest::newRow("record longer than published") << "long" << "protocol error";
    QTest::newRow("head beyond the capacity") << "head" << "protocol error";
    QTest::newRow("head not aligned") << "align" << "protocol error";
    QTest::newRow("fragment without start") << "nostart" << "protocol error";
    QTest::newRow("fragment longer than announced") << "overrun" << "protocol error";
    QTest::newRow("message over the maximum") << "big" << "larger than the router accepts";
    QTest::newRow("fragmented message over the maximum") << "bigfrag"
                                                          << "larger than the router accepts";
    QTest::newRow("record after BYE") << "afterbye" << "protocol error";
}

void tst_Ring::badRecords()
{
    QFETCH(QString, attack);
    QFETCH(QString, warning);
    LogCapture log;
    int fd;
    hp_ring *ring;
    QVERIFY(connectRing(&fd, &ring));
    // One good message first: it must arrive, and nothing after the attack.
    hp_ring_put(ring, MSG, 5, "hello", 1);
    hp_wake(fd);
    QTRY_COMPARE(hostile.messages.size(), 1);
    const uint64_t head = hp_ring_head(ring);
    const unsigned char total[8] = {10, 0, 0, 0, 0, 0, 0, 0};
    QByteArray bytes(4096 + 8, 'y');
    if (attack == "type") {
        hp_ring_put(ring, 99, 8, "12345678", 1);
    } else if (attack == "long") {
        hp_ring_put(ring, MSG, 1000, bytes.constData(), 0);
        hp_ring_set_head(ring, head + 16);
    } else if (attack == "head") {
        hp_ring_set_head(ring, head + CAP + 8);
    } else if (attack == "align") {
        hp_ring_put(ring, MSG, 8, "12345678", 0);
        hp_ring_set_head(ring, head + 3);
    } else if (attack == "nostart") {
        hp_ring_put(ring, FRAG_DATA, 8, "12345678", 1);
    } else if (attack == "overrun") {
        hp_ring_put(ring, FRAG_START, 8, total, 1);
        hp_ring_put(ring, FRAG_DATA, 16, bytes.constData(), 1);
    } else if (attack == "big") {
        hp_ring_put(ring, MSG, 4097, bytes.constData(), 1);
    } else if (attack == "bigfrag") {
        const unsigned char over[8] = {1, 16, 0, 0, 0, 0, 0, 0}; // 4097
        hp_ring_put(ring, FRAG_START, 8, over, 1);
    } else if (attack == "afterbye") {
        hp_ring_put(ring, BYE, 0, nullptr, 1);
        hp_ring_put(ring, MSG, 5, "after", 1);
    }
    hp_wake(fd);
    QTRY_VERIFY(hp_closed(fd));
    QTRY_COMPARE(log.count(warning), 1);
    QCOMPARE(log.count(QString("pipe #%1: closing connection").arg(id)), 1);
    QTRY_COMPARE(hostile.lost, 1);
    QCOMPARE(hostile.messages.size(), 1);
    QCOMPARE(hostile.messages[0], QByteArray("hello"));
    QCOMPARE(stats(router).connections_broken, quint64(1));
    ::close(fd);
    hp_ring_free(ring);
    checkGoodPipeUnharmed();
}

void tst_Ring::senderDiesInsideFragmentedMessage()
{
    LogCapture log;
    int fd;
    hp_ring *ring;
    QVERIFY(connectRing(&fd, &ring));
    hp_ring_put(ring, MSG, 5, "whole", 1);
    const unsigned char total[8] = {0, 16, 0, 0, 0, 0, 0, 0}; // 4096 bytes
    hp_ring_put(ring, FRAG_START, 8, total, 1);
    hp_ring_put(ring, FRAG_DATA, 1000, QByteArray(1000, 'z').constData(), 1);
    hp_wake(fd);
    ::close(fd); // dies here
    QTRY_COMPARE(hostile.lost, 1);
    QCOMPARE(hostile.messages.size(), 1);
    QCOMPARE(log.count("discarding 1000 of 4096 bytes"), 1);
    QCOMPARE(stats(router).connections_broken, quint64(1));
    hp_ring_free(ring);
    checkGoodPipeUnharmed();
}

QTEST_GUILESS_MAIN(tst_Ring)
#include "tst_ring.moc"
