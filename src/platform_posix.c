/*
 * platform_posix.c - the parts of the platform layer (platform.h) that
 * every POSIX system has in the same form: clocks, errors, threads and
 * locks, waiting on handles, byte streams, tcp. Linux adds
 * platform_linux.c, macOS and the BSDs (and the portable build on Linux)
 * platform_portable.c.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "platform.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE on every socket instead */
#endif

/* ---- clocks and errors ---- */

int64_t mpr__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mpr__errno_code(int err)
{
    switch (err) {
#define MPR__ERRNO_SAME(name) \
    case name:                \
        return MPR_##name;
        MPR__ERRNO_SAME(EINVAL)
        MPR__ERRNO_SAME(ENOMEM)
        MPR__ERRNO_SAME(EALREADY)
        MPR__ERRNO_SAME(ENOENT)
        MPR__ERRNO_SAME(ETIMEDOUT)
        MPR__ERRNO_SAME(EPIPE)
        MPR__ERRNO_SAME(ECONNREFUSED)
        MPR__ERRNO_SAME(EACCES)
        MPR__ERRNO_SAME(EMSGSIZE)
        MPR__ERRNO_SAME(EPROTO)
        MPR__ERRNO_SAME(EMFILE)
        MPR__ERRNO_SAME(ENFILE)
        MPR__ERRNO_SAME(EAGAIN)
        MPR__ERRNO_SAME(EIO)
        MPR__ERRNO_SAME(ENOTSUP)
        MPR__ERRNO_SAME(EADDRINUSE)
        MPR__ERRNO_SAME(EADDRNOTAVAIL)
#undef MPR__ERRNO_SAME
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
        return MPR_EAGAIN;
#endif
#if defined(EOPNOTSUPP) && EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP:
        return MPR_ENOTSUP;
#endif
    case ENODEV: /* a bind to an interface that is not there */
        return MPR_EADDRNOTAVAIL;
    case ECONNRESET:
    case ENOTCONN:
#ifdef ESHUTDOWN
    case ESHUTDOWN:
#endif
        return MPR_EPIPE;
    case ENOBUFS:
        return MPR_ENOMEM;
    case EPERM: /* a refusal by the system (MPR_EOWNER means something else) */
        return MPR_EACCES;
    case EHOSTUNREACH:
    case ENETUNREACH:
        return MPR_ECONNREFUSED;
    default:
        return MPR_EIO;
    }
}

int mpr__syserr(void)
{
    return mpr__errno_code(errno);
}

/* ---- address space ---- */

size_t mpr__page_size(void)
{
    static size_t page;
    if (!page)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

void *mpr__vm_reserve(size_t size)
{
#ifdef MAP_NORESERVE
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
#else
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#endif
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void mpr__vm_commit(void *addr, size_t len)
{
#if defined(__linux__) && !defined(MPR_PORTABLE)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels fault page by page */
#endif
    size_t page = mpr__page_size();
    uintptr_t from = (uintptr_t)addr & ~(uintptr_t)(page - 1);
    uintptr_t to = ((uintptr_t)addr + len + page - 1) & ~(uintptr_t)(page - 1);
    madvise((void *)from, to - from, MADV_POPULATE_WRITE);
#else
    (void)addr;
    (void)len; /* the writes fault the pages in */
#endif
}

void mpr__vm_release(void *addr, size_t size)
{
    if (addr)
        munmap(addr, size);
}

/* ---- threads and locks ---- */

int mpr__thread_start(mpr__thread *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : mpr__errno_code(rc);
}

void mpr__thread_join(mpr__thread t)
{
    pthread_join(t, NULL);
}

int mpr__thread_is_self(mpr__thread t)
{
    return pthread_equal(t, pthread_self());
}

mpr__thread mpr__thread_self(void)
{
    return pthread_self();
}

void mpr__once_run(mpr__once *once, void (*fn)(void))
{
    pthread_once(once, fn);
}

void mpr__mutex_init(mpr__mutex *m)
{
    pthread_mutex_init(m, NULL);
}

void mpr__mutex_destroy(mpr__mutex *m)
{
    pthread_mutex_destroy(m);
}

void mpr__mutex_lock(mpr__mutex *m)
{
    pthread_mutex_lock(m);
}

void mpr__mutex_unlock(mpr__mutex *m)
{
    pthread_mutex_unlock(m);
}

void mpr__cond_init(mpr__cond *c)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
#if !defined(__APPLE__)
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
#endif
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

void mpr__cond_destroy(mpr__cond *c)
{
    pthread_cond_destroy(c);
}

void mpr__cond_wait(mpr__cond *c, mpr__mutex *m)
{
    pthread_cond_wait(c, m);
}

void mpr__cond_wait_until(mpr__cond *c, mpr__mutex *m, int64_t deadline_ns)
{
#if defined(__APPLE__)
    /* No monotonic condition variables: wait relative to now. */
    int64_t left = deadline_ns - mpr__now_ns();
    if (left <= 0)
        return;
    struct timespec rel = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
    pthread_cond_timedwait_relative_np(c, m, &rel);
#else
    struct timespec ts = {(time_t)(deadline_ns / 1000000000), (long)(deadline_ns % 1000000000)};
    pthread_cond_timedwait(c, m, &ts);
#endif
}

void mpr__cond_signal(mpr__cond *c)
{
    pthread_cond_signal(c);
}

void mpr__cond_broadcast(mpr__cond *c)
{
    pthread_cond_broadcast(c);
}

/* ---- handles ---- */

void mpr__fd_close(mpr__fd fd)
{
    if (fd >= 0)
        close(fd);
}

int mpr__fd_room(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0 || lim.rlim_cur == RLIM_INFINITY)
        return 1;
    /* The lowest free descriptor, found by taking it for a moment. */
    int probe = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0);
    if (probe < 0 && errno == EBADF) /* no standard input: any open one will do */
        probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (probe < 0)
        return 0;
    close(probe);
    return (rlim_t)probe + MPR__FD_HEADROOM < lim.rlim_cur;
}

int mpr__wait(mpr__waitfd *fds, int n, int timeout_ms)
{
    struct pollfd p[8];
    MPR__ASSERT(n <= (int)MPR__ARRAY_SIZE(p));
    for (int i = 0; i < n; i++) {
        p[i].fd = fds[i].fd;
        p[i].events = (short)(((fds[i].want & MPR__WAIT_IN) ? POLLIN : 0) |
                              ((fds[i].want & MPR__WAIT_OUT) ? POLLOUT : 0));
        p[i].revents = 0;
    }
    int rc = poll(p, (nfds_t)n, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : mpr__syserr();
    for (int i = 0; i < n; i++)
        fds[i].ready = (short)(((p[i].revents & POLLIN) ? MPR__WAIT_IN : 0) |
                               ((p[i].revents & POLLOUT) ? MPR__WAIT_OUT : 0) |
                               ((p[i].revents & (POLLHUP | POLLERR | POLLNVAL)) ? MPR__WAIT_HUP : 0));
    return rc;
}

/* ---- byte streams ---- */

long mpr__stream_recv(mpr__fd fd, void *buf, size_t n)
{
    for (;;) {
        ssize_t got = recv(fd, buf, n, 0);
        if (got >= 0)
            return (long)got;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MPR_EAGAIN;
        if (errno == ECONNRESET || errno == ENOTCONN)
            return 0; /* the peer is gone: the end of the stream */
        return mpr__syserr();
    }
}

long mpr__stream_send_some(mpr__fd fd, const void *buf, size_t n)
{
    for (;;) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            return (long)w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MPR_EAGAIN;
        return errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN ? MPR_EPIPE
                                                                           : mpr__syserr();
    }
}

int mpr__stream_send_all(mpr__fd fd, const void *a, size_t an, const void *b, size_t bn)
{
    struct iovec iov[2] = {{(void *)a, an}, {(void *)b, bn}};
    struct iovec *v = iov;
    int iovcnt = bn ? 2 : 1;
    while (iovcnt > 0) {
        struct msghdr msg = {.msg_iov = v, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                mpr__waitfd w = {fd, MPR__WAIT_OUT, 0};
                mpr__wait(&w, 1, 1000);
                continue;
            }
            return errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN ? MPR_EPIPE
                                                                               : mpr__syserr();
        }
        size_t done = (size_t)n;
        while (iovcnt > 0 && done >= v->iov_len) {
            done -= v->iov_len;
            v++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            v->iov_base = (char *)v->iov_base + done;
            v->iov_len -= done;
        }
    }
    return 0;
}

size_t mpr__stream_unread(mpr__fd fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) < 0 || n < 0)
        return 0;
    return (size_t)n;
}

void mpr__stream_shutdown_close(mpr__fd fd)
{
    if (fd < 0)
        return;
    /* shutdown acts on the socket, not on this descriptor: a forked child
     * holding a copy cannot keep the connection up. */
    shutdown(fd, SHUT_RDWR);
    close(fd);
}

int mpr__stream_peer_gone(mpr__fd fd)
{
    struct pollfd p = {fd, POLLIN, 0};
#ifdef POLLRDHUP
    p.events |= POLLRDHUP;
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return 1;
#else
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)))
        return 1;
#endif
    return 0;
}

/* ---- tcp ---- */

static void nosigpipe(int fd)
{
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#else
    (void)fd;
#endif
}

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return mpr__syserr();
    nosigpipe(fd);
    return 0;
}

int mpr__unix_connect(const void *addr, unsigned alen, int64_t deadline_ns,
                      int (*full)(int err, const char *name), const char *name, mpr__fd *conn)
{
    for (int nap_ms = 1;; nap_ms = nap_ms < 16 ? nap_ms * 2 : 20) {
#ifdef SOCK_CLOEXEC
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
#endif
        if (fd < 0)
            return mpr__syserr();
        int rc = set_flags(fd); /* non-blocking while it connects */
        if (rc < 0) {
            close(fd);
            return rc;
        }
        while ((rc = connect(fd, addr, (socklen_t)alen)) < 0 && errno == EINTR)
            ;
        if (rc == 0) {
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
                rc = mpr__syserr();
                close(fd);
                return rc;
            }
            *conn = fd;
            return 0;
        }
        const int err = errno;
        close(fd);
        if (!full(err, name))
            return err == ECONNREFUSED || err == ENOENT || err == ENOTDIR ? MPR_ECONNREFUSED
                                                                          : mpr__errno_code(err);
        const int64_t left_ms = (deadline_ns - mpr__now_ns()) / 1000000;
        if (left_ms <= 0)
            return MPR_ETIMEDOUT;
        mpr__wait(NULL, 0, left_ms < nap_ms ? (int)left_ms : nap_ms);
    }
}

/* "host:port" of an address; IPv6 in brackets. */
static void format_addr(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (getnameinfo(sa, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV)) {
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

int mpr__tcp_listen(const char *host, const char *port, mpr__fd *out, char *bound, size_t bound_size)
{
    struct addrinfo *ai;
    int rc = resolve(host, port, 1, &ai);
    if (rc < 0)
        return rc;
    /* A wildcard host: IPv4's first (it is what "0.0.0.0" means), the
     * rest in order. */
    rc = MPR_EADDRNOTAVAIL;
    int fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            rc = mpr__syserr();
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if ((rc = set_flags(fd)) == 0 && bind(fd, a->ai_addr, a->ai_addrlen) == 0 &&
            listen(fd, SOMAXCONN) == 0)
            break;
        if (rc == 0)
            rc = mpr__syserr();
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return rc;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        rc = mpr__syserr();
        close(fd);
        return rc;
    }
    format_addr((struct sockaddr *)&ss, len, bound, bound_size);
    *out = fd;
    return 0;
}

int mpr__tcp_accept(mpr__fd lfd, mpr__fd *conn, char *peer, size_t peer_size)
{
    struct sockaddr_storage ss;
    for (;;) {
        socklen_t len = sizeof ss;
        int fd = accept(lfd, (struct sockaddr *)&ss, &len);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? MPR_EAGAIN : mpr__syserr();
        }
        int rc = set_flags(fd);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        format_addr((struct sockaddr *)&ss, len, peer, peer_size);
        *conn = fd;
        return 0;
    }
}

int mpr__tcp_connect(const char *host, const char *port, mpr__fd *conn)
{
    struct addrinfo *ai;
    int rc = resolve(host, port, 0, &ai);
    if (rc < 0)
        return rc;
    rc = MPR_ECONNREFUSED;
    int fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            rc = mpr__syserr();
            continue;
        }
        if ((rc = set_flags(fd)) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS)
                break;
            rc = mpr__syserr();
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return rc;
    *conn = fd;
    return 0;
}

int mpr__tcp_connected(mpr__fd conn)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(conn, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return mpr__syserr();
    if (err != 0)
        return err == EINPROGRESS || err == EALREADY ? MPR_EAGAIN : mpr__errno_code(err);
    /* No error yet: connected, or still connecting (a peer name tells). */
    struct sockaddr_storage ss;
    len = sizeof ss;
    if (getpeername(conn, (struct sockaddr *)&ss, &len) == 0)
        return 0;
    return errno == ENOTCONN ? MPR_EAGAIN : mpr__syserr();
}

void mpr__tcp_user_timeout(mpr__fd conn, int ms)
{
#ifdef TCP_USER_TIMEOUT
    unsigned v = (unsigned)ms;
    setsockopt(conn, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v);
#else
    (void)conn;
    (void)ms;
#endif
}

int mpr__hostname(char *buf, size_t size)
{
    if (gethostname(buf, size) < 0)
        return mpr__syserr();
    buf[size - 1] = '\0';
    return 0;
}
