/*
 * mpr_bench - mprouter against the machine's limits (issue 5).
 *
 *   mpr_bench                  full benchmark, medians of 5 runs
 *   mpr_bench --runs 3         medians of 3 runs
 *   mpr_bench --quick          a few seconds: correctness only (make check)
 *   mpr_bench --only qt_4x32,raw_4x32,qt_post
 *   mpr_bench --list           measurement names
 *   mpr_bench --exec-worker    (internal) a worker process of the executor figures
 *   mpr_bench --help           every option
 *
 * Every measurement checks that every message arrived, whole and in order;
 * a measurement that fails counts as a failed test in the last line
 * ("Totals: N passed, M failed, ..."), which is what `make check` reads.
 * Speed is reported, never asserted.
 */
#include "bench.h"

#include <QtCore/QCoreApplication>

#include <mprouter/mprouter.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <algorithm>

using namespace bench;

/* ThreadSanitizer cannot see the lock of Qt's (uninstrumented) posted-event
 * queue, so baselines (b), (c) and zmq_lat, which post QEvents from a thread of ours,
 * draw false data-race reports there; TSan builds skip them. */
#if defined(__SANITIZE_THREAD__)
#define MPR_BENCH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MPR_BENCH_TSAN 1
#endif
#endif

namespace {

/* Why a measurement cannot run under ThreadSanitizer, or NULL. */
const char *underTsan(const std::string &name)
{
#ifdef MPR_BENCH_TSAN
    if (name == "qt_post" || name == "lat_raw" || name == "zmq_lat")
        return "Qt's posted-event queue is not instrumented";
    if (name.compare(0, 4, "zmq_") == 0 || name.compare(0, 7, "remote_") == 0)
        return "its forked senders start threads (ZeroMQ's, the remote sender's), which TSan "
               "cannot follow in a child of a multi-threaded process";
    return nullptr;
#else
    (void)name;
    return nullptr;
#endif
}

struct Measurement {
    std::string name;
    const char *what;
    std::function<bool(Values &)> fn;
    bool heavy; /* run in the first opt.memRuns runs only */
};

std::vector<Measurement> measurements()
{
    std::vector<Measurement> m = {
        {"raw_1x32", "(a) 1 process, one write() per 32 B message, read by one thread",
         [](Values &v) { return rawRate(v, "raw_1x32", 1, 32, opt.msgs1); }, false},
        {"raw_4x32", "(a) 4 processes, one write() per 32 B message",
         [](Values &v) { return rawRate(v, "raw_4x32", 4, 32, opt.msgs4); }, false},
        {"raw_4x4k", "(a) 4 processes, one write() per 4 KiB message",
         [](Values &v) { return rawRate(v, "raw_4x4k", 4, 4096, opt.msgs4k); }, false},
        {"raw_bulk", "(a) bulk: one socket, 64 MiB buffers and writes",
         [](Values &v) { return rawBulk(v, bigSpec("raw_bulk")); }, false},
        {"raw_bulk_1g", "(a) bulk: one socket, 1 GiB buffers and writes",
         [](Values &v) { return rawBulk(v, hugeSpec("raw_bulk_1g")); }, false},
        {"qt_post", "(b) QCoreApplication::postEvent per message, thread -> main", qtPost, false},
        {"lat_raw", "(c) process -> socket -> poll() thread -> postEvent -> main", latRaw, false},
        {"lat_notifier", "(d) process -> socket -> QSocketNotifier on main", latNotifier, false},
#ifdef MPR_BENCH_ZMQ
        {"zmq_4x32", "(e) ZeroMQ+CURVE, tcp loopback: 4 processes, one zmq_send per 32 B",
         [](Values &v) { return zmqRate(v, "zmq_4x32", true); }, false},
        {"zmq_4x32_plain", "(e) the same without CURVE",
         [](Values &v) { return zmqRate(v, "zmq_4x32_plain", false); }, false},
        {"zmq_bulk", "(e) ZeroMQ+CURVE: 1 process, 64 MiB messages", zmqBulk, false},
        {"zmq_lat", "(e) process -> ZeroMQ+CURVE -> zmq_recv thread -> postEvent -> main",
         zmqLatency, false},
#endif
    };
    for (Mode md : {Mode::Fd, Mode::Qt, Mode::Sig}) {
        const char *mn = modeName(md);
        auto add = [&](const char *suffix, const char *what, std::function<bool(Values &)> fn) {
            m.push_back({strf("%s_%s", mn, suffix), what, fn, false});
        };
        add("1x32", "1 sender x 32 B", [md](Values &v) { return mprRate(v, md, "1x32", 1, 32, opt.msgs1); });
        add("4x32", "4 senders x 32 B", [md](Values &v) { return mprRate(v, md, "4x32", 4, 32, opt.msgs4); });
        add("4x4k", "4 senders x 4 KiB",
            [md](Values &v) { return mprRate(v, md, "4x4k", 4, 4096, opt.msgs4k); });
        add("64m", "1 sender x 64 MiB messages",
            [md, mn](Values &v) { return mprBig(v, md, bigSpec(strf("%s_64m", mn).c_str())); });
        if (md == Mode::Fd) {
            add("1g", "1 sender x 1 GiB messages",
                [md](Values &v) { return mprBig(v, md, hugeSpec("fd_1g")); });
            add("1g_socket", "1 sender x 1 GiB messages, frames on the socket (no ring)",
                [md](Values &v) { return mprBig(v, md, hugeSpec("fd_1g_socket"), "socket"); });
        }
        add("lat", "idle latency, one message per 2 ms", [md](Values &v) { return mprLatency(v, md); });
        if (md != Mode::Fd)
        {
            add("flood", "4 senders flat out + 16 ms QTimer", [md](Values &v) { return mprFlood(v, md, false); });
            add("flood_bp", "the same with a queue limit (backpressure)",
                [md](Values &v) { return mprFlood(v, md, true); });
        }
    }
#ifdef MPR_BENCH_ZMQ
    {
        /* the Qt loop, senders over ZeroMQ (tcp on 127.0.0.1, CURVE) */
        const Mode md = Mode::Remote;
        m.push_back({"remote_4x32", "4 remote senders x 32 B (ZeroMQ, Qt loop)",
                     [md](Values &v) { return mprRate(v, md, "4x32", 4, 32, opt.msgs4); }, false});
        m.push_back({"remote_64m", "1 remote sender x 64 MiB messages",
                     [md](Values &v) { return mprBig(v, md, bigSpec("remote_64m")); }, false});
        m.push_back({"remote_lat", "idle latency of a remote sender, one message per 2 ms",
                     [md](Values &v) { return mprLatency(v, md); }, false});
        m.push_back({"remote_flood", "4 remote senders flat out + 16 ms QTimer",
                     [md](Values &v) { return mprFlood(v, md, false); }, false});
    }
#endif
    m.push_back({"scale_pipes", "pipes open at once, one message each", scalePipes, false});
    m.push_back({"raw_procs", "(a) the scale_procs shape, one write() per message",
                 [](Values &v) {
                     return rawRate(v, "raw_procs", (int)opt.procs, 32, opt.procMsgs, 0.0);
                 },
                 false});
    m.push_back({"procs_floor", "the scale_procs shape, no messaging (the machine's floor)",
                 procsFloor, false});
    m.push_back({"scale_procs", "concurrent sender processes", scaleProcs, false});
    m.push_back({"mem_flood", "4 senders, receiver spends 10 us/message, queue limit", mprMemory, true});
    /* issue 17: the executor against Python's ProcessPoolExecutor */
    m.push_back({"ppe_jobs", "(f) Python ProcessPoolExecutor(4): tiny jobs, many in flight",
                 ppeJobs, false});
    m.push_back({"ppe_rtt", "(f) Python ProcessPoolExecutor(4): one job at a time, round trip",
                 ppeRoundTrip, false});
    m.push_back({"exec_jobs", "executor, 4 exec'ed workers: tiny jobs, many in flight", execJobs,
                 false});
    m.push_back({"exec_rtt", "executor: one job at a time, submit -> result on the main thread",
                 execRoundTrip, false});
    m.push_back({"exec_cancel", "executor: cancel -> CANCELLED, task tests every 1 ms",
                 execCancel, false});
    m.push_back({"exec_flood", "executor: progress flood (newest only) + 16 ms QTimer",
                 [](Values &v) { return execFlood(v, false); }, false});
    m.push_back({"exec_flood_bp", "the same with a queue limit (backpressure)",
                 [](Values &v) { return execFlood(v, true); }, false});
    return m;
}

/* What a figure is compared with, and the target for it. */
struct Cmp {
    std::string base; /* empty: the target applies to the value itself */
    char op;          /* '>' ratio (or value) must be >= target, '<' <=, 0 no target */
    double target;
};

struct Figure {
    std::string name;
    const char *unit;
    std::vector<Cmp> cmps;
};

std::vector<Figure> figures()
{
    std::vector<Figure> f = {
        {"raw_1x32", "msg/s", {}},
        {"raw_4x32", "msg/s", {}},
        {"raw_4x4k", "msg/s", {}},
        {"raw_bulk", "MiB/s", {}},
        {"raw_bulk_1g", "MiB/s", {{"raw_bulk", 0, 0}}},
        {"raw_bulk_1g_first", "ms", {}},
        {"raw_bulk_1g_cpu_recv", "ms/msg", {}},
        {"qt_post", "msg/s", {}},
        {"lat_raw_p50", "us", {}},
        {"lat_raw_p99", "us", {}},
        {"lat_notifier_p50", "us", {{"lat_raw_p50", 0, 0}}},
        {"lat_notifier_p99", "us", {{"lat_raw_p99", 0, 0}}},
        {"zmq_4x32", "msg/s", {{"raw_4x32", 0, 0}}},
        {"zmq_4x32_plain", "msg/s", {{"zmq_4x32", 0, 0}}},
        {"zmq_bulk", "MiB/s", {{"raw_bulk", 0, 0}}},
        {"zmq_lat_p50", "us", {{"lat_raw_p50", 0, 0}}},
        {"zmq_lat_p99", "us", {{"lat_raw_p99", 0, 0}}},
    };
    for (const char *m : {"fd", "qt", "sig"}) {
        bool qt = strcmp(m, "qt") == 0;
        auto n = [&](const char *s) { return strf("%s_%s", m, s); };
        f.push_back({n("1x32"), "msg/s", {{"raw_1x32", qt ? '>' : '\0', 2}}});
        f.push_back({n("4x32"), "msg/s",
                     {{"raw_4x32", qt ? '>' : '\0', 3}, {"qt_post", qt ? '>' : '\0', 3}}});
        if (qt) {
            f.push_back({n("4x32_cpu_send"), "ns/msg", {}});
            f.push_back({n("4x32_cpu_router"), "ns/msg", {}});
        }
        f.push_back({n("4x4k"), "msg/s", {{"raw_4x4k", 0, 0}}});
        f.push_back({n("64m"), "MiB/s", {{"raw_bulk", qt ? '>' : '\0', 0.5}}});
        f.push_back({n("lat_p50"), "us",
                     {{"lat_raw_p50", qt ? '<' : '\0', 1.3}, {"lat_notifier_p50", 0, 0}}});
        f.push_back({n("lat_p99"), "us", {{"", qt ? '<' : '\0', 2000}, {"lat_raw_p99", 0, 0}}});
        if (strcmp(m, "fd") != 0) {
            f.push_back({n("flood_gap"), "ms", {{"", qt ? '<' : '\0', 50}}});
            f.push_back({n("flood_rate"), "msg/s", {{n("4x32"), qt ? '>' : '\0', 0.5}}});
            f.push_back({n("flood_bp_gap"), "ms", {{"", qt ? '<' : '\0', 50}}});
            f.push_back({n("flood_bp_rate"), "msg/s", {{n("4x32"), qt ? '>' : '\0', 0.5}}});
        }
    }
    /* issue 15 item 15: 1 GiB messages against the raw socket with 1 GiB writes */
    f.push_back({"fd_1g", "MiB/s", {{"raw_bulk_1g", 0, 0}, {"fd_64m", 0, 0}}});
    f.push_back({"fd_1g_first", "ms", {{"raw_bulk_1g_first", 0, 0}}});
    f.push_back({"fd_1g_cpu_router", "ms/msg", {{"raw_bulk_1g_cpu_recv", 0, 0}}});
    f.push_back({"fd_1g_socket", "MiB/s", {{"raw_bulk_1g", 0, 0}, {"fd_1g", 0, 0}}});
    f.push_back({"fd_1g_socket_first", "ms", {{"raw_bulk_1g_first", 0, 0}}});
    f.push_back({"fd_1g_socket_cpu_router", "ms/msg", {{"raw_bulk_1g_cpu_recv", 0, 0}}});
    /* issue 11: remote senders against raw ZeroMQ with CURVE */
    f.push_back({"remote_4x32", "msg/s",
                 {{"zmq_4x32", '>', 2}, {"zmq_4x32_plain", 0, 0}, {"qt_4x32", 0, 0}}});
    f.push_back({"remote_4x32_cpu_send", "ns/msg", {{"qt_4x32_cpu_send", 0, 0}}});
    f.push_back({"remote_4x32_cpu_router", "ns/msg", {{"qt_4x32_cpu_router", 0, 0}}});
    f.push_back({"remote_64m", "MiB/s", {{"zmq_bulk", '>', 0.5}, {"qt_64m", 0, 0}}});
    f.push_back({"remote_lat_p50", "us", {{"zmq_lat_p50", '<', 1.5}, {"qt_lat_p50", 0, 0}}});
    f.push_back({"remote_lat_p99", "us", {{"zmq_lat_p99", 0, 0}}});
    f.push_back({"remote_flood_gap", "ms", {{"", '<', 50}}});
    f.push_back({"remote_flood_rate", "msg/s", {{"remote_4x32", 0, 0}}});
    f.push_back({"scale_pipes_setup", "ms", {}});
    f.push_back({"scale_pipes_connect", "ms", {}});
    f.push_back({"scale_pipes_deliver", "ms", {}});
    f.push_back({"raw_procs", "msg/s", {}});
    f.push_back({"procs_floor", "msg/s", {{"qt_4x32", 0, 0}}});
    f.push_back({"scale_procs_rate", "msg/s",
                 {{"qt_4x32", '>', 0.5}, {"raw_procs", 0, 0}, {"procs_floor", 0, 0}}});
    f.push_back({"scale_procs_cpu_send", "ns/msg", {{"qt_4x32_cpu_send", 0, 0}}});
    f.push_back({"scale_procs_cpu_router", "ns/msg", {{"qt_4x32_cpu_router", 0, 0}}});
    f.push_back({"mem_flood_rss", "MiB", {{"", '<', 64}}});
    f.push_back({"mem_flood_rate", "msg/s", {}});
    /* issue 17: the executor against Python's ProcessPoolExecutor(4) */
    f.push_back({"ppe_jobs", "jobs/s", {}});
    f.push_back({"ppe_rtt_p50", "us", {}});
    f.push_back({"ppe_rtt_p99", "us", {}});
    f.push_back({"exec_jobs", "jobs/s", {{"ppe_jobs", '>', 10}}});
    f.push_back({"ppe_jobs_cpu_main", "ns/job", {}});
    f.push_back({"ppe_jobs_cpu_workers", "ns/job", {}});
    f.push_back({"exec_jobs_cpu_main", "ns/job", {{"ppe_jobs_cpu_main", 0, 0}}});
    f.push_back({"exec_jobs_cpu_workers", "ns/job", {{"ppe_jobs_cpu_workers", 0, 0}}});
    f.push_back({"exec_rtt_p50", "us", {{"ppe_rtt_p50", '<', 0.5}}});
    f.push_back({"exec_rtt_p99", "us", {{"ppe_rtt_p99", 0, 0}}});
    f.push_back({"exec_cancel_p50", "ms", {{"", '<', 5}}});
    f.push_back({"exec_cancel_p99", "ms", {}});
    f.push_back({"exec_flood_gap", "ms", {{"", '<', 50}, {"qt_flood_gap", 0, 0}}});
    f.push_back({"exec_flood_rate", "msg/s", {}});
    f.push_back({"exec_flood_updates", "upd/s", {}});
    f.push_back({"exec_flood_bp_gap", "ms", {{"qt_flood_bp_gap", 0, 0}}});
    f.push_back({"exec_flood_bp_rate", "msg/s", {{"exec_flood_rate", 0, 0}}});
    f.push_back({"exec_flood_bp_updates", "upd/s", {}});
    return f;
}

double median(std::vector<double> v)
{
    if (v.empty())
        return NAN;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string fmtValue(double x)
{
    if (std::isnan(x))
        return "-";
    double a = fabs(x);
    if (a >= 1e6)
        return strf("%.3gM", x / 1e6);
    if (a >= 1e4)
        return strf("%.3gk", x / 1e3);
    if (a >= 100)
        return strf("%.0f", x);
    return strf("%.3g", x);
}

void usage(FILE *out)
{
    fprintf(out,
            "usage: mpr_bench [--quick] [--runs N] [--only NAME[,NAME...]] [--list]\n"
            "                 [--duration S] [--flood-duration S]\n"
            "                 [--msgs1 N] [--msgs4 N] [--msgs4k N] [--big-mib N] [--big-count N]\n"
            "                 [--huge-mib N] [--huge-count N]\n"
            "                 [--lat-samples N] [--lat-period-us N] [--flood-msgs N]\n"
            "                 [--mem-msgs N] [--mem-limit-mib N] [--mem-spin-us N] [--mem-runs N]\n"
            "                 [--pipes N] [--pipe-procs N] [--procs N] [--proc-msgs N]\n"
            "                 [--timeout S] [--exec-window N] [--exec-jobs N]\n"
            "                 [--exec-cancel-samples N] [--exec-ahead N] [--python PROG]\n"
            "Rate figures send for --duration seconds (0: until the count); counts are\n"
            "per sender. --quick first sets the small quick-mode values;\n"
            "options after it override them. See tests/bench/README.md.\n");
}

} // namespace

int main(int argc, char **argv)
{
    /* A worker of the executor figures (started by the executor itself,
     * its sender string on standard input): no Qt, no options. */
    if (argc == 2 && strcmp(argv[1], "--exec-worker") == 0)
        return execWorkerMain();
    QCoreApplication app(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, nullptr, _IOLBF, 0);

    struct {
        const char *flag;
        long *value;
    } longs[] = {
        {"--msgs1", &opt.msgs1},           {"--msgs4", &opt.msgs4},
        {"--msgs4k", &opt.msgs4k},         {"--big-mib", &opt.bigMiB},
        {"--big-count", &opt.bigCount},    {"--huge-mib", &opt.hugeMiB},
        {"--huge-count", &opt.hugeCount},  {"--lat-samples", &opt.latSamples},
        {"--lat-period-us", &opt.latPeriodUs}, {"--flood-msgs", &opt.floodMsgs},
        {"--mem-msgs", &opt.memMsgs},      {"--mem-limit-mib", &opt.memLimitMiB},
        {"--mem-spin-us", &opt.memSpinUs}, {"--pipes", &opt.pipes},
        {"--pipe-procs", &opt.pipeProcs},  {"--procs", &opt.procs},
        {"--proc-msgs", &opt.procMsgs},    {"--timeout", &opt.timeoutS},
        {"--exec-window", &opt.execWindow}, {"--exec-jobs", &opt.execJobs},
        {"--exec-cancel-samples", &opt.execCancelSamples}, {"--exec-ahead", &opt.execAhead},
    };
    long runs = -1, memRuns = -1;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> long {
            if (i + 1 >= argc) {
                fprintf(stderr, "mpr_bench: %s needs a value\n", a.c_str());
                exit(2);
            }
            char *end;
            long x = strtol(argv[++i], &end, 10);
            if (*end || x < 0) {
                fprintf(stderr, "mpr_bench: bad value for %s: %s\n", a.c_str(), argv[i]);
                exit(2);
            }
            return x;
        };
        bool known = true;
        if (a == "--quick")
            opt.applyQuick();
        else if (a == "--duration" || a == "--flood-duration") {
            if (i + 1 >= argc) {
                usage(stderr);
                return 2;
            }
            char *end;
            double d = strtod(argv[++i], &end);
            if (*end || !(d >= 0)) {
                fprintf(stderr, "mpr_bench: bad value for %s: %s\n", a.c_str(), argv[i]);
                return 2;
            }
            (a == "--duration" ? opt.duration : opt.floodDuration) = d;
        } else if (a == "--runs")
            runs = std::max(1L, value());
        else if (a == "--mem-runs")
            memRuns = value();
        else if (a == "--list")
            list = true;
        else if (a == "--python") {
            if (i + 1 >= argc) {
                usage(stderr);
                return 2;
            }
            opt.python = argv[++i];
        }
        else if (a == "--help" || a == "-h") {
            usage(stdout);
            return 0;
        } else if (a == "--only") {
            if (i + 1 >= argc) {
                usage(stderr);
                return 2;
            }
            std::string s = argv[++i];
            size_t p = 0;
            while (p <= s.size()) {
                size_t q = s.find(',', p);
                if (q == std::string::npos)
                    q = s.size();
                if (q > p)
                    opt.only.push_back(s.substr(p, q - p));
                p = q + 1;
            }
        } else {
            known = false;
            for (auto &l : longs)
                if (a == l.flag) {
                    *l.value = value();
                    known = true;
                }
        }
        if (!known) {
            fprintf(stderr, "mpr_bench: unknown option %s\n", a.c_str());
            usage(stderr);
            return 2;
        }
    }
    if (runs > 0)
        opt.runs = (int)runs;
    if (memRuns >= 0)
        opt.memRuns = (int)memRuns;
    opt.bigMiB = std::max(1L, opt.bigMiB);
    opt.hugeMiB = std::max(1L, opt.hugeMiB);
    opt.latSamples = std::max(1L, opt.latSamples);

    std::vector<Measurement> ms = measurements();
    if (list) {
        for (auto &m : ms)
            printf("%-14s %s\n", m.name.c_str(), m.what);
        return 0;
    }
    for (auto &o : opt.only)
        if (std::none_of(ms.begin(), ms.end(), [&](const Measurement &m) { return o == m.name; })) {
            fprintf(stderr, "mpr_bench: no measurement %s (see --list)\n", o.c_str());
            return 2;
        }

    /* 10,000 pipes need 10,000 descriptors in this process. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)opt.pipes + 200 > rl.rlim_cur) {
        long fit = (long)rl.rlim_cur - 200;
        fprintf(stderr, "mpr_bench: RLIMIT_NOFILE is %llu: scale_pipes uses %ld pipes, not %ld\n",
                (unsigned long long)rl.rlim_cur, fit, opt.pipes);
        opt.pipes = std::max(1L, fit);
    }

    int64_t tStart = nowNs();
    int passed = 0, failedCount = 0, skipped = 0;
    std::vector<Values> perRun((size_t)opt.runs);
    for (int r = 0; r < opt.runs; r++) {
        for (auto &m : ms) {
            if (!opt.only.empty() &&
                std::find(opt.only.begin(), opt.only.end(), m.name) == opt.only.end())
                continue;
            if (m.heavy && r >= opt.memRuns)
                continue;
            if (const char *why = underTsan(m.name)) {
                progress("[run %d/%d] %-14s SKIPPED under ThreadSanitizer (%s)", r + 1, opt.runs,
                         m.name.c_str(), why);
                skipped++;
                continue;
            }
            int64_t t = nowNs();
            Values v;
            bool ok = m.fn(v);
            std::string skip = takeSkip();
            if (ok && !skip.empty()) {
                progress("[run %d/%d] %-14s SKIPPED (%s)", r + 1, opt.runs, m.name.c_str(),
                         skip.c_str());
                skipped++;
                continue;
            }
            std::string shown;
            for (auto &kv : v) {
                shown += strf(" %s=%s", kv.first.c_str(), fmtValue(kv.second).c_str());
                perRun[(size_t)r][kv.first] = kv.second;
            }
            progress("[run %d/%d %5.1fs] %-14s %s%s (%.1fs)", r + 1, opt.runs,
                     (double)(nowNs() - tStart) / 1e9, m.name.c_str(), ok ? "ok" : "FAILED", shown.c_str(),
                     (double)(nowNs() - t) / 1e9);
            if (ok)
                passed++;
            else
                failedCount++;
        }
    }

    /* The table: median of the runs; each ratio is the median of the
     * per-run ratios (figure and baseline from the same run). */
    printf("\nmprouter benchmark: %s, %d run%s, %ld cpus\n", opt.quick ? "QUICK MODE" : "full",
           opt.runs, opt.runs == 1 ? "" : "s", sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-22s %10s %-6s  %-26s %s\n", "figure", "median", "unit", "ratio (vs baseline)",
           "issue target");
    std::vector<std::string> lines;
    for (auto &f : figures()) {
        std::vector<double> vals;
        for (auto &v : perRun)
            if (v.count(f.name))
                vals.push_back(v.at(f.name));
        if (vals.empty())
            continue;
        double med = median(vals);
        std::string ratios, targets, bench = strf("BENCH %s=%.6g unit=%s runs=%zu", f.name.c_str(),
                                                  med, f.unit, vals.size());
        int k = 0;
        for (auto &c : f.cmps) {
            double got = med;
            if (!c.base.empty()) {
                std::vector<double> rs;
                for (auto &v : perRun)
                    if (v.count(f.name) && v.count(c.base) && v.at(c.base) > 0)
                        rs.push_back(v.at(f.name) / v.at(c.base));
                if (rs.empty())
                    continue;
                got = median(rs);
                ratios += strf("%s%.2fx %s", ratios.empty() ? "" : ", ", got, c.base.c_str());
                const std::string n = k ? std::to_string(k + 1) : std::string();
                bench += strf(" ratio%s=%.4g base%s=%s", n.c_str(), got, n.c_str(), c.base.c_str());
                k++;
            }
            if (c.op) {
                bool met = c.op == '>' ? got >= c.target : got <= c.target;
                std::string t = !c.base.empty() ? strf("%c= %gx", c.op, c.target)
                                       : strf("%c= %g %s", c.op, c.target, f.unit);
                targets += strf("%s%s %s", targets.empty() ? "" : "; ", t.c_str(),
                                met ? "met" : "MISSED");
                bench += strf(" %s=%g met=%s", c.op == '>' ? "min" : "max", c.target,
                              met ? "yes" : "no");
            }
        }
        printf("%-22s %10s %-6s  %-26s %s\n", f.name.c_str(), fmtValue(med).c_str(), f.unit,
               ratios.c_str(), targets.c_str());
        lines.push_back(bench);
    }
    printf("\n");
    for (auto &l : lines)
        printf("%s\n", l.c_str());
    printf("Totals: %d passed, %d failed, %d skipped, 0 blacklisted, %lldms\n", passed,
           failedCount, skipped, (long long)((nowNs() - tStart) / 1000000));
    return failedCount ? 1 : 0;
}
