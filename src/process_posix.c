/*
 * process_posix.c - worker processes for the executor (see workproc.h):
 * starting them, the supervisor thread, the worker's standard input.
 * POSIX; the Linux-only calls (prctl, pipe2, close_range) only in the
 * Linux build (MPR__LINUX), so the portable build uses none of them.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#if MPR__LINUX
#include <sys/prctl.h>
#endif

#include "base.h"
#include "workproc.h"

extern char **environ;

/* ------------------------------------------------------------------ */
/* starting a process                                                   */

static int cloexec_pipe(int fds[2])
{
#if MPR__LINUX
    return pipe2(fds, O_CLOEXEC);
#else
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return 0;
#endif
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* In the child, async-signal-safe only: the signal mask, standard input,
 * and on Linux the parent-death signal. 0 or -1. */
static int child_setup(int in_r, pid_t parent)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (in_r == 0) {
        if (fcntl(0, F_SETFD, 0) != 0)
            return -1;
    } else if (dup2(in_r, 0) < 0) {
        return -1;
    }
#if MPR__LINUX
    /* Sent when the thread that forked us ends. If the parent died
     * before this call, nobody will send it: check. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        return -1;
#else
    (void)parent;
#endif
    return 0;
}

static void exec_child(int in_r, int err_w, pid_t parent, const char *path, char *const argv[],
                       char **envp)
{
    int e = 0;
    if (child_setup(in_r, parent) != 0)
        e = errno ? errno : ESRCH;
    else {
        execve(path, argv, envp);
        e = errno;
    }
    ssize_t w;
    do
        w = write(err_w, &e, sizeof e);
    while (w < 0 && errno == EINTR);
    _exit(127);
}

static void fork_child(int in_r, pid_t parent, int (*fn)(void *), void *arg)
{
    /* The parent's handlers would run the parent's code here. */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) != 0)
            continue;
        if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN))
            continue;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
    }
    if (child_setup(in_r, parent) != 0)
        _exit(127);
    /* Only standard input, output and error stay: the router's sockets,
     * the other workers' pipes and everything else of the parent go. */
#if MPR__LINUX
    if (close_range(3, ~0u, 0) != 0)
#endif
    {
        struct rlimit rl;
        int top = 65536;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < (rlim_t)top)
            top = (int)rl.rlim_cur;
        for (int fd = 3; fd < top; fd++)
            close(fd);
    }
    _exit(fn(arg));
}

int mpr__proc_spawn(const mpr__spawn *s, const char *input, size_t input_len, int64_t *pid_out,
                    mpr__fd *in_fd, char *why, size_t why_size)
{
    int in[2] = {-1, -1}, err[2] = {-1, -1};
    why[0] = 0;
    /* The input goes into the pipe before the fork, while we hold its
     * read end: the write can neither block (a pipe holds 4 KiB at the
     * very least) nor raise SIGPIPE (a reader exists). */
    if (input_len > 4096 || cloexec_pipe(in) != 0) {
        int rc = input_len > 4096 ? MPR_EINVAL : mpr__syserr();
        snprintf(why, why_size, "cannot make a pipe: %s", mpr_strerror(rc));
        return rc;
    }
    size_t done = 0;
    while (done < input_len) {
        ssize_t w = write(in[1], input + done, input_len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int rc = mpr__syserr();
            snprintf(why, why_size, "cannot write to a pipe: %s", strerror(errno));
            close_fd(&in[0]);
            close_fd(&in[1]);
            return rc;
        }
        done += (size_t)w;
    }
    if (s->path && cloexec_pipe(err) != 0) {
        int rc = mpr__syserr();
        snprintf(why, why_size, "cannot make a pipe: %s", strerror(errno));
        close_fd(&in[0]);
        close_fd(&in[1]);
        return rc;
    }
    char **envp = environ;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        if (s->path)
            exec_child(in[0], err[1], parent, s->path, s->argv, envp);
        else
            fork_child(in[0], parent, s->fn, s->arg);
        _exit(127); /* not reached */
    }
    int fork_errno = errno;
    close_fd(&in[0]);
    close_fd(&err[1]);
    if (pid < 0) {
        snprintf(why, why_size, "cannot fork: %s", strerror(fork_errno));
        close_fd(&in[1]);
        close_fd(&err[0]);
        return mpr__errno_code(fork_errno);
    }
    if (s->path) {
        /* End of file: the exec worked (the pipe was close-on-exec). */
        int e = 0;
        size_t got = 0;
        while (got < sizeof e) {
            ssize_t r = read(err[0], (char *)&e + got, sizeof e - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        close_fd(&err[0]);
        if (got == sizeof e) {
            int st;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
            }
            close_fd(&in[1]);
            snprintf(why, why_size, "cannot run %s: %s", s->path, strerror(e));
            return MPR_EIO;
        }
    }
    *pid_out = pid;
    *in_fd = in[1];
    return 0;
}

int mpr__proc_find(const char *name, char **path)
{
    if (strchr(name, '/')) {
        *path = strdup(name);
        return *path ? 0 : MPR_ENOMEM;
    }
    const char *dirs = getenv("PATH");
    if (!dirs || !*dirs)
        dirs = "/usr/local/bin:/usr/bin:/bin";
    size_t nlen = strlen(name);
    for (const char *p = dirs;;) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        char *cand = malloc(dlen + nlen + 3);
        if (!cand)
            return MPR_ENOMEM;
        if (dlen)
            memcpy(cand, p, dlen);
        else
            cand[dlen++] = '.'; /* an empty entry is the current folder */
        cand[dlen] = '/';
        memcpy(cand + dlen + 1, name, nlen + 1);
        struct stat st;
        if (access(cand, X_OK) == 0 && stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
            *path = cand;
            return 0;
        }
        free(cand);
        if (!end)
            return MPR_ENOENT;
        p = end + 1;
    }
}

static const char *signal_name(int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
        {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
        {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
        {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGSYS, "SIGSYS"},
    };
    for (size_t i = 0; i < MPR__ARRAY_SIZE(names); i++)
        if (names[i].sig == sig)
            return names[i].name;
    return "a signal";
}

void mpr__proc_describe(int status, char *buf, size_t size)
{
    if (status < 0)
        snprintf(buf, size, "ended (status unknown: reaped by someone else)");
    else if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)%s", WTERMSIG(status),
                 signal_name(WTERMSIG(status)),
#ifdef WCOREDUMP
                 WCOREDUMP(status) ? ", core dumped" : ""
#else
                 ""
#endif
        );
    else
        snprintf(buf, size, "ended with wait status %d", status);
}

int mpr__proc_exit_code(int status)
{
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int64_t mpr__proc_self(void)
{
    return (int64_t)getpid();
}

/* ------------------------------------------------------------------ */
/* the supervisor thread                                                */

#define SWEEP_NS 1000000000LL       /* every process, once a second */
#define EXPECT_FIRST_NS 1000000LL   /* an ending one: 1 ms, doubling... */
#define EXPECT_MAX_NS 200000000LL   /* ...up to 200 ms */

struct sup_proc {
    int64_t pid;
    int fd;            /* the write end of its input; -1 once it broke */
    int kill;          /* asked to kill it */
    int killed;
    int expect;        /* look for it at next_ns */
    int64_t next_ns;
    int64_t interval_ns;
};

struct mpr__sup {
    mpr__mutex lock;
    mpr__thread thread;
    mpr__event wake;
    void (*notify)(void *arg);
    void *arg;
    int quit;
    int64_t alarm_ns;
    int64_t sweep_ns;
    struct sup_proc *procs;
    size_t nprocs, cap;
    mpr__reaped *done; /* reaped, not taken yet */
    size_t ndone, done_cap;
};

/* Record a reaped process and drop it; lock held. 0 or MPR_ENOMEM (then
 * it stays, and is tried again). */
static int sup_reaped(mpr__sup *s, size_t i, int status)
{
    if (s->ndone == s->done_cap) {
        size_t n = s->done_cap ? s->done_cap * 2 : 16;
        mpr__reaped *d = realloc(s->done, n * sizeof *d);
        if (!d)
            return MPR_ENOMEM;
        s->done = d;
        s->done_cap = n;
    }
    s->done[s->ndone].pid = s->procs[i].pid;
    s->done[s->ndone].status = status;
    s->ndone++;
    if (s->procs[i].fd >= 0)
        close(s->procs[i].fd);
    s->procs[i] = s->procs[--s->nprocs];
    return 0;
}

/* waitpid without blocking; 1 if reaped (recorded), 0 if not. Lock held. */
static int sup_try_reap(mpr__sup *s, size_t i)
{
    int st = 0;
    pid_t r;
    do
        r = waitpid((pid_t)s->procs[i].pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    /* ECHILD: someone else reaped it (a waitpid(-1) elsewhere, or
     * SIGCHLD ignored): it is gone, the status is unknown. */
    if (r < 0 && errno != ECHILD)
        return 0;
    return sup_reaped(s, i, r < 0 ? -1 : st) == 0;
}

static void *sup_main(void *arg)
{
    mpr__sup *s = arg;
    size_t pcap = 16;
    struct pollfd *pfd = malloc(pcap * sizeof *pfd);
    size_t *owner = malloc(pcap * sizeof *owner);
    if (!pfd || !owner) {
        /* Without them: no polling of input pipes, sweeps only. */
        free(pfd);
        free(owner);
        static struct pollfd one;
        static size_t one_owner;
        pfd = &one;
        owner = &one_owner;
        pcap = 1;
    }
    mpr__mutex_lock(&s->lock);
    while (!s->quit) {
        int64_t now = mpr__now_ns();
        int notify = 0;
        int full = now >= s->sweep_ns;
        if (full)
            s->sweep_ns = now + SWEEP_NS;
        for (size_t i = s->nprocs; i-- > 0;) {
            struct sup_proc *p = &s->procs[i];
            if (p->kill && !p->killed) {
                kill((pid_t)p->pid, SIGKILL);
                p->killed = 1;
                p->expect = 1;
                p->interval_ns = EXPECT_FIRST_NS;
                p->next_ns = now;
            }
            if (full || (p->expect && now >= p->next_ns)) {
                if (sup_try_reap(s, i)) {
                    notify = 1;
                    continue;
                }
                if (p->expect) {
                    p->next_ns = now + p->interval_ns;
                    if (p->interval_ns < EXPECT_MAX_NS)
                        p->interval_ns *= 2;
                }
            }
        }
        if (s->alarm_ns && now >= s->alarm_ns) {
            s->alarm_ns = 0;
            notify = 1;
        }
        if (notify) {
            mpr__mutex_unlock(&s->lock);
            s->notify(s->arg);
            mpr__mutex_lock(&s->lock);
            continue;
        }
        /* Sleep until the next thing to do, a broken input pipe, or a
         * wake-up from the main thread. */
        int64_t until = s->nprocs ? s->sweep_ns : INT64_MAX;
        if (s->alarm_ns && s->alarm_ns < until)
            until = s->alarm_ns;
        size_t n = 1;
        if (pcap < s->nprocs + 1 && pcap > 1) {
            size_t c = s->nprocs + 16;
            struct pollfd *np = realloc(pfd, c * sizeof *np);
            size_t *no = np ? realloc(owner, c * sizeof *no) : NULL;
            if (np)
                pfd = np;
            if (no) {
                owner = no;
                pcap = c;
            }
        }
        pfd[0].fd = mpr__event_fd(&s->wake);
        pfd[0].events = POLLIN;
        for (size_t i = 0; i < s->nprocs; i++) {
            struct sup_proc *p = &s->procs[i];
            if (p->expect && p->next_ns < until)
                until = p->next_ns;
            if (p->fd >= 0 && n < pcap) {
                /* A pipe's write end reports POLLERR (or POLLHUP) once
                 * no reader is left: the process (and anything that
                 * inherited its input) has ended. */
                pfd[n].fd = p->fd;
                pfd[n].events = 0;
                owner[n] = i;
                n++;
            }
        }
        int64_t wait_ns = until - now;
        int timeout = until == INT64_MAX ? -1
                      : wait_ns <= 0     ? 0
                      : wait_ns > 3600000000000LL ? 3600000
                                         : (int)((wait_ns + 999999) / 1000000);
        mpr__mutex_unlock(&s->lock);
        int rc = poll(pfd, (nfds_t)n, timeout);
        mpr__mutex_lock(&s->lock);
        mpr__event_clear(&s->wake);
        /* procs may have changed meanwhile only by additions at the end
         * (removals happen on this thread), so owner[] still holds. */
        for (size_t k = 1; rc > 0 && k < n; k++) {
            if (!(pfd[k].revents & (POLLERR | POLLHUP | POLLNVAL)))
                continue;
            struct sup_proc *p = &s->procs[owner[k]];
            close(p->fd);
            p->fd = -1;
            p->expect = 1;
            p->interval_ns = EXPECT_FIRST_NS;
            p->next_ns = 0;
        }
    }
    /* Kill and reap whatever is left. */
    for (size_t i = 0; i < s->nprocs; i++) {
        struct sup_proc *p = &s->procs[i];
        kill((pid_t)p->pid, SIGKILL);
        int st;
        while (waitpid((pid_t)p->pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (p->fd >= 0)
            close(p->fd);
    }
    s->nprocs = 0;
    mpr__mutex_unlock(&s->lock);
    if (pcap > 1) {
        free(pfd);
        free(owner);
    }
    return NULL;
}

int mpr__sup_new(mpr__sup **out, void (*notify)(void *arg), void *arg)
{
    mpr__sup *s = calloc(1, sizeof *s);
    if (!s)
        return MPR_ENOMEM;
    int rc = mpr__event_open(&s->wake);
    if (rc < 0) {
        free(s);
        return rc;
    }
    mpr__mutex_init(&s->lock);
    s->notify = notify;
    s->arg = arg;
    s->sweep_ns = mpr__now_ns() + SWEEP_NS;
    rc = mpr__thread_start(&s->thread, sup_main, s);
    if (rc < 0) {
        mpr__event_close(&s->wake);
        mpr__mutex_destroy(&s->lock);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void mpr__sup_free(mpr__sup *s, int kill_all)
{
    if (!s)
        return;
    (void)kill_all; /* whatever is left is always killed and reaped */
    mpr__mutex_lock(&s->lock);
    s->quit = 1;
    mpr__mutex_unlock(&s->lock);
    mpr__event_set(&s->wake);
    mpr__thread_join(s->thread);
    mpr__event_close(&s->wake);
    mpr__mutex_destroy(&s->lock);
    free(s->procs);
    free(s->done);
    free(s);
}

int mpr__sup_watch(mpr__sup *s, int64_t pid, mpr__fd in_fd)
{
    mpr__mutex_lock(&s->lock);
    if (s->nprocs == s->cap) {
        size_t n = s->cap ? s->cap * 2 : 16;
        struct sup_proc *p = realloc(s->procs, n * sizeof *p);
        if (!p) {
            mpr__mutex_unlock(&s->lock);
            close(in_fd);
            kill((pid_t)pid, SIGKILL);
            int st;
            while (waitpid((pid_t)pid, &st, 0) < 0 && errno == EINTR) {
            }
            return MPR_ENOMEM;
        }
        s->procs = p;
        s->cap = n;
    }
    struct sup_proc *p = &s->procs[s->nprocs++];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->fd = in_fd;
    mpr__mutex_unlock(&s->lock);
    mpr__event_set(&s->wake);
    return 0;
}

static struct sup_proc *sup_find(mpr__sup *s, int64_t pid)
{
    for (size_t i = 0; i < s->nprocs; i++)
        if (s->procs[i].pid == pid)
            return &s->procs[i];
    return NULL;
}

void mpr__sup_kill(mpr__sup *s, int64_t pid)
{
    mpr__mutex_lock(&s->lock);
    struct sup_proc *p = sup_find(s, pid);
    if (p)
        p->kill = 1;
    mpr__mutex_unlock(&s->lock);
    if (p)
        mpr__event_set(&s->wake);
}

void mpr__sup_expect(mpr__sup *s, int64_t pid)
{
    mpr__mutex_lock(&s->lock);
    struct sup_proc *p = sup_find(s, pid);
    if (p && !p->expect) {
        p->expect = 1;
        p->interval_ns = EXPECT_FIRST_NS;
        p->next_ns = 0;
    }
    mpr__mutex_unlock(&s->lock);
    if (p)
        mpr__event_set(&s->wake);
}

void mpr__sup_alarm(mpr__sup *s, int64_t when_ns)
{
    mpr__mutex_lock(&s->lock);
    int earlier = when_ns && (!s->alarm_ns || when_ns < s->alarm_ns);
    s->alarm_ns = when_ns;
    mpr__mutex_unlock(&s->lock);
    if (earlier)
        mpr__event_set(&s->wake);
}

size_t mpr__sup_take(mpr__sup *s, mpr__reaped *out, size_t max)
{
    mpr__mutex_lock(&s->lock);
    size_t n = s->ndone < max ? s->ndone : max;
    if (n) { /* s->done may still be NULL (nothing reaped yet) */
        memcpy(out, s->done, n * sizeof *out);
        memmove(s->done, s->done + n, (s->ndone - n) * sizeof *out);
        s->ndone -= n;
    }
    mpr__mutex_unlock(&s->lock);
    return n;
}

/* ------------------------------------------------------------------ */
/* the worker's standard input                                          */

int mpr__proc_read_line(char *buf, size_t size)
{
    size_t n = 0;
    for (;;) {
        char c;
        ssize_t r = read(0, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return mpr__syserr();
        if (r == 0)
            return MPR_EPIPE;
        if (c == '\n') {
            buf[n] = 0;
            return 0;
        }
        if (n + 1 >= size)
            return MPR_EMSGSIZE;
        buf[n++] = c;
    }
}

static int eof_status;

static void *eof_main(void *arg)
{
    (void)arg;
    char buf[256];
    for (;;) {
        ssize_t r = read(0, buf, sizeof buf);
        if (r > 0 || (r < 0 && errno == EINTR))
            continue;
        _exit(eof_status);
    }
    return NULL;
}

int mpr__proc_exit_at_eof(int status)
{
    eof_status = status;
    mpr__thread t;
    int rc = mpr__thread_start(&t, eof_main, NULL);
    if (rc == 0)
        pthread_detach(t);
    return rc;
}

void mpr__proc_exit(int status)
{
    _exit(status);
}
