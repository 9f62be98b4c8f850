/*
 * platform_linux.c - the platform layer's Linux part (platform.h): epoll,
 * eventfd, getrandom, MADV_WIPEONFORK pages, abstract AF_UNIX sockets with
 * SO_PEERCRED, rings in sealed memfds, futexes. The rest is
 * platform_posix.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "base.h"
#include "platform.h"

/* ---- random bytes ---- */

int mpr__random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return mpr__syserr();
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* ---- memory for secrets; fork detection ---- */

static size_t page_round(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (size + page - 1) / page * page;
}

void *mpr__secure_alloc(size_t size)
{
    size = page_round(size);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (madvise(p, size, MADV_WIPEONFORK) < 0) {
        /* Linux before 4.14. The secrets still work; forked children can
         * read them, which the application is told once. */
        static atomic_int warned;
        if (!atomic_exchange(&warned, 1))
            mpr__warn("this kernel has no MADV_WIPEONFORK: forked children can read the "
                      "router's secrets");
    }
    madvise(p, size, MADV_DONTDUMP); /* best effort */
    return p;
}

void mpr__secure_free(void *p, size_t size)
{
    if (!p)
        return;
    size = page_round(size);
    mpr__wipe(p, size);
    munmap(p, size);
}

static _Atomic uint64_t token_fallback; /* if the page cannot be had */
const _Atomic uint64_t *mpr__token_word = &token_fallback;
static mpr__once token_once = MPR__ONCE_INIT;

static void token_child(void)
{
    atomic_store(&token_fallback, 0);
}

static void token_init(void)
{
    /* A page the kernel wipes in a forked child; and the atfork handler
     * for when it cannot be had (then fork() is still noticed, only a bare
     * clone() would go unnoticed). */
    void *page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED && madvise(page, (size_t)sysconf(_SC_PAGESIZE), MADV_WIPEONFORK) == 0) {
        mpr__token_word = page;
        return;
    }
    if (page != MAP_FAILED)
        munmap(page, (size_t)sysconf(_SC_PAGESIZE));
    pthread_atfork(NULL, NULL, token_child);
}

uint64_t mpr__process_token(void)
{
    mpr__once_run(&token_once, token_init);
    _Atomic uint64_t *word = (_Atomic uint64_t *)mpr__token_word;
    uint64_t t = atomic_load(word);
    while (t == 0) {
        uint64_t fresh = 0;
        if (mpr__random(&fresh, sizeof fresh) < 0)
            fresh = (uint64_t)getpid() << 32 ^ (uint64_t)mpr__now_ns();
        if (fresh == 0)
            continue;
        if (atomic_compare_exchange_strong(word, &t, fresh))
            t = fresh;
    }
    return t;
}

/* ---- events ---- */

int mpr__event_open(mpr__event *e)
{
    e->rfd = e->wfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return e->rfd < 0 ? mpr__syserr() : 0;
}

void mpr__event_close(mpr__event *e)
{
    mpr__fd_close(e->rfd);
    e->rfd = e->wfd = MPR__NO_FD;
}

void mpr__event_set(mpr__event *e)
{
    uint64_t one = 1;
    ssize_t rc = write(e->wfd, &one, sizeof one);
    (void)rc; /* fails only on counter overflow, which clearing prevents */
}

void mpr__event_clear(mpr__event *e)
{
    uint64_t v;
    ssize_t rc = read(e->rfd, &v, sizeof v);
    (void)rc; /* EAGAIN: it was not set */
}

/* ---- the poller: two epoll sets, and an eventfd to wake it ---- */

struct mpr__poller {
    int all, always; /* epoll sets: every watch; those with `always` */
    mpr__event wake;
    mpr__watch wake_watch;
};

static void on_wake(mpr__watch *w)
{
    mpr__poller *p = MPR__CONTAINER_OF(w, mpr__poller, wake_watch);
    mpr__event_clear(&p->wake);
}

int mpr__poller_new(mpr__poller **out)
{
    mpr__poller *p = calloc(1, sizeof *p);
    if (!p)
        return MPR_ENOMEM;
    p->all = epoll_create1(EPOLL_CLOEXEC);
    p->always = epoll_create1(EPOLL_CLOEXEC);
    int rc = p->all < 0 || p->always < 0 ? mpr__syserr() : mpr__event_open(&p->wake);
    if (rc == 0) {
        p->wake_watch.on_event = on_wake;
        rc = mpr__poller_add(p, &p->wake_watch, p->wake.rfd, 1);
    }
    if (rc < 0) {
        mpr__fd_close(p->all);
        mpr__fd_close(p->always);
        mpr__event_close(&p->wake);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void mpr__poller_free(mpr__poller *p)
{
    if (!p)
        return;
    close(p->all);
    close(p->always);
    mpr__event_close(&p->wake);
    free(p);
}

int mpr__poller_add(mpr__poller *p, mpr__watch *w, mpr__fd fd, int always)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    w->fd = fd;
    w->always = 0;
    w->gone = 0;
    if (epoll_ctl(p->all, EPOLL_CTL_ADD, fd, &ev) < 0)
        return mpr__syserr();
    mpr__poller_set_always(p, w, always);
    return 0;
}

void mpr__poller_set_always(mpr__poller *p, mpr__watch *w, int always)
{
    if (w->always == !!always)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
    if (epoll_ctl(p->always, always ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->fd, &ev) == 0)
        w->always = (unsigned char)!!always;
}

void mpr__poller_del(mpr__poller *p, mpr__watch *w)
{
    /* Explicitly: a forked child may hold a copy of the descriptor, and
     * epoll forgets it only when every copy is closed. */
    epoll_ctl(p->all, EPOLL_CTL_DEL, w->fd, NULL);
    if (w->always)
        epoll_ctl(p->always, EPOLL_CTL_DEL, w->fd, NULL);
    w->always = 0;
    w->gone = 1;
}

void mpr__poller_wake(mpr__poller *p)
{
    mpr__event_set(&p->wake);
}

int mpr__poller_wait(mpr__poller *p, int always_only, int timeout_ms, mpr__watch **ready, int max)
{
    struct epoll_event evs[64];
    if (max > (int)MPR__ARRAY_SIZE(evs))
        max = (int)MPR__ARRAY_SIZE(evs);
    int n = epoll_wait(always_only ? p->always : p->all, evs, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : mpr__syserr();
    int k = 0;
    for (int i = 0; i < n; i++) {
        mpr__watch *w = evs[i].data.ptr;
        if (w == &p->wake_watch)
            on_wake(w);
        else
            ready[k++] = w;
    }
    return k;
}

/* ---- the local endpoint: an abstract AF_UNIX socket ---- */

static socklen_t abstract_addr(struct sockaddr_un *addr, const char *name)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(addr->sun_path + 1, name, len); /* abstract: sun_path[0] == 0 */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

int mpr__ipc_listen(mpr__ipc_listener *l, char *name, size_t name_size)
{
    l->fd = MPR__NO_FD;
    unsigned char rnd[8];
    int rc = mpr__random(rnd, sizeof rnd);
    if (rc < 0)
        return rc;
    snprintf(name, name_size, "mprouter-%d-%02x%02x%02x%02x%02x%02x%02x%02x", (int)getpid(), rnd[0],
             rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mpr__syserr();
    struct sockaddr_un addr;
    socklen_t alen = abstract_addr(&addr, name);
    if (bind(fd, (struct sockaddr *)&addr, alen) < 0 || listen(fd, SOMAXCONN) < 0) {
        rc = mpr__syserr();
        close(fd);
        return rc;
    }
    l->fd = fd;
    return 0;
}

int mpr__ipc_accept(mpr__ipc_listener *l, mpr__fd *conn, mpr__ipc_peer *peer)
{
    int fd;
    while ((fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? MPR_EAGAIN : mpr__syserr();
    }
    struct ucred cred = {0, (uid_t)-1, (gid_t)-1};
    socklen_t len = sizeof cred;
    int got = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
    peer->same_user = got && cred.uid == geteuid();
    peer->pid = got ? (long)cred.pid : -1;
    peer->uid = got ? (long)cred.uid : -1;
    *conn = fd;
    return 0;
}

void mpr__ipc_unlisten(mpr__ipc_listener *l)
{
    if (l->fd < 0)
        return;
    /* A child forked while the router ran holds a copy of the listening
     * socket; shut it down so that connecting after stop is refused.
     * Connections still in the backlog would then wait there for as long
     * as that copy lives: take them and hang up, so their senders learn at
     * once. */
    shutdown(l->fd, SHUT_RDWR);
    int fd;
    while ((fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0 || errno == EINTR)
        if (fd >= 0)
            mpr__stream_shutdown_close(fd);
    close(l->fd);
    l->fd = MPR__NO_FD;
}

/* A full backlog: a non-blocking connect says EAGAIN. */
static int backlog_full(int err, const char *name)
{
    (void)name;
    return err == EAGAIN;
}

int mpr__ipc_connect(const char *name, mpr__fd *conn, int64_t deadline_ns)
{
    struct sockaddr_un addr;
    socklen_t alen = abstract_addr(&addr, name);
    return mpr__unix_connect(&addr, alen, deadline_ns, backlog_full, name, conn);
}

int mpr__ipc_peer_is_us(mpr__fd conn)
{
    struct ucred cred = {0, (uid_t)-1, (gid_t)-1};
    socklen_t len = sizeof cred;
    return getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid();
}

int mpr__ipc_send_shm(mpr__fd conn, const void *buf, size_t n, mpr__fd shm)
{
    struct iovec iov = {(void *)buf, n};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (shm >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &shm, sizeof(int));
    }
    ssize_t sent;
    while ((sent = sendmsg(conn, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    if (sent == (ssize_t)n)
        return 0;
    if (sent >= 0 || errno == EPIPE || errno == ECONNRESET)
        return MPR_EPIPE;
    return mpr__syserr();
}

long mpr__ipc_recv(mpr__fd conn, void *buf, size_t n, mpr__fd *shm, int *dropped)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } control;
    struct iovec iov = {buf, n};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t got;
    while ((got = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return MPR_EAGAIN;
        return errno == ECONNRESET || errno == ENOTCONN ? 0 : mpr__syserr();
    }
    if ((msg.msg_flags & MSG_CTRUNC) && dropped)
        *dropped = 1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfds; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (shm && *shm < 0)
                *shm = fd;
            else
                close(fd);
        }
    }
    return (long)got;
}

/* ---- shared memory: sealed memfds ---- */

int mpr__shm_create(size_t size, mpr__fd *handle, void **addr)
{
    int fd = memfd_create("mprouter-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return mpr__syserr();
    int rc = 0;
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        rc = mpr__syserr();
    void *base = rc ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        if (!rc)
            rc = mpr__syserr();
        close(fd);
        return rc;
    }
    *handle = fd;
    *addr = base;
    return 0;
}

int mpr__shm_map(mpr__fd handle, size_t min, size_t max, void **addr, size_t *size)
{
    struct stat st;
    if (fstat(handle, &st) < 0 || st.st_size < (off_t)min || st.st_size > (off_t)max)
        return MPR_EPROTO;
    /* Without these seals the sender could shrink the file and make us
     * fault (SIGBUS) on the mapping. */
    int seals = fcntl(handle, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return MPR_EPROTO;
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, handle, 0);
    if (base == MAP_FAILED)
        return MPR_EPROTO;
    *addr = base;
    *size = (size_t)st.st_size;
    return 0;
}

void mpr__shm_unmap(void *addr, size_t size)
{
    if (addr)
        munmap(addr, size);
}

int mpr__shm_private(size_t size, void **addr)
{
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return mpr__syserr();
    *addr = base;
    return 0;
}

/* ---- futexes ---- */

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
    /* Not FUTEX_PRIVATE: the word may be shared between processes. */
    return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

void mpr__futex_wait(_Atomic uint32_t *word, uint32_t expected, int64_t timeout_ns)
{
    struct timespec ts = {(time_t)(timeout_ns / 1000000000), (long)(timeout_ns % 1000000000)};
    futex(word, FUTEX_WAIT, expected, &ts);
}

void mpr__futex_wake(_Atomic uint32_t *word)
{
    futex(word, FUTEX_WAKE, INT_MAX, NULL);
}
