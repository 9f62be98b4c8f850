/*
 * baselines.cpp - what the machine and Qt can do without mprouter:
 *   (a) one write() per message on AF_UNIX stream sockets from forked
 *       processes, read by one thread; bulk bandwidth with 64 MiB (and
 *       1 GiB) buffers and writes;
 *   (b) one QCoreApplication::postEvent per message from a thread;
 *   (c) idle latency: process -> socket -> thread in poll() -> postEvent
 *       -> main-thread QObject;
 *   (d) one-hop floor: the main thread watches the socket (QSocketNotifier);
 *   (e) with the remote transport built (MPR_BENCH_ZMQ): raw ZeroMQ, PUSH ->
 *       PULL over tcp on 127.0.0.1 with CURVE (and without, for reference):
 *       4 processes x 32 B, 64 MiB messages, idle latency.
 */
#include "bench.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QEvent>
#include <QtCore/QEventLoop>
#include <QtCore/QObject>
#include <QtCore/QSocketNotifier>
#include <QtCore/QTimer>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#ifdef MPR_BENCH_ZMQ
#include <zmq.h>
#endif

namespace bench {

namespace {

/* Reassembles fixed-size messages from one stream and checks their order. */
struct StreamCheck {
    uint32_t idx = 0;
    size_t size = 0;
    uint64_t next = 0;
    bool ended = false; /* the stream's last message arrived */
    std::vector<char> part;
    size_t partLen = 0;
    std::string error;
    /* Called for every complete message (after the check). */
    std::function<void(const Header &)> onMessage;

    void one(const char *p)
    {
        if (!error.empty())
            return;
        bool last = false;
        std::string e = ended ? strf("sender %u: message after the last one", idx)
                              : checkFixed(p, size, size, idx, next, &last);
        if (!e.empty()) {
            error = e;
            return;
        }
        next++;
        ended = last;
        if (onMessage) {
            Header h;
            memcpy(&h, p, sizeof h);
            onMessage(h);
        }
    }

    void feed(const char *buf, size_t n)
    {
        if (part.size() != size)
            part.resize(size);
        size_t off = 0;
        if (partLen) {
            size_t take = std::min(size - partLen, n);
            memcpy(part.data() + partLen, buf, take);
            partLen += take;
            off = take;
            if (partLen < size)
                return;
            one(part.data());
            partLen = 0;
        }
        for (; n - off >= size; off += size)
            one(buf + off);
        if (off < n) {
            memcpy(part.data(), buf + off, n - off);
            partLen = n - off;
        }
    }
    bool complete() const { return ended; }
};

/* A QObject on the main thread that hands its custom events to fn. */
QEvent::Type benchEventType()
{
    static const QEvent::Type t = static_cast<QEvent::Type>(QEvent::registerEventType());
    return t;
}

struct SeqEvent : QEvent {
    SeqEvent(uint64_t s, int64_t t, bool l = false) : QEvent(benchEventType()), seq(s), ts(t), last(l)
    {
    }
    uint64_t seq;
    int64_t ts;
    bool last;
};

class Sink : public QObject
{
public:
    std::function<void(const SeqEvent *)> fn;
    bool event(QEvent *e) override
    {
        if (e->type() == benchEventType()) {
            fn(static_cast<const SeqEvent *>(e));
            return true;
        }
        return QObject::event(e);
    }
};

/* Runs a QEventLoop until done() is true, checking workers (may be NULL)
 * and the deadline every 100 ms. Returns "" or what went wrong. */
std::string runQt(QEventLoop &loop, const std::function<bool()> &done, Workers *w, double timeoutS)
{
    int64_t deadline = nowNs() + (int64_t)(timeoutS * 1e9);
    std::string err;
    QTimer watchdog;
    watchdog.setInterval(100);
    QObject::connect(&watchdog, &QTimer::timeout, [&] {
        if (done())
            loop.quit();
        else if (w && !w->check()) {
            err = w->error();
            loop.quit();
        } else if (nowNs() > deadline) {
            err = strf("timed out after %.0f s", timeoutS);
            loop.quit();
        }
    });
    watchdog.start();
    if (!done())
        loop.exec();
    return err;
}

} // namespace

/* ------------------------------------------------------------------ */
/* (a) one write() per message                                         */

bool rawRate(Values &v, const char *name, int nprocs, size_t size, long perProc, double duration)
{
    if (duration < 0)
        duration = opt.duration;
    std::vector<int> rd(nprocs, -1), wr(nprocs, -1);
    for (int i = 0; i < nprocs; i++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            progress("  %s: socketpair: %s", name, strerror(errno));
            for (int j = 0; j < i; j++) {
                close(rd[j]);
                close(wr[j]);
            }
            return false;
        }
        rd[i] = sv[0];
        wr[i] = sv[1];
    }
    Workers w;
    bool ok = w.start(
        nprocs,
        [&](int i) {
            for (int j = 0; j < nprocs; j++) {
                close(rd[j]);
                if (j != i)
                    close(wr[j]);
            }
            return 0;
        },
        [&](int i) {
            std::vector<char> buf(size, 'x');
            StreamEnd end(perProc, duration);
            for (long s = 0;; s++) {
                bool last = end.isLast(s);
                fillFixed(buf.data(), size, (uint32_t)i, (uint64_t)s, 0, last);
                if (writeAll(wr[i], buf.data(), size) < 0)
                    return 1;
                if (last)
                    break;
            }
            close(wr[i]);
            return 0;
        });
    for (int i = 0; i < nprocs; i++) {
        close(wr[i]);
        fcntl(rd[i], F_SETFL, O_NONBLOCK);
    }
    std::vector<StreamCheck> sc(nprocs);
    for (int i = 0; i < nprocs; i++) {
        sc[i].idx = (uint32_t)i;
        sc[i].size = size;
    }
    std::string err;
    int64_t t0 = 0, t1 = 0;
    if (ok && w.waitReady((double)opt.timeoutS)) {
        /* the one reader thread */
        std::thread reader([&] {
            std::vector<char> buf(256 * 1024);
            std::vector<struct pollfd> pf(nprocs);
            for (int i = 0; i < nprocs; i++)
                pf[i] = {rd[i], POLLIN, 0};
            int open = nprocs;
            int64_t deadline = nowNs() + opt.timeoutS * 1000000000ll;
            while (open > 0) {
                int k = poll(pf.data(), (nfds_t)nprocs, 100);
                if (k < 0 && errno != EINTR) {
                    err = strf("poll: %s", strerror(errno));
                    return;
                }
                if (nowNs() > deadline) {
                    err = "timed out";
                    return;
                }
                for (int i = 0; i < nprocs; i++) {
                    if (pf[i].fd < 0 || !pf[i].revents)
                        continue;
                    ssize_t n = read(rd[i], buf.data(), buf.size());
                    if (n > 0) {
                        sc[i].feed(buf.data(), (size_t)n);
                        if (!sc[i].error.empty()) {
                            err = sc[i].error;
                            return;
                        }
                        if (t1 == 0 && sc[i].complete()) {
                            bool all = true;
                            for (auto &s : sc)
                                all = all && s.complete();
                            if (all)
                                t1 = nowNs();
                        }
                    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                        pf[i].fd = -1;
                        open--;
                    }
                }
            }
        });
        t0 = w.go();
        reader.join();
        if (err.empty())
            for (auto &s : sc)
                if (!s.complete()) {
                    err = strf("sender %u: stream ended after %llu messages without its last one",
                               s.idx, (unsigned long long)s.next);
                    break;
                }
        if (err.empty() && t1 == 0)
            t1 = nowNs();
    } else {
        ok = false;
    }
    if (!w.finish(10) && err.empty())
        err = w.error();
    if (!ok && err.empty())
        err = w.error();
    for (int i = 0; i < nprocs; i++)
        close(rd[i]);
    if (!err.empty()) {
        progress("  %s: FAIL: %s", name, err.c_str());
        return false;
    }
    uint64_t total = 0;
    for (auto &s : sc)
        total += s.next;
    v[name] = (double)total / ((double)(t1 - t0) / 1e9);
    return true;
}

/* The floor of scale_procs on this machine: the same opt.procs forked
 * processes, released at once, each writing its opt.procMsgs 32-byte
 * messages (with the 8-byte record header a ring adds) into fresh memory
 * of its own, then one byte to a shared pipe, and exiting; nobody reads
 * the messages. From go to the last of those bytes, the same window as
 * scale_procs (go to the last message): what running 256 processes and
 * touching that much new memory cost, with no IPC at all. */
bool procsFloor(Values &v)
{
    const int n = (int)opt.procs;
    const long per = opt.procMsgs;
    const size_t rec = 32 + 8;
    int donePipe[2];
    if (pipe2(donePipe, O_CLOEXEC) < 0) {
        progress("  procs_floor: FAIL: pipe: %s", strerror(errno));
        return false;
    }
    Workers w;
    bool ok = w.start(n, nullptr, [&](int i) {
        /* The zero fill faults the pages in, as a ring's first copy would. */
        std::vector<char> buf(per * rec);
        char msg[32];
        volatile char sink = 0;
        for (long s = 0; s < per; s++) {
            fillFixed(msg, sizeof msg, (uint32_t)i, (uint64_t)s, 0, s == per - 1);
            memcpy(buf.data() + s * rec + 8, msg, sizeof msg);
        }
        sink = buf[(per - 1) * rec + 8];
        (void)sink;
        return write(donePipe[1], "d", 1) == 1 ? 0 : 1;
    });
    close(donePipe[1]);
    std::string err;
    int64_t t0 = 0, t1 = 0;
    if (ok && w.waitReady((double)opt.timeoutS)) {
        t0 = w.go();
        int64_t deadline = t0 + opt.timeoutS * 1000000000ll;
        char buf[256];
        for (int got = 0; got < n && err.empty();) {
            struct pollfd p = {donePipe[0], POLLIN, 0};
            if (poll(&p, 1, 100) > 0) {
                ssize_t r = read(donePipe[0], buf, sizeof buf);
                if (r > 0)
                    got += (int)r;
                else if (r == 0)
                    err = "a worker exited without finishing";
            }
            if (nowNs() > deadline)
                err = "timed out";
        }
        t1 = nowNs();
    } else {
        ok = false;
    }
    close(donePipe[0]);
    if (!w.finish((double)opt.timeoutS) && err.empty())
        err = w.error();
    if (!ok && err.empty())
        err = w.error();
    if (!err.empty()) {
        progress("  procs_floor: FAIL: %s", err.c_str());
        return false;
    }
    v["procs_floor"] = (double)n * (double)per / ((double)(t1 - t0) / 1e9);
    return true;
}

/* Raw bulk bandwidth: one socket with 64 MiB buffers, 64 MiB writes. */
/* CPU time of the calling thread, ns. */
static int64_t threadCpuNs()
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool rawBulk(Values &v, const BigSpec &b)
{
    const char *fig = b.fig.c_str();
    const size_t big = b.size;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        progress("  %s: socketpair: %s", fig, strerror(errno));
        return false;
    }
    int bufsz = (int)std::min(std::max(big, (size_t)64 << 20), (size_t)1 << 30);
    for (int s = 0; s < 2; s++) {
        /* FORCE (root) ignores net.core.[rw]mem_max; otherwise capped. */
        if (setsockopt(sv[s], SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof bufsz) < 0)
            setsockopt(sv[s], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
        if (setsockopt(sv[s], SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz) < 0)
            setsockopt(sv[s], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    }
    static std::vector<std::string> told;
    if (std::find(told.begin(), told.end(), b.fig) == told.end()) {
        int got = 0;
        socklen_t len = sizeof got;
        getsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &got, &len);
        progress("  %s: send buffer %d KiB (asked for %d KiB)", fig, got / 1024, bufsz / 1024);
        told.push_back(b.fig);
    }
    Workers w;
    std::vector<char> buf; /* the worker's (made before go) */
    bool ok = w.start(
        1,
        [&](int) {
            close(sv[0]);
            buf.resize(big);
            fillBig(buf.data(), big, 0);
            return 0;
        },
        [&](int) {
            StreamEnd end(std::max(2L, b.count), b.duration, 2, true);
            for (long m = 0;; m++) {
                if (m > 0)
                    fillBig(buf.data(), big, (uint64_t)m);
                if (writeAll(sv[1], buf.data(), big) < 0)
                    return 1;
                if (end.isLast(m))
                    break;
            }
            close(sv[1]); /* the end of the stream is the end marker */
            return 0;
        });
    close(sv[1]);
    std::string err;
    int64_t t0 = 0, t1 = 0, tFirst = 0, cpu = 0;
    uint64_t bulkBytes = 0;
    std::vector<char> rbuf(big); /* the reader's (made before go) */
    if (ok && w.waitReady((double)opt.timeoutS)) {
        std::thread reader([&] {
            int64_t cpu0 = threadCpuNs();
            uint64_t &at = bulkBytes;
            int64_t deadline = nowNs() + opt.timeoutS * 1000000000ll;
            for (;;) {
                ssize_t n = read(sv[0], rbuf.data(), rbuf.size());
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0) {
                    if (n < 0 || at % big != 0 || at < 2 * big)
                        err = strf("stream ended after %llu bytes, not whole messages",
                                   (unsigned long long)at);
                    break;
                }
                /* every 4096-aligned word holds its own stream offset */
                for (uint64_t o = (at + 4095) & ~(uint64_t)4095; o + 8 <= at + (uint64_t)n;
                     o += 4096) {
                    uint64_t word;
                    memcpy(&word, rbuf.data() + (o - at), 8);
                    if (word != o) {
                        err = strf("wrong content at stream offset %llu", (unsigned long long)o);
                        return;
                    }
                }
                at += (uint64_t)n;
                if (!tFirst && at >= big)
                    tFirst = nowNs();
                if (nowNs() > deadline) {
                    err = "timed out";
                    return;
                }
            }
            t1 = nowNs();
            cpu = threadCpuNs() - cpu0;
        });
        t0 = w.go();
        reader.join();
    } else {
        ok = false;
    }
    if (!w.finish(10) && err.empty())
        err = w.error();
    if (!ok && err.empty())
        err = w.error();
    close(sv[0]);
    if (!err.empty()) {
        progress("  %s: FAIL: %s", fig, err.c_str());
        return false;
    }
    v[b.fig] = (double)bulkBytes / ((double)(t1 - t0) / 1e9) / 1048576.0;
    v[b.fig + "_first"] = (double)(tFirst - t0) / 1e6;
    v[b.fig + "_cpu_recv"] = (double)cpu / 1e6 / ((double)bulkBytes / (double)big);
    return true;
}

/* ------------------------------------------------------------------ */
/* (b) QCoreApplication::postEvent per message                         */

bool qtPost(Values &v)
{
    const long cap = opt.msgs4 * 4;
    Sink sink;
    QEventLoop loop;
    uint64_t next = 0;
    bool ended = false;
    int64_t t1 = 0;
    std::string err;
    sink.fn = [&](const SeqEvent *e) {
        if (e->seq != next && err.empty())
            err = strf("event %llu arrived, expected %llu", (unsigned long long)e->seq,
                       (unsigned long long)next);
        next++;
        if (e->last) {
            ended = true;
            t1 = nowNs();
            loop.quit();
        }
    };
    int64_t t0 = nowNs();
    std::thread poster([&] {
        StreamEnd end(cap, opt.duration);
        for (long i = 0;; i++) {
            bool last = end.isLast(i);
            QCoreApplication::postEvent(&sink, new SeqEvent((uint64_t)i, 0, last));
            if (last)
                break;
        }
    });
    std::string e2 = runQt(loop, [&] { return ended; }, nullptr, (double)opt.timeoutS);
    poster.join();
    /* if we timed out, the rest is still queued: deliver it before sink dies */
    QCoreApplication::removePostedEvents(&sink);
    if (err.empty())
        err = e2;
    if (!err.empty()) {
        progress("  qt_post: FAIL: %s", err.c_str());
        return false;
    }
    v["qt_post"] = (double)next / ((double)(t1 - t0) / 1e9);
    return true;
}

/* ------------------------------------------------------------------ */
/* (c), (d) idle latency from raw parts                                */

namespace {

/* A child's loop that sends one 32-byte timestamped message every
 * period with send (0 or not); 0 or 1, for Workers. */
int ticker(long count, const std::function<int(const char *, size_t)> &send)
{
    char buf[32];
    int64_t period = opt.latPeriodUs * 1000;
    int64_t next = nowNs();
    for (long s = 0; s < count; s++) {
        next += period;
        struct timespec ts = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        fillFixed(buf, sizeof buf, 0, (uint64_t)s, nowNs(), s == count - 1);
        if (send(buf, sizeof buf) != 0)
            return 1;
    }
    return 0;
}

/* A child that writes one 32-byte timestamped message to fd every period. */
int tickerChild(int fd, long count)
{
    int rc = ticker(count, [fd](const char *buf, size_t n) { return writeAll(fd, buf, n); });
    close(fd);
    return rc;
}

const long kWarmup = 10;

bool latency(Values &v, const char *name, bool viaThread)
{
    const long count = opt.latSamples + kWarmup;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        progress("  %s: socketpair: %s", name, strerror(errno));
        return false;
    }
    Workers w;
    bool ok = w.start(
        1, [&](int) { close(sv[0]); return 0; }, [&](int) { return tickerChild(sv[1], count); });
    close(sv[1]);
    std::vector<int64_t> lat;
    lat.reserve((size_t)count);
    StreamCheck sc;
    sc.size = 32;
    std::string err;
    QEventLoop loop;
    uint64_t got = 0;
    auto record = [&](uint64_t seq, int64_t ts) {
        int64_t now = nowNs();
        if (seq >= (uint64_t)kWarmup)
            lat.push_back(now - ts);
        if (++got == (uint64_t)count)
            loop.quit();
    };
    Sink sink;
    sink.fn = [&](const SeqEvent *e) { record(e->seq, e->ts); };
    std::atomic<bool> stop(false), failed(false);
    std::thread reader;
    QSocketNotifier *notifier = nullptr;
    if (ok && w.waitReady((double)opt.timeoutS)) {
        if (viaThread) {
            /* (c): a thread blocked in poll() posts one QEvent per message */
            sc.onMessage = [&](const Header &h) {
                QCoreApplication::postEvent(&sink, new SeqEvent(h.seq, h.ts));
            };
            reader = std::thread([&] {
                char buf[4096];
                while (!stop.load() && !sc.complete()) {
                    struct pollfd p = {sv[0], POLLIN, 0};
                    if (poll(&p, 1, 100) <= 0)
                        continue;
                    ssize_t n = read(sv[0], buf, sizeof buf);
                    if (n <= 0)
                        break;
                    sc.feed(buf, (size_t)n);
                    if (!sc.error.empty()) {
                        failed = true;
                        break;
                    }
                }
            });
        } else {
            /* (d): the main thread watches the socket itself */
            fcntl(sv[0], F_SETFL, O_NONBLOCK);
            sc.onMessage = [&](const Header &h) { record(h.seq, h.ts); };
            notifier = new QSocketNotifier(sv[0], QSocketNotifier::Read);
            QObject::connect(notifier, &QSocketNotifier::activated, [&] {
                char buf[4096];
                ssize_t n = read(sv[0], buf, sizeof buf);
                if (n > 0)
                    sc.feed(buf, (size_t)n);
                else if (n == 0 || errno != EAGAIN)
                    notifier->setEnabled(false);
                if (!sc.error.empty()) {
                    failed = true;
                    loop.quit();
                }
            });
        }
        w.go();
        err = runQt(loop, [&] { return got == (uint64_t)count || failed.load(); }, &w,
                    (double)opt.timeoutS);
    } else {
        ok = false;
    }
    stop = true;
    if (reader.joinable())
        reader.join();
    delete notifier;
    QCoreApplication::removePostedEvents(&sink);
    if (err.empty())
        err = sc.error;
    if (!w.finish(10) && err.empty())
        err = w.error();
    if (!ok && err.empty())
        err = w.error();
    close(sv[0]);
    if (err.empty() && got != (uint64_t)count)
        err = strf("%llu of %ld messages arrived", (unsigned long long)got, count);
    if (!err.empty()) {
        progress("  %s: FAIL: %s", name, err.c_str());
        return false;
    }
    v[strf("%s_p50", name)] = percentile(lat, 0.50) / 1000.0;
    v[strf("%s_p99", name)] = percentile(lat, 0.99) / 1000.0;
    return true;
}

} // namespace

bool latRaw(Values &v)
{
    return latency(v, "lat_raw", true);
}

bool latNotifier(Values &v)
{
    return latency(v, "lat_notifier", false);
}

/* ------------------------------------------------------------------ */
/* (e) raw ZeroMQ: PUSH -> PULL over tcp on 127.0.0.1                  */

#ifdef MPR_BENCH_ZMQ

namespace {

/* The first message of every PUSH: it tells the parent the connection
 * (and the CURVE handshake) is up before the clock starts. */
constexpr uint32_t MAGIC_HELLO = 0x6d707248u;

std::string zmqErr(const char *what)
{
    return strf("%s: %s", what, zmq_strerror(zmq_errno()));
}

/* The receiving end, in the parent: a context and a PULL socket bound to
 * a free port of 127.0.0.1; with curve a CURVE server with a fresh key
 * pair. recv waits at most 100 ms (ZMQ_RCVTIMEO), so every loop can look
 * at its deadline. */
struct ZmqPull {
    void *ctx = nullptr, *sock = nullptr;
    char endpoint[128] = "";
    char serverKey[41] = "";
    bool curve = false;
    std::string err;

    bool open(bool withCurve, int rcvhwm)
    {
        curve = withCurve;
        ctx = zmq_ctx_new();
        if (!ctx) {
            err = zmqErr("zmq_ctx_new");
            return false;
        }
        sock = zmq_socket(ctx, ZMQ_PULL);
        if (!sock) {
            err = zmqErr("zmq_socket");
            return false;
        }
        int one = 1, linger = 0, timeo = 100;
        char secret[41];
        if (curve && (zmq_curve_keypair(serverKey, secret) < 0 ||
                      zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
                      zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, 40) < 0)) {
            err = zmqErr("CURVE server");
            return false;
        }
        size_t len = sizeof endpoint;
        if ((rcvhwm > 0 && zmq_setsockopt(sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) < 0) ||
            zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
            zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeo, sizeof timeo) < 0 ||
            zmq_bind(sock, "tcp://127.0.0.1:0") < 0 ||
            zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &len) < 0) {
            err = zmqErr("PULL on tcp://127.0.0.1:0");
            return false;
        }
        return true;
    }

    /* In the parent, after the workers are ready: one hello from each of
     * n workers. */
    bool waitHellos(int n, Workers &w)
    {
        std::vector<char> seen((size_t)n, 0);
        int64_t deadline = nowNs() + opt.timeoutS * 1000000000ll;
        for (int got = 0; got < n;) {
            char buf[64];
            int k = zmq_recv(sock, buf, sizeof buf, 0);
            if (k < 0 && zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
                err = zmqErr("zmq_recv");
                return false;
            }
            if (k >= 0) {
                Header h = {};
                memcpy(&h, buf, std::min(sizeof h, (size_t)k));
                if (k != 32 || h.magic != MAGIC_HELLO || h.idx >= (uint32_t)n || seen[h.idx]) {
                    err = "a bad hello";
                    return false;
                }
                seen[h.idx] = 1;
                got++;
            }
            if (!w.check()) {
                err = w.error();
                return false;
            }
            if (nowNs() > deadline) {
                err = strf("only %d of %d workers connected", got, n);
                return false;
            }
        }
        return true;
    }

    ~ZmqPull()
    {
        if (sock)
            zmq_close(sock);
        if (ctx)
            zmq_ctx_term(ctx);
    }
};

/* The sending end, in a worker: a context of its own (the parent's has no
 * threads in the child) and a PUSH socket connected to pull, with curve a
 * CURVE client with a fresh key pair; then its hello. close() waits until
 * what was sent has left (ZMQ_LINGER, at most opt.timeoutS). */
struct ZmqPush {
    void *ctx = nullptr, *sock = nullptr;

    int open(const ZmqPull &pull, uint32_t idx, int sndhwm)
    {
        ctx = zmq_ctx_new();
        sock = ctx ? zmq_socket(ctx, ZMQ_PUSH) : nullptr;
        if (!sock) {
            fprintf(stderr, "mpr_bench: worker: %s\n", zmqErr("PUSH").c_str());
            return 1;
        }
        int linger = (int)std::min(opt.timeoutS * 1000, 3600000L);
        char pub[41], sec[41];
        int rc = 0;
        if (pull.curve)
            rc = zmq_curve_keypair(pub, sec) < 0 ||
                 zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, pull.serverKey, 40) < 0 ||
                 zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40) < 0 ||
                 zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40) < 0;
        if (rc == 0)
            rc = (sndhwm > 0 && zmq_setsockopt(sock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) < 0) ||
                 zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
                 zmq_connect(sock, pull.endpoint) < 0;
        Header h = {idx, MAGIC_HELLO, 0, 0, 0};
        if (rc == 0)
            rc = send(&h, sizeof h);
        if (rc != 0)
            fprintf(stderr, "mpr_bench: worker %u: %s\n", idx, zmqErr("PUSH").c_str());
        return rc;
    }

    /* One zmq_send (blocking while the high-water mark is reached). */
    int send(const void *buf, size_t n)
    {
        for (;;) {
            int k = zmq_send(sock, buf, n, 0);
            if (k == (int)n)
                return 0;
            if (k < 0 && zmq_errno() == EINTR)
                continue;
            return 1;
        }
    }

    int close()
    {
        zmq_close(sock);
        zmq_ctx_term(ctx); /* returns once everything has left, or the linger */
        return 0;
    }
};

/* Runs reader on a thread of its own while this thread watches the
 * workers: a failed worker stops the reader (through abort). */
std::string superviseReader(Workers &w, std::atomic<bool> &abort,
                            const std::function<std::string()> &reader)
{
    std::atomic<bool> done(false);
    std::string err;
    std::thread t([&] {
        err = reader();
        done = true;
    });
    std::string werr;
    while (!done.load()) {
        usleep(20000);
        if (werr.empty() && !w.check()) {
            werr = w.error();
            abort = true;
        }
    }
    t.join();
    return !werr.empty() ? werr : err;
}

/* One receive of a fixed-size message of stream idx < n: its checks. */
struct Streams {
    std::vector<uint64_t> next;
    std::vector<char> ended;
    int nended = 0;
    uint64_t total = 0;
    explicit Streams(int n) : next((size_t)n, 0), ended((size_t)n, 0) {}
    bool complete() const { return nended == (int)next.size(); }
    std::string one(const char *buf, size_t got, size_t want)
    {
        Header h;
        if (got < sizeof h)
            return strf("a message of %zu bytes", got);
        memcpy(&h, buf, sizeof h);
        if (h.idx >= next.size())
            return strf("a message from sender %u", h.idx);
        if (ended[h.idx])
            return strf("sender %u: message after the last one", h.idx);
        bool last = false;
        std::string e = checkFixed(buf, got, want, h.idx, next[h.idx], &last);
        if (!e.empty())
            return e;
        next[h.idx]++;
        total++;
        if (last) {
            ended[h.idx] = 1;
            nended++;
        }
        return std::string();
    }
};

} // namespace

/* The end of a ZeroMQ baseline, workers reaped: the first error of the
 * measurement, the workers and, when it could not run (ok false), the PULL
 * side. Empty if none. */
static std::string zmqRunError(Workers &w, bool ok, const std::string &err, const ZmqPull &pull)
{
    std::string e = err;
    if (!w.finish(10) && e.empty())
        e = w.error();
    if (!ok && e.empty())
        e = !w.error().empty() ? w.error() : pull.err;
    return e;
}

/* 4 forked processes, one zmq_send per 32-byte message, into one PULL
 * read by one thread; every message checked. */
bool zmqRate(Values &v, const char *name, bool curve)
{
    const int n = 4;
    const size_t size = 32;
    const long perProc = opt.msgs4;
    ZmqPull pull;
    if (!pull.open(curve, 0)) {
        progress("  %s: FAIL: %s", name, pull.err.c_str());
        return false;
    }
    ZmqPush push;
    Workers w;
    bool ok = w.start(
        n, [&](int i) { return push.open(pull, (uint32_t)i, 0); },
        [&](int i) {
            char buf[32];
            StreamEnd end(perProc, opt.duration);
            for (long s = 0;; s++) {
                bool last = end.isLast(s);
                fillFixed(buf, size, (uint32_t)i, (uint64_t)s, 0, last);
                if (push.send(buf, size) != 0)
                    return 1;
                if (last)
                    break;
            }
            return push.close();
        });
    std::string err;
    Streams st(n);
    int64_t t0 = 0, t1 = 0;
    if (ok && w.waitReady((double)opt.timeoutS) && pull.waitHellos(n, w)) {
        std::atomic<bool> abort(false);
        t0 = w.go();
        err = superviseReader(w, abort, [&]() -> std::string {
            char buf[64];
            int64_t deadline = t0 + opt.timeoutS * 1000000000ll;
            while (!st.complete()) {
                int k = zmq_recv(pull.sock, buf, sizeof buf, 0);
                if (k < 0) {
                    if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
                        return zmqErr("zmq_recv");
                } else {
                    std::string e = st.one(buf, (size_t)k, size);
                    if (!e.empty())
                        return e;
                }
                if ((k < 0 || (st.total & 4095) == 0) && (abort.load() || nowNs() > deadline))
                    return abort.load() ? "a worker failed" : "timed out";
            }
            t1 = nowNs();
            return std::string();
        });
    } else {
        ok = false;
    }
    err = zmqRunError(w, ok, err, pull);
    if (!err.empty()) {
        progress("  %s: FAIL: %s", name, err.c_str());
        return false;
    }
    v[name] = (double)st.total / ((double)(t1 - t0) / 1e9);
    return true;
}

/* One process, 64 MiB messages (--big-mib), one zmq_send each (which
 * copies the buffer into a message), CURVE; one receiving thread takes
 * each as a zmq_msg_t (no copy) and checks it every 4 KiB. High-water
 * marks of 2 messages on both ends keep the memory bounded. */
bool zmqBulk(Values &v)
{
    const char *name = "zmq_bulk";
    const size_t big = (size_t)opt.bigMiB << 20;
    ZmqPull pull;
    if (!pull.open(true, 2)) {
        progress("  %s: FAIL: %s", name, pull.err.c_str());
        return false;
    }
    ZmqPush push;
    Workers w;
    bool ok = w.start(
        1, [&](int) { return push.open(pull, 0, 2); },
        [&](int) {
            std::vector<char> buf(big);
            StreamEnd end(std::max(2L, opt.bigCount), opt.duration, 2, true);
            for (long m = 0;; m++) {
                bool last = end.isLast(m);
                fillBig(buf.data(), big, (uint64_t)m);
                fillFixed(buf.data(), 32, 0, (uint64_t)m, 0, last);
                if (push.send(buf.data(), big) != 0)
                    return 1;
                if (last)
                    break;
            }
            return push.close();
        });
    std::string err;
    uint64_t count = 0;
    int64_t t0 = 0, t1 = 0;
    if (ok && w.waitReady((double)opt.timeoutS) && pull.waitHellos(1, w)) {
        std::atomic<bool> abort(false);
        t0 = w.go();
        err = superviseReader(w, abort, [&]() -> std::string {
            int64_t deadline = t0 + opt.timeoutS * 1000000000ll;
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            std::string e;
            for (bool last = false; !last && e.empty();) {
                if (zmq_msg_recv(&msg, pull.sock, 0) < 0) {
                    if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
                        e = zmqErr("zmq_msg_recv");
                    else if (abort.load())
                        e = "a worker failed";
                    else if (nowNs() > deadline)
                        e = "timed out";
                    continue;
                }
                const char *p = static_cast<const char *>(zmq_msg_data(&msg));
                size_t got = zmq_msg_size(&msg);
                if (got != big)
                    e = strf("large message %llu has %zu bytes, want %zu",
                             (unsigned long long)count, got, big);
                else
                    e = checkFixed(p, 32, 32, 0, count, &last);
                if (e.empty())
                    e = checkBig(p, big, count, 32);
                count++;
            }
            zmq_msg_close(&msg);
            t1 = nowNs();
            return e;
        });
    } else {
        ok = false;
    }
    err = zmqRunError(w, ok, err, pull);
    if (!err.empty()) {
        progress("  %s: FAIL: %s", name, err.c_str());
        return false;
    }
    v[name] = (double)count * (double)big / ((double)(t1 - t0) / 1e9) / 1048576.0;
    return true;
}

/* Idle latency, in the shape of (c): a process sends one 32-byte
 * timestamped message every period over PUSH (CURVE); a thread blocked
 * in zmq_recv on the PULL posts a QEvent per message to a main-thread
 * QObject, whose handler takes the time. */
bool zmqLatency(Values &v)
{
    const char *name = "zmq_lat";
    const long count = opt.latSamples + kWarmup;
    ZmqPull pull;
    if (!pull.open(true, 0)) {
        progress("  %s: FAIL: %s", name, pull.err.c_str());
        return false;
    }
    ZmqPush push;
    Workers w;
    bool ok = w.start(
        1, [&](int) { return push.open(pull, 0, 0); },
        [&](int) {
            int rc = ticker(count, [&](const char *buf, size_t n) { return push.send(buf, n); });
            return push.close() || rc;
        });
    std::vector<int64_t> lat;
    lat.reserve((size_t)count);
    std::string err;
    QEventLoop loop;
    uint64_t got = 0;
    Sink sink;
    sink.fn = [&](const SeqEvent *e) {
        int64_t now = nowNs();
        if (e->seq >= (uint64_t)kWarmup)
            lat.push_back(now - e->ts);
        if (++got == (uint64_t)count)
            loop.quit();
    };
    std::atomic<bool> stop(false), failed(false);
    std::string readErr;
    std::thread reader;
    if (ok && w.waitReady((double)opt.timeoutS) && pull.waitHellos(1, w)) {
        reader = std::thread([&] {
            Streams st(1);
            char buf[64];
            while (!stop.load() && !st.complete()) {
                int k = zmq_recv(pull.sock, buf, sizeof buf, 0);
                if (k < 0) {
                    if (zmq_errno() == EAGAIN || zmq_errno() == EINTR)
                        continue;
                    readErr = zmqErr("zmq_recv");
                } else {
                    readErr = st.one(buf, (size_t)k, 32);
                }
                if (!readErr.empty()) {
                    failed = true;
                    break;
                }
                Header h;
                memcpy(&h, buf, sizeof h);
                QCoreApplication::postEvent(&sink, new SeqEvent(h.seq, h.ts));
            }
        });
        w.go();
        err = runQt(loop, [&] { return got == (uint64_t)count || failed.load(); }, &w,
                    (double)opt.timeoutS);
    } else {
        ok = false;
    }
    stop = true;
    if (reader.joinable())
        reader.join();
    QCoreApplication::removePostedEvents(&sink);
    if (err.empty())
        err = readErr;
    err = zmqRunError(w, ok, err, pull);
    if (err.empty() && got != (uint64_t)count)
        err = strf("%llu of %ld messages arrived", (unsigned long long)got, count);
    if (!err.empty()) {
        progress("  %s: FAIL: %s", name, err.c_str());
        return false;
    }
    v["zmq_lat_p50"] = percentile(lat, 0.50) / 1000.0;
    v["zmq_lat_p99"] = percentile(lat, 0.99) / 1000.0;
    return true;
}

#endif /* MPR_BENCH_ZMQ */

} // namespace bench
