/*
 * primes - count the primes in a range with worker processes that report
 * to the main thread through mprouter.
 *
 *     primes                      the window (see primeswindow.h)
 *     primes --headless           the same job without a window: progress
 *                                 lines, then a summary
 *     primes --help               every option
 *     primes --hosts a,b --launch 'ssh {host} primes-worker'
 *                                 workers on other machines (ZeroMQ, CURVE)
 *
 * Without a display (no DISPLAY / WAYLAND_DISPLAY, or QT_QPA_PLATFORM
 * offscreen or minimal) primes runs headless. SIGINT and SIGTERM cancel a
 * headless run and close the window, with the same cooperative cancel as
 * the Cancel button: the workers stop by themselves, none outlives primes.
 */
#include "primesjob.h"
#include "primeswindow.h"

#include <QtCore/QCommandLineParser>
#include <QtCore/QCoreApplication>
#include <QtCore/QSocketNotifier>
#include <QtCore/QThread>
#include <QtWidgets/QApplication>

#include <csignal>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace {

// SIGINT / SIGTERM reach the event loop through a pipe.
int signalPipe[2] = {-1, -1};

void onSignal(int)
{
    const char c = 0;
    const ssize_t rc = write(signalPipe[1], &c, 1);
    (void)rc;
}

void catchSignals(QObject *context, const std::function<void()> &handler)
{
    if (pipe2(signalPipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return;
    QSocketNotifier *notifier = new QSocketNotifier(signalPipe[0], QSocketNotifier::Read, context);
    QObject::connect(notifier, &QSocketNotifier::activated, context, [handler] {
        char buf[16];
        while (read(signalPipe[0], buf, sizeof buf) > 0) {
        }
        handler();
    });
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = onSignal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

bool wantsHeadless(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!std::strcmp(argv[i], "--headless"))
            return true;
    const QByteArray platform = qgetenv("QT_QPA_PLATFORM");
    if (platform.startsWith("offscreen") || platform.startsWith("minimal"))
        return true;
    if (platform.isEmpty() && qEnvironmentVariableIsEmpty("DISPLAY")
        && qEnvironmentVariableIsEmpty("WAYLAND_DISPLAY")) {
        std::fprintf(stderr, "primes: no display (DISPLAY is not set), running headless\n");
        return true;
    }
    return false;
}

void print(const QString &line)
{
    std::printf("%s\n", qPrintable(line));
    std::fflush(stdout);
}

// The headless mode: progress lines (a worker's start, its first message,
// every tenth of its chunk, its end) and a summary.
class Headless : public QObject
{
public:
    explicit Headless(PrimesJob *job) : job(job)
    {
        connect(job, &PrimesJob::workerStarted, this, [this](int i) {
            const PrimesJob::Worker &w = this->job->worker(i);
            print(QStringLiteral("worker %1: pid %2, numbers %3 to %4")
                      .arg(i).arg(w.pid).arg(w.from).arg(w.to));
        });
        connect(job, &PrimesJob::workerProgress, this, [this](int i) {
            const PrimesJob::Worker &w = this->job->worker(i);
            if (w.state != PrimesJob::WorkerState::Running)
                return;
            const int tenth = int(w.checked * 10 / w.size());
            if (w.messages == 1 || tenth > tenths.value(i)) {
                tenths[i] = tenth;
                print(QStringLiteral("worker %1: %2%, %3 primes so far%4")
                          .arg(i).arg(int(w.checked * 100 / w.size()), 3).arg(w.primes)
                          .arg(w.messages == 1 && !w.host.isEmpty()
                                   ? QStringLiteral(", on ") + w.host : QString()));
            }
        });
        connect(job, &PrimesJob::workerFinished, this, [this](int i) {
            const PrimesJob::Worker &w = this->job->worker(i);
            if (w.state == PrimesJob::WorkerState::Done)
                print(QStringLiteral("worker %1: done, %2 primes").arg(i).arg(w.primes));
            else if (w.state == PrimesJob::WorkerState::Cancelled)
                print(QStringLiteral("worker %1: cancelled").arg(i));
            else
                print(QStringLiteral("worker %1: FAILED (%2)").arg(i).arg(w.failure));
        });
        connect(job, &PrimesJob::finished, this, [this] { summary(); });
        connect(job, &PrimesJob::cancelled, this, [this] { summary(); });
    }

    void summary()
    {
        const QString seconds = QString::number(job->elapsedSeconds(), 'f', 2);
        int status = 0;
        if (job->state() == PrimesJob::State::Cancelled) {
            print(QStringLiteral("cancelled after %1 seconds; every worker stopped, %2 killed")
                      .arg(seconds)
                      .arg(job->executorStats().workers_killed));
            status = 2;
        } else if (job->failedWorkers() > 0) {
            quint64 others = 0;
            for (int i = 0; i < job->workerCount(); i++)
                if (job->worker(i).state == PrimesJob::WorkerState::Done)
                    others += job->worker(i).primes;
            print(QStringLiteral("primes from %1 to %2: unknown, %3 of %4 workers failed "
                                 "(the others found %5)")
                      .arg(job->from()).arg(job->to()).arg(job->failedWorkers())
                      .arg(job->workerCount()).arg(others));
            status = 1;
        } else {
            print(QStringLiteral("primes from %1 to %2: %3")
                      .arg(job->from()).arg(job->to()).arg(job->primes()));
        }
        print(QStringLiteral("%1 workers, %2 seconds, %3 messages routed")
                  .arg(job->workerCount()).arg(seconds).arg(job->messages()));
        QCoreApplication::exit(status);
    }

private:
    PrimesJob *job;
    QHash<int, int> tenths;
};

} // namespace

int main(int argc, char **argv)
{
    const bool headless = wantsHeadless(argc, argv);
    QScopedPointer<QCoreApplication> app(headless ? new QCoreApplication(argc, argv)
                                                  : new QApplication(argc, argv));
    QCoreApplication::setApplicationName(QStringLiteral("primes"));

    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("Counts the primes in a range with worker processes that report "
                       "through mprouter."));
    parser.addHelpOption();
    const QCommandLineOption headlessOption(
        QStringLiteral("headless"), QStringLiteral("No window: print progress and a summary."));
    const QCommandLineOption fromOption(QStringLiteral("from"),
                                        QStringLiteral("First number (default 1)."),
                                        QStringLiteral("n"), QStringLiteral("1"));
    const QCommandLineOption toOption(QStringLiteral("to"),
                                      QStringLiteral("Last number (default 20000000)."),
                                      QStringLiteral("n"), QStringLiteral("20000000"));
    const QCommandLineOption workersOption(
        QStringLiteral("workers"),
        QStringLiteral("Worker processes (default: the number of cores, %1).")
            .arg(QThread::idealThreadCount()),
        QStringLiteral("n"), QString::number(qMax(1, QThread::idealThreadCount())));
    const QCommandLineOption batchOption(
        QStringLiteral("batch"),
        QStringLiteral("Numbers a worker tests between two messages (default 5000)."),
        QStringLiteral("n"), QStringLiteral("5000"));
    const QCommandLineOption startOption(QStringLiteral("start"),
                                         QStringLiteral("Window: start at once."));
    const QCommandLineOption workerOption(
        QStringLiteral("worker-program"),
        QStringLiteral("The worker program (default: primes-worker next to primes)."),
        QStringLiteral("path"));
    const QCommandLineOption stallOption(
        QStringLiteral("stall-worker"),
        QStringLiteral("For tests: worker i stops after its first message and waits to be "
                       "cancelled or killed (repeatable)."),
        QStringLiteral("i"));
    const QCommandLineOption hostsOption(
        QStringLiteral("hosts"),
        QStringLiteral("Run the workers on these hosts (comma-separated; worker i on host i "
                       "modulo the list) with the launch command. Implies --remote-bind."),
        QStringLiteral("a,b,..."));
    const QCommandLineOption launchOption(
        QStringLiteral("launch"),
        QStringLiteral("The command that starts a worker, {host} replaced by its host (default "
                       "with --hosts: 'ssh {host} primes-worker'): a program and its arguments, "
                       "split as a shell would (quotes), run without a shell. The sender string "
                       "goes on its standard input."),
        QStringLiteral("command"));
    const QCommandLineOption remoteBindOption(
        QStringLiteral("remote-bind"),
        QStringLiteral("Accept workers on other machines at this ZeroMQ endpoint (default with "
                       "--hosts: tcp://0.0.0.0:0, any free port; a fixed port such as "
                       "tcp://0.0.0.0:5555 is easier to open in a firewall)."),
        QStringLiteral("endpoint"));
    const QCommandLineOption advertiseOption(
        QStringLiteral("advertise"),
        QStringLiteral("The host name or address remote workers use to reach this machine "
                       "(default: this host's name)."),
        QStringLiteral("host"));
    const QCommandLineOption windowOption(
        QStringLiteral("window"),
        QStringLiteral("Seconds a remote worker may go unheard (a broken connection that heals "
                       "within them loses nothing) before it is reported lost (default 10)."),
        QStringLiteral("s"));
    parser.addOptions({headlessOption, fromOption, toOption, workersOption, batchOption,
                       startOption, workerOption, stallOption, hostsOption, launchOption,
                       remoteBindOption, advertiseOption, windowOption});
    parser.process(*app);

    bool ok1, ok2, ok3, ok4;
    const quint64 from = parser.value(fromOption).toULongLong(&ok1);
    const quint64 to = parser.value(toOption).toULongLong(&ok2);
    const int workers = parser.value(workersOption).toInt(&ok3);
    const quint64 batch = parser.value(batchOption).toULongLong(&ok4);
    if (!ok1 || !ok2 || !ok3 || !ok4 || batch == 0) {
        std::fprintf(stderr, "primes: --from, --to, --workers and --batch take numbers\n");
        return 64;
    }
    QSet<int> stalled;
    for (const QString &i : parser.values(stallOption))
        stalled.insert(i.toInt());

    // Workers elsewhere.
    QStringList hosts;
    if (parser.isSet(hostsOption)) {
        hosts = parser.value(hostsOption).split(QLatin1Char(','));
        for (const QString &host : qAsConst(hosts)) {
            QString why;
            if (!PrimesJob::isValidHost(host, &why)) {
                std::fprintf(stderr, "primes: --hosts: %s\n", qPrintable(why));
                return 64;
            }
        }
    }
    QString launch = parser.value(launchOption);
    if (launch.isEmpty() && !hosts.isEmpty())
        launch = QStringLiteral("ssh {host} primes-worker");
    if (parser.isSet(launchOption) && parser.isSet(workerOption)) {
        std::fprintf(stderr, "primes: give --launch or --worker-program, not both\n");
        return 64;
    }
    if (launch.contains(QLatin1String("{host}")) && hosts.isEmpty()) {
        std::fprintf(stderr, "primes: --launch has {host}: give --hosts too\n");
        return 64;
    }
    QString bind = parser.value(remoteBindOption);
    if (bind.isEmpty() && !hosts.isEmpty())
        bind = QStringLiteral("tcp://0.0.0.0:0");
    double reconnectWindow = 0;
    if (parser.isSet(windowOption)) {
        bool ok = false;
        reconnectWindow = parser.value(windowOption).toDouble(&ok);
        if (!ok || !(reconnectWindow > 0) || reconnectWindow > 3600) {
            std::fprintf(stderr, "primes: --window takes seconds, more than 0 and at most 3600\n");
            return 64;
        }
    }
    if (bind.isEmpty() && (parser.isSet(advertiseOption) || parser.isSet(windowOption))) {
        std::fprintf(stderr, "primes: --advertise and --window need --hosts or --remote-bind\n");
        return 64;
    }

    auto setUp = [&](PrimesJob *job) {
        job->setBatch(batch);
        job->setStalledWorkers(stalled);
        if (parser.isSet(workerOption))
            job->setWorkerProgram(parser.value(workerOption));
        job->setLaunchCommand(launch);
        job->setHosts(hosts);
        job->setRemote(bind, parser.value(advertiseOption));
        job->setRemoteWindow(reconnectWindow);
    };

    if (headless) {
        PrimesJob job;
        setUp(&job);
        Headless reporter(&job);
        catchSignals(&job, [&job] { job.cancel(); });
        QString error;
        if (!job.start(from, to, workers, &error)) {
            std::fprintf(stderr, "primes: %s\n", qPrintable(error));
            return 64;
        }
        const QString where =
            hosts.isEmpty() ? QString() : QStringLiteral(" on ") + hosts.join(QStringLiteral(", "));
        print(QStringLiteral("counting primes from %1 to %2 with %3 worker processes%4")
                  .arg(from).arg(to).arg(job.workerCount()).arg(where));
        if (!job.remoteEndpoint().isEmpty())
            print(QStringLiteral("remote workers connect to %1 (ZeroMQ, CURVE)")
                      .arg(job.remoteEndpoint()));
        return app->exec();
    }

    PrimesWindow window;
    setUp(window.job());
    if (from <= 2000000000 && to <= 2000000000)
        window.setRange(from, to);
    window.setWorkers(workers);
    catchSignals(&window, [&window] { window.close(); });
    window.show();
    if (parser.isSet(startOption))
        window.start();
    return app->exec();
}
