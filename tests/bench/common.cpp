/*
 * common.cpp - clock, message format, worker processes, helpers.
 */
#include "bench.h"
#include "../common/quiet.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace bench {

Options opt;

void Options::applyQuick()
{
    quick = true;
    runs = 1;
    duration = 0.1;
    floodDuration = 0.2;
    msgs1 = 20000;
    msgs4 = 10000;
    msgs4k = 1000;
    bigMiB = 4;
    bigCount = 4;
    hugeMiB = 8;
    hugeCount = 2;
    latSamples = 40;
    floodMsgs = 20000;
    memMsgs = 20000;
    memLimitMiB = 1;
    pipes = 1000;
    pipeProcs = 4;
    procs = 64;
    procMsgs = 200;
    timeoutS = 60;
    execWindow = 200;
    execJobs = 20000;
    execCancelSamples = 5;
}

BigSpec bigSpec(const char *fig)
{
    return {fig, (size_t)opt.bigMiB << 20, opt.bigCount, opt.duration};
}

BigSpec hugeSpec(const char *fig)
{
    return {fig, (size_t)opt.hugeMiB << 20, opt.hugeCount, 0.0};
}

int64_t nowNs()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cpuNs(int who)
{
    struct rusage ru;
    if (getrusage(who, &ru) < 0)
        return 0;
    auto ns = [](const struct timeval &t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_usec * 1000; };
    return ns(ru.ru_utime) + ns(ru.ru_stime);
}

std::string strf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

StreamEnd::StreamEnd(long c, double duration, long m, bool e)
    : cap(c), endNs(duration > 0 ? nowNs() + (int64_t)(duration * 1e9) : 0), minCount(m), every1(e)
{
}

bool StreamEnd::isLast(long i) const
{
    if (i + 1 >= cap)
        return true;
    if (!endNs || i + 1 < minCount || (!every1 && (i & 255) != 255))
        return false;
    return nowNs() >= endNs;
}

void fillFixed(char *buf, size_t size, uint32_t idx, uint64_t seq, int64_t ts, bool last)
{
    Header h = {idx, last ? MAGIC_LAST : MAGIC, seq, ts, seq * CHECK_MUL};
    memcpy(buf, &h, sizeof h);
    if (size >= 64) {
        uint64_t tail = ~seq;
        memcpy(buf + size - 8, &tail, 8);
    }
}

std::string checkFixed(const char *buf, size_t size, size_t want, uint32_t idx, uint64_t seq,
                       bool *last)
{
    if (size != want)
        return strf("sender %u: message %llu has %zu bytes, want %zu", idx,
                    (unsigned long long)seq, size, want);
    Header h;
    memcpy(&h, buf, sizeof h);
    if ((h.magic != MAGIC && h.magic != MAGIC_LAST) || h.idx != idx)
        return strf("sender %u: message %llu: bad header (idx %u)", idx, (unsigned long long)seq,
                    h.idx);
    if (h.seq != seq)
        return strf("sender %u: got message %llu, expected %llu (lost or out of order)", idx,
                    (unsigned long long)h.seq, (unsigned long long)seq);
    uint64_t tail = ~seq;
    if (h.check != seq * CHECK_MUL || (size >= 64 && memcmp(buf + size - 8, &tail, 8) != 0))
        return strf("sender %u: message %llu: corrupt content", idx, (unsigned long long)seq);
    *last = h.magic == MAGIC_LAST;
    return std::string();
}

void fillBig(char *buf, size_t size, uint64_t m)
{
    for (size_t o = 0; o + 8 <= size; o += 4096) {
        uint64_t w = m * size + o;
        memcpy(buf + o, &w, 8);
    }
}

std::string checkBig(const char *buf, size_t size, uint64_t m, size_t skipFirst)
{
    for (size_t o = 0; o + 8 <= size; o += 4096) {
        if (o < skipFirst)
            continue;
        uint64_t w;
        memcpy(&w, buf + o, 8);
        if (w != m * size + o)
            return strf("large message %llu: wrong content at offset %zu", (unsigned long long)m, o);
    }
    return std::string();
}

int writeAll(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, buf, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

double percentile(std::vector<int64_t> &v, double q)
{
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    size_t i = (size_t)(q * (double)(v.size() - 1) + 0.5);
    return (double)v[std::min(i, v.size() - 1)];
}

/* ------------------------------------------------------------------ */

Workers::~Workers()
{
    for (size_t i = 0; i < pids.size(); i++)
        if (!reaped[i])
            kill(pids[i], SIGKILL);
    for (size_t i = 0; i < pids.size(); i++)
        if (!reaped[i])
            waitpid(pids[i], NULL, 0);
    if (readyFd >= 0)
        close(readyFd);
    if (goFd >= 0)
        close(goFd);
}

bool Workers::start(int n, const std::function<int(int)> &prepare,
                    const std::function<int(int)> &run)
{
    /* forked: every worker is forked before any prepares (connects). A
     * child forked while another thread here is inside malloc inherits
     * that lock held, and GCC 12's ASan allocator has no fork handler;
     * the router's ZeroMQ I/O thread allocates for each connection. */
    int ready[2], gop[2], forked[2];
    if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(gop, O_CLOEXEC) < 0 || pipe2(forked, O_CLOEXEC) < 0) {
        err = strf("pipe: %s", strerror(errno));
        return false;
    }
    readyFd = ready[0];
    goFd = gop[1];
    fflush(stdout);
    fflush(stderr);
    mprtest::waitForQuietThreads(); /* (ASan) and the children wait: the forks stay quiet */
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            err = strf("fork (worker %d of %d): %s", i, n, strerror(errno));
            close(ready[1]);
            close(gop[0]);
            close(forked[0]);
            close(forked[1]);
            return false;
        }
        if (pid == 0) {
            close(ready[0]);
            close(gop[1]);
            close(forked[1]);
            char f;
            while (read(forked[0], &f, 1) < 0 && errno == EINTR) {
            }
            close(forked[0]);
            int rc = prepare ? prepare(i) : 0;
            if (rc != 0)
                _exit(10);
            char c = 'r';
            if (write(ready[1], &c, 1) != 1)
                _exit(12);
            close(ready[1]);
            while (read(gop[0], &c, 1) < 0 && errno == EINTR) {
            }
            close(gop[0]);
            rc = run ? run(i) : 0;
            _exit(rc != 0 ? 11 : 0);
        }
        pids.push_back(pid);
        reaped.push_back(0);
    }
    close(forked[0]);
    close(forked[1]); /* end of file: they may prepare */
    close(ready[1]);
    close(gop[0]);
    return true;
}

void Workers::reapOne(size_t i, int status)
{
    reaped[i] = 1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return;
    if (err.empty()) {
        if (WIFEXITED(status))
            err = strf("worker %zu (pid %d) failed: exit status %d (%s)", i, (int)pids[i],
                       WEXITSTATUS(status),
                       WEXITSTATUS(status) == 10 ? "could not start" : "could not send");
        else
            err = strf("worker %zu (pid %d) killed by signal %d", i, (int)pids[i],
                       WTERMSIG(status));
    }
}

bool Workers::check()
{
    for (size_t i = 0; i < pids.size(); i++) {
        if (reaped[i])
            continue;
        int status;
        if (waitpid(pids[i], &status, WNOHANG) == pids[i])
            reapOne(i, status);
    }
    return err.empty();
}

bool Workers::waitReady(double timeoutS)
{
    int64_t deadline = nowNs() + (int64_t)(timeoutS * 1e9);
    char buf[256];
    while (nready < (int)pids.size()) {
        struct pollfd p = {readyFd, POLLIN, 0};
        int k = poll(&p, 1, 100);
        if (k > 0) {
            ssize_t got = read(readyFd, buf, sizeof buf);
            if (got > 0)
                nready += (int)got;
            else if (got == 0)
                break; /* every child closed its end: some died */
        }
        if (!check())
            return false;
        if (nowNs() > deadline) {
            err = strf("only %d of %zu workers ready after %.0f s", nready, pids.size(), timeoutS);
            return false;
        }
    }
    if (nready < (int)pids.size()) {
        usleep(10000);
        check();
        if (err.empty())
            err = strf("only %d of %zu workers got ready", nready, pids.size());
        return false;
    }
    return true;
}

int64_t Workers::go()
{
    int64_t t = nowNs();
    close(goFd); /* every child's read() returns 0 */
    goFd = -1;
    return t;
}

bool Workers::finish(double timeoutS)
{
    int64_t deadline = nowNs() + (int64_t)(timeoutS * 1e9);
    for (;;) {
        check();
        bool all = std::all_of(reaped.begin(), reaped.end(), [](char r) { return r != 0; });
        if (all)
            break;
        if (nowNs() > deadline) {
            if (err.empty())
                err = "workers did not exit in time";
            break;
        }
        usleep(2000);
    }
    return err.empty();
}

} // namespace bench
