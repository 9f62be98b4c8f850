/*
 * baselines.cpp - what the machine and Qt can do without mprouter:
 *   (a) one write() per message on AF_UNIX stream sockets from forked
 *       processes, read by one thread; bulk bandwidth with 64 MiB buffers;
 *   (b) one QCoreApplication::postEvent per message from a thread;
 *   (c) idle latency: process -> socket -> thread in poll() -> postEvent
 *       -> main-thread QObject;
 *   (d) one-hop floor: the main thread watches the socket (QSocketNotifier).
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

#include <atomic>
#include <thread>

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
bool rawBulk(Values &v)
{
    const size_t big = (size_t)opt.bigMiB << 20;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        progress("  raw_bulk: socketpair: %s", strerror(errno));
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
    static bool told = false;
    if (!told) {
        int got = 0;
        socklen_t len = sizeof got;
        getsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &got, &len);
        progress("  raw_bulk: send buffer %d KiB (asked for %d KiB)", got / 1024, bufsz / 1024);
        told = true;
    }
    Workers w;
    bool ok = w.start(
        1, [&](int) { close(sv[0]); return 0; },
        [&](int) {
            std::vector<char> buf(big);
            StreamEnd end(std::max(2L, opt.bigCount), opt.duration, 2, true);
            for (long m = 0;; m++) {
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
    int64_t t0 = 0, t1 = 0;
    uint64_t bulkBytes = 0;
    if (ok && w.waitReady((double)opt.timeoutS)) {
        std::thread reader([&] {
            std::vector<char> buf(big);
            uint64_t &at = bulkBytes;
            int64_t deadline = nowNs() + opt.timeoutS * 1000000000ll;
            for (;;) {
                ssize_t n = read(sv[0], buf.data(), buf.size());
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
                    memcpy(&word, buf.data() + (o - at), 8);
                    if (word != o) {
                        err = strf("wrong content at stream offset %llu", (unsigned long long)o);
                        return;
                    }
                }
                at += (uint64_t)n;
                if (nowNs() > deadline) {
                    err = "timed out";
                    return;
                }
            }
            t1 = nowNs();
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
        progress("  raw_bulk: FAIL: %s", err.c_str());
        return false;
    }
    v["raw_bulk"] = (double)bulkBytes / ((double)(t1 - t0) / 1e9) / 1048576.0;
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

/* A child that writes one 32-byte timestamped message to fd every period. */
int tickerChild(int fd, long count)
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
        if (writeAll(fd, buf, sizeof buf) < 0)
            return 1;
    }
    close(fd);
    return 0;
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

} // namespace bench
