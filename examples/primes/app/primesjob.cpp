/*
 * primesjob.cpp - see primesjob.h.
 *
 * The life of a worker: a pipe (mpr::Router::pipe), its sender turned into
 * a string written to the standard input of primes-worker (never on its
 * command line: any user can read those), a QProcess: primes-worker
 * itself, or the launch command that starts it elsewhere (ssh). Its
 * standard input stays open: its end tells the worker that primes is gone.
 * It ends
 *   - done: its last message says so (then it stops its sender and exits 0);
 *   - failed: its process ends badly, or its receiver emits senderLost()
 *     (the connection ended without mpr_sender_stop; for a remote worker
 *     also: not heard from for the reconnect window);
 *   - cancelled: cancel() or the end of the job killed it.
 * A pipe is closed when nothing more can come through it: after the last
 * message or after senderLost(), which always comes after every message the
 * worker sent. Pipes still open when the job ends are closed right before
 * the router stops, with no routing in between, so nothing is ever
 * delivered to a closed pipe and there is no warning.
 */
#include "primesjob.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QPointer>
#include <QtCore/QProcess>
#include <QtCore/QTimer>
#include <QtCore/QVariantMap>

#include <cstring>

PrimesJob::PrimesJob(QObject *parent)
    : QObject(parent)
{
    m_program = QCoreApplication::applicationDirPath() + QStringLiteral("/primes-worker");
}

PrimesJob::~PrimesJob()
{
    cancel();
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
    const int rc = m_router.start();
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

    for (const Worker &w : qAsConst(m_workers))
        if (w.process)
            w.process->deleteLater();
    m_workers = QVector<Worker>(workers);
    m_from = from;
    m_to = to;
    m_messages = 0;
    m_seconds = 0;
    m_state = State::Running;
    m_clock.start();

    // One chunk per worker; the first ones take the remainder.
    const quint64 total = to - from + 1;
    quint64 next = from;
    for (int i = 0; i < workers; i++) {
        Worker &w = m_workers[i];
        w.from = next;
        w.to = next + total / quint64(workers) - 1 + (quint64(i) < total % quint64(workers));
        next = w.to + 1;
        if (!m_hosts.isEmpty())
            w.host = m_hosts.at(i % m_hosts.size());
    }

    for (int i = 0; i < workers; i++) {
        Worker &w = m_workers[i];
        mpr_sender *sender = nullptr;
        int err = m_router.pipe(&sender, &w.receiver);
        QByteArray text;
        if (err == 0) {
            // snprintf-style: ask for the length, then write.
            err = mpr_sender_to_string(sender, nullptr, 0);
            if (err > 0) {
                text.resize(err + 1);
                err = mpr_sender_to_string(sender, text.data(), size_t(text.size()));
                text.chop(1);
            }
            mpr_sender_free(sender); // the worker makes its own from the string
        }
        if (err < 0) {
            why = QStringLiteral("cannot make a pipe: ") + mpr::Router::errorString(err);
            cancel();
            return false;
        }
        connect(w.receiver, &mpr::Receiver::messageReceived, this,
                [this, i](const QByteArray &message) { onMessage(i, message); });
        connect(w.receiver, &mpr::Receiver::senderLost, this, [this, i] { onSenderLost(i); });

        QProcess *process = new QProcess(this);
        w.process = process;
        process->setProcessChannelMode(QProcess::ForwardedChannels);
        connect(process, &QProcess::started, this, [this, i] {
            m_workers[i].pid = m_workers[i].process->processId();
            Q_EMIT workerStarted(i);
        });
        connect(process, QOverload<int, QProcess::ExitStatus>::of(&QProcess::finished), this,
                [this, i](int code, QProcess::ExitStatus status) {
                    QString failure;
                    if (status == QProcess::CrashExit)
                        failure = QStringLiteral("killed by signal %1 (%2)")
                                      .arg(code)
                                      .arg(QString::fromLocal8Bit(strsignal(code)));
                    else if (code != 0)
                        failure = QStringLiteral("exited with status %1").arg(code);
                    onProcessEnded(i, failure);
                });
        connect(process, &QProcess::errorOccurred, this, [this, i](QProcess::ProcessError e) {
            if (e == QProcess::FailedToStart) // no finished() follows
                onProcessEnded(i, QStringLiteral("cannot start %1: %2")
                                      .arg(m_workers[i].process->program(),
                                           m_workers[i].process->errorString()));
        });
        QStringList args{QString::number(w.from), QString::number(w.to), QStringLiteral("--batch"),
                         QString::number(m_batch)};
        if (m_stalled.contains(i))
            args << QStringLiteral("--stall");
        if (m_launch.isEmpty())
            process->start(m_program, args);
        else
            process->start(QStringLiteral("/bin/sh"), launchArguments(i, args));
        w.pid = process->processId(); // 0 if it could not fork
        // The sender string on its standard input, which stays open: when
        // it ends (primes is gone, or ssh lost its connection) the worker
        // exits.
        process->write(text + '\n');
        text.fill('\0');
    }
    return true;
}

void PrimesJob::onMessage(int index, const QByteArray &message)
{
    Worker &w = m_workers[index];
    m_messages++;
    w.messages++;
    if (w.state != WorkerState::Running)
        return;
    const QVariantMap m = mpr::decodeVariant(message).toMap();
    w.checked = m.value(QStringLiteral("checked")).toULongLong();
    w.primes = m.value(QStringLiteral("primes")).toULongLong();
    if (m.value(QStringLiteral("done")).toBool()) {
        w.state = WorkerState::Done;
        closePipe(index); // the last message: nothing more will come
        Q_EMIT workerProgress(index);
        Q_EMIT workerFinished(index);
        finishIfDone();
    } else {
        Q_EMIT workerProgress(index);
    }
}

void PrimesJob::onSenderLost(int index)
{
    fail(index, QStringLiteral("connection lost"));
    closePipe(index); // senderLost comes after the worker's last message
    // Nothing more can come from it. A local worker that crashed is about
    // to be reaped; a process still running a moment later is of no use
    // (a launcher whose host vanished: ssh may wait for a long time), so
    // it is ended and the job can finish.
    QPointer<QProcess> process = m_workers[index].process;
    if (process && process->state() != QProcess::NotRunning) {
        QTimer::singleShot(1000, process, [this, index, process] {
            if (index < m_workers.size() && m_workers[index].process == process
                && process->state() != QProcess::NotRunning) {
                m_workers[index].killedWhenLost = true;
                process->kill();
            }
        });
    }
    finishIfDone();
}

void PrimesJob::onProcessEnded(int index, const QString &failure)
{
    Worker &w = m_workers[index];
    w.exited = true;
    if (!failure.isEmpty()) {
        if (w.state == WorkerState::Failed && !w.killedWhenLost) { // senderLost() came first
            w.failure = failure;
            Q_EMIT workerProgress(index);
        }
        fail(index, failure);
    }
    // Exited normally: its last message is on its way (or already here).
    finishIfDone();
}

void PrimesJob::fail(int index, const QString &failure)
{
    Worker &w = m_workers[index];
    if (w.state != WorkerState::Running)
        return;
    w.state = WorkerState::Failed;
    w.failure = failure;
    Q_EMIT workerFinished(index);
}

void PrimesJob::closePipe(int index)
{
    Worker &w = m_workers[index];
    if (!w.receiver)
        return;
    disconnect(w.receiver, nullptr, this, nullptr);
    m_router.closePipe(w.receiver);
    w.receiver = nullptr;
}

void PrimesJob::finishIfDone()
{
    if (m_state != State::Running)
        return;
    for (const Worker &w : qAsConst(m_workers))
        if (w.state == WorkerState::Running || !w.exited)
            return;
    shutDown();
    m_state = State::Finished;
    Q_EMIT finished();
}

void PrimesJob::shutDown()
{
    m_seconds = m_clock.elapsed() / 1000.0;
    // Kill every worker that still runs, all at once, then reap them.
    for (Worker &w : m_workers) {
        if (!w.process)
            continue;
        disconnect(w.process, nullptr, this, nullptr);
        if (w.process->state() != QProcess::NotRunning)
            w.process->kill();
    }
    for (Worker &w : m_workers) {
        if (!w.process)
            continue;
        if (w.process->state() != QProcess::NotRunning)
            w.process->waitForFinished(-1); // SIGKILL cannot be ignored
        w.exited = true;
        w.process->deleteLater(); // we may be inside one of its signals
        w.process = nullptr;
    }
    // No routing between closing the pipes and stopping the router: what is
    // still queued is dropped quietly by stop().
    for (int i = 0; i < m_workers.size(); i++)
        closePipe(i);
    if (m_router.isRunning())
        m_router.stop();
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

// /bin/sh -c "exec LAUNCH ARGS", {host} quoted (isValidHost() already
// keeps every character that sh treats specially out of a host).
QStringList PrimesJob::launchArguments(int index, const QStringList &args) const
{
    QString command = m_launch;
    const QString &host = m_workers[index].host;
    command.replace(QLatin1String("{host}"), QLatin1Char('\'') + host + QLatin1Char('\''));
    return {QStringLiteral("-c"),
            QStringLiteral("exec ") + command + QLatin1Char(' ') + args.join(QLatin1Char(' '))};
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

void PrimesJob::cancel()
{
    if (m_state != State::Running)
        return;
    shutDown();
    for (Worker &w : m_workers)
        if (w.state == WorkerState::Running)
            w.state = WorkerState::Cancelled;
    m_state = State::Cancelled;
    Q_EMIT cancelled();
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
