// netns.h - "another host" for tests: a network namespace made by the test
// and joined to the test's own namespace by a veth pair with addresses of
// its own (10.x.y.1 here, 10.x.y.2 there, from a range no machine here
// uses). A process in it cannot reach the router's abstract socket (those
// are per network namespace), so only the remote transport works from
// there. Faults: the link taken down and up, packet loss inside the
// namespace (nftables: this kernel has no netem).
//
// Needs root, ip (iproute2) and, for loss, nft. Everything made is removed
// when the object goes (and names of a previous run that crashed are
// removed at the next start). Traffic stays on the veth pair.
#ifndef MPR_TEST_NETNS_H
#define MPR_TEST_NETNS_H

#include <QString>
#include <QStringList>

#include <functional>
#include <sys/types.h>

namespace mprtest {

class NetNs
{
public:
    // Makes the namespace and the link. ok() says whether it worked;
    // why() what failed (for QSKIP when the machine cannot).
    NetNs();
    ~NetNs();
    bool ok() const { return m_ok; }
    QString why() const { return m_why; }

    QString name() const { return m_name; }
    QString hostAddress() const { return m_host; } // our side of the link
    QString nsAddress() const { return m_ns; }     // theirs
    QString hostInterface() const { return m_hostIf; } // our end of the veth pair

    // A default route in the namespace through our side of the link, so
    // that it reaches our addresses on other links too (several
    // namespaces, one router address).
    bool setDefaultRoute();
    // The link, on our side: down drops everything both ways.
    bool setLinkUp(bool up);
    // Drop this percentage (0: none) of the packets the namespace sends.
    bool setLoss(int percent);
    // A one-way partition: drop every packet the namespace sends on its
    // link (out), or every packet it receives there (in), or both; false,
    // false: none (nftables in the namespace).
    bool setDrop(bool out, bool in);

    // fork() a child that enters the namespace and runs body (its result is
    // the exit status). -1 on failure.
    pid_t fork(const std::function<int()> &body) const;
    // argv to run a program inside the namespace ("ip netns exec NAME ...").
    QStringList wrap(const QStringList &argv) const;
    // The same as a shell command's start, with {host} for the namespace's
    // name (the primes example's --launch): "ip netns exec {host}".
    static QString launchPrefix();
    // The same as an argv template (the executor's MPR_START_LAUNCH): the
    // prefix's words, then argv.
    static QStringList launchTemplate(const QStringList &argv);

    // True if the machine can make namespaces (root, ip); else why not.
    static bool available(QString *why);

private:
    bool run(const QStringList &args, QString *output = nullptr) const;
    bool nft(const QStringList &args) const;
    QString m_name, m_hostIf, m_nsIf, m_host, m_ns, m_why;
    bool m_ok = false;
};

} // namespace mprtest

#endif
