/*
 * mpr_test_routerproc - a router in a process of its own, for the tests
 * whose hostile peers may crash it, bloat it or starve it (tests/remote):
 * the test measures this process from outside (/proc/PID: resident memory,
 * CPU time, whether it died of a signal) and drives it over standard
 * input, one command a line. Each answer is zero or more lines, then one
 * line that starts with "ok" or "err". Warnings go to standard error
 * (mprouter's default log handler). Only the public API of mprouter.
 *
 *   limit nofile N      RLIMIT_NOFILE (soft) of this process
 *   start [remote=EP] [host=H] [window=S] [handshake=S] [queue=BYTES]
 *                       -> ok ENDPOINT  ("-" without a remote endpoint)
 *   stop                -> ok
 *   pipes N             -> "pipe INDEX ID STRING" N times, ok
 *   report INDEX        -> ok count=N order=1 lost=L lostafter=A bytes=B
 *                          (order=0 once a message was not the next of its
 *                          stream, tests/common/payload.h)
 *   stats               -> ok received=.. routed=.. dropped=.. accepted=..
 *                          rejected=.. broken=.. lost=.. pings=..
 *   fdprobe N           a thread opens N descriptors (/dev/null) every
 *                       50 ms and closes them again -> ok
 *   fdprobe report      -> ok tries=T failures=F (descriptors not opened)
 *   keys                -> ok recorded=N (key pairs made in this process)
 *   scan                the router's CURVE secret key in this process's
 *                       memory: "hit ADDR KIND protected=0|1 MAPPING" per
 *                       copy, then ok hits=H unprotected=U
 *   forkscan            the same in a child forked now -> ok hits=H
 *   quit                (also the end of standard input)
 *
 * KEYS. This program defines libsodium's key-pair functions (exported:
 * -rdynamic), so every library in this process that makes a key pair calls
 * them; they call the real ones (dlsym RTLD_NEXT) and remember each pair,
 * the secret only masked (XOR with random bytes kept apart), so that no
 * plain copy of a secret is ever made here. scan then picks the pair
 * whose public key is the one in the sender strings (the router's) and
 * looks for its 32 bytes and for their Z85 text in every resident page
 * of this process, read through process_vm_readv into a buffer of its own
 * (no fault if a mapping goes meanwhile; the buffer is itself marked
 * MADV_DONTDUMP and MADV_WIPEONFORK, wiped after use and never searched).
 * Each copy is reported with whether its mapping has "dd" and "wf" in
 * /proc/self/smaps VmFlags. forkscan forks a child that does the same
 * with raw system calls only (read(2) of /proc/self/maps, no allocation,
 * no lock) and reports the number of copies it can read.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mprouter/fd_loop.h>
#include <mprouter/mprouter.h>

#include "../common/payload.h"

/* ==================================================================== */
/* KEYS: the key pairs made in this process                             */

#define MAX_RECORDS 4096

typedef struct key_record {
    unsigned char pk[32];
    unsigned char masked[32]; /* secret XOR key_mask */
} key_record;

static key_record records[MAX_RECORDS];
static int nrecords;
static unsigned char key_mask[32];
static int mask_ready;
static pthread_mutex_t records_lock = PTHREAD_MUTEX_INITIALIZER;

static void make_mask(void)
{
    if (!mask_ready) {
        while (getrandom(key_mask, sizeof key_mask, 0) != (ssize_t)sizeof key_mask) {
        }
        mask_ready = 1;
    }
}

static void remember(const unsigned char *pk, const unsigned char *sk)
{
    pthread_mutex_lock(&records_lock);
    make_mask();
    if (nrecords < MAX_RECORDS) {
        key_record *r = &records[nrecords++];
        memcpy(r->pk, pk, 32);
        for (int i = 0; i < 32; i++)
            r->masked[i] = (unsigned char)(sk[i] ^ key_mask[i]);
    }
    pthread_mutex_unlock(&records_lock);
}

#define REAL(name, type) \
    static type real; \
    if (!real) \
        real = (type)dlsym(RTLD_NEXT, name)

typedef int (*keypair_fn)(unsigned char *, unsigned char *);
typedef int (*seed_keypair_fn)(unsigned char *, unsigned char *, const unsigned char *);
typedef int (*base_fn)(unsigned char *, const unsigned char *);

int crypto_box_keypair(unsigned char *pk, unsigned char *sk)
{
    REAL("crypto_box_keypair", keypair_fn);
    int rc = real ? real(pk, sk) : -1;
    if (rc == 0)
        remember(pk, sk);
    return rc;
}

int crypto_box_curve25519xsalsa20poly1305_keypair(unsigned char *pk, unsigned char *sk)
{
    REAL("crypto_box_curve25519xsalsa20poly1305_keypair", keypair_fn);
    int rc = real ? real(pk, sk) : -1;
    if (rc == 0)
        remember(pk, sk);
    return rc;
}

int crypto_box_seed_keypair(unsigned char *pk, unsigned char *sk, const unsigned char *seed)
{
    REAL("crypto_box_seed_keypair", seed_keypair_fn);
    int rc = real ? real(pk, sk, seed) : -1;
    if (rc == 0)
        remember(pk, sk);
    return rc;
}

int crypto_box_curve25519xsalsa20poly1305_seed_keypair(unsigned char *pk, unsigned char *sk,
                                                        const unsigned char *seed)
{
    REAL("crypto_box_curve25519xsalsa20poly1305_seed_keypair", seed_keypair_fn);
    int rc = real ? real(pk, sk, seed) : -1;
    if (rc == 0)
        remember(pk, sk);
    return rc;
}

/* q = n * base point: n is a secret scalar, q its public key. */
int crypto_scalarmult_base(unsigned char *q, const unsigned char *n)
{
    REAL("crypto_scalarmult_base", base_fn);
    int rc = real ? real(q, n) : -1;
    if (rc == 0)
        remember(q, n);
    return rc;
}

int crypto_scalarmult_curve25519_base(unsigned char *q, const unsigned char *n)
{
    REAL("crypto_scalarmult_curve25519_base", base_fn);
    int rc = real ? real(q, n) : -1;
    if (rc == 0)
        remember(q, n);
    return rc;
}

/* ==================================================================== */
/* Z85 (ZeroMQ RFC 32)                                                  */

static const char Z85[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static int z85_decode32(const char *text, unsigned char out[32])
{
    for (int g = 0; g < 8; g++) {
        uint32_t v = 0;
        for (int i = 0; i < 5; i++) {
            const char *at = text[5 * g + i] ? strchr(Z85, text[5 * g + i]) : NULL;
            if (!at)
                return -1;
            v = v * 85 + (uint32_t)(at - Z85);
        }
        for (int i = 0; i < 4; i++)
            out[4 * g + i] = (unsigned char)(v >> (24 - 8 * i));
    }
    return 0;
}

/* ==================================================================== */
/* the needles: what scan looks for, masked                              */

typedef struct needle {
    const char *kind;
    size_t len;
    unsigned char mask[40];
    unsigned char masked[40]; /* the bytes XOR mask */
} needle;

static needle needles[2];
static int nneedles;

/* The secret whose public key is pk, as two needles: its 32 bytes and
 * their Z85 text. 0, or -1 if no key pair with that public key was made. */
static int make_needles(const unsigned char pk[32])
{
    const key_record *found = NULL;
    pthread_mutex_lock(&records_lock);
    for (int i = 0; i < nrecords && !found; i++)
        if (memcmp(records[i].pk, pk, 32) == 0)
            found = &records[i];
    pthread_mutex_unlock(&records_lock);
    if (!found)
        return -1;
    needle *raw = &needles[0], *text = &needles[1];
    raw->kind = "raw";
    raw->len = 32;
    text->kind = "z85";
    text->len = 40;
    while (getrandom(raw->mask, sizeof raw->mask, 0) != (ssize_t)sizeof raw->mask) {
    }
    while (getrandom(text->mask, sizeof text->mask, 0) != (ssize_t)sizeof text->mask) {
    }
    for (int i = 0; i < 32; i++)
        raw->masked[i] = (unsigned char)(found->masked[i] ^ key_mask[i] ^ raw->mask[i]);
    for (int g = 0; g < 8; g++) {
        uint32_t v = 0;
        for (int i = 0; i < 4; i++)
            v = v << 8 | (unsigned char)(found->masked[4 * g + i] ^ key_mask[4 * g + i]);
        for (int i = 4; i >= 0; i--) {
            text->masked[5 * g + i] = (unsigned char)(Z85[v % 85] ^ text->mask[5 * g + i]);
            v /= 85;
        }
        v = 0;
    }
    nneedles = 2;
    return 0;
}

/* ==================================================================== */
/* scanning this process's memory                                       */

#define CHUNK (1u << 20)
#define OVERLAP 64u
#define PAGE 4096u
#define MAX_MAPS 65536

static unsigned char *scan_buf; /* CHUNK + OVERLAP, dd + wf */
static unsigned char mvec[4096];

typedef struct mapping {
    uintptr_t lo, hi;
    char readable;
    char dd, wf;
    char name[80];
} mapping;

static mapping maps[MAX_MAPS];
static int nmaps;
static char text_buf[32u << 20]; /* /proc/self/maps or smaps */

typedef void (*hit_fn)(uintptr_t addr, const needle *n, void *arg);

static int prepare_scan_buf(void)
{
    if (scan_buf)
        return 0;
    void *p = mmap(NULL, CHUNK + OVERLAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    madvise(p, CHUNK + OVERLAP, MADV_DONTDUMP);
    madvise(p, CHUNK + OVERLAP, MADV_WIPEONFORK);
    scan_buf = p;
    return 0;
}

/* Raw system calls only: also used in a forked child of this
 * multi-threaded process. */
static long sys_read_all(const char *path, char *buf, size_t size)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len < size - 1) {
        long n = syscall(SYS_read, fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    syscall(SYS_close, fd);
    buf[len] = '\0';
    return (long)len;
}

static uintptr_t parse_hex(const char **p)
{
    uintptr_t v = 0;
    for (;;) {
        char c = **p;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return v;
        v = v << 4 | (uintptr_t)d;
        (*p)++;
    }
}

/* Parse maps (or smaps: the VmFlags lines too) in text_buf into maps[]. */
static void parse_maps(void)
{
    nmaps = 0;
    for (const char *line = text_buf; *line;) {
        const char *end = line;
        while (*end && *end != '\n')
            end++;
        const char *p = line;
        uintptr_t lo = parse_hex(&p);
        if (*p == '-' && p > line) {
            p++;
            uintptr_t hi = parse_hex(&p);
            if (*p == ' ' && nmaps < MAX_MAPS) {
                mapping *m = &maps[nmaps++];
                m->lo = lo;
                m->hi = hi;
                m->readable = p[1] == 'r';
                m->dd = m->wf = 0;
                /* the path: after the fifth field */
                int field = 0;
                const char *q = p;
                while (q < end && field < 4) {
                    while (q < end && *q == ' ')
                        q++;
                    while (q < end && *q != ' ')
                        q++;
                    field++;
                }
                while (q < end && *q == ' ')
                    q++;
                size_t n = (size_t)(end - q);
                if (n >= sizeof m->name)
                    n = sizeof m->name - 1;
                memcpy(m->name, q, n);
                m->name[n] = '\0';
            }
        } else if (strncmp(line, "VmFlags:", 8) == 0 && nmaps > 0) {
            mapping *m = &maps[nmaps - 1];
            for (const char *q = line + 8; q + 1 < end; q++) {
                if (q[-1] != ' ')
                    continue;
                if (q[0] == 'd' && q[1] == 'd' && (q + 2 == end || q[2] == ' '))
                    m->dd = 1;
                if (q[0] == 'w' && q[1] == 'f' && (q + 2 == end || q[2] == ' '))
                    m->wf = 1;
            }
        }
        line = *end ? end + 1 : end;
    }
}

static int skipped(const mapping *m)
{
    if (!m->readable || m->hi <= m->lo)
        return 1;
    if (!strcmp(m->name, "[vvar]") || !strcmp(m->name, "[vsyscall]"))
        return 1;
    if (m->hi - m->lo > ((uintptr_t)64 << 30)) /* sanitizer shadow: reserved, not data */
        return 1;
    uintptr_t b = (uintptr_t)scan_buf;
    return scan_buf && m->lo <= b && b < m->hi; /* our own copies */
}

/* Look for the needles in buf[0..n), which holds the bytes at src: every
 * copy that starts before limit. */
static int search(const unsigned char *buf, size_t n, size_t limit, uintptr_t src, hit_fn hit,
                  void *arg)
{
    int hits = 0;
    for (int k = 0; k < nneedles; k++) {
        const needle *nd = &needles[k];
        const unsigned char first = (unsigned char)(nd->masked[0] ^ nd->mask[0]);
        for (size_t i = 0; i < limit && i + nd->len <= n; i++) {
            if (buf[i] != first)
                continue;
            size_t j = 1;
            while (j < nd->len && (unsigned char)(buf[i + j] ^ nd->mask[j]) == nd->masked[j])
                j++;
            if (j == nd->len) {
                hits++;
                if (hit)
                    hit(src + i, nd, arg);
            }
        }
    }
    return hits;
}

static uintptr_t next_page(uintptr_t a)
{
    return (a + PAGE) & ~(uintptr_t)(PAGE - 1);
}

/* Search [lo, hi) (resident pages), read a chunk at a time into scan_buf;
 * consecutive chunks overlap so that a copy across their border is seen. */
static int scan_run(uintptr_t lo, uintptr_t hi, hit_fn hit, void *arg)
{
    int hits = 0;
    const pid_t self = (pid_t)syscall(SYS_getpid);
    for (uintptr_t at = lo; at < hi;) {
        const size_t want = hi - at > CHUNK + OVERLAP ? CHUNK + OVERLAP : (size_t)(hi - at);
        struct iovec local = {scan_buf, want}, remote = {(void *)at, want};
        const long got = syscall(SYS_process_vm_readv, self, &local, 1UL, &remote, 1UL, 0UL);
        if (got <= 0) {
            at = next_page(at); /* unmapped meanwhile: skip a page */
            continue;
        }
        const size_t n = (size_t)got;
        const int whole = n == want, final = at + n >= hi;
        const size_t limit = final || !whole ? n : n - OVERLAP;
        hits += search(scan_buf, n, limit, at, hit, arg);
        if (final)
            break;
        at = whole ? at + limit : next_page(at + n);
    }
    explicit_bzero(scan_buf, CHUNK + OVERLAP);
    return hits;
}

/* Search the resident pages of one mapping. */
static int scan_mapping(const mapping *m, hit_fn hit, void *arg)
{
    int hits = 0;
    uintptr_t run = 0;
    int in_run = 0;
    for (uintptr_t a = m->lo; a < m->hi;) {
        size_t pages = (m->hi - a) / PAGE;
        if (pages > sizeof mvec)
            pages = sizeof mvec;
        if (syscall(SYS_mincore, (void *)a, pages * PAGE, mvec) != 0)
            for (size_t i = 0; i < pages; i++)
                mvec[i] = 0;
        for (size_t i = 0; i < pages; i++) {
            uintptr_t pg = a + i * PAGE;
            int resident = mvec[i] & 1;
            if (resident && !in_run) {
                run = pg;
                in_run = 1;
            } else if (!resident && in_run) {
                hits += scan_run(run, pg, hit, arg);
                in_run = 0;
            }
        }
        a += pages * PAGE;
    }
    if (in_run)
        hits += scan_run(run, m->hi, hit, arg);
    return hits;
}

typedef struct scan_result {
    int hits, unprotected;
} scan_result;

static const mapping *mapping_of(uintptr_t addr)
{
    for (int i = 0; i < nmaps; i++)
        if (maps[i].lo <= addr && addr < maps[i].hi)
            return &maps[i];
    return NULL;
}

static void report_hit(uintptr_t addr, const needle *n, void *arg)
{
    scan_result *r = arg;
    const mapping *m = mapping_of(addr);
    const int protected_ = m && m->dd && m->wf;
    if (!protected_)
        r->unprotected++;
    printf("hit %#lx %s protected=%d %#lx-%#lx dd=%d wf=%d %s\n", (unsigned long)addr, n->kind,
           protected_, m ? (unsigned long)m->lo : 0ul, m ? (unsigned long)m->hi : 0ul,
           m ? m->dd : 0, m ? m->wf : 0, m && m->name[0] ? m->name : "[anonymous]");
}

/* ==================================================================== */
/* the router and its pipes                                             */

typedef struct pipe_rec {
    int index;
    uint32_t id;
    uint64_t count, bytes;
    uint32_t tag;
    int order_ok;
    int lost;
    int64_t lost_after;
} pipe_rec;

static mpr_fd_loop *loop;
static mpr_router *router;
static pipe_rec **pipes;
static int npipes;
static char server_key[41]; /* from the last sender string, if remote */

static void on_message(void *arg, const void *data, size_t size)
{
    pipe_rec *p = arg;
    const unsigned char *b = data;
    if (p->order_ok) {
        if (size < 8) {
            p->order_ok = 0;
        } else {
            const uint32_t tag = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 |
                                 (uint32_t)b[7] << 24;
            if (p->count == 0)
                p->tag = tag;
            if (tag != p->tag || !mpr_test_check(b, size, (uint32_t)p->count, p->tag))
                p->order_ok = 0;
        }
    }
    p->count++;
    p->bytes += size;
}

static void on_lost(void *arg)
{
    pipe_rec *p = arg;
    p->lost++;
    p->lost_after = (int64_t)p->count;
}

/* ==================================================================== */
/* fdprobe: the application's own descriptors                           */

static pthread_t probe_thread;
static int probe_running, probe_n;
static _Atomic int probe_quit;
static uint64_t probe_tries, probe_failures;
static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;

static void *probe_main(void *arg)
{
    (void)arg;
    int fds[256];
    while (!probe_quit) {
        int n = probe_n < 256 ? probe_n : 256, failed = 0;
        for (int i = 0; i < n; i++) {
            fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (fds[i] < 0)
                failed++;
        }
        for (int i = 0; i < n; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        pthread_mutex_lock(&probe_lock);
        probe_tries += (uint64_t)n;
        probe_failures += (uint64_t)failed;
        pthread_mutex_unlock(&probe_lock);
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ==================================================================== */
/* commands                                                             */

static char opt_remote[256], opt_host[256];

static const char *option(char **words, int n, const char *key)
{
    size_t k = strlen(key);
    for (int i = 1; i < n; i++)
        if (!strncmp(words[i], key, k) && words[i][k] == '=')
            return words[i] + k + 1;
    return NULL;
}

static void answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void answer(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int command(char *line)
{
    char *words[16];
    int n = 0;
    for (char *save = NULL, *w = strtok_r(line, " \t", &save); w && n < 16; w = strtok_r(NULL, " \t", &save))
        words[n++] = w;
    if (n == 0) {
        answer("err empty");
        return 0;
    }
    const char *cmd = words[0];
    if (!strcmp(cmd, "quit")) {
        answer("ok");
        return 1;
    }
    if (!strcmp(cmd, "limit") && n == 3 && !strcmp(words[1], "nofile")) {
        struct rlimit lim;
        getrlimit(RLIMIT_NOFILE, &lim);
        lim.rlim_cur = (rlim_t)strtoul(words[2], NULL, 10);
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
            answer("err setrlimit %d", errno);
        else
            answer("ok");
        return 0;
    }
    if (!strcmp(cmd, "start")) {
        const char *v;
        if ((v = option(words, n, "remote")))
            snprintf(opt_remote, sizeof opt_remote, "%s", v);
        if ((v = option(words, n, "host")))
            snprintf(opt_host, sizeof opt_host, "%s", v);
        int rc = 0;
        if (opt_remote[0])
            rc = mpr_router_set_remote(router, opt_remote, opt_host[0] ? opt_host : NULL);
        if (rc == 0 && (v = option(words, n, "window")))
            rc = mpr_router_set_remote_window(router, strtod(v, NULL));
        if (rc == 0 && (v = option(words, n, "handshake")))
            rc = mpr_router_set_handshake_timeout(router, strtod(v, NULL));
        if (rc == 0 && (v = option(words, n, "queue")))
            rc = mpr_router_set_queue_limit(router, (size_t)strtoull(v, NULL, 10));
        if (rc == 0)
            rc = mpr_router_start(router);
        if (rc != 0) {
            answer("err %d %s", rc, mpr_strerror(rc));
            return 0;
        }
        char ep[256] = "-";
        if (opt_remote[0] && mpr_router_remote_endpoint(router, ep, sizeof ep) < 0)
            snprintf(ep, sizeof ep, "-");
        answer("ok %s", ep);
        return 0;
    }
    if (!strcmp(cmd, "stop")) {
        int rc = mpr_router_stop(router);
        if (rc)
            answer("err %d %s", rc, mpr_strerror(rc));
        else
            answer("ok");
        return 0;
    }
    if (!strcmp(cmd, "pipes") && n == 2) {
        int count = atoi(words[1]);
        for (int i = 0; i < count; i++) {
            mpr_sender *s = NULL;
            mpr_receiver *r = NULL;
            int rc = mpr_router_pipe(router, &s, &r);
            if (rc != 0) {
                answer("err %d %s", rc, mpr_strerror(rc));
                return 0;
            }
            pipe_rec *p = calloc(1, sizeof *p);
            pipe_rec **grown = realloc(pipes, (size_t)(npipes + 1) * sizeof *pipes);
            if (!p || !grown) {
                answer("err nomem");
                return 0;
            }
            pipes = grown;
            p->index = npipes;
            p->id = mpr_receiver_id(r);
            p->order_ok = 1;
            p->lost_after = -1;
            pipes[npipes++] = p;
            mpr_receiver_set_callback(r, on_message, p);
            mpr_receiver_set_lost_callback(r, on_lost, p);
            char text[1024];
            mpr_sender_to_string(s, text, sizeof text);
            mpr_sender_free(s);
            /* mpr3:NAME:ID:KEY:SERVERKEY:ENDPOINT */
            const char *at = text;
            for (int c = 0; c < 4 && at; c++) {
                at = strchr(at, ':');
                at = at ? at + 1 : NULL;
            }
            if (at && strlen(at) > 41 && at[40] == ':') {
                memcpy(server_key, at, 40);
                server_key[40] = '\0';
            }
            printf("pipe %d %u %s\n", p->index, p->id, text);
        }
        answer("ok");
        return 0;
    }
    if (!strcmp(cmd, "report") && n == 2) {
        int i = atoi(words[1]);
        if (i < 0 || i >= npipes) {
            answer("err no such pipe");
            return 0;
        }
        const pipe_rec *p = pipes[i];
        answer("ok count=%llu order=%d lost=%d lostafter=%lld bytes=%llu id=%u",
               (unsigned long long)p->count, p->order_ok, p->lost, (long long)p->lost_after,
               (unsigned long long)p->bytes, p->id);
        return 0;
    }
    if (!strcmp(cmd, "stats")) {
        mpr_router_stats st;
        mpr_router_get_stats(router, &st);
        answer("ok received=%llu routed=%llu dropped=%llu accepted=%llu rejected=%llu broken=%llu "
               "lost=%llu pings=%llu",
               (unsigned long long)st.messages_received, (unsigned long long)st.messages_routed,
               (unsigned long long)st.messages_dropped, (unsigned long long)st.connections_accepted,
               (unsigned long long)st.connections_rejected, (unsigned long long)st.connections_broken,
               (unsigned long long)st.senders_lost, (unsigned long long)st.pings);
        return 0;
    }
    if (!strcmp(cmd, "fdprobe") && n == 2) {
        if (!strcmp(words[1], "report")) {
            pthread_mutex_lock(&probe_lock);
            answer("ok tries=%llu failures=%llu", (unsigned long long)probe_tries,
                   (unsigned long long)probe_failures);
            pthread_mutex_unlock(&probe_lock);
            return 0;
        }
        if (probe_running) {
            answer("err already running");
            return 0;
        }
        probe_n = atoi(words[1]);
        probe_quit = 0;
        if (pthread_create(&probe_thread, NULL, probe_main, NULL) != 0) {
            answer("err pthread_create");
            return 0;
        }
        probe_running = 1;
        answer("ok");
        return 0;
    }
    if (!strcmp(cmd, "keys")) {
        pthread_mutex_lock(&records_lock);
        int k = nrecords;
        pthread_mutex_unlock(&records_lock);
        answer("ok recorded=%d", k);
        return 0;
    }
    if (!strcmp(cmd, "scan") || !strcmp(cmd, "forkscan")) {
        unsigned char pk[32];
        if (!server_key[0] || z85_decode32(server_key, pk) < 0) {
            answer("err no remote sender string made yet");
            return 0;
        }
        if (make_needles(pk) < 0) {
            pthread_mutex_lock(&records_lock);
            const int k = nrecords;
            pthread_mutex_unlock(&records_lock);
            answer("err the router's key pair was not made by libsodium's key-pair functions here "
                   "(%d recorded)",
                   k);
            return 0;
        }
        if (prepare_scan_buf() < 0) {
            answer("err mmap");
            return 0;
        }
        if (!strcmp(cmd, "scan")) {
            if (sys_read_all("/proc/self/smaps", text_buf, sizeof text_buf) <= 0) {
                answer("err smaps");
                return 0;
            }
            parse_maps();
            scan_result r = {0, 0};
            for (int i = 0; i < nmaps; i++)
                if (!skipped(&maps[i]))
                    r.hits += scan_mapping(&maps[i], report_hit, &r);
            answer("ok hits=%d unprotected=%d", r.hits, r.unprotected);
            return 0;
        }
        int result[2];
        if (pipe2(result, O_CLOEXEC) != 0) {
            answer("err pipe");
            return 0;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            /* A child of a multi-threaded process: raw system calls only. */
            int hits = -1;
            if (sys_read_all("/proc/self/maps", text_buf, sizeof text_buf) > 0) {
                parse_maps();
                hits = 0;
                for (int i = 0; i < nmaps; i++)
                    if (!skipped(&maps[i]))
                        hits += scan_mapping(&maps[i], NULL, NULL);
            }
            syscall(SYS_write, result[1], &hits, sizeof hits);
            syscall(SYS_exit_group, 0);
        }
        close(result[1]);
        int hits = -1;
        struct pollfd pf = {result[0], POLLIN, 0};
        if (pid > 0 && poll(&pf, 1, 60000) == 1 && read(result[0], &hits, sizeof hits) != (ssize_t)sizeof hits)
            hits = -1;
        close(result[0]);
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        if (hits < 0)
            answer("err the child did not answer");
        else
            answer("ok hits=%d", hits);
        return 0;
    }
    answer("err unknown command %s", cmd);
    return 0;
}

int main(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    signal(SIGPIPE, SIG_IGN);
    if (mpr_fd_loop_new(&loop) < 0 || mpr_router_new(&router, mpr_fd_loop_event_loop(loop)) < 0) {
        fprintf(stderr, "routerproc: cannot make the router\n");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    char in[4096];
    size_t have = 0;
    int quit = 0;
    while (!quit) {
        struct pollfd p[2] = {{0, POLLIN, 0}, {mpr_fd_loop_fd(loop), POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents & POLLIN)
            mpr_fd_loop_dispatch(loop);
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(0, in + have, sizeof in - 1 - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            have += (size_t)r;
            for (;;) {
                char *nl = memchr(in, '\n', have);
                if (!nl)
                    break;
                *nl = '\0';
                quit = command(in);
                size_t used = (size_t)(nl + 1 - in);
                memmove(in, nl + 1, have - used);
                have -= used;
                if (quit)
                    break;
            }
            if (have == sizeof in - 1)
                have = 0; /* a line too long: dropped */
        }
    }
    if (probe_running) {
        probe_quit = 1;
        pthread_join(probe_thread, NULL);
    }
    mpr_router_free(router);
    mpr_fd_loop_free(loop);
    for (int i = 0; i < npipes; i++)
        free(pipes[i]);
    free(pipes);
    return 0;
}
