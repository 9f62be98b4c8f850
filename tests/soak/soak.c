/*
 * mpr_soak - soak test (run by hand; see README.md).
 *
 *   mpr_soak [--minutes M | --seconds S] [--workers N] [--kill-percent P] [--seed X]
 *
 * Rounds of N (default 256) forked worker processes, each on its own pipe,
 * until the time is up (default 10 minutes). A worker sends a random number
 * of messages of random sizes (mostly small, some of tens of KiB, a few of
 * about a MiB), checked byte for byte on arrival (tests/common/payload.h),
 * and stops. P percent of them (default 10) are victims: they send without
 * end and are SIGKILLed after a random number of their messages arrived.
 * After every round: each survivor delivered every message in order and was
 * not reported lost; each victim delivered an in-order prefix and was
 * reported lost exactly once; the fd count is back to its value after the
 * first round and the RSS stays within bounds. Prints one line per round and
 * a summary; exit status 0 if all held.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <mprouter/mprouter.h>

#include "payload.h"

#define QUEUE_LIMIT (16u << 20)
#define ROUND_TIMEOUT_S 600

struct slot {
    pid_t pid;
    mpr_receiver *receiver;
    uint32_t tag;
    int victim;
    long count;   /* messages a survivor sends */
    long kill_at; /* a victim is killed once this many arrived */
    long got;
    int lost;
    int killed;
    int exited;
    int status;
    long bad;     /* messages out of order, wrong size or corrupt */
};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Size of message seq of stream tag: known to worker and checker alike. */
static size_t msg_size(uint32_t tag, uint32_t seq)
{
    uint64_t h = mix(((uint64_t)tag << 32) | seq);
    unsigned r = (unsigned)(h % 1000);
    if (r < 900)
        return 8 + (size_t)(h >> 20) % 256;
    if (r < 998)
        return 1024 + (size_t)(h >> 20) % (63 * 1024);
    return 256 * 1024 + (size_t)(h >> 20) % (1024 * 1024);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the DIR's own descriptor */
}

static int worker_main(mpr_sender *s, uint32_t tag, long count)
{
    if (mpr_sender_start(s) != 0)
        return 2;
    size_t cap = 1300 * 1024;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return 3;
    for (uint32_t seq = 0; count < 0 || seq < (uint32_t)count; seq++) {
        size_t size = msg_size(tag, seq);
        mpr_test_fill(buf, size, seq, tag);
        if (mpr_sender_send(s, buf, size) != 0)
            return 4;
    }
    mpr_sender_stop(s);
    mpr_sender_free(s);
    free(buf);
    return 0;
}

static void on_message(void *arg, const void *data, size_t size)
{
    struct slot *sl = arg;
    uint32_t seq = (uint32_t)sl->got;
    if (size != msg_size(sl->tag, seq) || !mpr_test_check(data, size, seq, sl->tag))
        sl->bad++;
    sl->got++;
    if (sl->victim && !sl->killed && sl->got >= sl->kill_at) {
        kill(sl->pid, SIGKILL);
        sl->killed = 1;
    }
}

static void on_lost(void *arg)
{
    ((struct slot *)arg)->lost++;
}

static int slot_done(const struct slot *sl)
{
    if (!sl->exited)
        return 0;
    if (sl->victim)
        return sl->lost > 0;
    return sl->got >= sl->count || sl->lost > 0 || sl->status != 0;
}

/* Warnings: a victim killed in the middle of a message is expected to
 * produce one; anything else is printed. */
static long warnings_expected, warnings_other;
static void on_log(void *arg, int level, const char *msg)
{
    (void)arg;
    if (level < MPR_LOG_WARNING)
        return;
    if (strstr(msg, "sender lost in the middle of a message")) {
        warnings_expected++;
    } else {
        warnings_other++;
        fprintf(stderr, "mprouter: %s\n", msg);
    }
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [--minutes M | --seconds S] [--workers N] [--kill-percent P] [--seed X]\n",
            argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    double seconds = 600;
    int workers = 256, kill_percent = 10;
    unsigned long seed = (unsigned long)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage(argv[0]);
        if (!strcmp(argv[i], "--minutes"))
            seconds = 60 * atof(argv[++i]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--workers"))
            workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kill-percent"))
            kill_percent = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoul(argv[++i], NULL, 10);
        else
            usage(argv[0]);
    }
    if (workers < 1 || seconds <= 0 || kill_percent < 0 || kill_percent > 100)
        usage(argv[0]);
    srand((unsigned)seed);
    signal(SIGPIPE, SIG_IGN);
    mpr_set_log_handler(on_log, NULL);
    printf("soak: %d workers per round, %d%% killed, %.0f s, seed %lu\n", workers, kill_percent,
           seconds, seed);

    mpr_fd_loop *loop;
    mpr_router *router;
    if (mpr_fd_loop_new(&loop) || mpr_router_new(&router, mpr_fd_loop_event_loop(loop)) ||
        mpr_router_set_queue_limit(router, QUEUE_LIMIT) || mpr_router_start(router)) {
        fprintf(stderr, "soak: cannot start the router\n");
        return 1;
    }
    struct slot *slots = calloc((size_t)workers, sizeof *slots);
    if (!slots)
        return 1;

    const double end = now_s() + seconds;
    uint32_t next_tag = 1;
    int rounds = 0, failures = 0;
    long long survivors = 0, victims = 0, messages = 0, bytes_checked = 0;
    long rss_first = 0, rss_max = 0, rss_last = 0;
    int fds_first = -1, fds_last = -1;
    while (now_s() < end && failures == 0) {
        double t0 = now_s();
        memset(slots, 0, (size_t)workers * sizeof *slots);
        for (int i = 0; i < workers; i++) {
            struct slot *sl = &slots[i];
            mpr_sender *s;
            if (mpr_router_pipe(router, &s, &sl->receiver) != 0) {
                fprintf(stderr, "soak: pipe failed\n");
                return 1;
            }
            mpr_receiver_set_callback(sl->receiver, on_message, sl);
            mpr_receiver_set_lost_callback(sl->receiver, on_lost, sl);
            sl->tag = next_tag++;
            sl->victim = rand() % 100 < kill_percent;
            sl->count = sl->victim ? -1 : 100 + rand() % 500;
            sl->kill_at = 1 + rand() % 300;
            fflush(stdout);
            sl->pid = fork();
            if (sl->pid == 0)
                _exit(worker_main(s, sl->tag, sl->count));
            mpr_sender_free(s);
            if (sl->pid < 0) {
                perror("soak: fork");
                return 1;
            }
        }
        int done = 0;
        while (done < workers) {
            if (now_s() - t0 > ROUND_TIMEOUT_S) {
                fprintf(stderr, "soak: round %d did not finish in %d s\n", rounds + 1,
                        ROUND_TIMEOUT_S);
                failures++;
                break;
            }
            struct pollfd p = {mpr_fd_loop_fd(loop), POLLIN, 0};
            if (poll(&p, 1, 50) > 0)
                mpr_fd_loop_dispatch(loop);
            int st;
            pid_t pid;
            while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
                for (int i = 0; i < workers; i++)
                    if (slots[i].pid == pid) {
                        slots[i].exited = 1;
                        slots[i].status = st;
                    }
            }
            done = 0;
            for (int i = 0; i < workers; i++)
                done += slot_done(&slots[i]);
        }
        long round_msgs = 0;
        for (int i = 0; i < workers; i++) {
            struct slot *sl = &slots[i];
            int ok;
            if (sl->victim)
                ok = sl->killed && WIFSIGNALED(sl->status) && WTERMSIG(sl->status) == SIGKILL &&
                     sl->lost == 1 && sl->bad == 0 && sl->got >= sl->kill_at;
            else
                ok = WIFEXITED(sl->status) && WEXITSTATUS(sl->status) == 0 &&
                     sl->got == sl->count && sl->lost == 0 && sl->bad == 0;
            if (!ok) {
                failures++;
                fprintf(stderr,
                        "soak: worker tag %u (%s) failed: status %d, got %ld of %ld, bad %ld, "
                        "lost %d\n",
                        sl->tag, sl->victim ? "victim" : "survivor", sl->status, sl->got,
                        sl->count, sl->bad, sl->lost);
            }
            for (long q = 0; q < sl->got; q++)
                bytes_checked += (long long)msg_size(sl->tag, (uint32_t)q);
            round_msgs += sl->got;
            survivors += !sl->victim;
            victims += sl->victim;
            if (!sl->exited && sl->pid > 0) {
                kill(sl->pid, SIGKILL);
                waitpid(sl->pid, NULL, 0);
            }
            mpr_router_close_pipe(router, sl->receiver);
        }
        messages += round_msgs;
        rounds++;
        rss_last = rss_kib();
        fds_last = fd_count();
        if (rounds == 1) {
            rss_first = rss_last;
            fds_first = fds_last;
        }
        if (rss_last > rss_max)
            rss_max = rss_last;
        printf("round %d: %ld messages in %.1f s, rss %ld KiB, %d fds\n", rounds, round_msgs,
               now_s() - t0, rss_last, fds_last);
        fflush(stdout);
        if (fds_last != fds_first) {
            fprintf(stderr, "soak: fd count changed: %d after round 1, %d now\n", fds_first,
                    fds_last);
            failures++;
        }
    }
    mpr_router_stats st;
    mpr_router_get_stats(router, &st);
    mpr_router_stop(router);
    mpr_router_free(router);
    mpr_fd_loop_free(loop);
    free(slots);

    /* Memory: after the first round the pools and buffers are warm; later
     * rounds may not grow it by more than a quarter plus 32 MiB. */
    long rss_bound = rss_first + rss_first / 4 + 32 * 1024;
    if (rss_max > rss_bound) {
        fprintf(stderr, "soak: rss grew: %ld KiB after round 1, up to %ld KiB\n", rss_first,
                rss_max);
        failures++;
    }
    printf("soak: %d rounds, %lld survivors, %lld victims, %lld messages (%.1f MiB) checked; "
           "routed %llu, lost senders %llu, broken %llu, rejected %llu; rss %ld -> %ld KiB "
           "(max %ld); fds %d -> %d; warnings: %ld half-written, %ld other; %s\n",
           rounds, survivors, victims, messages, (double)bytes_checked / (1 << 20),
           (unsigned long long)st.messages_routed, (unsigned long long)st.senders_lost,
           (unsigned long long)st.connections_broken, (unsigned long long)st.connections_rejected,
           rss_first, rss_last, rss_max, fds_first, fds_last, warnings_expected, warnings_other,
           failures ? "FAILED" : "OK");
    return failures ? 1 : 0;
}
