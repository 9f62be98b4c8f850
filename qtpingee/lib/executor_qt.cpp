/*
 * executor_qt.cpp - mpr::Executor and mpr::Future: QObjects over the C
 * executor (<mprouter/executor.h>). Only Qt and the C API here.
 */
#include "executor_qt.h"
#include "mprouter_qt.h"
#include "mprouter_qt_p.h"

#include <mprouter/qt.h>

#include <QtCore/QFile>
#include <QtCore/QPointer>
#include <QtCore/QVector>

#include <vector>

namespace mpr {

class FuturePrivate
{
public:
    static void onState(void *arg, mpr_future *future, int state);
    static void onProgress(void *arg, mpr_future *future, const void *data, size_t size);

    mpr_future *handle = nullptr;
};

class ExecutorPrivate
{
public:
    static void onShutdown(void *arg);

    mpr_executor *executor = nullptr;
    int error = 0;
};

// ---------------------------------------------------------------- options

ExecutorOptions::ExecutorOptions()
{
    mpr_executor_options o;
    mpr_executor_options_init(&o);
    workers = o.workers;
    start = Exec;
    forkFunction = nullptr;
    forkArgument = nullptr;
    startTimeout = o.start_timeout_s;
    cancelGrace = o.cancel_grace_s;
    newestProgressOnly = o.newest_progress_only != 0;
    maxStartFailures = o.max_start_failures;
    healthyAfter = o.healthy_after_s;
    backoff = o.backoff_s;
    jobsAhead = o.jobs_ahead;
}

namespace {
// A NULL-terminated array of C strings made from a QStringList (NULL for
// an empty list), for the C options.
class CStrings
{
public:
    template <typename Encode> CStrings(const QStringList &list, Encode encode)
    {
        for (const QString &s : list)
            bytes.append(encode(s));
        for (const QByteArray &b : bytes)
            ptrs.push_back(b.constData());
        ptrs.push_back(nullptr);
    }
    const char *const *get() const { return bytes.isEmpty() ? nullptr : ptrs.data(); }

private:
    QVector<QByteArray> bytes;
    std::vector<const char *> ptrs;
};
} // namespace

// ---------------------------------------------------------------- Future

// The C executor calls these on the main thread, never from inside another
// of its callbacks. A slot may delete the future or the executor (which
// deletes its futures): nothing of *f is touched after that.
void FuturePrivate::onState(void *arg, mpr_future *, int state)
{
    Future *f = static_cast<Future *>(arg);
    QPointer<Future> guard(f);
    Q_EMIT f->stateChanged(Future::State(state));
    if (!guard)
        return;
    if (state == MPR_FUTURE_COMPLETED || state == MPR_FUTURE_FAILED
        || state == MPR_FUTURE_CANCELLED)
        Q_EMIT f->finished();
}

void FuturePrivate::onProgress(void *arg, mpr_future *, const void *data, size_t size)
{
    Future *f = static_cast<Future *>(arg);
    const QByteArray bytes = QByteArray::fromRawData(static_cast<const char *>(data), int(size));
    Q_EMIT f->progress(decodeVariant(bytes));
}

Future::Future(Executor *executor, mpr_future *handle)
    : QObject(executor), d_ptr(new FuturePrivate)
{
    Q_D(Future);
    d->handle = handle;
    mpr_future_set_callbacks(handle, FuturePrivate::onState, FuturePrivate::onProgress, this);
}

Future::~Future()
{
    Q_D(Future);
    mpr_future_free(d->handle); // no callback of it runs after this
}

Future::State Future::state() const
{
    Q_D(const Future);
    const int s = mpr_future_state(d->handle);
    return s < 0 ? Cancelled : State(s);
}

bool Future::isFinished() const
{
    const State s = state();
    return s == Completed || s == Failed || s == Cancelled;
}

QByteArray Future::resultBytes() const
{
    Q_D(const Future);
    const void *data = nullptr;
    size_t size = 0;
    if (mpr_future_result(d->handle, &data, &size) != 0 || size == 0)
        return QByteArray();
    return QByteArray(static_cast<const char *>(data), int(size));
}

QVariant Future::result() const
{
    Q_D(const Future);
    const void *data = nullptr;
    size_t size = 0;
    if (mpr_future_result(d->handle, &data, &size) != 0 || size == 0)
        return QVariant();
    return decodeVariant(QByteArray::fromRawData(static_cast<const char *>(data), int(size)));
}

QString Future::errorString() const
{
    Q_D(const Future);
    const char *message = nullptr;
    if (mpr_future_error(d->handle, &message) <= 0 || !message)
        return QString();
    return QString::fromUtf8(message);
}

int Future::failure() const
{
    Q_D(const Future);
    const int rc = mpr_future_error(d->handle, nullptr);
    return rc > 0 ? rc : 0;
}

qint64 Future::workerPid() const
{
    Q_D(const Future);
    const int64_t pid = mpr_future_worker_pid(d->handle);
    return pid > 0 ? qint64(pid) : 0;
}

int Future::cancel()
{
    Q_D(Future);
    return mpr_future_cancel(d->handle);
}

// ---------------------------------------------------------------- Executor

void ExecutorPrivate::onShutdown(void *arg)
{
    Q_EMIT static_cast<Executor *>(arg)->shutdownFinished();
}

Executor::Executor(Router *router, const ExecutorOptions &options, QObject *parent)
    : QObject(parent), d_ptr(new ExecutorPrivate)
{
    Q_D(Executor);
    mpr_executor_options o;
    mpr_executor_options_init(&o);
    o.workers = options.workers;
    o.start = int(options.start);
    o.fork_fn = options.forkFunction;
    o.fork_arg = options.forkArgument;
    o.start_timeout_s = options.startTimeout;
    o.cancel_grace_s = options.cancelGrace;
    o.newest_progress_only = options.newestProgressOnly ? 1 : 0;
    o.max_start_failures = options.maxStartFailures;
    o.healthy_after_s = options.healthyAfter;
    o.backoff_s = options.backoff;
    o.jobs_ahead = options.jobsAhead;

    // Kept alive until mpr_executor_new has copied them.
    const CStrings argv(options.program, [](const QString &a) { return QFile::encodeName(a); });
    const CStrings hosts(options.hosts, [](const QString &h) { return h.toUtf8(); });
    o.argv = argv.get();
    o.hosts = hosts.get();

    if (!router || !router->handle()) {
        d->error = MPR_EINVAL;
    } else {
        d->error = mpr_executor_new(&d->executor, router->handle(), mpr_qt_event_loop(), &o);
        if (d->error < 0)
            d->executor = nullptr;
    }
    if (d->error < 0)
        qCWarning(lcRouter, "cannot create executor: %s", mpr_strerror(d->error));
}

Executor::~Executor()
{
    Q_D(Executor);
    // Abrupt unless shut down; deferred by the C library when called from
    // inside one of its callbacks. The futures (children) are freed after
    // this by ~QObject: a C future outlives its executor.
    mpr_executor_free(d->executor);
    d->executor = nullptr;
}

int Executor::error() const
{
    Q_D(const Executor);
    return d->error;
}

Executor::State Executor::state() const
{
    Q_D(const Executor);
    if (!d->executor)
        return ShutDown;
    const int s = mpr_executor_state(d->executor);
    return s < 0 ? ShutDown : State(s);
}

Future *Executor::submit(const QString &task, const QVariant &args, int *error)
{
    Q_D(Executor);
    int rc = MPR_ESTATE;
    mpr_future *handle = nullptr;
    if (d->executor) {
        const QByteArray name = task.toUtf8();
        const QByteArray bytes = encodeVariant(args);
        rc = mpr_executor_submit(d->executor, name.constData(), bytes.constData(),
                                 size_t(bytes.size()), &handle);
    }
    if (error)
        *error = rc;
    if (rc != 0)
        return nullptr;
    return new Future(this, handle);
}

int Executor::shutdown(double timeoutSeconds)
{
    Q_D(Executor);
    if (!d->executor)
        return MPR_ESTATE;
    return mpr_executor_shutdown(d->executor, timeoutSeconds, ExecutorPrivate::onShutdown, this);
}

mpr_executor *Executor::handle() const
{
    Q_D(const Executor);
    return d->executor;
}

} // namespace mpr
