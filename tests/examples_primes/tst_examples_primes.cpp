/*
 * tst_examples_primes - run `primes --headless` (examples/primes) as a
 * separate process and check what it prints against a sieve: the count,
 * each worker's count for its chunk, a killed worker reported as failed
 * while the others finish, and SIGTERM (cancel) leaving no worker alive.
 */
#include <QtCore/QProcess>
#include <QtCore/QRegularExpression>
#include <QtTest/QtTest>

#include <cerrno>
#include <csignal>

#include <sys/types.h>
#include <unistd.h>

namespace {

// Generous: a loaded 2-core machine may be slow, but nothing here should hang.
const int Deadline = 120000;

// The number of primes n with from <= n <= to.
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

struct WorkerLine
{
    qint64 pid = 0;
    quint64 from = 0, to = 0;
    bool done = false;
    bool failed = false;
    bool reported = false; // printed at least one progress line
    quint64 primes = 0;
};

// A running `primes --headless`, its output parsed line by line.
class Primes
{
public:
    explicit Primes(const QStringList &args)
    {
        process.setProgram(QStringLiteral(PRIMES_DIR "/primes"));
        process.setArguments(QStringList{QStringLiteral("--headless")} + args);
        QObject::connect(&process, &QProcess::readyReadStandardOutput,
                         [this] { readLines(); });
        process.start();
    }
    ~Primes()
    {
        // A failed test: cancel (SIGTERM stops the workers too), then insist.
        if (process.state() != QProcess::NotRunning) {
            process.terminate();
            if (!process.waitForFinished(Deadline)) {
                process.kill();
                process.waitForFinished(Deadline);
            }
        }
    }

    void readLines()
    {
        static const QRegularExpression started(
            QStringLiteral("^worker (\\d+): pid (\\d+), numbers (\\d+) to (\\d+)$"));
        static const QRegularExpression progress(QStringLiteral("^worker (\\d+): +\\d+%"));
        static const QRegularExpression done(QStringLiteral("^worker (\\d+): done, (\\d+) primes$"));
        static const QRegularExpression failed(QStringLiteral("^worker (\\d+): FAILED"));
        while (process.canReadLine()) {
            const QString line = QString::fromUtf8(process.readLine()).trimmed();
            lines.append(line);
            QRegularExpressionMatch m;
            if ((m = started.match(line)).hasMatch()) {
                WorkerLine &w = workers[m.captured(1).toInt()];
                w.pid = m.captured(2).toLongLong();
                w.from = m.captured(3).toULongLong();
                w.to = m.captured(4).toULongLong();
            } else if ((m = progress.match(line)).hasMatch()) {
                workers[m.captured(1).toInt()].reported = true;
            } else if ((m = done.match(line)).hasMatch()) {
                workers[m.captured(1).toInt()].done = true;
                workers[m.captured(1).toInt()].primes = m.captured(2).toULongLong();
            } else if ((m = failed.match(line)).hasMatch()) {
                workers[m.captured(1).toInt()].failed = true;
            }
        }
    }

    bool finish()
    {
        const bool ok = process.waitForFinished(Deadline);
        readLines();
        stderrText = QString::fromUtf8(process.readAllStandardError());
        return ok && process.exitStatus() == QProcess::NormalExit;
    }

    int reportedWorkers() const
    {
        int n = 0;
        for (const WorkerLine &w : workers)
            n += w.reported && w.pid > 0;
        return n;
    }

    QString output() const { return lines.join(QLatin1Char('\n')) + "\n--- stderr:\n" + stderrText; }

    QProcess process;
    QStringList lines;
    QMap<int, WorkerLine> workers;
    QString stderrText;
};

} // namespace

class tst_ExamplesPrimes : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void sieve();
    void count_data();
    void count();
    void killedWorkerFails();
    void cancelLeavesNoWorker();
    void workerCommandLineHoldsNoKey();
    void badArguments();
};

void tst_ExamplesPrimes::initTestCase()
{
    QVERIFY2(QFileInfo(QStringLiteral(PRIMES_DIR "/primes")).isExecutable(),
             "build examples/primes first");
    QVERIFY(QFileInfo(QStringLiteral(PRIMES_DIR "/primes-worker")).isExecutable());
}

// The reference itself.
void tst_ExamplesPrimes::sieve()
{
    QCOMPARE(sieveCount(1, 10), quint64(4));
    QCOMPARE(sieveCount(1, 100), quint64(25));
    QCOMPARE(sieveCount(0, 1), quint64(0));
    QCOMPARE(sieveCount(2, 2), quint64(1));
    QCOMPARE(sieveCount(1, 1000000), quint64(78498));
    QCOMPARE(sieveCount(1000, 2000), quint64(135));
}

void tst_ExamplesPrimes::count_data()
{
    QTest::addColumn<quint64>("from");
    QTest::addColumn<quint64>("to");
    QTest::addColumn<int>("workers");
    QTest::addColumn<int>("batch");

    QTest::newRow("1..200000, 3 workers") << quint64(1) << quint64(200000) << 3 << 5000;
    QTest::newRow("1..100000, 4 workers, message every 100") << quint64(1) << quint64(100000) << 4 << 100;
    QTest::newRow("1..1000000, 2 workers") << quint64(1) << quint64(1000000) << 2 << 5000;
    QTest::newRow("999000..1001000, 3 workers, batch 7") << quint64(999000) << quint64(1001000) << 3 << 7;
    QTest::newRow("0..10, 1 worker") << quint64(0) << quint64(10) << 1 << 5000;
    QTest::newRow("1..3, more workers than numbers") << quint64(1) << quint64(3) << 8 << 1;
    QTest::newRow("24..28, no primes") << quint64(24) << quint64(28) << 2 << 1;
}

void tst_ExamplesPrimes::count()
{
    QFETCH(quint64, from);
    QFETCH(quint64, to);
    QFETCH(int, workers);
    QFETCH(int, batch);

    Primes primes({QStringLiteral("--from"), QString::number(from), QStringLiteral("--to"),
                   QString::number(to), QStringLiteral("--workers"), QString::number(workers),
                   QStringLiteral("--batch"), QString::number(batch)});
    QVERIFY2(primes.finish(), qPrintable(primes.output()));
    QVERIFY2(primes.process.exitCode() == 0, qPrintable(primes.output()));

    const quint64 expected = sieveCount(from, to);
    const QString summary = QStringLiteral("primes from %1 to %2: %3").arg(from).arg(to).arg(expected);
    QVERIFY2(primes.lines.contains(summary), qPrintable(summary + "\n" + primes.output()));
    const int used = int(qMin(quint64(workers), to - from + 1));
    QVERIFY2(primes.lines.last().startsWith(QStringLiteral("%1 workers, ").arg(used)),
             qPrintable(primes.output()));
    QVERIFY(primes.lines.last().endsWith(QStringLiteral("messages routed")));

    // Every worker started, got a chunk, finished with the right count for
    // it; the chunks cover the range exactly.
    QCOMPARE(primes.workers.size(), used);
    quint64 next = from;
    for (const WorkerLine &w : qAsConst(primes.workers)) {
        QVERIFY(w.pid > 0);
        QCOMPARE(w.from, next);
        QVERIFY(w.to >= w.from);
        next = w.to + 1;
        QVERIFY2(w.done && !w.failed, qPrintable(primes.output()));
        QCOMPARE(w.primes, sieveCount(w.from, w.to));
    }
    QCOMPARE(next, to + 1);
    // No warning (unclosed pipes, discarded messages, QProcess) on stderr.
    QVERIFY2(primes.stderrText.isEmpty(), qPrintable(primes.stderrText));
}

// Worker 1 stalls after its first message (--stall-worker) and is killed
// with SIGKILL: it is reported as failed, the others finish and their
// counts are right, and the summary says the count is incomplete.
void tst_ExamplesPrimes::killedWorkerFails()
{
    Primes primes({QStringLiteral("--to"), QStringLiteral("600000"), QStringLiteral("--workers"),
                   QStringLiteral("3"), QStringLiteral("--stall-worker"), QStringLiteral("1")});
    QTRY_VERIFY_WITH_TIMEOUT(primes.workers.value(1).reported, Deadline);
    const qint64 pid = primes.workers.value(1).pid;
    QVERIFY(pid > 0);
    QVERIFY(processAlive(pid));
    QVERIFY(!primes.workers.value(1).done);
    QCOMPARE(::kill(pid_t(pid), SIGKILL), 0);

    QVERIFY2(primes.finish(), qPrintable(primes.output()));
    QCOMPARE(primes.process.exitCode(), 1);
    QVERIFY2(primes.workers.value(1).failed, qPrintable(primes.output()));
    for (int i : {0, 2}) {
        const WorkerLine &w = primes.workers.value(i);
        QVERIFY2(w.done && !w.failed, qPrintable(primes.output()));
        QCOMPARE(w.primes, sieveCount(w.from, w.to));
    }
    const QString summary =
        QStringLiteral("primes from 1 to 600000: unknown, 1 of 3 workers failed (the others found %1)")
            .arg(primes.workers.value(0).primes + primes.workers.value(2).primes);
    QVERIFY2(primes.lines.contains(summary), qPrintable(primes.output()));
    QVERIFY2(primes.stderrText.isEmpty(), qPrintable(primes.stderrText));
}

// SIGTERM cancels a run: every worker is stopped (checked by pid) and
// primes says so and exits 2, without warnings.
void tst_ExamplesPrimes::cancelLeavesNoWorker()
{
    Primes primes({QStringLiteral("--to"), QStringLiteral("600000"), QStringLiteral("--workers"),
                   QStringLiteral("3"), QStringLiteral("--stall-worker"), QStringLiteral("0"),
                   QStringLiteral("--stall-worker"), QStringLiteral("1"),
                   QStringLiteral("--stall-worker"), QStringLiteral("2")});
    QTRY_COMPARE_WITH_TIMEOUT(primes.reportedWorkers(), 3, Deadline);
    QList<qint64> pids;
    for (const WorkerLine &w : qAsConst(primes.workers)) {
        QVERIFY(processAlive(w.pid)); // stalled: surely still running
        pids.append(w.pid);
    }
    QCOMPARE(::kill(pid_t(primes.process.processId()), SIGTERM), 0);

    QVERIFY2(primes.finish(), qPrintable(primes.output()));
    QCOMPARE(primes.process.exitCode(), 2);
    QVERIFY2(primes.lines.filter(QStringLiteral("cancelled after")).size() == 1,
             qPrintable(primes.output()));
    // primes killed and reaped them before it exited.
    for (qint64 pid : qAsConst(pids))
        QVERIFY2(!processAlive(pid), qPrintable(QString::number(pid)));
    QVERIFY2(primes.stderrText.isEmpty(), qPrintable(primes.stderrText));
}

// The sender string is a password for its pipe: it reaches the worker on
// its standard input, never on the command line or in the environment,
// which every local user can read in /proc.
void tst_ExamplesPrimes::workerCommandLineHoldsNoKey()
{
    Primes primes({QStringLiteral("--to"), QStringLiteral("100000"), QStringLiteral("--workers"),
                   QStringLiteral("2"), QStringLiteral("--stall-worker"), QStringLiteral("0"),
                   QStringLiteral("--stall-worker"), QStringLiteral("1")});
    QTRY_COMPARE_WITH_TIMEOUT(primes.reportedWorkers(), 2, Deadline);
    static const QRegularExpression senderString(QStringLiteral("mpr\\d:\\S*[0-9a-f]{32}"));
    for (const WorkerLine &w : qAsConst(primes.workers)) {
        for (const char *what : {"cmdline", "environ"}) {
            QFile f(QStringLiteral("/proc/%1/%2").arg(w.pid).arg(QLatin1String(what)));
            QVERIFY(f.open(QIODevice::ReadOnly));
            QByteArray text = f.readAll();
            QVERIFY(!text.isEmpty() || QLatin1String(what) == QLatin1String("environ"));
            text.replace('\0', ' '); // the arguments, or variables, one after the other
            QVERIFY2(!senderString.match(QString::fromLatin1(text)).hasMatch(),
                     qPrintable(QStringLiteral("worker %1's %2 holds its sender string")
                                    .arg(w.pid)
                                    .arg(QLatin1String(what))));
        }
    }
    QCOMPARE(::kill(pid_t(primes.process.processId()), SIGTERM), 0);
    QVERIFY(primes.finish());
}

void tst_ExamplesPrimes::badArguments()
{
    Primes primes({QStringLiteral("--from"), QStringLiteral("10"), QStringLiteral("--to"),
                   QStringLiteral("5")});
    QVERIFY(primes.finish());
    QCOMPARE(primes.process.exitCode(), 64);
    QVERIFY2(primes.stderrText.contains(QStringLiteral("from <= to")), qPrintable(primes.stderrText));
}

QTEST_GUILESS_MAIN(tst_ExamplesPrimes)
#include "tst_examples_primes.moc"
