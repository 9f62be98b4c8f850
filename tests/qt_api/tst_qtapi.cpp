/*
 * tst_qtapi - mpr::Router and mpr::Receiver under a QCoreApplication, with
 * real worker processes made by fork(). The children call nothing but
 * mpr_sender_start/send/stop and _exit (their messages are prepared by the
 * parent before the fork).
 */
#include "mprouter_qt.h"

#include <QtCore/QBitArray>
#include <QtCore/QDataStream>
#include <QtCore/QDateTime>
#include <QtCore/QLine>
#include <QtCore/QLoggingCategory>
#include <QtCore/QMutex>
#include <QtCore/QPoint>
#include <QtCore/QPointer>
#include <QtCore/QRect>
#include <QtCore/QRegularExpression>
#include <QtCore/QSize>
#include <QtCore/QThread>
#include <QtCore/QUrl>
#include <QtCore/QUuid>
#include <QtTest/QSignalSpy>
#include <QtTest/QtTest>

#include <functional>
#include <limits>

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
    void wayBack();
    void closePipeFromSlot();
    void keptCopiesNeverChange();
    void deleteReceiverFromSlot();
    void deleteRouterFromSlot_data();
    void deleteRouterFromSlot();
    void routeUntil();
    void variantRoundTrip_data();
    void variantRoundTrip();
    void decodeTruncatedOrExtended_data();
    void decodeTruncatedOrExtended();
    void decodeRejects_data();
    void decodeRejects();
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

// The way back through mpr::Receiver: send() reaches mpr_sender_recv in the
// worker whole and in order, the worker answers each; cancel() reaches
// mpr_sender_cancelled; a closed receiver refuses both with MPR_ENOENT.
void tst_QtApi::wayBack()
{
    mpr::Router router;
    QCOMPARE(router.start(), 0);
    mpr_sender *sender = nullptr;
    mpr::Receiver *receiver = nullptr;
    QCOMPARE(router.pipe(&sender, &receiver), 0);
    QList<QByteArray> got;
    connect(receiver, &mpr::Receiver::messageReceived, this,
            [&](const QByteArray &m) { got << m; });
    const QList<QByteArray> jobs = {"first", QByteArray(), QByteArray(300000, 'x'), "last"};
    for (const QByteArray &j : jobs)
        QCOMPARE(receiver->send(j), 0);
    Worker worker(sender, [&](mpr_sender *s) {
        int rc = mpr_sender_start(s);
        QByteArray buf(int(MPR_CONTROL_MAX_SIZE), '\0');
        for (int i = 0; i < jobs.size() && rc == 0; i++) {
            size_t len = 0;
            rc = mpr_sender_recv(s, buf.data(), size_t(buf.size()), &len, 30);
            if (rc == 0)
                rc = mpr_sender_send(s, buf.constData(), len);
        }
        // Then wait (bounded) for the cancel request, and say which tag came.
        uint64_t tag = 0;
        for (int i = 0; i < 300000 && rc == 0 && (tag = mpr_sender_cancelled(s)) == 0; i++)
            usleep(100);
        if (rc == 0) {
            const QByteArray said = "cancelled " + QByteArray::number(qulonglong(tag));
            rc = mpr_sender_send(s, said.constData(), size_t(said.size()));
        }
        return rc == 0 ? mpr_sender_stop(s) : rc;
    });
    QVERIFY(worker.started());
    QTRY_COMPARE_WITH_TIMEOUT(got.size(), jobs.size(), 30000);
    QCOMPARE(got, jobs);
    QCOMPARE(receiver->cancel(0), int(MPR_EINVAL));
    QCOMPARE(receiver->cancel(42), 0);
    QTRY_COMPARE_WITH_TIMEOUT(got.size(), jobs.size() + 1, 30000);
    QCOMPARE(got.last(), QByteArray("cancelled 42"));
    QTRY_VERIFY(worker.reaped());
    QVERIFY(WIFEXITED(worker.status()) && WEXITSTATUS(worker.status()) == 0);
    QCOMPARE(receiver->send(QByteArray(int(MPR_CONTROL_MAX_SIZE) + 1, 'y')), int(MPR_EMSGSIZE));
    QCOMPARE(router.closePipe(receiver), 0);
    QCOMPARE(receiver->send("late"), int(MPR_ENOENT));
    QCOMPARE(receiver->cancel(1), int(MPR_ENOENT));
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

void tst_QtApi::deleteRouterFromSlot_data()
{
    QTest::addColumn<bool>("lost"); // from senderLost, else from messageReceived
    QTest::newRow("messageReceived") << false;
    QTest::newRow("senderLost") << true;
}

// Qt programmers delete objects from slots: deleting the Router while one
// of its receivers emits (the C router is freed inside its own dispatch)
// stops it, frees it when dispatch has unwound, deletes the receivers, and
// nothing more is emitted. The sanitizer stages make sure nothing freed is
// touched.
void tst_QtApi::deleteRouterFromSlot()
{
    QFETCH(bool, lost);
    auto *router = new mpr::Router;
    QCOMPARE(router->start(), 0);
    mpr_sender *sender = nullptr, *other = nullptr;
    mpr::Receiver *receiver = nullptr, *second = nullptr;
    QCOMPARE(router->pipe(&sender, &receiver), 0);
    QCOMPARE(router->pipe(&other, &second), 0);
    QPointer<mpr::Receiver> watch(receiver), watchSecond(second);
    int emitted = 0;
    auto deleteIt = [&] {
        emitted++;
        delete router;
        router = nullptr;
    };
    if (lost)
        connect(receiver, &mpr::Receiver::senderLost, this, deleteIt);
    else
        connect(receiver, &mpr::Receiver::messageReceived, this, deleteIt);
    connect(second, &mpr::Receiver::messageReceived, this, [&] { emitted++; });
    QTest::ignoreMessage(QtWarningMsg, QRegularExpression("2 unclosed pipes"));
    Worker worker(sender, [&](mpr_sender *s) {
        int rc = mpr_sender_start(s);
        for (const char *m : {"one", "two", "three"})
            if (rc == 0)
                rc = mpr_sender_send(s, m, strlen(m));
        if (lost)
            raise(SIGKILL); // no stop: the receiver emits senderLost
        return rc == 0 && mpr_sender_stop(s) == 0 ? 0 : 1;
    });
    QVERIFY(worker.started());
    QTRY_VERIFY(!router);
    QTRY_VERIFY(worker.reaped());
    QTRY_VERIFY(!watch && !watchSecond); // the receivers went with it
    // The second pipe's worker finds its router gone.
    Worker late(other, [&](mpr_sender *s) { return sendAll(s, {"late"}); });
    QVERIFY(late.started());
    QTRY_VERIFY(late.reaped());
    QCoreApplication::processEvents();
    QCOMPARE(emitted, 1); // nothing after the delete
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

// ------------------------------------------------------------ QVariant codec

namespace {

// Bytes written by hand in a QDataStream of encodeVariant's settings
// (version Qt_5_12, big-endian, doubles of 8 bytes).
QByteArray streamed(const std::function<void(QDataStream &)> &write)
{
    QByteArray bytes;
    QDataStream out(&bytes, QIODevice::WriteOnly);
    out.setVersion(QDataStream::Qt_5_12);
    write(out);
    return bytes;
}

// Bytes from hex digits (spaces, for reading, are skipped).
QByteArray hex(const char *digits)
{
    return QByteArray::fromHex(digits);
}

// depth - 1 QVariantLists of one element around inner: with a container
// inner, depth containers nested one in another.
QVariant nested(int depth, const QVariant &inner)
{
    QVariant value = inner;
    for (int i = 1; i < depth; ++i)
        value = QVariantList{value};
    return value;
}

// Julian days: QDate's last valid day, 1970-01-01, and how far from it a
// QDateTime's date may lie (mprouter_qt.h).
const qint64 MaxJulianDay = Q_INT64_C(784354017364);
const qint64 EpochJulianDay = 2440588;
const qint64 DateTimeMaxDays = Q_INT64_C(100000000000);

} // namespace

// One value of every type decodeVariant accepts (mprouter_qt.h), and
// containers of them; the truncation test uses these rows too.
void tst_QtApi::variantRoundTrip_data()
{
    QTest::addColumn<QVariant>("value");

    QTest::newRow("int") << QVariant(42);
    QTest::newRow("int min") << QVariant(std::numeric_limits<int>::min());
    QTest::newRow("uint") << QVariant(4000000000u);
    QTest::newRow("qlonglong") << QVariant(Q_INT64_C(-1234567890123));
    QTest::newRow("qulonglong") << QVariant(std::numeric_limits<qulonglong>::max());
    QTest::newRow("bool true") << QVariant(true);
    QTest::newRow("bool false") << QVariant(false);
    QTest::newRow("double") << QVariant(2.5);
    QTest::newRow("double -0") << QVariant(-0.0);
    QTest::newRow("double inf") << QVariant(std::numeric_limits<double>::infinity());
    QTest::newRow("double denormal") << QVariant(std::numeric_limits<double>::denorm_min());
    QTest::newRow("float") << QVariant::fromValue(1.25f);
    QTest::newRow("long") << QVariant::fromValue(-5L);
    QTest::newRow("ulong") << QVariant::fromValue(5UL);
    QTest::newRow("short") << QVariant::fromValue(short(-300));
    QTest::newRow("ushort") << QVariant::fromValue(ushort(60000));
    QTest::newRow("char") << QVariant::fromValue('x');
    QTest::newRow("signed char") << QVariant::fromValue(static_cast<signed char>(-100));
    QTest::newRow("uchar") << QVariant::fromValue(static_cast<uchar>(200));
    QTest::newRow("QChar") << QVariant(QChar(0x263a));
    QTest::newRow("nullptr") << QVariant::fromValue(nullptr);
    QTest::newRow("string") << QVariant(QStringLiteral("h\u00e9llo"));
    QTest::newRow("string beyond the BMP") << QVariant(QString::fromUtf8("\xf0\x9f\x98\x80 ok"));
    QTest::newRow("null string") << QVariant(QString());
    QTest::newRow("empty string") << QVariant(QString(QLatin1String("")));
    QTest::newRow("bytes") << QVariant(QByteArray("\0\1\2", 3));
    QTest::newRow("null bytes") << QVariant(QByteArray());
    QTest::newRow("empty bytes") << QVariant(QByteArray(""));
    QBitArray bits(11);
    bits.setBit(0);
    bits.setBit(10);
    QTest::newRow("bit array") << QVariant(bits);
    QTest::newRow("bit array of 16") << QVariant(QBitArray(16, true));
    QTest::newRow("empty bit array") << QVariant(QBitArray());
    QTest::newRow("date") << QVariant(QDate(2024, 2, 29));
    QTest::newRow("date, first valid day") << QVariant(QDate::fromJulianDay(Q_INT64_C(-784350574879)));
    QTest::newRow("date, last valid day") << QVariant(QDate::fromJulianDay(MaxJulianDay));
    QTest::newRow("null date") << QVariant(QDate());
    QTest::newRow("time") << QVariant(QTime(23, 59, 59, 999));
    QTest::newRow("null time") << QVariant(QTime());
    QTest::newRow("date-time") << QVariant(QDateTime::fromMSecsSinceEpoch(1234567890123, Qt::UTC));
    QTest::newRow("date-time, local") << QVariant(QDateTime(QDate(1999, 12, 31), QTime(12, 0)));
    QTest::newRow("date-time, offset") << QVariant(QDateTime(QDate(2001, 2, 3), QTime(4, 5, 6),
                                                             Qt::OffsetFromUTC, -(3 * 3600 + 1800)));
    QTest::newRow("date-time, offset 16 h") << QVariant(QDateTime(QDate(2001, 2, 3), QTime(4, 5),
                                                                  Qt::OffsetFromUTC, 16 * 3600));
    QTest::newRow("date-time, year -200000000")
        << QVariant(QDateTime(QDate::fromJulianDay(EpochJulianDay - Q_INT64_C(73048500000)),
                              QTime(1, 2), Qt::UTC));
    QTest::newRow("date-time, the last day accepted")
        << QVariant(QDateTime(QDate::fromJulianDay(EpochJulianDay + DateTimeMaxDays), QTime(23, 59), Qt::UTC));
    QTest::newRow("date-time, the first day accepted")
        << QVariant(QDateTime(QDate::fromJulianDay(EpochJulianDay - DateTimeMaxDays), QTime(0, 1), Qt::UTC));
    QTest::newRow("null date-time") << QVariant(QDateTime());
    QTest::newRow("url") << QVariant(QUrl(QStringLiteral("https://user@example.org:8080/a%20b?q=1#f")));
    QTest::newRow("url, international host") << QVariant(QUrl(QString::fromUtf8("http://b\xc3\xbc" "cher.example/")));
    QTest::newRow("empty url") << QVariant(QUrl());
    QTest::newRow("uuid") << QVariant(QUuid(0x01020304, 0x0506, 0x0708, 9, 10, 11, 12, 13, 14, 15, 16));
    QTest::newRow("point") << QVariant(QPoint(-1, 2));
    QTest::newRow("pointf") << QVariant(QPointF(1.5, -2.25));
    QTest::newRow("size") << QVariant(QSize(640, 480));
    QTest::newRow("sizef") << QVariant(QSizeF(0.5, 1e300));
    QTest::newRow("rect") << QVariant(QRect(1, 2, 3, 4));
    QTest::newRow("rectf") << QVariant(QRectF(1.5, 2, 3, 4.25));
    QTest::newRow("line") << QVariant(QLine(1, 2, -3, 4));
    QTest::newRow("linef") << QVariant(QLineF(1, 2.5, 3, 4));
    QTest::newRow("list") << QVariant(QVariantList{1, QStringLiteral("two"), 3.0});
    QTest::newRow("empty list") << QVariant(QVariantList());
    QTest::newRow("list holding an invalid variant") << QVariant(QVariantList{QVariant(), 1});
    QTest::newRow("map") << QVariant(QVariantMap{{QStringLiteral("progress"), 0.5},
                                                 {QStringLiteral("state"), QStringLiteral("running")}});
    QTest::newRow("empty map") << QVariant(QVariantMap());
    QTest::newRow("map with a null key") << QVariant(QVariantMap{{QString(), 1}});
    QTest::newRow("hash") << QVariant(QVariantHash{{QStringLiteral("a"), QByteArray("x")},
                                                   {QStringLiteral("b"), QVariantList{true}}});
    QTest::newRow("string list") << QVariant(QStringList{QStringLiteral("a"), QString(), QString(QLatin1String(""))});
    QTest::newRow("empty string list") << QVariant(QStringList());
    QTest::newRow("byte array list") << QVariant::fromValue(QByteArrayList{"a", QByteArray(), ""});
    QTest::newRow("every type in a list") << QVariant(QVariantList{
        true, 1, 2u, Q_INT64_C(3), Q_UINT64_C(4), 5.5, QVariant::fromValue(6.5f),
        QVariant::fromValue(7L), QVariant::fromValue(8UL), QVariant::fromValue(short(9)),
        QVariant::fromValue(ushort(10)), QVariant::fromValue('k'),
        QVariant::fromValue(static_cast<signed char>(12)), QVariant::fromValue(static_cast<uchar>(13)),
        QChar(u'n'), QVariant::fromValue(nullptr), QStringLiteral("p"), QByteArray("q"),
        QBitArray(3, true), QDate(2000, 1, 1), QTime(1, 2), QDateTime(QDate(2000, 1, 1), QTime(1, 2), Qt::UTC),
        QUrl(QStringLiteral("file:///tmp")), QUuid(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), QPoint(1, 2),
        QPointF(1, 2), QSize(1, 2), QSizeF(1, 2), QRect(1, 2, 3, 4), QRectF(1, 2, 3, 4),
        QLine(1, 2, 3, 4), QLineF(1, 2, 3, 4), QVariantList{1}, QVariantMap{{QStringLiteral("m"), 1}},
        QVariantHash{{QStringLiteral("h"), 1}}, QStringList{QStringLiteral("s")},
        QVariant::fromValue(QByteArrayList{"b"}), QVariant()});
    QTest::newRow("64 nested lists") << nested(64, QVariantList{42});
    QTest::newRow("64 nested, a map innermost") << nested(64, QVariantMap{{QStringLiteral("k"), 1}});
    QTest::newRow("64 nested, a string list innermost") << nested(64, QStringList{QStringLiteral("s")});
}

// decodeVariant gives back the same value (and type), and encoding that
// gives the same bytes again.
void tst_QtApi::variantRoundTrip()
{
    QFETCH(QVariant, value);
    const QByteArray bytes = mpr::encodeVariant(value);
    QVERIFY(!bytes.isEmpty());
    const QVariant back = mpr::decodeVariant(bytes);
    QCOMPARE(back.userType(), value.userType());
    QCOMPARE(back, value);
    if (value.userType() == QMetaType::QVariantHash) {
        // A QHash iterates in an order that depends on its history and on
        // the process's random hash seed: the decoded copy may encode its
        // entries in another order. The same value, then.
        QCOMPARE(mpr::decodeVariant(mpr::encodeVariant(back)), value);
    } else {
        QCOMPARE(mpr::encodeVariant(back), bytes);
    }
}

void tst_QtApi::decodeTruncatedOrExtended_data()
{
    variantRoundTrip_data();
}

// Every prefix of a valid encoding, and the encoding with a byte more, is
// not a whole encoded variant.
void tst_QtApi::decodeTruncatedOrExtended()
{
    QFETCH(QVariant, value);
    const QByteArray bytes = mpr::encodeVariant(value);
    QVERIFY(mpr::decodeVariant(bytes).isValid());
    for (int n = 0; n < bytes.size(); ++n) {
        if (mpr::decodeVariant(bytes.left(n)).isValid())
            QFAIL(qPrintable(QStringLiteral("the first %1 of %2 bytes decoded").arg(n).arg(bytes.size())));
    }
    QVERIFY(!mpr::decodeVariant(bytes + '\0').isValid());
    QVERIFY(!mpr::decodeVariant(bytes + bytes).isValid());
}

// Bytes a hostile worker may send: each gives an invalid QVariant, and
// none may crash (before the decoder validated its input, the huge counts
// ended in std::bad_alloc and the deep nesting in a stack overflow).
void tst_QtApi::decodeRejects_data()
{
    QTest::addColumn<QByteArray>("bytes");

    const QByteArray fortyTwo = hex("00000002 00 0000002a"); // QVariant(42)
    QTest::newRow("empty") << QByteArray();
    QTest::newRow("list claiming 0x7fffffff elements") << hex("00000009 00 7fffffff");
    QTest::newRow("list claiming 0xffffffff elements") << hex("00000009 00 ffffffff");
    QTest::newRow("list claiming 2 elements, holding 1") << hex("00000009 00 00000002") + fortyTwo;
    QByteArray deep;
    for (int i = 0; i < 30000; ++i)
        deep += hex("00000009 00 00000001");
    QTest::newRow("lists nested 30,000 deep") << deep + fortyTwo;
    QTest::newRow("65 nested lists") << mpr::encodeVariant(nested(65, QVariantList{42}));
    QTest::newRow("65 nested, a string list innermost")
        << mpr::encodeVariant(nested(65, QStringList{QStringLiteral("s")}));
    QTest::newRow("65 nested, a hash innermost")
        << mpr::encodeVariant(nested(65, QVariantHash{{QStringLiteral("k"), 1}}));
    QTest::newRow("string list claiming 0x7fffffff strings") << hex("0000000b 00 7fffffff");
    QTest::newRow("string list claiming 3 strings, holding 2") << hex("0000000b 00 00000003 00000000 ffffffff");
    QTest::newRow("map claiming 0x7fffffff entries") << hex("00000008 00 7fffffff");
    QTest::newRow("hash claiming 0x7fffffff entries") << hex("0000001c 00 7fffffff");
    QTest::newRow("byte array list claiming 0x7fffffff arrays") << hex("00000031 00 7fffffff");
    QTest::newRow("string claiming 0x7ffffffe bytes") << hex("0000000a 00 7ffffffe 0041");
    QTest::newRow("string with an odd byte count") << hex("0000000a 00 00000003 004100");
    QTest::newRow("map key with an odd byte count") << hex("00000008 00 00000001 00000001 41") + fortyTwo;
    QTest::newRow("byte array claiming 0x7fffffff bytes") << hex("0000000c 00 7fffffff 41");
    QTest::newRow("byte array claiming 0xfffffffe bytes") << hex("0000000c 00 fffffffe 41");
    QTest::newRow("url claiming 16 bytes, holding 2") << hex("00000011 00 00000010 6874");
    QTest::newRow("bit array claiming 17 bits in 2 bytes") << hex("0000000d 00 00000011 ffff");
    QTest::newRow("bit array claiming 0xffffffff bits") << hex("0000000d 00 ffffffff");
    QTest::newRow("bit array with a padding bit set") << hex("0000000d 00 00000001 03");
    QTest::newRow("null flag 2") << hex("00000002 02 0000002a");
    QTest::newRow("bool 2") << hex("00000001 00 02");
    QTest::newRow("time past the end of the day") << hex("0000000f 00 05265c00");
    QTest::newRow("date after the last valid day") << streamed([](QDataStream &s) {
        s << quint32(QMetaType::QDate) << qint8(0) << qint64(MaxJulianDay + 1);
    });
    const auto dateTime = [](qint64 julianDay, qint8 spec) {
        return streamed([=](QDataStream &s) {
            s << quint32(QMetaType::QDateTime) << qint8(0) << julianDay << quint32(0) << spec;
        });
    };
    QTest::newRow("date-time a day after the range") << dateTime(EpochJulianDay + DateTimeMaxDays + 1, 1);
    QTest::newRow("date-time a day before the range") << dateTime(EpochJulianDay - DateTimeMaxDays - 1, 0);
    QTest::newRow("date-time on QDate's last valid day") << dateTime(MaxJulianDay, 1);
    QTest::newRow("date-time with a time zone") << dateTime(EpochJulianDay, 3) + hex("00000006 00550054 0043");
    QTest::newRow("date-time with an unknown spec") << dateTime(EpochJulianDay, 4);
    QTest::newRow("date-time with an offset over 16 h") << dateTime(EpochJulianDay, 2) + hex("0000e101");
    QTest::newRow("date-time with an offset under -16 h") << dateTime(EpochJulianDay, 2) + hex("ffff1eff");
    QTest::newRow("unknown type id") << hex("00001234 00");
    QTest::newRow("type id 0xffffffff") << hex("ffffffff 00");
    QTest::newRow("void* (31)") << hex("0000001f 00 0000000000000000");
    QTest::newRow("QObject* (39)") << hex("00000027 00 0000000000000000");
    QTest::newRow("QVariant in a QVariant (41)") << hex("00000029 00") + fortyTwo;
    QTest::newRow("char16_t, a Qt 6 id (56)") << hex("00000038 00 0041");
    QTest::newRow("user type naming QString") << hex("00000400 00 00000008 51537472696e6700 00000002 0041");
    QTest::newRow("user type naming char16_t") << hex("00000400 00 00000009 6368617231365f7400 0041");
    QTest::newRow("user type of an unknown name") << hex("00000400 00 00000008 4e6f537563685400");
    QTest::newRow("GUI type (QColor)") << hex("00000043 00 01 ffff 0000 0000 0000 0000");
    QTest::newRow("QSizePolicy (121)") << hex("00000079 00 00000000");
    QTest::newRow("QRegExp (27)") << hex("0000001b 00 00000002 0061 00 00 00");
    QTest::newRow("QRegularExpression") << hex("0000002c 00 00000002 0061 00000000");
    QTest::newRow("QLocale") << hex("00000012 00 0000000a 00640065005f00440045");
    QTest::newRow("QEasingCurve") << hex("0000001d 00 00000000 3ff0000000000000 3ff0000000000000 3ff0000000000000 00");
    QTest::newRow("QJsonValue") << hex("0000002d 00 02 3ff0000000000000");
    QTest::newRow("QCborMap") << hex("00000037 00 00000001 a0");
    QTest::newRow("a byte after the variant") << mpr::encodeVariant(7) + 'x';
    QTest::newRow("two variants") << mpr::encodeVariant(1) + mpr::encodeVariant(2);
}

void tst_QtApi::decodeRejects()
{
    QFETCH(QByteArray, bytes);
    QVERIFY(!mpr::decodeVariant(bytes).isValid());
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
