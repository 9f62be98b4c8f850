/*
 * platform_portable.c - the platform layer's part for macOS, the BSDs and
 * any other POSIX system (platform.h), using only what they all have:
 * getentropy, pipes, poll, a path socket in a private 0700 directory,
 * getpeereid (or SO_PEERCRED, the stand-in on Linux, where this file is
 * built with CONFIG+=mpr_portable and the whole suite runs against it),
 * POSIX shared memory handed over with SCM_RIGHTS, and secrets wiped in a
 * forked child by a pthread_atfork handler (minherit where there is one).
 * The rest is platform_posix.c.
 */
#if defined(__linux__)
#define _GNU_SOURCE /* SO_PEERCRED and struct ucred: the stand-in for getpeereid */
#elif defined(__APPLE__)
#define _DARWIN_C_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <sys/random.h>
#include <sys/ucred.h>
#endif

#include "base.h"
#include "platform.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE on the socket instead */
#endif

/* Descriptors of our own are close-on-exec and (where it applies)
 * non-blocking; set after the fact, as not every system has the
 * SOCK_CLOEXEC/O_CLOEXEC-everywhere calls. */
static int own_fd(int fd, int nonblock)
{
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return mpr__syserr();
    if (nonblock) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return mpr__syserr();
    }
#ifdef SO_NOSIGPIPE
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one); /* not a socket: ignored */
#endif
    return 0;
}

/* ---- random bytes ---- */

int mpr__random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n < 256 ? n : 256; /* getentropy's limit */
        if (getentropy(p, chunk) < 0)
            return mpr__syserr();
        p += chunk;
        n -= chunk;
    }
    return 0;
}

/* ---- memory for secrets: wiped in a forked child by an atfork handler ---- */

struct region {
    struct region *next;
    void *p;
    size_t size;
};

static mpr__mutex regions_lock = MPR__MUTEX_INIT;
static struct region *regions;
static mpr__once atfork_once = MPR__ONCE_INIT;
static _Atomic uint64_t token_word; /* fork detection: 0 in a forked child */
const _Atomic uint64_t *mpr__token_word = &token_word;

/* fork(): hold the list still, so the child sees it whole. */
static void before_fork(void)
{
    mpr__mutex_lock(&regions_lock);
}

static void after_fork_parent(void)
{
    mpr__mutex_unlock(&regions_lock);
}

static void after_fork_child(void)
{
    for (struct region *r = regions; r; r = r->next)
        mpr__wipe(r->p, r->size);
    atomic_store(&token_word, 0);
    mpr__mutex_unlock(&regions_lock);
}

static void install_atfork(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

static size_t page_round(size_t size)
{
    size_t page = mpr__page_size();
    return (size + page - 1) / page * page;
}

void *mpr__secure_alloc(size_t size)
{
    mpr__once_run(&atfork_once, install_atfork);
    size = page_round(size);
    struct region *r = malloc(sizeof *r);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!r || p == MAP_FAILED) {
        free(r);
        if (p != MAP_FAILED)
            munmap(p, size);
        return NULL;
    }
#if defined(INHERIT_ZERO)
    minherit(p, size, INHERIT_ZERO); /* the BSDs: the kernel zeroes it in a child */
#endif
#if defined(MADV_DONTDUMP)
    madvise(p, size, MADV_DONTDUMP);
#elif defined(MADV_NOCORE)
    madvise(p, size, MADV_NOCORE);
#endif
    r->p = p;
    r->size = size;
    mpr__mutex_lock(&regions_lock);
    r->next = regions;
    regions = r;
    mpr__mutex_unlock(&regions_lock);
    return p;
}

void mpr__secure_free(void *p, size_t size)
{
    if (!p)
        return;
    size = page_round(size);
    mpr__mutex_lock(&regions_lock);
    for (struct region **at = &regions; *at; at = &(*at)->next) {
        if ((*at)->p == p) {
            struct region *r = *at;
            *at = r->next;
            free(r);
            break;
        }
    }
    mpr__mutex_unlock(&regions_lock);
    mpr__wipe(p, size);
    munmap(p, size);
}

uint64_t mpr__process_token(void)
{
    mpr__once_run(&atfork_once, install_atfork);
    uint64_t t = atomic_load(&token_word);
    while (t == 0) {
        uint64_t fresh = 0;
        if (mpr__random(&fresh, sizeof fresh) < 0)
            fresh = (uint64_t)getpid() << 32 ^ (uint64_t)mpr__now_ns();
        if (fresh == 0)
            continue;
        if (atomic_compare_exchange_strong(&token_word, &t, fresh))
            t = fresh;
    }
    return t;
}

/* ---- events: a pipe ---- */

int mpr__event_open(mpr__event *e)
{
    int fds[2];
    e->rfd = e->wfd = MPR__NO_FD;
    if (pipe(fds) < 0)
        return mpr__syserr();
    int rc = own_fd(fds[0], 1);
    if (rc == 0)
        rc = own_fd(fds[1], 1);
    if (rc < 0) {
        close(fds[0]);
        close(fds[1]);
        return rc;
    }
    e->rfd = fds[0];
    e->wfd = fds[1];
    return 0;
}

void mpr__event_close(mpr__event *e)
{
    mpr__fd_close(e->rfd);
    mpr__fd_close(e->wfd);
    e->rfd = e->wfd = MPR__NO_FD;
}

void mpr__event_set(mpr__event *e)
{
    ssize_t rc = write(e->wfd, "e", 1);
    (void)rc; /* EAGAIN: full of wake-ups already */
}

void mpr__event_clear(mpr__event *e)
{
    char buf[64];
    while (read(e->rfd, buf, sizeof buf) > 0)
        ;
}

/* ---- the poller: poll() over an array of watches ---- */

struct mpr__poller {
    mpr__watch **w; /* the watches; NULL: a free slot */
    size_t n, cap;
    struct pollfd *pfd; /* scratch for poll(), cap long */
    mpr__watch **of;    /* the watch of each pfd */
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
    int rc = mpr__event_open(&p->wake);
    if (rc == 0) {
        p->wake_watch.on_event = on_wake;
        rc = mpr__poller_add(p, &p->wake_watch, p->wake.rfd, 1);
    }
    if (rc < 0) {
        mpr__poller_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void mpr__poller_free(mpr__poller *p)
{
    if (!p)
        return;
    mpr__event_close(&p->wake);
    free(p->w);
    free(p->pfd);
    free(p->of);
    free(p);
}

int mpr__poller_add(mpr__poller *p, mpr__watch *w, mpr__fd fd, int always)
{
    w->fd = fd;
    w->always = (unsigned char)!!always;
    w->gone = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (!p->w[i]) {
            p->w[i] = w;
            return 0;
        }
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        mpr__watch **nw = realloc(p->w, cap * sizeof *nw);
        if (!nw)
            return MPR_ENOMEM;
        p->w = nw;
        struct pollfd *pfd = realloc(p->pfd, cap * sizeof *pfd);
        if (!pfd)
            return MPR_ENOMEM;
        p->pfd = pfd;
        mpr__watch **of = realloc(p->of, cap * sizeof *of);
        if (!of)
            return MPR_ENOMEM;
        p->of = of;
        p->cap = cap;
    }
    p->w[p->n++] = w;
    return 0;
}

void mpr__poller_set_always(mpr__poller *p, mpr__watch *w, int always)
{
    (void)p;
    w->always = (unsigned char)!!always;
}

void mpr__poller_del(mpr__poller *p, mpr__watch *w)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->w[i] == w)
            p->w[i] = NULL;
    while (p->n > 0 && !p->w[p->n - 1])
        p->n--;
    w->gone = 1;
}

void mpr__poller_wake(mpr__poller *p)
{
    mpr__event_set(&p->wake);
}

int mpr__poller_wait(mpr__poller *p, int always_only, int timeout_ms, mpr__watch **ready, int max)
{
    nfds_t n = 0;
    for (size_t i = 0; i < p->n; i++) {
        mpr__watch *w = p->w[i];
        if (!w || (always_only && !w->always))
            continue;
        p->pfd[n].fd = w->fd;
        p->pfd[n].events = POLLIN;
        p->pfd[n].revents = 0;
        p->of[n++] = w;
    }
    int rc = poll(p->pfd, n, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : mpr__syserr();
    int k = 0;
    /* Fairness across rounds is the monitor's business (a few accepts and
     * reads per event); here every ready watch is reported, up to max (the
     * rest are still readable next time: level-triggered). */
    for (nfds_t i = 0; i < n && k < max; i++) {
        if (!p->pfd[i].revents)
            continue;
        if (p->of[i] == &p->wake_watch)
            on_wake(&p->wake_watch);
        else
            ready[k++] = p->of[i];
    }
    return k;
}

/* ---- the local endpoint: a path socket in a private directory ---- */

#define IPC_BASE "/tmp" /* the same for every process (not $TMPDIR, which may differ) */

static int ipc_path(const char *name, struct sockaddr_un *addr, socklen_t *len)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    int n = snprintf(addr->sun_path, sizeof addr->sun_path, IPC_BASE "/%s/s", name);
    if (n < 0 || (size_t)n >= sizeof addr->sun_path)
        return MPR_EINVAL;
    *len = (socklen_t)sizeof *addr;
    return 0;
}

/* Remove what endpoints of our user left when their process was killed:
 * a folder mprouter-* of IPC_BASE, ours, 0700, whose "lock" nobody holds
 * (a live endpoint holds it with flock: across fork too, and another
 * endpoint of this process never releases it), untouched for a minute.
 * At most 64 a call; anything else there is left alone. */
#define STALE_AFTER_S 60
static void sweep_stale(void)
{
    DIR *d = opendir(IPC_BASE);
    if (!d)
        return;
    const uid_t me = geteuid();
    const time_t now = time(NULL);
    int removed = 0;
    for (struct dirent *e; removed < 64 && (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, "mprouter-", 9) != 0)
            continue;
        char dir[512], path[600];
        snprintf(dir, sizeof dir, IPC_BASE "/%s", e->d_name);
        struct stat st;
        if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != me ||
            (st.st_mode & 0777) != 0700 || now - st.st_mtime < STALE_AFTER_S)
            continue;
        snprintf(path, sizeof path, "%s/lock", dir);
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue; /* no lock: not one of ours, or from an older version */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            snprintf(path, sizeof path, "%s/s", dir);
            unlink(path);
            snprintf(path, sizeof path, "%s/lock", dir);
            unlink(path);
            if (rmdir(dir) == 0)
                removed++;
        }
        close(fd);
    }
    closedir(d);
}

int mpr__ipc_listen(mpr__ipc_listener *l, char *name, size_t name_size)
{
    l->fd = MPR__NO_FD;
    l->lock = -1;
    l->dir[0] = '\0';
    sweep_stale();
    char dir[] = IPC_BASE "/mprouter-XXXXXX";
    if (!mkdtemp(dir)) /* 0700, and a name nobody had */
        return mpr__syserr();
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    {
        char path[sizeof l->dir + 8];
        snprintf(path, sizeof path, "%s/lock", dir);
        l->lock = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (l->lock >= 0 && flock(l->lock, LOCK_EX | LOCK_NB) != 0) {
            close(l->lock);
            l->lock = -1;
        }
        if (l->lock < 0) {
            int rc = mpr__syserr();
            unlink(path);
            rmdir(dir);
            l->dir[0] = '\0';
            return rc;
        }
    }
    snprintf(name, name_size, "%s", dir + sizeof IPC_BASE);
    struct sockaddr_un addr;
    socklen_t alen;
    int rc = ipc_path(name, &addr, &alen);
    int fd = rc == 0 ? socket(AF_UNIX, SOCK_STREAM, 0) : -1;
    if (rc == 0 && fd < 0)
        rc = mpr__syserr();
    if (rc == 0)
        rc = own_fd(fd, 1);
    if (rc == 0 && (bind(fd, (struct sockaddr *)&addr, alen) < 0 || listen(fd, SOMAXCONN) < 0))
        rc = mpr__syserr();
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        unlink(addr.sun_path);
        char path[sizeof l->dir + 8];
        snprintf(path, sizeof path, "%s/lock", l->dir);
        unlink(path);
        close(l->lock);
        l->lock = -1;
        rmdir(l->dir);
        l->dir[0] = '\0';
        return rc;
    }
    l->fd = fd;
    return 0;
}

/* The peer's user (and process, where the system tells). */
static int peer_ids(int fd, long *uid, long *pid)
{
    *uid = *pid = -1;
#if defined(SO_PEERCRED) && defined(__linux__)
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -1;
    *uid = (long)cred.uid;
    *pid = (long)cred.pid;
    return 0;
#else
    uid_t u;
    gid_t g;
    if (getpeereid(fd, &u, &g) < 0)
        return -1;
    *uid = (long)u;
#if defined(LOCAL_PEERPID)
    pid_t p;
    socklen_t len = sizeof p;
    if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &p, &len) == 0)
        *pid = (long)p;
#endif
    return 0;
#endif
}

int mpr__ipc_accept(mpr__ipc_listener *l, mpr__fd *conn, mpr__ipc_peer *peer)
{
    int fd;
    while ((fd = accept(l->fd, NULL, NULL)) < 0) {
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? MPR_EAGAIN : mpr__syserr();
    }
    int rc = own_fd(fd, 1);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    peer->same_user = peer_ids(fd, &peer->uid, &peer->pid) == 0 && peer->uid == (long)geteuid();
    *conn = fd;
    return 0;
}

void mpr__ipc_unlisten(mpr__ipc_listener *l)
{
    if (l->fd >= 0) {
        /* As on Linux: refuse new connections also for a forked child's
         * copy, and hang up on those still in the backlog. */
        shutdown(l->fd, SHUT_RDWR);
        int fd;
        while ((fd = accept(l->fd, NULL, NULL)) >= 0 || errno == EINTR)
            if (fd >= 0)
                mpr__stream_shutdown_close(fd);
        close(l->fd);
        l->fd = MPR__NO_FD;
    }
    if (l->dir[0]) {
        char path[sizeof l->dir + 8];
        snprintf(path, sizeof path, "%s/s", l->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/lock", l->dir);
        unlink(path);
        rmdir(l->dir);
        l->dir[0] = '\0';
    }
    if (l->lock >= 0) {
        close(l->lock);
        l->lock = -1;
    }
}

/* Does a live endpoint hold the lock of the endpoint called name? */
static int endpoint_alive(const char *name)
{
    char path[300];
    if (snprintf(path, sizeof path, IPC_BASE "/%s/lock", name) >= (int)sizeof path)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    const int alive = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* and with it a lock we took */
    return alive;
}

/* A full backlog: EAGAIN (Linux), ECONNREFUSED while the endpoint lives
 * (macOS, the BSDs). */
static int backlog_full(int err, const char *name)
{
    return err == EAGAIN || (err == ECONNREFUSED && endpoint_alive(name));
}

int mpr__ipc_connect(const char *name, mpr__fd *conn, int64_t deadline_ns)
{
    struct sockaddr_un addr;
    socklen_t alen;
    if (ipc_path(name, &addr, &alen) < 0)
        return MPR_ECONNREFUSED;
    return mpr__unix_connect(&addr, alen, deadline_ns, backlog_full, name, conn);
}

int mpr__ipc_peer_is_us(mpr__fd conn)
{
    long uid, pid;
    return peer_ids(conn, &uid, &pid) == 0 && uid == (long)geteuid();
}

int mpr__ipc_send_shm(mpr__fd conn, const void *buf, size_t n, mpr__fd shm)
{
    struct iovec iov = {(void *)buf, n};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
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
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t got;
    while ((got = recvmsg(conn, &msg, 0)) < 0 && errno == EINTR)
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
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            if (shm && *shm < 0)
                *shm = fd;
            else
                close(fd);
        }
    }
    return (long)got;
}

/* ---- shared memory: POSIX objects, unlinked at once ---- */

int mpr__shm_create(size_t size, mpr__fd *handle, void **addr)
{
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 8; attempt++) {
        unsigned char rnd[6];
        int rc = mpr__random(rnd, sizeof rnd);
        if (rc < 0)
            return rc;
        char name[40];
        snprintf(name, sizeof name, "/mprouter-%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                 rnd[3], rnd[4], rnd[5]);
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd >= 0)
            shm_unlink(name); /* nobody else can open it from now on */
        else if (errno != EEXIST)
            return mpr__syserr();
    }
    if (fd < 0)
        return MPR_EIO;
    int rc = own_fd(fd, 0);
    if (rc == 0 && ftruncate(fd, (off_t)size) < 0)
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

#if MPR__SHM_WINDOW

long mpr__shm_size(mpr__fd handle)
{
    struct stat st;
    if (fstat(handle, &st) < 0)
        return mpr__syserr();
    return (long)st.st_size;
}

int mpr__shm_read(mpr__fd handle, uint64_t off, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t got = pread(handle, p, n, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return MPR_EPROTO; /* shrunk under us, or not readable */
        p += got;
        off += (uint64_t)got;
        n -= (size_t)got;
    }
    return 0;
}

int mpr__shm_write(mpr__fd handle, uint64_t off, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t put = pwrite(handle, p, n, (off_t)off);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return MPR_EPROTO;
        p += put;
        off += (uint64_t)put;
        n -= (size_t)put;
    }
    return 0;
}

#else /* macOS: an object's size is fixed once it is set: map it */

int mpr__shm_map(mpr__fd handle, size_t min, size_t max, void **addr, size_t *size)
{
    struct stat st;
    if (fstat(handle, &st) < 0 || st.st_size < (off_t)min || st.st_size > (off_t)max)
        return MPR_EPROTO;
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, handle, 0);
    if (base == MAP_FAILED)
        return MPR_EPROTO;
    *addr = base;
    *size = (size_t)st.st_size;
    return 0;
}

#endif
