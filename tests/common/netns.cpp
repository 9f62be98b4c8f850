// netns.cpp - see netns.h.
#include "netns.h"
#include "quiet.h"

#include <QFile>
#include <QProcess>
#include <QStandardPaths>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <sched.h>
#include <dirent.h>
#include <sys/mount.h>
#include <unistd.h>

namespace mprtest {

namespace {

const char Prefix[] = "mprt-"; // namespaces: mprt-PID-N

std::atomic<int> counter{0};

QString ipTool()
{
    for (const char *p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
        if (QFile::exists(QLatin1String(p)))
            return QLatin1String(p);
    return QStandardPaths::findExecutable(QStringLiteral("ip"));
}

bool runTool(const QString &program, const QStringList &args, QString *output)
{
    QProcess p;
    p.setProcessChannelMode(QProcess::MergedChannels);
    p.start(program, args);
    if (!p.waitForFinished(20000)) {
        p.kill();
        p.waitForFinished(5000);
        return false;
    }
    if (output)
        *output = QString::fromLocal8Bit(p.readAll()).trimmed();
    return p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
}

// Namespaces left by test runs that crashed: their pid is gone.
void removeStale(const QString &ip)
{
    QString list;
    if (!runTool(ip, {QStringLiteral("netns"), QStringLiteral("list")}, &list))
        return;
    for (const QString &line : list.split(QLatin1Char('\n'))) {
        const QString name = line.section(QLatin1Char(' '), 0, 0);
        if (!name.startsWith(QLatin1String(Prefix)))
            continue;
        const pid_t pid = name.section(QLatin1Char('-'), 1, 1).toInt();
        if (pid > 0 && (::kill(pid, 0) == 0 || errno != ESRCH))
            continue; // still running: not ours to remove
        runTool(ip, {QStringLiteral("netns"), QStringLiteral("del"), name}, nullptr);
    }
}

} // namespace

bool NetNs::available(QString *why)
{
    if (geteuid() != 0) {
        *why = QStringLiteral("needs root to make network namespaces");
        return false;
    }
    if (ipTool().isEmpty()) {
        *why = QStringLiteral("needs ip (iproute2) to make network namespaces");
        return false;
    }
    return true;
}

bool NetNs::run(const QStringList &args, QString *output) const
{
    return runTool(ipTool(), args, output);
}

NetNs::NetNs()
{
    if (!available(&m_why))
        return;
    removeStale(ipTool());
    const int n = counter++;
    const int subnet = 1 + int((unsigned(getpid()) * 7u + unsigned(n)) % 250u);
    m_name = QStringLiteral("%1%2-%3").arg(QLatin1String(Prefix)).arg(getpid()).arg(n);
    m_hostIf = QStringLiteral("mv%1%2h").arg(getpid() & 0xfffff, 5, 16, QLatin1Char('0')).arg(n & 0xff, 2, 16, QLatin1Char('0'));
    const QString nsIf = m_hostIf.left(m_hostIf.size() - 1) + QLatin1Char('n');
    m_nsIf = nsIf;
    m_host = QStringLiteral("10.231.%1.1").arg(subnet);
    m_ns = QStringLiteral("10.231.%1.2").arg(subnet);
    QString out;
    const QList<QStringList> steps = {
        {"netns", "add", m_name},
        {"link", "add", m_hostIf, "type", "veth", "peer", "name", nsIf, "netns", m_name},
        {"addr", "add", m_host + "/24", "dev", m_hostIf},
        {"link", "set", m_hostIf, "up"},
        {"-n", m_name, "addr", "add", m_ns + "/24", "dev", nsIf},
        {"-n", m_name, "link", "set", nsIf, "up"},
        {"-n", m_name, "link", "set", "lo", "up"},
    };
    for (const QStringList &step : steps) {
        if (!run(step, &out)) {
            m_why = QStringLiteral("ip %1: %2").arg(step.join(QLatin1Char(' ')), out);
            return;
        }
    }
    m_ok = true;
}

NetNs::~NetNs()
{
    if (m_name.isEmpty())
        return;
    // Deleting the namespace takes its end of the pair, and with it ours.
    run({QStringLiteral("netns"), QStringLiteral("del"), m_name});
    run({QStringLiteral("link"), QStringLiteral("del"), m_hostIf}); // if the pair outlived it
}

bool NetNs::setDefaultRoute()
{
    return run({QStringLiteral("-n"), m_name, QStringLiteral("route"), QStringLiteral("replace"),
                QStringLiteral("default"), QStringLiteral("via"), m_host});
}

bool NetNs::setLinkUp(bool up)
{
    return run({QStringLiteral("link"), QStringLiteral("set"), m_hostIf,
                up ? QStringLiteral("up") : QStringLiteral("down")});
}

bool NetNs::setLoss(int percent)
{
    const QString nft = QStandardPaths::findExecutable(QStringLiteral("nft"), {"/usr/sbin", "/sbin"});
    if (nft.isEmpty())
        return false;
    auto inNs = [&](const QStringList &args) {
        return runTool(ipTool(), QStringList{"netns", "exec", m_name, nft} + args, nullptr);
    };
    // A table of our own in the namespace, made once, its rule replaced.
    inNs({"add", "table", "inet", "mprt"});
    inNs({"add", "chain", "inet", "mprt", "out", "{", "type", "filter", "hook", "output",
          "priority", "0", ";", "policy", "accept", ";", "}"});
    if (!inNs({"flush", "chain", "inet", "mprt", "out"}))
        return false;
    return percent <= 0
           || inNs({"add", "rule", "inet", "mprt", "out", "numgen", "random", "mod", "100", "<",
                    QString::number(percent), "drop"});
}

bool NetNs::nft(const QStringList &args) const
{
    const QString tool = QStandardPaths::findExecutable(QStringLiteral("nft"), {"/usr/sbin", "/sbin"});
    return !tool.isEmpty()
           && runTool(ipTool(), QStringList{"netns", "exec", m_name, tool} + args, nullptr);
}

bool NetNs::setDrop(bool out, bool in)
{
    // Chains of their own in our table, made once, their rules replaced.
    nft({"add", "table", "inet", "mprt"});
    nft({"add", "chain", "inet", "mprt", "cutout", "{", "type", "filter", "hook", "output",
         "priority", "0", ";", "policy", "accept", ";", "}"});
    nft({"add", "chain", "inet", "mprt", "cutin", "{", "type", "filter", "hook", "input",
         "priority", "0", ";", "policy", "accept", ";", "}"});
    if (!nft({"flush", "chain", "inet", "mprt", "cutout"}) || !nft({"flush", "chain", "inet", "mprt", "cutin"}))
        return false;
    return (!out || nft({"add", "rule", "inet", "mprt", "cutout", "oifname", m_nsIf, "drop"}))
           && (!in || nft({"add", "rule", "inet", "mprt", "cutin", "iifname", m_nsIf, "drop"}));
}

pid_t NetNs::fork(const std::function<int()> &body) const
{
    const QByteArray path = QStringLiteral("/run/netns/%1").arg(m_name).toLocal8Bit();
    waitForQuietThreads();
    pid_t pid = ::fork();
    if (pid != 0)
        return pid;
    alarm(120); // never outlive a broken test run
    int fd = ::open(path.constData(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
        _exit(90);
    ::close(fd);
#if defined(MPR_PORTABLE)
    // The portable build's local endpoint is a path in /tmp, which a
    // network namespace does not hide: another host has a /tmp of its own.
    // Only the endpoints' folders are hidden, not all of /tmp: the
    // programs may live there (a checkout under /tmp).
    if (unshare(CLONE_NEWNS) < 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
        _exit(91);
    if (DIR *d = opendir("/tmp")) {
        while (dirent *e = readdir(d)) {
            if (strncmp(e->d_name, "mprouter-", 9) != 0)
                continue;
            char dir[300];
            snprintf(dir, sizeof dir, "/tmp/%s", e->d_name);
            if (mount("tmpfs", dir, "tmpfs", 0, "mode=700") < 0)
                _exit(91);
        }
        closedir(d);
    }
#endif
    _exit(body());
}

#if defined(MPR_PORTABLE)
// The portable build's local endpoint is a path in /tmp, which a network
// namespace does not hide: in the program's own mount namespace (ip netns
// exec makes one), an empty tmpfs over each endpoint's folder (not over
// all of /tmp: the programs may live there, in a checkout under /tmp).
// No quote inside: primes splits its --launch with QProcess::splitCommand,
// which knows double quotes only; the paths have no spaces.
static const char hideEndpoints[] =
    "for d in /tmp/mprouter-*; do if [ -d $d ]; then mount -t tmpfs -o mode=700 tmpfs $d || exit 97; "
    "fi; done; exec $0 $@";
#endif

QString NetNs::launchPrefix()
{
    QString prefix = ipTool() + QStringLiteral(" netns exec {host}");
#if defined(MPR_PORTABLE)
    prefix += QStringLiteral(" sh -c \"") + QLatin1String(hideEndpoints) + QStringLiteral("\"");
#endif
    return prefix;
}

QStringList NetNs::launchTemplate(const QStringList &argv)
{
    QStringList words{ipTool(), QStringLiteral("netns"), QStringLiteral("exec"),
                      QStringLiteral("{host}")};
#if defined(MPR_PORTABLE)
    words << QStringLiteral("sh") << QStringLiteral("-c")
          << QLatin1String(hideEndpoints);
#endif
    return words + argv;
}

QStringList NetNs::wrap(const QStringList &argv) const
{
    QStringList ns{ipTool(), QStringLiteral("netns"), QStringLiteral("exec"), m_name};
#if defined(MPR_PORTABLE)
    // The router's endpoint folders hidden too (see fork()): ip netns exec
    // gives the program a mount namespace of its own already.
    ns << QStringLiteral("sh") << QStringLiteral("-c")
       << QLatin1String(hideEndpoints);
#endif
    return ns + argv;
}

} // namespace mprtest
