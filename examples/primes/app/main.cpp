/*
 * primes - count the primes in a range with worker processes that report
 * to the main thread through mprouter.
 *
 *     primes                      the window (see primeswindow.h)
 *     primes --headless           the same job without a window: progress
 *                                 lines, then a summary
 *     primes --help               every option
 *
 * Without a display (no DISPLAY / WAYLAND_DISPLAY, or QT_QPA_PLATFORM
 * offscreen or minimal) primes runs headless. SIGINT and SIGTERM cancel a
 * headless run and close the window, with the same clean shutdown as the
 * Cancel button: no worker outlives primes.
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
                print(QStringLiteral("worker %1: %2%, %3 primes so far")
                          .arg(i).arg(int(w.checked * 100 / w.size()), 3).arg(w.primes));
            }
        });
        connect(job, &PrimesJob::workerFinished, this, [this](int i) {
            const PrimesJob::Worker &w = this->job->worker(i);
            if (w.state == PrimesJob::WorkerState::Done)
                print(QStringLiteral("worker %1: done, %2 primes").arg(i).arg(w.primes));
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
            print(QStringLiteral("cancelled after %1 seconds; every worker was stopped")
                      .arg(seconds));
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
                       "killed (repeatable)."),
        QStringLiteral("i"));
    parser.addOptions({headlessOption, fromOption, toOption, workersOption, batchOption,
                       startOption, workerOption, stallOption});
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

    auto setUp = [&](PrimesJob *job) {
        job->setBatch(batch);
        job->setStalledWorkers(stalled);
        if (parser.isSet(workerOption))
            job->setWorkerProgram(parser.value(workerOption));
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
        print(QStringLiteral("counting primes from %1 to %2 with %3 worker processes")
                  .arg(from).arg(to).arg(job.workerCount()));
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
