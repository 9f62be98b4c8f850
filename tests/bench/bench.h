/*
 * bench.h - shared pieces of the mprouter benchmark (mpr_bench): options,
 * clock, message format, forked worker processes with a start barrier.
 */
#ifndef MPR_BENCH_H
#define MPR_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace bench {

/* Everything a run can be told; the defaults are the full benchmark,
 * applyQuick() shrinks them to the quick mode that `make check` runs. */
struct Options {
    bool quick = false;
    int runs = 5;
    int memRuns = 1;            /* the memory flood takes ~45 s: once by default */
    std::vector<std::string> only;
    /* Rate figures send for `duration` seconds (0: until the count);
     * the counts below are caps. */
    double duration = 1.0;
    double floodDuration = 2.0; /* responsiveness flood */
    long msgs1 = 50000000;      /* 1 sender x 32 B */
    long msgs4 = 20000000;      /* per sender, 4 senders x 32 B (and qt_post) */
    long msgs4k = 5000000;      /* per sender, 4 senders x 4 KiB */
    long bigMiB = 64;           /* size of a large message */
    long bigCount = 1000;       /* large messages per measurement (at least 2) */
    long hugeMiB = 1024;        /* size of a huge message (the *_1g figures) */
    long hugeCount = 3;         /* huge messages per measurement (at least 2; no duration) */
    long latSamples = 500;      /* latency samples (one per 2 ms) */
    long latPeriodUs = 2000;
    long floodMsgs = 50000000;  /* per sender, responsiveness flood */
    long memMsgs = 1000000;     /* per sender, memory flood */
    long memLimitMiB = 16;      /* mpr_router_set_queue_limit for the memory flood */
    long memSpinUs = 10;        /* receiver's busy-wait per message */
    long pipes = 10000;         /* scale: pipes open at once */
    long pipeProcs = 10;        /* ... held by this many processes */
    long procs = 256;           /* scale: concurrent sender processes */
    long procMsgs = 10000;      /* ... messages each */
    long timeoutS = 120;        /* per measurement (the memory flood gets more) */
    long execWindow = 1000;     /* executor: tiny jobs in flight (and the baseline's) */
    long execJobs = 10000000;   /* executor: cap on tiny jobs per measurement */
    long execCancelSamples = 100; /* executor: cancel latency samples */
    long execAhead = 4;         /* exec_jobs: mpr_executor_options.jobs_ahead */
    std::string python = "python3"; /* the baseline's interpreter (PATH or a path) */
    void applyQuick();
};

extern Options opt;

int64_t nowNs(); /* CLOCK_MONOTONIC: comparable across processes */
/* CPU time (user + system, ns) of this process (RUSAGE_SELF: all its
 * threads) or of its reaped children (RUSAGE_CHILDREN). */
int64_t cpuNs(int who);

/* The first 32 bytes of every small message (and of large ones). */
struct Header {
    uint32_t idx;   /* which sender (pipe index) */
    uint32_t magic; /* MAGIC, or MAGIC_LAST on a stream's last message */
    uint64_t seq;   /* 0, 1, 2, ... per sender */
    int64_t ts;     /* nowNs() just before the send, for latency */
    uint64_t check; /* seq * CHECK_MUL */
};
static_assert(sizeof(Header) == 32, "Header is 32 bytes");
constexpr uint32_t MAGIC = 0x6d707242u; /* "Brpm" */
constexpr uint32_t MAGIC_LAST = 0x6d70724cu;
constexpr uint64_t CHECK_MUL = 0x9e3779b97f4a7c15ull;

/* Fill message number seq of a fixed-size stream: header, and for
 * messages of 64 bytes or more the last 8 bytes are ~seq. */
void fillFixed(char *buf, size_t size, uint32_t idx, uint64_t seq, int64_t ts, bool last = false);
/* Check such a message; returns "" or what is wrong; *last: it ends the stream. */
std::string checkFixed(const char *buf, size_t size, size_t want, uint32_t idx, uint64_t seq,
                       bool *last);

/* A sender's stopping rule: the count (cap), or duration seconds after
 * start() (checked every 256 messages, or every message if every1). */
struct StreamEnd {
    long cap;
    int64_t endNs;
    long minCount;
    bool every1;
    StreamEnd(long cap, double duration, long minCount = 1, bool every1 = false);
    bool isLast(long i) const;
};

/* Large messages: at every offset k*4096 of message m (size B, a multiple
 * of 4096) the 8-byte word m*B + k*4096, i.e. its offset in the stream of
 * messages. mprouter messages then overwrite the first 32 bytes with a
 * Header. */
void fillBig(char *buf, size_t size, uint64_t m);
std::string checkBig(const char *buf, size_t size, uint64_t m, size_t skipFirst);

/* write() all of buf, retrying on EINTR and short writes; 0 or -errno. */
int writeAll(int fd, const char *buf, size_t n);

/*
 * Forked worker processes with a start barrier: start() forks n children
 * that each run prepare(i) (connect...), report ready, wait for go(), run
 * run(i) and _exit (0 if both returned 0). The parent measures from go().
 * Children never touch Qt. The destructor kills (SIGKILL, by pid) and
 * reaps any child still running.
 */
class Workers {
public:
    ~Workers();
    bool start(int n, const std::function<int(int)> &prepare, const std::function<int(int)> &run);
    bool waitReady(double timeoutS); /* false if a child failed or timed out */
    int64_t go();                    /* releases the children; returns nowNs() */
    bool check();                    /* reap exited children; false if one failed */
    bool finish(double timeoutS);    /* wait for all; false on failure/timeout */
    const std::string &error() const { return err; }

private:
    std::vector<pid_t> pids;
    std::vector<char> reaped;
    int readyFd = -1, goFd = -1;
    int nready = 0;
    std::string err;
    void reapOne(size_t i, int status);
};

/* Percentile q (0..1) of v (sorted in place); 0 for an empty vector. */
double percentile(std::vector<int64_t> &v, double q);

std::string strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One measurement's figures, by figure name. */
typedef std::map<std::string, double> Values;

/* Progress line on stderr. */
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The measurements; each returns true if every message arrived in order
 * (errors are reported on stderr) and puts its figures into v. */
/* duration < 0: opt.duration; 0: send perProc messages each */
bool rawRate(Values &v, const char *name, int nprocs, size_t size, long perProc,
             double duration = -1);
/* The scale_procs shape without messaging: the machine's floor for it. */
bool procsFloor(Values &v);
/* The large-message figures: name, message size, count (a cap when
 * duration > 0, at least 2 messages either way). */
struct BigSpec {
    std::string fig;
    size_t size;
    long count;
    double duration;
};
BigSpec bigSpec(const char *fig);  /* 64 MiB (--big-mib), --big-count, --duration */
BigSpec hugeSpec(const char *fig); /* 1 GiB (--huge-mib), --huge-count, by count */
bool rawBulk(Values &v, const BigSpec &b);
bool qtPost(Values &v);
bool latRaw(Values &v);
bool latNotifier(Values &v);
#ifdef MPR_BENCH_ZMQ
/* (e) raw ZeroMQ, PUSH -> PULL over tcp on 127.0.0.1 (CURVE unless
 * plain): 4 forked processes, one zmq_send per 32 B message, one receiving
 * thread; 64 MiB messages; idle latency through a thread and postEvent. */
bool zmqRate(Values &v, const char *name, bool curve);
bool zmqBulk(Values &v);
bool zmqLatency(Values &v);
#endif

/* Remote: the Qt loop and C callbacks, as Qt, with a remote endpoint on
 * 127.0.0.1 and senders forced onto ZeroMQ (MPR_TRANSPORT=zmq). */
enum class Mode { Fd, Qt, Sig, Remote };
const char *modeName(Mode m);
bool mprRate(Values &v, Mode m, const char *fig, int nsenders, size_t size, long per);
/* transport: MPR_TRANSPORT for the worker (NULL: the default, the ring) */
bool mprBig(Values &v, Mode m, const BigSpec &b, const char *transport = nullptr);
bool mprLatency(Values &v, Mode m);
bool mprFlood(Values &v, Mode m, bool backpressure);
bool mprMemory(Values &v);
bool scalePipes(Values &v);
bool scaleProcs(Values &v);

/* The executor (issue 17), 4 exec'ed workers (this program with
 * --exec-worker) under the Qt loop, and its baseline, Python 3's
 * ProcessPoolExecutor(4) run by ppe_bench.py in a child process. */
int execWorkerMain(); /* main() of a worker: mpr_worker_main with the bench's tasks */
bool ppeJobs(Values &v);
bool ppeRoundTrip(Values &v);
bool execJobs(Values &v);
bool execRoundTrip(Values &v);
bool execCancel(Values &v);
bool execFlood(Values &v, bool backpressure);
/* A measurement that could not run here (no python3, ...) says why by
 * setting the reason and returning true; the runner takes it (and clears
 * it) and counts the measurement as skipped. "" if it ran. */
std::string takeSkip();

} // namespace bench

#endif
