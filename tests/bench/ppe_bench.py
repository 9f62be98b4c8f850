#!/usr/bin/env python3
"""ppe_bench.py - the baseline of mpr_bench's executor figures (issue 17):
Python 3's concurrent.futures.ProcessPoolExecutor, measured the way
mpr_bench measures mprouter's executor. mpr_bench runs it as a child
process and reads the one line it prints on standard output:

  ppe_bench.py jobs --workers 4 --duration S --window W --cap N
      tiny jobs (x -> 3x + 1) for S seconds, at most N, with W in flight:
      a result is taken in submission order and a new job submitted in
      its place until S has passed; every result is checked.
      prints: PPE jobs=COUNT seconds=S rate=JOBS_PER_S cpu_main_ns=A cpu_workers_ns=B
      (CPU time per job, user + system, of this process with its threads
      and of the 4 worker processes, over the same interval; the second
      only where /proc/PID/stat can be read, and only over 0.5 s or more:
      it counts clock ticks of 10 ms)
  ppe_bench.py rtt --workers 4 --samples N --period-us P
      one tiny job at a time, one every P microseconds (after 10 for
      warm-up): submit -> result back on the main thread.
      prints: PPE samples=N p50_us=X p99_us=Y

Exit status 0; 1 if a result was wrong (a line "FAIL ..." on standard
error); 77 with a line "SKIP reason" on standard output where
concurrent.futures (or its process pool) cannot be used here.
"""
import argparse
import os
import resource
import sys
import time
from collections import deque

try:
    from concurrent.futures import ProcessPoolExecutor
except ImportError as e:  # a Python without concurrent.futures
    print("SKIP concurrent.futures is not available: %s" % e)
    sys.exit(77)


def tiny(x):
    return 3 * x + 1


def percentile(samples, q):
    """As mpr_bench's percentile(): the nearest rank of q * (n - 1)."""
    if not samples:
        return 0.0
    s = sorted(samples)
    i = int(q * (len(s) - 1) + 0.5)
    return float(s[min(i, len(s) - 1)])


def warm_up(ex, workers):
    # every worker process started and has run a job before the clock starts
    for i, r in enumerate(ex.map(tiny, range(16 * workers))):
        if r != tiny(i):
            fail("warm-up job %d gave %r" % (i, r))


def self_cpu_ns():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int((ru.ru_utime + ru.ru_stime) * 1e9)


def workers_cpu_ns(ex):
    """utime + stime of the pool's processes from /proc/PID/stat, or None.
    (The pids come from the pool's private _processes: there is no public
    way; None if that changes.)"""
    try:
        pids = list(ex._processes.keys())
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in pids:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total * 10**9 // tick
    except (AttributeError, OSError, ValueError, IndexError):
        return None


def fail(why):
    sys.stderr.write("FAIL %s\n" % why)
    sys.exit(1)


def run_jobs(ex, args):
    inflight = deque()
    submitted = 0
    done = 0
    w0 = workers_cpu_ns(ex)
    c0 = self_cpu_ns()
    t0 = time.perf_counter()
    end = t0 + args.duration
    while submitted < min(args.window, args.cap):
        inflight.append((submitted, ex.submit(tiny, submitted)))
        submitted += 1
    while inflight:
        i, f = inflight.popleft()
        r = f.result()
        if r != tiny(i):
            fail("job %d gave %r, want %d" % (i, r, tiny(i)))
        done += 1
        if submitted < args.cap and (args.duration == 0 or time.perf_counter() < end):
            inflight.append((submitted, ex.submit(tiny, submitted)))
            submitted += 1
    t1 = time.perf_counter()
    c1 = self_cpu_ns()
    w1 = workers_cpu_ns(ex)
    if done != submitted:
        fail("%d of %d jobs done" % (done, submitted))
    line = "PPE jobs=%d seconds=%.6f rate=%.1f cpu_main_ns=%.0f" % (
        done, t1 - t0, done / (t1 - t0), (c1 - c0) / done)
    if w0 is not None and w1 is not None and t1 - t0 >= 0.5:  # clock ticks: 10 ms
        line += " cpu_workers_ns=%.0f" % ((w1 - w0) / done)
    print(line)


def run_rtt(ex, args):
    warm = 10
    period = args.period_us / 1e6
    lat = []
    nxt = time.perf_counter()
    for s in range(args.samples + warm):
        nxt += period
        delay = nxt - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = time.perf_counter_ns()
        r = ex.submit(tiny, s).result()
        dt = time.perf_counter_ns() - t
        if r != tiny(s):
            fail("job %d gave %r, want %d" % (s, r, tiny(s)))
        if s >= warm:
            lat.append(dt)
    print("PPE samples=%d p50_us=%.1f p99_us=%.1f"
          % (len(lat), percentile(lat, 0.50) / 1e3, percentile(lat, 0.99) / 1e3))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["jobs", "rtt"])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--duration", type=float, default=1.0)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--cap", type=int, default=10**9)
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--period-us", type=int, default=2000)
    args = p.parse_args()
    try:
        ex = ProcessPoolExecutor(args.workers)
    except (ImportError, NotImplementedError, OSError) as e:
        # e.g. no working sem_open (multiprocessing.synchronize)
        print("SKIP ProcessPoolExecutor cannot start here: %s" % e)
        sys.exit(77)
    with ex:
        warm_up(ex, args.workers)
        if args.mode == "jobs":
            run_jobs(ex, args)
        else:
            run_rtt(ex, args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
