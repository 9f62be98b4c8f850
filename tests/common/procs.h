// procs.h - programs the tests exec (never a bare fork of this
// multi-threaded process: such a child can hang under ASan and TSan):
//
//   Proc        a program with pipes on its standard input, output and
//               error; killed (SIGKILL) and reaped when the object goes.
//   RouterProc  the router in a process of its own (tests/routerproc),
//               for hostile peers that may crash, bloat or starve it: the
//               test reads its memory, CPU time and fate from /proc.
//   WorkerProc  the worker program (tests/worker) with --report: whether
//               start worked, how many sends returned 0, what stop said.
//
// Plus what a test reads about TCP connections from /proc/net/tcp.
#ifndef MPR_TEST_PROCS_H
#define MPR_TEST_PROCS_H

#include <QByteArray>
#include <QList>
#include <QMap>
#include <QPair>
#include <QSet>
#include <QString>
#include <QStringList>

#include <sys/types.h>

namespace mprtest {

class Proc
{
public:
    Proc() = default;
    Proc(const Proc &) = delete;
    Proc &operator=(const Proc &) = delete;
    ~Proc() { kill(); }

    // env: variables to set (a null value: to remove) in a copy of ours.
    bool start(const QString &program, const QStringList &args,
               const QList<QPair<QByteArray, QByteArray>> &env = {});
    pid_t pid() const { return m_pid; }
    bool write(const QByteArray &bytes);
    void closeInput();
    // Reads what the program wrote so far (never blocks).
    void pump();
    // The next line of its standard output within timeoutMs (without the
    // newline), or a null QByteArray.
    QByteArray readLine(int timeoutMs);
    // Every line it wrote so far (consumed by readLine or not), and its
    // standard error.
    QByteArray output()
    {
        pump();
        return m_out;
    }
    QByteArray errors()
    {
        pump();
        return m_err;
    }
    // Non-blocking: true once it has ended (status() then says how).
    bool exited();
    int status() const { return m_status; }
    // Waits (at most timeoutMs) for the end.
    bool waitExit(int timeoutMs);
    void signal(int sig);
    void kill();

private:
    pid_t m_pid = -1;
    bool m_done = false;
    int m_status = 0;
    int m_in = -1, m_outFd = -1, m_errFd = -1;
    QByteArray m_out, m_err;
    int m_lineAt = 0; // readLine's position in m_out
};

// Memory, CPU time and the like of a process (/proc/PID).
qint64 rssKiB(pid_t pid);       // VmRSS
double cpuSeconds(pid_t pid);   // utime + stime
int openDescriptors(pid_t pid); // entries of /proc/PID/fd

struct PipeString
{
    int index = -1;
    uint32_t id = 0;
    QByteArray text;
};

struct PipeReport
{
    bool valid = false;
    qint64 count = 0;
    bool inOrder = false;
    int lost = 0;
    qint64 lostAfter = -1;
};

class RouterProc
{
public:
    // Exec the helper (nofile > 0: its RLIMIT_NOFILE) and start the
    // router with options ("remote=tcp://127.0.0.1:0 window=3 ...").
    bool launch(const QByteArray &options, int nofile = 0);
    // One command; the data lines before the final "ok ..." in *data; the
    // final line in *last. False on "err" or no answer within timeoutMs.
    bool command(const QByteArray &line, QList<QByteArray> *data = nullptr,
                 QByteArray *last = nullptr, int timeoutMs = 30000);
    QList<PipeString> pipes(int n);
    PipeReport report(int index);
    QMap<QByteArray, qint64> stats();
    // "key=value ..." of an answer as a map.
    static QMap<QByteArray, qint64> fields(const QByteArray &line);

    bool alive() { return !proc.exited(); }
    // True if it ended because of a signal (which in *sig).
    bool diedOfSignal(int *sig);
    pid_t pid() const { return proc.pid(); }
    qint64 rssKiB() const { return mprtest::rssKiB(proc.pid()); }
    QByteArray log() { return proc.errors(); }

    Proc proc;
    QByteArray endpoint; // tcp://127.0.0.1:PORT
    quint16 port = 0;
};

class WorkerProc
{
public:
    // mpr_test_worker - COUNT SIZE TAG --report extra..., the string on
    // its standard input. transport: "zmq", "socket" or empty (the sender
    // chooses: a local transport where the router's socket is reachable).
    bool start(const QByteArray &senderString, int count, size_t size, uint32_t tag,
               const QByteArray &transport, const QStringList &extra = {});
    void release() { proc.write("go\n"); } // after --wait-at
    // Non-blocking.
    bool finished();
    bool startedOk();  // printed "started"
    bool startFailed(); // printed "start failed"
    QByteArray startError();
    // From the result line (after finished()): -1 if there was none.
    qint64 sent = -1;
    int sendError = 0;
    int stopRc = 1;
    int exitCode() const;
    QByteArray describe();

    Proc proc;
    int count = 0;

private:
    void parse();
};

// Sockets in /proc/net/tcp (IPv4) whose local port is port and whose state
// is ESTABLISHED: their remote ports.
QSet<quint16> establishedAt(quint16 port);

// TCP connections to port still being made (/proc/net/tcp: SYN_SENT towards
// it, SYN_RECV at it): a connect that the listener has not answered yet
// (its backlog was full) is tried again by the kernel a second later.
int connectingTo(quint16 port);

// A TCP port on 127.0.0.1 that was free a moment ago.
quint16 freeLoopbackPort();

} // namespace mprtest

#endif
