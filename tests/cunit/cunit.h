/* cunit.h - a header-only runner for the C tests, on Linux and on Windows
 * (mingw-w64, also under wine). One test program = one .c file:
 *
 *   #include "cunit.h"
 *
 *   CU_TEST(adds) { CHECK(1 + 1 == 2); CHECK_EQ(2 * 2, 4); }
 *   CU_TEST(slow, .timeout_s = 120) { ... }   // a timeout of its own
 *   CU_TEST(needs_net) { SKIP("no network here"); }
 *
 *   CU_MAIN()
 *
 * Tests run in the order they are written, on the main thread. The output
 * is that of a QtTest program, so tools/check reads it the same way:
 *
 *   ********* Start testing of tst_example *********
 *   PASS   : tst_example::adds()
 *   FAIL!  : tst_example::fails() CHECK(x == 2) at tst_example.c:12
 *      Loc: [tst_example.c(12)]
 *   SKIP   : tst_example::needs_net() no network here
 *   Totals: 1 passed, 1 failed, 1 skipped, 0 blacklisted, 3ms
 *   ********* Finished testing of tst_example *********
 *
 * CHECK(cond)              a failure is recorded, the test goes on
 * CHECK_EQ(a, b)           integers (as long long), both values printed
 * CHECK_STR(a, b)          strings (strcmp), both printed
 * REQUIRE(cond)            a failure ends the test (return)
 * SKIP(reason)             the test is skipped (return); not a failure if
 *                          nothing failed before it
 *
 * A test that runs longer than its timeout (CU_TIMEOUT_S, default 60 s;
 * the environment variable CUNIT_TIMEOUT=seconds overrides the default)
 * fails: its FAIL line and the Totals line are printed (the tests not run
 * are not counted) and the program ends with status 2 (on Windows a
 * watchdog thread polls every 20 ms; elsewhere alarm(2) and SIGALRM, so no
 * thread is added to a program that forks). A
 * crash (an access violation, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT)
 * prints the FAIL line and the Totals line too, then the program dies as it
 * would have. Arguments: test names to run only those (unknown names are
 * an error); "-functions" lists them. The exit status is the number of
 * failed tests (at most 127).
 *
 * Needs: C11 (atomics); on Windows Win32 threads (not winpthreads, whose
 * condition variables refuse CLOCK_MONOTONIC), elsewhere POSIX signals.
 */
#ifndef MPR_CUNIT_H
#define MPR_CUNIT_H

/* POSIX (clock_gettime, alarm) under -std=c11, when this header comes
 * first and the build does not say -D_GNU_SOURCE (as the project does). */
#if !defined(_WIN32) && !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <io.h>
#else
#include <signal.h>
#include <time.h>
#include <unistd.h>
#endif

#ifndef CU_TIMEOUT_S
#define CU_TIMEOUT_S 60
#endif
#ifndef CU_MAX_TESTS
#define CU_MAX_TESTS 512
#endif

typedef struct {
    const char *name;
    void (*fn)(void);
    int timeout_s; /* 0: the default */
    const char *file;
    int line;
} cu_test_t;

/* One registry per program (one .c file per test program). */
static cu_test_t cu_tests[CU_MAX_TESTS];
static int cu_ntests;
static const char *cu_prog = "tst";
static int cu_passed, cu_failed, cu_skipped;
static int cu_cur_failed, cu_cur_skipped;
static _Atomic(const cu_test_t *) cu_cur; /* read by the watchdog, crash handlers */
static double cu_start_ms;
#ifdef _WIN32
static atomic_llong cu_deadline_ms; /* for the watchdog; 0: no test running */
#endif
static atomic_int cu_over;          /* set once: the watchdog or a crash reported */
static char cu_timeout_why[64];     /* made before each test: no snprintf in a handler */

static inline void cu_register(const cu_test_t *t)
{
    if (cu_ntests >= CU_MAX_TESTS) {
        fprintf(stderr, "cunit: more than %d tests (define CU_MAX_TESTS)\n", CU_MAX_TESTS);
        exit(127);
    }
    cu_tests[cu_ntests++] = *t;
}

/* CU_TEST(name) { body }, or CU_TEST(name, .timeout_s = N) { body }. (The
 * extra comma keeps the variadic part non-empty, as ISO C wants.) */
#define CU_TEST(...) CU_TEST_(__VA_ARGS__, )
#define CU_TEST_(tname, ...)                                                               \
    static void cu_fn_##tname(void);                                                       \
    __attribute__((constructor)) static void cu_reg_##tname(void)                          \
    {                                                                                      \
        cu_test_t t = {.name = #tname, .fn = cu_fn_##tname, .file = __FILE__, .line = __LINE__, \
                       __VA_ARGS__};                                                       \
        cu_register(&t);                                                                   \
    }                                                                                      \
    static void cu_fn_##tname(void)

/* ---- time --------------------------------------------------------------- */
static inline double cu_now_ms(void)
{
#ifdef _WIN32
    static LARGE_INTEGER f;
    LARGE_INTEGER c;
    if (!f.QuadPart)
        QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart * 1000.0 / (double)f.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
#endif
}

static inline void cu_sleep_ms(int ms)
{
#ifdef _WIN32
    Sleep((DWORD)ms);
#else
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
#endif
}

/* ---- output that is safe in a crash handler (no stdio, no malloc) ------- */
static inline void cu_raw(const char *s)
{
#ifdef _WIN32
    _write(1, s, (unsigned)strlen(s));
#else
    ssize_t r = write(1, s, strlen(s));
    (void)r;
#endif
}

static inline void cu_raw_num(long long v)
{
    char b[24];
    int i = (int)sizeof b - 1;
    int neg = v < 0;
    unsigned long long u = neg ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    b[i] = 0;
    do {
        b[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg)
        b[--i] = '-';
    cu_raw(b + i);
}

static inline void cu_raw_totals(int extra_failed)
{
    cu_raw("Totals: ");
    cu_raw_num(cu_passed);
    cu_raw(" passed, ");
    cu_raw_num(cu_failed + extra_failed);
    cu_raw(" failed, ");
    cu_raw_num(cu_skipped);
    cu_raw(" skipped, 0 blacklisted, ");
    cu_raw_num((long long)(cu_now_ms() - cu_start_ms));
    cu_raw("ms\n********* Finished testing of ");
    cu_raw(cu_prog);
    cu_raw(" *********\n");
}

/* The current test ended abnormally (timeout, crash): its FAIL line and
 * the Totals line, once. */
static inline void cu_abort_report(const char *why)
{
    if (atomic_exchange(&cu_over, 1))
        return;
    /* No fflush: this may run in a signal handler. stdout is line
     * buffered (unbuffered on Windows) and every line ends with \n. */
    const cu_test_t *t = cu_cur;
    cu_raw("FAIL!  : ");
    cu_raw(cu_prog);
    cu_raw("::");
    cu_raw(t ? t->name : "?");
    cu_raw("() ");
    cu_raw(why);
    cu_raw("\n   Loc: [");
    cu_raw(t ? t->file : "?");
    cu_raw("(");
    cu_raw_num(t ? t->line : 0);
    cu_raw(")]\n");
    /* This test failed (cu_failed counts the tests that ended), whether or
     * not a CHECK of it had failed before. */
    cu_raw_totals(1);
}

/* ---- failures ----------------------------------------------------------- */
static inline const char *cu_base(const char *path)
{
    const char *b = path;
    for (const char *p = path; *p; p++)
        if (*p == '/' || *p == '\\')
            b = p + 1;
    return b;
}

static inline void cu_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    const cu_test_t *t = cu_cur;
    printf("FAIL!  : %s::%s() ", cu_prog, t ? t->name : "?");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" at %s:%d\n   Loc: [%s(%d)]\n", cu_base(file), line, file, line);
    fflush(stdout);
    cu_cur_failed = 1;
}

static inline int cu_check(int ok, const char *expr, const char *file, int line)
{
    if (!ok)
        cu_fail(file, line, "CHECK(%s)", expr);
    return ok;
}

static inline int cu_check_eq(long long a, long long b, const char *ea, const char *eb, const char *file, int line)
{
    if (a != b)
        cu_fail(file, line, "CHECK_EQ(%s, %s): %lld != %lld", ea, eb, a, b);
    return a == b;
}

static inline int cu_check_str(const char *a, const char *b, const char *ea, const char *eb, const char *file, int line)
{
    int ok = a && b ? strcmp(a, b) == 0 : a == b;
    if (!ok)
        cu_fail(file, line, "CHECK_STR(%s, %s): \"%s\" != \"%s\"", ea, eb, a ? a : "(null)", b ? b : "(null)");
    return ok;
}

#define CHECK(cond) ((void)cu_check(!!(cond), #cond, __FILE__, __LINE__))
#define CHECK_EQ(a, b) ((void)cu_check_eq((long long)(a), (long long)(b), #a, #b, __FILE__, __LINE__))
#define CHECK_STR(a, b) ((void)cu_check_str((a), (b), #a, #b, __FILE__, __LINE__))
#define REQUIRE(cond)                                   \
    do {                                                \
        if (!cu_check(!!(cond), #cond, __FILE__, __LINE__)) \
            return;                                     \
    } while (0)
#define SKIP(reason)                                                                          \
    do {                                                                                      \
        if (!cu_cur_failed) {                                                                 \
            printf("SKIP   : %s::%s() %s\n   Loc: [%s(%d)]\n", cu_prog, atomic_load(&cu_cur)->name, (reason), \
                   __FILE__, __LINE__);                                                       \
            cu_cur_skipped = 1;                                                               \
        }                                                                                     \
        return;                                                                               \
    } while (0)

/* ---- watchdog and crash handlers ---------------------------------------- */
#ifdef _WIN32
static inline void cu_watch_once(void)
{
    long long d = atomic_load(&cu_deadline_ms);
    if (d && cu_now_ms() > (double)d) {
        cu_abort_report(cu_timeout_why);
        ExitProcess(2);
    }
}

static inline DWORD WINAPI cu_watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        cu_sleep_ms(20);
        cu_watch_once();
    }
    return 0;
}

static inline LONG WINAPI cu_on_crash(EXCEPTION_POINTERS *e)
{
    char why[64];
    snprintf(why, sizeof why, "crashed: exception 0x%08lx", (unsigned long)e->ExceptionRecord->ExceptionCode);
    cu_abort_report(why);
    return EXCEPTION_CONTINUE_SEARCH; /* die as it would have */
}

static inline void cu_arm(int seconds)
{
    atomic_store(&cu_deadline_ms, seconds ? (long long)(cu_now_ms() + seconds * 1000.0) : 0);
}

static inline void cu_start_watchdog(void)
{
    HANDLE t = CreateThread(NULL, 0, cu_watchdog, NULL, 0, NULL);
    if (t)
        CloseHandle(t);
    SetUnhandledExceptionFilter(cu_on_crash);
}
#else
static inline void cu_on_signal(int sig)
{
    if (sig == SIGALRM) {
        cu_abort_report(cu_timeout_why);
        _exit(2);
    }
    const char *why = sig == SIGSEGV ? "crashed: SIGSEGV"
                      : sig == SIGBUS ? "crashed: SIGBUS"
                      : sig == SIGFPE ? "crashed: SIGFPE"
                      : sig == SIGILL ? "crashed: SIGILL"
                                      : "crashed: SIGABRT";
    cu_abort_report(why);
    signal(sig, SIG_DFL);
    raise(sig);
}

static inline void cu_arm(int seconds)
{
    alarm((unsigned)seconds);
}

static inline void cu_start_watchdog(void)
{
    int sigs[] = {SIGALRM, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], cu_on_signal);
}
#endif

/* ---- main ---------------------------------------------------------------- */
/* Constructors run in the order of the source with ELF, in the reverse
 * order with mingw-w64 (.ctors): the order of the lines it is. */
static inline int cu_by_line(const void *a, const void *b)
{
    return ((const cu_test_t *)a)->line - ((const cu_test_t *)b)->line;
}

static inline int cu_main(int argc, char **argv)
{
    static char prog[256];
    snprintf(prog, sizeof prog, "%s", cu_base(argc > 0 ? argv[0] : "tst"));
    size_t pl = strlen(prog);
    if (pl > 4 && (!strcmp(prog + pl - 4, ".exe") || !strcmp(prog + pl - 4, ".EXE")))
        prog[pl - 4] = 0;
    cu_prog = prog;
    qsort(cu_tests, (size_t)cu_ntests, sizeof cu_tests[0], cu_by_line);
    setvbuf(stdout, NULL, _IOLBF, 0);
#ifdef _WIN32
    setvbuf(stdout, NULL, _IONBF, 0); /* msvcrt has no line buffering */
#endif
    if (argc > 1 && !strcmp(argv[1], "-functions")) {
        for (int i = 0; i < cu_ntests; i++)
            printf("%s()\n", cu_tests[i].name);
        return 0;
    }
    for (int a = 1; a < argc; a++) {
        int found = 0;
        for (int i = 0; i < cu_ntests; i++)
            found |= !strcmp(argv[a], cu_tests[i].name);
        if (!found) {
            fprintf(stderr, "%s: no test named %s (-functions lists them)\n", cu_prog, argv[a]);
            return 127;
        }
    }
    int def_timeout = CU_TIMEOUT_S;
    const char *env = getenv("CUNIT_TIMEOUT");
    if (env && atoi(env) > 0)
        def_timeout = atoi(env);

    cu_start_ms = cu_now_ms();
    printf("********* Start testing of %s *********\n", cu_prog);
    cu_start_watchdog();
    for (int i = 0; i < cu_ntests; i++) {
        cu_test_t *t = &cu_tests[i];
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++)
                wanted |= !strcmp(argv[a], t->name);
            if (!wanted)
                continue;
        }
        if (!t->timeout_s)
            t->timeout_s = def_timeout;
        cu_cur = t;
        cu_cur_failed = cu_cur_skipped = 0;
        snprintf(cu_timeout_why, sizeof cu_timeout_why, "timed out after %d s", t->timeout_s);
        cu_arm(t->timeout_s);
        t->fn();
        cu_arm(0);
        if (atomic_load(&cu_over))
            for (;;)
                cu_sleep_ms(1000); /* the watchdog is ending the program */
        if (cu_cur_failed)
            cu_failed++;
        else if (cu_cur_skipped)
            cu_skipped++;
        else {
            cu_passed++;
            printf("PASS   : %s::%s()\n", cu_prog, t->name);
        }
        fflush(stdout);
    }
    cu_cur = NULL;
    if (atomic_exchange(&cu_over, 1))
        for (;;)
            cu_sleep_ms(1000);
    printf("Totals: %d passed, %d failed, %d skipped, 0 blacklisted, %.0fms\n", cu_passed, cu_failed, cu_skipped,
           cu_now_ms() - cu_start_ms);
    printf("********* Finished testing of %s *********\n", cu_prog);
    fflush(stdout);
    return cu_failed > 127 ? 127 : cu_failed;
}

#define CU_MAIN()                      \
    int main(int argc, char **argv)    \
    {                                  \
        return cu_main(argc, argv);    \
    }

#endif
