/*
 * mprouter.cpp - mprouter end to end: forked sender processes -> receiver
 * callbacks (or mpr::Receiver signals) on the main thread, under
 *   fd  - the fd loop, driven by a plain poll() loop on the main thread;
 *   qt  - the Qt event loop (mpr_qt_event_loop), C receiver callbacks;
 *   sig - mpr::Router / mpr::Receiver::messageReceived (QByteArray);
 *   remote - as qt, but the router also listens on tcp://127.0.0.1 (port 0)
 *         and the workers set MPR_TRANSPORT=zmq before mpr_sender_start,
 *         so every message goes over ZeroMQ with CURVE.
 */
#include "bench.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QEventLoop>
#include <QtCore/QObject>
#include <QtCore/QTimer>

#include <mprouter/mprouter.h>
#include <mprouter/qt.h>
#include <mprouter_qt.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

namespace bench {

const char *modeName(Mode m)
{
    switch (m) {
    case Mode::Fd:
        return "fd";
    case Mode::Qt:
        return "qt";
    case Mode::Sig:
        return "sig";
    case Mode::Remote:
        return "remote";
    }
    return "?";
}

namespace {

enum class Kind { Fixed, Big, Latency, Spin };

struct Harness;

struct Pipe {
    Harness *h;
    uint32_t idx;
    uint64_t next;
    bool ended; /* its last message arrived */
};

/* A router with n pipes under one mode, and the receiving side's checks. */
struct Harness {
    Mode mode;
    Kind kind = Kind::Fixed;
    size_t size = 32;
    size_t queueLimit = 0; /* for runOnePerPipe's router; 0: none */
    const char *transport = nullptr; /* MPR_TRANSPORT of the workers (Remote: zmq) */
    int64_t spinNs = 0;
    long warmup = 0;
    uint64_t expected = 0; /* if > 0: the total, checked at the end */
    uint64_t received = 0;
    size_t pipesEnded = 0;
    bool done = false;
    std::string error;
    int64_t tFirst = 0, tDone = 0;
    int64_t cpuDone = 0; /* this process's CPU time at tDone */
    std::vector<int64_t> lat;

    mpr_fd_loop *fdl = nullptr;
    mpr_router *router = nullptr; /* fd, qt; for sig: the mpr::Router's handle */
    mpr::Router *qrouter = nullptr;
    std::vector<Pipe> pipes;
    std::vector<mpr_sender *> senders;
    std::vector<mpr_receiver *> receivers;
    std::vector<mpr::Receiver *> qreceivers;
    QEventLoop *qloop = nullptr;

    explicit Harness(Mode m) : mode(m), transport(m == Mode::Remote ? "zmq" : nullptr) {}
    ~Harness() { teardown(); }

    void fail(const std::string &e)
    {
        if (error.empty())
            error = e;
        finish();
    }
    void finish()
    {
        done = true;
        if (!tDone) {
            tDone = nowNs();
            cpuDone = cpuNs(RUSAGE_SELF);
        }
        if (qloop)
            qloop->quit();
    }

    void onMessage(Pipe *p, const char *data, size_t size)
    {
        if (done)
            return;
        if (!tFirst)
            tFirst = nowNs();
        if (p->ended)
            return fail(strf("sender %u: message after its last one", p->idx));
        bool last = false;
        if (kind == Kind::Big) {
            std::string e =
                checkFixed(data, std::min(size, (size_t)32), 32, p->idx, p->next, &last);
            if (e.empty() && size != this->size)
                e = strf("large message %llu has %zu bytes, want %zu",
                         (unsigned long long)p->next, size, this->size);
            if (e.empty())
                e = checkBig(data, size, p->next, 32);
            if (!e.empty())
                return fail(e);
        } else {
            std::string e = checkFixed(data, size, this->size, p->idx, p->next, &last);
            if (!e.empty())
                return fail(e);
            if (kind == Kind::Latency && p->next >= (uint64_t)warmup) {
                Header hd;
                memcpy(&hd, data, sizeof hd);
                lat.push_back(nowNs() - hd.ts);
            } else if (kind == Kind::Spin) {
                int64_t end = nowNs() + spinNs;
                while (nowNs() < end) {
                }
            }
        }
        p->next++;
        received++;
        if (last) {
            p->ended = true;
            if (++pipesEnded == pipes.size())
                finish();
        }
    }

    static void cCallback(void *arg, const void *data, size_t size)
    {
        Pipe *p = static_cast<Pipe *>(arg);
        p->h->onMessage(p, static_cast<const char *>(data), size);
    }

    /* Make the router (queue limit if > 0), start it, make n pipes. */
    bool setup(int n, size_t queueLimit = 0)
    {
        int rc = 0;
        if (mode == Mode::Fd) {
            rc = mpr_fd_loop_new(&fdl);
            if (rc == 0)
                rc = mpr_router_new(&router, mpr_fd_loop_event_loop(fdl));
        } else if (mode == Mode::Qt || mode == Mode::Remote) {
            rc = mpr_router_new(&router, mpr_qt_event_loop());
            /* loopback only: the benchmark sends nothing off this host */
            if (rc == 0 && mode == Mode::Remote)
                rc = mpr_router_set_remote(router, "tcp://127.0.0.1:0", NULL);
        } else {
            qrouter = new mpr::Router;
            router = qrouter->handle();
        }
        if (rc == 0 && queueLimit)
            rc = mpr_router_set_queue_limit(router, queueLimit);
        if (rc == 0)
            rc = qrouter ? qrouter->start() : mpr_router_start(router);
        if (rc < 0) {
            error = strf("router start: %s", mpr_strerror(rc));
            return false;
        }
        pipes.resize((size_t)n);
        senders.assign((size_t)n, nullptr);
        for (int i = 0; i < n; i++) {
            pipes[i] = {this, (uint32_t)i, 0, false};
            if (qrouter) {
                mpr::Receiver *r = nullptr;
                rc = qrouter->pipe(&senders[i], &r);
                if (rc == 0) {
                    Pipe *p = &pipes[i];
                    QObject::connect(r, &mpr::Receiver::messageReceived, [p](const QByteArray &m) {
                        p->h->onMessage(p, m.constData(), (size_t)m.size());
                    });
                    qreceivers.push_back(r);
                }
            } else {
                mpr_receiver *r = nullptr;
                rc = mpr_router_pipe(router, &senders[i], &r);
                if (rc == 0) {
                    mpr_receiver_set_callback(r, cCallback, &pipes[i]);
                    receivers.push_back(r);
                }
            }
            if (rc < 0) {
                error = strf("pipe %d: %s", i, mpr_strerror(rc));
                return false;
            }
        }
        return true;
    }

    /* The parent's copies of the senders, once the workers are forked. */
    void freeSenders()
    {
        for (auto &s : senders) {
            mpr_sender_free(s);
            s = nullptr;
        }
    }

    void teardown()
    {
        freeSenders();
        if (qrouter) {
            for (auto *r : qreceivers)
                qrouter->closePipe(r);
            qreceivers.clear();
            if (qrouter->isRunning())
                qrouter->stop();
            delete qrouter;
            qrouter = nullptr;
            router = nullptr;
        }
        if (router) {
            for (auto *r : receivers)
                mpr_router_close_pipe(router, r);
            receivers.clear();
            mpr_router_free(router);
            router = nullptr;
        }
        if (fdl) {
            mpr_fd_loop_free(fdl);
            fdl = nullptr;
        }
    }

    /* Drive the loop until every expected message arrived, a worker
     * failed, or the timeout. tick (optional) runs on a QTimer meanwhile. */
    bool run(Workers &w, double timeoutS)
    {
        int64_t deadline = nowNs() + (int64_t)(timeoutS * 1e9);
        if (pipes.empty())
            finish();
        if (mode == Mode::Fd) {
            struct pollfd p = {mpr_fd_loop_fd(fdl), POLLIN, 0};
            int checkEvery = 0;
            while (!done) {
                if (poll(&p, 1, 100) > 0)
                    mpr_fd_loop_dispatch(fdl);
                if (done)
                    break;
                /* cheap checks only now and then on the hot path */
                if (++checkEvery >= 64 || !(p.revents & POLLIN)) {
                    checkEvery = 0;
                    if (!w.check())
                        fail(w.error());
                    else if (nowNs() > deadline)
                        fail(strf("timed out after %.0f s: %llu messages, %zu of %zu streams ended",
                                  timeoutS, (unsigned long long)received, pipesEnded,
                                  pipes.size()));
                }
            }
        } else {
            QEventLoop loop;
            qloop = &loop;
            QTimer watchdog;
            watchdog.setInterval(100);
            QObject::connect(&watchdog, &QTimer::timeout, [&] {
                if (!w.check())
                    fail(w.error());
                else if (nowNs() > deadline)
                    fail(strf("timed out after %.0f s: %llu messages, %zu of %zu streams ended",
                              timeoutS, (unsigned long long)received, pipesEnded, pipes.size()));
            });
            watchdog.start();
            if (!done)
                loop.exec();
            qloop = nullptr;
        }
        if (error.empty() && expected && received != expected)
            error = strf("%llu of %llu messages arrived", (unsigned long long)received,
                         (unsigned long long)expected);
        return error.empty();
    }
};

/* The sending loop of one fixed-size stream (in a worker): up to count
 * messages, or for duration seconds (0: the count). */
int sendFixed(mpr_sender *s, uint32_t idx, size_t size, long count, double duration)
{
    std::vector<char> buf(size, 'm');
    StreamEnd end(count, duration);
    for (long i = 0;; i++) {
        bool last = end.isLast(i);
        fillFixed(buf.data(), size, idx, (uint64_t)i, 0, last);
        int rc = mpr_sender_send(s, buf.data(), size);
        if (rc != 0) {
            fprintf(stderr, "mpr_bench: sender %u: message %ld: %s\n", idx, i, mpr_strerror(rc));
            return 1;
        }
        if (last)
            break;
    }
    int rc = mpr_sender_stop(s);
    if (rc != 0)
        fprintf(stderr, "mpr_bench: sender %u: stop: %s\n", idx, mpr_strerror(rc));
    return rc == 0 ? 0 : 1;
}

/* Report a failure of a measurement named fig; always false. */
bool failed(const std::string &fig, const std::string &why)
{
    progress("  %s: FAIL: %s", fig.c_str(), why.c_str());
    return false;
}

/* In a worker: start sender i (over h.transport if set: ZeroMQ in Remote
 * mode, where MPR_TRANSPORT=zmq makes start fail rather than fall back to
 * the ring). 0 or 1, for Workers. */
int startSender(Harness &h, int i)
{
    if (h.transport)
        setenv("MPR_TRANSPORT", h.transport, 1);
    int rc = mpr_sender_start(h.senders[i]);
    if (rc != 0)
        fprintf(stderr, "mpr_bench: worker %d: mpr_sender_start: %s\n", i, mpr_strerror(rc));
    return rc == 0 ? 0 : 1;
}

/* The common shape: n pipes, one worker per pipe doing body(i) (after
 * prepare(i), if given, once its sender started); wait for all messages.
 * Returns the time from go to the last message (ns) or -1. */
int64_t runOnePerPipe(Harness &h, const std::string &fig, int n,
                      const std::function<int(int)> &body, double timeoutS,
                      const std::function<void()> &beforeGo = nullptr,
                      const std::function<int(int)> &prepare = nullptr)
{
    if (!h.setup(n, h.queueLimit)) {
        failed(fig, h.error);
        return -1;
    }
    Workers w;
    bool ok = w.start(
        n, [&](int i) { return startSender(h, i) != 0 ? 1 : prepare ? prepare(i) : 0; }, body);
    h.freeSenders();
    if (!ok || !w.waitReady(timeoutS)) {
        failed(fig, w.error());
        return -1;
    }
    if (beforeGo)
        beforeGo();
    int64_t t0 = w.go();
    bool good = h.run(w, timeoutS);
    if (!w.finish(10) && good) {
        good = false;
        h.error = w.error();
    }
    if (!good) {
        failed(fig, h.error);
        return -1;
    }
    return h.tDone - t0;
}

} // namespace

/* ------------------------------------------------------------------ */

/* Where the CPU went, per message: the sender processes over their whole
 * life (fork to exit, from RUSAGE_CHILDREN once they are reaped) and this
 * process (monitor thread, main thread, event loop) from go to the last
 * message. Two cores give 2e9 ns of CPU a second, so a rate R needs
 * cpu_send + cpu_router <= 2e9 / R. */
namespace {
struct CpuMeter {
    int64_t children0 = cpuNs(RUSAGE_CHILDREN);
    int64_t self0 = 0;
    void go() { self0 = cpuNs(RUSAGE_SELF); }
    /* After runOnePerPipe, which reaped the senders. */
    void put(Values &v, const std::string &fig, const Harness &h) const
    {
        if (!h.received)
            return;
        v[fig + "_cpu_send"] = (double)(cpuNs(RUSAGE_CHILDREN) - children0) / (double)h.received;
        v[fig + "_cpu_router"] = (double)(h.cpuDone - self0) / (double)h.received;
    }
};
} // namespace

bool mprRate(Values &v, Mode m, const char *what, int nsenders, size_t size, long per)
{
    std::string fig = strf("%s_%s", modeName(m), what);
    Harness h(m);
    h.size = size;
    CpuMeter cpu;
    int64_t ns = runOnePerPipe(
        h, fig, nsenders,
        [&](int i) { return sendFixed(h.senders[i], (uint32_t)i, size, per, opt.duration); },
        (double)opt.timeoutS, [&] { cpu.go(); });
    if (ns < 0)
        return false;
    v[fig] = (double)h.received / ((double)ns / 1e9);
    cpu.put(v, fig, h);
    return true;
}

bool mprBig(Values &v, Mode m, const BigSpec &b, const char *transport)
{
    const std::string &fig = b.fig;
    Harness h(m);
    h.kind = Kind::Big;
    h.size = b.size;
    if (transport)
        h.transport = transport;
    CpuMeter cpu;
    std::vector<char> buf; /* the worker's (made before go) */
    int64_t ns = runOnePerPipe(
        h, fig, 1,
        [&](int) {
            StreamEnd end(std::max(2L, b.count), b.duration, 2, true);
            for (long i = 0;; i++) {
                bool last = end.isLast(i);
                if (i > 0)
                    fillBig(buf.data(), h.size, (uint64_t)i);
                fillFixed(buf.data(), 32, 0, (uint64_t)i, 0, last);
                if (mpr_sender_send(h.senders[0], buf.data(), h.size) != 0)
                    return 1;
                if (last)
                    break;
            }
            return mpr_sender_stop(h.senders[0]) == 0 ? 0 : 1;
        },
        (double)opt.timeoutS, [&] { cpu.go(); },
        [&](int) {
            buf.resize(h.size);
            fillBig(buf.data(), h.size, 0);
            return 0;
        });
    if (ns < 0)
        return false;
    v[fig] = (double)h.size * (double)h.received / ((double)ns / 1e9) / 1048576.0;
    v[fig + "_first"] = (double)(ns - (h.tDone - h.tFirst)) / 1e6;
    v[fig + "_cpu_router"] = (double)(h.cpuDone - cpu.self0) / 1e6 / (double)h.received;
    return true;
}

bool mprLatency(Values &v, Mode m)
{
    std::string fig = strf("%s_lat", modeName(m));
    const long warmup = 10;
    const long count = opt.latSamples + warmup;
    Harness h(m);
    h.kind = Kind::Latency;
    h.warmup = warmup;
    h.expected = (uint64_t)count;
    h.lat.reserve((size_t)count);
    int64_t ns = runOnePerPipe(
        h, fig, 1,
        [&](int) {
            char buf[32];
            int64_t period = opt.latPeriodUs * 1000;
            int64_t next = nowNs();
            for (long s = 0; s < count; s++) {
                next += period;
                struct timespec ts = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
                }
                fillFixed(buf, sizeof buf, 0, (uint64_t)s, nowNs(), s == count - 1);
                if (mpr_sender_send(h.senders[0], buf, sizeof buf) != 0)
                    return 1;
            }
            return mpr_sender_stop(h.senders[0]) == 0 ? 0 : 1;
        },
        (double)opt.timeoutS);
    if (ns < 0)
        return false;
    v[fig + "_p50"] = percentile(h.lat, 0.50) / 1000.0;
    v[fig + "_p99"] = percentile(h.lat, 0.99) / 1000.0;
    return true;
}

/* 4 senders at full speed while a 16 ms QTimer runs on the main thread;
 * with backpressure, the router's queue is limited (--mem-limit-mib), so
 * senders wait instead of competing with the main thread for the CPU. */
bool mprFlood(Values &v, Mode m, bool backpressure)
{
    std::string fig = strf("%s_flood%s", modeName(m), backpressure ? "_bp" : "");
    Harness h(m);
    h.size = 32;
    const long per = opt.floodMsgs;
    std::vector<int64_t> ticks;
    ticks.reserve(4096);
    QTimer timer;
    timer.setTimerType(Qt::PreciseTimer);
    timer.setInterval(16);
    QObject::connect(&timer, &QTimer::timeout, [&] { ticks.push_back(nowNs()); });
    if (backpressure)
        h.queueLimit = (size_t)opt.memLimitMiB << 20;
    int64_t ns = runOnePerPipe(
        h, fig, 4,
        [&](int i) { return sendFixed(h.senders[i], (uint32_t)i, 32, per, opt.floodDuration); },
        (double)opt.timeoutS,
        [&] {
            timer.start();
            ticks.push_back(nowNs());
        });
    timer.stop();
    if (ns < 0)
        return false;
    /* The largest gap between ticks while messages were arriving; the
     * open interval after the last tick counts too. */
    int64_t gap = 0;
    for (size_t i = 1; i < ticks.size(); i++)
        if (ticks[i] > h.tFirst && ticks[i - 1] < h.tDone)
            gap = std::max(gap, ticks[i] - ticks[i - 1]);
    if (!ticks.empty() && ticks.back() < h.tDone)
        gap = std::max(gap, h.tDone - ticks.back());
    v[fig + "_gap"] = (double)gap / 1e6;
    v[fig + "_rate"] = (double)h.received / ((double)ns / 1e9);
    return true;
}

/* ------------------------------------------------------------------ */
/* memory under a flood                                                 */

namespace {

long pageSize()
{
    static long p = sysconf(_SC_PAGESIZE);
    return p;
}

/* Resident bytes now (statm: cheap enough to sample every few ms). */
int64_t rssNow()
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    long size = 0, res = 0;
    if (sscanf(buf, "%ld %ld", &size, &res) != 2)
        return -1;
    return (int64_t)res * pageSize();
}

/* A "VmXXX:   1234 kB" line of /proc/self/status, in bytes; -1 if absent. */
int64_t statusField(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    int64_t val = -1;
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            val = (int64_t)strtoll(line + len + 1, nullptr, 10) * 1024;
            break;
        }
    fclose(f);
    return val;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0); false if not possible. */
bool resetHwm()
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

} // namespace

bool mprMemory(Values &v)
{
    const std::string fig = "mem_flood";
    Harness h(Mode::Qt);
    h.kind = Kind::Spin;
    h.size = 32;
    h.spinNs = opt.memSpinUs * 1000;
    const long per = opt.memMsgs;
    h.expected = 4 * (uint64_t)per;
    if (!h.setup(4, (size_t)opt.memLimitMiB << 20))
        return failed(fig, h.error);
    Workers w;
    bool ok = w.start(
        4, [&](int i) { return mpr_sender_start(h.senders[i]) == 0 ? 0 : 1; },
        [&](int i) { return sendFixed(h.senders[i], (uint32_t)i, 32, per, 0); });
    h.freeSenders();
    if (!ok || !w.waitReady((double)opt.timeoutS))
        return failed(fig, w.error());

    malloc_trim(0); /* what earlier measurements freed is not our growth */
    bool hwm = resetHwm();
    int64_t start = rssNow();
    std::atomic<bool> stop(false);
    std::atomic<int64_t> peak(start);
    std::thread sampler([&] {
        while (!stop.load()) {
            int64_t r = rssNow();
            if (r > peak.load())
                peak = r;
            usleep(2000);
        }
    });
    /* every message costs spin; allow three times that plus the usual */
    double timeout = (double)opt.timeoutS + 3.0 * (double)h.expected * (double)h.spinNs / 1e9;
    int64_t t0 = w.go();
    bool good = h.run(w, timeout);
    stop = true;
    sampler.join();
    int64_t top = peak.load();
    if (hwm)
        top = std::max(top, statusField("VmHWM"));
    if (!w.finish(10) && good) {
        good = false;
        h.error = w.error();
    }
    if (!good)
        return failed(fig, h.error);
    mpr_router_stats st;
    mpr_router_get_stats(h.router, &st);
    if (st.messages_routed != h.expected)
        return failed(fig, strf("router routed %llu of %llu", (unsigned long long)st.messages_routed,
                                (unsigned long long)h.expected));
    v["mem_flood_rss"] = (double)(top - start) / 1048576.0;
    v["mem_flood_rate"] = (double)h.expected / ((double)(h.tDone - t0) / 1e9);
    return true;
}

/* ------------------------------------------------------------------ */
/* scale                                                                */

/* opt.pipes pipes open at once, one message each, held by opt.pipeProcs
 * processes that start all their senders before any sends. */
bool scalePipes(Values &v)
{
    const std::string fig = "scale_pipes";
    const int n = (int)opt.pipes;
    const int nprocs = (int)std::max(1L, std::min(opt.pipeProcs, opt.pipes));
    Harness h(Mode::Qt);
    h.expected = (uint64_t)n;
    int64_t tSetup = nowNs();
    if (!h.setup(n))
        return failed(fig, h.error);
    auto first = [&](int k) { return (int)((int64_t)n * k / nprocs); };
    Workers w;
    int64_t tFork = nowNs();
    bool ok = w.start(
        nprocs,
        [&](int k) {
            for (int i = first(k); i < first(k + 1); i++) {
                int rc = mpr_sender_start(h.senders[i]);
                if (rc != 0) {
                    fprintf(stderr, "scale_pipes: sender %d: start: %s\n", i, mpr_strerror(rc));
                    return 1;
                }
            }
            return 0;
        },
        [&](int k) {
            char buf[32];
            for (int i = first(k); i < first(k + 1); i++) {
                fillFixed(buf, sizeof buf, (uint32_t)i, 0, 0, true);
                if (mpr_sender_send(h.senders[i], buf, sizeof buf) != 0)
                    return 1;
            }
            for (int i = first(k); i < first(k + 1); i++)
                if (mpr_sender_stop(h.senders[i]) != 0)
                    return 1;
            return 0;
        });
    h.freeSenders();
    if (!ok || !w.waitReady((double)opt.timeoutS))
        return failed(fig, w.error());
    int64_t t0 = w.go();
    bool good = h.run(w, (double)opt.timeoutS);
    if (!w.finish(30) && good) {
        good = false;
        h.error = w.error();
    }
    if (!good)
        return failed(fig, h.error);
    mpr_router_stats st;
    mpr_router_get_stats(h.router, &st);
    if (st.connections_accepted < (uint64_t)n)
        return failed(fig, strf("only %llu of %d connections accepted",
                                (unsigned long long)st.connections_accepted, n));
    v["scale_pipes_setup"] = (double)(tFork - tSetup) / 1e6;
    v["scale_pipes_connect"] = (double)(t0 - tFork) / 1e6;
    v["scale_pipes_deliver"] = (double)(h.tDone - t0) / 1e6;
    return true;
}

/* opt.procs sender processes at once, opt.procMsgs 32-byte messages each. */
bool scaleProcs(Values &v)
{
    Harness h(Mode::Qt);
    const int n = (int)opt.procs;
    const long per = opt.procMsgs;
    h.expected = (uint64_t)n * (uint64_t)per;
    CpuMeter cpu;
    int64_t ns = runOnePerPipe(
        h, "scale_procs", n,
        [&](int i) { return sendFixed(h.senders[i], (uint32_t)i, 32, per, 0); },
        (double)opt.timeoutS, [&] { cpu.go(); });
    if (ns < 0)
        return false;
    v["scale_procs_rate"] = (double)h.expected / ((double)ns / 1e9);
    cpu.put(v, "scale_procs", h);
    return true;
}

} // namespace bench
