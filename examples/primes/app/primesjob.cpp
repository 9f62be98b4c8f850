/*
 * primesjob.cpp - see primesjob.h.
 *
 * The executor does the work of processes: it starts the workers, hands
 * each a job (a chunk: {"from", "to", "batch", "stall"}), routes their
 * progress and result, tells a crash or a lost connection (the job FAILED
 * with the reason; a replacement worker is started) from a cancel, and
 * shuts the workers down. What is left here is about primes: the chunks,
 * the counts, and when the job as a whole is over: once every chunk is
 * final (or cancel() was called) the executor is shut down, and the job
 * ends when its last worker has exited.
 */
#include "primesjob.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QProcess>
#include <QtCore/QVariantMap>

PrimesJob::PrimesJob(QObject *parent)
    : QObject(parent)
{
    m_program = QCoreApplication::applicationDirPath() + QStringLiteral("/primes-worker");
}

PrimesJob::~PrimesJob()
{
    if (m_executor) {
        disconnect(m_executor.data(), nullptr, this, nullptr);
        m_executor.reset(); // not shut down yet: its workers are killed
    }
    if (m_router.isRunning())
        m_router.stop();
}

bool PrimesJob::start(quint64 from, quint64 to, int workers, QString *error)
{
    QString ignored;
    QString &why = error ? *error : ignored;
    if (m_state == State::Running) {
        why = QStringLiteral("a job is already running");
        return false;
    }
    if (from > to || to > 0xffffffffu) {
        why = QStringLiteral("the range must be 0 <= from <= to <= 4294967295");
        return false;
    }
    if (workers < 1 || workers > 256) {
        why = QStringLiteral("the number of workers must be between 1 and 256");
        return false;
    }
    if (quint64(workers) > to - from + 1)
        workers = int(to - from + 1);
    mpr::ExecutorOptions options;
    options.workers = workers;
    options.program = QStringList{m_program};
    if (!m_launch.isEmpty()) {
        options.program = QProcess::splitCommand(m_launch);
        if (options.program.isEmpty()) {
            why = QStringLiteral("the launch command is empty");
            return false;
        }
        if (!m_hosts.isEmpty()) {
            options.start = mpr::ExecutorOptions::Launch;
            options.hosts = m_hosts;
        }
    }
    if (m_launch.isEmpty() && !m_hosts.isEmpty()) {
        why = QStringLiteral("workers on other hosts need a launch command");
        return false;
    }
    if (m_launch.contains(QLatin1String("{host}")) && m_hosts.isEmpty()) {
        why = QStringLiteral("the launch command has {host}: give the hosts too");
        return false;
    }
    for (const QString &host : qAsConst(m_hosts))
        if (!isValidHost(host, &why))
            return false;
    if (!setUpRemote(&why))
        return false;
    int rc = m_router.start();
    if (rc < 0) {
        why = QStringLiteral("cannot start the router: ") + mpr::Router::errorString(rc);
        if (!m_bind.isEmpty())
            why += QStringLiteral(" (remote endpoint %1)").arg(m_bind);
        return false;
    }
    m_endpoint.clear();
    if (!m_bind.isEmpty()) {
        char endpoint[512];
        if (mpr_router_remote_endpoint(m_router.handle(), endpoint, sizeof endpoint) > 0)
            m_endpoint = QString::fromUtf8(endpoint);
    }
    m_executor.reset(new mpr::Executor(&m_router, options));
    if ((rc = m_executor->error()) < 0) {
        why = QStringLiteral("cannot start the workers: ") + mpr::Router::errorString(rc);
        m_executor.reset();
        m_router.stop();
        return false;
    }
    connect(m_executor.data(), &mpr::Executor::shutdownFinished, this, &PrimesJob::onShutDown);

    m_workers = QVector<Worker>(workers);
    m_from = from;
    m_to = to;
    m_messages = 0;
    m_seconds = 0;
    m_stats = mpr_executor_stats();
    m_state = State::Running;
    m_cancelling = m_shuttingDown = false;
    m_clock.start();

    // One chunk per worker; the first ones take the remainder.
    const quint64 total = to - from + 1;
    quint64 next = from;
    for (int i = 0; i < workers; i++) {
        Worker &w = m_workers[i];
        w.from = next;
        w.to = next + total / quint64(workers) - 1 + (quint64(i) < total % quint64(workers));
        next = w.to + 1;
        const QVariantMap args{{QStringLiteral("from"), w.from},
                               {QStringLiteral("to"), w.to},
                               {QStringLiteral("batch"), m_batch},
                               {QStringLiteral("stall"), m_stalled.contains(i)}};
        w.future = m_executor->submit(QStringLiteral("count"), args, &rc);
        if (!w.future) { // not for want of a worker: such jobs wait
            why = QStringLiteral("cannot submit a job: ") + mpr::Router::errorString(rc);
            m_executor.reset(); // kills the workers just started
            m_router.stop();
            m_workers.clear();
            m_state = State::Idle;
            return false;
        }
        connect(w.future, &mpr::Future::stateChanged, this,
                [this, i](mpr::Future::State s) { onState(i, s); });
        connect(w.future, &mpr::Future::progress, this,
                [this, i](const QVariant &v) { onProgress(i, v); });
    }
    return true;
}

void PrimesJob::onProgress(int index, const QVariant &value)
{
    Worker &w = m_workers[index];
    const QVariantMap m = value.toMap();
    w.checked = m.value(QStringLiteral("checked")).toULongLong();
    w.primes = m.value(QStringLiteral("primes")).toULongLong();
    if (!m_hosts.isEmpty()) // the executor picks the worker, so the host too
        w.host = m.value(QStringLiteral("host")).toString();
    w.messages++;
    m_messages++;
    Q_EMIT workerProgress(index);
}

void PrimesJob::onState(int index, mpr::Future::State state)
{
    Worker &w = m_workers[index];
    switch (state) {
    case mpr::Future::Waiting:
    case mpr::Future::Cancelling:
        return;
    case mpr::Future::Executing:
        w.pid = w.future->workerPid();
        Q_EMIT workerStarted(index);
        return;
    case mpr::Future::Completed:
        w.state = WorkerState::Done;
        onProgress(index, w.future->result()); // the result is the last count
        break;
    case mpr::Future::Failed:
        w.state = WorkerState::Failed;
        w.failure = w.future->errorString();
        break;
    case mpr::Future::Cancelled:
        w.state = WorkerState::Cancelled;
        break;
    }
    Q_EMIT workerFinished(index);
    for (const Worker &other : qAsConst(m_workers))
        if (other.state == WorkerState::Running)
            return;
    shutDown();
}

void PrimesJob::cancel()
{
    if (m_state != State::Running || m_cancelling || m_shuttingDown)
        return;
    m_cancelling = true;
    shutDown();
}

// Waiting jobs are cancelled now, running ones asked to cancel, and every
// worker exits once its task has returned (killed only after the grace
// time, if its task ignores the request).
void PrimesJob::shutDown()
{
    if (m_shuttingDown)
        return;
    m_shuttingDown = true;
    m_executor->shutdown(mpr::ExecutorOptions().cancelGrace);
}

// No worker is left: the pipes are closed, the router can stop.
void PrimesJob::onShutDown()
{
    m_seconds = m_clock.elapsed() / 1000.0;
    mpr_executor_get_stats(m_executor->handle(), &m_stats);
    for (Worker &w : m_workers)
        w.future = nullptr;
    m_executor.reset(); // allowed from this slot; deletes the futures
    m_router.stop();
    m_state = m_cancelling ? State::Cancelled : State::Finished;
    if (m_cancelling)
        Q_EMIT cancelled();
    else
        Q_EMIT finished();
}

mpr_executor_stats PrimesJob::executorStats() const
{
    mpr_executor_stats stats = m_stats;
    if (m_executor && m_executor->handle())
        mpr_executor_get_stats(m_executor->handle(), &stats);
    return stats;
}

// The router's remote endpoint, before it starts (set or cleared).
bool PrimesJob::setUpRemote(QString *error)
{
    mpr_router *router = m_router.handle();
    if (!router) {
        *error = QStringLiteral("no router");
        return false;
    }
    if (m_bind.isEmpty()) {
        if (m_remoteSet && mpr_router_set_remote(router, nullptr, nullptr) == 0)
            m_remoteSet = false;
        return true;
    }
    const QByteArray bind = m_bind.toUtf8();
    const QByteArray host = m_advertise.toUtf8();
    int rc = mpr_router_set_remote(router, bind.constData(),
                                   m_advertise.isEmpty() ? nullptr : host.constData());
    if (rc == MPR_ENOTSUP) {
        *error = QStringLiteral("workers on other machines need mprouter built with ZeroMQ, and "
                                "this one was built without it (mpr_router_set_remote: %1)")
                     .arg(mpr::Router::errorString(rc));
        return false;
    }
    if (rc < 0) {
        *error = QStringLiteral("cannot use the remote endpoint %1%2: %3")
                     .arg(m_bind,
                          m_advertise.isEmpty() ? QString()
                                                : QStringLiteral(" advertised as ") + m_advertise,
                          mpr::Router::errorString(rc));
        return false;
    }
    m_remoteSet = true;
    if (m_window > 0 && (rc = mpr_router_set_remote_window(router, m_window)) < 0) {
        *error = QStringLiteral("cannot set a reconnect window of %1 s: %2")
                     .arg(m_window)
                     .arg(mpr::Router::errorString(rc));
        return false;
    }
    return true;
}

bool PrimesJob::isValidHost(const QString &host, QString *error)
{
    QString ignored;
    QString &why = error ? *error : ignored;
    if (host.isEmpty()) {
        why = QStringLiteral("empty host name");
        return false;
    }
    if (host.startsWith(QLatin1Char('-'))) {
        why = QStringLiteral("host \"%1\" starts with '-' (it would read as an option)").arg(host);
        return false;
    }
    for (const QChar c : host) {
        const ushort u = c.unicode();
        const bool ok = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9')
                        || u == '.' || u == '_' || u == ':' || u == '-';
        if (!ok) {
            why = QStringLiteral("host \"%1\" has a character other than letters, digits and "
                                 ". _ : -")
                      .arg(host);
            return false;
        }
    }
    return true;
}

QList<qint64> PrimesJob::workerPids() const
{
    QList<qint64> pids;
    for (const Worker &w : m_workers)
        if (w.pid > 0)
            pids.append(w.pid);
    return pids;
}

int PrimesJob::failedWorkers() const
{
    int n = 0;
    for (const Worker &w : m_workers)
        n += w.state == WorkerState::Failed;
    return n;
}

quint64 PrimesJob::primes() const
{
    quint64 n = 0;
    for (const Worker &w : m_workers)
        n += w.primes;
    return n;
}

quint64 PrimesJob::checked() const
{
    quint64 n = 0;
    for (const Worker &w : m_workers)
        n += w.checked;
    return n;
}

double PrimesJob::elapsedSeconds() const
{
    return m_state == State::Running ? m_clock.elapsed() / 1000.0 : m_seconds;
}
