/*
 * tst_examples_primes - run `primes --headless` (examples/primes) as a
 * separate process and check what it prints against a sieve: the count,
 * each worker's count for its chunk, a killed worker reported as failed
 * while the others finish, SIGTERM (a cooperative cancel: the workers
 * stop by themselves, none is killed) leaving no worker alive, and the
 * --launch mode with local launch commands (env, sh -c).
 *
 * The remote* cases run the workers "on another host": inside a network
 * namespace made by the test (tests/common/netns.h), started with
 * `--launch 'ip netns exec {host} primes-worker'`, reaching the router over
 * ZeroMQ at the test's end of the veth pair (no traffic goes anywhere
 * else). They need root, ip and a build with ZeroMQ, and are skipped with
 * a message that says so otherwise.
 */
#include <QtCore/QProcess>
#include <QtCore/QRegularExpression>
#include <QtTest/QtTest>

#include <cerrno>
#include <csignal>
#include <memory>

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mprouter/mprouter.h>

#include "netns.h"

using mprtest::NetNs;

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

// Every process below pid (children, their children, ...), from /proc.
QList<qint64> descendants(qint64 pid)
{
    QMultiHash<qint64, qint64> children;
    const QStringList entries = QDir(QStringLiteral("/proc")).entryList(QDir::Dirs);
    for (const QString &entry : entries) {
        bool ok = false;
        const qint64 p = entry.toLongLong(&ok);
        if (!ok)
            continue;
        QFile stat(QStringLiteral("/proc/%1/stat").arg(p));
        if (!stat.open(QIODevice::ReadOnly))
            continue; // gone meanwhile
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        const QByteArray line = stat.readAll();
        const QList<QByteArray> fields = line.mid(line.lastIndexOf(')') + 2).split(' ');
        if (fields.size() > 1)
            children.insert(fields.at(1).toLongLong(), p);
    }
    QList<qint64> found;
    QList<qint64> todo{pid};
    while (!todo.isEmpty() && found.size() < 10000) {
        const QList<qint64> next = children.values(todo.takeFirst());
        found += next;
        todo += next;
    }
    return found;
}

QString executable(qint64 pid)
{
    return QFileInfo(QStringLiteral("/proc/%1/exe").arg(pid)).symLinkTarget();
}

// The primes-worker processes a worker line's pid stands for: the process
// itself (the launch command is exec'ed), or any below it.
QList<qint64> workerProcesses(qint64 pid)
{
    QList<qint64> found;
    for (qint64 p : QList<qint64>{pid} + descendants(pid))
        if (QFileInfo(executable(p)).fileName() == QLatin1String("primes-worker"))
            found.append(p);
    return found;
}

// "net:[INODE]" of a process's network namespace.
QString netNamespace(const QString &pid)
{
    const QByteArray path = QStringLiteral("/proc/%1/ns/net").arg(pid).toLocal8Bit();
    char target[64];
    const ssize_t n = ::readlink(path.constData(), target, sizeof target);
    return n > 0 ? QString::fromLatin1(target, int(n)) : QString();
}

// What is wrong with a process's /proc/PID/cmdline and environ: "" if they
// can be read and neither holds a sender string (the string is a password
// for its pipe: every local user can read these).
QString senderStringShownBy(qint64 pid)
{
    static const QRegularExpression senderString(QStringLiteral("mpr\\d:\\S*[0-9a-f]{32}"));
    for (const char *what : {"cmdline", "environ"}) {
        const QString path = QStringLiteral("/proc/%1/%2").arg(pid).arg(QLatin1String(what));
        QFile f(path);
        if (!f.open(QIODevice::ReadOnly))
            return QStringLiteral("cannot read ") + path;
        QByteArray text = f.readAll();
        if (text.isEmpty() && QLatin1String(what) == QLatin1String("cmdline"))
            return path + QStringLiteral(" is empty (not a running process)");
        text.replace('\0', ' '); // the arguments, or variables, one after the other
        if (senderString.match(QString::fromLatin1(text)).hasMatch())
            return path + QStringLiteral(" holds a sender string");
    }
    return QString();
}

// A namespace for remote workers, made for one test; null if the test must
// be skipped, and *why says why (a NetNs that failed is returned: that is
// a failure, not a reason to skip).
std::unique_ptr<NetNs> makeRemoteHost(QString *why)
{
#ifndef MPR_TEST_REMOTE
    *why = QStringLiteral("mprouter was built without ZeroMQ: no workers on other hosts");
    return nullptr;
#else
    if (!NetNs::available(why))
        return nullptr;
    return std::unique_ptr<NetNs>(new NetNs);
#endif
}

// Declares ns, a namespace for remote workers, or skips the test.
#define REMOTE_HOST(ns)                                                                  \
    QString ns##Why;                                                                     \
    const std::unique_ptr<NetNs> ns = makeRemoteHost(&ns##Why);                          \
    if (!ns)                                                                             \
        QSKIP(qPrintable(ns##Why));                                                      \
    QVERIFY2(ns->ok(), qPrintable(ns->why()))

// primes' options for workers inside ns: started there by ip netns exec,
// reaching the router at our end of the veth pair, and only there.
QStringList remoteOptions(const NetNs &ns)
{
    return {QStringLiteral("--hosts"), ns.name(), QStringLiteral("--launch"),
            NetNs::launchPrefix() + QStringLiteral(" " PRIMES_DIR "/primes-worker"),
            QStringLiteral("--remote-bind"), QStringLiteral("tcp://%1:0").arg(ns.hostAddress()),
            QStringLiteral("--advertise"), ns.hostAddress()};
}

// "net:[INODE]" of the namespace itself, as /proc/PID/ns/net names it.
QString namespaceOf(const NetNs &ns)
{
    struct stat st;
    const QByteArray path = QStringLiteral("/run/netns/%1").arg(ns.name()).toLocal8Bit();
    if (::stat(path.constData(), &st) < 0)
        return QString();
    return QStringLiteral("net:[%1]").arg(quint64(st.st_ino));
}

// The environment variable name of process pid ("" if not set).
QByteArray environmentOf(qint64 pid, const QByteArray &name)
{
    QFile f(QStringLiteral("/proc/%1/environ").arg(pid));
    if (!f.open(QIODevice::ReadOnly))
        return QByteArray();
    const QList<QByteArray> vars = f.readAll().split('\0');
    for (const QByteArray &v : vars)
        if (v.startsWith(name + '='))
            return v.mid(name.size() + 1);
    return QByteArray();
}

// Standard error without the executor's warnings about a worker that
// died and was replaced ("executor 0x...: worker (pid N) killed by signal
// 9 (SIGKILL); starting another"), which a test that kills a worker may
// see; and with lost: also those of replacements that could not reach
// the router ("mprouter worker: cannot connect to the router: ...").
QString withoutReplacementWarnings(const QString &text, bool lost = false)
{
    static const QRegularExpression killed(QStringLiteral(
        "^mprouter: executor \\S+: worker \\(pid \\d+( on host \\S+)?\\) killed by signal 9 \\(SIGKILL\\); "
        "starting another\n"),
                                           QRegularExpression::MultilineOption);
    static const QRegularExpression ended(
        QStringLiteral("^mprouter: executor \\S+: worker \\(pid \\d+( on host \\S+)?\\) [^\n]*; starting another\n"),
        QRegularExpression::MultilineOption);
    static const QRegularExpression noRouter(
        QStringLiteral("^mprouter worker: cannot connect to the router: [^\n]*\n"),
        QRegularExpression::MultilineOption);
    QString rest = text;
    if (!lost)
        return rest.remove(killed);
    return rest.remove(ended).remove(noRouter);
}

struct WorkerLine
{
    qint64 pid = 0;
    QString host; // ", on HOST" in its first progress line: the machine it runs on
    quint64 from = 0, to = 0;
    bool done = false;
    bool failed = false;
    bool cancelled = false;
    QString failure;       // FAILED (...)
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
        static const QRegularExpression started(QStringLiteral(
            "^worker (\\d+): pid (\\d+), numbers (\\d+) to (\\d+)(?:, on (\\S+))?$"));
        static const QRegularExpression progress(
            QStringLiteral("^worker (\\d+): +\\d+%, \\d+ primes so far(?:, on (\\S+))?$"));
        static const QRegularExpression done(QStringLiteral("^worker (\\d+): done, (\\d+) primes$"));
        static const QRegularExpression failed(QStringLiteral("^worker (\\d+): FAILED \\((.*)\\)$"));
        static const QRegularExpression cancelled(QStringLiteral("^worker (\\d+): cancelled$"));
        while (process.canReadLine()) {
            const QString line = QString::fromUtf8(process.readLine()).trimmed();
            lines.append(line);
            QRegularExpressionMatch m;
            if ((m = started.match(line)).hasMatch()) {
                WorkerLine &w = workers[m.captured(1).toInt()];
                w.pid = m.captured(2).toLongLong();
                w.from = m.captured(3).toULongLong();
                w.to = m.captured(4).toULongLong();
                w.host = m.captured(5);
            } else if ((m = progress.match(line)).hasMatch()) {
                workers[m.captured(1).toInt()].reported = true;
                if (m.capturedLength(2) > 0)
                    workers[m.captured(1).toInt()].host = m.captured(2);
            } else if ((m = done.match(line)).hasMatch()) {
                workers[m.captured(1).toInt()].done = true;
                workers[m.captured(1).toInt()].primes = m.captured(2).toULongLong();
            } else if ((m = failed.match(line)).hasMatch()) {
                workers[m.captured(1).toInt()].failed = true;
                workers[m.captured(1).toInt()].failure = m.captured(2);
            } else if ((m = cancelled.match(line)).hasMatch()) {
                workers[m.captured(1).toInt()].cancelled = true;
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

    bool running() const { return process.state() != QProcess::NotRunning; }

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
    void noWorkerOutlivesAKilledApplication();
    void cancelLeavesNoWorker();
    void workerCommandLineHoldsNoKey();
    void launchLocal_data();
    void launchLocal();
    void badArguments();
    void badRemoteOptions_data();
    void badRemoteOptions();
    // Workers inside a network namespace made by the test.
    void remoteCount_data();
    void remoteCount();
    void remoteWorkersRunInTheNamespace();
    void remoteCancelLeavesNoWorker();
    void remoteWorkerLostAfterTheWindow();
    void workerExitsWhenItsRouterStops_data();
    void workerExitsWhenItsRouterStops();
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
    // The executor's reason: the worker's pid and the signal.
    QCOMPARE(primes.workers.value(1).failure,
             QStringLiteral("worker (pid %1) killed by signal 9 (SIGKILL)").arg(pid));
    for (int i : {0, 2}) {
        const WorkerLine &w = primes.workers.value(i);
        QVERIFY2(w.done && !w.failed, qPrintable(primes.output()));
        QCOMPARE(w.primes, sieveCount(w.from, w.to));
    }
    const QString summary =
        QStringLiteral("primes from 1 to 600000: unknown, 1 of 3 workers failed (the others found %1)")
            .arg(primes.workers.value(0).primes + primes.workers.value(2).primes);
    QVERIFY2(primes.lines.contains(summary), qPrintable(primes.output()));
    // If the others still ran, the executor said it replaced the worker.
    QVERIFY2(withoutReplacementWarnings(primes.stderrText).isEmpty(), qPrintable(primes.stderrText));
}

// The application (primes, with the executor) is SIGKILLed while both its
// workers run a job that never ends by itself: no worker outlives it (a
// worker sees its standard input end, or on Linux its parent's death, and
// exits: <mprouter/worker.h>). This test makes itself the subreaper of
// what primes leaves, so it sees those workers end and reaps them.
void tst_ExamplesPrimes::noWorkerOutlivesAKilledApplication()
{
    QCOMPARE(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    struct Undo
    {
        ~Undo() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
    } undo;
    Primes primes({QStringLiteral("--to"), QStringLiteral("600000"), QStringLiteral("--workers"),
                   QStringLiteral("2"), QStringLiteral("--stall-worker"), QStringLiteral("0"),
                   QStringLiteral("--stall-worker"), QStringLiteral("1")});
    QTRY_VERIFY_WITH_TIMEOUT(primes.workers.value(0).reported && primes.workers.value(1).reported,
                             Deadline);
    const qint64 w0 = primes.workers.value(0).pid, w1 = primes.workers.value(1).pid;
    QVERIFY(w0 > 0 && w1 > 0 && processAlive(w0) && processAlive(w1));
    QCOMPARE(::kill(pid_t(primes.process.processId()), SIGKILL), 0);
    QVERIFY(primes.process.waitForFinished(Deadline));
    // Gone: reaped here (it was reparented to this process), or not ours
    // and no longer there.
    auto gone = [](qint64 pid) {
        int status;
        const pid_t r = ::waitpid(pid_t(pid), &status, WNOHANG);
        return r == pid_t(pid) || (r < 0 && errno == ECHILD && !processAlive(pid));
    };
    QTRY_VERIFY_WITH_TIMEOUT(gone(w0) && gone(w1), Deadline);
}

// SIGTERM cancels a run: a cooperative cancel, every worker stops by
// itself (the executor killed none: "0 killed") and has exited (checked
// by pid) when primes exits 2, without warnings.
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
    QVERIFY2(primes.lines.filter(QStringLiteral("cancelled after")).first().endsWith(
                 QStringLiteral("; every worker stopped, 0 killed")),
             qPrintable(primes.output()));
    for (const WorkerLine &w : qAsConst(primes.workers))
        QVERIFY2(w.cancelled && !w.failed && !w.done, qPrintable(primes.output()));
    // They exited, and primes reaped them, before it exited.
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
    for (const WorkerLine &w : qAsConst(primes.workers)) {
        const QString wrong = senderStringShownBy(w.pid);
        QVERIFY2(wrong.isEmpty(), qPrintable(wrong));
    }
    QCOMPARE(::kill(pid_t(primes.process.processId()), SIGTERM), 0);
    QVERIFY(primes.finish());
}

void tst_ExamplesPrimes::launchLocal_data()
{
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QStringList>("hosts"); // the PRIMES_HOST each worker sees, in order
    const QString worker = QStringLiteral(PRIMES_DIR "/primes-worker");
    // A launch command without {host} and without --hosts: run as it is.
    QTest::newRow("env, no hosts")
        << QStringList{QStringLiteral("--launch"), QStringLiteral("env PRIMES_HOST=here ") + worker}
        << QStringList{QStringLiteral("here"), QStringLiteral("here"), QStringLiteral("here")};
#ifdef MPR_TEST_REMOTE
    // The launch template of the executor (MPR_START_LAUNCH): {host} per
    // worker, hosts taken in turn; the workers are on this machine, so
    // the router listens on loopback only.
    const QStringList loopback{QStringLiteral("--remote-bind"), QStringLiteral("tcp://127.0.0.1:0"),
                               QStringLiteral("--advertise"), QStringLiteral("127.0.0.1")};
    QTest::newRow("env {host}")
        << QStringList{QStringLiteral("--hosts"), QStringLiteral("alpha,beta"),
                       QStringLiteral("--launch"),
                       QStringLiteral("env PRIMES_HOST={host} ") + worker}
               + loopback
        << QStringList{QStringLiteral("alpha"), QStringLiteral("beta"), QStringLiteral("alpha")};
    // A launcher that is a shell script, its words quoted (no shell splits
    // them: QProcess::splitCommand does, with double quotes, then {host}
    // is put in).
    QTest::newRow("sh -c, quoted")
        << QStringList{QStringLiteral("--hosts"), QStringLiteral("n1.example,n2"),
                       QStringLiteral("--launch"),
                       QStringLiteral("sh -c \"PRIMES_HOST=$1 exec $0\" ") + worker
                           + QStringLiteral(" {host}")}
               + loopback
        << QStringList{QStringLiteral("n1.example"), QStringLiteral("n2"),
                       QStringLiteral("n1.example")};
#endif
}

// --launch: the executor starts each worker with the launch command (the
// sender string on its standard input, as ssh would pass it on): every
// worker runs where its host says, the count is right, and a cancel is
// cooperative there too.
void tst_ExamplesPrimes::launchLocal()
{
    QFETCH(QStringList, args);
    QFETCH(QStringList, hosts);
    const QStringList range{QStringLiteral("--from"), QStringLiteral("1"), QStringLiteral("--to"),
                            QStringLiteral("300000"), QStringLiteral("--workers"),
                            QStringLiteral("3")};
    {
        Primes primes(range + args);
        QVERIFY2(primes.finish(), qPrintable(primes.output()));
        QVERIFY2(primes.process.exitCode() == 0, qPrintable(primes.output()));
        QVERIFY2(primes.lines.contains(
                     QStringLiteral("primes from 1 to 300000: %1").arg(sieveCount(1, 300000))),
                 qPrintable(primes.output()));
        QCOMPARE(primes.workers.size(), 3);
        for (const WorkerLine &w : qAsConst(primes.workers))
            QVERIFY2(w.done && w.primes == sieveCount(w.from, w.to), qPrintable(primes.output()));
        QVERIFY2(primes.stderrText.isEmpty(), qPrintable(primes.stderrText));
    }

    // Every worker stalled: each is the launched program (env and sh exec
    // it), with its host in its environment; SIGTERM cancels them all.
    Primes primes(range + args
                  + QStringList{QStringLiteral("--stall-worker"), QStringLiteral("0"),
                                QStringLiteral("--stall-worker"), QStringLiteral("1"),
                                QStringLiteral("--stall-worker"), QStringLiteral("2")});
    QTRY_VERIFY_WITH_TIMEOUT(primes.reportedWorkers() == 3 || !primes.running(), Deadline);
    QVERIFY2(primes.reportedWorkers() == 3, qPrintable(primes.output()));
    // Worker slot i runs on hosts[i % 2]; which chunk it took is the
    // executor's choice: compare the hosts as a whole.
    QStringList seen;
    for (int i = 0; i < 3; i++) {
        const qint64 pid = primes.workers.value(i).pid;
        QCOMPARE(QFileInfo(executable(pid)).fileName(), QStringLiteral("primes-worker"));
        seen.append(QString::fromUtf8(environmentOf(pid, "PRIMES_HOST")));
        if (args.contains(QStringLiteral("--hosts")))
            QCOMPARE(primes.workers.value(i).host, QSysInfo::machineHostName());
        const QString wrong = senderStringShownBy(pid);
        QVERIFY2(wrong.isEmpty(), qPrintable(wrong));
    }
    seen.sort();
    hosts.sort();
    QCOMPARE(seen, hosts);
    QCOMPARE(::kill(pid_t(primes.process.processId()), SIGTERM), 0);
    QVERIFY2(primes.finish(), qPrintable(primes.output()));
    QCOMPARE(primes.process.exitCode(), 2);
    QVERIFY2(primes.lines.contains(QStringLiteral("worker 0: cancelled")), qPrintable(primes.output()));
    QVERIFY2(!primes.lines.filter(QStringLiteral("; every worker stopped, 0 killed")).isEmpty(),
             qPrintable(primes.output()));
    for (const WorkerLine &w : qAsConst(primes.workers))
        QVERIFY2(!processAlive(w.pid), qPrintable(QString::number(w.pid)));
    QVERIFY2(primes.stderrText.isEmpty(), qPrintable(primes.stderrText));
}

void tst_ExamplesPrimes::badArguments()
{
    Primes primes({QStringLiteral("--from"), QStringLiteral("10"), QStringLiteral("--to"),
                   QStringLiteral("5")});
    QVERIFY(primes.finish());
    QCOMPARE(primes.process.exitCode(), 64);
    QVERIFY2(primes.stderrText.contains(QStringLiteral("from <= to")), qPrintable(primes.stderrText));
}

// Options for workers elsewhere that primes refuses before it starts any
// worker (exit status 64, a message that says why); never a host that
// would be contacted.
void tst_ExamplesPrimes::badRemoteOptions_data()
{
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("message");
    const QString launch = QStringLiteral("--launch");
    const QString hosts = QStringLiteral("--hosts");
    QTest::newRow("host with ;")
        << QStringList{hosts, "a;b"}
        << "host \"a;b\" has a character other than letters, digits and . _ : -";
    QTest::newRow("host with a space")
        << QStringList{hosts, "a,b c"} << "host \"b c\" has a character";
    QTest::newRow("host with $") << QStringList{hosts, "$(reboot)"} << "has a character";
    QTest::newRow("host like an option") << QStringList{hosts, "-oProxyCommand"}
                                         << "host \"-oProxyCommand\" starts with '-'";
    QTest::newRow("empty host") << QStringList{hosts, "a,,b"} << "empty host name";
    QTest::newRow("{host} without --hosts") << QStringList{launch, "ssh {host} primes-worker"}
                                            << "--launch has {host}: give --hosts too";
    QTest::newRow("--launch and --worker-program")
        << QStringList{launch, "nice primes-worker", "--worker-program", "/bin/true"}
        << "give --launch or --worker-program, not both";
    QTest::newRow("--window without a remote endpoint") << QStringList{"--window", "2"}
                                                        << "--window need --hosts or --remote-bind";
    QTest::newRow("--window 0")
        << QStringList{hosts, "a", "--window", "0"} << "--window takes seconds";
    QTest::newRow("--window abc")
        << QStringList{hosts, "a", "--window", "abc"} << "--window takes seconds";
#ifdef MPR_TEST_REMOTE
    QTest::newRow("malformed endpoint")
        << QStringList{hosts, "a", launch, "false", "--remote-bind", "tcp://no-port"}
        << "cannot use the remote endpoint tcp://no-port";
    QTest::newRow("malformed advertised host")
        << QStringList{hosts, "a", launch, "false", "--advertise", "a b"}
        << "cannot use the remote endpoint tcp://0.0.0.0:0 advertised as a b";
#else
    QTest::newRow("--hosts without ZeroMQ")
        << QStringList{hosts, "a", launch, "false"}
        << "workers on other machines need mprouter built with ZeroMQ";
#endif
}

void tst_ExamplesPrimes::badRemoteOptions()
{
    QFETCH(QStringList, args);
    QFETCH(QString, message);
    Primes primes(args);
    QVERIFY(primes.finish());
    QCOMPARE(primes.process.exitCode(), 64);
    QVERIFY2(primes.stderrText.contains(message), qPrintable(primes.output()));
    QVERIFY2(primes.workers.isEmpty(), qPrintable(primes.output()));
}

void tst_ExamplesPrimes::remoteCount_data()
{
    QTest::addColumn<quint64>("from");
    QTest::addColumn<quint64>("to");
    QTest::addColumn<int>("workers");
    QTest::addColumn<int>("batch");

    QTest::newRow("1..300000, 3 workers") << quint64(1) << quint64(300000) << 3 << 5000;
    QTest::newRow("1..100000, 2 workers, message every 100") << quint64(1) << quint64(100000) << 2 << 100;
    QTest::newRow("999000..1001000, 4 workers, batch 7") << quint64(999000) << quint64(1001000) << 4 << 7;
}

// The whole job with every worker inside the namespace: the count, each
// worker's count, the endpoint shown, no warning.
void tst_ExamplesPrimes::remoteCount()
{
    QFETCH(quint64, from);
    QFETCH(quint64, to);
    QFETCH(int, workers);
    QFETCH(int, batch);
    REMOTE_HOST(ns);

    Primes primes(QStringList{QStringLiteral("--from"), QString::number(from), QStringLiteral("--to"),
                              QString::number(to), QStringLiteral("--workers"),
                              QString::number(workers), QStringLiteral("--batch"),
                              QString::number(batch)}
                  + remoteOptions(*ns));
    QVERIFY2(primes.finish(), qPrintable(primes.output()));
    QVERIFY2(primes.process.exitCode() == 0, qPrintable(primes.output()));

    const QString summary =
        QStringLiteral("primes from %1 to %2: %3").arg(from).arg(to).arg(sieveCount(from, to));
    QVERIFY2(primes.lines.contains(summary), qPrintable(summary + "\n" + primes.output()));
    QVERIFY2(primes.lines.value(0).endsWith(QStringLiteral(" worker processes on ") + ns->name()),
             qPrintable(primes.output()));
    const QRegularExpression endpoint(
        QStringLiteral("^remote workers connect to tcp://%1:\\d+ \\(ZeroMQ, CURVE\\)$")
            .arg(QRegularExpression::escape(ns->hostAddress())));
    QVERIFY2(endpoint.match(primes.lines.value(1)).hasMatch(), qPrintable(primes.output()));
    QCOMPARE(primes.workers.size(), workers);
    quint64 next = from;
    for (const WorkerLine &w : qAsConst(primes.workers)) {
        // As the worker reports it: the namespace has this machine's name.
        QCOMPARE(w.host, QSysInfo::machineHostName());
        QCOMPARE(w.from, next);
        next = w.to + 1;
        QVERIFY2(w.done && !w.failed, qPrintable(primes.output()));
        QCOMPARE(w.primes, sieveCount(w.from, w.to));
    }
    QCOMPARE(next, to + 1);
    QVERIFY2(primes.stderrText.isEmpty(), qPrintable(primes.stderrText));
}

// Each worker really runs in the namespace (where the router's local
// socket does not exist, so only ZeroMQ can have carried its messages),
// and no process that primes started shows a sender string.
void tst_ExamplesPrimes::remoteWorkersRunInTheNamespace()
{
    REMOTE_HOST(ns);
    const QString theirs = namespaceOf(*ns);
    const QString ours = netNamespace(QStringLiteral("self"));
    QVERIFY(!theirs.isEmpty() && !ours.isEmpty() && theirs != ours);

    Primes primes(QStringList{QStringLiteral("--to"), QStringLiteral("200000"),
                              QStringLiteral("--workers"), QStringLiteral("2"),
                              QStringLiteral("--stall-worker"), QStringLiteral("0"),
                              QStringLiteral("--stall-worker"), QStringLiteral("1")}
                  + remoteOptions(*ns));
    // (or primes ended: fail at once, not after a long QTRY)
    QTRY_VERIFY_WITH_TIMEOUT(primes.reportedWorkers() == 2 || !primes.running(), Deadline);
    QVERIFY2(primes.reportedWorkers() == 2, qPrintable(primes.output())); // stalled: still running
    for (const WorkerLine &w : qAsConst(primes.workers)) {
        const QList<qint64> processes = workerProcesses(w.pid);
        QVERIFY2(processes.size() == 1,
                 qPrintable(QStringLiteral("pid %1: %2 primes-worker processes")
                                .arg(w.pid)
                                .arg(processes.size())));
        QCOMPARE(netNamespace(QString::number(processes.first())), theirs);
    }
    const qint64 pid = primes.process.processId();
    const QList<qint64> started = descendants(pid);
    QVERIFY(started.size() >= 2);
    for (qint64 p : QList<qint64>{pid} + started) {
        const QString wrong = senderStringShownBy(p);
        QVERIFY2(wrong.isEmpty(), qPrintable(wrong));
    }
    QCOMPARE(::kill(pid_t(pid), SIGTERM), 0);
    QVERIFY(primes.finish());
    QCOMPARE(primes.process.exitCode(), 2);
}

// SIGTERM cancels a run with remote workers: every process primes started
// (the workers in the namespace, and whatever launched them) is gone when
// primes has exited, and nothing was warned about.
void tst_ExamplesPrimes::remoteCancelLeavesNoWorker()
{
    REMOTE_HOST(ns);
    Primes primes(QStringList{QStringLiteral("--to"), QStringLiteral("600000"),
                              QStringLiteral("--workers"), QStringLiteral("3"),
                              QStringLiteral("--stall-worker"), QStringLiteral("0"),
                              QStringLiteral("--stall-worker"), QStringLiteral("1"),
                              QStringLiteral("--stall-worker"), QStringLiteral("2")}
                  + remoteOptions(*ns));
    QTRY_VERIFY_WITH_TIMEOUT(primes.reportedWorkers() == 3 || !primes.running(), Deadline);
    QVERIFY2(primes.reportedWorkers() == 3, qPrintable(primes.output()));
    const qint64 pid = primes.process.processId();
    const QList<qint64> started = descendants(pid);
    int inNamespace = 0;
    for (qint64 p : started) {
        QVERIFY(processAlive(p));
        inNamespace += netNamespace(QString::number(p)) == namespaceOf(*ns);
    }
    QCOMPARE(inNamespace, 3);
    QCOMPARE(::kill(pid_t(pid), SIGTERM), 0);

    QVERIFY2(primes.finish(), qPrintable(primes.output()));
    QCOMPARE(primes.process.exitCode(), 2);
    QVERIFY2(primes.lines.filter(QStringLiteral("cancelled after")).size() == 1,
             qPrintable(primes.output()));
    QVERIFY2(!primes.lines.filter(QStringLiteral("; every worker stopped, 0 killed")).isEmpty(),
             qPrintable(primes.output())); // cooperative over ZeroMQ too
    for (qint64 p : started)
        QVERIFY2(!processAlive(p), qPrintable(QString::number(p)));
    QVERIFY2(primes.stderrText.isEmpty(), qPrintable(primes.stderrText));
}

// The link to the namespace goes down while worker 0 (stalled) runs there:
// primes reports it failed once the reconnect window (--window 2) has
// passed without a word from it (not after the library's default of
// 10 s), ends its process, and finishes with the other worker's count.
void tst_ExamplesPrimes::remoteWorkerLostAfterTheWindow()
{
    REMOTE_HOST(ns);
    Primes primes(QStringList{QStringLiteral("--to"), QStringLiteral("300000"),
                              QStringLiteral("--workers"), QStringLiteral("2"),
                              QStringLiteral("--stall-worker"), QStringLiteral("0"),
                              QStringLiteral("--window"), QStringLiteral("2")}
                  + remoteOptions(*ns));
    auto ready = [&] { return primes.workers.value(0).reported && primes.workers.value(1).done; };
    QTRY_VERIFY_WITH_TIMEOUT(ready() || !primes.running(), Deadline);
    QVERIFY2(ready(), qPrintable(primes.output()));
    const QList<qint64> stalled = workerProcesses(primes.workers.value(0).pid);
    QCOMPARE(stalled.size(), 1);
    QVERIFY(ns->setLinkUp(false));
    QElapsedTimer down;
    down.start();
    QTRY_VERIFY_WITH_TIMEOUT(primes.workers.value(0).failed || !primes.running(), Deadline);
    QVERIFY2(primes.workers.value(0).failed, qPrintable(primes.output()));
    const qint64 lostAfter = down.elapsed();
    // Heard from at most a heartbeat (1 s) before the link went down.
    QVERIFY2(lostAfter >= 900 && lostAfter < 9000, qPrintable(QString::number(lostAfter)));
    QVERIFY2(primes.finish(), qPrintable(primes.output()));
    QVERIFY(ns->setLinkUp(true));
    QCOMPARE(primes.process.exitCode(), 1);
    QVERIFY2(primes.workers.value(0).failure.startsWith(
                 QStringLiteral("worker lost over the network")),
             qPrintable(primes.output()));
    const WorkerLine &w1 = primes.workers.value(1);
    QCOMPARE(w1.primes, sieveCount(w1.from, w1.to));
    QVERIFY2(primes.lines.contains(
                 QStringLiteral("primes from 1 to 300000: unknown, 1 of 2 workers failed "
                                "(the others found %1)")
                     .arg(w1.primes)),
             qPrintable(primes.output()));
    QVERIFY2(!processAlive(stalled.first()), "the lost worker's process was not ended");
    // Worker 1's process, idle in the namespace, is lost too: the executor
    // replaces it, and the replacement cannot reach the router.
    QVERIFY2(withoutReplacementWarnings(primes.stderrText, true).isEmpty(),
             qPrintable(primes.stderrText));
}

void tst_ExamplesPrimes::workerExitsWhenItsRouterStops_data()
{
    QTest::addColumn<bool>("remote");
    QTest::newRow("here") << false;
    QTest::newRow("in a network namespace") << true;
}

// primes-worker on its own, with a router of this test (no executor):
// once its first message (the worker's "ready" of the job protocol) is
// here the router stops, and the worker, waiting for a job, sees that its
// router is gone (MPR_EPIPE) and exits with status 4 (<mprouter/worker.h>),
// though its standard input stays open. (Over ssh a worker whose launcher
// was killed ends this way too, if its standard input did not end it
// first.)
void tst_ExamplesPrimes::workerExitsWhenItsRouterStops()
{
    QFETCH(bool, remote);
    std::unique_ptr<NetNs> ns;
    if (remote) {
        QString why;
        ns = makeRemoteHost(&why);
        if (!ns)
            QSKIP(qPrintable(why));
        QVERIFY2(ns->ok(), qPrintable(ns->why()));
    }
    mpr_fd_loop *loop = nullptr;
    mpr_router *router = nullptr;
    QCOMPARE(mpr_fd_loop_new(&loop), 0);
    auto cleanUp = qScopeGuard([&] {
        mpr_router_free(router);
        mpr_fd_loop_free(loop);
        mpr_set_log_handler(nullptr, nullptr);
    });
    // Messages that arrive after the pipe is closed are warned about: not here.
    mpr_set_log_handler([](void *, int, const char *) {}, nullptr);
    QCOMPARE(mpr_router_new(&router, mpr_fd_loop_event_loop(loop)), 0);
    if (remote) {
        const QByteArray bind = QStringLiteral("tcp://%1:0").arg(ns->hostAddress()).toLatin1();
        const QByteArray host = ns->hostAddress().toLatin1();
        QCOMPARE(mpr_router_set_remote(router, bind.constData(), host.constData()), 0);
        QCOMPARE(mpr_router_set_remote_window(router, 2.0), 0); // if the router's word is lost
    }
    QCOMPARE(mpr_router_start(router), 0);
    mpr_sender *sender = nullptr;
    mpr_receiver *receiver = nullptr;
    QCOMPARE(mpr_router_pipe(router, &sender, &receiver), 0);
    int messages = 0;
    mpr_receiver_set_callback(
        receiver, [](void *arg, const void *, size_t) { ++*static_cast<int *>(arg); }, &messages);
    QByteArray text(1024, '\0');
    const int len = mpr_sender_to_string(sender, text.data(), size_t(text.size()));
    mpr_sender_free(sender);
    QVERIFY(len > 0 && len < text.size());
    text.truncate(len);

    QStringList argv{QStringLiteral(PRIMES_DIR "/primes-worker")};
    if (remote)
        argv = ns->wrap(argv);
    QProcess worker;
    worker.start(argv.first(), argv.mid(1));
    QVERIFY(worker.waitForStarted(Deadline));
    worker.write(text + '\n'); // and its standard input stays open
    QVERIFY(worker.waitForBytesWritten(Deadline));
    auto arrived = [](void *arg) { return *static_cast<int *>(arg) > 0 ? 1 : 0; };
    QCOMPARE(mpr_router_route_until(router, arrived, &messages, Deadline / 1000.0), 0);
    QCOMPARE(mpr_router_close_pipe(router, receiver), 0);
    QCOMPARE(mpr_router_stop(router), 0);

    QVERIFY2(worker.waitForFinished(Deadline), "the worker did not exit");
    const QString errors = QString::fromLocal8Bit(worker.readAllStandardError());
    QCOMPARE(worker.exitStatus(), QProcess::NormalExit);
    QVERIFY2(worker.exitCode() == 4, qPrintable(QStringLiteral("status %1: %2")
                                                   .arg(worker.exitCode())
                                                   .arg(errors)));
}

QTEST_GUILESS_MAIN(tst_ExamplesPrimes)
#include "tst_examples_primes.moc"
