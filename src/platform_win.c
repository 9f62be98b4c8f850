/*
 * platform_win.c - the platform layer on Windows (platform.h): Win32
 * threads and locks (SRWLOCK, CONDITION_VARIABLE, InitOnce), events, one
 * I/O completion port for the monitor's poller, named pipes for the local
 * endpoint (a DACL for our user only, the peer's pid and user from the
 * pipe and the two processes' tokens), pagefile sections for rings (the
 * router pulls the sender's handle out of the sender's process), Winsock
 * for tcp. Built with mingw-w64 (tools/windows/CMakeLists.txt).
 *
 * The API takes bare handles; what a pipe or socket needs besides its
 * handle (its kind, the peer's pid, the pending write of
 * mpr__stream_send_some, the zero-byte read of mpr__wait, the envelope of
 * mpr__ipc_recv, the completion port it was given to) is a record in a
 * small table keyed by the handle's value, made with the handle and freed
 * with it (mpr__fd_close). Handles without a record (events, sections, the
 * local endpoint's event) are plain kernel objects.
 *
 * Every pipe handle is overlapped. A call that waits for its own I/O uses
 * an event whose handle has its low bit set, which keeps the completion
 * off the port the handle may be associated with (only the poller's
 * zero-byte reads go there).
 */
#define WIN32_LEAN_AND_MEAN
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 /* Windows 10 */
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <bcrypt.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "platform.h"

MPR__STATIC_ASSERT(sizeof(mpr__mutex) == sizeof(SRWLOCK), "mpr__mutex is an SRWLOCK");
MPR__STATIC_ASSERT(sizeof(mpr__cond) == sizeof(CONDITION_VARIABLE), "mpr__cond is a CONDITION_VARIABLE");
MPR__STATIC_ASSERT(sizeof(mpr__once) == sizeof(INIT_ONCE), "mpr__once is an INIT_ONCE");
MPR__STATIC_ASSERT(sizeof(mpr__fd) == sizeof(HANDLE) && sizeof(mpr__fd) == sizeof(SOCKET),
                   "mpr__fd holds a HANDLE or a SOCKET");

#define H(fd) ((HANDLE)(fd))
#define S(fd) ((SOCKET)(fd))
#define PIPE_BUFFER (64u * 1024u)   /* each direction of a pipe instance */
#define LISTEN_INSTANCES 4          /* instances waiting for clients */
#define COPY_MAX (256u * 1024u)     /* the most one send_some copies */
#define WRITE_CHUNK (1024u * 1024u) /* send_all: one WriteFile at most */

/* ---- clocks, random bytes, errors ---- */

int64_t mpr__now_ns(void)
{
    static LARGE_INTEGER freq; /* the same for the system's life */
    LARGE_INTEGER c;
    if (!freq.QuadPart)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&c);
    /* Whole seconds and the rest apart: no overflow of the product. */
    int64_t s = c.QuadPart / freq.QuadPart, rest = c.QuadPart % freq.QuadPart;
    return s * 1000000000 + rest * 1000000000 / freq.QuadPart;
}

int mpr__random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ULONG chunk = n > 0x10000000u ? 0x10000000u : (ULONG)n;
        if (BCryptGenRandom(NULL, p, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return MPR_EIO;
        p += chunk;
        n -= chunk;
    }
    return 0;
}

/* Win32 (GetLastError) and Winsock (WSAGetLastError) codes: one number
 * space (Winsock's are 10000 and up). */
int mpr__errno_code(int err)
{
    switch ((DWORD)err) {
    case ERROR_INVALID_PARAMETER:
    case ERROR_INVALID_HANDLE:
    case ERROR_INVALID_NAME:
    case WSAEINVAL:
    case WSAEBADF:
    case WSAENOTSOCK:
    case WSAEFAULT:
        return MPR_EINVAL;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
    case ERROR_NONPAGED_SYSTEM_RESOURCES:
    case ERROR_PAGED_SYSTEM_RESOURCES:
    case ERROR_COMMITMENT_LIMIT:
    case ERROR_WORKING_SET_QUOTA:
    case WSAENOBUFS:
        return MPR_ENOMEM;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
        return MPR_ENOENT;
    case ERROR_ACCESS_DENIED:
    case ERROR_PRIVILEGE_NOT_HELD:
    case WSAEACCES:
        return MPR_EACCES;
    case ERROR_TOO_MANY_OPEN_FILES:
    case WSAEMFILE:
        return MPR_EMFILE;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
    case ERROR_NETNAME_DELETED:
    case ERROR_CONNECTION_ABORTED:
    case WSAECONNRESET:
    case WSAECONNABORTED:
    case WSAENOTCONN:
    case WSAESHUTDOWN:
    case WSAENETRESET:
        return MPR_EPIPE;
    case WAIT_TIMEOUT:
    case ERROR_SEM_TIMEOUT:
    case ERROR_TIMEOUT:
    case WSAETIMEDOUT:
        return MPR_ETIMEDOUT;
    case ERROR_CONNECTION_REFUSED:
    case ERROR_HOST_UNREACHABLE:
    case ERROR_NETWORK_UNREACHABLE:
    case WSAECONNREFUSED:
    case WSAEHOSTUNREACH:
    case WSAENETUNREACH:
        return MPR_ECONNREFUSED;
    case ERROR_PIPE_BUSY:
    case WSAEWOULDBLOCK:
    case WSAEINPROGRESS:
        return MPR_EAGAIN;
    case ERROR_ALREADY_EXISTS:
    case WSAEADDRINUSE:
        return MPR_EADDRINUSE;
    case WSAEADDRNOTAVAIL:
        return MPR_EADDRNOTAVAIL;
    case ERROR_NOT_SUPPORTED:
    case ERROR_CALL_NOT_IMPLEMENTED:
    case WSAEAFNOSUPPORT:
    case WSAEOPNOTSUPP:
    case WSAEPROTONOSUPPORT:
    case WSAESOCKTNOSUPPORT:
    case WSAEPFNOSUPPORT:
        return MPR_ENOTSUP;
    case WSAEMSGSIZE:
        return MPR_EMSGSIZE;
    case WSAEALREADY:
        return MPR_EALREADY;
    default:
        return MPR_EIO;
    }
}

/* Winsock sets the thread's last error too (WSAGetLastError reads it). */
int mpr__syserr(void)
{
    return mpr__errno_code((int)GetLastError());
}

/* The peer of a pipe or socket is gone? */
static int gone_code(DWORD e)
{
    return e == ERROR_BROKEN_PIPE || e == ERROR_NO_DATA || e == ERROR_PIPE_NOT_CONNECTED ||
           e == ERROR_NETNAME_DELETED || e == ERROR_CONNECTION_ABORTED || e == WSAECONNRESET ||
           e == WSAECONNABORTED || e == WSAENOTCONN || e == WSAESHUTDOWN || e == WSAENETRESET;
}

/* ---- memory for secrets; the process token ---- */

size_t mpr__page_size(void)
{
    static size_t page;
    if (!page) {
        SYSTEM_INFO si;
        GetSystemInfo(&si);
        page = si.dwPageSize;
    }
    return page;
}

static size_t page_round(size_t size)
{
    size_t page = mpr__page_size();
    return (size + page - 1) / page * page;
}

/* No fork on Windows: nothing to wipe in a child. Not kept out of crash
 * dumps (a per-region exclusion exists only for Windows Error Reporting
 * on recent systems). */
void *mpr__secure_alloc(size_t size)
{
    return VirtualAlloc(NULL, page_round(size), MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}

void mpr__secure_free(void *p, size_t size)
{
    if (!p)
        return;
    mpr__wipe(p, page_round(size));
    VirtualFree(p, 0, MEM_RELEASE);
}

/* No fork: the token is one random number for the process's life. */
static _Atomic uint64_t token_word;
const _Atomic uint64_t *mpr__token_word = &token_word;

uint64_t mpr__process_token(void)
{
    uint64_t t = atomic_load(&token_word);
    while (t == 0) {
        uint64_t fresh = 0;
        if (mpr__random(&fresh, sizeof fresh) < 0)
            fresh = (uint64_t)GetCurrentProcessId() << 32 ^ (uint64_t)mpr__now_ns();
        if (fresh == 0)
            continue;
        if (atomic_compare_exchange_strong(&token_word, &t, fresh))
            t = fresh;
    }
    return t;
}

/* ---- address space ---- */

void *mpr__vm_reserve(size_t size)
{
    /* Committed now (platform.h): pages cost memory only once touched. */
    return VirtualAlloc(NULL, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
}

void mpr__vm_commit(void *addr, size_t len)
{
    (void)addr;
    (void)len;
}

void mpr__vm_release(void *addr, size_t size)
{
    (void)size;
    if (addr)
        VirtualFree(addr, 0, MEM_RELEASE);
}

/* ---- threads and locks ---- */

struct tramp {
    void *(*fn)(void *);
    void *arg;
};

static unsigned __stdcall thread_main(void *p)
{
    struct tramp t = *(struct tramp *)p;
    free(p);
    t.fn(t.arg);
    return 0;
}

int mpr__thread_start(mpr__thread *t, void *(*fn)(void *), void *arg)
{
    /* No signals to block: just start it (_beginthreadex: the C runtime
     * knows the thread). */
    struct tramp *tr = malloc(sizeof *tr);
    if (!tr)
        return MPR_ENOMEM;
    tr->fn = fn;
    tr->arg = arg;
    unsigned id = 0;
    uintptr_t h = _beginthreadex(NULL, 0, thread_main, tr, 0, &id);
    if (!h) {
        int rc = mpr__syserr();
        free(tr);
        return rc == MPR_EIO ? MPR_ENOMEM : rc;
    }
    t->handle = (void *)h;
    t->id = id;
    return 0;
}

void mpr__thread_join(mpr__thread t)
{
    WaitForSingleObject(t.handle, INFINITE);
    CloseHandle(t.handle);
}

int mpr__thread_is_self(mpr__thread t)
{
    return t.id == GetCurrentThreadId();
}

mpr__thread mpr__thread_self(void)
{
    mpr__thread t = {NULL, GetCurrentThreadId()};
    return t;
}

struct once_fn {
    void (*fn)(void);
};

static BOOL CALLBACK once_cb(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)ctx;
    ((struct once_fn *)param)->fn();
    return TRUE;
}

void mpr__once_run(mpr__once *once, void (*fn)(void))
{
    struct once_fn f = {fn};
    InitOnceExecuteOnce((PINIT_ONCE)once, once_cb, &f, NULL);
}

void mpr__mutex_init(mpr__mutex *m)
{
    InitializeSRWLock((PSRWLOCK)m);
}

void mpr__mutex_destroy(mpr__mutex *m)
{
    (void)m; /* an SRWLOCK holds nothing */
}

void mpr__mutex_lock(mpr__mutex *m)
{
    AcquireSRWLockExclusive((PSRWLOCK)m);
}

void mpr__mutex_unlock(mpr__mutex *m)
{
    ReleaseSRWLockExclusive((PSRWLOCK)m);
}

void mpr__cond_init(mpr__cond *c)
{
    InitializeConditionVariable((PCONDITION_VARIABLE)c);
}

void mpr__cond_destroy(mpr__cond *c)
{
    (void)c;
}

void mpr__cond_wait(mpr__cond *c, mpr__mutex *m)
{
    SleepConditionVariableSRW((PCONDITION_VARIABLE)c, (PSRWLOCK)m, INFINITE, 0);
}

void mpr__cond_wait_until(mpr__cond *c, mpr__mutex *m, int64_t deadline_ns)
{
    int64_t left = deadline_ns - mpr__now_ns();
    if (left <= 0)
        return;
    int64_t ms = (left + 999999) / 1000000;
    if (ms >= INFINITE)
        ms = INFINITE - 1;
    SleepConditionVariableSRW((PCONDITION_VARIABLE)c, (PSRWLOCK)m, (DWORD)ms, 0);
}

void mpr__cond_signal(mpr__cond *c)
{
    WakeConditionVariable((PCONDITION_VARIABLE)c);
}

void mpr__cond_broadcast(mpr__cond *c)
{
    WakeAllConditionVariable((PCONDITION_VARIABLE)c);
}

/* ---- the records of pipes and sockets ---- */

enum { K_PIPE = 1, K_SOCKET, K_LISTEN_SOCKET };

typedef struct hrec {
    struct hrec *next; /* in its bucket */
    mpr__fd h;
    int kind;
    int server;     /* a pipe's server end (accepted) */
    DWORD peer_pid; /* a server end's client */
    HANDLE port;    /* the completion port it is associated with (for good) */
    HANDLE ev_sync; /* calls that wait for their own I/O */
    /* the write of mpr__stream_send_some still pending (pipes) */
    OVERLAPPED wov;
    HANDLE ev_w;
    unsigned char *wbuf;
    size_t wcap;
    int wpending;
    /* the zero-byte read of mpr__wait, pending between calls */
    OVERLAPPED rov;
    HANDLE ev_r;
    int rpending;
    HANDLE ev_sel; /* sockets: mpr__wait's WSAEventSelect for OUT */
    HANDLE kept;   /* the copy of a handle sent (mpr__ipc_send_shm) */
    /* mpr__ipc_recv's envelope */
    int env_done;
    unsigned env_have;
    unsigned char env[8];
} hrec;

#define BUCKETS 256
static SRWLOCK recs_lock = SRWLOCK_INIT;
static hrec *recs[BUCKETS];

static unsigned bucket_of(mpr__fd h)
{
    return (unsigned)(((uintptr_t)h >> 2) % BUCKETS);
}

static hrec *rec_add(mpr__fd h, int kind)
{
    hrec *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->h = h;
    r->kind = kind;
    unsigned b = bucket_of(h);
    AcquireSRWLockExclusive(&recs_lock);
    r->next = recs[b];
    recs[b] = r;
    ReleaseSRWLockExclusive(&recs_lock);
    return r;
}

/* The record of h, or NULL. Only the handle's user touches it, and only it
 * frees it: the pointer stays good without the lock. */
static hrec *rec_get(mpr__fd h)
{
    hrec *r;
    AcquireSRWLockShared(&recs_lock);
    for (r = recs[bucket_of(h)]; r && r->h != h; r = r->next)
        ;
    ReleaseSRWLockShared(&recs_lock);
    return r;
}

static hrec *rec_take(mpr__fd h)
{
    hrec *r = NULL;
    AcquireSRWLockExclusive(&recs_lock);
    for (hrec **at = &recs[bucket_of(h)]; *at; at = &(*at)->next) {
        if ((*at)->h == h) {
            r = *at;
            *at = r->next;
            break;
        }
    }
    ReleaseSRWLockExclusive(&recs_lock);
    return r;
}

/* An event of a record, made when first wanted (manual-reset). */
static HANDLE lazy_event(HANDLE *ev)
{
    if (!*ev)
        *ev = CreateEventW(NULL, TRUE, FALSE, NULL);
    return *ev;
}

/* The low bit: the completion stays off any port (see the top). */
static HANDLE quiet(HANDLE ev)
{
    return (HANDLE)((uintptr_t)ev | 1);
}

/* Wait for an operation whose OVERLAPPED has the quiet form of ev: on ev
 * itself (not through GetOverlappedResult's wait, which would wait on the
 * tagged value), then its result. */
static BOOL io_result(HANDLE h, OVERLAPPED *ov, HANDLE ev, DWORD *n)
{
    while (!HasOverlappedIoCompleted(ov))
        WaitForSingleObject(ev, INFINITE);
    return GetOverlappedResult(h, ov, n, FALSE);
}

/* Wait for an operation of ours that was cancelled (or completed). */
static void finish_io(HANDLE h, OVERLAPPED *ov, HANDLE ev)
{
    DWORD n;
    io_result(h, ov, ev, &n);
}

/* Close a record's handle: its pending I/O cancelled and finished first
 * (the OVERLAPPEDs live in the record). */
static void rec_close(hrec *r)
{
    if (r->rpending || r->wpending) {
        CancelIoEx(H(r->h), NULL);
        if (r->rpending)
            finish_io(H(r->h), &r->rov, r->ev_r);
        if (r->wpending)
            finish_io(H(r->h), &r->wov, r->ev_w);
    }
    if (r->kind == K_PIPE)
        CloseHandle(H(r->h));
    else
        closesocket(S(r->h));
    if (r->ev_sync)
        CloseHandle(r->ev_sync);
    if (r->ev_w)
        CloseHandle(r->ev_w);
    if (r->ev_r)
        CloseHandle(r->ev_r);
    if (r->ev_sel)
        WSACloseEvent(r->ev_sel);
    if (r->kept)
        CloseHandle(r->kept);
    free(r->wbuf);
    free(r);
}

void mpr__fd_close(mpr__fd fd)
{
    if (fd < 0)
        return;
    hrec *r = rec_take(fd);
    if (r)
        rec_close(r);
    else
        CloseHandle(H(fd));
}

int mpr__fd_room(void)
{
    return 1; /* no descriptor limit of that kind (platform.h) */
}

/* ---- events: manual-reset ---- */

int mpr__event_open(mpr__event *e)
{
    HANDLE h = CreateEventW(NULL, TRUE, FALSE, NULL);
    e->rfd = e->wfd = h ? (mpr__fd)h : MPR__NO_FD;
    return h ? 0 : mpr__syserr();
}

void mpr__event_close(mpr__event *e)
{
    if (e->rfd >= 0)
        CloseHandle(H(e->rfd));
    e->rfd = e->wfd = MPR__NO_FD;
}

void mpr__event_set(mpr__event *e)
{
    SetEvent(H(e->wfd));
}

void mpr__event_clear(mpr__event *e)
{
    ResetEvent(H(e->rfd));
}

/* ---- pipes: I/O that waits for itself ---- */

/* One read or write, waited for: 0 with *done, or the Win32 error. */
static DWORD pipe_io(hrec *r, int write, void *buf, DWORD n, DWORD *done)
{
    HANDLE ev = lazy_event(&r->ev_sync);
    if (!ev)
        return GetLastError();
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = quiet(ev);
    BOOL ok = write ? WriteFile(H(r->h), buf, n, NULL, &ov) : ReadFile(H(r->h), buf, n, NULL, &ov);
    if (!ok && GetLastError() != ERROR_IO_PENDING)
        return GetLastError();
    if (!io_result(H(r->h), &ov, ev, done))
        return GetLastError();
    return 0;
}

/* The send_some write still pending: finished (wait) or looked at. 0 when
 * none is pending (any more), ERROR_IO_INCOMPLETE, or its error. */
static DWORD pipe_write_done(hrec *r, int wait)
{
    if (!r->wpending)
        return 0;
    DWORD n;
    if (!(wait ? io_result(H(r->h), &r->wov, r->ev_w, &n)
               : GetOverlappedResult(H(r->h), &r->wov, &n, FALSE))) {
        DWORD e = GetLastError();
        if (e == ERROR_IO_INCOMPLETE)
            return e;
        r->wpending = 0;
        return e;
    }
    r->wpending = 0;
    return 0;
}

static long pipe_recv(hrec *r, void *buf, size_t n)
{
    DWORD avail = 0;
    if (!PeekNamedPipe(H(r->h), NULL, 0, NULL, &avail, NULL)) {
        DWORD e = GetLastError();
        return gone_code(e) ? 0 : mpr__errno_code((int)e);
    }
    if (avail == 0)
        return MPR_EAGAIN;
    DWORD want = n < avail ? (DWORD)n : avail, got = 0;
    if (want > 0x40000000u)
        want = 0x40000000u;
    DWORD e = pipe_io(r, 0, buf, want, &got);
    if (e)
        return gone_code(e) ? 0 : mpr__errno_code((int)e);
    return (long)got;
}

static int grow_wbuf(hrec *r, size_t n)
{
    if (r->wcap >= n)
        return 0;
    unsigned char *b = realloc(r->wbuf, n);
    if (!b)
        return MPR_ENOMEM;
    r->wbuf = b;
    r->wcap = n;
    return 0;
}

static long pipe_send_some(hrec *r, const void *buf, size_t n)
{
    DWORD e = pipe_write_done(r, 0);
    if (e == ERROR_IO_INCOMPLETE)
        return MPR_EAGAIN;
    if (e)
        return gone_code(e) ? MPR_EPIPE : mpr__errno_code((int)e);
    if (n > COPY_MAX)
        n = COPY_MAX;
    if (grow_wbuf(r, n) < 0 || !lazy_event(&r->ev_w))
        return MPR_ENOMEM;
    memcpy(r->wbuf, buf, n);
    memset(&r->wov, 0, sizeof r->wov);
    r->wov.hEvent = quiet(r->ev_w);
    if (!WriteFile(H(r->h), r->wbuf, (DWORD)n, NULL, &r->wov)) {
        e = GetLastError();
        if (e != ERROR_IO_PENDING)
            return gone_code(e) ? MPR_EPIPE : mpr__errno_code((int)e);
    }
    /* Done, or pending on our copy: sent either way (platform.h). */
    r->wpending = 1;
    e = pipe_write_done(r, 0);
    if (e && e != ERROR_IO_INCOMPLETE)
        return gone_code(e) ? MPR_EPIPE : mpr__errno_code((int)e);
    return (long)n;
}

static int pipe_write_all(hrec *r, const unsigned char *p, size_t n)
{
    while (n > 0) {
        DWORD chunk = n > WRITE_CHUNK ? WRITE_CHUNK : (DWORD)n, done = 0;
        DWORD e = pipe_io(r, 1, (void *)p, chunk, &done);
        if (e)
            return gone_code(e) ? MPR_EPIPE : mpr__errno_code((int)e);
        p += done;
        n -= done;
    }
    return 0;
}

static int pipe_send_all(hrec *r, const void *a, size_t an, const void *b, size_t bn)
{
    DWORD e = pipe_write_done(r, 1);
    if (e)
        return gone_code(e) ? MPR_EPIPE : mpr__errno_code((int)e);
    if (bn && an + bn <= PIPE_BUFFER) {
        /* One write (under wine each one is a trip to the server). */
        if (grow_wbuf(r, an + bn) < 0)
            return MPR_ENOMEM;
        memcpy(r->wbuf, a, an);
        memcpy(r->wbuf + an, b, bn);
        return pipe_write_all(r, r->wbuf, an + bn);
    }
    int rc = pipe_write_all(r, a, an);
    return rc == 0 && bn ? pipe_write_all(r, b, bn) : rc;
}

/* ---- byte streams ---- */

long mpr__stream_recv(mpr__fd fd, void *buf, size_t n)
{
    hrec *r = rec_get(fd);
    if (r && r->kind == K_PIPE)
        return pipe_recv(r, buf, n);
    int got = recv(S(fd), buf, n > 0x40000000u ? 0x40000000 : (int)n, 0);
    if (got >= 0)
        return got;
    DWORD e = (DWORD)WSAGetLastError();
    if (e == WSAEWOULDBLOCK)
        return MPR_EAGAIN;
    return gone_code(e) ? 0 : mpr__errno_code((int)e);
}

long mpr__stream_send_some(mpr__fd fd, const void *buf, size_t n)
{
    hrec *r = rec_get(fd);
    if (r && r->kind == K_PIPE)
        return pipe_send_some(r, buf, n);
    int w = send(S(fd), buf, n > 0x40000000u ? 0x40000000 : (int)n, 0);
    if (w >= 0)
        return w;
    DWORD e = (DWORD)WSAGetLastError();
    if (e == WSAEWOULDBLOCK)
        return MPR_EAGAIN;
    return gone_code(e) ? MPR_EPIPE : mpr__errno_code((int)e);
}

static int sock_send_all(mpr__fd fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        long w = mpr__stream_send_some(fd, p, n);
        if (w == MPR_EAGAIN) {
            mpr__waitfd wf = {fd, MPR__WAIT_OUT, 0};
            mpr__wait(&wf, 1, 1000);
            continue;
        }
        if (w < 0)
            return (int)w;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int mpr__stream_send_all(mpr__fd fd, const void *a, size_t an, const void *b, size_t bn)
{
    hrec *r = rec_get(fd);
    if (r && r->kind == K_PIPE)
        return pipe_send_all(r, a, an, b, bn);
    int rc = sock_send_all(fd, a, an);
    return rc == 0 && bn ? sock_send_all(fd, b, bn) : rc;
}

size_t mpr__stream_unread(mpr__fd fd)
{
    hrec *r = rec_get(fd);
    if (r && r->kind == K_PIPE) {
        DWORD avail = 0;
        return PeekNamedPipe(H(fd), NULL, 0, NULL, &avail, NULL) ? avail : 0;
    }
    u_long n = 0;
    return ioctlsocket(S(fd), FIONREAD, &n) == 0 ? n : 0;
}

void mpr__stream_shutdown_close(mpr__fd fd)
{
    if (fd < 0)
        return;
    /* No fork, no inheritable handle of ours: closing our handle ends the
     * connection for every holder (platform.h). A pipe is not
     * disconnected, so the peer reads what we wrote before (an ACK, say). */
    hrec *r = rec_get(fd);
    if (r && r->kind == K_SOCKET)
        shutdown(S(fd), SD_SEND);
    mpr__fd_close(fd);
}

int mpr__stream_peer_gone(mpr__fd fd)
{
    hrec *r = rec_get(fd);
    if (r && r->kind == K_PIPE) {
        DWORD avail;
        return !PeekNamedPipe(H(fd), NULL, 0, NULL, &avail, NULL) && gone_code(GetLastError());
    }
    WSAPOLLFD p = {S(fd), POLLRDNORM, 0};
    return WSAPoll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* ---- waiting on a few handles ---- */

static char zero_byte; /* the buffer of zero-byte reads */

/* mpr__wait's zero-byte read on a pipe or socket: 1 when it is ready
 * (completed, or failed: *hup), 0 while pending (its event then tells). */
static int wait_read(hrec *r, int *hup)
{
    *hup = 0;
    if (r->rpending) {
        DWORD n;
        if (GetOverlappedResult(H(r->h), &r->rov, &n, FALSE)) {
            r->rpending = 0;
            return 1;
        }
        DWORD e = GetLastError();
        if (e == ERROR_IO_INCOMPLETE)
            return 0;
        r->rpending = 0;
        *hup = 1;
        return 1;
    }
    if (!lazy_event(&r->ev_r)) {
        *hup = 1; /* cannot wait: say ready, the read will tell */
        return 1;
    }
    memset(&r->rov, 0, sizeof r->rov);
    r->rov.hEvent = quiet(r->ev_r);
    BOOL ok;
    DWORD e;
    if (r->kind == K_PIPE) {
        ok = ReadFile(H(r->h), &zero_byte, 0, NULL, &r->rov);
        e = ok ? 0 : GetLastError();
        if (!ok && e == ERROR_IO_PENDING)
            ok = TRUE;
    } else {
        WSABUF wb = {0, &zero_byte};
        DWORD flags = 0;
        ok = WSARecv(S(r->h), &wb, 1, NULL, &flags, &r->rov, NULL) == 0;
        e = ok ? 0 : (DWORD)WSAGetLastError();
        if (!ok && e == WSA_IO_PENDING)
            ok = TRUE;
    }
    if (!ok) {
        *hup = 1;
        return 1;
    }
    r->rpending = 1;
    return wait_read(r, hup); /* done at once, or pending */
}

/* A socket's OUT as WSAPoll says: MPR__WAIT_OUT (| MPR__WAIT_HUP), or 0. */
static short sock_out(mpr__fd fd)
{
    WSAPOLLFD p = {S(fd), POLLWRNORM, 0};
    if (WSAPoll(&p, 1, 0) != 1)
        return 0;
    short ready = 0;
    if (p.revents & POLLWRNORM)
        ready |= MPR__WAIT_OUT;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
        ready |= MPR__WAIT_OUT | MPR__WAIT_HUP;
    return ready;
}

/* What is ready of fds[i] now, without waiting (arming what is needed to
 * wait: into hs, when hs). */
static short wait_poll(mpr__waitfd *f, HANDLE *hs, int *nh, int *sel_on)
{
    short ready = 0;
    hrec *r = rec_get(f->fd);
    if (!r || r->kind == K_LISTEN_SOCKET) {
        /* An event, or any other waitable object. */
        HANDLE h = r ? NULL : H(f->fd);
        if (h && (f->want & MPR__WAIT_IN)) {
            if (WaitForSingleObject(h, 0) == WAIT_OBJECT_0)
                ready |= MPR__WAIT_IN;
            else if (hs)
                hs[(*nh)++] = h;
        }
        if (r && (f->want & MPR__WAIT_IN)) {
            WSAPOLLFD p = {S(f->fd), POLLRDNORM, 0};
            if (WSAPoll(&p, 1, 0) == 1)
                ready |= MPR__WAIT_IN;
        }
        return ready;
    }
    if (f->want & MPR__WAIT_IN) {
        int hup;
        if (wait_read(r, &hup))
            ready |= MPR__WAIT_IN | (hup ? MPR__WAIT_HUP : 0);
        else if (hs)
            hs[(*nh)++] = r->ev_r;
    }
    if (f->want & MPR__WAIT_OUT) {
        if (r->kind == K_PIPE) {
            DWORD e = pipe_write_done(r, 0);
            if (e != ERROR_IO_INCOMPLETE)
                ready |= MPR__WAIT_OUT | (e ? MPR__WAIT_HUP : 0);
            else if (hs)
                hs[(*nh)++] = r->ev_w;
        } else {
            short o = sock_out(f->fd);
            if (!o && hs && lazy_event(&r->ev_sel)) {
                ResetEvent(r->ev_sel);
                WSAEventSelect(S(f->fd), r->ev_sel, FD_WRITE | FD_CONNECT | FD_CLOSE);
                *sel_on = 1;
                o = sock_out(f->fd); /* it may have become writable meanwhile */
                hs[(*nh)++] = r->ev_sel;
            }
            ready |= o;
        }
    }
    return ready;
}

int mpr__wait(mpr__waitfd *fds, int n, int timeout_ms)
{
    HANDLE hs[2 * 8];
    int nh = 0, sel_on[8] = {0};
    MPR__ASSERT(n <= 8);
    int count = 0;
    for (int i = 0; i < n; i++) {
        fds[i].ready = wait_poll(&fds[i], hs, &nh, &sel_on[i]);
        count += fds[i].ready != 0;
    }
    if (count == 0 && nh > 0) {
        DWORD w = WaitForMultipleObjects((DWORD)nh, hs, FALSE,
                                         timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
        if (w == WAIT_FAILED)
            count = mpr__syserr();
    } else if (count == 0 && timeout_ms != 0) {
        Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
    }
    if (count == 0) {
        for (int i = 0; i < n; i++) {
            fds[i].ready = wait_poll(&fds[i], NULL, NULL, NULL);
            count += fds[i].ready != 0;
        }
    }
    for (int i = 0; i < n; i++)
        if (sel_on[i])
            WSAEventSelect(S(fds[i].fd), NULL, 0); /* stays non-blocking */
    return count;
}

/* ---- the monitor's poller: an I/O completion port ---- */

enum { PW_IDLE, PW_ARMED, PW_FIRED };
enum { PW_READ, PW_SOCKREAD, PW_WAIT, PW_LISTEN_SOCKET };
enum { KEY_IO = 1, KEY_WAKE, KEY_WAIT };

/* The poller's record of a watch: what goes to the port. */
typedef struct pwatch {
    OVERLAPPED ov;
    struct pwatch *prev, *next; /* the live list, or the zombies */
    mpr__poller *p;
    mpr__watch *w; /* NULL: removed, its completion still to come */
    mpr__fd fd;
    int how, state;
    HANDLE wait;         /* the thread-pool wait while armed */
    HANDLE sel;          /* a tcp listener's WSAEventSelect event */
    volatile LONG posted; /* the wait's callback posted to the port */
} pwatch;

struct mpr__poller {
    HANDLE port;
    pwatch *live, *zombies;
    volatile LONG wake_posted; /* a wake-up packet is queued: one is enough */
};

static void pw_link(pwatch **list, pwatch *pw)
{
    pw->prev = NULL;
    pw->next = *list;
    if (*list)
        (*list)->prev = pw;
    *list = pw;
}

static void pw_unlink(pwatch **list, pwatch *pw)
{
    if (pw->prev)
        pw->prev->next = pw->next;
    else
        *list = pw->next;
    if (pw->next)
        pw->next->prev = pw->prev;
    pw->prev = pw->next = NULL;
}

static void pw_free(pwatch *pw)
{
    if (pw->sel)
        WSACloseEvent(pw->sel);
    free(pw);
}

int mpr__poller_new(mpr__poller **out)
{
    mpr__poller *p = calloc(1, sizeof *p);
    if (!p)
        return MPR_ENOMEM;
    p->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (!p->port) {
        int rc = mpr__syserr();
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static void CALLBACK on_wait(PVOID ctx, BOOLEAN timed_out)
{
    pwatch *pw = ctx;
    (void)timed_out;
    InterlockedExchange(&pw->posted, 1);
    PostQueuedCompletionStatus(pw->p->port, 0, KEY_WAIT, &pw->ov);
}

static void arm(pwatch *pw)
{
    memset(&pw->ov, 0, sizeof pw->ov);
    switch (pw->how) {
    case PW_READ:
        /* Completes (a packet) once there is data or the end; at once if
         * unread data is there. Failing now (the peer is gone): no packet;
         * readable all the same (the read will find the end). */
        pw->state = ReadFile(H(pw->fd), &zero_byte, 0, NULL, &pw->ov) ||
                            GetLastError() == ERROR_IO_PENDING
                        ? PW_ARMED
                        : PW_FIRED;
        return;
    case PW_SOCKREAD: {
        WSABUF wb = {0, &zero_byte};
        DWORD flags = 0;
        pw->state = WSARecv(S(pw->fd), &wb, 1, NULL, &flags, &pw->ov, NULL) == 0 ||
                            WSAGetLastError() == WSA_IO_PENDING
                        ? PW_ARMED
                        : PW_FIRED;
        return;
    }
    case PW_LISTEN_SOCKET: {
        /* Connections waiting: WSAPoll says it. Else wait for FD_ACCEPT,
         * recorded anew once accept was called (reset first: a stale
         * signal would fire for nothing, round after round). */
        ResetEvent(pw->sel);
        WSAPOLLFD pf = {S(pw->fd), POLLRDNORM, 0};
        if (WSAPoll(&pf, 1, 0) == 1) {
            pw->state = PW_FIRED;
            return;
        }
    }
        /* fall through */
    case PW_WAIT: {
        HANDLE obj = pw->how == PW_WAIT ? H(pw->fd) : pw->sel;
        pw->posted = 0;
        pw->state = RegisterWaitForSingleObject(&pw->wait, obj, on_wait, pw, INFINITE,
                                                WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD)
                        ? PW_ARMED
                        : PW_FIRED;
        if (pw->state != PW_ARMED)
            pw->wait = NULL;
        return;
    }
    }
}

static int in_set(const pwatch *pw, int always_only)
{
    return !always_only || pw->w->always;
}

int mpr__poller_add(mpr__poller *p, mpr__watch *w, mpr__fd fd, int always)
{
    w->fd = fd;
    w->always = (unsigned char)!!always;
    w->gone = 0;
    w->sys = NULL;
    pwatch *pw = calloc(1, sizeof *pw);
    if (!pw)
        return MPR_ENOMEM;
    pw->p = p;
    pw->w = w;
    pw->fd = fd;
    pw->state = PW_IDLE;
    hrec *r = rec_get(fd);
    if (r && (r->kind == K_PIPE || r->kind == K_SOCKET)) {
        /* A handle is associated with a port for good. */
        if (!r->port) {
            if (!CreateIoCompletionPort(H(fd), p->port, KEY_IO, 0)) {
                int rc = mpr__syserr();
                free(pw);
                return rc;
            }
            r->port = p->port;
        } else if (r->port != p->port) {
            free(pw);
            return MPR_EINVAL;
        }
        pw->how = r->kind == K_PIPE ? PW_READ : PW_SOCKREAD;
    } else if (r) {
        pw->sel = WSACreateEvent();
        if (pw->sel == WSA_INVALID_EVENT || WSAEventSelect(S(fd), pw->sel, FD_ACCEPT) != 0) {
            int rc = mpr__syserr();
            if (pw->sel == WSA_INVALID_EVENT)
                pw->sel = NULL;
            pw_free(pw);
            return rc;
        }
        pw->how = PW_LISTEN_SOCKET;
    } else {
        pw->how = PW_WAIT;
    }
    pw_link(&p->live, pw);
    w->sys = pw;
    return 0;
}

void mpr__poller_set_always(mpr__poller *p, mpr__watch *w, int always)
{
    (void)p;
    w->always = (unsigned char)!!always;
}

void mpr__poller_del(mpr__poller *p, mpr__watch *w)
{
    pwatch *pw = w->sys;
    w->gone = 1;
    w->always = 0;
    w->sys = NULL;
    if (!pw)
        return;
    pw_unlink(&p->live, pw);
    pw->w = NULL;
    int outstanding = 0;
    if (pw->state == PW_ARMED) {
        if (pw->how == PW_READ || pw->how == PW_SOCKREAD) {
            /* Its packet comes (cancelled, or completed before): the
             * record waits for it among the zombies. */
            CancelIoEx(H(pw->fd), &pw->ov);
            outstanding = 1;
        } else {
            /* Returns once the callback, if it runs, has run. */
            UnregisterWaitEx(pw->wait, INVALID_HANDLE_VALUE);
            pw->wait = NULL;
            outstanding = pw->posted != 0;
        }
    }
    if (pw->how == PW_LISTEN_SOCKET)
        WSAEventSelect(S(pw->fd), NULL, 0);
    if (outstanding)
        pw_link(&p->zombies, pw);
    else
        pw_free(pw);
}

void mpr__poller_wake(mpr__poller *p)
{
    /* Like an eventfd, wake-ups coalesce: packets do not pile up. */
    if (InterlockedExchange(&p->wake_posted, 1) == 0 &&
        !PostQueuedCompletionStatus(p->port, 0, KEY_WAKE, NULL))
        InterlockedExchange(&p->wake_posted, 0);
}

/* A packet: a wake-up (1), or a watch's completion (0). */
static int on_packet(mpr__poller *p, const OVERLAPPED_ENTRY *e)
{
    if (!e->lpOverlapped) {
        InterlockedExchange(&p->wake_posted, 0); /* a wake-up from now on posts again */
        return 1;
    }
    pwatch *pw = MPR__CONTAINER_OF(e->lpOverlapped, pwatch, ov);
    if (pw->wait) {
        UnregisterWaitEx(pw->wait, NULL); /* its callback has run: releases it */
        pw->wait = NULL;
    }
    if (!pw->w) {
        pw_unlink(&p->zombies, pw);
        pw_free(pw);
        return 0;
    }
    pw->state = PW_FIRED;
    return 0;
}

static int any_fired(mpr__poller *p, int always_only)
{
    for (pwatch *pw = p->live; pw; pw = pw->next)
        if (pw->state == PW_FIRED && in_set(pw, always_only))
            return 1;
    return 0;
}

static DWORD ms_left(int64_t deadline)
{
    if (deadline < 0)
        return INFINITE;
    int64_t left = deadline - mpr__now_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms >= INFINITE ? INFINITE - 1 : (DWORD)ms;
}

int mpr__poller_wait(mpr__poller *p, int always_only, int timeout_ms, mpr__watch **ready,
                     int max)
{
    int64_t deadline = timeout_ms < 0 ? -1 : mpr__now_ns() + (int64_t)timeout_ms * 1000000;
    for (pwatch *pw = p->live; pw; pw = pw->next)
        if (pw->state == PW_IDLE && in_set(pw, always_only))
            arm(pw);
    int woken = 0;
    for (;;) {
        int have = any_fired(p, always_only);
        DWORD ms = have || woken ? 0 : ms_left(deadline);
        OVERLAPPED_ENTRY ent[64];
        ULONG got = 0;
        if (!GetQueuedCompletionStatusEx(p->port, ent, (ULONG)MPR__ARRAY_SIZE(ent), &got, ms, FALSE)) {
            DWORD e = GetLastError();
            if (e != WAIT_TIMEOUT)
                return mpr__errno_code((int)e);
            got = 0;
        }
        for (ULONG i = 0; i < got; i++)
            woken |= on_packet(p, &ent[i]);
        if (have || woken || any_fired(p, always_only))
            break;
        if (got == 0 && ms_left(deadline) == 0)
            break;
    }
    int k = 0;
    for (pwatch *pw = p->live; pw && k < max; pw = pw->next) {
        if (pw->state == PW_FIRED && in_set(pw, always_only)) {
            pw->state = PW_IDLE; /* re-armed at the next wait: level-triggered */
            ready[k++] = pw->w;
        }
    }
    return k;
}

void mpr__poller_free(mpr__poller *p)
{
    if (!p)
        return;
    while (p->live) {
        mpr__watch *w = p->live->w;
        mpr__poller_del(p, w);
    }
    /* The cancelled operations' packets, before their records go. */
    int64_t deadline = mpr__now_ns() + (int64_t)10 * 1000000000;
    while (p->zombies && mpr__now_ns() < deadline) {
        OVERLAPPED_ENTRY ent[64];
        ULONG got = 0;
        if (GetQueuedCompletionStatusEx(p->port, ent, (ULONG)MPR__ARRAY_SIZE(ent), &got, 100, FALSE))
            for (ULONG i = 0; i < got; i++)
                on_packet(p, &ent[i]);
    }
    if (p->zombies)
        mpr__warn("poller %p: cancelled I/O did not complete; its records are leaked", (void *)p);
    CloseHandle(p->port);
    free(p);
}

/* ---- who runs a process ---- */

/* The user of a process's token (malloc'd), or NULL. */
static TOKEN_USER *process_user(HANDLE process)
{
    HANDLE tok = NULL;
    if (!OpenProcessToken(process, TOKEN_QUERY, &tok))
        return NULL;
    DWORD n = 0;
    GetTokenInformation(tok, TokenUser, NULL, 0, &n);
    TOKEN_USER *tu = n ? malloc(n) : NULL;
    if (tu && !GetTokenInformation(tok, TokenUser, tu, n, &n)) {
        free(tu);
        tu = NULL;
    }
    CloseHandle(tok);
    return tu;
}

static TOKEN_USER *me;
static INIT_ONCE me_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK me_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    me = process_user(GetCurrentProcess()); /* kept for the process's life */
    return TRUE;
}

static const TOKEN_USER *my_user(void)
{
    InitOnceExecuteOnce(&me_once, me_init, NULL, NULL);
    return me;
}

/* Does process pid run as our user? *uid: its SID's last sub-authority. */
static int pid_is_us(DWORD pid, long *uid)
{
    if (uid)
        *uid = -1;
    const TOKEN_USER *mine = my_user();
    HANDLE proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
    if (!mine || !proc) {
        if (proc)
            CloseHandle(proc);
        return 0;
    }
    TOKEN_USER *theirs = process_user(proc);
    CloseHandle(proc);
    if (!theirs)
        return 0;
    int same = EqualSid(mine->User.Sid, theirs->User.Sid) != 0;
    if (uid) {
        UCHAR subs = *GetSidSubAuthorityCount(theirs->User.Sid);
        if (subs > 0)
            *uid = (long)*GetSidSubAuthority(theirs->User.Sid, subs - 1u);
    }
    free(theirs);
    return same;
}

/* ---- the local endpoint: a named pipe ---- */

struct mpr__win_listener {
    char path[300]; /* \\.\pipe\NAME */
    SECURITY_ATTRIBUTES sa;
    SECURITY_DESCRIPTOR sd;
    union {
        ACL acl;
        unsigned char buf[256];
    } dacl;
    HANDLE ev; /* the listener's fd: set by every instance's connect */
    struct {
        HANDLE pipe; /* NULL: none */
        OVERLAPPED ov;
        int connected;
    } inst[LISTEN_INSTANCES];
};

/* A new instance in slot i, waiting for its client. */
static int new_instance(struct mpr__win_listener *wl, int i, int first)
{
    HANDLE h = CreateNamedPipeA(wl->path,
                                PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
                                    (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                                    PIPE_REJECT_REMOTE_CLIENTS,
                                PIPE_UNLIMITED_INSTANCES, PIPE_BUFFER, PIPE_BUFFER, 0, &wl->sa);
    if (h == INVALID_HANDLE_VALUE)
        return mpr__syserr();
    memset(&wl->inst[i].ov, 0, sizeof wl->inst[i].ov);
    wl->inst[i].ov.hEvent = wl->ev;
    wl->inst[i].pipe = h;
    wl->inst[i].connected = 0;
    if (ConnectNamedPipe(h, &wl->inst[i].ov))
        wl->inst[i].connected = 1; /* (overlapped: not expected) */
    else if (GetLastError() == ERROR_PIPE_CONNECTED)
        wl->inst[i].connected = 1; /* a client came between the two calls */
    else if (GetLastError() != ERROR_IO_PENDING) {
        int rc = mpr__syserr();
        CloseHandle(h);
        wl->inst[i].pipe = NULL;
        return rc;
    }
    if (wl->inst[i].connected)
        SetEvent(wl->ev);
    return 0;
}

/* Close slot i's instance (a pending connect cancelled first). */
static void drop_instance(struct mpr__win_listener *wl, int i)
{
    HANDLE h = wl->inst[i].pipe;
    if (!h)
        return;
    if (!wl->inst[i].connected && !HasOverlappedIoCompleted(&wl->inst[i].ov)) {
        CancelIoEx(h, &wl->inst[i].ov);
        /* Shared event: look at the operation itself. */
        while (!HasOverlappedIoCompleted(&wl->inst[i].ov))
            Sleep(1);
    }
    CloseHandle(h);
    wl->inst[i].pipe = NULL;
    wl->inst[i].connected = 0;
}

int mpr__ipc_listen(mpr__ipc_listener *l, char *name, size_t name_size)
{
    l->fd = MPR__NO_FD;
    l->win = NULL;
    const TOKEN_USER *mine = my_user();
    if (!mine)
        return mpr__syserr();
    unsigned char rnd[8];
    int rc = mpr__random(rnd, sizeof rnd);
    if (rc < 0)
        return rc;
    struct mpr__win_listener *wl = calloc(1, sizeof *wl);
    if (!wl)
        return MPR_ENOMEM;
    snprintf(name, name_size, "mprouter-%lu-%02x%02x%02x%02x%02x%02x%02x%02x",
             (unsigned long)GetCurrentProcessId(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
             rnd[6], rnd[7]);
    snprintf(wl->path, sizeof wl->path, "\\\\.\\pipe\\%s", name);
    /* A DACL with one entry: our user, everything. */
    if (!InitializeAcl(&wl->dacl.acl, sizeof wl->dacl, ACL_REVISION) ||
        !AddAccessAllowedAce(&wl->dacl.acl, ACL_REVISION, GENERIC_ALL, mine->User.Sid) ||
        !InitializeSecurityDescriptor(&wl->sd, SECURITY_DESCRIPTOR_REVISION) ||
        !SetSecurityDescriptorDacl(&wl->sd, TRUE, &wl->dacl.acl, FALSE)) {
        rc = mpr__syserr();
        free(wl);
        return rc;
    }
    wl->sa.nLength = sizeof wl->sa;
    wl->sa.lpSecurityDescriptor = &wl->sd;
    wl->sa.bInheritHandle = FALSE;
    wl->ev = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!wl->ev) {
        rc = mpr__syserr();
        free(wl);
        return rc;
    }
    /* The first instance claims the name (FILE_FLAG_FIRST_PIPE_INSTANCE:
     * fails if someone else has it). */
    for (int i = 0; i < LISTEN_INSTANCES; i++) {
        rc = new_instance(wl, i, i == 0);
        if (rc < 0) {
            for (int k = 0; k < i; k++)
                drop_instance(wl, k);
            CloseHandle(wl->ev);
            free(wl);
            return rc;
        }
    }
    l->win = wl;
    l->fd = (mpr__fd)wl->ev;
    return 0;
}

int mpr__ipc_accept(mpr__ipc_listener *l, mpr__fd *conn, mpr__ipc_peer *peer)
{
    struct mpr__win_listener *wl = l->win;
    if (!wl)
        return MPR_EINVAL;
    /* Reset, then look: a connect that completes after the look sets it
     * again (level-triggered for the poller). */
    ResetEvent(wl->ev);
    int found = -1, more = 0;
    for (int i = 0; i < LISTEN_INSTANCES; i++) {
        if (!wl->inst[i].pipe) {
            new_instance(wl, i, 0); /* a slot left empty earlier */
            continue;
        }
        if (!wl->inst[i].connected && HasOverlappedIoCompleted(&wl->inst[i].ov)) {
            DWORD n;
            if (GetOverlappedResult(wl->inst[i].pipe, &wl->inst[i].ov, &n, FALSE)) {
                wl->inst[i].connected = 1;
            } else {
                /* The client left already (or the connect failed): a
                 * fresh instance in its place. */
                drop_instance(wl, i);
                new_instance(wl, i, 0);
                continue;
            }
        }
        if (wl->inst[i].connected) {
            if (found < 0)
                found = i;
            else
                more = 1;
        }
    }
    if (more)
        SetEvent(wl->ev);
    if (found < 0)
        return MPR_EAGAIN;
    HANDLE h = wl->inst[found].pipe;
    wl->inst[found].pipe = NULL;
    wl->inst[found].connected = 0;
    new_instance(wl, found, 0); /* if it fails, the slot is refilled at the next accept */
    hrec *r = rec_add((mpr__fd)h, K_PIPE);
    if (!r) {
        CloseHandle(h);
        return MPR_ENOMEM;
    }
    r->server = 1;
    ULONG pid = 0;
    peer->pid = -1;
    peer->uid = -1;
    peer->same_user = 0;
    if (GetNamedPipeClientProcessId(h, &pid)) {
        r->peer_pid = pid;
        peer->pid = (long)pid;
        peer->same_user = pid_is_us(pid, &peer->uid);
    }
    *conn = (mpr__fd)h;
    return 0;
}

void mpr__ipc_unlisten(mpr__ipc_listener *l)
{
    struct mpr__win_listener *wl = l->win;
    if (wl) {
        /* A client connected and not taken sees a broken pipe; with the
         * last instance the name is gone (nothing on disk). */
        for (int i = 0; i < LISTEN_INSTANCES; i++)
            drop_instance(wl, i);
        CloseHandle(wl->ev);
        free(wl);
    }
    l->win = NULL;
    l->fd = MPR__NO_FD;
}

int mpr__ipc_connect(const char *name, mpr__fd *conn, int64_t deadline)
{
    char path[300];
    if (snprintf(path, sizeof path, "\\\\.\\pipe\\%s", name) >= (int)sizeof path)
        return MPR_ECONNREFUSED;
    for (;;) {
        /* SECURITY_IDENTIFICATION: the router may learn who we are, not
         * act as us. */
        HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                               FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT |
                                   SECURITY_IDENTIFICATION,
                               NULL);
        if (h != INVALID_HANDLE_VALUE) {
            hrec *r = rec_add((mpr__fd)h, K_PIPE);
            if (!r) {
                CloseHandle(h);
                return MPR_ENOMEM;
            }
            *conn = (mpr__fd)h;
            return 0;
        }
        DWORD e = GetLastError();
        if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
            return MPR_ECONNREFUSED;
        if (e != ERROR_PIPE_BUSY)
            return mpr__errno_code((int)e);
        /* Every instance taken: wait for one (the router makes a new one
         * for each client it takes). */
        DWORD left = ms_left(deadline);
        if (left == 0)
            return MPR_ETIMEDOUT;
        if (!WaitNamedPipeA(path, left)) {
            e = GetLastError();
            if (e == ERROR_FILE_NOT_FOUND)
                return MPR_ECONNREFUSED;
            if (e != ERROR_SEM_TIMEOUT && e != WAIT_TIMEOUT && e != ERROR_PIPE_BUSY)
                return mpr__errno_code((int)e);
        }
    }
}

int mpr__ipc_peer_is_us(mpr__fd conn)
{
    ULONG pid = 0;
    return GetNamedPipeServerProcessId(H(conn), &pid) && pid_is_us(pid, NULL);
}

/* ---- shared memory: pagefile sections ---- */

int mpr__shm_create(size_t size, mpr__fd *handle, void **addr)
{
    HANDLE s = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE | SEC_COMMIT,
                                  (DWORD)((uint64_t)size >> 32), (DWORD)size, NULL);
    if (!s)
        return mpr__syserr();
    void *base = MapViewOfFile(s, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, size);
    if (!base) {
        int rc = mpr__syserr();
        CloseHandle(s);
        return rc;
    }
    *handle = (mpr__fd)s;
    *addr = base;
    return 0;
}

void mpr__shm_unmap(void *addr, size_t size)
{
    (void)size;
    if (addr)
        UnmapViewOfFile(addr);
}

int mpr__shm_private(size_t size, void **addr)
{
    /* A section of our own, so that mpr__shm_unmap frees both kinds. */
    mpr__fd h;
    int rc = mpr__shm_create(size, &h, addr);
    if (rc == 0)
        CloseHandle(H(h)); /* the view keeps the section */
    return rc;
}

/* NtQuerySection(SectionBasicInformation), from ntdll. */
typedef struct section_basic_information {
    PVOID BaseAddress;
    ULONG AllocationAttributes;
    LARGE_INTEGER MaximumSize;
} section_basic_information;
typedef LONG(NTAPI *nt_query_section_fn)(HANDLE, int, PVOID, SIZE_T, PSIZE_T);
static nt_query_section_fn nt_query_section;
static INIT_ONCE ntdll_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK ntdll_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    if (nt)
        nt_query_section = (nt_query_section_fn)(void (*)(void))GetProcAddress(nt, "NtQuerySection");
    return TRUE;
}

#ifndef SEC_FILE
#define SEC_FILE 0x800000
#endif

int mpr__shm_map(mpr__fd handle, size_t min, size_t max, void **addr, size_t *size)
{
    InitOnceExecuteOnce(&ntdll_once, ntdll_init, NULL, NULL);
    if (!nt_query_section)
        return MPR_EPROTO;
    section_basic_information sbi;
    memset(&sbi, 0, sizeof sbi);
    SIZE_T ret = 0;
    if (nt_query_section(H(handle), 0, &sbi, sizeof sbi, &ret) < 0)
        return MPR_EPROTO; /* not a section */
    /* Pagefile-backed and committed: SEC_RESERVE pages would fault on
     * Windows, and a file's pages could fail to come in. A section never
     * shrinks: the view stays whole whatever the sender does. */
    if (!(sbi.AllocationAttributes & SEC_COMMIT) ||
        (sbi.AllocationAttributes & (SEC_RESERVE | SEC_IMAGE | SEC_FILE)))
        return MPR_EPROTO;
    if (sbi.MaximumSize.QuadPart < (LONGLONG)min || sbi.MaximumSize.QuadPart > (LONGLONG)max)
        return MPR_EPROTO;
    size_t n = (size_t)sbi.MaximumSize.QuadPart;
    void *base = MapViewOfFile(H(handle), FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, n);
    if (!base)
        return MPR_EPROTO;
    MEMORY_BASIC_INFORMATION mbi;
    if (!VirtualQuery(base, &mbi, sizeof mbi) || mbi.State != MEM_COMMIT || mbi.RegionSize < n) {
        UnmapViewOfFile(base);
        return MPR_EPROTO;
    }
    *addr = base;
    *size = n;
    return 0;
}

int mpr__ipc_send_shm(mpr__fd conn, const void *buf, size_t n, mpr__fd shm)
{
    hrec *r = rec_get(conn);
    if (!r || r->kind != K_PIPE)
        return MPR_EINVAL;
    /* The receiver pulls the handle when it reads these bytes, maybe after
     * the caller closed shm: a copy of ours stays open with the
     * connection. The envelope: its value here, 0 for none (platform.h). */
    HANDLE keep = NULL;
    if (shm >= 0 && !DuplicateHandle(GetCurrentProcess(), H(shm), GetCurrentProcess(), &keep, 0,
                                     FALSE, DUPLICATE_SAME_ACCESS))
        return mpr__syserr();
    if (keep) {
        if (r->kept)
            CloseHandle(r->kept);
        r->kept = keep;
    }
    unsigned char env[8];
    mpr__put_u64(env, keep ? (uint64_t)(uintptr_t)keep : 0);
    return pipe_send_all(r, env, sizeof env, buf, n);
}

/* Take the section the sender named out of its process. */
static void pull_handle(hrec *r, uint64_t value, mpr__fd *shm, int *dropped)
{
    HANDLE peer = r->peer_pid ? OpenProcess(PROCESS_DUP_HANDLE, FALSE, r->peer_pid) : NULL;
    if (!peer)
        return; /* gone: as if none came (the handshake then fails) */
    HANDLE mine = NULL;
    /* Only what a ring needs: map it, ask its size. */
    if (!DuplicateHandle(peer, (HANDLE)(uintptr_t)value, GetCurrentProcess(), &mine,
                         FILE_MAP_READ | FILE_MAP_WRITE | SECTION_QUERY, FALSE, 0)) {
        DWORD e = GetLastError();
        if (dropped && (e == ERROR_NOT_ENOUGH_MEMORY || e == ERROR_NO_SYSTEM_RESOURCES ||
                        e == ERROR_TOO_MANY_OPEN_FILES))
            *dropped = 1;
        mine = NULL;
    }
    CloseHandle(peer);
    if (!mine)
        return;
    if (*shm < 0)
        *shm = (mpr__fd)mine;
    else
        CloseHandle(mine);
}

long mpr__ipc_recv(mpr__fd conn, void *buf, size_t n, mpr__fd *shm, int *dropped)
{
    hrec *r = rec_get(conn);
    if (!r || r->kind != K_PIPE)
        return mpr__stream_recv(conn, buf, n);
    if (shm && !r->env_done) {
        while (r->env_have < sizeof r->env) {
            long got = pipe_recv(r, r->env + r->env_have, sizeof r->env - r->env_have);
            if (got <= 0)
                return got; /* MPR_EAGAIN, the end, or an error */
            r->env_have += (unsigned)got;
        }
        r->env_done = 1;
        uint64_t value = mpr__get_u64(r->env);
        if (value)
            pull_handle(r, value, shm, dropped);
    }
    return pipe_recv(r, buf, n);
}

/* ---- tcp: Winsock ---- */

static INIT_ONCE wsa_once = INIT_ONCE_STATIC_INIT;
static int wsa_rc;

static BOOL CALLBACK wsa_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    WSADATA wd;
    int e = WSAStartup(MAKEWORD(2, 2), &wd); /* once: for the process's life */
    wsa_rc = e ? mpr__errno_code(e) : 0;
    return TRUE;
}

static int wsa(void)
{
    InitOnceExecuteOnce(&wsa_once, wsa_init, NULL, NULL);
    return wsa_rc;
}

/* A socket of ours: overlapped (the poller's zero-byte reads), not
 * inheritable, non-blocking, with its record. */
static int new_socket(int family, int kind, SOCKET *out)
{
    SOCKET s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET)
        return mpr__syserr();
    u_long one = 1;
    if (ioctlsocket(s, FIONBIO, &one) != 0 || !rec_add((mpr__fd)s, kind)) {
        int rc = mpr__syserr();
        closesocket(s);
        return rc == MPR_EIO ? MPR_ENOMEM : rc;
    }
    *out = s;
    return 0;
}

static void format_addr(const struct sockaddr *sa, int len, char *out, size_t size)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (getnameinfo(sa, (socklen_t)len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf(out, size, "?");
        return;
    }
    snprintf(out, size, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

static int resolve(const char *host, const char *port, int passive, struct addrinfo **out)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (host && (!*host || !strcmp(host, "*")))
        host = NULL;
    char bare[256];
    if (host && host[0] == '[') { /* [v6] */
        size_t len = strlen(host);
        if (len < 3 || host[len - 1] != ']' || len - 2 >= sizeof bare)
            return MPR_EINVAL;
        memcpy(bare, host + 1, len - 2);
        bare[len - 2] = '\0';
        host = bare;
        hints.ai_flags |= AI_NUMERICHOST;
    }
    int rc = getaddrinfo(host, port, &hints, out);
    if (rc == EAI_MEMORY)
        return MPR_ENOMEM;
    return rc == 0 ? 0 : MPR_EINVAL;
}

/* Close a socket made by new_socket (its record with it). */
static void drop_socket(SOCKET s)
{
    mpr__fd_close((mpr__fd)s);
}

int mpr__tcp_listen(const char *host, const char *port, mpr__fd *out, char *bound, size_t bound_size)
{
    int rc = wsa();
    if (rc < 0)
        return rc;
    struct addrinfo *ai;
    if ((rc = resolve(host, port, 1, &ai)) < 0)
        return rc;
    rc = MPR_EADDRNOTAVAIL;
    SOCKET s = INVALID_SOCKET;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        if ((rc = new_socket(a->ai_family, K_LISTEN_SOCKET, &s)) < 0)
            continue;
        /* Not SO_REUSEADDR: on Windows it lets another socket take the
         * port from under us. */
        BOOL excl = TRUE;
        setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&excl, sizeof excl);
        if (bind(s, a->ai_addr, (int)a->ai_addrlen) == 0 && listen(s, SOMAXCONN) == 0)
            break;
        rc = mpr__syserr();
        drop_socket(s);
        s = INVALID_SOCKET;
    }
    freeaddrinfo(ai);
    if (s == INVALID_SOCKET)
        return rc;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (getsockname(s, (struct sockaddr *)&ss, &len) != 0) {
        rc = mpr__syserr();
        drop_socket(s);
        return rc;
    }
    format_addr((struct sockaddr *)&ss, len, bound, bound_size);
    *out = (mpr__fd)s;
    return 0;
}

int mpr__tcp_accept(mpr__fd lfd, mpr__fd *conn, char *peer, size_t peer_size)
{
    struct sockaddr_storage ss;
    for (;;) {
        int len = sizeof ss;
        SOCKET s = accept(S(lfd), (struct sockaddr *)&ss, &len);
        if (s == INVALID_SOCKET) {
            DWORD e = (DWORD)WSAGetLastError();
            if (e == WSAECONNRESET || e == WSAEINTR)
                continue;
            return e == WSAEWOULDBLOCK ? MPR_EAGAIN : mpr__errno_code((int)e);
        }
        /* It inherited the listener's WSAEventSelect (the poller's): off
         * (it stays non-blocking). */
        WSAEventSelect(s, NULL, 0);
        u_long one = 1;
        ioctlsocket(s, FIONBIO, &one);
        SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
        if (!rec_add((mpr__fd)s, K_SOCKET)) {
            closesocket(s);
            return MPR_ENOMEM;
        }
        BOOL nodelay = TRUE;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&nodelay, sizeof nodelay);
        format_addr((struct sockaddr *)&ss, len, peer, peer_size);
        *conn = (mpr__fd)s;
        return 0;
    }
}

int mpr__tcp_connect(const char *host, const char *port, mpr__fd *conn)
{
    int rc = wsa();
    if (rc < 0)
        return rc;
    struct addrinfo *ai;
    if ((rc = resolve(host, port, 0, &ai)) < 0)
        return rc;
    rc = MPR_ECONNREFUSED;
    SOCKET s = INVALID_SOCKET;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        if ((rc = new_socket(a->ai_family, K_SOCKET, &s)) < 0)
            continue;
        BOOL nodelay = TRUE;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&nodelay, sizeof nodelay);
        if (connect(s, a->ai_addr, (int)a->ai_addrlen) == 0 || WSAGetLastError() == WSAEWOULDBLOCK)
            break;
        rc = mpr__syserr();
        drop_socket(s);
        s = INVALID_SOCKET;
    }
    freeaddrinfo(ai);
    if (s == INVALID_SOCKET)
        return rc;
    *conn = (mpr__fd)s;
    return 0;
}

int mpr__tcp_connected(mpr__fd conn)
{
    /* SO_ERROR is 0 while a connect is under way too: ask WSAPoll. */
    WSAPOLLFD p = {S(conn), POLLWRNORM, 0};
    int n = WSAPoll(&p, 1, 0);
    if (n < 0)
        return mpr__syserr();
    if (n == 0)
        return MPR_EAGAIN;
    int err = 0, len = sizeof err;
    if (getsockopt(S(conn), SOL_SOCKET, SO_ERROR, (char *)&err, &len) != 0)
        return mpr__syserr();
    if (err)
        return mpr__errno_code(err);
    return (p.revents & POLLWRNORM) ? 0 : MPR_ECONNREFUSED;
}

void mpr__tcp_user_timeout(mpr__fd conn, int ms)
{
#ifdef TCP_MAXRT
    DWORD s = (DWORD)((ms + 999) / 1000);
    setsockopt(S(conn), IPPROTO_TCP, TCP_MAXRT, (const char *)&s, sizeof s);
#else
    (void)conn;
    (void)ms;
#endif
}

int mpr__hostname(char *buf, size_t size)
{
    DWORD n = size > MAXDWORD ? MAXDWORD : (DWORD)size;
    if (!GetComputerNameExA(ComputerNameDnsHostname, buf, &n))
        return mpr__syserr();
    buf[size - 1] = '\0';
    return 0;
}
