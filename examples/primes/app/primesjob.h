/*
 * primesjob.h - the primes job without any widget: splits a range into one
 * chunk per worker process and hands each chunk, as a job, to an
 * mpr::Executor that runs primes-worker processes (on this machine, or on
 * others through a launch command such as ssh). Used by the window
 * (primeswindow.h) and by the headless mode (main.cpp).
 *
 * MAIN THREAD ONLY, like mpr::Router and mpr::Executor.
 */
#ifndef PRIMESJOB_H
#define PRIMESJOB_H

#include <executor_qt.h>
#include <mprouter_qt.h>

#include <QtCore/QElapsedTimer>
#include <QtCore/QList>
#include <QtCore/QObject>
#include <QtCore/QScopedPointer>
#include <QtCore/QSet>
#include <QtCore/QString>
#include <QtCore/QStringList>
#include <QtCore/QVector>

class PrimesJob : public QObject
{
    Q_OBJECT
public:
    enum class State { Idle, Running, Finished, Cancelled };
    enum class WorkerState { Running, Done, Failed, Cancelled };

    // One chunk of the range: one job of the executor, run by one worker.
    struct Worker
    {
        quint64 from = 0, to = 0;  // the chunk, both included
        quint64 checked = 0;       // numbers tested so far (as last reported)
        quint64 primes = 0;        // primes found so far (as last reported)
        quint64 messages = 0;      // progress reports and the result
        qint64 pid = 0;            // of the worker that runs it (for ssh: ssh's)
        QString host;              // with hosts: the machine it runs on, as reported
        WorkerState state = WorkerState::Running;
        QString failure;           // why it failed (the executor's reason)
        mpr::Future *future = nullptr; // while the executor exists
        quint64 size() const { return to - from + 1; }
    };

    explicit PrimesJob(QObject *parent = nullptr);
    // A job still running is ended the abrupt way (its workers killed).
    ~PrimesJob() override;

    // The worker program (default: primes-worker next to this program).
    void setWorkerProgram(const QString &path) { m_program = path; }
    QString workerProgram() const { return m_program; }
    // Numbers a worker tests between two progress messages (default 5000).
    void setBatch(quint64 batch) { m_batch = batch; }
    // For tests: these chunks' workers stop after their first message and
    // wait to be cancelled or killed.
    void setStalledWorkers(const QSet<int> &workers) { m_stalled = workers; }

    // Workers elsewhere. A launch command ("ssh {host} primes-worker") is
    // split into a program and its arguments (QProcess::splitCommand; no
    // shell) and run by the executor for each worker, {host} replaced by
    // worker i's host: hosts[i % hosts.size()] (MPR_START_LAUNCH). Without
    // hosts it is run as it is. Empty (the default): workerProgram() is
    // started directly. The sender string goes on standard input either way.
    void setLaunchCommand(const QString &command) { m_launch = command; }
    QString launchCommand() const { return m_launch; }
    void setHosts(const QStringList &hosts) { m_hosts = hosts; }
    QStringList hosts() const { return m_hosts; }
    // Let workers on other machines reach the router: a ZeroMQ endpoint to
    // bind ("tcp://0.0.0.0:0": every address, any free port) and the host
    // name or address they use to reach it ("": the router's choice, its
    // host name for a wildcard address). Empty bindEndpoint (the default):
    // local workers only. See mpr_router_set_remote.
    void setRemote(const QString &bindEndpoint, const QString &advertisedHost = QString())
    {
        m_bind = bindEndpoint;
        m_advertise = advertisedHost;
    }
    // A remote worker not heard from for this long is lost (its job fails);
    // 0: the library's default (10 s).
    void setRemoteWindow(double seconds) { m_window = seconds; }
    // While running with setRemote(): the endpoint remote workers connect
    // to ("tcp://host:port"); else "".
    QString remoteEndpoint() const { return m_endpoint; }

    // A host name for the launch command: letters, digits and . _ : -,
    // not starting with '-'. False (and *error says why) otherwise.
    static bool isValidHost(const QString &host, QString *error = nullptr);

    // Count the primes in [from, to] with `workers` processes. False (and
    // *error says why) if the arguments are wrong or the router or the
    // executor cannot start.
    bool start(quint64 from, quint64 to, int workers, QString *error = nullptr);
    // Cooperative cancel: every job is asked to cancel, each worker's task
    // sees it and stops by itself (none is killed unless it ignores the
    // request for the executor's grace time), the workers exit. cancelled()
    // is emitted once they have: the job stays running until then.
    void cancel();

    // Running until every worker has exited (also while cancelling).
    State state() const { return m_state; }
    bool isRunning() const { return m_state == State::Running; }
    bool isCancelling() const { return m_state == State::Running && m_cancelling; }
    quint64 from() const { return m_from; }
    quint64 to() const { return m_to; }
    int workerCount() const { return m_workers.size(); }
    const Worker &worker(int index) const { return m_workers.at(index); }
    QList<qint64> workerPids() const;
    int failedWorkers() const;
    quint64 primes() const;    // sum over the workers, so far
    quint64 checked() const;   // numbers tested, so far
    quint64 messages() const { return m_messages; }
    double elapsedSeconds() const;
    // The executor's counters (workers started, killed, ...): of the
    // running job, or of the last one.
    mpr_executor_stats executorStats() const;

Q_SIGNALS:
    void workerStarted(int index);
    void workerProgress(int index);
    void workerFinished(int index); // done, failed or cancelled
    void finished();                // every chunk is done or failed, every worker gone
    void cancelled();               // cancel() has ended: every worker gone

private:
    void onState(int index, mpr::Future::State state);
    void onProgress(int index, const QVariant &value);
    void shutDown();
    void onShutDown();
    bool setUpRemote(QString *error);

    mpr::Router m_router;
    QScopedPointer<mpr::Executor> m_executor;
    mpr_executor_stats m_stats = {};
    QVector<Worker> m_workers;
    QString m_program;
    quint64 m_batch = 5000;
    QSet<int> m_stalled;
    QString m_launch;
    QStringList m_hosts;
    QString m_bind, m_advertise, m_endpoint;
    double m_window = 0;
    bool m_remoteSet = false; // mpr_router_set_remote was called with an endpoint
    State m_state = State::Idle;
    bool m_cancelling = false;
    bool m_shuttingDown = false;
    quint64 m_from = 0, m_to = 0;
    quint64 m_messages = 0;
    QElapsedTimer m_clock;
    double m_seconds = 0; // frozen at the end of a job
};

#endif // PRIMESJOB_H
