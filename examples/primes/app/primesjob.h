/*
 * primesjob.h - the primes job without any widget: splits a range into one
 * chunk per worker process, starts the workers with QProcess (on this
 * machine, or on others through a launch command such as ssh), routes
 * their messages through an mpr::Router and keeps the count. Used by the
 * window (primeswindow.h) and by the headless mode (main.cpp).
 *
 * MAIN THREAD ONLY, like mpr::Router.
 */
#ifndef PRIMESJOB_H
#define PRIMESJOB_H

#include <mprouter_qt.h>

#include <QtCore/QElapsedTimer>
#include <QtCore/QList>
#include <QtCore/QObject>
#include <QtCore/QSet>
#include <QtCore/QString>
#include <QtCore/QStringList>
#include <QtCore/QVector>

class QProcess;

class PrimesJob : public QObject
{
    Q_OBJECT
public:
    enum class State { Idle, Running, Finished, Cancelled };
    enum class WorkerState { Running, Done, Failed, Cancelled };

    struct Worker
    {
        quint64 from = 0, to = 0;  // the chunk, both included
        quint64 checked = 0;       // numbers tested so far (as last reported)
        quint64 primes = 0;        // primes found so far (as last reported)
        quint64 messages = 0;
        qint64 pid = 0;            // of the process primes started (for ssh: ssh's)
        QString host;              // where it runs ("" for this machine)
        WorkerState state = WorkerState::Running;
        QString failure;           // why it failed, for WorkerState::Failed
        bool exited = false;       // the process has ended (or never started)
        bool killedWhenLost = false; // still running after senderLost(): killed
        QProcess *process = nullptr;
        mpr::Receiver *receiver = nullptr; // while the pipe is open
        quint64 size() const { return to - from + 1; }
    };

    explicit PrimesJob(QObject *parent = nullptr);
    // Cancels a running job: no worker outlives the job.
    ~PrimesJob() override;

    // The worker program (default: primes-worker next to this program).
    void setWorkerProgram(const QString &path) { m_program = path; }
    QString workerProgram() const { return m_program; }
    // Numbers a worker tests between two progress messages (default 5000).
    void setBatch(quint64 batch) { m_batch = batch; }
    // For tests: these workers stop after their first message and wait to
    // be killed or cancelled (primes-worker --stall).
    void setStalledWorkers(const QSet<int> &workers) { m_stalled = workers; }

    // Workers elsewhere. A launch command ("ssh {host} primes-worker") is
    // run for each worker with /bin/sh -c "exec COMMAND FROM TO --batch N
    // [--stall]", {host} replaced by worker i's host: hosts[i % hosts.size()]
    // (quoted). It must be one simple command (its program and arguments):
    // exec makes that program the process that cancel() kills. Empty (the
    // default): workerProgram() is started directly. The sender string
    // goes on the worker's standard input either way.
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
    // A remote worker not heard from for this long is reported lost
    // (senderLost); 0: the library's default (10 s).
    void setRemoteWindow(double seconds) { m_window = seconds; }
    // While running with setRemote(): the endpoint remote workers connect
    // to ("tcp://host:port"); else "".
    QString remoteEndpoint() const { return m_endpoint; }

    // A host name for the launch command: letters, digits and . _ : -,
    // not starting with '-'. False (and *error says why) otherwise.
    static bool isValidHost(const QString &host, QString *error = nullptr);

    // Count the primes in [from, to] with `workers` processes. False (and
    // *error says why) if the arguments are wrong or the router cannot start.
    bool start(quint64 from, quint64 to, int workers, QString *error = nullptr);
    // Stop every worker at once (SIGKILL, then reap), close the pipes and
    // stop the router. Emits cancelled() if a job was running.
    void cancel();

    State state() const { return m_state; }
    bool isRunning() const { return m_state == State::Running; }
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

Q_SIGNALS:
    void workerStarted(int index);
    void workerProgress(int index);
    void workerFinished(int index); // done or failed
    void finished();                // every worker is done or failed
    void cancelled();

private:
    void onMessage(int index, const QByteArray &message);
    void onSenderLost(int index);
    void onProcessEnded(int index, const QString &failure);
    void fail(int index, const QString &failure);
    void closePipe(int index);
    void finishIfDone();
    void shutDown();
    bool setUpRemote(QString *error);
    QStringList launchArguments(int index, const QStringList &args) const;

    mpr::Router m_router;
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
    quint64 m_from = 0, m_to = 0;
    quint64 m_messages = 0;
    QElapsedTimer m_clock;
    double m_seconds = 0; // frozen at the end of a job
};

#endif // PRIMESJOB_H
