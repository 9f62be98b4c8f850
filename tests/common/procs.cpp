// procs.cpp - see procs.h.
#include "procs.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFile>

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace mprtest {

bool Proc::start(const QString &program, const QStringList &args,
                 const QList<QPair<QByteArray, QByteArray>> &env)
{
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        return false;
    if (pipe2(out, O_CLOEXEC) != 0) {
        ::close(in[0]);
        ::close(in[1]);
        return false;
    }
    if (pipe2(err, O_CLOEXEC) != 0) {
        for (int fd : {in[0], in[1], out[0], out[1]})
            ::close(fd);
        return false;
    }
    QList<QByteArray> argStore, envStore;
    argStore << QFile::encodeName(program);
    for (const QString &a : args)
        argStore << a.toLocal8Bit();
    for (char **e = environ; *e; e++) {
        const QByteArray kv(*e);
        const QByteArray key = kv.left(kv.indexOf('='));
        bool replaced = false;
        for (const auto &v : env)
            replaced = replaced || v.first == key;
        if (!replaced)
            envStore << kv;
    }
    for (const auto &v : env)
        if (!v.second.isNull())
            envStore << v.first + '=' + v.second;
    std::vector<char *> argv, envp;
    for (QByteArray &a : argStore)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    for (QByteArray &e : envStore)
        envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    // Default handlers in the child for what we may have ignored (SIGPIPE).
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
        ::close(in[1]);
        ::close(out[0]);
        ::close(err[0]);
        return false;
    }
    m_pid = pid;
    m_done = false;
    m_in = in[1];
    m_outFd = out[0];
    m_errFd = err[0];
    fcntl(m_outFd, F_SETFL, O_NONBLOCK);
    fcntl(m_errFd, F_SETFL, O_NONBLOCK);
    return true;
}

bool Proc::write(const QByteArray &bytes)
{
    const char *p = bytes.constData();
    size_t n = size_t(bytes.size());
    while (n > 0 && m_in >= 0) {
        ssize_t w = ::write(m_in, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= size_t(w);
    }
    return n == 0;
}

void Proc::closeInput()
{
    if (m_in >= 0)
        ::close(m_in);
    m_in = -1;
}

void Proc::pump()
{
    for (int *fd : {&m_outFd, &m_errFd}) {
        QByteArray &to = fd == &m_outFd ? m_out : m_err;
        while (*fd >= 0) {
            char buf[4096];
            ssize_t r = ::read(*fd, buf, sizeof buf);
            if (r > 0) {
                to.append(buf, int(r));
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0) { // the end
                ::close(*fd);
                *fd = -1;
            }
            break;
        }
    }
}

QByteArray Proc::readLine(int timeoutMs)
{
    QElapsedTimer t;
    t.start();
    for (;;) {
        pump();
        const int nl = m_out.indexOf('\n', m_lineAt);
        if (nl >= 0) {
            const QByteArray line = m_out.mid(m_lineAt, nl - m_lineAt);
            m_lineAt = nl + 1;
            return line;
        }
        const qint64 left = timeoutMs - t.elapsed();
        if (left <= 0 || m_outFd < 0)
            return QByteArray();
        pollfd p[2] = {{m_outFd, POLLIN, 0}, {m_errFd, POLLIN, 0}};
        ::poll(p, m_errFd >= 0 ? 2 : 1, int(qMin<qint64>(left, 100)));
    }
}

bool Proc::exited()
{
    pump();
    if (!m_done && m_pid > 0 && ::waitpid(m_pid, &m_status, WNOHANG) == m_pid)
        m_done = true;
    return m_done || m_pid <= 0;
}

bool Proc::waitExit(int timeoutMs)
{
    QElapsedTimer t;
    t.start();
    while (!exited()) {
        if (t.elapsed() > timeoutMs)
            return false;
        pollfd p[2] = {{m_outFd, POLLIN, 0}, {m_errFd, POLLIN, 0}};
        ::poll(p, 2, 20); // a bounded wait for output or the end
    }
    return true;
}

void Proc::signal(int sig)
{
    if (m_pid > 0 && !m_done)
        ::kill(m_pid, sig);
}

void Proc::kill()
{
    if (m_pid > 0 && !m_done) {
        ::kill(m_pid, SIGKILL);
        ::kill(m_pid, SIGCONT); // a stopped process must run to die
        ::waitpid(m_pid, &m_status, 0);
        m_done = true;
    }
    pump();
    closeInput();
    for (int *fd : {&m_outFd, &m_errFd}) {
        if (*fd >= 0)
            ::close(*fd);
        *fd = -1;
    }
}

namespace {
QByteArray procFile(pid_t pid, const char *name)
{
    QFile f(QStringLiteral("/proc/%1/%2").arg(pid).arg(QLatin1String(name)));
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}
} // namespace

qint64 rssKiB(pid_t pid)
{
    const QByteArray status = procFile(pid, "status");
    const int at = status.indexOf("VmRSS:");
    if (at < 0)
        return -1;
    return status.mid(at + 6, status.indexOf('\n', at) - at - 6).trimmed().split(' ').value(0).toLongLong();
}

double cpuSeconds(pid_t pid)
{
    const QByteArray stat = procFile(pid, "stat");
    const int paren = stat.lastIndexOf(')');
    if (paren < 0)
        return -1;
    // After "(comm)": state is field 3; utime and stime are 14 and 15.
    const QList<QByteArray> f = stat.mid(paren + 2).split(' ');
    if (f.size() < 13)
        return -1;
    return double(f[11].toLongLong() + f[12].toLongLong()) / double(sysconf(_SC_CLK_TCK));
}

int openDescriptors(pid_t pid)
{
    return QDir(QStringLiteral("/proc/%1/fd").arg(pid))
        .entryList(QDir::NoDotAndDotDot | QDir::AllEntries | QDir::System)
        .size();
}

bool RouterProc::launch(const QByteArray &options, int nofile)
{
    if (!proc.start(QStringLiteral(MPR_TEST_ROUTERPROC), {}))
        return false;
    if (proc.readLine(30000) != "ready")
        return false;
    if (nofile > 0 && !command("limit nofile " + QByteArray::number(nofile)))
        return false;
    QByteArray last;
    if (!command("start " + options, nullptr, &last))
        return false;
    endpoint = last.mid(3).trimmed();
    port = quint16(endpoint.mid(endpoint.lastIndexOf(':') + 1).toUInt());
    return true;
}

bool RouterProc::command(const QByteArray &line, QList<QByteArray> *data, QByteArray *last,
                         int timeoutMs)
{
    if (!proc.write(line + '\n'))
        return false;
    QElapsedTimer t;
    t.start();
    for (;;) {
        const QByteArray l = proc.readLine(int(qMax<qint64>(1, timeoutMs - t.elapsed())));
        if (l.isNull())
            return false;
        if (l == "ok" || l.startsWith("ok ") || l.startsWith("err")) {
            if (last)
                *last = l;
            return l.startsWith("ok");
        }
        if (data)
            data->append(l);
    }
}

QList<PipeString> RouterProc::pipes(int n)
{
    QList<QByteArray> lines;
    QList<PipeString> out;
    if (!command("pipes " + QByteArray::number(n), &lines))
        return out;
    for (const QByteArray &l : lines) {
        const QList<QByteArray> w = l.split(' ');
        if (w.size() == 4 && w[0] == "pipe")
            out.append({w[1].toInt(), w[2].toUInt(), w[3]});
    }
    return out;
}

QMap<QByteArray, qint64> RouterProc::fields(const QByteArray &line)
{
    QMap<QByteArray, qint64> m;
    for (const QByteArray &w : line.split(' ')) {
        const int eq = w.indexOf('=');
        if (eq > 0)
            m.insert(w.left(eq), w.mid(eq + 1).toLongLong());
    }
    return m;
}

PipeReport RouterProc::report(int index)
{
    PipeReport r;
    QByteArray last;
    if (!command("report " + QByteArray::number(index), nullptr, &last, 10000))
        return r;
    const auto f = fields(last);
    r.valid = true;
    r.count = f.value("count");
    r.inOrder = f.value("order") == 1;
    r.lost = int(f.value("lost"));
    r.lostAfter = f.value("lostafter", -1);
    return r;
}

QMap<QByteArray, qint64> RouterProc::stats()
{
    QByteArray last;
    command("stats", nullptr, &last, 10000);
    return fields(last);
}

bool RouterProc::diedOfSignal(int *sig)
{
    if (!proc.exited())
        return false;
    if (!WIFSIGNALED(proc.status()))
        return false;
    *sig = WTERMSIG(proc.status());
    return true;
}

bool WorkerProc::start(const QByteArray &senderString, int n, size_t size, uint32_t tag,
                       const QByteArray &transport, const QStringList &extra)
{
    count = n;
    QList<QPair<QByteArray, QByteArray>> env;
    env.append({"MPR_TRANSPORT", transport.isEmpty() ? QByteArray() : transport});
    QStringList args = {QStringLiteral("-"), QString::number(n), QString::number(size),
                        QString::number(tag), QStringLiteral("--report")};
    args += extra;
    if (!proc.start(QStringLiteral(MPR_TEST_WORKER), args, env))
        return false;
    return proc.write(senderString + '\n');
}

void WorkerProc::parse()
{
    const QList<QByteArray> lines = proc.output().split('\n');
    for (const QByteArray &l : lines) {
        if (!l.startsWith("result "))
            continue;
        const auto f = RouterProc::fields(l);
        sent = f.value("sent", -1);
        sendError = int(f.value("error"));
        stopRc = int(f.value("stop", 1));
    }
}

bool WorkerProc::finished()
{
    if (!proc.exited())
        return false;
    parse();
    return true;
}

bool WorkerProc::startedOk()
{
    return proc.output().contains("started\n");
}

bool WorkerProc::startFailed()
{
    return proc.output().contains("start failed");
}

QByteArray WorkerProc::startError()
{
    const QByteArray out = proc.output();
    const int at = out.indexOf("start failed");
    return at < 0 ? QByteArray() : out.mid(at, out.indexOf('\n', at) - at);
}

int WorkerProc::exitCode() const
{
    return WIFEXITED(proc.status()) ? WEXITSTATUS(proc.status()) : -1;
}

QByteArray WorkerProc::describe()
{
    return "worker: exit status " + QByteArray::number(proc.status()) + ", output: "
           + proc.output().replace('\n', " | ") + " stderr: " + proc.errors().left(500);
}

QSet<quint16> establishedAt(quint16 port)
{
    QSet<quint16> remote;
    QFile f(QStringLiteral("/proc/net/tcp"));
    if (!f.open(QIODevice::ReadOnly))
        return remote;
    const QList<QByteArray> lines = f.readAll().split('\n');
    for (int i = 1; i < lines.size(); i++) {
        // sl local_address rem_address st ...: "0100007F:1F90 0100007F:D2A4 01"
        const QList<QByteArray> w = lines[i].simplified().split(' ');
        if (w.size() < 4 || w[3] != "01")
            continue;
        const quint16 local = quint16(w[1].mid(w[1].indexOf(':') + 1).toUInt(nullptr, 16));
        if (local == port)
            remote.insert(quint16(w[2].mid(w[2].indexOf(':') + 1).toUInt(nullptr, 16)));
    }
    return remote;
}

int connectingTo(quint16 port)
{
    int n = 0;
    QFile f(QStringLiteral("/proc/net/tcp"));
    if (!f.open(QIODevice::ReadOnly))
        return 0;
    const QList<QByteArray> lines = f.readAll().split('\n');
    for (int i = 1; i < lines.size(); i++) {
        const QList<QByteArray> w = lines[i].simplified().split(' ');
        if (w.size() < 4)
            continue;
        const quint16 local = quint16(w[1].mid(w[1].indexOf(':') + 1).toUInt(nullptr, 16));
        const quint16 remote = quint16(w[2].mid(w[2].indexOf(':') + 1).toUInt(nullptr, 16));
        if ((w[3] == "02" && remote == port) || (w[3] == "03" && local == port))
            n++;
    }
    return n;
}

quint16 freeLoopbackPort()
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    quint16 port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0
        && ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

} // namespace mprtest
