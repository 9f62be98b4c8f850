/* winproc.h - what the Windows C tests (tests/c/tst_win_*.c) share: workers
 * are this program started again (CreateProcess) with a mode argument,
 * the sender string written to their standard input (never on the command
 * line), their standard error ours; a router driven by the fd loop's event
 * handle; messages with a checksum; a log handler that keeps warnings.
 * Public API only (<mprouter/mprouter.h>). Header-only, one test program
 * per .c file. */
#ifndef MPR_WINPROC_H
#define MPR_WINPROC_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/mprouter.h>

/* ---- a worker process ---------------------------------------------------- */

typedef struct {
    PROCESS_INFORMATION pi;
    HANDLE in;  /* the write end of its standard input */
    HANDLE out; /* the read end of its standard output (wp_start with want_out) */
} wp_child;

/* Start "this.exe MODE ARG" with standard input a pipe; standard output a
 * pipe too if want_out (else ours), standard error ours. Only those three
 * handles are inherited (PROC_THREAD_ATTRIBUTE_HANDLE_LIST). 0 or -1. */
static inline int wp_start(wp_child *c, const char *mode, const char *arg, int want_out)
{
    char exe[MAX_PATH], cmd[2 * MAX_PATH];
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE in_r = NULL, out_w = NULL, err_w = NULL;
    memset(c, 0, sizeof *c);
    GetModuleFileNameA(NULL, exe, sizeof exe);
    snprintf(cmd, sizeof cmd, "\"%s\" %s %s", exe, mode, arg ? arg : "");
    if (!CreatePipe(&in_r, &c->in, &sa, 0))
        return -1;
    SetHandleInformation(c->in, HANDLE_FLAG_INHERIT, 0);
    if (want_out) {
        if (!CreatePipe(&c->out, &out_w, &sa, 0))
            return -1;
        SetHandleInformation(c->out, HANDLE_FLAG_INHERIT, 0);
    } else {
        DuplicateHandle(GetCurrentProcess(), GetStdHandle(STD_OUTPUT_HANDLE), GetCurrentProcess(),
                        &out_w, 0, TRUE, DUPLICATE_SAME_ACCESS);
    }
    DuplicateHandle(GetCurrentProcess(), GetStdHandle(STD_ERROR_HANDLE), GetCurrentProcess(), &err_w,
                    0, TRUE, DUPLICATE_SAME_ACCESS);
    STARTUPINFOEXA si;
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = in_r;
    si.StartupInfo.hStdOutput = out_w;
    si.StartupInfo.hStdError = err_w;
    HANDLE list[3];
    int nlist = 0;
    list[nlist++] = in_r;
    if (out_w)
        list[nlist++] = out_w;
    if (err_w)
        list[nlist++] = err_w;
    SIZE_T size = 0;
    InitializeProcThreadAttributeList(NULL, 1, 0, &size);
    LPPROC_THREAD_ATTRIBUTE_LIST attrs = malloc(size);
    BOOL ok = FALSE;
    DWORD err = 0;
    if (attrs && InitializeProcThreadAttributeList(attrs, 1, 0, &size) &&
        UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list,
                                  (SIZE_T)nlist * sizeof(HANDLE), NULL, NULL)) {
        si.lpAttributeList = attrs;
        /* A start that fails is said and tried again (twice): it is the
         * test's machinery, not mprouter, that failed then. */
        for (int attempt = 0; attempt < 3 && !ok; attempt++) {
            if (attempt) {
                fprintf(stderr, "       wp_start(%s): CreateProcess failed: error %lu; again\n",
                        mode, (unsigned long)err);
                Sleep(200);
            }
            ok = CreateProcessA(NULL, cmd, NULL, NULL, TRUE, EXTENDED_STARTUPINFO_PRESENT, NULL,
                                NULL, &si.StartupInfo, &c->pi);
            err = ok ? 0 : GetLastError();
        }
        DeleteProcThreadAttributeList(attrs);
    } else {
        err = GetLastError();
    }
    free(attrs);
    if (!ok)
        fprintf(stderr, "       wp_start(%s): CreateProcess failed: error %lu\n", mode,
                (unsigned long)err);
    CloseHandle(in_r);
    if (out_w)
        CloseHandle(out_w);
    if (err_w)
        CloseHandle(err_w);
    return ok ? 0 : -1;
}

/* Write a line to the child's standard input. */
static inline int wp_say(wp_child *c, const char *s)
{
    DWORD n;
    size_t len = strlen(s);
    if (!WriteFile(c->in, s, (DWORD)len, &n, NULL) || n != len ||
        !WriteFile(c->in, "\n", 1, &n, NULL) || n != 1) {
        fprintf(stderr, "       wp_say: writing to the child's standard input failed: error %lu\n",
                (unsigned long)GetLastError());
        return -1;
    }
    return 0;
}

static volatile int wp_abandon;

/* A worker with the sender of pipe s (its string on standard input). On
 * failure the loop's waits give up (wp_abandon): nothing will come. */
static inline int wp_start_sender(wp_child *c, const char *mode, const char *arg, mpr_sender *s,
                                  int want_out)
{
    char str[512];
    if (mpr_sender_to_string(s, str, sizeof str) >= (int)sizeof str ||
        wp_start(c, mode, arg, want_out) < 0 || wp_say(c, str) < 0) {
        wp_abandon = 1;
        return -1;
    }
    return 0;
}

/* Reads one line (up to '\n', dropped) from a pipe handle, unbuffered: its
 * length, or -1 at the end. */
static inline int wp_read_line(HANDLE h, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        char ch;
        DWORD got;
        if (!ReadFile(h, &ch, 1, &got, NULL) || got != 1)
            break;
        if (ch == '\n') {
            buf[n] = 0;
            return (int)n;
        }
        if (ch != '\r')
            buf[n++] = ch;
    }
    buf[n] = 0;
    return n ? (int)n : -1;
}

/* Its exit code after up to ms, or 0xFFFFFFFF if it still runs. */
static inline DWORD wp_wait(wp_child *c, DWORD ms)
{
    DWORD code = 0xFFFFFFFF;
    if (WaitForSingleObject(c->pi.hProcess, ms) == WAIT_OBJECT_0)
        GetExitCodeProcess(c->pi.hProcess, &code);
    return code;
}

static inline void wp_close(wp_child *c)
{
    if (c->pi.hProcess && WaitForSingleObject(c->pi.hProcess, 0) != WAIT_OBJECT_0) {
        TerminateProcess(c->pi.hProcess, 99);
        WaitForSingleObject(c->pi.hProcess, 5000);
    }
    if (c->in)
        CloseHandle(c->in);
    if (c->out)
        CloseHandle(c->out);
    if (c->pi.hProcess)
        CloseHandle(c->pi.hProcess);
    if (c->pi.hThread)
        CloseHandle(c->pi.hThread);
    memset(c, 0, sizeof *c);
}

/* In a worker: the sender from standard input (NULL on failure). */
static inline mpr_sender *wp_sender_from_stdin(void)
{
    char line[512];
    if (wp_read_line(GetStdHandle(STD_INPUT_HANDLE), line, sizeof line) < 0)
        return NULL;
    mpr_sender *s = NULL;
    return mpr_sender_from_string(&s, line) == 0 ? s : NULL;
}

/* In a worker: one line to standard output (a pipe: unbuffered). */
static inline void wp_tell(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    DWORD w;
    WriteFile(GetStdHandle(STD_OUTPUT_HANDLE), buf, (DWORD)n, &w, NULL);
}

/* ---- messages ------------------------------------------------------------ */

/* FNV-1a, 64 bits. */
static inline uint64_t wp_sum(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The bytes of a test message: a pattern of its seed. */
static inline void wp_fill(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

/* A test message: the pattern of seed, its first 4 bytes the seed (LE). */
static inline void wp_make(unsigned char *p, size_t n, uint32_t seed)
{
    wp_fill(p, n, seed);
    for (size_t i = 0; i < 4 && i < n; i++)
        p[i] = (unsigned char)(seed >> (8 * i));
}

/* The seed of a message of at least 4 bytes. */
static inline uint32_t wp_seed(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Is it the message wp_make(size, seed) made? */
static inline int wp_check(const unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        unsigned char want = i < 4 ? (unsigned char)(seed >> (8 * i)) : (unsigned char)x;
        if (p[i] != want)
            return 0;
    }
    return 1;
}

/* ---- the router under test ---------------------------------------------- */

typedef struct {
    mpr_fd_loop *loop;
    mpr_router *router;
} wp_router;

static inline int wp_router_new(wp_router *r)
{
    memset(r, 0, sizeof *r);
    wp_abandon = 0;
    if (mpr_fd_loop_new(&r->loop) < 0)
        return -1;
    return mpr_router_new(&r->router, mpr_fd_loop_event_loop(r->loop));
}

static inline void wp_router_free(wp_router *r)
{
    mpr_router_free(r->router);
    mpr_fd_loop_free(r->loop);
    memset(r, 0, sizeof *r);
}

/* Run the loop (its event handle) until done(arg) or ms pass: 1 if done. */
static inline int wp_run_until(wp_router *r, int (*done)(void *), void *arg, DWORD ms)
{
    HANDLE h = (HANDLE)mpr_fd_loop_handle(r->loop);
    ULONGLONG end = GetTickCount64() + ms;
    while (!done(arg)) {
        if (wp_abandon)
            return 0;
        ULONGLONG now = GetTickCount64();
        if (now >= end)
            return 0;
        DWORD left = (DWORD)(end - now);
        if (WaitForSingleObject(h, left > 100 ? 100 : left) == WAIT_OBJECT_0)
            mpr_fd_loop_dispatch(r->loop);
    }
    return 1;
}

/* Run the loop for ms. */
static inline void wp_run_for(wp_router *r, DWORD ms)
{
    HANDLE h = (HANDLE)mpr_fd_loop_handle(r->loop);
    ULONGLONG end = GetTickCount64() + ms;
    for (ULONGLONG now; (now = GetTickCount64()) < end;)
        if (WaitForSingleObject(h, (DWORD)(end - now)) == WAIT_OBJECT_0)
            mpr_fd_loop_dispatch(r->loop);
}

/* ---- pipes and their messages ------------------------------------------ */

enum { WP_FIXED, WP_VARIED, WP_SIZES };
static const size_t wp_sizes[] = {0, (1u << 20) + 3, (size_t)64 << 20};

/* The size of message seed in a stream of that shape. */
static inline size_t wp_size_of(int shape, size_t fixed, uint32_t seed)
{
    switch (shape) {
    case WP_VARIED:
        return 4 + seed % 300 + (seed % 7 == 0 ? 5000 : 0);
    case WP_SIZES:
        return seed < 3 ? wp_sizes[seed] : 0;
    default:
        return fixed;
    }
}

/* A receiver's account of its pipe: messages in order, whole. */
typedef struct {
    mpr_receiver *rcv;
    int shape;
    size_t fixed;
    uint32_t next;     /* the seed expected next */
    uint64_t count, bytes;
    int bad;           /* out of order, wrong size or content */
    int lost;          /* lost callbacks */
    uint64_t after_lost; /* messages after one */
} wp_pipe;

static inline void wp_on_msg(void *arg, const void *data, size_t size)
{
    wp_pipe *p = arg;
    uint32_t seed = p->next;
    if (p->lost)
        p->after_lost++;
    if (size != wp_size_of(p->shape, p->fixed, seed) || (size >= 4 && wp_seed(data) != seed) ||
        !wp_check(data, size, seed)) {
        if (!p->bad)
            fprintf(stderr, "       pipe #%u: message %u (%zu bytes) is not the one sent\n",
                    (unsigned)mpr_receiver_id(p->rcv), (unsigned)seed, size);
        p->bad++;
    }
    p->next++;
    p->count++;
    p->bytes += size;
}

static inline void wp_on_lost(void *arg)
{
    ((wp_pipe *)arg)->lost++;
}

/* A pipe of the router with its account; *sender for the worker. */
static inline int wp_pipe_open(mpr_router *r, wp_pipe *p, int shape, size_t fixed, mpr_sender **sender)
{
    memset(p, 0, sizeof *p);
    p->shape = shape;
    p->fixed = fixed;
    int rc = mpr_router_pipe(r, sender, &p->rcv);
    if (rc == 0) {
        mpr_receiver_set_callback(p->rcv, wp_on_msg, p);
        mpr_receiver_set_lost_callback(p->rcv, wp_on_lost, p);
    }
    return rc;
}

/* ---- the workers' side ---------------------------------------------------- */

/* Send message seed of that shape: mpr_sender_send's result. */
static inline int wp_send(mpr_sender *s, int shape, size_t fixed, uint32_t seed, unsigned char *buf)
{
    size_t n = wp_size_of(shape, fixed, seed);
    wp_make(buf, n, seed);
    return mpr_sender_send(s, buf, n);
}

/* The modes of a worker (argv[1]; argv[2] a count, "frames" anywhere after
 * it: MPR_TRANSPORT=socket):
 *   worker-send N SIZE   N messages of SIZE bytes (-1: varied), stop
 *   worker-sizes         0 bytes, 1 MiB + 3, 64 MiB, stop
 *   worker-hold N        N varied, "sent" on stdout, wait for stdin to end, stop
 *   worker-stream        varied messages until killed ("started" after 100)
 *   worker-paced N       N varied with a pause every 50 (a bystander), stop
 *   worker-echo N        takes N control messages (mpr_sender_recv, 30 s
 *                        each at most) and sends each back; then waits
 *                        (30 s at most) for a cancel tag and sends message
 *                        N if it is 77; stop
 * The exit status says what failed (0: nothing). */
static inline int wp_worker_main(int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "frames"))
            _putenv_s("MPR_TRANSPORT", "socket");
    mpr_sender *s = wp_sender_from_stdin();
    if (!s)
        return 20;
    int rc = mpr_sender_start(s);
    if (rc < 0) {
        fprintf(stderr, "       [worker %lu] start: %s\n", GetCurrentProcessId(), mpr_strerror(rc));
        mpr_sender_free(s);
        return 21;
    }
    const char *mode = argv[1];
    long n = argc > 2 ? atol(argv[2]) : 0;
    long size = argc > 3 ? atol(argv[3]) : -1;
    int shape = size < 0 ? WP_VARIED : WP_FIXED;
    size_t cap = 8192;
    if (!strcmp(mode, "worker-sizes")) {
        shape = WP_SIZES;
        n = 3;
        cap = wp_sizes[2];
    } else if (shape == WP_FIXED) {
        cap = (size_t)size + 1;
    }
    unsigned char *buf = malloc(cap);
    if (!buf)
        return 22;
    int status = 0;
    if (!strcmp(mode, "worker-echo")) {
        for (long i = 0; i < n && status == 0; i++) {
            size_t len = 0;
            if ((rc = mpr_sender_recv(s, buf, cap, &len, 30.0)) < 0 ||
                (rc = mpr_sender_send(s, buf, len)) < 0) {
                fprintf(stderr, "       [worker %lu] echo %ld: %s\n", GetCurrentProcessId(), i,
                        mpr_strerror(rc));
                status = 26;
            }
        }
        ULONGLONG end = GetTickCount64() + 30000;
        while (status == 0 && mpr_sender_cancelled(s) == 0 && GetTickCount64() < end)
            Sleep(1);
        if (status == 0 && mpr_sender_cancelled(s) != 77)
            status = 27;
        if (status == 0 && wp_send(s, WP_VARIED, 0, (uint32_t)n, buf) < 0)
            status = 28;
        n = 0; /* nothing more below */
    }
    if (!strcmp(mode, "worker-stream")) {
        for (uint32_t seed = 0;; seed++) {
            if ((rc = wp_send(s, WP_VARIED, 0, seed, buf)) < 0)
                return 23;
            if (seed == 100)
                wp_tell("started");
        }
    }
    for (uint32_t seed = 0; seed < (uint32_t)n && status == 0; seed++) {
        if ((rc = wp_send(s, shape, (size_t)size, seed, buf)) < 0) {
            fprintf(stderr, "       [worker %lu] send %u: %s\n", GetCurrentProcessId(), (unsigned)seed,
                    mpr_strerror(rc));
            status = 24;
        }
        if (!strcmp(mode, "worker-paced") && seed % 50 == 49)
            Sleep(2);
    }
    if (!strcmp(mode, "worker-hold")) {
        wp_tell("sent");
        char line[16];
        wp_read_line(GetStdHandle(STD_INPUT_HANDLE), line, sizeof line);
    }
    if ((rc = mpr_sender_stop(s)) < 0 && status == 0) {
        fprintf(stderr, "       [worker %lu] stop: %s\n", GetCurrentProcessId(), mpr_strerror(rc));
        status = 25;
    }
    mpr_sender_free(s);
    free(buf);
    return status;
}

/* main: a worker (argv[1] "worker-..."), or the tests. */
#define WP_MAIN()                                                    \
    int main(int argc, char **argv)                                  \
    {                                                                \
        if (argc > 1 && !strncmp(argv[1], "worker-", 7))             \
            return wp_worker_main(argc, argv);                       \
        return cu_main(argc, argv);                                  \
    }

/* ---- the log ------------------------------------------------------------- */

static char wp_log_text[16384];
static SRWLOCK wp_log_lock = SRWLOCK_INIT;
static int wp_log_echo = 1;

static inline void wp_on_log(void *arg, int level, const char *msg)
{
    (void)arg;
    AcquireSRWLockExclusive(&wp_log_lock);
    size_t have = strlen(wp_log_text);
    snprintf(wp_log_text + have, sizeof wp_log_text - have, "%s\n", msg);
    ReleaseSRWLockExclusive(&wp_log_lock);
    if (wp_log_echo && level >= MPR_LOG_WARNING)
        fprintf(stderr, "       [log] %s\n", msg);
}

static inline void wp_log_start(void)
{
    AcquireSRWLockExclusive(&wp_log_lock);
    wp_log_text[0] = 0;
    ReleaseSRWLockExclusive(&wp_log_lock);
    mpr_set_log_handler(wp_on_log, NULL);
}

/* Does the log since wp_log_start have a line containing what? */
static inline int wp_log_has(const char *what)
{
    AcquireSRWLockExclusive(&wp_log_lock);
    int has = strstr(wp_log_text, what) != NULL;
    ReleaseSRWLockExclusive(&wp_log_lock);
    return has;
}

#endif
