/*
 * tst_examples_primes_window - the primes window (examples/primes) driven
 * through its buttons on the offscreen platform, with real primes-worker
 * processes run by the example's mpr::Executor: the right count, a killed
 * worker shown as failed (and replaced) while the others finish, Cancel
 * and closing the window stopping every worker cooperatively (the
 * executor kills none) with no warning, a window that keeps painting
 * while messages flood in, and
 * the screenshot for the README (QWidget::grab, saved as primes.png in the
 * current folder, or where MPR_SCREENSHOT says). remoteWorkers runs them
 * "on another host": in a network namespace made by the test (needs root,
 * ip and a build with ZeroMQ; skipped otherwise).
 */
#include "netns.h"
#include "primeswindow.h"

#include <QtCore/QMutex>
#include <QtGui/QImage>
#include <QtWidgets/QApplication>
#include <QtWidgets/QLabel>
#include <QtWidgets/QProgressBar>
#include <QtWidgets/QPushButton>
#include <QtTest/QtTest>

#include <cerrno>
#include <csignal>

#include <sys/types.h>
#include <unistd.h>

namespace {

const int Deadline = 120000;

quint64 sieveCount(quint64 from, quint64 to)
{
    QVector<bool> composite(int(to) + 1, false);
    quint64 count = 0;
    for (quint64 n = 2; n <= to; n++) {
        if (composite[int(n)])
            continue;
        count += n >= from;
        for (quint64 m = n * n; m <= to; m += n)
            composite[int(m)] = true;
    }
    return count;
}

bool processAlive(qint64 pid)
{
    return ::kill(pid_t(pid), 0) == 0 || errno != ESRCH;
}

#ifdef MPR_TEST_REMOTE
// "net:[INODE]": the network namespace of a process ("self": ours).
QString netNamespace(const QString &pid)
{
    const QByteArray path = QStringLiteral("/proc/%1/ns/net").arg(pid).toLocal8Bit();
    char target[64];
    const ssize_t n = ::readlink(path.constData(), target, sizeof target);
    return n > 0 ? QString::fromLatin1(target, int(n)) : QString();
}
#endif

QString number(quint64 n)
{
    return QLocale(QLocale::English, QLocale::UnitedStates).toString(qulonglong(n));
}

// Every warning (our "mprouter" category, QProcess, Qt) while a test runs.
QMutex warningsLock;
QStringList warnings;
QtMessageHandler previousHandler = nullptr;

void recordWarnings(QtMsgType type, const QMessageLogContext &context, const QString &message)
{
    // The offscreen platform's own noise whenever a layout changes.
    if (message == QLatin1String("This plugin does not support propagateSizeHints()"))
        return;
    if (type != QtDebugMsg && type != QtInfoMsg) {
        QMutexLocker lock(&warningsLock);
        warnings.append(QStringLiteral("%1: %2").arg(QLatin1String(context.category), message));
    }
    previousHandler(type, context, message);
}

QStringList takeWarnings()
{
    QMutexLocker lock(&warningsLock);
    QStringList list = warnings;
    warnings.clear();
    return list;
}

} // namespace

class tst_ExamplesPrimesWindow : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();
    void rightCount_data();
    void rightCount();
    void killedWorkerShownAsFailed();
    void killedWorkerIsReplaced();
    void cancelStopsEveryWorker();
    void cancelIsCooperative();
    void closingMidRunShutsDown();
    void paintsWhileMessagesFlood();
    void screenshot();
    void remoteWorkers();

private:
    QLabel *label(const char *name) { return window->findChild<QLabel *>(QLatin1String(name)); }
    QPushButton *button(const char *name)
    {
        return window->findChild<QPushButton *>(QLatin1String(name));
    }
    bool allReported() const
    {
        for (int i = 0; i < window->job()->workerCount(); i++)
            if (window->job()->worker(i).messages == 0)
                return false;
        return window->job()->workerCount() > 0;
    }

    QScopedPointer<PrimesWindow> window;
};

void tst_ExamplesPrimesWindow::initTestCase()
{
    QCOMPARE(QGuiApplication::platformName(), QStringLiteral("offscreen"));
    QVERIFY2(QFileInfo(QStringLiteral(PRIMES_WORKER)).isExecutable(), "build examples/primes first");
    previousHandler = qInstallMessageHandler(recordWarnings);
}

void tst_ExamplesPrimesWindow::init()
{
    takeWarnings();
    window.reset(new PrimesWindow);
    window->job()->setWorkerProgram(QStringLiteral(PRIMES_WORKER));
    window->show();
    QVERIFY(QTest::qWaitForWindowExposed(window.data()));
    QVERIFY(button("start")->isEnabled());
    QVERIFY(!button("cancel")->isEnabled());
}

void tst_ExamplesPrimesWindow::cleanup()
{
    window.reset();
    // Deferred deletes (closed receivers, QProcess objects) run too.
    QCoreApplication::sendPostedEvents(nullptr, QEvent::DeferredDelete);
    QCoreApplication::processEvents();
    const QStringList left = takeWarnings();
    QVERIFY2(left.isEmpty(), qPrintable(left.join(QLatin1Char('\n'))));
}

void tst_ExamplesPrimesWindow::rightCount_data()
{
    QTest::addColumn<int>("to");
    QTest::addColumn<int>("workers");
    QTest::newRow("1..200000, 3 workers") << 200000 << 3;
    QTest::newRow("1..50000, 1 worker") << 50000 << 1;
}

void tst_ExamplesPrimesWindow::rightCount()
{
    QFETCH(int, to);
    QFETCH(int, workers);
    window->setRange(1, quint64(to));
    window->setWorkers(workers);
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QVERIFY(!button("start")->isEnabled());
    QVERIFY(button("cancel")->isEnabled());
    QCOMPARE(window->job()->workerCount(), workers);

    QTRY_VERIFY_WITH_TIMEOUT(!window->job()->isRunning(), Deadline);
    QCOMPARE(window->job()->state(), PrimesJob::State::Finished);
    const QString count = number(sieveCount(1, quint64(to)));
    QCOMPARE(label("count")->text(), count);
    QVERIFY2(label("status")->text().startsWith(QStringLiteral("Done: %1 primes from 1 to %2 in ")
                                                    .arg(count, number(quint64(to)))),
             qPrintable(label("status")->text()));
    for (int i = 0; i < workers; i++) {
        QProgressBar *bar = window->findChild<QProgressBar *>(QStringLiteral("bar%1").arg(i));
        QVERIFY(bar);
        QCOMPARE(bar->value(), bar->maximum());
        const PrimesJob::Worker &w = window->job()->worker(i);
        QCOMPARE(window->findChild<QLabel *>(QStringLiteral("worker%1").arg(i))->text(),
                 QStringLiteral("done, %1 primes").arg(number(sieveCount(w.from, w.to))));
    }
    QVERIFY(button("start")->isEnabled());
    QVERIFY(!button("cancel")->isEnabled());
    QVERIFY(!window->job()->workerPids().isEmpty());
    for (qint64 pid : window->job()->workerPids())
        QVERIFY(!processAlive(pid));
}

void tst_ExamplesPrimesWindow::killedWorkerShownAsFailed()
{
    window->setRange(1, 600000);
    window->setWorkers(3);
    window->job()->setStalledWorkers({1});
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(window->job()->worker(1).messages > 0, Deadline);
    const qint64 pid = window->job()->worker(1).pid;
    QVERIFY(processAlive(pid));
    QCOMPARE(::kill(pid_t(pid), SIGKILL), 0);

    QTRY_VERIFY_WITH_TIMEOUT(!window->job()->isRunning(), Deadline);
    QCOMPARE(window->job()->state(), PrimesJob::State::Finished);
    QCOMPARE(window->job()->worker(1).state, PrimesJob::WorkerState::Failed);
    QCOMPARE(window->findChild<QLabel *>(QStringLiteral("worker1"))->text(),
             QStringLiteral("FAILED: worker (pid %1) killed by signal 9 (SIGKILL)").arg(pid));
    for (int i : {0, 2}) {
        const PrimesJob::Worker &w = window->job()->worker(i);
        QCOMPARE(w.state, PrimesJob::WorkerState::Done);
        QCOMPARE(w.primes, sieveCount(w.from, w.to));
        QVERIFY(window->findChild<QLabel *>(QStringLiteral("worker%1").arg(i))
                    ->text().startsWith(QStringLiteral("done, ")));
    }
    QVERIFY2(label("status")->text().contains(QStringLiteral("1 of 3 workers failed")),
             qPrintable(label("status")->text()));
    QCOMPARE(window->job()->executorStats().workers_killed, quint64(0));
    // If the others were still running, the executor said it replaced it.
    for (const QString &w : takeWarnings())
        QVERIFY2(w.endsWith(QStringLiteral("killed by signal 9 (SIGKILL); starting another")),
                 qPrintable(w));
}

// Workers 0 and 1 stall; worker 1 is killed from outside (SIGKILL) while
// worker 0 still runs its chunk: its chunk fails with the reason, the
// executor starts a replacement (the computation goes on), worker 2
// finishes with the right count, and a cancel then stops worker 0 by
// itself: no worker was ever killed by the executor.
void tst_ExamplesPrimesWindow::killedWorkerIsReplaced()
{
    PrimesJob *job = window->job();
    window->setRange(1, 600000);
    window->setWorkers(3);
    job->setStalledWorkers({0, 1});
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(job->worker(0).messages > 0 && job->worker(1).messages > 0,
                             Deadline);
    QCOMPARE(job->executorStats().workers_started, quint64(3));
    const qint64 pid = job->worker(1).pid;
    QVERIFY(processAlive(pid));
    QCOMPARE(::kill(pid_t(pid), SIGKILL), 0);

    QTRY_COMPARE_WITH_TIMEOUT(job->worker(1).state, PrimesJob::WorkerState::Failed, Deadline);
    QCOMPARE(job->worker(1).failure,
             QStringLiteral("worker (pid %1) killed by signal 9 (SIGKILL)").arg(pid));
    QVERIFY(job->isRunning()); // worker 0 is stalled: the job goes on
    QTRY_COMPARE_WITH_TIMEOUT(job->executorStats().workers_started, quint64(4), Deadline);
    QTRY_COMPARE_WITH_TIMEOUT(job->worker(2).state, PrimesJob::WorkerState::Done, Deadline);
    QCOMPARE(job->worker(2).primes, sieveCount(job->worker(2).from, job->worker(2).to));
    QCOMPARE(job->worker(0).state, PrimesJob::WorkerState::Running);

    QTest::mouseClick(button("cancel"), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(job->state(), PrimesJob::State::Cancelled, Deadline);
    QCOMPARE(job->worker(0).state, PrimesJob::WorkerState::Cancelled);
    const mpr_executor_stats st = job->executorStats();
    QCOMPARE(st.workers_killed, quint64(0));
    QCOMPARE(st.workers_started, quint64(4));
    QCOMPARE(st.workers_alive, 0u);
    QCOMPARE(st.jobs_failed, quint64(1));
    QCOMPARE(st.jobs_completed, quint64(1));
    QCOMPARE(st.jobs_cancelled, quint64(1));
    const QStringList said = takeWarnings();
    QCOMPARE(said.size(), 1);
    QVERIFY2(said.first().endsWith(QStringLiteral("worker (pid %1) killed by signal 9 (SIGKILL); "
                                                  "starting another")
                                       .arg(pid)),
             qPrintable(said.first()));
}

// Every worker stalls after its first message, so all are surely running
// when Cancel is clicked; the job ends Cancelled once every worker has
// stopped by itself and exited (none killed).
void tst_ExamplesPrimesWindow::cancelStopsEveryWorker()
{
    window->setRange(1, 600000);
    window->setWorkers(3);
    window->job()->setStalledWorkers({0, 1, 2});
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(allReported(), Deadline);
    const QList<qint64> pids = window->job()->workerPids();
    QCOMPARE(pids.size(), 3);
    for (qint64 pid : pids)
        QVERIFY(processAlive(pid));

    QTest::mouseClick(button("cancel"), Qt::LeftButton);
    QVERIFY(window->job()->isCancelling());
    QVERIFY(!button("cancel")->isEnabled());
    QTRY_COMPARE_WITH_TIMEOUT(window->job()->state(), PrimesJob::State::Cancelled, Deadline);
    for (qint64 pid : pids)
        QVERIFY2(!processAlive(pid), qPrintable(QString::number(pid)));
    QCOMPARE(window->job()->executorStats().workers_killed, quint64(0));
    QVERIFY2(label("status")->text().startsWith(QStringLiteral("Cancelled after ")),
             qPrintable(label("status")->text()));
    QVERIFY2(label("status")->text().endsWith(QStringLiteral("every worker stopped, 0 killed.")),
             qPrintable(label("status")->text()));
    for (int i = 0; i < 3; i++)
        QCOMPARE(window->findChild<QLabel *>(QStringLiteral("worker%1").arg(i))->text(),
                 QStringLiteral("cancelled"));
    QVERIFY(button("start")->isEnabled());
    QVERIFY(!button("cancel")->isEnabled());

    // And the window can run again afterwards.
    window->job()->setStalledWorkers({});
    window->setRange(1, 100000);
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(!window->job()->isRunning(), Deadline);
    QCOMPARE(label("count")->text(), number(sieveCount(1, 100000)));
}

// A cancel while every worker computes (1 to 2,000,000,000: minutes of
// work each, so none can finish first): every job goes EXECUTING ->
// CANCELLING -> CANCELLED, by the workers' own test of mpr_task_cancelled.
// Checked by state, not by time: the executor's grace time (5 s) did not
// have to kill anyone, and the workers started are the workers that
// exited by themselves. The time it took is printed, not compared.
void tst_ExamplesPrimesWindow::cancelIsCooperative()
{
    PrimesJob *job = window->job();
    window->setRange(1, 2000000000);
    window->setWorkers(2);
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(allReported(), Deadline);
    QList<mpr::Future::State> states[2];
    qint64 cancelledAfter[2] = {-1, -1};
    QElapsedTimer clock;
    for (int i = 0; i < 2; i++) {
        QVERIFY(job->worker(i).future);
        QCOMPARE(job->worker(i).future->state(), mpr::Future::Executing);
        connect(job->worker(i).future, &mpr::Future::stateChanged, this,
                [&, i](mpr::Future::State s) {
                    states[i].append(s);
                    if (s == mpr::Future::Cancelled)
                        cancelledAfter[i] = clock.elapsed();
                });
    }
    const QList<qint64> pids = job->workerPids();
    QCOMPARE(pids.size(), 2);

    clock.start();
    QTest::mouseClick(button("cancel"), Qt::LeftButton);
    QVERIFY(job->isCancelling());
    QTRY_COMPARE_WITH_TIMEOUT(job->state(), PrimesJob::State::Cancelled, Deadline);
    qInfo("cancel -> CANCELLED: %lld ms and %lld ms; every worker exited: %lld ms",
          cancelledAfter[0], cancelledAfter[1], clock.elapsed());
    for (int i = 0; i < 2; i++) {
        QCOMPARE(states[i], (QList<mpr::Future::State>{mpr::Future::Cancelling,
                                                        mpr::Future::Cancelled}));
        QCOMPARE(job->worker(i).state, PrimesJob::WorkerState::Cancelled);
        QVERIFY(job->worker(i).checked < job->worker(i).size()); // it did stop midway
    }
    const mpr_executor_stats st = job->executorStats();
    QCOMPARE(st.workers_killed, quint64(0));
    QCOMPARE(st.workers_started, quint64(2));
    QCOMPARE(st.workers_ended, quint64(2));
    QCOMPARE(st.jobs_cancelled, quint64(2));
    for (qint64 pid : pids)
        QVERIFY2(!processAlive(pid), qPrintable(QString::number(pid)));
}

// Closing the window mid-run: the close waits for a cooperative cancel
// (the window closes when the workers have stopped), no worker left,
// router stopped, and no warning (unclosed pipes, discarded messages) now
// or when the window is deleted (cleanup()).
void tst_ExamplesPrimesWindow::closingMidRunShutsDown()
{
    window->setRange(1, 600000);
    window->setWorkers(2);
    window->job()->setStalledWorkers({0, 1});
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(allReported(), Deadline);
    const QList<qint64> pids = window->job()->workerPids();
    QCOMPARE(pids.size(), 2);

    QVERIFY(!window->close()); // not yet: once the workers have stopped
    QVERIFY(window->job()->isCancelling());
    QTRY_VERIFY_WITH_TIMEOUT(!window->isVisible(), Deadline);
    QCOMPARE(window->job()->state(), PrimesJob::State::Cancelled);
    for (qint64 pid : pids)
        QVERIFY(!processAlive(pid));
    QCOMPARE(window->job()->executorStats().workers_killed, quint64(0));
    QCoreApplication::sendPostedEvents(nullptr, QEvent::DeferredDelete);
    QCoreApplication::processEvents();
    const QStringList left = takeWarnings();
    QVERIFY2(left.isEmpty(), qPrintable(left.join(QLatin1Char('\n'))));
}

// A message every 10 numbers (about 100,000 messages): the window still
// paints and its timers still fire while they are routed. Counted, not
// timed: at least three paints happen between the first message and the
// end, each seeing a different number of messages routed.
void tst_ExamplesPrimesWindow::paintsWhileMessagesFlood()
{
    window->setRange(1, 1000000);
    window->setWorkers(2);
    window->job()->setBatch(10);

    QList<quint64> seen;
    QTimer probe;
    probe.setInterval(20);
    connect(&probe, &QTimer::timeout, this, [&] {
        const quint64 m = window->job()->messages();
        if (window->job()->isRunning() && m > 0 && (seen.isEmpty() || seen.last() != m)) {
            window->repaint(); // a synchronous paint of the whole window
            seen.append(m);
        }
    });
    probe.start();
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(!window->job()->isRunning(), Deadline);
    probe.stop();
    QCOMPARE(window->job()->messages(), quint64(1000000 / 10));
    QCOMPARE(label("count")->text(), number(78498));
    QVERIFY2(seen.size() >= 3, qPrintable(QString::number(seen.size())));
}

// The README's picture: the default job (1 to 20,000,000) with four
// workers, grabbed once every worker has done a tenth of its chunk.
void tst_ExamplesPrimesWindow::screenshot()
{
    window->setRange(1, 20000000);
    window->setWorkers(4);
    window->resize(780, 360);
    QTest::mouseClick(button("start"), Qt::LeftButton);
    auto tenth = [this] {
        for (int i = 0; i < window->job()->workerCount(); i++)
            if (window->job()->worker(i).checked * 10 < window->job()->worker(i).size())
                return false;
        return true;
    };
    QTRY_VERIFY_WITH_TIMEOUT(tenth() || !window->job()->isRunning(), Deadline);
    QVERIFY2(window->job()->isRunning(), "the job ended before a screenshot could be taken");
    window->showTotals();
    const QImage image = window->grab().toImage();
    window->cancel();
    QTRY_COMPARE_WITH_TIMEOUT(window->job()->state(), PrimesJob::State::Cancelled, Deadline);

    QCOMPARE(image.size(), window->size() * window->devicePixelRatioF());
    // Not blank: the window has text, bars and a background.
    QSet<QRgb> colours;
    for (int y = 0; y < image.height(); y += 2)
        for (int x = 0; x < image.width(); x += 2)
            colours.insert(image.pixel(x, y));
    QVERIFY2(colours.size() > 20, qPrintable(QString::number(colours.size())));

    QString path = qEnvironmentVariable("MPR_SCREENSHOT");
    if (path.isEmpty())
        path = QDir::current().absoluteFilePath(QStringLiteral("primes.png"));
    QVERIFY2(image.save(path, "PNG"), qPrintable(path));
    QVERIFY(QImage(path).size() == image.size());
    qInfo("screenshot saved to %s", qPrintable(path));
}

// Workers inside a network namespace made by the test, started with
// `ip netns exec`, reaching the router over ZeroMQ at our end of the veth
// pair: the window shows the endpoint and each worker's host, counts
// right, and Cancel ends every worker there.
void tst_ExamplesPrimesWindow::remoteWorkers()
{
#ifndef MPR_TEST_REMOTE
    QSKIP("mprouter was built without ZeroMQ: no workers on other hosts");
#else
    QString why;
    if (!mprtest::NetNs::available(&why))
        QSKIP(qPrintable(why));
    mprtest::NetNs ns;
    QVERIFY2(ns.ok(), qPrintable(ns.why()));
    PrimesJob *job = window->job();
    auto stopFirst = qScopeGuard([job] { job->cancel(); }); // before ns goes, if a check failed
    job->setLaunchCommand(mprtest::NetNs::launchPrefix() + QStringLiteral(" " PRIMES_WORKER));
    job->setHosts({ns.name()});
    job->setRemote(QStringLiteral("tcp://%1:0").arg(ns.hostAddress()), ns.hostAddress());
    window->setRange(1, 200000);
    window->setWorkers(3);
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QVERIFY2(job->isRunning(), qPrintable(label("status")->text()));

    QVERIFY(label("remote")->isVisible());
    const QRegularExpression endpoint(
        QStringLiteral("^Remote workers connect to tcp://%1:\\d+ \\(ZeroMQ, CURVE\\); hosts: %2$")
            .arg(QRegularExpression::escape(ns.hostAddress()), ns.name()));
    QVERIFY2(endpoint.match(label("remote")->text()).hasMatch(),
             qPrintable(label("remote")->text()));
    QTRY_VERIFY_WITH_TIMEOUT(!job->isRunning(), Deadline);
    // Each row names the machine its worker reported (the namespace has
    // this machine's name).
    QStringList texts;
    for (const QLabel *l : window->findChildren<QLabel *>())
        texts.append(l->text());
    for (int i = 0; i < 3; i++) {
        const PrimesJob::Worker &w = job->worker(i);
        const QString name = QStringLiteral("%1 – %2 on %3")
                                 .arg(number(w.from), number(w.to), QSysInfo::machineHostName());
        QVERIFY2(texts.contains(name), qPrintable(name));
    }
    QCOMPARE(job->state(), PrimesJob::State::Finished);
    QCOMPARE(label("count")->text(), number(sieveCount(1, 200000)));
    for (int i = 0; i < 3; i++)
        QCOMPARE(job->worker(i).state, PrimesJob::WorkerState::Done);

    // Cancel while every worker there surely runs.
    job->setStalledWorkers({0, 1, 2});
    QTest::mouseClick(button("start"), Qt::LeftButton);
    QTRY_VERIFY_WITH_TIMEOUT(allReported(), Deadline);
    const QList<qint64> pids = job->workerPids();
    QCOMPARE(pids.size(), 3);
    const QString ours = netNamespace(QStringLiteral("self"));
    for (qint64 pid : pids) {
        const QString theirs = netNamespace(QString::number(pid));
        QVERIFY2(!theirs.isEmpty() && theirs != ours, qPrintable(theirs)); // exec'ed: the worker
    }
    QTest::mouseClick(button("cancel"), Qt::LeftButton);
    QTRY_COMPARE_WITH_TIMEOUT(job->state(), PrimesJob::State::Cancelled, Deadline);
    for (qint64 pid : pids)
        QVERIFY2(!processAlive(pid), qPrintable(QString::number(pid)));
    QCOMPARE(job->executorStats().workers_killed, quint64(0)); // cooperative over ZeroMQ too
    QVERIFY2(label("status")->text().startsWith(QStringLiteral("Cancelled after ")),
             qPrintable(label("status")->text()));
#endif
}

int main(int argc, char **argv)
{
    // Always offscreen: the test needs no display and shows nothing.
    qputenv("QT_QPA_PLATFORM", "offscreen");
    QApplication app(argc, argv);
    app.setAttribute(Qt::AA_Use96Dpi, true);
    tst_ExamplesPrimesWindow test;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&test, argc, argv);
}

#include "tst_examples_primes_window.moc"
