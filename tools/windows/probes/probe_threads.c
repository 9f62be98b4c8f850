/* probe_threads.c - (g) threads, clocks, random bytes and a locked page:
 *  - mingw-w64's winpthreads: pthread_create/join, a mutex, a condition
 *    variable with pthread_condattr_setclock(CLOCK_MONOTONIC) and a
 *    timedwait 200 ms ahead on that clock (does it wait 200 ms?), the same
 *    on CLOCK_REALTIME, a signal from another thread;
 *  - CreateThread, SRWLOCK, CONDITION_VARIABLE (SleepConditionVariableSRW
 *    with a timeout, WakeConditionVariable), _Thread_local, C11 atomics;
 *  - QueryPerformanceFrequency/Counter (frequency, smallest step),
 *    clock_gettime(CLOCK_MONOTONIC) of winpthreads;
 *  - BCryptGenRandom (system RNG and an RNG algorithm handle) and
 *    RtlGenRandom (advapi32 SystemFunction036);
 *  - VirtualAlloc + VirtualLock of a page for secrets (and of 1 MiB, more
 *    than Windows' default minimum working set lets one lock), checked in
 *    wine's own /proc/self/status (VmLck: is it mlock?); VirtualProtect
 *    PAGE_NOACCESS and back; SecureZeroMemory.
 *
 * What wine 8.0 answered: 17 checks, 3 failed.
 *  winpthreads: threads and mutexes work; pthread_condattr_setclock(
 *    CLOCK_MONOTONIC) FAILS with EINVAL (22): winpthreads' condition
 *    variables take only CLOCK_REALTIME deadlines, so a deadline on the
 *    monotonic clock is long past and pthread_cond_timedwait returns
 *    ETIMEDOUT (138) at once (winpthreads' doing, not wine's);
 *    CLOCK_REALTIME deadlines and pthread_cond_timedwait_relative_np wait
 *    the 200 ms;
 *  CreateThread, SRWLOCK, CONDITION_VARIABLE: work;
 *    SleepConditionVariableSRW(200): ERROR_TIMEOUT (1460) after 200 ms;
 *    _Thread_local works;
 *  QueryPerformanceFrequency: 10000000 Hz, steps of 1 tick (100 ns);
 *  BCryptGenRandom (both ways) and RtlGenRandom: work;
 *  VirtualLock returns TRUE (also for 1 MiB) but wine's process shows
 *    VmLck 0 kB: wine does not lock the page (not testable here);
 *    VirtualProtect PAGE_NOACCESS and back, SecureZeroMemory: work;
 *  no C11 <threads.h> in mingw-w64 10.
 */
#include "probe.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        pthread_mutex_lock(&mtx);
        counter++;
        pthread_mutex_unlock(&mtx);
    }
    return NULL;
}

static pthread_cond_t cond_mono;
static int flag;

static void *signaller(void *arg)
{
    (void)arg;
    Sleep(50);
    pthread_mutex_lock(&mtx);
    flag = 1;
    pthread_cond_signal(&cond_mono);
    pthread_mutex_unlock(&mtx);
    return NULL;
}

static double timedwait_ms(pthread_cond_t *c, clockid_t clk, long ms, int *rc)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    ts.tv_nsec += (ms % 1000) * 1000000L;
    ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    double t0 = now_ms();
    pthread_mutex_lock(&mtx);
    *rc = pthread_cond_timedwait(c, &mtx, &ts);
    pthread_mutex_unlock(&mtx);
    return now_ms() - t0;
}

static SRWLOCK srw = SRWLOCK_INIT;
static CONDITION_VARIABLE cv = CONDITION_VARIABLE_INIT;
static long wcounter;
static int wflag;
static _Thread_local int tls_value;
static atomic_int tls_distinct;

static DWORD WINAPI wadder(void *arg)
{
    tls_value = (int)(INT_PTR)arg;
    for (int i = 0; i < 100000; i++) {
        AcquireSRWLockExclusive(&srw);
        wcounter++;
        ReleaseSRWLockExclusive(&srw);
    }
    if (tls_value == (int)(INT_PTR)arg)
        atomic_fetch_add(&tls_distinct, 1);
    return 0;
}

static DWORD WINAPI wwaker(void *arg)
{
    (void)arg;
    Sleep(50);
    AcquireSRWLockExclusive(&srw);
    wflag = 1;
    ReleaseSRWLockExclusive(&srw);
    WakeConditionVariable(&cv);
    return 0;
}

static long vmlck_kb(void)
{
    /* wine's process is the Linux process: its /proc/self through Z: */
    FILE *f = fopen("Z:\\proc\\self\\status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmLck:", 6))
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("probe_threads: (g) threads, clocks, random bytes, a locked page\n");

    /* winpthreads */
    pthread_t t[4];
    int ok = 1;
    for (int i = 0; i < 4; i++)
        ok &= pthread_create(&t[i], NULL, adder, NULL) == 0;
    for (int i = 0; i < 4; i++)
        ok &= pthread_join(t[i], NULL) == 0;
    check(ok && counter == 400000, "winpthreads: 4 threads x 100000 increments under a pthread mutex = %ld", counter);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    int sc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    check(sc == 0, "pthread_condattr_setclock(CLOCK_MONOTONIC): %d", sc);
    pthread_cond_init(&cond_mono, &ca);
    int rc;
    double dt = timedwait_ms(&cond_mono, CLOCK_MONOTONIC, 200, &rc);
    check(rc == ETIMEDOUT && dt >= 190 && dt < 1000,
          "pthread_cond_timedwait, CLOCK_MONOTONIC cond, deadline now+200 ms on CLOCK_MONOTONIC: rc %d (%s), waited %.1f ms",
          rc, rc == ETIMEDOUT ? "ETIMEDOUT" : "?", dt);
    pthread_cond_t cond_rt = PTHREAD_COND_INITIALIZER;
    dt = timedwait_ms(&cond_rt, CLOCK_REALTIME, 200, &rc);
    check(rc == ETIMEDOUT && dt >= 190 && dt < 1000,
          "pthread_cond_timedwait, default cond, deadline now+200 ms on CLOCK_REALTIME: rc %d, waited %.1f ms", rc, dt);
    pthread_t s;
    pthread_create(&s, NULL, signaller, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 5;
    double t0 = now_ms();
    pthread_mutex_lock(&mtx);
    rc = 0;
    while (!flag && rc == 0)
        rc = pthread_cond_timedwait(&cond_mono, &mtx, &ts);
    pthread_mutex_unlock(&mtx);
    check(flag && rc == 0, "pthread_cond_signal from another thread after 50 ms wakes the monotonic timedwait (%.1f ms)",
          now_ms() - t0);
    pthread_join(s, NULL);
    struct timespec rel = {0, 200000000L};
    t0 = now_ms();
    pthread_mutex_lock(&mtx);
    rc = pthread_cond_timedwait_relative_np(&cond_rt, &mtx, &rel);
    pthread_mutex_unlock(&mtx);
    dt = now_ms() - t0;
    check(rc == ETIMEDOUT && dt >= 190 && dt < 1000,
          "winpthreads' pthread_cond_timedwait_relative_np(200 ms): rc %d, waited %.1f ms", rc, dt);
    struct timespec res;
    clock_getres(CLOCK_MONOTONIC, &res);
    note("winpthreads clock_getres(CLOCK_MONOTONIC): %ld ns", res.tv_nsec);

    /* Win32 threads */
    HANDLE wt[4];
    for (int i = 0; i < 4; i++)
        wt[i] = CreateThread(NULL, 0, wadder, (void *)(INT_PTR)(i + 1), 0, NULL);
    WaitForMultipleObjects(4, wt, TRUE, INFINITE);
    for (int i = 0; i < 4; i++)
        CloseHandle(wt[i]);
    check(wcounter == 400000, "CreateThread: 4 threads x 100000 increments under an SRWLOCK = %ld", wcounter);
    check(atomic_load(&tls_distinct) == 4, "_Thread_local: each thread kept its own value (%d of 4)",
          atomic_load(&tls_distinct));
    AcquireSRWLockExclusive(&srw);
    t0 = now_ms();
    BOOL sl = SleepConditionVariableSRW(&cv, &srw, 200, 0);
    DWORD sle = sl ? 0 : GetLastError();
    dt = now_ms() - t0;
    ReleaseSRWLockExclusive(&srw);
    check(!sl && sle == ERROR_TIMEOUT && dt >= 190, "SleepConditionVariableSRW(200 ms): %s after %.1f ms",
          sl ? "TRUE" : err_str(sle), dt);
    HANDLE ww = CreateThread(NULL, 0, wwaker, NULL, 0, NULL);
    AcquireSRWLockExclusive(&srw);
    t0 = now_ms();
    sl = TRUE;
    while (!wflag && sl)
        sl = SleepConditionVariableSRW(&cv, &srw, 5000, 0);
    ReleaseSRWLockExclusive(&srw);
    check(wflag && sl, "WakeConditionVariable from another thread after 50 ms (%.1f ms)", now_ms() - t0);
    WaitForSingleObject(ww, INFINITE);
    CloseHandle(ww);

    /* clocks */
    LARGE_INTEGER f, a, b;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&a);
    long long step = 0;
    for (int i = 0; i < 1000000 && !step; i++) {
        QueryPerformanceCounter(&b);
        step = b.QuadPart - a.QuadPart;
    }
    check(f.QuadPart > 0 && step > 0, "QueryPerformanceFrequency %lld Hz; smallest step seen %lld tick(s) = %.0f ns",
          (long long)f.QuadPart, step, step * 1e9 / (double)f.QuadPart);

    /* random bytes */
    unsigned char r1[32], r2[32], zero[32] = {0};
    LONG st = BCryptGenRandom(NULL, r1, sizeof r1, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    LONG st2 = BCryptGenRandom(NULL, r2, sizeof r2, BCRYPT_USE_SYSTEM_PREFERRED_RNG);
    check(st == 0 && st2 == 0 && memcmp(r1, r2, 32) && memcmp(r1, zero, 32),
          "BCryptGenRandom(NULL, BCRYPT_USE_SYSTEM_PREFERRED_RNG): status 0x%08lx, two calls differ", (unsigned long)st);
    BCRYPT_ALG_HANDLE alg = NULL;
    st = BCryptOpenAlgorithmProvider(&alg, BCRYPT_RNG_ALGORITHM, NULL, 0);
    st2 = alg ? BCryptGenRandom(alg, r1, sizeof r1, 0) : -1;
    check(st == 0 && st2 == 0, "BCryptOpenAlgorithmProvider(RNG) + BCryptGenRandom: 0x%08lx, 0x%08lx",
          (unsigned long)st, (unsigned long)st2);
    if (alg)
        BCryptCloseAlgorithmProvider(alg, 0);
    typedef BOOLEAN(WINAPI * rtlgenrandom_t)(PVOID, ULONG);
    HMODULE adv = LoadLibraryA("advapi32.dll");
    rtlgenrandom_t rgr = adv ? (rtlgenrandom_t)(void (*)(void))GetProcAddress(adv, "SystemFunction036") : NULL;
    BOOLEAN rg = rgr ? rgr(r2, sizeof r2) : 0;
    check(rgr && rg && memcmp(r1, r2, 32), "RtlGenRandom (advapi32 SystemFunction036): %s",
          rgr ? (rg ? "TRUE" : "FALSE") : "not found");

    /* a locked page for secrets */
    long before = vmlck_kb();
    unsigned char *page = VirtualAlloc(NULL, 4096, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    BOOL vl = page && VirtualLock(page, 4096);
    DWORD vle = vl ? 0 : GetLastError();
    long after = vmlck_kb();
    check(vl, "VirtualAlloc + VirtualLock(4096)%s%s", vl ? "" : ": ", vl ? "" : err_str(vle));
    note("wine's /proc/self/status VmLck: %ld kB before, %ld kB after the lock (%s)", before, after,
         after > before ? "mlock'ed" : "not mlock'ed");
    if (page) {
        memset(page, 0xA5, 4096);
        SecureZeroMemory(page, 4096);
        check(page[0] == 0 && page[4095] == 0, "SecureZeroMemory on it");
        DWORD old;
        BOOL na = VirtualProtect(page, 4096, PAGE_NOACCESS, &old);
        BOOL back = VirtualProtect(page, 4096, PAGE_READWRITE, &old);
        check(na && back && old == PAGE_NOACCESS, "VirtualProtect PAGE_NOACCESS and back");
        BOOL vu = VirtualUnlock(page, 4096);
        note("VirtualUnlock: %s; VmLck now %ld kB", vu ? "TRUE" : last_err(), vmlck_kb());
        VirtualFree(page, 0, MEM_RELEASE);
    }
    SIZE_T big = 1 << 20;
    unsigned char *mb = VirtualAlloc(NULL, big, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    BOOL bl = mb && VirtualLock(mb, big);
    DWORD ble = bl ? 0 : GetLastError();
    note("VirtualLock of 1 MiB without SetProcessWorkingSetSize: %s (Windows: ERROR_WORKING_SET_QUOTA beyond the minimum working set); VmLck %ld kB",
         bl ? "TRUE" : err_str(ble), vmlck_kb());
    if (mb)
        VirtualFree(mb, 0, MEM_RELEASE);
#if defined(__has_include)
#if __has_include(<threads.h>)
    note("C11 <threads.h>: present");
#else
    note("C11 <threads.h>: not in mingw-w64 10 (use winpthreads or Win32)");
#endif
#endif
    return probe_end("probe_threads");
}
