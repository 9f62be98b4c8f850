/*
 * platform.h - everything the operating system gives the C core, behind
 * one small interface: clocks, random bytes, memory for secrets and fork
 * detection, threads and locks, wake-up events, the monitor's poller, the
 * local endpoint (with the peer's identity), shared memory for rings, the
 * wait of a ring's writer for room, and tcp. No other file of src/
 * includes an operating system header. Never installed.
 *
 * One implementation per platform, chosen at build time:
 *   MPR__LINUX     platform_posix.c + platform_linux.c: epoll, eventfd,
 *                  abstract AF_UNIX sockets and SO_PEERCRED, sealed memfd
 *                  rings, futex, getrandom, MADV_WIPEONFORK
 *   MPR__PORTABLE  platform_posix.c + platform_portable.c: only what
 *                  POSIX, macOS and the BSDs have: poll, pipes, a path
 *                  socket in a private 0700 directory, getpeereid, shm_open
 *                  rings handed over with SCM_RIGHTS, doorbell bytes
 *                  instead of a futex, getentropy, secrets wiped in a
 *                  forked child by a pthread_atfork handler. Built off
 *                  Linux, and on Linux with CONFIG+=mpr_portable (tested).
 *   MPR__WINDOWS   platform_win.c (named pipes, sections, events, an I/O
 *                  completion port, Winsock).
 *
 * Every fallible call returns 0 (or a count) or a negative MPR_ code
 * (<mprouter/common.h>), never errno: the system's error numbers are
 * mapped in one place per platform (mpr__errno_code).
 */
#ifndef MPR_PLATFORM_H
#define MPR_PLATFORM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define MPR__WINDOWS 1
#elif defined(__linux__) && !defined(MPR_PORTABLE)
#define MPR__LINUX 1
#else
#define MPR__PORTABLE 1
#endif

#if !MPR__WINDOWS
#include <pthread.h>
#endif
/* Windows: no system header here (<windows.h> would reach every file of
 * src/); the Win32 types below are stand-ins of the same size, checked in
 * platform_win.c. */

/* ---- clocks, random bytes, errors ---- */

/* A monotonic clock in nanoseconds. */
int64_t mpr__now_ns(void);
/* Fill buf with n bytes from the system's cryptographic random source.
 * 0 or an error. */
int mpr__random(void *buf, size_t n);
/* The MPR_ code of a system error number: the code of the same meaning
 * where the map of <mprouter/common.h> has one, else the nearest
 * documented one (MPR_EIO when none is near). Never 0. */
int mpr__errno_code(int err);
/* The MPR_ code of the last failed system call of this thread. */
int mpr__syserr(void);

/* ---- memory for secrets; fork detection ---- */

/* Whole pages, zero-filled, that a forked child reads as zeros and that
 * are left out of core dumps (where the platform can). NULL when out of
 * memory. mpr__secure_free wipes before giving them back. Windows: there
 * is no fork (nothing to wipe in a child); not kept out of crash dumps. */
void *mpr__secure_alloc(size_t size);
void mpr__secure_free(void *p, size_t size);

/* A random non-zero number of this process, in memory a forked child
 * reads as 0 until it asks for a token of its own (then a new number). An
 * object that stored the token of the process that made it can tell, with
 * one load, that it is a forked copy: mpr__forked(token). Windows: no
 * fork, so one constant random number for the process's life. */
uint64_t mpr__process_token(void);
extern const _Atomic uint64_t *mpr__token_word;
static inline int mpr__forked(uint64_t token)
{
    return *mpr__token_word != token;
}

/* ---- address space for large buffers ---- */

size_t mpr__page_size(void);
/* size bytes of address space, zero-filled, that cost memory only as
 * they are written (or committed). NULL when out of address space.
 * Windows: committed at once (commit charge; physical pages still only
 * as written), since the monitor writes (and ReadFile fills) pages it has
 * not committed ahead; mpr__vm_commit is then a no-op. */
void *mpr__vm_reserve(size_t size);
/* Commit [addr, addr + len) ahead of the writes that will come (best
 * effort: faulting them in one call is cheaper than one fault a page). */
void mpr__vm_commit(void *addr, size_t len);
void mpr__vm_release(void *addr, size_t size);

/* ---- threads and locks ---- */

#if MPR__WINDOWS
/* Win32: the thread's handle (for the join) and id (for is_self); an
 * SRWLOCK, a CONDITION_VARIABLE, an INIT_ONCE (winpthreads is not used:
 * its condition variables refuse the monotonic clock). */
typedef struct mpr__thread {
    void *handle;
    unsigned long id;
} mpr__thread;
typedef struct mpr__mutex {
    void *srw;
} mpr__mutex;
typedef struct mpr__cond {
    void *cv;
} mpr__cond;
typedef union mpr__once {
    void *ptr;
} mpr__once;
#define MPR__MUTEX_INIT {0}
#define MPR__ONCE_INIT {0}
#else
typedef pthread_t mpr__thread;
typedef pthread_mutex_t mpr__mutex;
typedef pthread_cond_t mpr__cond;
typedef pthread_once_t mpr__once;
#define MPR__MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
#define MPR__ONCE_INIT PTHREAD_ONCE_INIT
#endif

/* Start fn(arg) on a new thread that runs with every signal blocked (a
 * thread of the library never runs the application's signal handlers).
 * 0 or an error. Windows: no signals; just started. */
int mpr__thread_start(mpr__thread *t, void *(*fn)(void *), void *arg);
void mpr__thread_join(mpr__thread t);
/* Is t the calling thread? */
int mpr__thread_is_self(mpr__thread t);
mpr__thread mpr__thread_self(void);
void mpr__once_run(mpr__once *once, void (*fn)(void));

void mpr__mutex_init(mpr__mutex *m);
void mpr__mutex_destroy(mpr__mutex *m);
void mpr__mutex_lock(mpr__mutex *m);
void mpr__mutex_unlock(mpr__mutex *m);
/* Condition variables on the monotonic clock (Windows: waits relative to
 * now, which is the same thing). */
void mpr__cond_init(mpr__cond *c);
void mpr__cond_destroy(mpr__cond *c);
void mpr__cond_wait(mpr__cond *c, mpr__mutex *m);
/* Wait until signalled or mpr__now_ns() >= deadline_ns (spurious wake-ups
 * allowed, as for every condition variable). */
void mpr__cond_wait_until(mpr__cond *c, mpr__mutex *m, int64_t deadline_ns);
void mpr__cond_signal(mpr__cond *c);
void mpr__cond_broadcast(mpr__cond *c);

/* ---- handles ---- */

#if MPR__WINDOWS
/* An operating system handle: a HANDLE or a SOCKET value. Valid ones are
 * >= 0 (the pseudo-handles of GetCurrentProcess and the like are never
 * stored in one). MPR__NO_FD is INVALID_HANDLE_VALUE and INVALID_SOCKET.
 * The handles of pipes and sockets the layer made have a small record of
 * their own inside platform_win.c (kind, peer, pending I/O); the API takes
 * only the handle. None is inheritable. */
typedef intptr_t mpr__fd;
#else
/* An operating system handle: a file descriptor here. */
typedef int mpr__fd;
#endif
#define MPR__NO_FD (-1)
void mpr__fd_close(mpr__fd fd);

/* May the library take one more descriptor and still leave the
 * application its headroom (MPR__FD_HEADROOM)? The next descriptor the
 * system hands out is the lowest free one; it must stay that far below
 * the process's limit. */
#define MPR__FD_HEADROOM 32
/* Windows: always 1 (a process's handles have no limit of that kind, and
 * a HANDLE is never the lowest free number). */
int mpr__fd_room(void);

/* ---- events: a flag any thread sets, that a poller can watch ---- */

typedef struct mpr__event {
    /* readable while set (an eventfd: rfd == wfd; else a pipe). Windows: a
     * manual-reset event, signalled while set (rfd == wfd, its HANDLE). */
    mpr__fd rfd, wfd;
} mpr__event;

int mpr__event_open(mpr__event *e);
void mpr__event_close(mpr__event *e);
/* Set it (ANY THREAD; async-signal-safe; Windows: SetEvent). */
void mpr__event_set(mpr__event *e);
/* Clear it (drain). */
void mpr__event_clear(mpr__event *e);
/* What a poll()-style loop watches: readable while the event is set.
 * Windows: the event's HANDLE, signalled while set (for
 * WaitForMultipleObjects and the like; it is not readable). */
static inline mpr__fd mpr__event_fd(const mpr__event *e)
{
    return e->rfd;
}

/* ---- waiting on a few handles (a sender's own thread) ---- */

enum { MPR__WAIT_IN = 1, MPR__WAIT_OUT = 2, MPR__WAIT_HUP = 4 };
typedef struct mpr__waitfd {
    mpr__fd fd;
    short want;  /* MPR__WAIT_IN | MPR__WAIT_OUT */
    short ready; /* set by mpr__wait: what happened, HUP included */
} mpr__waitfd;
/* Wait until one of them is ready or timeout_ms (< 0: none) passes.
 * Returns how many are ready (0 on timeout) or an error; EINTR is 0. At
 * most 8 handles. Windows: a handle of an event (mpr__event_fd) is IN
 * while signalled; a pipe or socket is IN once a zero-byte overlapped read
 * completes (kept pending between calls), a pipe is OUT while no write of
 * mpr__stream_send_some is pending, a socket OUT as WSAPoll says
 * (WSAEventSelect FD_WRITE|FD_CONNECT to wait for it). */
int mpr__wait(mpr__waitfd *fds, int n, int timeout_ms);

/* ---- the monitor's poller ---- */

/* A handle the poller watches; on_event runs (on the poller's thread)
 * when it is readable. A watch is added to the poller's normal set, and
 * if `always` also to the set used while the monitor reads no messages
 * (backpressure: handshakes and timers go on). */
typedef struct mpr__watch mpr__watch;
struct mpr__watch {
    void (*on_event)(mpr__watch *w);
    mpr__fd fd;
    unsigned char always; /* in the always-set too */
    unsigned char gone;   /* removed: its events of this round are skipped */
#if MPR__WINDOWS
    void *sys; /* the poller's record of it (its OVERLAPPED), while added */
#endif
};

typedef struct mpr__poller mpr__poller;
int mpr__poller_new(mpr__poller **out);
void mpr__poller_free(mpr__poller *p);
/* Watch fd (readable). 0 or an error. */
int mpr__poller_add(mpr__poller *p, mpr__watch *w, mpr__fd fd, int always);
void mpr__poller_set_always(mpr__poller *p, mpr__watch *w, int always);
/* Stop watching (w->gone is set; the caller frees w after the round). */
void mpr__poller_del(mpr__poller *p, mpr__watch *w);
/* Make a wait in progress (or the next one) return at once. ANY THREAD. */
void mpr__poller_wake(mpr__poller *p);
/* Wait for readable watches of the normal set (or of the always-set only)
 * for up to timeout_ms (< 0: no limit), at most max of them into ready.
 * Returns their number (0 after a wake-up or the timeout) or an error.
 * Callers run ready[i]->on_event for each whose gone flag is still 0.
 * Level-triggered: a watch still readable is reported again next time.
 * Windows: one I/O completion port; a pipe or socket is armed with a
 * zero-byte overlapped read, re-armed at each wait after it was reported
 * (it completes at once while unread data is there); any other handle (an
 * event, the local endpoint's) through a one-shot thread-pool wait that
 * posts to the port; a tcp listener as WSAPoll says, else through its
 * WSAEventSelect event. A removed watch's operation is cancelled and its
 * record kept until its completion has come: nothing of it is ever
 * delivered after mpr__poller_del. */
int mpr__poller_wait(mpr__poller *p, int always_only, int timeout_ms, mpr__watch **ready,
                     int max);

/* ---- byte streams: local connections and tcp ---- */

/* recv: > 0 bytes read, 0 at the end of the stream, MPR_EAGAIN when
 * nothing is there (non-blocking handles), or an error (a reset is the
 * end of the stream too: 0). Windows: every pipe handle is overlapped and
 * never blocks here (PeekNamedPipe, then a read of what is there). */
long mpr__stream_recv(mpr__fd fd, void *buf, size_t n);
/* send without blocking: bytes sent (> 0), MPR_EAGAIN, or MPR_EPIPE when
 * the peer is gone (never SIGPIPE), or another error. Windows, pipes: a
 * write the pipe cannot take at once stays pending on a copy of the
 * bytes (they count as sent); MPR_EAGAIN while one is pending. */
long mpr__stream_send_some(mpr__fd fd, const void *buf, size_t n);
/* send all of a (and then b, if bb > 0), waiting for room as needed. 0,
 * MPR_EPIPE, or an error. */
int mpr__stream_send_all(mpr__fd fd, const void *a, size_t an, const void *b, size_t bn);
/* Bytes received and not yet read (0 if unknown). */
size_t mpr__stream_unread(mpr__fd fd);
/* Shut the connection down for every holder of the handle (a forked
 * child's copy too), then close ours. Windows: no fork and no inheritable
 * handle of ours, so this is closing it (a pipe is not disconnected: the
 * peer still reads what was written before, as after a shutdown). */
void mpr__stream_shutdown_close(mpr__fd fd);
/* Has the peer hung up (non-blocking check)? */
int mpr__stream_peer_gone(mpr__fd fd);

/* ---- the local endpoint ---- */

/* The router's listening endpoint on this host: a fresh private name per
 * start (MPR__IPC_NAME_MAX characters of [A-Za-z0-9._-] at most), which
 * goes into sender strings. */
#define MPR__IPC_NAME_MAX 100
typedef struct mpr__ipc_listener {
    mpr__fd fd; /* Windows: an event, signalled while a client waits */
#if MPR__PORTABLE
    char dir[256]; /* the private 0700 directory holding the socket */
    int lock;      /* "lock" in it, flock()ed while the endpoint lives */
#endif
#if MPR__WINDOWS
    struct mpr__win_listener *win; /* the pipe's instances (platform_win.c) */
#endif
} mpr__ipc_listener;

/* Listen at a fresh endpoint; its name into name (name_size >=
 * MPR__IPC_NAME_MAX + 1). Non-blocking. 0 or an error. Windows: the named
 * pipe \\.\pipe\NAME, NAME = mprouter-PID-RANDOM, made with
 * FILE_FLAG_FIRST_PIPE_INSTANCE (nobody took the name first),
 * PIPE_REJECT_REMOTE_CLIENTS, byte mode, overlapped, and a DACL granting
 * our user only; a few instances wait for clients, a new one is made for
 * each one accepted. */
int mpr__ipc_listen(mpr__ipc_listener *l, char *name, size_t name_size);
/* What is known of a local peer: whether it runs as our user, and its
 * process and user ids (-1 if unknown). Windows: the pid from
 * GetNamedPipeClientProcessId, the user compared by the SIDs of the two
 * processes' tokens, uid the last sub-authority (the RID) of its SID. */
typedef struct mpr__ipc_peer {
    int same_user;
    long pid, uid;
} mpr__ipc_peer;
/* Take one waiting connection: 0 with *conn (non-blocking) and *peer,
 * MPR_EAGAIN when none waits, or an error (MPR_EMFILE, ...). */
int mpr__ipc_accept(mpr__ipc_listener *l, mpr__fd *conn, mpr__ipc_peer *peer);
/* Stop listening: refuse new connections (also for a forked child holding
 * a copy), hang up on those still in the backlog, close, remove what is
 * on disk. Windows: the waiting instances are closed (a client connected
 * to one and not yet accepted sees a broken pipe); the name goes with the
 * last instance. */
void mpr__ipc_unlisten(mpr__ipc_listener *l);
/* Connect to the endpoint called name (blocking handle). 0;
 * MPR_ECONNREFUSED when nobody listens there; MPR_ETIMEDOUT when the
 * endpoint's backlog stayed full (Windows: every instance busy) until
 * deadline_ns (mpr__now_ns clock); or an error. */
int mpr__ipc_connect(const char *name, mpr__fd *conn, int64_t deadline_ns);
#if !MPR__WINDOWS
/* For the POSIX platform files (platform_posix.c): connect a new AF_UNIX
 * stream socket to addr (a struct sockaddr_un of alen bytes), trying again
 * while full(err, name) says err means a full backlog, until deadline_ns;
 * the handle is blocking and close-on-exec. mpr__ipc_connect's results. */
int mpr__unix_connect(const void *addr, unsigned alen, int64_t deadline_ns,
                      int (*full)(int err, const char *name), const char *name, mpr__fd *conn);
#endif
/* Does the peer of a connected local handle run as our user? (Windows:
 * GetNamedPipeServerProcessId and the token SIDs.) */
int mpr__ipc_peer_is_us(mpr__fd conn);

/* ---- shared memory for rings ---- */

/* A shared mapping of size bytes that can be handed to the peer of a local
 * connection. *handle is for mpr__ipc_send_shm (close it after). 0 or an
 * error. Windows: an unnamed pagefile section (SEC_COMMIT). */
int mpr__shm_create(size_t size, mpr__fd *handle, void **addr);
void mpr__shm_unmap(void *addr, size_t size);

/* The receiving side must never fault on memory its peer can shrink:
 *   - where the system can guarantee the size (Linux: memfd seals; macOS:
 *     a POSIX shared memory object cannot be resized once sized), the
 *     receiver maps it: mpr__shm_map;
 *   - elsewhere (MPR__SHM_WINDOW) it never maps it: it reads and writes
 *     it through a bounded window (pread/pwrite), where a shrink is only a
 *     short read. */
#if MPR__PORTABLE && !defined(__APPLE__)
#define MPR__SHM_WINDOW 1
/* The object's size, or an error. */
long mpr__shm_size(mpr__fd handle);
/* Read or write n bytes at off: 0, or MPR_EPROTO when they are not all
 * there (the peer shrank it). */
int mpr__shm_read(mpr__fd handle, uint64_t off, void *buf, size_t n);
int mpr__shm_write(mpr__fd handle, uint64_t off, const void *buf, size_t n);
#else
/* Map a handle received with mpr__ipc_recv: its size must lie within
 * [min, max] and be fixed for good (sealed). 0 with *addr, *size, or
 * MPR_EPROTO. Does not take the handle. Windows: a pagefile section with
 * SEC_COMMIT (NtQuerySection), whose size is fixed for good: a section can
 * grow, never shrink, and a view never sees more than it mapped. */
int mpr__shm_map(mpr__fd handle, size_t min, size_t max, void **addr, size_t *size);
#endif
/* Private memory of the same shape (a ring between two threads; freed
 * with mpr__shm_unmap). */
int mpr__shm_private(size_t size, void **addr);

/* Send n bytes and the handle shm (MPR__NO_FD: none) in one message on a
 * local connection. 0, MPR_EPIPE (the peer hung up) or an error. Windows:
 * a pipe carries no handles: the bytes go with an 8-byte envelope in
 * front, the handle's value in the sender's process (0: none), always;
 * the receiver pulls the handle out of the sender with DuplicateHandle
 * (the sender is given no right on the receiver), whenever it reads them:
 * a copy of shm stays open with the connection until it is closed. */
int mpr__ipc_send_shm(mpr__fd conn, const void *buf, size_t n, mpr__fd shm);
/* Receive like mpr__stream_recv; a handle that came with the bytes is put
 * in *shm if shm and *shm == MPR__NO_FD (else closed). *dropped is set if
 * the system had to drop a handle sent to us (our descriptor limit).
 * Windows: the first call with shm != NULL on a connection reads the
 * envelope first (only then), so a connection's mpr__ipc_send_shm and its
 * receiver's first call with shm must pair up. */
long mpr__ipc_recv(mpr__fd conn, void *buf, size_t n, mpr__fd *shm, int *dropped);

/* ---- a ring writer's wait for room ---- */

#if MPR__LINUX
/* A futex on a 32-bit word shared between processes: wait while *word ==
 * expected, at most timeout_ns; wake every waiter. */
#define MPR__HAVE_FUTEX 1
void mpr__futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns);
void mpr__futex_wake(_Atomic uint32_t *word);
#endif

/* ---- tcp ---- */

/* Listen on host:port ("*" or "" host: every address; port "0": any free
 * port). The bound address goes into bound ("host:port", IPv6 in
 * brackets). Non-blocking. 0, MPR_EADDRINUSE, MPR_EADDRNOTAVAIL, MPR_EINVAL
 * (a host that does not resolve) or an error. */
int mpr__tcp_listen(const char *host, const char *port, mpr__fd *fd, char *bound, size_t bound_size);
/* Take one connection: 0 with *conn (non-blocking, TCP_NODELAY) and its
 * peer's address ("host:port") in peer; MPR_EAGAIN; or an error. */
int mpr__tcp_accept(mpr__fd lfd, mpr__fd *conn, char *peer, size_t peer_size);
/* Start connecting to host:port (non-blocking): 0 with *conn (then wait
 * for MPR__WAIT_OUT and ask mpr__tcp_connected), or an error (MPR_EINVAL:
 * the host does not resolve). */
int mpr__tcp_connect(const char *host, const char *port, mpr__fd *conn);
/* After MPR__WAIT_OUT: 0 when connected, or why not (MPR_ECONNREFUSED,
 * MPR_ETIMEDOUT, ...). */
int mpr__tcp_connected(mpr__fd conn);
/* Make a connection give up on a peer that stopped acknowledging within
 * ms (TCP_USER_TIMEOUT where there is one; Windows: TCP_MAXRT, whole
 * seconds; a no-op elsewhere). */
void mpr__tcp_user_timeout(mpr__fd conn, int ms);

/* This host's name (for an advertised endpoint). 0 or an error. */
int mpr__hostname(char *buf, size_t size);

#endif /* MPR_PLATFORM_H */
