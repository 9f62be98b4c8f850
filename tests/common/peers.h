// peers.h - peers of the router for the hostile-peer tests (tests/trust,
// tests/abuse): the wire protocol of src/wire.h written out by hand, raw
// connections, pipes with inboxes, child processes that are never left
// behind, and a well-behaved "bystander" worker that must keep flowing
// while a hostile peer does its thing. Link with rawpeer.c and src/wire.c
// (CONFIG += mpr_rawpeer).
#ifndef MPR_TEST_PEERS_H
#define MPR_TEST_PEERS_H

#include <QtTest>

#include <atomic>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <time.h>
#include <unistd.h>

#include "payload.h"
#include "rawpeer.h"
#include "testsupport.h"

namespace mprtest {

// ---- the wire protocol, as documented in src/wire.h ---------------------

const uint32_t HelloMagic = 0x3152504du; // "MPR1"
const uint32_t ProofMagic = 0x5052504du; // "MPRP"
const uint32_t Bye = 0x80000001u;
const uint32_t Version = 4; // MPR__WIRE_VERSION (src/wire.h)
const uint32_t ProofRing = 1;
const int ChallengeSize = 48;
const int AckSize = 16;

void putU32(QByteArray &b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b.append(char((v >> (8 * i)) & 0xffu));
}

uint32_t getU32(const QByteArray &b, int at)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= uint32_t(uchar(b[at + i])) << (8 * i);
    return v;
}

// What a sender string (mpr3:NAME:ID:KEYHEX, src/sender.c) holds; secret
// is the pipe's key, the only credential a worker ever has.
struct Credentials
{
    QByteArray name;
    uint32_t id = 0;
    QByteArray secret;
};

inline bool parseSender(const mpr_sender *sender, Credentials *out)
{
    char buf[512];
    int n = mpr_sender_to_string(sender, buf, sizeof buf);
    if (n <= 0 || n >= int(sizeof buf))
        return false;
    // mpr3:NAME:ID:KEY, then for a router with a remote endpoint
    // :SERVERKEY:tcp://HOST:PORT (ignored here).
    const QList<QByteArray> parts = QByteArray(buf, n).split(':');
    if (parts.size() < 4 || parts[0] != "mpr3")
        return false;
    out->name = parts[1];
    out->id = parts[2].toUInt();
    out->secret = QByteArray::fromHex(parts[3]);
    return out->id > 0 && out->secret.size() == 16;
}

// A HELLO with a fresh nonce (returned in *nonce if asked for).
inline QByteArray hello(uint32_t id, uint32_t version = Version, uint32_t flags = 0,
                 QByteArray *nonce = nullptr)
{
    QByteArray b;
    putU32(b, HelloMagic);
    putU32(b, version);
    putU32(b, id);
    putU32(b, flags);
    QByteArray n(16, '\0');
    for (int i = 0; i < 16; i++)
        n[i] = char(QRandomGenerator::global()->bounded(256));
    if (nonce)
        *nonce = n;
    return b + n;
}

// A handshake tag (src/wire.h) made with key, as the role would make it.
inline QByteArray tag(const QByteArray &key, char role, uint32_t id, const QByteArray &answered,
               const QByteArray &own)
{
    QByteArray t(16, '\0');
    hp_tag(reinterpret_cast<unsigned char *>(t.data()),
           reinterpret_cast<const unsigned char *>(key.constData()), role, id,
           reinterpret_cast<const unsigned char *>(answered.constData()),
           reinterpret_cast<const unsigned char *>(own.constData()));
    return t;
}

inline QByteArray proof(const QByteArray &t, uint32_t flags = 0)
{
    QByteArray b;
    putU32(b, ProofMagic);
    putU32(b, flags);
    putU32(b, 0);
    putU32(b, 0);
    return b + t;
}

inline QByteArray payload(uint32_t seq, uint32_t tag, size_t size)
{
    QByteArray b(int(size), '\0');
    mpr_test_fill(reinterpret_cast<unsigned char *>(b.data()), size, seq, tag);
    return b;
}

inline QByteArray frame(const QByteArray &body)
{
    QByteArray b;
    putU32(b, uint32_t(body.size()));
    return b + body;
}

// Write all n bytes to a socket (without SIGPIPE) or a pipe.
inline bool writeAll(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= size_t(w);
    }
    return true;
}

inline int rawConnect(const QByteArray &name)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    sockaddr_un addr;
    socklen_t len = socklen_t(hp_local_addr(name.constData(), &addr, 0));
    if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), len) < 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Read exactly n bytes within timeoutMs (for the ACK). Empty on EOF/error.
inline QByteArray readExactly(int fd, int n, int timeoutMs)
{
    QByteArray got;
    QElapsedTimer t;
    t.start();
    while (got.size() < n && t.elapsed() < timeoutMs) {
        pollfd p = {fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0)
            continue;
        char buf[64];
        ssize_t r = ::read(fd, buf, qMin(sizeof buf, size_t(n - got.size())));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return QByteArray();
        got.append(buf, int(r));
    }
    return got.size() == n ? got : QByteArray();
}

// A raw connection to the router, in this process.
class RawPeer
{
public:
    explicit RawPeer(const QByteArray &name) : fd(rawConnect(name)) {}
    ~RawPeer()
    {
        if (fd >= 0)
            ::close(fd);
    }
    bool ok() const { return fd >= 0; }
    bool send(const QByteArray &b) { return writeAll(fd, b.constData(), size_t(b.size())); }
    // HELLO, then the CHALLENGE: its nonce, checked against the pipe's
    // key. False if the router closed or did not prove the key.
    bool hello(const Credentials &c, QByteArray *nonceR, uint32_t *maxMsg = nullptr)
    {
        QByteArray nonceS;
        if (!send(mprtest::hello(c.id, Version, 0, &nonceS)))
            return false;
        QByteArray ch = readExactly(fd, ChallengeSize, 30000);
        if (ch.size() != ChallengeSize || getU32(ch, 0) != 0x4352504du)
            return false;
        if (maxMsg)
            *maxMsg = getU32(ch, 8);
        *nonceR = ch.mid(16, 16);
        this->nonceS = nonceS;
        return ch.mid(32, 16) == tag(c.secret, 'r', c.id, nonceS, *nonceR);
    }
    // After hello(): the PROOF (with memfd attached if >= 0), then the
    // ACK's status and mode. False if the router closed instead.
    bool prove(const Credentials &c, const QByteArray &nonceR, uint32_t flags, int memfd,
               uint32_t *status, uint32_t *mode)
    {
        const QByteArray t = tag(c.secret, 's', c.id, nonceR, nonceS);
        if (hp_send_proof(fd, flags, reinterpret_cast<const unsigned char *>(t.constData()), memfd)
            < 0)
            return false;
        return hp_read_ack(fd, 30000, status, mode) == 1;
    }
    // Handshake with good credentials; true if the router answered ACK
    // with status 0 for frames.
    bool handshake(const Credentials &c, uint32_t *maxMsg = nullptr)
    {
        QByteArray nonceR;
        uint32_t status = 1, mode = 1;
        return hello(c, &nonceR, maxMsg) && prove(c, nonceR, 0, -1, &status, &mode) && status == 0
               && mode == 0;
    }
    QByteArray nonceS;
    // Non-blocking: true once the router has closed the connection. What
    // the router sent before (it must send nothing to a rejected peer)
    // collects in received.
    bool closedByRouter()
    {
        for (;;) {
            char buf[64];
            ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) {
                received.append(buf, int(n));
                continue;
            }
            if (n == 0)
                return true;
            if (errno == EINTR)
                continue;
            return errno != EAGAIN && errno != EWOULDBLOCK; // ECONNRESET: closed too
        }
    }
    void closeNow()
    {
        ::close(fd);
        fd = -1;
    }
    int fd;
    QByteArray received;
};

// A pipe whose receiver fills an inbox; the sender is freed with it.
struct Pipe
{
    mpr_sender *sender = nullptr;
    mpr_receiver *receiver = nullptr;
    Inbox inbox;
    Credentials cred;
    ~Pipe() { mpr_sender_free(sender); }
    bool open(mpr_router *router)
    {
        if (mpr_router_pipe(router, &sender, &receiver) != 0)
            return false;
        inbox.attach(receiver);
        return parseSender(sender, &cred);
    }
    bool untouched() const { return inbox.messages.isEmpty() && inbox.lost == 0; }
};

inline mpr_router_stats stats(mpr_router *router)
{
    mpr_router_stats s;
    mpr_router_get_stats(router, &s);
    return s;
}

inline void sleepMs(int ms)
{
    timespec ts = {ms / 1000, long(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

// A child that must not be left behind when a check fails.
struct Child
{
    pid_t pid = -1;
    int status = 0;
    bool done = false;
    ~Child() { kill(); }
    bool exited()
    {
        if (!done && pid > 0 && ::waitpid(pid, &status, WNOHANG) == pid)
            done = true;
        return done;
    }
    bool exitedWith(int code) { return exited() && WIFEXITED(status) && WEXITSTATUS(status) == code; }
    void kill()
    {
        if (pid > 0 && !done) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            done = true;
        }
    }
    // Scheduler state letter from /proc/PID/stat ('R', 'S', 'T', ...).
    char state() const
    {
        QFile f(QString("/proc/%1/stat").arg(pid));
        if (!f.open(QIODevice::ReadOnly))
            return '?';
        QByteArray s = f.readAll();
        int paren = s.lastIndexOf(')');
        return paren > 0 && paren + 2 < s.size() ? s[paren + 2] : '?';
    }
};

// A well-behaved worker process, connected while a hostile peer does its
// thing: it sends the first half of its messages, waits to be released,
// sends the second half and stops. Under ThreadSanitizer a remote
// (MPR_TRANSPORT=zmq) bystander is a thread instead: TSan cannot follow a
// forked child of this process that starts the remote sender's thread
// (routersuite.cpp, SKIP_IF_FORKED_THREADS).
struct Bystander
{
    static const int Count = 400;
    static const size_t Size = 48;
    Pipe pipe;
    Child child;
    std::thread thread;
    std::atomic<int> threadRc{-1};
    uint32_t tag = 0;
    int go[2] = {-1, -1};

    static bool asThread()
    {
#if defined(__SANITIZE_THREAD__)
        return qgetenv("MPR_TRANSPORT") == "zmq";
#else
        return false;
#endif
    }
    static int work(mpr_sender *sender, int rd, uint32_t t)
    {
        int rc = mpr_sender_start(sender);
        QByteArray buf(int(Size), '\0');
        auto p = reinterpret_cast<unsigned char *>(buf.data());
        for (int i = 0; i < Count && rc == 0; i++) {
            if (i == Count / 2) {
                char byte;
                while (::read(rd, &byte, 1) < 0 && errno == EINTR) {
                }
            }
            mpr_test_fill(p, Size, uint32_t(i), t);
            rc = mpr_sender_send(sender, p, Size);
        }
        if (rc == 0)
            rc = mpr_sender_stop(sender);
        return rc == 0 ? 0 : 1;
    }
    bool start(mpr_router *router, uint32_t streamTag)
    {
        tag = streamTag;
        if (!pipe.open(router) || ::pipe(go) != 0)
            return false;
        mpr_sender *sender = pipe.sender;
        int rd = go[0], wr = go[1];
        uint32_t t = tag;
        go[0] = -1;
        if (asThread()) {
            thread = std::thread([this, sender, rd, t] {
                int rc = work(sender, rd, t);
                ::close(rd);
                threadRc = rc;
            });
            return true;
        }
        child.pid = forkWorker([=] {
            ::close(wr);
            return work(sender, rd, t);
        });
        ::close(rd);
        return child.pid > 0;
    }
    bool halfway() const { return pipe.inbox.messages.size() >= Count / 2; }
    void release()
    {
        if (go[1] >= 0) {
            ::close(go[1]); // EOF wakes the worker
            go[1] = -1;
        }
    }
    bool done() { return thread.joinable() ? threadRc >= 0 : child.exited(); }
    bool finished() { return pipe.inbox.messages.size() >= Count && done(); }
    bool deliveredAll()
    {
        const bool ok = thread.joinable() ? threadRc == 0 : child.exitedWith(0);
        return pipe.inbox.isSequence(Count, Size, tag) && pipe.inbox.lost == 0 && ok;
    }
    ~Bystander()
    {
        release();
        if (thread.joinable())
            thread.join();
    }
};

} // namespace mprtest

#define OPEN_PIPE(p) QVERIFY((p).open(router))
#define T_LONG 60000

// Start a bystander and wait until it is halfway.
#define START_BYSTANDER(b, tag)                                    \
    do {                                                           \
        QVERIFY((b).start(router, (tag)));                         \
        QTRY_VERIFY_WITH_TIMEOUT((b).halfway(), T_LONG);           \
    } while (0)

// Release the bystander and check it delivered everything, in order.
#define FINISH_BYSTANDER(b)                                        \
    do {                                                           \
        (b).release();                                             \
        QTRY_VERIFY_WITH_TIMEOUT((b).finished(), T_LONG);          \
        QVERIFY2((b).deliveredAll(), "the bystander lost messages"); \
    } while (0)

#endif
