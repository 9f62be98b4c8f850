/*
 * tst_qtapi - mpr::Router and mpr::Receiver under a QCoreApplication, with
 * real worker processes made by fork(). The children call nothing but
 * mpr_sender_start/send/stop and _exit (their messages are prepared by the
 * parent before the fork).
 */
#include "mprouter_qt.h"

#include <QtCore/QDateTime>
#include <QtCore/QLoggingCategory>
#include <QtCore/QMutex>
#include <QtCore/QPointer>
#include <QtCore/QRegularExpression>
#include <QtCore/QThread>
#include <QtTest/QSignalSpy>
#include <QtTest/QtTest>

#include <functional>

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

// A forked worker process; killed and reaped if the test leaves early.
class Worker
{
public:
    // Fork a child that runs body(sender) and exits with its result.
    // The parent frees its copy of the sender.
    Worker(mpr_sender *sender, const std::function<int(mpr_sender *)> &body)
    {
        m_pid = fork();
        if (m_pid == 0) {
            alarm(60); // never outlive a broken test run
            _exit(body(sender));
        }
        mpr_sender_free(sender);
    }
    ~Worker()
    {
        if (m_pid > 0) {
            kill(m_pid, SIGKILL);
            waitpid(m_pid, nullptr, 0);
        }
    }
    bool started() const { return m_pid > 0; }
    pid_t pid() const { return m_pid; }
    // Reap the child if it has exited; true once reaped.
    bool reaped()
    {
        if (m_pid <= 0)
            return true;
        if (waitpid(m_pid, &m_status, WNOHANG) != m_pid)
            return false;
        m_pid = 0;
        return true;
    }
    int status() const { return m_status; }

private:
    Q_DISABLE_COPY(Worker)
    pid_t m_pid = -1;
    int m_status = 0;
};

// Start, send every message, stop: 0 or the first error (as exit code).
int sendAll(mpr_sender *sender, const QList<QByteArray> &messages)
{
    int rc = mpr_sender_start(sender);
    for (int i = 0; rc == 0 && i < messages.size(); ++i)
        rc = mpr_sender_send(sender, messages.at(i).constData(), size_t(messages.at(i).size()));
    if (rc == 0)
        rc = mpr_sender_stop(sender);
    return rc == 0 ? 0 : 100;
}

// count messages "i:" followed by filler; their sizes cycle through sizes.
QList<QByteArray> makeMessages(int count, const QVector<int> &sizes)
{
    QList<QByteArray> messages;
    for (int i = 0; i < count; ++i) {
        QByteArray m(sizes.at(i % sizes.size()), char('a' + i % 26));
        const QByteArray tag = QByteArray::number(i) + ':';
        if (m.size() >= tag.size())
            m.replace(0, tag.size(), tag);
        messages.append(m);
    }
    return messages;
}

QList<QByteArray> makeMessages(int count, int size)
{
    return makeMessages(count, QVector<int>{size});
}

// Everything logged through Qt while installed, and passed on to QtTest's
// handler (so QTest::ignoreMessage still works). mprouter may log from its
// monitor thread: logRecords is guarded by logMutex; read it with logged().
struct LogRecord
{
    QtMsgType type;
    QByteArray category;
    QString message;
};
QList<LogRecord> logRecords;
QMutex logMutex;
QtMessageHandler previousHandler = nullptr;

QList<LogRecord> logged()
{
    QMutexLocker lock(&logMutex);
    return logRecords;
}

// How many warnings containing text went through the "mprouter" category.
int warningsLogged(const QString &text)
{
    int n = 0;
    for (const LogRecord &r : logged())
        n += r.message.contains(text) && r.category == "mprouter" && r.type == QtWarningMsg;
    return n;
}

void recordMessage(QtMsgType type, const QMessageLogContext &context, const QString &message)
{
    {
        QMutexLocker lock(&logMutex);
        logRecords.append({type, QByteArray(context.category ? context.category : ""), message});
    }
    if (previousHandler)
        previousHandler(type, context, message);
}

} // namespace

class tst_QtApi : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void cleanup();
    void startStopErrors();
    void messagesInOrderOnMainThread_data();
    void messagesInOrderOnMainThread();
    void senderLost();
    void closePipeFromSlot();
    void keptCopiesNeverChange();
    void deleteReceiverFromSlot();
    void routeUntil();
    void variantRoundTrip_data();
    void variantRoundTrip();
    void decodeGarbage();
    void warningsGoToLoggingCategory_data();
    void warningsGoToLoggingCategory();
    void loggingRulesSilenceWarnings();
};

void tst_QtApi::init()
{
    QMutexLocker lock(&logMutex);
    logRecords.clear();
    previousHandler = qInstallMessageHandler(recordMessage);
}

void tst_QtApi::cleanup()
{
    qInstallMessageHandler(previousHandler);
    previousHandler = nullptr;
    QLoggingCategory::setFilterRules(QString());
}

void tst_QtApi::startStopErrors()
{
    mpr::Router router;
    QVERIFY(router.handle());
    QVERIFY(!router.isRunning());
    mpr_sender *sender = nullptr;
    mpr::Receiver *receiver = nullptr;
    QCOMPARE(router.stop(), int(MPR_ESTATE));
    QCOMPARE(router.pipe(&sender, &receiver), int(MPR_ESTATE));
    QVERIFY(!sender);
    QVERIFY(!receiver);

    QCOMPARE(router.start(), 0);
    QVERIFY(router.isRunning());
    QCOMPARE(router.start(), int(MPR_EALREADY));
    QCOMPARE(router.closePipe(nullptr), int(MPR_ENOENT));
    QCOMPARE(router.pipe(nullptr, &receiver), int(MPR_EINVAL));

    QCOMPARE(router.pipe(&sender, &receiver), 0);
    QVERIFY(sender);
    QVERIFY(receiver);
    QCOMPARE(receiver->parent(), &router);
    QCOMPARE(receiver->id(), mpr_sender_id(sender));
    QVERIFY(receiver->id() >= 1);
    QVERIFY(receiver->isOpen());
    QPointer<mpr::Receiver> watch(receiver);
    QCOMPARE(router.closePipe(receiver), 0);
    QVERIFY(!receiver->isOpen());
    QCOMPARE(router.closePipe(receiver), int(MPR_ENOENT));
    QTRY_VERIFY(watch.isNull()); // deleted later
    mpr_sender_free(sender);

    QCOMPARE(router.stop(), 0);
    QVERIFY(!router.isRunning());
    QVERIFY(logged().isEmpty()); // no pipes left open: no warning
    QVERIFY(!mpr::Router::errorString(MPR_ESTATE).isEmpty());
}

void tst_QtApi::messagesInOrderOnMainThread_data()
{
    QTest::addColumn<int>("count");
    QTest::addColumn<int>("size");

    QTest::newRow("one message") << 1 << 16;
    QTest::newRow("empty messages") << 10 << 0;
    QTest::newRow("1000 small messages") << 1000 << 40;
    QTest::newRow("4 x 2 MiB") << 4 << (2 << 20);
}

void tst_QtApi::messagesInOrderOnMainThread()
{
    QFETCH(int, count);
    QFETCH(int, size);
    const QList<QByteArray> messages = makeMessages(count, size);

    mpr::Router router;
    QCOMPARE(router.start(), 0);
    mpr_sender *sender = nullptr;
    mpr::Receiver *receiver = nullptr;
    QCOMPARE(router.pipe(&sender, &receiver), 0);

    QSignalSpy messageSpy(receiver, &mpr::Receiver::messageReceived);
    QVERIFY(messageSpy.isValid());
    QSignalSpy lostSpy(receiver, &mpr::Receiver::senderLost);
    QVERIFY(lostSpy.isValid());
    bool offMainThread = false;
    connect(receiver, &mpr::Receiver::messageReceived, this, [&] {
        if (QThread::currentThread() != QCoreApplication::instance()->thread())
            offMainThread = true;
    });

    Worker worker(sender, [&](mpr_sender *s) { return sendAll(s, messages); });
    QVERIFY(worker.started());

    QTRY_COMPARE_WITH_TIMEOUT(messageSpy.count(), count, 20000);
    QTRY_VERIFY(worker.reaped());
    QVERIFY(WIFEXITED(worker.status()));
    QCOMPARE(WEXITSTATUS(worker.status()), 0);
    for (int i = 0; i < count; ++i) {
        const QByteArray got = messageSpy.at(i).at(0).toByteArray();
        if (got != messages.at(i))
            QFAIL(qPrintable(QStringLiteral("message %1 of %2 differs (size %3, expected %4)")
                                 .arg(i).arg(count).arg(got.size()).arg(messages.at(i).size())));
    }
    QVERIFY(!offMainThread);
    QCOMPARE(lostSpy.count(), 0); // the worker stopped its sender properly

    QCOMPARE(router.closePipe(receiver), 0);
    QCOMPARE(router.stop(), 0);
}

// A worker killed with SIGKILL: its messages arrive, then senderLost, once;
// a worker on another pipe that stopped properly loses nothing.
void tst_QtApi::senderLost()
{
    mpr::Router router;
    QCOMPARE(router.start(), 0);
    mpr_sender *goodSender = nullptr, *doomedSender = nullptr;
    mpr::Receiver *good = nullptr, *doomed = nullptr;
    QCOMPARE(router.pipe(&goodSender, &good), 0);
    QCOMPARE(router.pipe(&doomedSender, &doomed), 0);

    QStringList events;
    connect(good, &mpr::Receiver::messageReceived, this,
            [&](const QByteArray &m) { events << QStringLiteral("good:") + QString::fromLatin1(m); });
    connect(good, &mpr::Receiver::senderLost, this, [&] { events << QStringLiteral("good:lost"); });
    connect(doomed, &mpr::Receiver::messageReceived, this,
            [&](const QByteArray &m) { events << QStringLiteral("doomed:") + QString::fromLatin1(m); });
    connect(doomed, &mpr::Receiver::senderLost, this, [&] { events << QStringLiteral("doomed:lost"); });
    QSignalSpy lostSpy(doomed, &mpr::Receiver::senderLost);
    QVERIFY(lostSpy.isValid());
    QSignalSpy goodLostSpy(good, &mpr::Receiver::senderLost);
    QVERIFY(goodLostSpy.isValid());

    const QList<QByteArray> three = {"1", "2", "3"};
    Worker goodWorker(goodSender, [&](mpr_sender *s) { return sendAll(s, three); });
    Worker doomedWorker(doomedSender, [&](mpr_sender *s) {
        int rc = mpr_sender_start(s);
        for (const QByteArray &m : three)
            if (rc == 0)
                rc = mpr_sender_send(s, m.constData(), size_t(m.size()));
        for (;;)
            pause(); // until killed
        return rc;
    });
    QVERIFY(goodWorker.started());
    QVERIFY(doomedWorker.started());

    QTRY_COMPARE(events.count(QStringLiteral("doomed:3")), 1);
    QTRY_VERIFY(goodWorker.reaped());
    QCOMPARE(lostSpy.count(), 0); // still connected
    QCOMPARE(kill(doomedWorker.pid(), SIGKILL), 0);
    QTRY_VERIFY(doomedWorker.reaped());
    QVERIFY(WIFSIGNALED(doomedWorker.status()));

    QTRY_COMPARE(lostSpy.count(), 1);
    QTRY_COMPARE(events.count(QStringLiteral("good:3")), 1);
    const QStringList doomedEvents = events.filter(QStringLiteral("doomed:"));
    QCOMPARE(doomedEvents, QStringList({QStringLiteral("doomed:1"), QStringLiteral("doomed:2"),
                                        QStringLiteral("doomed:3"), QStringLiteral("doomed:lost")}));
    QCOMPARE(goodLostSpy.count(), 0);

    QCOMPARE(router.closePipe(good), 0);
    QCOMPARE(router.closePipe(doomed), 0);
    QCOMPARE(router.stop(), 0);
}

// A slot may close its own pipe; later messages are dropped (the core warns
// "discarding message from closed pipe"), the receiver is deleted later and
// nothing crashes.
void tst_QtApi::closePipeFromSlot()
{
    mpr::Router router;
    QCOMPARE(router.start(), 0);
    mpr_sender *sender = nullptr;
    mpr::Receiver *receiver = nullptr;
    QCOMPARE(router.pipe(&sender, &receiver), 0);
    QPointer<mpr::Receiver> watch(receiver);
    int received = 0;
    connect(receiver, &mpr::Receiver::messageReceived, this, [&] {
        ++received;
        QCOMPARE(router.closePipe(receiver), 0);
    });

    // A second pipe, sent to after the first one's messages, tells us when
    // the first worker's messages have all been handled by the router.
    mpr_sender *marker = nullptr;
    mpr::Receiver *markerReceiver = nullptr;
    QCOMPARE(router.pipe(&marker, &markerReceiver), 0);
    QSignalSpy markerSpy(markerReceiver, &mpr::Receiver::messageReceived);
    QVERIFY(markerSpy.isValid());

    const QList<QByteArray> messages = makeMessages(5, 8);
    const QString discarding = QStringLiteral("discarding message from closed pipe #%1")
                                   .arg(receiver->id());
    for (int i = 1; i < messages.size(); ++i)
        QTest::ignoreMessage(QtWarningMsg, QRegularExpression(QRegularExpression::escape(discarding)));
    Worker worker(sender, [&](mpr_sender *s) { return sendAll(s, messages); });
    QTRY_VERIFY(worker.reaped());
    QCOMPARE(worker.status(), 0);
    Worker markerWorker(marker, [&](mpr_sender *s) { return sendAll(s, {"done"}); });
    QTRY_COMPARE(markerSpy.count(), 1);
    QTRY_VERIFY(watch.isNull());
    QCOMPARE(received, 1);
    // Every dropped message was reported, through the "mprouter" category.
    QTRY_COMPARE(warningsLogged(discarding), messages.size() - 1);
    QTRY_VERIFY(markerWorker.reaped());
    QCOMPARE(router.closePipe(markerReceiver), 0);
    QCOMPARE(router.stop(), 0);
}

// The Receiver reuses its buffer for the next message when no slot kept the
// last one. Messages of changing sizes (growing, shrinking, empty, large)
// must each arrive intact, and copies a slot kept must never change when
// later messages arrive.
void tst_QtApi::keptCopiesNeverChange()
{
    const QList<QByteArray> messages =
        makeMessages(120, {40, 3000, 17000, 100000, 0, 5, 2 << 20, 64, 64, 20000, 1});

    mpr::Router router;
    QCOMPARE(router.start(), 0);
    mpr_sender *sender = nullptr;
    mpr::Receiver *receiver = nullptr;
    QCOMPARE(router.pipe(&sender, &receiver), 0);
    int next = 0, wrong = -1;
    QList<QPair<int, QByteArray>> kept;
    connect(receiver, &mpr::Receiver::messageReceived, this, [&](const QByteArray &m) {
        if (wrong < 0 && (next >= messages.size() || m != messages.at(next)))
            wrong = next;
        if (next % 3 == 0)
            kept.append(qMakePair(next, m)); // shares the buffer
        ++next;
    });

    Worker worker(sender, [&](mpr_sender *s) { return sendAll(s, messages); });
    QVERIFY(worker.started());
    QTRY_COMPARE_WITH_TIMEOUT(next, messages.size(), 20000);
    QTRY_VERIFY(worker.reaped());
    QCOMPARE(worker.status(), 0);
    QCOMPARE(wrong, -1);
    QCOMPARE(kept.size(), (messages.size() + 2) / 3);
    for (const auto &k : kept)
        if (k.second != messages.at(k.first))
            QFAIL(qPrintable(QStringLiteral("kept copy of message %1 changed").arg(k.first)));
    QCOMPARE(router.closePipe(receiver), 0);
    QCOMPARE(router.stop(), 0);
}

// A slot may even delete its receiver outright: the message it got stays
// valid to the end of the emission, and nothing crashes (ASan runs this).
void tst_QtApi::deleteReceiverFromSlot()
{
    mpr::Router router;
    QCOMPARE(router.start(), 0);
    mpr_sender *sender = nullptr;
    mpr::Receiver *receiver = nullptr;
    QCOMPARE(router.pipe(&sender, &receiver), 0);
    const QByteArray big(300000, 'x'); // a buffer the receiver would keep
    QByteArray seen;
    connect(receiver, &mpr::Receiver::messageReceived, this, [&](const QByteArray &m) {
        delete receiver;
        receiver = nullptr;
        seen = QByteArray(m.constData(), m.size()); // a deep copy, after the delete
    });

    // The second message finds the pipe closed.
    const QString discarding = QStringLiteral("discarding message from closed pipe #%1")
                                   .arg(receiver->id());
    QTest::ignoreMessage(QtWarningMsg, QRegularExpression(QRegularExpression::escape(discarding)));
    Worker worker(sender, [&](mpr_sender *s) { return sendAll(s, {big, big}); });
    QVERIFY(worker.started());
    QTRY_COMPARE_WITH_TIMEOUT(seen.size(), big.size(), 20000);
    QCOMPARE(seen, big);
    QVERIFY(!receiver);
    QTRY_VERIFY(worker.reaped());
    QTRY_COMPARE(warningsLogged(discarding), 1);
    QCOMPARE(router.stop(), 0); // no unclosed pipe: the delete closed it
}

void tst_QtApi::routeUntil()
{
    mpr::Router router;
    QCOMPARE(router.start(), 0);
    mpr_sender *sender = nullptr;
    mpr::Receiver *receiver = nullptr;
    QCOMPARE(router.pipe(&sender, &receiver), 0);
    QSignalSpy spy(receiver, &mpr::Receiver::messageReceived);
    QVERIFY(spy.isValid());

    const QList<QByteArray> messages = makeMessages(5, 10);
    Worker worker(sender, [&](mpr_sender *s) { return sendAll(s, messages); });
    QCOMPARE(router.routeUntil([&] { return spy.count() == 5; }, 30.0), 0);
    QCOMPARE(spy.count(), 5);
    for (int i = 0; i < 5; ++i)
        QCOMPARE(spy.at(i).at(0).toByteArray(), messages.at(i));

    QCOMPARE(router.routeUntil([] { return false; }, 0.05), int(MPR_ETIMEDOUT));
    QCOMPARE(router.routeUntil(std::function<bool()>(), 0), int(MPR_EINVAL));
    QTRY_VERIFY(worker.reaped());
    QCOMPARE(router.closePipe(receiver), 0);
    QCOMPARE(router.stop(), 0);
}

void tst_QtApi::variantRoundTrip_data()
{
    QTest::addColumn<QVariant>("value");

    QTest::newRow("int") << QVariant(42);
    QTest::newRow("double") << QVariant(2.5);
    QTest::newRow("string") << QVariant(QStringLiteral("h\u00e9llo"));
    QTest::newRow("bytes") << QVariant(QByteArray("\0\1\2", 3));
    QTest::newRow("list") << QVariant(QVariantList{1, QStringLiteral("two"), 3.0});
    QTest::newRow("map") << QVariant(QVariantMap{{QStringLiteral("progress"), 0.5},
                                                 {QStringLiteral("state"), QStringLiteral("running")}});
    QTest::newRow("date-time") << QVariant(QDateTime::fromMSecsSinceEpoch(1234567890123, Qt::UTC));
    QTest::newRow("null string") << QVariant(QString());
}

void tst_QtApi::variantRoundTrip()
{
    QFETCH(QVariant, value);
    const QByteArray bytes = mpr::encodeVariant(value);
    QVERIFY(!bytes.isEmpty());
    const QVariant back = mpr::decodeVariant(bytes);
    QCOMPARE(back.userType(), value.userType());
    QCOMPARE(back, value);
}

void tst_QtApi::decodeGarbage()
{
    QVERIFY(!mpr::decodeVariant(QByteArray()).isValid());
    QByteArray truncated = mpr::encodeVariant(QStringLiteral("a long enough string"));
    truncated.chop(3);
    QVERIFY(!mpr::decodeVariant(truncated).isValid());
    QByteArray trailing = mpr::encodeVariant(7) + "x";
    QVERIFY(!mpr::decodeVariant(trailing).isValid());
}

void tst_QtApi::warningsGoToLoggingCategory_data()
{
    QTest::addColumn<int>("pipes");
    QTest::addColumn<int>("closed");  // by closePipe
    QTest::addColumn<int>("deleted"); // by deleting the Receiver
    QTest::addColumn<QString>("expected"); // empty: no warning

    QTest::newRow("two open pipes") << 2 << 0 << 0 << QStringLiteral("\\b2 unclosed pipes");
    QTest::newRow("one of three left open") << 3 << 1 << 1 << QStringLiteral("\\b1 unclosed pipe");
    QTest::newRow("all closed") << 2 << 1 << 1 << QString();
}

void tst_QtApi::warningsGoToLoggingCategory()
{
    QFETCH(int, pipes);
    QFETCH(int, closed);
    QFETCH(int, deleted);
    QFETCH(QString, expected);

    mpr::Router router;
    QCOMPARE(router.start(), 0);
    QList<mpr::Receiver *> receivers;
    for (int i = 0; i < pipes; ++i) {
        mpr_sender *sender = nullptr;
        mpr::Receiver *receiver = nullptr;
        QCOMPARE(router.pipe(&sender, &receiver), 0);
        mpr_sender_free(sender);
        receivers << receiver;
    }
    for (int i = 0; i < closed; ++i)
        QCOMPARE(router.closePipe(receivers.takeFirst()), 0);
    for (int i = 0; i < deleted; ++i)
        delete receivers.takeFirst();

    QVERIFY(logged().isEmpty());
    if (!expected.isEmpty())
        QTest::ignoreMessage(QtWarningMsg, QRegularExpression(expected));
    QCOMPARE(router.stop(), 0);

    if (expected.isEmpty()) {
        QVERIFY(logged().isEmpty());
    } else {
        QCOMPARE(logged().size(), 1);
        QCOMPARE(logged().at(0).type, QtWarningMsg);
        QCOMPARE(logged().at(0).category, QByteArray("mprouter"));
    }
}

void tst_QtApi::loggingRulesSilenceWarnings()
{
    QLoggingCategory::setFilterRules(QStringLiteral("mprouter.warning=false"));
    mpr::Router router;
    QCOMPARE(router.start(), 0);
    mpr_sender *sender = nullptr;
    mpr::Receiver *receiver = nullptr;
    QCOMPARE(router.pipe(&sender, &receiver), 0);
    mpr_sender_free(sender);
    QCOMPARE(router.stop(), 0); // 1 unclosed pipe, silenced
    QVERIFY(logged().isEmpty());

    QLoggingCategory::setFilterRules(QString());
    QCOMPARE(router.start(), 0);
    QCOMPARE(router.pipe(&sender, &receiver), 0);
    mpr_sender_free(sender);
    QTest::ignoreMessage(QtWarningMsg, QRegularExpression(QStringLiteral("unclosed pipe")));
    QCOMPARE(router.stop(), 0); // heard again: the rule made the difference
    QCOMPARE(logged().size(), 1);
}

QTEST_GUILESS_MAIN(tst_QtApi)
#include "tst_qtapi.moc"
