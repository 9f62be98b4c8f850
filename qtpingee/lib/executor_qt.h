/**
 * @file executor_qt.h
 * @brief The QObject API of the executor (<mprouter/executor.h>): a pool
 * of worker processes with futures, for Qt code.
 *
 *     mpr::Router router;
 *     router.start();
 *     mpr::ExecutorOptions options;
 *     options.program = QStringList{QStringLiteral("/path/to/worker")};
 *     mpr::Executor executor(&router, options);   // check executor.error()
 *     mpr::Future *f = executor.submit(QStringLiteral("square"), 12);
 *     QObject::connect(f, &mpr::Future::finished, [f] {
 *         if (f->state() == mpr::Future::Completed)
 *             qDebug() << f->result();
 *         else
 *             qDebug() << f->errorString();
 *     });
 *
 * Arguments travel to the worker as mpr::encodeVariant() bytes; the
 * worker's task (<mprouter/worker.h>) reads them with mpr::decodeVariant()
 * and sends its result and progress as mpr::encodeVariant() bytes too:
 * result() and progress() decode them (an invalid QVariant for bytes that
 * are not one encoded variant).
 *
 * OWNERSHIP. A Future is a child of the Executor that made it: it is
 * deleted with the executor. You may delete a Future earlier (also from a
 * slot connected to its own signals): a job that is not final yet is then
 * cancelled, without signals. Keep a QPointer to a future that may outlive
 * its executor. Delete futures you no longer need if you submit many jobs
 * over time: the executor keeps them until then.
 *
 * The Router must be running when the Executor is made and must outlive
 * it (delete the executor first; do not make it a child of the router).
 * Deleting an executor that is not shut down is the abrupt way
 * (mpr_executor_free): its workers are killed and unfinished futures
 * become Cancelled without signals. It may be deleted from a slot
 * connected to one of its futures' signals or to shutdownFinished().
 *
 * Signals are emitted on the main thread, never from inside another
 * signal of the same executor; errors are the C library's (0 or a negative
 * MPR_ code, Router::errorString()). MAIN THREAD ONLY.
 */
#ifndef MPROUTER_EXECUTOR_QT_H
#define MPROUTER_EXECUTOR_QT_H

#include <QtCore/QByteArray>
#include <QtCore/QObject>
#include <QtCore/QScopedPointer>
#include <QtCore/QString>
#include <QtCore/QStringList>
#include <QtCore/QVariant>

#include <mprouter/executor.h>

#include "mprouter_qt_global.h"

namespace mpr {

class Router;
class Executor;
class ExecutorPrivate;
class FuturePrivate;

/// The options of an Executor, mirroring mpr_executor_options (the
/// defaults are those of mpr_executor_options_init). Exec, fork and
/// launch modes (STARTING WORKERS in <mprouter/executor.h>).
struct MPR_QT_EXPORT ExecutorOptions
{
    enum StartMode {
        Exec = MPR_START_EXEC, ///< run program (the default)
        Fork = MPR_START_FORK,    ///< fork() and run forkFunction in the child
        Launch = MPR_START_LAUNCH ///< run the template program on each of hosts
    };

    ExecutorOptions();

    int workers;            ///< worker processes, 1 .. 1024 (default 4)
    StartMode start;        ///< Exec or Fork
    /// Exec: the program and its arguments (program.first() is the
    /// program; a name without '/' is looked up in PATH). Launch: the
    /// launch template, the same way, each "{host}" in any element
    /// replaced by the worker's host (no shell is involved), e.g.
    /// {"ssh", "{host}", "prog"}. The sender string always goes on
    /// standard input.
    QStringList program;
    /// Launch: the hosts (at least one); worker i runs on
    /// hosts[i % hosts.size()], and so does its replacement. Ignored in
    /// the other modes. Workers on other hosts reach the router over its
    /// remote transport: call mpr_router_set_remote() before
    /// Router::start().
    QStringList hosts;
    /// Fork: the function the child runs (its return value is the child's
    /// exit status): it must not touch Qt or any object of the parent; it
    /// normally only calls mpr_worker_main(). See <mprouter/executor.h>.
    int (*forkFunction)(void *arg);
    void *forkArgument;      ///< the argument of forkFunction
    double startTimeout;     ///< seconds (start_timeout_s, default 30)
    double cancelGrace;      ///< seconds (cancel_grace_s, default 5)
    bool newestProgressOnly; ///< newest_progress_only (default false)
    int maxStartFailures;    ///< max_start_failures (default 3)
    double healthyAfter;     ///< seconds (healthy_after_s, default 1)
    double backoff;          ///< seconds (backoff_s, default 5)
    /// jobs_ahead, 0 .. 14 (default 0): jobs handed to each busy worker
    /// ahead of time (many short jobs; see <mprouter/executor.h>)
    int jobsAhead;
};

/// One job of an Executor (mpr_future). Made by Executor::submit().
class MPR_QT_EXPORT Future : public QObject
{
    Q_OBJECT
    Q_PROPERTY(State state READ state NOTIFY stateChanged)
public:
    /// mpr_future_state.
    enum State {
        Waiting = MPR_FUTURE_WAITING,
        Executing = MPR_FUTURE_EXECUTING,
        Cancelling = MPR_FUTURE_CANCELLING,
        Completed = MPR_FUTURE_COMPLETED,
        Failed = MPR_FUTURE_FAILED,
        Cancelled = MPR_FUTURE_CANCELLED
    };
    Q_ENUM(State)

    /// Frees the C future; a job that is not final is cancelled first
    /// (without signals). Also from a slot connected to its own signals.
    ~Future() override;

    /// The current state (Waiting when made).
    State state() const;
    /// True in Completed, Failed and Cancelled.
    bool isFinished() const;
    /// The result of a Completed future, decoded with mpr::decodeVariant();
    /// an invalid QVariant in any other state.
    QVariant result() const;
    /// The result's bytes as the worker sent them (empty unless Completed).
    QByteArray resultBytes() const;
    /// Why a Failed future failed (mpr_future_error's message); empty in
    /// any other state.
    QString errorString() const;
    /// The mpr_failure of a Failed future (> 0), else 0.
    int failure() const;
    /// The pid of the worker that runs or ran the job, 0 before one does.
    qint64 workerPid() const;

    /// Ask to cancel (mpr_future_cancel): Waiting becomes Cancelled at once,
    /// Executing becomes Cancelling at once (stateChanged is emitted before
    /// this returns, unless called from a slot of this executor's signals:
    /// then right after it). 0, or MPR_ESTATE if already Cancelling or
    /// final.
    int cancel();

Q_SIGNALS:
    /// Every change of state, in order (Executing, then the final one, with
    /// Cancelling in between if cancelled while running). Not for the
    /// initial Waiting.
    void stateChanged(mpr::Future::State state);
    /// One progress report of the task (mpr_task_progress), decoded with
    /// mpr::decodeVariant(), in the order sent (or only the newest ones,
    /// with ExecutorOptions::newestProgressOnly), before finished().
    void progress(const QVariant &value);
    /// The future has become final: emitted right after the stateChanged()
    /// of Completed, Failed or Cancelled. Not emitted for futures cancelled
    /// by deleting the executor.
    void finished();

private:
    explicit Future(Executor *executor, mpr_future *handle);
    Q_DISABLE_COPY(Future)
    Q_DECLARE_PRIVATE(Future)
    QScopedPointer<FuturePrivate> d_ptr;
    friend class Executor;
};

/// A pool of worker processes with futures (mpr_executor), run by the Qt
/// event loop of a Router.
class MPR_QT_EXPORT Executor : public QObject
{
    Q_OBJECT
public:
    /// mpr_executor_state.
    enum State {
        Running = MPR_EXECUTOR_RUNNING,
        ShuttingDown = MPR_EXECUTOR_SHUTTING_DOWN,
        ShutDown = MPR_EXECUTOR_SHUT_DOWN
    };
    Q_ENUM(State)

    /// Makes the executor and starts its workers (mpr_executor_new) on
    /// router, which must be running and outlive this executor. On failure
    /// error() says why and submit() fails.
    Executor(Router *router, const ExecutorOptions &options, QObject *parent = nullptr);
    /// See OWNERSHIP at the top of this file.
    ~Executor() override;

    /// 0 if the executor was made, else mpr_executor_new's error.
    int error() const;
    /// Running, ShuttingDown or ShutDown (ShutDown if it was never made).
    State state() const;

    /// Submit a job: task (the worker's task name) with args as
    /// mpr::encodeVariant() bytes. Returns a Waiting Future, child of this
    /// executor, or nullptr with *error set (if error is not null) to
    /// mpr_executor_submit's error (MPR_ESTATE once shutting down, ...).
    Future *submit(const QString &task, const QVariant &args = QVariant(), int *error = nullptr);

    /// Begin an orderly shutdown (mpr_executor_shutdown): Waiting futures
    /// become Cancelled now, Executing ones are asked to cancel; after
    /// timeoutSeconds (< 0: never) the workers still alive are killed.
    /// shutdownFinished() is emitted once no worker is left. 0, or
    /// MPR_ESTATE if already shutting down or shut down, MPR_EINVAL.
    int shutdown(double timeoutSeconds);

    /// The C executor, for calls this class does not wrap
    /// (mpr_executor_get_stats). Do not free it. Null if it was not made.
    mpr_executor *handle() const;

Q_SIGNALS:
    /// The shutdown has ended: no worker process of this executor is left.
    /// The executor may be deleted from a slot connected to it.
    void shutdownFinished();

private:
    Q_DISABLE_COPY(Executor)
    Q_DECLARE_PRIVATE(Executor)
    QScopedPointer<ExecutorPrivate> d_ptr;
};

} // namespace mpr

#endif // MPROUTER_EXECUTOR_QT_H
