// tst_review3 - cases from the independent review of the platform promises
// (README, "Platforms"): what the portable POSIX build's endpoint leaves in
// /tmp, and a same-user process squatting a stopped router's address.
// Both need the path socket of the portable build (CONFIG+=mpr_portable);
// the Linux build's abstract socket leaves no file at all.
#include <QtTest>

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mprouter/mprouter.h>

#if defined(MPR_PORTABLE)
namespace {

// The endpoint's folder name from a sender string "mpr3:NAME:...".
QByteArray endpointName(mpr_sender *s)
{
    char str[512];
    if (mpr_sender_to_string(s, str, sizeof str) <= 0)
        return QByteArray();
    const QList<QByteArray> parts = QByteArray(str).split(':');
    return parts.size() > 1 ? parts[1] : QByteArray();
}

bool exists(const QByteArray &path)
{
    struct stat st;
    return lstat(path.constData(), &st) == 0;
}

} // namespace
#endif

class TstReview3 : public QObject
{
    Q_OBJECT
private slots:
    void killedRouterFolderIsSweptLater();
    void squatterGetsNoKey();
};

// An application killed with SIGKILL cannot remove its folder; a later
// router of the same user removes it once it has been left for a minute
// (its lock held by nobody). The folder's times are set back two minutes
// here instead of waiting.
void TstReview3::killedRouterFolderIsSweptLater()
{
#if !defined(MPR_PORTABLE)
    QSKIP("the Linux build's endpoint is an abstract socket: no file to leave behind");
#else
    int names[2];
    QCOMPARE(::pipe(names), 0);
    const pid_t c = fork();
    if (c == 0) {
        ::close(names[0]);
        mpr_fd_loop *l;
        mpr_router *r;
        mpr_sender *s;
        mpr_receiver *rv;
        if (mpr_fd_loop_new(&l) != 0 || mpr_router_new(&r, mpr_fd_loop_event_loop(l)) != 0 ||
            mpr_router_start(r) != 0 || mpr_router_pipe(r, &s, &rv) != 0)
            _exit(1);
        const QByteArray name = endpointName(s) + '\n';
        if (::write(names[1], name.constData(), size_t(name.size())) != name.size())
            _exit(2);
        for (;;)
            pause(); // until killed
    }
    ::close(names[1]);
    QByteArray name;
    char ch;
    while (::read(names[0], &ch, 1) == 1 && ch != '\n')
        name += ch;
    ::close(names[0]);
    QVERIFY(name.startsWith("mprouter-"));
    const QByteArray dir = "/tmp/" + name;
    QVERIFY(exists(dir + "/s"));
    QCOMPARE(kill(c, SIGKILL), 0);
    int st = 0;
    QCOMPARE(waitpid(c, &st, 0), c);
    QVERIFY(exists(dir)); // left behind
    struct timeval old[2];
    gettimeofday(&old[0], nullptr);
    old[0].tv_sec -= 120;
    old[1] = old[0];
    QCOMPARE(utimes(dir.constData(), old), 0);

    mpr_fd_loop *l;
    mpr_router *r;
    QCOMPARE(mpr_fd_loop_new(&l), 0);
    QCOMPARE(mpr_router_new(&r, mpr_fd_loop_event_loop(l)), 0);
    QCOMPARE(mpr_router_start(r), 0);
    QVERIFY2(!exists(dir), dir.constData());
    QCOMPARE(mpr_router_stop(r), 0);
    mpr_router_free(r);
    mpr_fd_loop_free(l);
#endif
}

// A process of our own user that takes a stopped router's address, accepts
// the worker and hangs up: the worker's start fails (MPR_EACCES, as when a
// router refuses; another user's process gets MPR_ECONNREFUSED, see
// tests/abuse), and the squatter reads only the HELLO: no key, no ring.
void TstReview3::squatterGetsNoKey()
{
#if !defined(MPR_PORTABLE)
    QSKIP("needs the portable build's path socket");
#else
    mpr_fd_loop *l;
    mpr_router *r;
    QCOMPARE(mpr_fd_loop_new(&l), 0);
    QCOMPARE(mpr_router_new(&r, mpr_fd_loop_event_loop(l)), 0);
    QCOMPARE(mpr_router_start(r), 0);
    mpr_sender *s;
    mpr_receiver *rv;
    QCOMPARE(mpr_router_pipe(r, &s, &rv), 0);
    const QByteArray name = endpointName(s);
    QVERIFY(name.startsWith("mprouter-"));
    QCOMPARE(mpr_router_close_pipe(r, rv), 0);
    QCOMPARE(mpr_router_stop(r), 0);
    const QByteArray dir = "/tmp/" + name, path = dir + "/s";
    QVERIFY(!exists(dir));
    QCOMPARE(mkdir(dir.constData(), 0700), 0);
    const int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    QVERIFY(ls >= 0);
    struct sockaddr_un a = {};
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path.constData(), sizeof a.sun_path - 1);
    QCOMPARE(bind(ls, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
    QCOMPARE(listen(ls, 4), 0);
    const pid_t w = fork();
    if (w == 0) {
        const int e = mpr_sender_start(s);
        _exit(e == MPR_EACCES ? 0 : e == 0 ? 100 : 101);
    }
    struct pollfd p = {ls, POLLIN, 0};
    QVERIFY(poll(&p, 1, 30000) == 1);
    const int cs = accept(ls, nullptr, nullptr);
    QVERIFY(cs >= 0);
    // Everything the worker sends until it gives up: the HELLO only.
    QByteArray got;
    char buf[4096];
    struct msghdr mh = {};
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int) * 4)];
    } ctl;
    int descriptors = 0;
    for (;;) {
        struct pollfd pp = {cs, POLLIN, 0};
        if (poll(&pp, 1, 30000) != 1)
            break;
        struct iovec io = {buf, sizeof buf};
        mh.msg_iov = &io;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.space;
        mh.msg_controllen = sizeof ctl.space;
        const ssize_t n = recvmsg(cs, &mh, 0);
        if (n <= 0)
            break;
        for (cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_type == SCM_RIGHTS)
                descriptors++;
        got.append(buf, int(n));
        if (got.size() >= 32)
            break; // the HELLO is all there is; then we hang up
    }
    ::close(cs);
    int st = 0;
    QCOMPARE(waitpid(w, &st, 0), w);
    ::close(ls);
    unlink(path.constData());
    rmdir(dir.constData());
    mpr_sender_free(s);
    mpr_router_free(r);
    mpr_fd_loop_free(l);
    QCOMPARE(got.size(), 32);          // a HELLO: magic, version, id, flags, nonce
    QVERIFY(got.startsWith("MPR1"));
    QCOMPARE(descriptors, 0);          // no ring
    QVERIFY2(WIFEXITED(st) && WEXITSTATUS(st) == 0,
             qPrintable(QString("the worker's start: exit %1").arg(WEXITSTATUS(st))));
#endif
}

QTEST_GUILESS_MAIN(TstReview3)
#include "tst_review3.moc"
