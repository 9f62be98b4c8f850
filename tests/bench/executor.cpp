/*
 * executor.cpp - the executor figures of issue 17 (section 6): mprouter's
 * executor (<mprouter/executor.h>, 4 workers in MPR_START_EXEC mode, under
 * the Qt event loop) against its baseline, Python 3's
 * concurrent.futures.ProcessPoolExecutor(4), which ppe_bench.py measures
 * in a child process the same way.
 *
 * The workers are this program itself, exec'ed with --exec-worker (main()
 * calls execWorkerMain() before it makes the QCoreApplication): tasks
 * "tiny" (x -> 3x + 1), "spin" (tests for cancel every millisecond) and
 * "flood" (progress as fast as it can). They never touch Qt.
 */
#include "bench.h"

#include <QtCore/QByteArray>
#include <QtCore/QCoreApplication>
#include <QtCore/QEventLoop>
#include <QtCore/QFileInfo>
#include <QtCore/QObject>
#include <QtCore/QProcess>
#include <QtCore/QStandardPaths>
#include <QtCore/QStringList>
#include <QtCore/QTimer>

#include <mprouter/mprouter.h>
#include <mprouter/qt.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

namespace bench {

namespace {

std::string skipWhy;

uint64_t tinyOf(uint64_t x)
{
    return 3 * x + 1;
}

/* ---------------------------- worker side ---------------------------- */

int taskTiny(mpr_task *task, const void *arg, size_t size)
{
    uint64_t x;
    if (size != sizeof x)
        return mpr_task_fail(task, "tiny needs 8 bytes, got %zu", size);
    memcpy(&x, arg, sizeof x);
    x = tinyOf(x);
    return mpr_task_result(task, &x, sizeof x);
}

/* Until cancelled, testing every millisecond (at most 120 s, then fails). */
int taskSpin(mpr_task *task, const void *, size_t)
{
    for (int i = 0; i < 120000; i++) {
        if (mpr_task_cancelled(task))
            return 0;
        struct timespec ts = {0, 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return mpr_task_fail(task, "spin was never cancelled");
}

/* Progress 0, 1, 2, ... (8 bytes each) flat out until the cap or the
 * duration has passed; the result is the number sent. */
struct FloodArgs {
    uint64_t cap;
    int64_t durationNs;
};

int taskFlood(mpr_task *task, const void *arg, size_t size)
{
    FloodArgs a;
    if (size != sizeof a)
        return mpr_task_fail(task, "flood needs %zu bytes, got %zu", sizeof a, size);
    memcpy(&a, arg, sizeof a);
    const int64_t end = nowNs() + a.durationNs;
    uint64_t n = 0;
    for (;;) {
        int rc = mpr_task_progress(task, &n, sizeof n);
        if (rc != 0)
            return mpr_task_fail(task, "progress %llu: %s", (unsigned long long)n, mpr_strerror(rc));
        n++;
        if (n >= a.cap || ((n & 63) == 0 && nowNs() >= end))
            break;
    }
    return mpr_task_result(task, &n, sizeof n);
}

/* ---------------------------- application side ---------------------------- */

/* A router and an executor of 4 exec'ed workers under the Qt loop. */
struct Exec {
    std::string error;
    mpr_router *router = nullptr;
    mpr_executor *ex = nullptr;
    QEventLoop *qloop = nullptr;
    bool closing = false; /* in teardown: what callbacks say no longer counts */

    ~Exec() { teardown(); }

    void fail(const std::string &e)
    {
        if (closing)
            return;
        if (error.empty())
            error = e;
        wake();
    }
    void wake()
    {
        if (qloop)
            qloop->quit();
    }

    mpr_executor_stats stats() const
    {
        mpr_executor_stats st;
        memset(&st, 0, sizeof st);
        mpr_executor_get_stats(ex, &st);
        return st;
    }

    /* Run the Qt loop until cond() holds, an error, or the timeout;
     * callbacks call wake() when cond may have become true, and a timer
     * checks every checkMs too. */
    bool runUntil(const std::function<bool()> &cond, double timeoutS, int checkMs,
                  const char *what)
    {
        const int64_t deadline = nowNs() + (int64_t)(timeoutS * 1e9);
        QEventLoop loop;
        qloop = &loop;
        QTimer watchdog;
        watchdog.setInterval(checkMs);
        QObject::connect(&watchdog, &QTimer::timeout, [&] {
            if (cond() || nowNs() > deadline)
                loop.quit();
        });
        watchdog.start();
        while (error.empty() && !cond() && nowNs() <= deadline)
            loop.exec();
        qloop = nullptr;
        if (error.empty() && !cond())
            error = strf("timed out after %.0f s waiting for %s", timeoutS, what);
        return error.empty();
    }

    /* queueLimit: mpr_router_set_queue_limit (0: none, the default) */
    /* jobsAhead: mpr_executor_options.jobs_ahead */
    bool setup(bool newestOnly, size_t queueLimit = 0, int jobsAhead = 0)
    {
        int rc = mpr_router_new(&router, mpr_qt_event_loop());
        if (rc == 0 && queueLimit)
            rc = mpr_router_set_queue_limit(router, queueLimit);
        if (rc == 0)
            rc = mpr_router_start(router);
        if (rc < 0) {
            error = strf("router start: %s", mpr_strerror(rc));
            return false;
        }
        const QByteArray self = QCoreApplication::applicationFilePath().toLocal8Bit();
        const char *argv[] = {self.constData(), "--exec-worker", nullptr};
        mpr_executor_options o;
        mpr_executor_options_init(&o);
        o.workers = 4;
        o.start = MPR_START_EXEC;
        o.argv = argv;
        o.newest_progress_only = newestOnly ? 1 : 0;
        o.jobs_ahead = jobsAhead;
        rc = mpr_executor_new(&ex, router, mpr_qt_event_loop(), &o);
        if (rc < 0) {
            error = strf("mpr_executor_new: %s", mpr_strerror(rc));
            return false;
        }
        /* the clock starts with every worker connected and initialised */
        return runUntil([this] { return stats().workers_ready == 4; }, (double)opt.timeoutS, 2,
                        "4 workers to be ready");
    }

    /* Every worker started once and none was killed or replaced: what a
     * measurement of cooperative work must leave. */
    bool checkWorkers()
    {
        mpr_executor_stats st = stats();
        if (st.workers_started != 4 || st.workers_killed || st.start_failures)
            error = strf("workers: %llu started, %llu killed, %llu start failures (want 4, 0, 0)",
                         (unsigned long long)st.workers_started,
                         (unsigned long long)st.workers_killed,
                         (unsigned long long)st.start_failures);
        return error.empty();
    }

    /* An orderly shutdown (the workers exit by themselves), then the router. */
    void teardown()
    {
        closing = true;
        if (ex) {
            if (mpr_executor_state(ex) == MPR_EXECUTOR_RUNNING &&
                mpr_executor_shutdown(ex, 5.0, nullptr, nullptr) == 0) {
                std::string keep = error;
                error.clear();
                if (!runUntil([this] { return mpr_executor_state(ex) == MPR_EXECUTOR_SHUT_DOWN; },
                              10.0, 2, "the executor to shut down"))
                    progress("  executor: %s", error.c_str());
                error = keep;
            }
            mpr_executor_free(ex); /* kills whatever is left */
            ex = nullptr;
        }
        if (router) {
            mpr_router_stop(router);
            mpr_router_free(router);
            router = nullptr;
        }
    }
};

/* CPU time (user + system, ns) a process has used so far, from
 * /proc/PID/stat (clock ticks: 10 ms at 100 Hz); -1 if unreadable. */
int64_t procCpuNs(int64_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* after the command name */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (int64_t)(ut + st) * (1000000000 / sysconf(_SC_CLK_TCK));
}

bool failed(const std::string &fig, const std::string &why)
{
    progress("  %s: FAIL: %s", fig.c_str(), why.c_str());
    return false;
}

bool skipped(const std::string &why)
{
    skipWhy = why;
    return true;
}

/* --------------------------- the Python baseline --------------------------- */

/* Where ppe_bench.py is: next to this program (a copy, or an install),
 * else in the source tree this program was built from. */
QString ppeScript()
{
    QString here = QCoreApplication::applicationDirPath() + QStringLiteral("/ppe_bench.py");
    if (QFileInfo::exists(here))
        return here;
#ifdef MPR_BENCH_PPE_SCRIPT
    if (QFileInfo::exists(QStringLiteral(MPR_BENCH_PPE_SCRIPT)))
        return QStringLiteral(MPR_BENCH_PPE_SCRIPT);
#endif
    return QString();
}

/* Run ppe_bench.py MODE ARGS with opt.python; *fields gets the KEY=VALUE
 * pairs of its "PPE" line. Returns 1 (ran), 0 (skipped: skipWhy is
 * set) or -1 (failed: *err). */
int runPpe(const QStringList &args, std::map<std::string, double> *fields, std::string *err)
{
    QString python = QString::fromStdString(opt.python);
    if (!python.contains(QLatin1Char('/'))) {
        QString found = QStandardPaths::findExecutable(python);
        if (found.isEmpty()) {
            skipped(strf("%s not found in PATH", opt.python.c_str()));
            return 0;
        }
        python = found;
    } else if (!QFileInfo(python).isExecutable()) {
        skipped(strf("%s is not an executable", opt.python.c_str()));
        return 0;
    }
    QString script = ppeScript();
    if (script.isEmpty()) {
        *err = "ppe_bench.py not found next to mpr_bench nor in its source folder";
        return -1;
    }
    QProcess p;
    p.setProcessChannelMode(QProcess::SeparateChannels);
    p.start(python, QStringList() << script << args);
    if (!p.waitForStarted(10000)) {
        skipped(strf("cannot run %s: %s", qPrintable(python), qPrintable(p.errorString())));
        return 0;
    }
    if (!p.waitForFinished((int)std::min<long>(opt.timeoutS, 600) * 1000)) {
        p.kill();
        p.waitForFinished(5000);
        *err = strf("%s did not end within %ld s", qPrintable(script), opt.timeoutS);
        return -1;
    }
    const QString out = QString::fromLocal8Bit(p.readAllStandardOutput());
    const QString errText = QString::fromLocal8Bit(p.readAllStandardError()).trimmed();
    if (p.exitStatus() == QProcess::NormalExit && p.exitCode() == 77) {
        QString why = out.trimmed();
        if (why.startsWith(QLatin1String("SKIP ")))
            why = why.mid(5);
        skipped(strf("%s: %s", qPrintable(python), qPrintable(why)));
        return 0;
    }
    if (p.exitStatus() != QProcess::NormalExit || p.exitCode() != 0) {
        /* a Python too old for the script, or one without a working pool */
        if (errText.contains(QLatin1String("SyntaxError")) ||
            errText.contains(QLatin1String("ModuleNotFoundError")) ||
            errText.contains(QLatin1String("ImportError"))) {
            skipped(strf("%s cannot run the baseline: %s", qPrintable(python),
                         qPrintable(errText.section(QLatin1Char('\n'), -1))));
            return 0;
        }
        *err = strf("ppe_bench.py failed (exit %d): %s", p.exitCode(),
                    qPrintable(errText.isEmpty() ? out.trimmed() : errText));
        return -1;
    }
    for (const QString &line : out.split(QLatin1Char('\n'))) {
        if (!line.startsWith(QLatin1String("PPE ")))
            continue;
        for (const QString &kv : line.mid(4).split(QLatin1Char(' '))) {
            int eq = kv.indexOf(QLatin1Char('='));
            bool ok = false;
            double x = eq > 0 ? kv.mid(eq + 1).toDouble(&ok) : 0;
            if (ok)
                (*fields)[kv.left(eq).toStdString()] = x;
        }
    }
    if (fields->empty()) {
        *err = strf("no PPE line in the output of ppe_bench.py: %s", qPrintable(out.trimmed()));
        return -1;
    }
    return 1;
}

} // namespace

int execWorkerMain()
{
    static const mpr_task_def tasks[] = {
        {"tiny", taskTiny}, {"spin", taskSpin}, {"flood", taskFlood}, {nullptr, nullptr}};
    return mpr_worker_main(tasks, nullptr, nullptr);
}

std::string takeSkip()
{
    std::string s;
    s.swap(skipWhy);
    return s;
}

bool ppeJobs(Values &v)
{
    std::map<std::string, double> f;
    std::string err;
    int r = runPpe(QStringList() << QStringLiteral("jobs") << QStringLiteral("--workers")
                                 << QStringLiteral("4") << QStringLiteral("--duration")
                                 << QString::number(opt.duration) << QStringLiteral("--window")
                                 << QString::number(opt.execWindow) << QStringLiteral("--cap")
                                 << QString::number(opt.execJobs),
                   &f, &err);
    if (r < 0)
        return failed("ppe_jobs", err);
    if (r == 0)
        return true;
    if (!f.count("rate") || !(f["jobs"] > 0))
        return failed("ppe_jobs", "no rate in the output of ppe_bench.py");
    v["ppe_jobs"] = f["rate"];
    if (f.count("cpu_main_ns"))
        v["ppe_jobs_cpu_main"] = f["cpu_main_ns"];
    if (f.count("cpu_workers_ns"))
        v["ppe_jobs_cpu_workers"] = f["cpu_workers_ns"];
    return true;
}

bool ppeRoundTrip(Values &v)
{
    std::map<std::string, double> f;
    std::string err;
    int r = runPpe(QStringList() << QStringLiteral("rtt") << QStringLiteral("--workers")
                                 << QStringLiteral("4") << QStringLiteral("--samples")
                                 << QString::number(opt.latSamples) << QStringLiteral("--period-us")
                                 << QString::number(opt.latPeriodUs),
                   &f, &err);
    if (r < 0)
        return failed("ppe_rtt", err);
    if (r == 0)
        return true;
    if (!f.count("p50_us") || f["samples"] != (double)opt.latSamples)
        return failed("ppe_rtt", "wrong sample count or no p50 in the output of ppe_bench.py");
    v["ppe_rtt_p50"] = f["p50_us"];
    v["ppe_rtt_p99"] = f["p99_us"];
    return true;
}

/* Tiny jobs, 4 workers, opt.execWindow in flight: each COMPLETED future
 * is checked, freed, and replaced by a new job until opt.duration has
 * passed (or opt.execJobs were submitted); jobs per second from the first
 * submit to the last result. */
namespace {
struct JobsRun {
    struct Slot {
        JobsRun *run;
        uint64_t x;
    };
    Exec *e;
    std::vector<Slot> window;
    uint64_t submitted = 0, completed = 0;
    int64_t end = 0, tDone = 0, cpuDone = 0;
    bool more = true;
    std::vector<int64_t> pids; /* the workers seen (for their CPU time) */

    bool finished() const { return !e->error.empty() || (!more && completed == submitted); }

    void submit(Slot *s)
    {
        s->x = submitted;
        mpr_future *f = nullptr;
        int rc = mpr_executor_submit(e->ex, "tiny", &s->x, sizeof s->x, &f);
        if (rc < 0)
            return e->fail(strf("submit %llu: %s", (unsigned long long)s->x, mpr_strerror(rc)));
        submitted++;
        mpr_future_set_callbacks(f, onState, nullptr, s);
    }

    static void onState(void *arg, mpr_future *f, int state)
    {
        Slot *s = static_cast<Slot *>(arg);
        JobsRun *r = s->run;
        if (state == MPR_FUTURE_EXECUTING)
            return;
        if (state != MPR_FUTURE_COMPLETED) {
            const char *msg = nullptr;
            mpr_future_error(f, &msg);
            r->e->fail(strf("job %llu ended %s: %s", (unsigned long long)s->x,
                            mpr_future_state_name(state), msg ? msg : ""));
        } else {
            const void *data = nullptr;
            size_t size = 0;
            uint64_t got = 0;
            if (mpr_future_result(f, &data, &size) == 0 && size == sizeof got)
                memcpy(&got, data, sizeof got);
            if (size != sizeof got || got != tinyOf(s->x))
                r->e->fail(strf("job %llu: wrong result (%zu bytes, %llu; want %llu)",
                                (unsigned long long)s->x, size, (unsigned long long)got,
                                (unsigned long long)tinyOf(s->x)));
        }
        int64_t pid = mpr_future_worker_pid(f);
        if (pid > 0 && std::find(r->pids.begin(), r->pids.end(), pid) == r->pids.end())
            r->pids.push_back(pid);
        mpr_future_free(f);
        r->completed++;
        if (r->more && (r->submitted >= (uint64_t)opt.execJobs ||
                        (opt.duration > 0 && nowNs() >= r->end)))
            r->more = false;
        if (r->more && r->e->error.empty())
            r->submit(s);
        if (r->finished()) {
            r->tDone = nowNs();
            r->cpuDone = cpuNs(RUSAGE_SELF);
            r->e->wake();
        }
    }
};
} // namespace

bool execJobs(Values &v)
{
    const std::string fig = "exec_jobs";
    JobsRun run; /* before e: e's teardown may still call back into it */
    Exec e;
    if (!e.setup(false, 0, (int)opt.execAhead))
        return failed(fig, e.error);
    run.e = &e;
    /* Warm-up, as the baseline's: 64 jobs at once, which also show the
     * workers' pids. */
    run.window.assign(64, JobsRun::Slot{&run, 0});
    run.more = false;
    for (auto &s : run.window)
        run.submit(&s);
    if (!e.runUntil([&] { return run.finished(); }, (double)opt.timeoutS, 100, "the warm-up"))
        return failed(fig, e.error);
    const uint64_t warm = run.submitted;

    const size_t inFlight = (size_t)std::max(1L, std::min(opt.execWindow, opt.execJobs));
    run.window.assign(inFlight, JobsRun::Slot{&run, 0});
    run.more = true;
    run.submitted = run.completed = 0;
    int64_t workersCpu0 = 0;
    for (int64_t pid : run.pids)
        workersCpu0 += procCpuNs(pid);
    const int64_t cpu0 = cpuNs(RUSAGE_SELF);
    const int64_t t0 = nowNs();
    run.end = t0 + (int64_t)(opt.duration * 1e9);
    for (auto &s : run.window)
        run.submit(&s);
    if (!e.runUntil([&] { return run.finished(); }, (double)opt.timeoutS, 100, "the last result"))
        return failed(fig, e.error);
    int64_t workersCpu = 0;
    for (int64_t pid : run.pids)
        workersCpu += procCpuNs(pid);
    if (!e.checkWorkers())
        return failed(fig, e.error);
    mpr_executor_stats st = e.stats();
    if (st.jobs_completed != warm + run.submitted || st.jobs_failed || st.jobs_cancelled)
        return failed(fig, strf("executor: %llu of %llu jobs completed, %llu failed, %llu cancelled",
                                (unsigned long long)st.jobs_completed,
                                (unsigned long long)(warm + run.submitted),
                                (unsigned long long)st.jobs_failed,
                                (unsigned long long)st.jobs_cancelled));
    v[fig] = (double)run.completed / ((double)(run.tDone - t0) / 1e9);
    /* Where the CPU went, per job: this process (main thread, monitor,
     * supervisor) and the 4 workers, from the first submit to the last
     * result. Two cores give 2e9 ns a second: rate <= 2e9 / (sum). */
    v[fig + "_cpu_main"] = (double)(run.cpuDone - cpu0) / (double)run.completed;
    /* clock ticks (10 ms each): only over a long enough interval */
    if (run.pids.size() == 4 && workersCpu0 >= 0 && workersCpu >= 0 && run.tDone - t0 >= 500000000)
        v[fig + "_cpu_workers"] = (double)(workersCpu - workersCpu0) / (double)run.completed;
    return true;
}

/* One tiny job at a time, one every opt.latPeriodUs (after 10 for
 * warm-up): submit -> the COMPLETED callback on the main thread. */
namespace {
struct RttRun {
    Exec *e;
    long warm = 10, total = 0, started = 0;
    bool busy = false;
    uint64_t x = 0;
    int64_t t = 0;
    std::vector<int64_t> lat;

    bool finished() const { return !e->error.empty() || (!busy && started == total); }

    void tick()
    {
        if (busy || started == total || !e->error.empty())
            return;
        x = (uint64_t)started * 7 + 1;
        mpr_future *f = nullptr;
        t = nowNs();
        int rc = mpr_executor_submit(e->ex, "tiny", &x, sizeof x, &f);
        if (rc < 0)
            return e->fail(strf("submit: %s", mpr_strerror(rc)));
        busy = true;
        started++;
        mpr_future_set_callbacks(f, onState, nullptr, this);
    }

    static void onState(void *arg, mpr_future *f, int state)
    {
        RttRun *r = static_cast<RttRun *>(arg);
        if (state == MPR_FUTURE_EXECUTING)
            return;
        const int64_t dt = nowNs() - r->t;
        const void *data = nullptr;
        size_t size = 0;
        uint64_t got = 0;
        if (state == MPR_FUTURE_COMPLETED && mpr_future_result(f, &data, &size) == 0 &&
            size == sizeof got)
            memcpy(&got, data, sizeof got);
        if (state != MPR_FUTURE_COMPLETED || got != tinyOf(r->x))
            r->e->fail(strf("job %ld ended %s, result %llu (want %llu)", r->started,
                            mpr_future_state_name(state), (unsigned long long)got,
                            (unsigned long long)tinyOf(r->x)));
        mpr_future_free(f);
        if (r->started > r->warm)
            r->lat.push_back(dt);
        r->busy = false;
        if (r->finished())
            r->e->wake();
    }
};
} // namespace

bool execRoundTrip(Values &v)
{
    const std::string fig = "exec_rtt";
    RttRun run; /* before e: e's teardown may still call back into it */
    Exec e;
    if (!e.setup(false))
        return failed(fig, e.error);
    run.e = &e;
    run.total = opt.latSamples + run.warm;
    run.lat.reserve((size_t)opt.latSamples);
    QTimer period;
    period.setTimerType(Qt::PreciseTimer);
    period.setInterval((int)std::max(1L, opt.latPeriodUs / 1000));
    QObject::connect(&period, &QTimer::timeout, [&] { run.tick(); });
    period.start();
    bool ok = e.runUntil([&] { return run.finished(); },
                         (double)opt.timeoutS, 100, "the last round trip");
    period.stop();
    if (!ok || !e.checkWorkers())
        return failed(fig, e.error);
    if ((long)run.lat.size() != opt.latSamples)
        return failed(fig, strf("%zu of %ld samples", run.lat.size(), opt.latSamples));
    v[fig + "_p50"] = percentile(run.lat, 0.50) / 1000.0;
    v[fig + "_p99"] = percentile(run.lat, 0.99) / 1000.0;
    return true;
}

/* Cancel latency: a "spin" job (it tests for cancel every millisecond);
 * 3 ms (and 0 .. 999 us) after its EXECUTING callback, cancel; the time from the call to
 * its CANCELLED callback on the main thread. One at a time. */
namespace {
struct CancelRun {
    Exec *e;
    long total = 0, started = 0;
    bool busy = false;
    mpr_future *f = nullptr;
    int64_t tCancel = 0;
    std::vector<int64_t> lat;
    QObject timers; /* the context of the cancel timers: none fires after this is gone */

    bool finished() const { return !e->error.empty() || (!busy && started == total); }

    void next()
    {
        if (started == total || !e->error.empty())
            return;
        int rc = mpr_executor_submit(e->ex, "spin", nullptr, 0, &f);
        if (rc < 0)
            return e->fail(strf("submit: %s", mpr_strerror(rc)));
        busy = true;
        started++;
        tCancel = 0;
        mpr_future_set_callbacks(f, onState, nullptr, this);
    }

    void cancel()
    {
        /* The task looks every millisecond: a timer of whole milliseconds
         * after EXECUTING would hit the same phase of its sleep each time,
         * so wait a further 0 .. 999 us, different for each sample. */
        const int64_t until = nowNs() + (int64_t)((started * 397) % 1000) * 1000;
        while (nowNs() < until) {
        }
        tCancel = nowNs();
        int rc = mpr_future_cancel(f);
        if (rc < 0)
            e->fail(strf("cancel of job %ld: %s", started, mpr_strerror(rc)));
    }

    static void onState(void *arg, mpr_future *fu, int state)
    {
        CancelRun *r = static_cast<CancelRun *>(arg);
        if (state == MPR_FUTURE_EXECUTING) {
            QTimer::singleShot(3, Qt::PreciseTimer, &r->timers, [r] { r->cancel(); });
            return;
        }
        if (state == MPR_FUTURE_CANCELLING)
            return;
        if (state != MPR_FUTURE_CANCELLED || !r->tCancel) {
            const char *msg = nullptr;
            mpr_future_error(fu, &msg);
            r->e->fail(strf("spin job %ld ended %s%s%s", r->started, mpr_future_state_name(state),
                            msg ? ": " : "", msg ? msg : ""));
        } else {
            r->lat.push_back(nowNs() - r->tCancel);
        }
        mpr_future_free(fu);
        r->f = nullptr;
        r->busy = false;
        r->next();
        if (r->finished())
            r->e->wake();
    }
};
} // namespace

bool execCancel(Values &v)
{
    const std::string fig = "exec_cancel";
    CancelRun run; /* before e: e's teardown may still call back into it */
    Exec e;
    if (!e.setup(false))
        return failed(fig, e.error);
    run.e = &e;
    run.total = std::max(1L, opt.execCancelSamples);
    run.next();
    if (!e.runUntil([&] { return run.finished(); }, (double)opt.timeoutS, 100, "the last cancel"))
        return failed(fig, e.error);
    /* cooperative: every task returned by itself, no worker was killed */
    if (!e.checkWorkers())
        return failed(fig, e.error);
    v[fig + "_p50"] = percentile(run.lat, 0.50) / 1e6;
    v[fig + "_p99"] = percentile(run.lat, 0.99) / 1e6;
    return true;
}

/* Progress flood: one "flood" task sends progress flat out for
 * opt.floodDuration (at most opt.floodMsgs) into an executor with
 * newest_progress_only, while a 16 ms QTimer (Qt::PreciseTimer) runs on
 * the main thread: the largest gap between its ticks while the task runs
 * (from the first progress to the final state; the open interval after
 * the last tick counts). Checks: the values seen rise strictly, the last
 * one is the last sent, the result is the count. With backpressure, the
 * router's queue is limited (--mem-limit-mib), so the task waits when the
 * main thread is behind instead of piling up progress for it to route. */
namespace {
struct FloodRun {
    Exec *e;
    uint64_t updates = 0, last = 0, result = 0;
    bool any = false, done = false;
    int64_t tFirst = 0, tDone = 0;

    static void onProgress(void *arg, mpr_future *, const void *data, size_t size)
    {
        FloodRun *r = static_cast<FloodRun *>(arg);
        uint64_t x = 0;
        if (size != sizeof x)
            return r->e->fail(strf("progress of %zu bytes", size));
        memcpy(&x, data, sizeof x);
        if (r->any && x <= r->last)
            return r->e->fail(strf("progress %llu after %llu", (unsigned long long)x,
                                   (unsigned long long)r->last));
        if (!r->any)
            r->tFirst = nowNs();
        r->any = true;
        r->last = x;
        r->updates++;
    }

    static void onState(void *arg, mpr_future *f, int state)
    {
        FloodRun *r = static_cast<FloodRun *>(arg);
        if (state == MPR_FUTURE_EXECUTING)
            return;
        r->tDone = nowNs();
        const void *data = nullptr;
        size_t size = 0;
        if (state != MPR_FUTURE_COMPLETED) {
            const char *msg = nullptr;
            mpr_future_error(f, &msg);
            r->e->fail(strf("flood ended %s: %s", mpr_future_state_name(state), msg ? msg : ""));
        } else if (mpr_future_result(f, &data, &size) != 0 || size != sizeof r->result) {
            r->e->fail("flood: no result");
        } else {
            memcpy(&r->result, data, sizeof r->result);
            if (!r->any || r->last + 1 != r->result)
                r->e->fail(strf("flood sent %llu progress messages, the last one seen is %llu",
                                (unsigned long long)r->result, (unsigned long long)r->last));
        }
        mpr_future_free(f);
        r->done = true;
        r->e->wake();
    }
};
} // namespace

bool execFlood(Values &v, bool backpressure)
{
    const std::string fig = backpressure ? "exec_flood_bp" : "exec_flood";
    FloodRun run; /* before e: e's teardown may still call back into it */
    Exec e;
    if (!e.setup(true, backpressure ? (size_t)opt.memLimitMiB << 20 : 0))
        return failed(fig, e.error);
    run.e = &e;
    std::vector<int64_t> ticks;
    ticks.reserve(4096);
    QTimer timer;
    timer.setTimerType(Qt::PreciseTimer);
    timer.setInterval(16);
    QObject::connect(&timer, &QTimer::timeout, [&] { ticks.push_back(nowNs()); });
    FloodArgs a = {(uint64_t)std::max(1L, opt.floodMsgs), (int64_t)(opt.floodDuration * 1e9)};
    mpr_future *f = nullptr;
    timer.start();
    ticks.push_back(nowNs());
    const int64_t t0 = nowNs();
    int rc = mpr_executor_submit(e.ex, "flood", &a, sizeof a, &f);
    if (rc < 0)
        return failed(fig, strf("submit: %s", mpr_strerror(rc)));
    mpr_future_set_callbacks(f, FloodRun::onState, FloodRun::onProgress, &run);
    bool ok = e.runUntil([&] { return run.done || !e.error.empty(); }, (double)opt.timeoutS, 100,
                         "the flood's end");
    timer.stop();
    if (!ok || !e.checkWorkers())
        return failed(fig, e.error);
    int64_t gap = 0;
    for (size_t i = 1; i < ticks.size(); i++)
        if (ticks[i] > run.tFirst && ticks[i - 1] < run.tDone)
            gap = std::max(gap, ticks[i] - ticks[i - 1]);
    if (!ticks.empty() && ticks.back() < run.tDone)
        gap = std::max(gap, run.tDone - ticks.back());
    const double secs = (double)(run.tDone - t0) / 1e9;
    v[fig + "_gap"] = (double)gap / 1e6;
    v[fig + "_rate"] = (double)run.result / secs;
    v[fig + "_updates"] = (double)run.updates / secs;
    return true;
}

} // namespace bench
