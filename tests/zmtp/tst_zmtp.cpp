// tst_zmtp - ZeroMQ's protocol with CURVE, without I/O (src/zmtp.c), as the
// router will speak it: against real libzmq sockets over loopback TCP in
// both roles (a DEALER connects to our server; our client connects to a
// ROUTER), our client against our server, and a hand-made CURVE peer
// (curvepeer.c, written separately from the RFCs) for what libzmq never
// sends: a forged vouch, odd metadata, a repeated nonce, an encrypted
// command, a frame header of any size. Every byte between two ends goes
// through a TCP connection on 127.0.0.1; the machine only ever sees what
// the test read from its socket.
//
// Then what a hostile peer may not do: make the machine allocate past its
// bound, keep more than a few KiB before READY, or find a copy of a
// long-term secret key anywhere in this process's memory.
#include <QtTest>

#include <algorithm>
#include <arpa/inet.h>
#include <fcntl.h>
#include <functional>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>
#include <zmq.h>

#include <mprouter/common.h>

extern "C" {
#include "curvepeer.h"
#include "zmtp.h"
// internal.h is C11 (stdatomic.h): the two functions this test needs.
void *mpr__secure_alloc(size_t size);
void mpr__secure_free(void *p, size_t size);
}

#if defined(__SANITIZE_ADDRESS__)
#define MPR_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MPR_TEST_ASAN 1
#endif
#endif

namespace {

const size_t MAX = 512 * 1024;     // max_message of the machines here
const size_t BOUND = MAX + MPR__ZMTP_OVERHEAD;
const size_t SMALL = 6 * 1024;     // what a machine may hold before READY: its page and a little output
const int T = 5000;                // ms: a generous timeout for anything on loopback

QByteArray bytes(const unsigned char *p, size_t n = 32)
{
    return QByteArray(reinterpret_cast<const char *>(p), int(n));
}

// size bytes that differ with tag and position.
QByteArray pattern(size_t size, unsigned tag)
{
    QByteArray b(int(size), Qt::Uninitialized);
    uint32_t x = 2463534242u ^ tag;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[int(i)] = char(x);
    }
    return b;
}

struct Keys
{
    unsigned char pub[32], sec[32];
    Keys() { crypto_box_keypair(pub, sec); }
};

void nonBlocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A listening socket on 127.0.0.1 and its port.
int listenTcp(int *port)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0 || ::listen(fd, 16) < 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) < 0) {
        if (fd >= 0)
            ::close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int acceptOne(int lfd, int ms)
{
    pollfd p = {lfd, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1)
        return -1;
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0)
        nonBlocking(fd);
    return fd;
}

int connectTcp(int port)
{
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(quint16(port));
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0) {
        if (fd >= 0)
            ::close(fd);
        return -1;
    }
    nonBlocking(fd);
    return fd;
}

// Two ends of one TCP connection on loopback.
bool tcpPair(int fds[2])
{
    int port = 0, lfd = listenTcp(&port);
    if (lfd < 0)
        return false;
    fds[0] = connectTcp(port);
    fds[1] = fds[0] >= 0 ? acceptOne(lfd, T) : -1;
    ::close(lfd);
    return fds[0] >= 0 && fds[1] >= 0;
}

bool writeAll(int fd, const void *p, size_t n)
{
    const char *c = static_cast<const char *>(p);
    while (n > 0) {
        ssize_t w = ::send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EAGAIN) {
            pollfd pf = {fd, POLLOUT, 0};
            ::poll(&pf, 1, 100);
            continue;
        }
        if (w <= 0)
            return false;
        c += w;
        n -= size_t(w);
    }
    return true;
}

// One machine on one socket.
struct End
{
    mpr__zmtp *z = nullptr;
    int fd = -1;
    QVector<QByteArray> inbox;
    int readyEvents = 0;
    QByteArray peerKey;
    int error = 0;
    QByteArray why;
    bool eof = false;
    size_t readLimit = SIZE_MAX; // bytes per read(2), at most
    size_t writeLimit = SIZE_MAX; // bytes per send(2), at most
    size_t maxSpace = 0;         // the most input space offered
    size_t maxSpaceBeforeReady = 0, maxSpaceAfterReady = 0;
    size_t maxMemory = 0, maxMemoryBeforeReady = 0;
    bool spaceBroken = false;    // space 0 without a frame to take
    qint64 written = 0;
    bool mute = false;           // write nothing (a peer that stopped talking)
    // With a filter, output goes out frame by frame through it (after the
    // greeting): it may change a frame, drop it (clear) or add to it.
    std::function<void(QByteArray &frame, int index)> filter;
    QByteArray staged, outq;
    int greetingOut = 0; // bytes of the greeting passed on
    int framesOut = 0;

    End() = default;
    End(const End &) = delete;
    End &operator=(const End &) = delete;
    ~End()
    {
        mpr__zmtp_free(z);
        if (fd >= 0)
            ::close(fd);
    }

    int open(int role, const Keys &own, const unsigned char *serverKey, const unsigned char *cookieKey,
             size_t maxMessage = MAX)
    {
        mpr__zmtp_config cfg = {};
        cfg.role = role;
        cfg.public_key = own.pub;
        cfg.secret_key = own.sec;
        cfg.server_key = serverKey;
        cfg.cookie_key = cookieKey;
        cfg.max_message = maxMessage;
        return mpr__zmtp_new(&z, &cfg);
    }

    void note()
    {
        size_t mem = mpr__zmtp_memory(z);
        maxMemory = qMax(maxMemory, mem);
        if (!readyEvents)
            maxMemoryBeforeReady = qMax(maxMemoryBeforeReady, mem);
    }

    void stepAll()
    {
        mpr__zmtp_event ev;
        int rc;
        while ((rc = mpr__zmtp_step(z, &ev)) > 0) {
            if (ev.kind == MPR__ZMTP_READY) {
                readyEvents++;
                peerKey = bytes(ev.peer_key);
            } else {
                inbox.append(QByteArray(reinterpret_cast<const char *>(ev.data), int(ev.size)));
            }
        }
        if (rc < 0 && !error) {
            error = rc;
            why = mpr__zmtp_why(z);
        }
        note();
    }

    void readSome()
    {
        while (!error && !eof) {
            unsigned char *buf;
            size_t space;
            mpr__zmtp_input(z, &buf, &space);
            if (space == 0) {
                stepAll();
                if (error)
                    break;
                mpr__zmtp_input(z, &buf, &space);
                if (space == 0) {
                    spaceBroken = true;
                    break;
                }
            }
            maxSpace = qMax(maxSpace, space);
            if (!mpr__zmtp_is_ready(z))
                maxSpaceBeforeReady = qMax(maxSpaceBeforeReady, space);
            else
                maxSpaceAfterReady = qMax(maxSpaceAfterReady, space);
            ssize_t n = ::read(fd, buf, qMin(space, readLimit));
            if (n > 0) {
                mpr__zmtp_input_done(z, size_t(n));
                stepAll();
                continue;
            }
            if (n == 0)
                eof = true;
            break;
        }
    }

    void flush()
    {
        if (mute)
            return;
        const unsigned char *o;
        size_t n;
        if (!filter) {
            while ((n = mpr__zmtp_output(z, &o)) > 0) {
                ssize_t w = ::send(fd, o, qMin(n, writeLimit), MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                mpr__zmtp_output_done(z, size_t(w));
                written += w;
            }
            return;
        }
        while ((n = mpr__zmtp_output(z, &o)) > 0) {
            staged.append(reinterpret_cast<const char *>(o), int(n));
            mpr__zmtp_output_done(z, n);
        }
        for (;;) {
            if (greetingOut < 64) { // it comes in two parts: pass each on at once
                const int n = qMin(64 - greetingOut, staged.size());
                outq.append(staged.left(n));
                staged.remove(0, n);
                greetingOut += n;
                if (greetingOut < 64)
                    break;
                continue;
            }
            unsigned flags;
            const unsigned char *body;
            size_t len;
            size_t used = cp_take_frame(reinterpret_cast<const unsigned char *>(staged.constData()),
                                        size_t(staged.size()), &flags, &body, &len);
            if (used == 0 || used == size_t(-1))
                break;
            QByteArray frame = staged.left(int(used));
            staged.remove(0, int(used));
            filter(frame, framesOut++);
            outq.append(frame);
        }
        while (!outq.isEmpty()) {
            ssize_t w = ::send(fd, outq.constData(), size_t(outq.size()), MSG_NOSIGNAL);
            if (w <= 0)
                break;
            outq.remove(0, int(w));
            written += w;
        }
    }

    void service()
    {
        readSome();
        flush();
        note();
    }

    bool wantsWrite() const
    {
        const unsigned char *o;
        return !mute && (mpr__zmtp_output(z, &o) > 0 || !outq.isEmpty());
    }
};

// Service the ends (and wait on a ZeroMQ socket too) until done() or ms.
bool drive(std::initializer_list<End *> ends, const std::function<bool()> &done, int ms = T,
           void *zsock = nullptr)
{
    QElapsedTimer t;
    t.start();
    for (;;) {
        for (End *e : ends)
            e->service();
        if (done())
            return true;
        if (t.elapsed() > ms)
            return false;
        std::vector<zmq_pollitem_t> items;
        for (End *e : ends) {
            if (e->fd < 0)
                continue;
            short events = short((e->error || e->eof ? 0 : ZMQ_POLLIN) | (e->wantsWrite() ? ZMQ_POLLOUT : 0));
            zmq_pollitem_t it = {nullptr, e->fd, events, 0};
            items.push_back(it);
        }
        if (zsock) {
            zmq_pollitem_t it = {zsock, 0, ZMQ_POLLIN, 0};
            items.push_back(it);
        }
        zmq_poll(items.data(), int(items.size()), 10);
    }
}

// A whole message from a ZeroMQ socket, without waiting; false if none.
bool zrecv(void *s, QVector<QByteArray> *parts, QByteArray *socketType = nullptr)
{
    parts->clear();
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, parts->isEmpty() ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            return false;
        }
        parts->append(QByteArray(static_cast<const char *>(zmq_msg_data(&m)), int(zmq_msg_size(&m))));
        if (socketType) {
            const char *type = zmq_msg_gets(&m, "Socket-Type");
            *socketType = type ? QByteArray(type) : QByteArray();
        }
        const bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        if (!more)
            return true;
    }
}

// A ZeroMQ context whose sockets all close with linger 0.
struct Zmq
{
    void *ctx = zmq_ctx_new();
    std::vector<void *> sockets;
    ~Zmq()
    {
        for (void *s : sockets)
            zmq_close(s);
        zmq_ctx_term(ctx);
    }
    void *socket(int type)
    {
        void *s = zmq_socket(ctx, type);
        int zero = 0;
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
        sockets.push_back(s);
        return s;
    }
    // A CURVE client of the given type (client keys fresh).
    void *curveClient(int type, const unsigned char *serverKey, Keys *keys = nullptr)
    {
        Keys own;
        if (keys)
            *keys = own;
        void *s = socket(type);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, serverKey, 32);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, own.pub, 32);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, own.sec, 32);
        return s;
    }
    // A CURVE server of the given type, bound to an ephemeral port.
    void *curveServer(int type, const Keys &keys, int *port)
    {
        void *s = socket(type);
        int one = 1;
        zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, keys.sec, 32);
        zmq_bind(s, "tcp://127.0.0.1:*");
        *port = lastPort(s);
        return s;
    }
    static int lastPort(void *s)
    {
        char ep[256];
        size_t len = sizeof ep;
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len);
        const char *colon = strrchr(ep, ':');
        return colon ? atoi(colon + 1) : -1;
    }
};

void zconnect(void *s, int port)
{
    QByteArray ep = "tcp://127.0.0.1:" + QByteArray::number(port);
    zmq_connect(s, ep.constData());
}

// Our client and our server, connected over TCP.
struct Pair
{
    Keys serverKeys, clientKeys;
    unsigned char cookieKey[32];
    End client, server;
    bool open(size_t maxMessage = MAX)
    {
        randombytes_buf(cookieKey, sizeof cookieKey);
        int fds[2];
        if (!tcpPair(fds))
            return false;
        client.fd = fds[0];
        server.fd = fds[1];
        return client.open(MPR__ZMTP_CLIENT, clientKeys, serverKeys.pub, nullptr, maxMessage) == 0 &&
               server.open(MPR__ZMTP_SERVER, serverKeys, nullptr, cookieKey, maxMessage) == 0;
    }
    bool handshake()
    {
        return drive({&client, &server}, [this] {
            return (client.readyEvents && server.readyEvents) || client.error || server.error;
        }) && client.readyEvents == 1 && server.readyEvents == 1;
    }
};

// The hand-made peer on the other end of a machine's TCP connection.
struct Raw
{
    cp_peer peer;
    int fd = -1;
    QByteArray in; // what the machine sent, not yet taken
    ~Raw()
    {
        if (fd >= 0)
            ::close(fd);
    }
    bool send(const cp_buf &b)
    {
        return writeAll(fd, b.p, b.len);
    }
    bool sendAndFree(cp_buf *b)
    {
        bool ok = send(*b);
        cp_buf_free(b);
        return ok;
    }
    void readSome()
    {
        char buf[65536];
        ssize_t n;
        while ((n = ::read(fd, buf, sizeof buf)) > 0)
            in.append(buf, int(n));
    }
    // The next frame the machine sent (its greeting taken first).
    bool frame(End &e, QByteArray *body, unsigned *flags = nullptr, int ms = T)
    {
        QElapsedTimer t;
        t.start();
        while (t.elapsed() < ms) {
            e.service();
            readSome();
            unsigned f;
            const unsigned char *b;
            size_t len;
            size_t used = cp_take_frame(reinterpret_cast<const unsigned char *>(in.constData()),
                                        size_t(in.size()), &f, &b, &len);
            if (used != 0 && used != size_t(-1)) {
                *body = QByteArray(reinterpret_cast<const char *>(b), int(len));
                if (flags)
                    *flags = f;
                in.remove(0, int(used));
                return true;
            }
            if (e.error)
                return false;
            pollfd p[2] = {{fd, POLLIN, 0}, {e.fd, POLLIN, 0}};
            ::poll(p, 2, 10);
        }
        return false;
    }
    bool greeting(End &e, int ms = T)
    {
        QElapsedTimer t;
        t.start();
        while (in.size() < 64 && t.elapsed() < ms) {
            e.service();
            readSome();
            pollfd p = {fd, POLLIN, 0};
            ::poll(&p, 1, 10);
        }
        if (in.size() < 64)
            return false;
        in.remove(0, 64);
        return true;
    }
};

// A server machine and a hand-made client, connected; with handshake(),
// through READY.
struct RawClient
{
    Keys serverKeys, clientKeys;
    unsigned char cookieKey[32];
    End server;
    Raw raw;
    bool open(size_t maxMessage = MAX)
    {
        randombytes_buf(cookieKey, sizeof cookieKey);
        int fds[2];
        if (!tcpPair(fds))
            return false;
        raw.fd = fds[0];
        server.fd = fds[1];
        cp_init(&raw.peer, 0, clientKeys.pub, clientKeys.sec, serverKeys.pub);
        return server.open(MPR__ZMTP_SERVER, serverKeys, nullptr, cookieKey, maxMessage) == 0;
    }
    // Greeting and HELLO, up to the WELCOME (taken).
    bool toWelcome()
    {
        cp_buf b = {};
        cp_greeting(&b, 3, 0, "CURVE", 0);
        cp_hello(&raw.peer, &b);
        QByteArray welcome;
        return raw.sendAndFree(&b) && raw.greeting(server) && raw.frame(server, &welcome) &&
               cp_on_welcome(&raw.peer, reinterpret_cast<const unsigned char *>(welcome.constData()),
                             size_t(welcome.size())) == 0;
    }
    bool handshake(const cp_initiate_opts *o = nullptr)
    {
        if (!toWelcome())
            return false;
        cp_buf b = {};
        cp_initiate(&raw.peer, &b, o);
        QByteArray ready;
        return raw.sendAndFree(&b) && raw.frame(server, &ready) &&
               cp_on_ready(&raw.peer, reinterpret_cast<const unsigned char *>(ready.constData()),
                           size_t(ready.size())) == 0;
    }
    // Send bytes, then service the server until it fails or ms pass.
    void send(cp_buf *b, int ms = 300)
    {
        QVERIFY(raw.sendAndFree(b));
        drive({&server}, [this] { return server.error != 0; }, ms);
    }
};

// A client machine and a hand-made server.
struct RawServer
{
    Keys serverKeys, clientKeys;
    End client;
    Raw raw;
    bool open()
    {
        int fds[2];
        if (!tcpPair(fds))
            return false;
        client.fd = fds[0];
        raw.fd = fds[1];
        cp_init(&raw.peer, 1, serverKeys.pub, serverKeys.sec, nullptr);
        return client.open(MPR__ZMTP_CLIENT, clientKeys, serverKeys.pub, nullptr) == 0;
    }
    // Greeting; take the HELLO.
    bool toHello()
    {
        cp_buf b = {};
        cp_greeting(&b, 3, 0, "CURVE", 1);
        QByteArray hello;
        return raw.sendAndFree(&b) && raw.greeting(client) && raw.frame(client, &hello) &&
               cp_on_hello(&raw.peer, reinterpret_cast<const unsigned char *>(hello.constData()),
                           size_t(hello.size())) == 0;
    }
    bool toInitiate()
    {
        if (!toHello())
            return false;
        cp_buf b = {};
        cp_welcome(&raw.peer, &b);
        QByteArray initiate;
        return raw.sendAndFree(&b) && raw.frame(client, &initiate) &&
               cp_on_initiate(&raw.peer, reinterpret_cast<const unsigned char *>(initiate.constData()),
                              size_t(initiate.size())) == 0;
    }
};

// Where in memory the 32 bytes at key are found, read in place: the
// search makes no copy of the key (on the stack or anywhere) to find.
#if defined(__GNUC__)
__attribute__((no_sanitize("address", "thread", "undefined"), noinline))
#endif
void findIn(const volatile unsigned char *lo, size_t len, const unsigned char *key,
            std::vector<quintptr> *hits)
{
    const unsigned char first = key[0];
    for (size_t off = 0; off + 32 <= len; off++) {
        if (lo[off] != first)
            continue;
        size_t i = 1;
        while (i < 32 && lo[off + i] == key[i])
            i++;
        if (i == 32)
            hits->push_back(quintptr(lo + off));
    }
}

// Every place a writable mapping of this process holds key[0..32).
// /proc/self/maps is read with read(2).
std::vector<quintptr> scanMemory(const unsigned char *key, size_t *scanned)
{
    std::vector<quintptr> hits;
    hits.reserve(64); // no reallocation while the heap is searched
    static char maps[1 << 20];
    const int fd = ::open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return hits;
    size_t len = 0;
    for (ssize_t n; len < sizeof maps - 1 && (n = ::read(fd, maps + len, sizeof maps - 1 - len)) != 0;) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        len += size_t(n);
    }
    ::close(fd);
    maps[len] = '\0';
    *scanned = 0;
    for (char *line = maps, *next; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? next + 1 : line + strlen(line);
        char *end;
        const quintptr lo = strtoull(line, &end, 16);
        if (*end != '-')
            continue;
        const quintptr hi = strtoull(end + 1, &end, 16);
        // Readable and writable: a key can only have been written there.
        if (*end != ' ' || end[1] != 'r' || end[2] != 'w')
            continue;
        if (hi - lo > (256u << 20)) // sanitizer shadow and reserved arenas: no data
            continue;
        findIn(reinterpret_cast<const volatile unsigned char *>(lo), hi - lo, key, &hits);
        *scanned += hi - lo;
    }
    return hits;
}

// How often key[0..32) is on this thread's stack, in the 64 KiB below the
// caller's frame (where the calls it just made had theirs).
#if defined(__GNUC__)
__attribute__((no_sanitize("address", "thread", "undefined"), noinline))
#endif
int onStackBelow(const unsigned char *key)
{
    // No call and no allocation here: they would write over what we look for.
    const volatile unsigned char *lo =
        static_cast<const unsigned char *>(__builtin_frame_address(0)) - 65536;
    int hits = 0;
    for (size_t off = 0; off + 32 <= 65536; off++) {
        size_t i = 0;
        while (i < 32 && lo[off + i] == key[i])
            i++;
        hits += i == 32;
    }
    return hits;
}

// crypto_box_beforenm and nothing else (the control of the stack search).
#if defined(__GNUC__)
__attribute__((noinline))
#endif
int bareBeforenm(unsigned char k[32], const unsigned char *pub, const unsigned char *sec)
{
    return crypto_box_beforenm(k, pub, sec);
}

// Leaves a copy of key in its (dead) stack frame, 8 KiB deep as
// libsodium's would be, and says where: the control of the scans.
#if defined(__GNUC__)
__attribute__((noinline))
#endif
quintptr copyOntoStack(const unsigned char *key)
{
    volatile unsigned char area[8192];
    for (int i = 0; i < 32; i++)
        area[i] = key[i];
    return quintptr(area);
}

// Clears the 32 bytes at a (a dead frame: ASan must not look).
#if defined(__GNUC__)
__attribute__((no_sanitize("address", "thread", "undefined"), noinline))
#endif
void wipeAt(quintptr a)
{
    volatile unsigned char *p = reinterpret_cast<volatile unsigned char *>(a);
    for (int i = 0; i < 32; i++)
        p[i] = 0;
}

QByteArray toBytes(cp_buf *b)
{
    QByteArray a(reinterpret_cast<char *>(b->p), int(b->len));
    cp_buf_free(b);
    return a;
}

} // namespace

class tst_Zmtp : public QObject
{
    Q_OBJECT
private slots:
    void initTestCase();

    void z85_data();
    void z85();
    void z85MatchesLibzmq();
    void newChecksItsConfig();
    void keypair();
    void apiOutsideItsStates();

    void serverWithLibzmqDealer_data();
    void serverWithLibzmqDealer();
    void serverAnswersLibzmqPing_data();
    void serverAnswersLibzmqPing();
    void clientWithLibzmqRouter_data();
    void clientWithLibzmqRouter();
    void clientAgainstServer_data();
    void clientAgainstServer();

    void libzmqPeersRejected_data();
    void libzmqPeersRejected();
    void libzmqServersRejected_data();
    void libzmqServersRejected();
    void rawBytesRejected_data();
    void rawBytesRejected();
    void higherVersionAccepted();
    void rawServerRejected_data();
    void rawServerRejected();
    void tamperedHandshake_data();
    void tamperedHandshake();
    void replayedHandshake();
    void replayedOrReorderedMessages_data();
    void replayedOrReorderedMessages();
    void initiateVariants_data();
    void initiateVariants();
    void afterReady_data();
    void afterReady();
    void pingAnswered_data();
    void pingAnswered();

    void oversizedFrameAllocatesNothing_data();
    void oversizedFrameAllocatesNothing();
    void largestMessageFitsTheBound();
    void framesRightBehindTheHandshake();
    void fewKiBBeforeReady();
    void longTermSecretsAreNeverCopied();
    void noSharedSecretLeftOnTheStack_data();
    void noSharedSecretLeftOnTheStack();
};

void tst_Zmtp::initTestCase()
{
    QVERIFY(sodium_init() >= 0);
    ::signal(SIGPIPE, SIG_IGN);
}

// ---- Z85 and the config -----------------------------------------------

void tst_Zmtp::z85_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<bool>("valid");
    // RFC 32's example (8 bytes) in the first 10 characters.
    QTest::newRow("HelloWorld") << QByteArray("HelloWorld000000000000000000000000000000") << true;
    QTest::newRow("all zero") << QByteArray(40, '0') << true;
    QTest::newRow("39 characters") << QByteArray(39, '0') << false;
    QTest::newRow("41 characters") << QByteArray(41, '0') << false;
    QTest::newRow("empty") << QByteArray() << false;
    for (char c : {' ', '"', '\'', ',', ';', '\\', '_', '`', '|', '~', '\x7f', '\x80', '\xff'}) {
        QByteArray t(40, 'a');
        t[17] = c;
        QTest::newRow(qPrintable(QString("character 0x%1").arg(uint(uchar(c)), 2, 16, QChar('0'))))
            << t << false;
    }
    // 85^5 - 1 > 2^32 - 1: five characters can say more than 32 bits.
    QTest::newRow("%nSc0 is 0xffffffff") << (QByteArray("%nSc0") + QByteArray(35, '0')) << true;
    QTest::newRow("%nSc1 overflows") << (QByteArray("%nSc1") + QByteArray(35, '0')) << false;
    QTest::newRow("##### overflows") << (QByteArray(35, '0') + "#####") << false;
}

void tst_Zmtp::z85()
{
    QFETCH(QByteArray, text);
    QFETCH(bool, valid);
    unsigned char key[32];
    memset(key, 0xa5, sizeof key);
    QCOMPARE(mpr__z85_decode(key, text.constData()), valid ? 0 : int(MPR_EINVAL));
    if (!valid) {
        QCOMPARE(bytes(key), QByteArray(32, '\0')); // nothing half-decoded left
        return;
    }
    char back[41];
    mpr__z85_encode(back, key);
    QCOMPARE(QByteArray(back), text);
    if (text.startsWith("HelloWorld"))
        QCOMPARE(bytes(key, 8), QByteArray::fromHex("864FD26FB559F75B"));
    if (text.startsWith("%nSc0"))
        QCOMPARE(bytes(key, 4), QByteArray::fromHex("ffffffff"));
}

// Both ways against libzmq's own Z85 over random keys (libzmq is only in
// the test: the product does not link it).
void tst_Zmtp::z85MatchesLibzmq()
{
    for (int i = 0; i < 500; i++) {
        unsigned char key[32], back[32];
        randombytes_buf(key, sizeof key);
        if (i == 0)
            memset(key, 0xff, sizeof key);
        char ours[41], theirs[41];
        mpr__z85_encode(ours, key);
        QVERIFY(zmq_z85_encode(theirs, key, 32));
        QCOMPARE(QByteArray(ours), QByteArray(theirs));
        QCOMPARE(mpr__z85_decode(back, theirs), 0);
        QCOMPARE(bytes(back), bytes(key));
    }
}

void tst_Zmtp::newChecksItsConfig()
{
    Keys k;
    unsigned char cookie[32] = {1}, zero[32] = {0};
    mpr__zmtp *z = reinterpret_cast<mpr__zmtp *>(1);
    mpr__zmtp_config c = {MPR__ZMTP_CLIENT, k.pub, k.sec, k.pub, nullptr, MAX};
    QCOMPARE(mpr__zmtp_new(&z, &c), 0);
    mpr__zmtp_free(z);
    mpr__zmtp_free(nullptr);
    c.server_key = nullptr;
    QCOMPARE(mpr__zmtp_new(&z, &c), int(MPR_EINVAL));
    QVERIFY(!z);
    c.server_key = zero; // a point of small order: no key
    QCOMPARE(mpr__zmtp_new(&z, &c), int(MPR_EINVAL));
    mpr__zmtp_config s = {MPR__ZMTP_SERVER, k.pub, k.sec, nullptr, nullptr, MAX};
    QCOMPARE(mpr__zmtp_new(&z, &s), int(MPR_EINVAL));
    s.cookie_key = cookie;
    s.secret_key = nullptr;
    QCOMPARE(mpr__zmtp_new(&z, &s), int(MPR_EINVAL));
    s.secret_key = k.sec;
    s.max_message = MPR_MAX_MESSAGE_SIZE + 1;
    QCOMPARE(mpr__zmtp_new(&z, &s), int(MPR_EINVAL));
    s.role = 7;
    s.max_message = MAX;
    QCOMPARE(mpr__zmtp_new(&z, &s), int(MPR_EINVAL));
    s.role = MPR__ZMTP_SERVER;
    QCOMPARE(mpr__zmtp_new(&z, &s), 0);
    // The greeting's signature and major version are queued at once, the
    // rest (ZMTP 3.0, CURVE, as-server) when the peer's version is in.
    const unsigned char *out;
    QCOMPARE(mpr__zmtp_output(z, &out), size_t(11));
    QCOMPARE(bytes(out, 11), QByteArray::fromHex("ff00000000000000007f03"));
    mpr__zmtp_output_done(z, 11);
    QCOMPARE(QByteArray(mpr__zmtp_why(z)), QByteArray());
    cp_buf b = {};
    cp_greeting(&b, 3, 1, "CURVE", 0);
    unsigned char *in;
    size_t space;
    mpr__zmtp_event ev;
    for (size_t i = 0; i < 11; i++) { // byte by byte
        mpr__zmtp_input(z, &in, &space);
        QVERIFY(space > 0);
        *in = b.p[i];
        mpr__zmtp_input_done(z, 1);
        QCOMPARE(mpr__zmtp_step(z, &ev), 0);
        QCOMPARE(mpr__zmtp_output(z, &out), size_t(i < 10 ? 0 : 53));
    }
    QCOMPARE(out[0], uchar(0));
    QCOMPARE(bytes(out + 1, 20), QByteArray("CURVE", 5) + QByteArray(15, '\0'));
    QCOMPARE(out[21], uchar(1));
    QCOMPARE(bytes(out + 22, 31), QByteArray(31, '\0'));
    cp_buf_free(&b);
    mpr__zmtp_free(z);
}

// mpr__zmtp_keypair: a secret key and its public key, fresh each time,
// that a client and a server can use.
void tst_Zmtp::keypair()
{
    Keys a, b;
    QCOMPARE(mpr__zmtp_keypair(a.pub, a.sec), 0);
    QCOMPARE(mpr__zmtp_keypair(b.pub, b.sec), 0);
    QVERIFY(bytes(a.pub) != bytes(b.pub) && bytes(a.sec) != bytes(b.sec));
    unsigned char pub[32];
    QVERIFY(crypto_scalarmult_base(pub, a.sec) == 0);
    QCOMPARE(bytes(pub), bytes(a.pub));
    Pair p;
    p.serverKeys = a;
    p.clientKeys = b;
    QVERIFY(p.open());
    QVERIFY(p.handshake());
    QCOMPARE(p.server.peerKey, bytes(b.pub));
}

void tst_Zmtp::apiOutsideItsStates()
{
    Pair p;
    QVERIFY(p.open(100));
    QCOMPARE(mpr__zmtp_send(p.client.z, "x", 1), int(MPR_ESTATE)); // before READY
    QVERIFY(!mpr__zmtp_is_ready(p.client.z));
    QVERIFY(p.handshake());
    QVERIFY(mpr__zmtp_is_ready(p.client.z) && mpr__zmtp_is_ready(p.server.z));
    QByteArray big(101, 'x');
    QCOMPARE(mpr__zmtp_send(p.client.z, big.constData(), 101), int(MPR_EMSGSIZE));
    QCOMPARE(mpr__zmtp_send(p.client.z, big.constData(), 100), 0);
    QCOMPARE(mpr__zmtp_send(p.server.z, nullptr, 0), 0);
    QVERIFY(drive({&p.client, &p.server}, [&] { return p.server.inbox.size() == 1 && p.client.inbox.size() == 1; }));
    QCOMPARE(p.server.inbox[0], big.left(100));
    QCOMPARE(p.client.inbox[0], QByteArray());
    // After an error: the same error again, nothing sent, no input space.
    cp_buf b = {};
    cp_frame(&b, 0x08, "x", 1);
    QVERIFY(writeAll(p.client.fd, b.p, b.len));
    cp_buf_free(&b);
    QVERIFY(drive({&p.server}, [&] { return p.server.error != 0; }));
    QCOMPARE(p.server.error, int(MPR_EPROTO));
    QCOMPARE(p.server.why, QByteArray("bad frame flags"));
    mpr__zmtp_event ev;
    QCOMPARE(mpr__zmtp_step(p.server.z, &ev), int(MPR_EPROTO));
    QCOMPARE(mpr__zmtp_send(p.server.z, "x", 1), int(MPR_ESTATE));
    QVERIFY(!mpr__zmtp_is_ready(p.server.z));
    unsigned char *in;
    size_t space = 1;
    mpr__zmtp_input(p.server.z, &in, &space);
    QCOMPARE(space, size_t(0));
}

// ---- interoperability -------------------------------------------------

void tst_Zmtp::serverWithLibzmqDealer_data()
{
    QTest::addColumn<int>("size");
    QTest::newRow("0") << 0;
    QTest::newRow("1") << 1;
    QTest::newRow("100") << 100;
    QTest::newRow("222 (the largest short frame)") << 255 - 33;
    QTest::newRow("223 (the smallest long frame)") << 256 - 33;
    QTest::newRow("64 KiB") << 64 * 1024;
    QTest::newRow("max_message") << int(MAX);
}

// A libzmq DEALER with CURVE connects to a socket the test accepted; our
// server machine speaks for it. Messages both ways, in order.
void tst_Zmtp::serverWithLibzmqDealer()
{
    QFETCH(int, size);
    Zmq zmq;
    Keys serverKeys, dealerKeys;
    unsigned char cookieKey[32];
    randombytes_buf(cookieKey, sizeof cookieKey);
    int port = 0, lfd = listenTcp(&port);
    QVERIFY(lfd >= 0);
    void *d = zmq.curveClient(ZMQ_DEALER, serverKeys.pub, &dealerKeys);
    zconnect(d, port);
    End s;
    s.fd = acceptOne(lfd, T);
    ::close(lfd);
    QVERIFY(s.fd >= 0);
    QCOMPARE(s.open(MPR__ZMTP_SERVER, serverKeys, nullptr, cookieKey), 0);

    const int n = size >= 64 * 1024 ? 5 : 20;
    for (int i = 0; i < n; i++) {
        QByteArray m = pattern(size_t(size), unsigned(i));
        QCOMPARE(zmq_send(d, m.constData(), size_t(m.size()), 0), size);
    }
    QVERIFY2(drive({&s}, [&] { return s.inbox.size() == n || s.error; }), s.why.constData());
    QCOMPARE(s.error, 0);
    QCOMPARE(s.readyEvents, 1);
    QCOMPARE(s.peerKey, bytes(dealerKeys.pub)); // the DEALER's long-term key, vouched for
    for (int i = 0; i < n; i++)
        QCOMPARE(s.inbox[i], pattern(size_t(size), unsigned(i)));

    for (int i = 0; i < n; i++) {
        QByteArray m = pattern(size_t(size), unsigned(100 + i));
        QCOMPARE(mpr__zmtp_send(s.z, m.constData(), size_t(m.size())), 0);
    }
    for (int i = 0; i < n; i++) {
        QVector<QByteArray> parts;
        QVERIFY(drive({&s}, [&] { return zrecv(d, &parts); }, T, d));
        QCOMPARE(parts.size(), 1);
        QCOMPARE(parts[0], pattern(size_t(size), unsigned(100 + i)));
    }
    QCOMPARE(s.error, 0);
    QVERIFY(!s.spaceBroken);
    QVERIFY(s.maxSpace <= BOUND);
    QVERIFY(s.maxSpaceBeforeReady <= MPR__ZMTP_HANDSHAKE_MAX);
}

void tst_Zmtp::serverAnswersLibzmqPing_data()
{
    QTest::addColumn<bool>("answer");
    QTest::newRow("PONGs written") << true;
    QTest::newRow("control: nothing written after READY") << false;
}

// libzmq PINGs every 50 ms and hangs up when it hears nothing for 300 ms.
// With our PONGs the connection lives through 1.5 s of silence and still
// carries a message; the control row (we write nothing after READY)
// shows that libzmq does hang up without them.
void tst_Zmtp::serverAnswersLibzmqPing()
{
    QFETCH(bool, answer);
    Zmq zmq;
    Keys serverKeys;
    unsigned char cookieKey[32];
    randombytes_buf(cookieKey, sizeof cookieKey);
    int port = 0, lfd = listenTcp(&port);
    QVERIFY(lfd >= 0);
    void *d = zmq.curveClient(ZMQ_DEALER, serverKeys.pub);
    int ivl = 50, timeout = 300;
    zmq_setsockopt(d, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(d, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    zconnect(d, port);
    End s;
    s.fd = acceptOne(lfd, T);
    ::close(lfd);
    QVERIFY(s.fd >= 0);
    QCOMPARE(s.open(MPR__ZMTP_SERVER, serverKeys, nullptr, cookieKey), 0);
    QCOMPARE(zmq_send(d, "hi", 2, 0), 2);
    QVERIFY(drive({&s}, [&] { return s.inbox.size() == 1 || s.error; }));
    QCOMPARE(s.error, 0);

    s.mute = !answer;
    const qint64 before = s.written;
    drive({&s}, [&] { return s.eof || s.error; }, 1500);
    QCOMPARE(s.error, 0); // PINGs are taken either way
    if (!answer) {
        QVERIFY2(s.eof, "libzmq did not hang up on a peer that never answers its PINGs");
        return;
    }
    QVERIFY2(!s.eof, "libzmq hung up: our PONGs did not reach it");
    // Each PONG of an empty context is a 40-byte frame: 2 + 33 + 5.
    const qint64 pongs = (s.written - before) / 40;
    QVERIFY2(pongs >= 10, qPrintable(QString("%1 PONGs in 1.5 s").arg(pongs)));
    QCOMPARE((s.written - before) % 40, qint64(0));
    QCOMPARE(mpr__zmtp_send(s.z, "still", 5), 0);
    QVector<QByteArray> parts;
    QVERIFY(drive({&s}, [&] { return zrecv(d, &parts); }, T, d));
    QCOMPARE(parts.value(0), QByteArray("still"));
}

void tst_Zmtp::clientWithLibzmqRouter_data()
{
    QTest::addColumn<int>("size");
    QTest::newRow("0") << 0;
    QTest::newRow("1") << 1;
    QTest::newRow("100") << 100;
    QTest::newRow("64 KiB") << 64 * 1024;
    QTest::newRow("max_message") << int(MAX);
}

// Our client against a libzmq ROUTER with CURVE (which PINGs every 20 ms
// meanwhile): the ROUTER sees a DEALER, messages go both ways.
void tst_Zmtp::clientWithLibzmqRouter()
{
    QFETCH(int, size);
    Zmq zmq;
    Keys serverKeys, clientKeys;
    int port = 0;
    void *r = zmq.curveServer(ZMQ_ROUTER, serverKeys, &port);
    int ivl = 20;
    zmq_setsockopt(r, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    QVERIFY(port > 0);
    End c;
    c.fd = connectTcp(port);
    QVERIFY(c.fd >= 0);
    QCOMPARE(c.open(MPR__ZMTP_CLIENT, clientKeys, serverKeys.pub, nullptr), 0);
    QVERIFY(drive({&c}, [&] { return c.readyEvents || c.error; }));
    QCOMPARE(c.error, 0);
    QCOMPARE(c.peerKey, bytes(serverKeys.pub));

    const int n = size >= 64 * 1024 ? 5 : 20;
    for (int i = 0; i < n; i++) {
        QByteArray m = pattern(size_t(size), unsigned(i));
        QCOMPARE(mpr__zmtp_send(c.z, m.constData(), size_t(m.size())), 0);
    }
    QByteArray routingId;
    for (int i = 0; i < n; i++) {
        QVector<QByteArray> parts;
        QByteArray type;
        QVERIFY(drive({&c}, [&] { return zrecv(r, &parts, &type); }, T, r));
        QCOMPARE(parts.size(), 2);
        QCOMPARE(type, QByteArray("DEALER"));
        QCOMPARE(parts[1], pattern(size_t(size), unsigned(i)));
        routingId = parts[0];
    }
    for (int i = 0; i < n; i++) {
        QByteArray m = pattern(size_t(size), unsigned(100 + i));
        QCOMPARE(zmq_send(r, routingId.constData(), size_t(routingId.size()), ZMQ_SNDMORE), routingId.size());
        QCOMPARE(zmq_send(r, m.constData(), size_t(m.size()), 0), size);
    }
    QVERIFY(drive({&c}, [&] { return c.inbox.size() == n || c.error; }));
    QCOMPARE(c.error, 0);
    for (int i = 0; i < n; i++)
        QCOMPARE(c.inbox[i], pattern(size_t(size), unsigned(100 + i)));
    // Idle: the ROUTER's PINGs are taken, nothing goes wrong.
    drive({&c}, [&] { return c.eof || c.error; }, 300);
    QVERIFY(!c.eof && !c.error);
    QVERIFY(c.maxSpace <= BOUND && !c.spaceBroken);
}

void tst_Zmtp::clientAgainstServer_data()
{
    QTest::addColumn<int>("readLimit");
    QTest::addColumn<int>("count");
    QTest::newRow("1 byte per read") << 1 << 100;
    QTest::newRow("7 bytes per read") << 7 << 1000;
    QTest::newRow("4 KiB per read") << 4096 << 5000;
    QTest::newRow("as much as offered") << 0 << 20000;
}

// Our client and our server, both ways at once: many messages of many
// sizes, then the largest, read and written in pieces of readLimit (so
// the output is partly written when more is queued).
void tst_Zmtp::clientAgainstServer()
{
    QFETCH(int, readLimit);
    QFETCH(int, count);
    Pair p;
    QVERIFY(p.open());
    if (readLimit) { // and written in pieces as small, between sends
        p.client.readLimit = p.client.writeLimit = size_t(readLimit);
        p.server.readLimit = p.server.writeLimit = size_t(readLimit);
    }
    QVERIFY(p.handshake());
    QCOMPARE(p.server.peerKey, bytes(p.clientKeys.pub));
    QCOMPARE(p.client.peerKey, bytes(p.serverKeys.pub));
    auto sizeOf = [](int i) { return size_t((i * 7919) % 700); };
    for (int i = 0; i < count; i++) {
        QByteArray a = pattern(sizeOf(i), unsigned(i)), b = pattern(sizeOf(i + 1), unsigned(~i));
        QCOMPARE(mpr__zmtp_send(p.client.z, a.constData(), size_t(a.size())), 0);
        QCOMPARE(mpr__zmtp_send(p.server.z, b.constData(), size_t(b.size())), 0);
        if (i % 64 == 0) { // some of it out: the rest moves to the front of the output
            p.client.flush();
            p.server.flush();
        }
    }
    const bool withBig = readLimit == 0 || readLimit >= 4096;
    QByteArray big = pattern(MAX, 7);
    if (withBig) {
        QCOMPARE(mpr__zmtp_send(p.client.z, big.constData(), size_t(big.size())), 0);
        QCOMPARE(mpr__zmtp_send(p.server.z, big.constData(), size_t(big.size())), 0);
    }
    const int want = count + (withBig ? 1 : 0);
    QVERIFY(drive({&p.client, &p.server},
                  [&] {
                      return (p.server.inbox.size() == want && p.client.inbox.size() == want) ||
                             p.client.error || p.server.error;
                  },
                  60000));
    QCOMPARE(p.client.error, 0);
    QCOMPARE(p.server.error, 0);
    for (int i = 0; i < count; i++) {
        QCOMPARE(p.server.inbox[i], pattern(sizeOf(i), unsigned(i)));
        QCOMPARE(p.client.inbox[i], pattern(sizeOf(i + 1), unsigned(~i)));
    }
    if (withBig) {
        QCOMPARE(p.server.inbox.last(), big);
        QCOMPARE(p.client.inbox.last(), big);
    }
    for (End *e : {&p.client, &p.server}) {
        QVERIFY(!e->spaceBroken);
        QVERIFY(e->maxSpace <= BOUND);
        QVERIFY(e->maxSpaceBeforeReady <= MPR__ZMTP_HANDSHAKE_MAX);
        QVERIFY2(e->maxMemoryBeforeReady <= SMALL, qPrintable(QString::number(e->maxMemoryBeforeReady)));
    }
}

// ---- peers that must be refused -----------------------------------------

void tst_Zmtp::libzmqPeersRejected_data()
{
    QTest::addColumn<int>("type");
    QTest::addColumn<QString>("mechanism");
    QTest::addColumn<bool>("multipart");
    QTest::addColumn<QString>("why");
    QTest::newRow("DEALER without security (NULL)") << ZMQ_DEALER << "null" << false << "not CURVE";
    QTest::newRow("DEALER with PLAIN") << ZMQ_DEALER << "plain" << false << "not CURVE";
    QTest::newRow("DEALER with another server key") << ZMQ_DEALER << "wrong key" << false
                                                    << "HELLO not for this server's key";
    QTest::newRow("ROUTER client") << ZMQ_ROUTER << "curve" << false << "not a DEALER";
    QTest::newRow("REQ client") << ZMQ_REQ << "curve" << false << "not a DEALER";
    QTest::newRow("PUB client") << ZMQ_PUB << "curve" << false << "not a DEALER";
    QTest::newRow("PUSH client") << ZMQ_PUSH << "curve" << false << "not a DEALER";
    QTest::newRow("PAIR client") << ZMQ_PAIR << "curve" << false << "not a DEALER";
    QTest::newRow("DEALER sending multipart") << ZMQ_DEALER << "curve" << true << "message flagged MORE";
}

// Real libzmq clients our server must refuse: each gives MPR_EPROTO with
// its reason, and the machine held no more than a few KiB for it.
void tst_Zmtp::libzmqPeersRejected()
{
    QFETCH(int, type);
    QFETCH(QString, mechanism);
    QFETCH(bool, multipart);
    QFETCH(QString, why);
    Zmq zmq;
    Keys serverKeys, other;
    unsigned char cookieKey[32];
    randombytes_buf(cookieKey, sizeof cookieKey);
    int port = 0, lfd = listenTcp(&port);
    QVERIFY(lfd >= 0);
    void *c;
    if (mechanism == "null") {
        c = zmq.socket(type);
    } else if (mechanism == "plain") {
        c = zmq.socket(type);
        zmq_setsockopt(c, ZMQ_PLAIN_USERNAME, "user", 4);
        zmq_setsockopt(c, ZMQ_PLAIN_PASSWORD, "secret", 6);
    } else {
        c = zmq.curveClient(type, mechanism == "wrong key" ? other.pub : serverKeys.pub);
    }
    zconnect(c, port);
    if (multipart) {
        QCOMPARE(zmq_send(c, "one", 3, ZMQ_SNDMORE), 3);
        QCOMPARE(zmq_send(c, "two", 3, 0), 3);
    }
    End s;
    s.fd = acceptOne(lfd, T);
    ::close(lfd);
    QVERIFY(s.fd >= 0);
    QCOMPARE(s.open(MPR__ZMTP_SERVER, serverKeys, nullptr, cookieKey), 0);
    QVERIFY(drive({&s}, [&] { return s.error || s.eof; }));
    QCOMPARE(s.error, int(MPR_EPROTO));
    QVERIFY2(s.why.contains(why.toUtf8()), s.why.constData());
    QVERIFY(s.inbox.isEmpty());
    QCOMPARE(s.readyEvents, multipart ? 1 : 0);
    QVERIFY2(s.maxMemoryBeforeReady <= SMALL, qPrintable(QString::number(s.maxMemoryBeforeReady)));
    QVERIFY(!s.spaceBroken);
}

void tst_Zmtp::libzmqServersRejected_data()
{
    QTest::addColumn<int>("type");
    QTest::addColumn<bool>("curve");
    QTest::addColumn<QString>("why");
    QTest::newRow("ROUTER without security") << ZMQ_ROUTER << false << "not CURVE";
    QTest::newRow("DEALER as CURVE server") << ZMQ_DEALER << true << "not a ROUTER";
    QTest::newRow("REP as CURVE server") << ZMQ_REP << true << "not a ROUTER";
    QTest::newRow("another server key") << ZMQ_ROUTER << true << "";
}

// Real libzmq servers our client must refuse. With a ROUTER that has
// another key, libzmq cannot open our HELLO and hangs up: the machine
// has no error, and never says READY.
void tst_Zmtp::libzmqServersRejected()
{
    QFETCH(int, type);
    QFETCH(bool, curve);
    QFETCH(QString, why);
    Zmq zmq;
    Keys serverKeys, clientKeys, other;
    int port = 0;
    if (curve) {
        zmq.curveServer(type, serverKeys, &port);
    } else {
        void *srv = zmq.socket(type);
        zmq_bind(srv, "tcp://127.0.0.1:*");
        port = Zmq::lastPort(srv);
    }
    End c;
    c.fd = connectTcp(port);
    QVERIFY(c.fd >= 0);
    QCOMPARE(c.open(MPR__ZMTP_CLIENT, clientKeys, why.isEmpty() ? other.pub : serverKeys.pub, nullptr), 0);
    QVERIFY(drive({&c}, [&] { return c.error || c.eof || c.readyEvents; }));
    QCOMPARE(c.readyEvents, 0);
    if (why.isEmpty()) {
        QVERIFY(c.eof);
        QCOMPARE(c.error, 0);
        return;
    }
    QCOMPARE(c.error, int(MPR_EPROTO));
    QVERIFY2(c.why.contains(why.toUtf8()), c.why.constData());
}

void tst_Zmtp::rawBytesRejected_data()
{
    QTest::addColumn<QByteArray>("input");
    QTest::addColumn<QString>("why");
    auto greeting = [](int major, int minor, const char *mech) {
        cp_buf b = {};
        cp_greeting(&b, major, minor, mech, 0);
        return toBytes(&b);
    };
    auto frame = [](unsigned flags, const QByteArray &body) {
        cp_buf b = {};
        cp_frame(&b, flags, body.constData(), size_t(body.size()));
        return toBytes(&b);
    };
    auto longHeader = [](unsigned flags, uint64_t size) {
        cp_buf b = {};
        cp_long_header(&b, flags, size);
        return toBytes(&b);
    };
    auto error = [&](const QByteArray &reason) {
        return frame(CP_F_COMMAND, QByteArray("\x05" "ERROR") + char(reason.size()) + reason);
    };
    const QByteArray curve = greeting(3, 0, "CURVE");
    QTest::newRow("ZMTP 2.0 greeting") << QByteArray::fromHex("ff00000000000000017f0105")
                                       << "not ZMTP 3 (a ZMTP 1.0 or 2.0 peer)";
    QTest::newRow("ZMTP 1.0 (an empty identity)") << QByteArray::fromHex("0100")
                                                  << "not ZMTP 3 (bad greeting signature)";
    QTest::newRow("ZMTP 1.0 (a long identity)") << QByteArray::fromHex("ff00000000000001000041")
                                                << "not ZMTP 3 (bad greeting signature)";
    QTest::newRow("signature ends 0x7e") << QByteArray(curve).replace(9, 1, "\x7e")
                                         << "not ZMTP 3 (bad greeting signature)";
    QTest::newRow("HTTP") << QByteArray("GET / HTTP/1.1\r\nHost: x\r\n\r\n") << "not ZMTP 3 (bad greeting signature)";
    QTest::newRow("TLS ClientHello") << QByteArray::fromHex("16030100a5010000a10303")
                                     << "not ZMTP 3 (bad greeting signature)";
    QTest::newRow("zeros") << QByteArray(64, '\0') << "not ZMTP 3 (bad greeting signature)";
    const QString notCurve = "not CURVE (plaintext or another mechanism)";
    QTest::newRow("ZMTP 3.0 NULL") << greeting(3, 0, "NULL") << notCurve;
    QTest::newRow("ZMTP 3.1 PLAIN") << greeting(3, 1, "PLAIN") << notCurve;
    QTest::newRow("ZMTP 3.1 GSSAPI") << greeting(3, 1, "GSSAPI") << notCurve;
    QTest::newRow("CURVE then junk") << greeting(3, 0, "CURVEX") << notCurve;
    QTest::newRow("curve in lower case") << greeting(3, 0, "curve") << notCurve;
    QTest::newRow("2 GiB frame before READY") << curve + longHeader(CP_F_COMMAND, 1ull << 31) << "frame too large";
    QTest::newRow("2^64-1 frame before READY") << curve + longHeader(CP_F_COMMAND, ~0ull) << "frame too large";
    QTest::newRow("1025-byte frame before READY") << curve + longHeader(CP_F_COMMAND, 1025 - 9) << "frame too large";
    // The largest frame allowed is taken as a frame: then it is no HELLO.
    QTest::newRow("1024-byte frame before READY")
        << curve + frame(CP_F_COMMAND, QByteArray("\x04" "JUNK") + QByteArray(1015 - 5, 'j')) << "expected HELLO";
    QTest::newRow("data frame before READY") << curve + frame(0, "hello") << "a message before the handshake is complete";
    QTest::newRow("frame flagged MORE") << curve + frame(CP_F_COMMAND | CP_F_MORE, "\x05HELLO") << "message flagged MORE";
    QTest::newRow("reserved frame flags") << curve + frame(0x0c, "\x05HELLO") << "bad frame flags";
    QTest::newRow("empty command") << curve + frame(CP_F_COMMAND, "") << "expected HELLO";
    QTest::newRow("name longer than the command") << curve + frame(CP_F_COMMAND, "\x09HELLO") << "expected HELLO";
    QTest::newRow("INITIATE first") << curve + frame(CP_F_COMMAND, QByteArray("\x08INITIATE") + QByteArray(300, 'x'))
                                    << "expected HELLO";
    QTest::newRow("ERROR") << curve + error("go away") << "peer sent ERROR: go away";
    QByteArray nasty = QByteArray("\x1b[31mred\r\n\0", 12) + QByteArray(243, 'z');
    QTest::newRow("ERROR with control characters, 255 bytes")
        << curve + error(nasty) << "peer sent ERROR: ?[31mred????" + QString(52, 'z') + "...";
    QTest::newRow("malformed ERROR") << curve + frame(CP_F_COMMAND, "\x05" "ERROR\x0a" "abc") << "malformed ERROR";
    QByteArray hello = QByteArray("\x05HELLO\x01\x00", 8) + QByteArray(192, '\0');
    QTest::newRow("HELLO 199 bytes") << curve + frame(CP_F_COMMAND, hello.left(199)) << "malformed HELLO";
    QTest::newRow("HELLO 201 bytes") << curve + frame(CP_F_COMMAND, hello + 'x') << "malformed HELLO";
    QTest::newRow("HELLO version 2.0") << curve + frame(CP_F_COMMAND, QByteArray(hello).replace(6, 1, "\x02"))
                                       << "HELLO of an unknown CURVE version";
    QTest::newRow("HELLO of zeros") << curve + frame(CP_F_COMMAND, hello) << "HELLO not for this server's key";
}

// Bytes no client should send, written into a TCP connection to our
// server: each is refused with its reason, before READY, in a few KiB.
void tst_Zmtp::rawBytesRejected()
{
    QFETCH(QByteArray, input);
    QFETCH(QString, why);
    Keys serverKeys;
    unsigned char cookieKey[32];
    randombytes_buf(cookieKey, sizeof cookieKey);
    int fds[2];
    QVERIFY(tcpPair(fds));
    End s;
    s.fd = fds[1];
    QCOMPARE(s.open(MPR__ZMTP_SERVER, serverKeys, nullptr, cookieKey), 0);
    QVERIFY(writeAll(fds[0], input.constData(), size_t(input.size())));
    drive({&s}, [&] { return s.error != 0; }, 2000);
    ::close(fds[0]);
    QCOMPARE(s.error, int(MPR_EPROTO));
    QCOMPARE(QString::fromLatin1(s.why), why);
    QCOMPARE(s.readyEvents, 0);
    QVERIFY(s.maxMemory <= SMALL);
    QVERIFY(s.maxSpace <= MPR__ZMTP_HANDSHAKE_MAX);
    // Our mechanism went out only to peers whose greeting began well.
    const bool greeted = input.size() >= 11 && uchar(input[0]) == 0xff && uchar(input[9]) == 0x7f &&
                         uchar(input.at(10)) >= 3 && (input.size() < 32 || input.mid(12, 20) == QByteArray("CURVE", 5) + QByteArray(15, '\0'));
    QCOMPARE(s.written, qint64(greeted ? 64 : 11));
}

// RFC 23: a peer accepts higher versions. A "ZMTP 4.0" client is spoken
// to in 3.0, and its HELLO is answered.
void tst_Zmtp::higherVersionAccepted()
{
    RawClient t;
    QVERIFY(t.open());
    cp_buf b = {};
    cp_greeting(&b, 4, 2, "CURVE", 0);
    cp_hello(&t.raw.peer, &b);
    QVERIFY(t.raw.sendAndFree(&b));
    QByteArray welcome;
    QVERIFY(t.raw.greeting(t.server) && t.raw.frame(t.server, &welcome));
    QCOMPARE(cp_on_welcome(&t.raw.peer, reinterpret_cast<const unsigned char *>(welcome.constData()),
                           size_t(welcome.size())), 0);
    QCOMPARE(t.server.error, 0);
}

void tst_Zmtp::rawServerRejected_data()
{
    QTest::addColumn<QString>("play");
    QTest::addColumn<QString>("why");
    QTest::newRow("NULL greeting") << "null" << "not CURVE (plaintext or another mechanism)";
    QTest::newRow("ERROR instead of WELCOME") << "error" << "peer sent ERROR: 400";
    QTest::newRow("WELCOME from another key") << "other key" << "bad WELCOME (not from the server's key)";
    QTest::newRow("WELCOME of 167 bytes") << "short welcome" << "malformed WELCOME";
    QTest::newRow("WELCOME with S' of small order") << "zero S'" << "bad WELCOME (unusable short-term key)";
    QTest::newRow("HELLO to the client") << "hello" << "expected WELCOME";
    QTest::newRow("READY instead of WELCOME") << "early ready" << "expected WELCOME";
    QTest::newRow("READY from a DEALER") << "dealer" << "not a ROUTER";
    QTest::newRow("READY without metadata") << "no metadata" << "not a ROUTER";
    QTest::newRow("READY with two socket types") << "two types" << "bad metadata (two socket types)";
    QTest::newRow("READY of 29 bytes") << "short ready" << "malformed READY";
    QTest::newRow("ERROR instead of READY") << "late error" << "peer sent ERROR: 500";
    QTest::newRow("a MESSAGE instead of READY") << "message" << "a message before the handshake is complete";
    QTest::newRow("honest ROUTER") << "honest" << "";
}

// Our client against a hand-made server that gets something wrong.
void tst_Zmtp::rawServerRejected()
{
    QFETCH(QString, play);
    QFETCH(QString, why);
    RawServer t;
    QVERIFY(t.open());
    cp_buf b = {};
    if (play == "null") {
        cp_greeting(&b, 3, 1, "NULL", 0);
    } else if (play == "error") {
        QVERIFY(t.toHello());
        cp_error(&b, "400", 3);
    } else if (play == "other key") {
        QVERIFY(t.toHello());
        Keys other;
        memcpy(t.raw.peer.sec, other.sec, 32);
        cp_welcome(&t.raw.peer, &b);
    } else if (play == "zero S'") {
        QVERIFY(t.toHello());
        memset(t.raw.peer.cn_pub, 0, 32);
        cp_welcome(&t.raw.peer, &b);
    } else if (play == "short welcome") {
        QVERIFY(t.toHello());
        cp_welcome(&t.raw.peer, &b);
        b.p[1] = 167;
        b.len--;
    } else if (play == "hello") {
        QVERIFY(t.toHello());
        memcpy(t.raw.peer.peer_pub, t.serverKeys.pub, 32); // any key to box it for
        cp_hello(&t.raw.peer, &b);
    } else if (play == "early ready") {
        QVERIFY(t.toHello());
        cp_ready(&t.raw.peer, &b, nullptr, 0);
    } else if (play == "short ready") {
        QVERIFY(t.toInitiate());
        cp_command(&b, "READY", "0123456789012345678901", 22);
    } else if (play == "late error") {
        QVERIFY(t.toInitiate());
        cp_error(&b, "500", 3);
    } else if (play == "message") {
        QVERIFY(t.toInitiate());
        cp_message(&t.raw.peer, &b, 0, "x", 1);
    } else {
        QVERIFY(t.toInitiate());
        // What our client said: DEALER, and its key, vouched for.
        QVERIFY(cp_metadata_has_type(t.raw.peer.metadata, t.raw.peer.metadata_len, "DEALER"));
        QCOMPARE(bytes(t.raw.peer.peer_pub), bytes(t.clientKeys.pub));
        cp_buf md = {};
        if (play == "dealer")
            cp_property(&md, "Socket-Type", "DEALER", 6);
        if (play == "two types") {
            cp_property(&md, "Socket-Type", "ROUTER", 6);
            cp_property(&md, "Socket-Type", "ROUTER", 6);
        }
        if (play == "honest") {
            cp_property(&md, "Identity", "", 0);
            cp_property(&md, "socket-TYPE", "ROUTER", 6);
        }
        cp_ready(&t.raw.peer, &b, md.p ? md.p : reinterpret_cast<const unsigned char *>(""), md.len);
        cp_buf_free(&md);
    }
    QVERIFY(t.raw.sendAndFree(&b));
    drive({&t.client}, [&] { return t.client.error || t.client.readyEvents; }, 2000);
    if (why.isEmpty()) {
        QCOMPARE(t.client.error, 0);
        QCOMPARE(t.client.readyEvents, 1);
        // And traffic both ways with the hand-made server.
        cp_buf m = {};
        cp_message(&t.raw.peer, &m, 0, "to client", 9);
        QVERIFY(t.raw.sendAndFree(&m));
        QCOMPARE(mpr__zmtp_send(t.client.z, "to server", 9), 0);
        QVERIFY(drive({&t.client}, [&] { return !t.client.inbox.isEmpty(); }));
        QCOMPARE(t.client.inbox[0], QByteArray("to client"));
        QByteArray body;
        QVERIFY(t.raw.frame(t.client, &body));
        unsigned flags;
        unsigned char plain[64];
        size_t len;
        QCOMPARE(cp_open(&t.raw.peer, reinterpret_cast<const unsigned char *>(body.constData()),
                         size_t(body.size()), &flags, plain, &len), 0);
        QCOMPARE(bytes(plain, len), QByteArray("to server"));
        QCOMPARE(flags, 0u);
        return;
    }
    QCOMPARE(t.client.error, int(MPR_EPROTO));
    QCOMPARE(QString::fromLatin1(t.client.why), why);
    QCOMPARE(t.client.readyEvents, 0);
    QVERIFY(t.client.maxMemory <= SMALL);
}

void tst_Zmtp::tamperedHandshake_data()
{
    QTest::addColumn<bool>("fromClient");
    QTest::addColumn<int>("frame");
    QTest::addColumn<int>("offset");
    QTest::addColumn<QString>("why");
    // Every byte of every handshake command, one row each (XOR 0x01).
    for (int i = 0; i < 200; i++)
        QTest::newRow(qPrintable(QString("HELLO byte %1").arg(i)))
            << true << 0 << i
            << (i < 6 ? "expected HELLO" : i < 8 ? "HELLO of an unknown CURVE version"
                                         : i < 80 ? "malformed HELLO (padding)" : "HELLO not for this server's key");
    for (int i = 0; i < 279; i++)
        QTest::newRow(qPrintable(QString("INITIATE byte %1").arg(i)))
            << true << 1 << i << (i < 9 ? "expected INITIATE" : i < 105 ? "bad cookie" : "bad INITIATE");
    for (int i = 0; i < 168; i++)
        QTest::newRow(qPrintable(QString("WELCOME byte %1").arg(i)))
            << false << 0 << i << (i < 8 ? "expected WELCOME" : "bad WELCOME (not from the server's key)");
    for (int i = 0; i < 52; i++)
        QTest::newRow(qPrintable(QString("READY byte %1").arg(i)))
            << false << 1 << i << (i < 6 ? "expected READY" : "bad READY");
}

// Our client and server, with one bit of one handshake command flipped on
// its way: the receiver refuses it, and nobody reaches READY.
void tst_Zmtp::tamperedHandshake()
{
    QFETCH(bool, fromClient);
    QFETCH(int, frame);
    QFETCH(int, offset);
    QFETCH(QString, why);
    Pair p;
    QVERIFY(p.open());
    End &sender = fromClient ? p.client : p.server;
    End &victim = fromClient ? p.server : p.client;
    int size = -1;
    sender.filter = [&](QByteArray &f, int index) {
        if (index != frame)
            return;
        const int hdr = (uchar(f[0]) & CP_F_LONG) ? 9 : 2;
        size = f.size() - hdr;
        f[hdr + offset] = char(f[hdr + offset] ^ 1);
    };
    drive({&p.client, &p.server}, [&] { return victim.error || victim.readyEvents; }, 2000);
    QCOMPARE(victim.error, int(MPR_EPROTO));
    QCOMPARE(QString::fromLatin1(victim.why), why);
    QCOMPARE(victim.readyEvents, 0);
    QVERIFY(victim.maxMemory <= SMALL);
    // The rows cover every byte: the command is as long as they say.
    const int sizes[2][2] = {{168, 52}, {200, 279}};
    QCOMPARE(size, sizes[fromClient][frame]);
}

// An INITIATE is bound to its connection: the cookie holds that
// connection's short-term keys. Replayed on another connection to the
// same server (same keys, same cookie key), or a HELLO repeated on the
// same connection, it is refused.
void tst_Zmtp::replayedHandshake()
{
    Pair a;
    QVERIFY(a.open());
    QByteArray initiateA;
    a.client.filter = [&](QByteArray &f, int index) {
        if (index == 1)
            initiateA = f;
    };
    QVERIFY(a.handshake());
    QVERIFY(!initiateA.isEmpty());

    Pair b;
    b.serverKeys = a.serverKeys;
    b.clientKeys = a.clientKeys;
    QVERIFY(b.open());
    mpr__zmtp_free(b.server.z);
    b.server.z = nullptr;
    QCOMPARE(b.server.open(MPR__ZMTP_SERVER, b.serverKeys, nullptr, a.cookieKey), 0);
    b.client.filter = [&](QByteArray &f, int index) {
        if (index == 1)
            f = initiateA;
    };
    drive({&b.client, &b.server}, [&] { return b.server.error || b.server.readyEvents; }, 2000);
    QCOMPARE(b.server.error, int(MPR_EPROTO));
    QCOMPARE(b.server.why, QByteArray("bad cookie"));

    Pair c;
    QVERIFY(c.open());
    c.client.filter = [&](QByteArray &f, int index) {
        if (index == 0)
            f += f;
    };
    drive({&c.client, &c.server}, [&] { return c.server.error || c.server.readyEvents; }, 2000);
    QCOMPARE(c.server.error, int(MPR_EPROTO));
    QCOMPARE(c.server.why, QByteArray("expected INITIATE"));
}

void tst_Zmtp::replayedOrReorderedMessages_data()
{
    QTest::addColumn<bool>("fromClient");
    QTest::addColumn<QString>("how");
    QTest::addColumn<QString>("why");
    for (bool fromClient : {true, false}) {
        const QString dir = fromClient ? "client to server: " : "server to client: ";
        QTest::newRow(qPrintable(dir + "repeated")) << fromClient << "repeat" << "nonce not increasing";
        QTest::newRow(qPrintable(dir + "swapped")) << fromClient << "swap" << "nonce not increasing";
        QTest::newRow(qPrintable(dir + "one dropped")) << fromClient << "drop" << "";
        QTest::newRow(qPrintable(dir + "nonce bit flipped")) << fromClient << "flip nonce"
                                                             << "bad MESSAGE (forged or corrupted)";
        QTest::newRow(qPrintable(dir + "MAC bit flipped")) << fromClient << "flip mac"
                                                           << "bad MESSAGE (forged or corrupted)";
        QTest::newRow(qPrintable(dir + "body bit flipped")) << fromClient << "flip body"
                                                            << "bad MESSAGE (forged or corrupted)";
        QTest::newRow(qPrintable(dir + "truncated")) << fromClient << "truncate" << "malformed MESSAGE";
    }
}

// Three MESSAGEs; the second is repeated, swapped with the third, dropped
// or changed on its way. A gap is allowed (nonces must grow, not by one);
// anything else stops the receiver where it happens.
void tst_Zmtp::replayedOrReorderedMessages()
{
    QFETCH(bool, fromClient);
    QFETCH(QString, how);
    QFETCH(QString, why);
    Pair p;
    QVERIFY(p.open());
    End &sender = fromClient ? p.client : p.server;
    End &victim = fromClient ? p.server : p.client;
    const int second = 3; // frames 0 and 1: HELLO and INITIATE, or WELCOME and READY
    QByteArray held;
    sender.filter = [&](QByteArray &f, int index) {
        if (index == second) {
            if (how == "repeat")
                f += f;
            else if (how == "swap")
                held = f, f.clear();
            else if (how == "drop")
                f.clear();
            else if (how == "flip nonce")
                f[2 + 15] = char(f[2 + 15] ^ 0x80); // a larger nonce: only the MAC can tell
            else if (how == "flip mac")
                f[2 + 16] = char(f[2 + 16] ^ 1);
            else if (how == "flip body")
                f[f.size() - 1] = char(f[f.size() - 1] ^ 1);
            else if (how == "truncate")
                f = QByteArray(1, f[0]) + char(32) + f.mid(2, 32);
        } else if (index == second + 1 && how == "swap") {
            f += held;
        }
    };
    QVERIFY(p.handshake());
    for (const char *m : {"one", "two", "three"})
        QCOMPARE(mpr__zmtp_send(sender.z, m, strlen(m)), 0);
    const int expected = how == "drop" || how == "swap" || how == "repeat" ? 2 : 3;
    drive({&p.client, &p.server}, [&] { return victim.error || victim.inbox.size() >= expected; }, 2000);
    if (why.isEmpty()) {
        drive({&p.client, &p.server}, [] { return false; }, 50);
        QCOMPARE(victim.error, 0);
        QCOMPARE(victim.inbox, QVector<QByteArray>({"one", "three"}));
        return;
    }
    QCOMPARE(victim.error, int(MPR_EPROTO));
    QCOMPARE(QString::fromLatin1(victim.why), why);
    if (how == "swap")
        QCOMPARE(victim.inbox, QVector<QByteArray>({"one", "three"}));
    else if (how == "repeat")
        QCOMPARE(victim.inbox, QVector<QByteArray>({"one", "two"}));
    else
        QCOMPARE(victim.inbox, QVector<QByteArray>({"one"}));
}

void tst_Zmtp::initiateVariants_data()
{
    QTest::addColumn<QString>("variant");
    QTest::addColumn<QString>("why");
    QTest::newRow("honest") << "honest" << "";
    QTest::newRow("Identity property, ignored") << "identity" << "";
    QTest::newRow("property name in another case") << "lower name" << "";
    QTest::newRow("vouch boxed by another key") << "vouch key" << "bad vouch";
    QTest::newRow("claims another client key") << "claim" << "bad vouch";
    QTest::newRow("vouch for another C'") << "vouch cn" << "bad vouch";
    QTest::newRow("vouch for another server") << "vouch server" << "bad vouch";
    QTest::newRow("no metadata") << "no metadata" << "not a DEALER";
    QTest::newRow("Socket-Type ROUTER") << "router" << "not a DEALER";
    QTest::newRow("Socket-Type dealer (lower case)") << "dealer lower" << "not a DEALER";
    QTest::newRow("Socket-Type DEALER with a NUL") << "dealer nul" << "not a DEALER";
    QTest::newRow("two Socket-Types") << "two types" << "bad metadata (two socket types)";
    QTest::newRow("truncated property") << "truncated" << "bad metadata";
    QTest::newRow("property name cut short") << "short name" << "bad metadata";
    QTest::newRow("INITIATE of 256 bytes") << "short initiate" << "malformed INITIATE";
    QTest::newRow("value length 2^32-1") << "huge value" << "bad metadata";
    QTest::newRow("INITIATE's nonce not above HELLO's") << "nonce" << "nonce not increasing";
    QTest::newRow("INITIATE over the handshake bound") << "big" << "frame too large";
}

// INITIATEs made by hand for our server: the vouch must be boxed by the
// key the client claims, for this C' and this server; the metadata must
// say DEALER, once; the nonce must grow.
void tst_Zmtp::initiateVariants()
{
    QFETCH(QString, variant);
    QFETCH(QString, why);
    RawClient t;
    QVERIFY(t.open());
    QVERIFY(t.toWelcome());
    Keys other;
    unsigned char random[32];
    randombytes_buf(random, sizeof random);
    cp_buf md = {};
    cp_initiate_opts o = {};
    if (variant == "identity") {
        cp_property(&md, "Identity", QByteArray(255, 'I').constData(), 255);
        cp_property(&md, "Socket-Type", "DEALER", 6);
    } else if (variant == "lower name") {
        cp_property(&md, "socket-type", "DEALER", 6);
    } else if (variant == "router") {
        cp_property(&md, "Socket-Type", "ROUTER", 6);
    } else if (variant == "dealer lower") {
        cp_property(&md, "Socket-Type", "dealer", 6);
    } else if (variant == "dealer nul") {
        cp_property(&md, "Socket-Type", "DEALER\0", 7);
    } else if (variant == "two types") {
        cp_property(&md, "Socket-Type", "DEALER", 6);
        cp_property(&md, "Socket-Type", "DEALER", 6);
    } else if (variant == "truncated") {
        cp_property(&md, "Socket-Type", "DEALER", 6);
        md.len -= 1;
    } else if (variant == "short name") {
        cp_property(&md, "Socket-Type", "DEALER", 6);
        cp_put(&md, "\x0bSocket", 7);
    } else if (variant == "huge value") {
        cp_property(&md, "Socket-Type", "DEALER", 6);
        md.p[12] = md.p[13] = md.p[14] = md.p[15] = 0xff;
    } else if (variant == "big") {
        cp_property(&md, "Socket-Type", "DEALER", 6);
        cp_property(&md, "X-Padding", QByteArray(800, 'p').constData(), 800);
    } else if (variant != "no metadata") {
        cp_property(&md, "Socket-Type", "DEALER", 6);
    }
    o.metadata = md.p;
    o.metadata_len = md.len;
    o.use_metadata = 1;
    if (variant == "vouch key")
        o.vouch_sec = other.sec;
    if (variant == "claim")
        o.claimed_pub = other.pub;
    if (variant == "vouch cn")
        o.vouch_cn = random;
    if (variant == "vouch server")
        o.vouch_server = random;
    if (variant == "nonce")
        t.raw.peer.nonce = 1; // the HELLO's
    cp_buf b = {};
    if (variant == "short initiate")
        cp_command(&b, "INITIATE", QByteArray(256 - 9, 'i').constData(), 256 - 9);
    else
        cp_initiate(&t.raw.peer, &b, &o);
    cp_buf_free(&md);
    t.send(&b, why.isEmpty() ? 0 : 2000);
    if (why.isEmpty()) {
        QByteArray ready;
        QVERIFY(t.raw.frame(t.server, &ready));
        QCOMPARE(cp_on_ready(&t.raw.peer, reinterpret_cast<const unsigned char *>(ready.constData()),
                             size_t(ready.size())), 0);
        QVERIFY(cp_metadata_has_type(t.raw.peer.metadata, t.raw.peer.metadata_len, "ROUTER"));
        QCOMPARE(t.server.error, 0);
        QCOMPARE(t.server.readyEvents, 1);
        QCOMPARE(t.server.peerKey, bytes(t.clientKeys.pub));
        return;
    }
    QCOMPARE(t.server.error, int(MPR_EPROTO));
    QCOMPARE(QString::fromLatin1(t.server.why), why);
    QCOMPARE(t.server.readyEvents, 0);
    QVERIFY(t.server.maxMemory <= SMALL);
}

void tst_Zmtp::afterReady_data()
{
    QTest::addColumn<QString>("send");
    QTest::addColumn<QString>("why");
    QTest::newRow("PING without TTL") << "ping short" << "malformed PING";
    QTest::newRow("PING with a 17-byte context") << "ping 17" << "malformed PING";
    QTest::newRow("PONG") << "pong" << "unexpected command after READY";
    QTest::newRow("SUBSCRIBE") << "subscribe" << "unexpected command after READY";
    QTest::newRow("empty command") << "empty command" << "malformed command";
    QTest::newRow("name longer than the command") << "long name" << "malformed command";
    QTest::newRow("flags byte MORE") << "more" << "message flagged MORE";
    QTest::newRow("flags byte MORE and COMMAND") << "more command" << "message flagged MORE";
    QTest::newRow("flags byte 0x04") << "flags 4" << "bad message flags";
    QTest::newRow("flags byte 0x80") << "flags 128" << "bad message flags";
    QTest::newRow("frame flagged MORE") << "frame more" << "message flagged MORE";
    QTest::newRow("unencrypted PING") << "plain ping" << "unencrypted frame after READY";
    QTest::newRow("unencrypted data") << "plain data" << "unencrypted frame after READY";
    QTest::newRow("a second INITIATE") << "initiate" << "unencrypted frame after READY";
    QTest::newRow("ERROR") << "error" << "peer sent ERROR: bye";
    QTest::newRow("MESSAGE with the same nonce") << "same nonce" << "nonce not increasing";
    QTest::newRow("MESSAGE with nonce 0") << "nonce 0" << "nonce not increasing";
    QTest::newRow("MESSAGE of the other direction") << "wrong direction" << "bad MESSAGE (forged or corrupted)";
    QTest::newRow("MESSAGE without its box") << "short" << "malformed MESSAGE";
    QTest::newRow("MESSAGE in a COMMAND frame (taken)") << "command frame" << "";
    QTest::newRow("MESSAGE after a nonce gap (taken)") << "gap" << "";
}

// After READY, with a hand-made client: one good message, then the row's,
// then one more that must not be taken after an error.
void tst_Zmtp::afterReady()
{
    QFETCH(QString, send);
    QFETCH(QString, why);
    RawClient t;
    QVERIFY(t.open());
    QVERIFY(t.handshake());
    cp_peer &c = t.raw.peer;
    cp_buf b = {};
    cp_message(&c, &b, 0, "first", 5);
    const QByteArray ttl("\x00\x0a", 2);
    if (send == "ping short") {
        cp_message(&c, &b, CP_M_COMMAND, "\x04PING", 5);
    } else if (send == "ping 17") {
        const QByteArray ping = QByteArray("\x04PING") + ttl + QByteArray(17, 'c');
        cp_message(&c, &b, CP_M_COMMAND, ping.constData(), size_t(ping.size()));
    } else if (send == "pong") {
        cp_message(&c, &b, CP_M_COMMAND, "\x04PONG", 5);
    } else if (send == "subscribe") {
        cp_message(&c, &b, CP_M_COMMAND, "\x09SUBSCRIBEtopic", 15);
    } else if (send == "empty command") {
        cp_message(&c, &b, CP_M_COMMAND, "", 0);
    } else if (send == "long name") {
        cp_message(&c, &b, CP_M_COMMAND, "\x09PING", 5);
    } else if (send == "more") {
        cp_message(&c, &b, CP_M_MORE, "part", 4);
    } else if (send == "more command") {
        cp_message(&c, &b, CP_M_MORE | CP_M_COMMAND, "\x04PING\x00\x01", 7);
    } else if (send == "flags 4") {
        cp_message(&c, &b, 0x04, "x", 1);
    } else if (send == "flags 128") {
        cp_message(&c, &b, 0x80, "x", 1);
    } else if (send == "frame more") {
        cp_buf m = {};
        cp_message(&c, &m, 0, "x", 1);
        m.p[0] |= CP_F_MORE;
        cp_put(&b, m.p, m.len);
        cp_buf_free(&m);
    } else if (send == "plain ping") {
        cp_command(&b, "PING", "\x00\x0a", 2);
    } else if (send == "plain data") {
        cp_frame(&b, 0, "hello", 5);
    } else if (send == "initiate") {
        cp_initiate(&c, &b, nullptr);
    } else if (send == "error") {
        cp_error(&b, "bye", 3);
    } else if (send == "same nonce") {
        c.nonce--;
        cp_message(&c, &b, 0, "again", 5);
    } else if (send == "nonce 0") {
        c.nonce = 0;
        cp_message(&c, &b, 0, "zero", 4);
    } else if (send == "wrong direction") {
        c.server = 1;
        cp_message(&c, &b, 0, "x", 1);
        c.server = 0;
    } else if (send == "short") {
        cp_frame(&b, 0, "\x07MESSAGE\x00\x00\x00\x00\x00\x00\x00\x09" "0123456789abcdef", 32);
    } else if (send == "command frame") {
        cp_buf m = {};
        cp_message(&c, &m, 0, "taken", 5);
        m.p[0] |= CP_F_COMMAND;
        cp_put(&b, m.p, m.len);
        cp_buf_free(&m);
    } else if (send == "gap") {
        c.nonce += 1000;
        cp_message(&c, &b, 0, "taken", 5);
    }
    cp_message(&c, &b, 0, "last", 4);
    t.send(&b, why.isEmpty() ? 0 : 2000);
    if (why.isEmpty()) {
        QVERIFY(drive({&t.server}, [&] { return t.server.inbox.size() == 3 || t.server.error; }));
        QCOMPARE(t.server.error, 0);
        QCOMPARE(t.server.inbox, QVector<QByteArray>({"first", "taken", "last"}));
        return;
    }
    QCOMPARE(t.server.error, int(MPR_EPROTO));
    QCOMPARE(QString::fromLatin1(t.server.why), why);
    QCOMPARE(t.server.inbox, QVector<QByteArray>({"first"}));
}

void tst_Zmtp::pingAnswered_data()
{
    QTest::addColumn<QByteArray>("context");
    QTest::newRow("no context") << QByteArray();
    QTest::newRow("3 bytes") << QByteArray("abc");
    QTest::newRow("16 bytes") << QByteArray("0123456789abcdef");
}

// An encrypted PING gets an encrypted PONG with the same context (a
// command inside a data frame, as libzmq sends it), between messages.
void tst_Zmtp::pingAnswered()
{
    QFETCH(QByteArray, context);
    RawClient t;
    QVERIFY(t.open());
    QVERIFY(t.handshake());
    cp_buf b = {};
    QByteArray ping = QByteArray("\x04PING\x00\x0a", 7) + context;
    cp_message(&t.raw.peer, &b, CP_M_COMMAND, ping.constData(), size_t(ping.size()));
    cp_message(&t.raw.peer, &b, 0, "after", 5);
    QVERIFY(t.raw.sendAndFree(&b));
    QVERIFY(drive({&t.server}, [&] { return !t.server.inbox.isEmpty() || t.server.error; }));
    QCOMPARE(t.server.inbox, QVector<QByteArray>({"after"}));
    QByteArray body;
    unsigned frameFlags;
    QVERIFY(t.raw.frame(t.server, &body, &frameFlags));
    QCOMPARE(frameFlags & CP_F_COMMAND, 0u);
    unsigned flags;
    unsigned char plain[64];
    size_t len;
    QCOMPARE(cp_open(&t.raw.peer, reinterpret_cast<const unsigned char *>(body.constData()), size_t(body.size()),
                     &flags, plain, &len), 0);
    QCOMPARE(flags, unsigned(CP_M_COMMAND));
    QCOMPARE(bytes(plain, len), QByteArray("\x04PONG") + context);
}

// ---- bounds -------------------------------------------------------------

void tst_Zmtp::oversizedFrameAllocatesNothing_data()
{
    QTest::addColumn<quint64>("size");
    QTest::newRow("max_message + 1 of plaintext") << quint64(MAX + 33 + 1);
    QTest::newRow("2 GiB") << (quint64(1) << 31);
    QTest::newRow("2^63") << (quint64(1) << 63);
    QTest::newRow("2^64 - 1") << ~quint64(0);
}

// After READY, a header announcing more than max_message (plus the
// MESSAGE's 33 bytes) fails at once: nothing more is read or allocated.
void tst_Zmtp::oversizedFrameAllocatesNothing()
{
    QFETCH(quint64, size);
    RawClient t;
    QVERIFY(t.open());
    QVERIFY(t.handshake());
    drive({&t.server}, [] { return false; }, 50);
    const size_t before = mpr__zmtp_memory(t.server.z);
    QVERIFY(before <= 4096 + 64 * 1024 + 1024); // its page, the first input buffer, the output
#ifndef MPR_TEST_ASAN
    const size_t heapBefore = mallinfo2().uordblks;
#endif
    cp_buf b = {};
    cp_long_header(&b, 0, size);
    cp_put(&b, "\x07MESSAGE", 8); // the start of a body; no more
    t.send(&b, 2000);
    QCOMPARE(t.server.error, int(MPR_EPROTO));
    QCOMPARE(t.server.why, QByteArray("frame too large"));
    QCOMPARE(mpr__zmtp_memory(t.server.z), before);
#ifndef MPR_TEST_ASAN
    QVERIFY(mallinfo2().uordblks < heapBefore + 64 * 1024);
#endif
    QVERIFY(t.server.maxSpace <= BOUND);
}

// The largest message is taken (its frame is within the bound), and the
// input buffer grew to it, not beyond; the space offered never passed it.
void tst_Zmtp::largestMessageFitsTheBound()
{
    RawClient t;
    QVERIFY(t.open());
    QVERIFY(t.handshake());
    cp_buf b = {};
    QByteArray big = pattern(MAX, 3);
    cp_message(&t.raw.peer, &b, 0, big.constData(), MAX);
    QCOMPARE(b.len, MAX + 9 + 33);
    cp_message(&t.raw.peer, &b, 0, "", 0);
    QVERIFY(t.raw.sendAndFree(&b));
    QVERIFY(drive({&t.server}, [&] { return t.server.inbox.size() == 2 || t.server.error; }));
    QCOMPARE(t.server.error, 0);
    QCOMPARE(t.server.inbox[0], big);
    QVERIFY(t.server.maxSpace <= BOUND);
    QVERIFY(!t.server.spaceBroken);
    QVERIFY2(mpr__zmtp_memory(t.server.z) <= 4096 + (MAX + 9 + 33) + 1024,
             qPrintable(QString::number(mpr__zmtp_memory(t.server.z))));
}

// libzmq sends its first messages right behind its INITIATE: they arrive
// in the handshake buffer and move with READY. With max_message 0 (a
// bound of 42 bytes) the 40 frames behind it are more than the bound, and
// still the machine offers no more input space than the bound.
void tst_Zmtp::framesRightBehindTheHandshake()
{
    RawClient t;
    QVERIFY(t.open(0));
    QVERIFY(t.toWelcome());
    cp_buf b = {};
    cp_initiate(&t.raw.peer, &b, nullptr);
    for (int i = 0; i < 40; i++)
        cp_message(&t.raw.peer, &b, 0, "", 0);
    t.server.readLimit = MPR__ZMTP_HANDSHAKE_MAX; // all of it in one read
    QVERIFY(t.raw.sendAndFree(&b));
    QVERIFY(drive({&t.server}, [&] { return t.server.inbox.size() == 40 || t.server.error; }));
    QCOMPARE(t.server.error, 0);
    QCOMPARE(t.server.readyEvents, 1);
    QVERIFY(!t.server.spaceBroken);
    QVERIFY2(t.server.maxSpaceAfterReady <= 0 + 9 + 33,
             qPrintable(QString::number(t.server.maxSpaceAfterReady)));
}

// Before READY a machine holds its page and a little output: 256 servers
// each waiting for an INITIATE (the state a flood of HELLOs leaves) take a
// few KiB each, by the machine's own count and by the heap's.
void tst_Zmtp::fewKiBBeforeReady()
{
    const int n = 256;
    Keys serverKeys;
    unsigned char cookieKey[32];
    randombytes_buf(cookieKey, sizeof cookieKey);
    cp_peer peer;
    cp_init(&peer, 0, serverKeys.pub, serverKeys.sec, serverKeys.pub);
    cp_buf b = {};
    cp_greeting(&b, 3, 0, "CURVE", 0);
    cp_hello(&peer, &b);
#ifndef MPR_TEST_ASAN
    const size_t heapBefore = mallinfo2().uordblks;
#endif
    std::vector<mpr__zmtp *> machines;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        mpr__zmtp_config cfg = {MPR__ZMTP_SERVER, serverKeys.pub, serverKeys.sec, nullptr, cookieKey, MAX};
        mpr__zmtp *z;
        QCOMPARE(mpr__zmtp_new(&z, &cfg), 0);
        machines.push_back(z);
        unsigned char *in;
        size_t space;
        mpr__zmtp_input(z, &in, &space);
        QCOMPARE(space, size_t(MPR__ZMTP_HANDSHAKE_MAX));
        memcpy(in, b.p, b.len);
        mpr__zmtp_input_done(z, b.len);
        mpr__zmtp_event ev;
        QCOMPARE(mpr__zmtp_step(z, &ev), 0);
        const unsigned char *out;
        QCOMPARE(mpr__zmtp_output(z, &out), size_t(64 + 2 + 168)); // the greeting, WELCOME
        mpr__zmtp_input(z, &in, &space);
        QCOMPARE(space, size_t(MPR__ZMTP_HANDSHAKE_MAX));
        total += mpr__zmtp_memory(z);
    }
    QVERIFY2(total / n <= 4096 + 512, qPrintable(QString::number(total / n)));
#ifndef MPR_TEST_ASAN
    const size_t heap = mallinfo2().uordblks - heapBefore;
    QVERIFY2(heap / n <= 1024, qPrintable(QString("%1 bytes of heap each").arg(heap / n)));
#endif
    for (mpr__zmtp *z : machines)
        mpr__zmtp_free(z);
    cp_buf_free(&b);
}

// ---- secrets ------------------------------------------------------------

// The long-term secret keys (both roles) and the cookie key live in one
// mpr__secure_alloc page; after a handshake and traffic, this process's
// writable memory holds each of them exactly once: there. The keys are
// clamped (as X25519 uses them) so a scalar libsodium copied onto its
// stack would be found too: src/zmtp.c clears the stack after every use.
void tst_Zmtp::longTermSecretsAreNeverCopied()
{
    unsigned char *page = static_cast<unsigned char *>(mpr__secure_alloc(4096));
    QVERIFY(page);
    unsigned char *serverSec = page, *clientSec = page + 64, *cookieKey = page + 128;
    Keys serverKeys, clientKeys; // only their public halves are used
    for (unsigned char *sec : {serverSec, clientSec}) {
        randombytes_buf(sec, 32);
        sec[0] &= 248;
        sec[31] &= 127;
        sec[31] |= 64;
    }
    randombytes_buf(cookieKey, 32);
    crypto_scalarmult_base(serverKeys.pub, serverSec);
    crypto_scalarmult_base(clientKeys.pub, clientSec);
    sodium_stackzero(16384); // the test's own computations above
    sodium_memzero(serverKeys.sec, 32);
    sodium_memzero(clientKeys.sec, 32);

    int fds[2];
    QVERIFY(tcpPair(fds));
    End client, server;
    client.fd = fds[0];
    server.fd = fds[1];
    mpr__zmtp_config cc = {MPR__ZMTP_CLIENT, clientKeys.pub, clientSec, serverKeys.pub, nullptr, MAX};
    mpr__zmtp_config sc = {MPR__ZMTP_SERVER, serverKeys.pub, serverSec, nullptr, cookieKey, MAX};
    QCOMPARE(mpr__zmtp_new(&client.z, &cc), 0);
    QCOMPARE(mpr__zmtp_new(&server.z, &sc), 0);
    QVERIFY(drive({&client, &server},
                  [&] { return (client.readyEvents && server.readyEvents) || client.error || server.error; }));
    QCOMPARE(server.peerKey, bytes(clientKeys.pub));
    for (int i = 0; i < 100; i++) {
        QCOMPARE(mpr__zmtp_send(client.z, "ping", 4), 0);
        QCOMPARE(mpr__zmtp_send(server.z, "pong", 4), 0);
    }
    QVERIFY(drive({&client, &server}, [&] { return client.inbox.size() == 100 && server.inbox.size() == 100; }));

    // While both machines live.
    for (const unsigned char *key : {serverSec, clientSec, cookieKey}) {
        size_t scanned = 0;
        std::vector<quintptr> hits = scanMemory(key, &scanned);
        QVERIFY2(scanned > (1 << 20), "the search saw no memory");
        QString where;
        for (quintptr h : hits)
            where += QString(" 0x%1").arg(h, 0, 16);
        QVERIFY2(hits.size() == 1 && hits[0] == quintptr(key),
                 qPrintable(QString("key at 0x%1 found at%2").arg(quintptr(key), 0, 16).arg(where)));
    }

    // The control (after the search, so what it plants cannot count): a
    // copy on the heap and one in a dead stack frame are found.
    unsigned char *heapCopy = static_cast<unsigned char *>(malloc(32));
    memcpy(heapCopy, serverSec, 32);
    const quintptr stackCopy = copyOntoStack(serverSec);
    size_t scanned = 0;
    std::vector<quintptr> hits = scanMemory(serverSec, &scanned);
    const bool heapSeen = std::find(hits.begin(), hits.end(), quintptr(heapCopy)) != hits.end();
    const bool stackSeen = std::find(hits.begin(), hits.end(), stackCopy) != hits.end();
    sodium_memzero(heapCopy, 32);
    free(heapCopy);
    wipeAt(stackCopy);
    sodium_stackzero(16384);
    QVERIFY2(heapSeen, "the search missed a copy on the heap");
    QVERIFY2(stackSeen, "the search missed a copy on the stack");
    mpr__secure_free(page, 4096);
}

void tst_Zmtp::noSharedSecretLeftOnTheStack_data()
{
    QTest::addColumn<bool>("server");
    QTest::addColumn<int>("step");
    QTest::newRow("server takes HELLO: X25519(s, C')") << true << 0;
    QTest::newRow("server takes INITIATE: X25519(s', C'), X25519(s', C)") << true << 1;
    QTest::newRow("client takes WELCOME: X25519(c', S'), X25519(c, S')") << false << 0;
    QTest::newRow("control: a bare crypto_box_beforenm leaves it") << true << -1;
}

// libsodium 1.0.18's crypto_box_beforenm leaves the raw X25519 result of
// the two keys in its stack frame (the clamped scalar it does not). A
// hand-made peer knows each value the machine computes in a step (from
// its own secrets): none of them is on the stack below once the step
// returns, because the machine clears its stack after each use of a
// secret key.
void tst_Zmtp::noSharedSecretLeftOnTheStack()
{
    QFETCH(bool, server);
    QFETCH(int, step);
    Keys serverKeys, clientKeys;
    unsigned char cookieKey[32];
    randombytes_buf(cookieKey, sizeof cookieKey);
    std::vector<QByteArray> secrets;
    auto x25519 = [&](const unsigned char *sec, const unsigned char *pub) {
        unsigned char out[32];
        QVERIFY(crypto_scalarmult(out, sec, pub) == 0);
        secrets.push_back(bytes(out));
    };
    mpr__zmtp *z = nullptr;
    mpr__zmtp_event ev;
    unsigned char *in;
    size_t space;
    const unsigned char *out;
    cp_peer peer;
    cp_buf b = {};
    auto feed = [&](const cp_buf &bytes) {
        mpr__zmtp_input(z, &in, &space);
        QVERIFY(space >= bytes.len);
        memcpy(in, bytes.p, bytes.len);
        mpr__zmtp_input_done(z, bytes.len);
    };
    if (step < 0) {
        x25519(clientKeys.sec, serverKeys.pub);
        unsigned char k[32];
        sodium_stackzero(65536);
        const int before = onStackBelow(reinterpret_cast<const unsigned char *>(secrets[0].constData()));
        const int rc = bareBeforenm(k, serverKeys.pub, clientKeys.sec);
        const int after = onStackBelow(reinterpret_cast<const unsigned char *>(secrets[0].constData()));
        QCOMPARE(rc, 0);
        QCOMPARE(before, 0);
        QVERIFY2(after >= 1, "the stack search does not see what libsodium leaves");
        sodium_stackzero(65536);
        return;
    }
    if (server) {
        mpr__zmtp_config cfg = {MPR__ZMTP_SERVER, serverKeys.pub, serverKeys.sec, nullptr, cookieKey, MAX};
        QCOMPARE(mpr__zmtp_new(&z, &cfg), 0);
        cp_init(&peer, 0, clientKeys.pub, clientKeys.sec, serverKeys.pub);
        cp_greeting(&b, 3, 0, "CURVE", 0);
        cp_hello(&peer, &b);
        if (step == 0) {
            x25519(peer.cn_sec, serverKeys.pub); // = X25519(s, C')
        } else {
            feed(b);
            QCOMPARE(mpr__zmtp_step(z, &ev), 0);
            size_t n = mpr__zmtp_output(z, &out);
            QCOMPARE(n, size_t(11 + 53 + 2 + 168));
            QCOMPARE(cp_on_welcome(&peer, out + 64 + 2, 168), 0);
            mpr__zmtp_output_done(z, n);
            cp_buf_free(&b);
            cp_initiate(&peer, &b, nullptr);
            x25519(peer.cn_sec, peer.peer_cn); // = X25519(s', C'): the session
            x25519(clientKeys.sec, peer.peer_cn); // = X25519(s', C): the vouch
        }
    } else {
        mpr__zmtp_config cfg = {MPR__ZMTP_CLIENT, clientKeys.pub, clientKeys.sec, serverKeys.pub, nullptr, MAX};
        QCOMPARE(mpr__zmtp_new(&z, &cfg), 0);
        cp_init(&peer, 1, serverKeys.pub, serverKeys.sec, nullptr);
        cp_greeting(&b, 3, 0, "CURVE", 1);
        feed(b);
        QCOMPARE(mpr__zmtp_step(z, &ev), 0);
        size_t n = mpr__zmtp_output(z, &out);
        QCOMPARE(n, size_t(64 + 2 + 200));
        QCOMPARE(cp_on_hello(&peer, out + 66, 200), 0);
        cp_buf_free(&b);
        cp_welcome(&peer, &b);
        x25519(peer.cn_sec, peer.peer_cn);   // = X25519(c', S'): the session
        x25519(peer.cn_sec, clientKeys.pub); // = X25519(c, S'): the vouch
    }
    feed(b);
    sodium_stackzero(65536); // the test's own computations
    int before = 0, after = 0;
    for (const QByteArray &k : secrets)
        before += onStackBelow(reinterpret_cast<const unsigned char *>(k.constData()));
    const int rc = mpr__zmtp_step(z, &ev); // nothing between it and the search
    for (const QByteArray &k : secrets)
        after += onStackBelow(reinterpret_cast<const unsigned char *>(k.constData()));
    QCOMPARE(before, 0);
    QVERIFY(rc >= 0);
    QCOMPARE(QByteArray(mpr__zmtp_why(z)), QByteArray());
    QVERIFY(mpr__zmtp_output(z, &out) > 0);
    QCOMPARE(after, 0);
    cp_buf_free(&b);
    mpr__zmtp_free(z);
}

QTEST_GUILESS_MAIN(tst_Zmtp)
#include "tst_zmtp.moc"
