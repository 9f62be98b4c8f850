/*
 * common.c - version, error codes and strings, logging, randomness, fork
 * detection and memory for secrets.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "internal.h"

#include <mprouter/version.h>

const char *mpr_version(void)
{
    return MPR_VERSION_STRING;
}

const char *mpr_strerror(int err)
{
    if (err == 0)
        return "success";
    switch (err) {
#define MPR__ERRNO_CASE(name, sys, text) \
    case MPR_##name:                     \
        return text;
        MPR_ERRNO_MAP(MPR__ERRNO_CASE)
#undef MPR__ERRNO_CASE
    default:
        return "unknown error";
    }
}

int mpr__errno_code(int err)
{
    switch (err) {
    case EINVAL:
    case ENOMEM:
    case EALREADY:
    case EBADFD:
    case ENOENT:
    case ETIMEDOUT:
    case EPIPE:
    case ECONNREFUSED:
    case EACCES:
    case EMSGSIZE:
    case EPROTO:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
    case EIO:
    case ENOTSUP:
    case EADDRINUSE:
    case EADDRNOTAVAIL:
        return -err;
    case ENODEV: /* a bind to an interface that is not there */
        return MPR_EADDRNOTAVAIL;
    case ECONNRESET:
    case ENOTCONN:
    case ESHUTDOWN:
        return MPR_EPIPE;
    case ENOBUFS:
        return MPR_ENOMEM;
    case EPERM: /* MPR_EOWNER means something else; a refusal by the system */
        return MPR_EACCES;
    default:
        return MPR_EIO;
    }
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*log_fn)(void *arg, int level, const char *msg);
static void *log_arg;

static void default_log(void *arg, int level, const char *msg)
{
    (void)arg;
    if (level < MPR_LOG_WARNING)
        return;
    fprintf(stderr, "mprouter: %s: %s\n", level >= MPR_LOG_ERROR ? "error" : "warning", msg);
}

void mpr_set_log_handler(void (*fn)(void *arg, int level, const char *msg), void *arg)
{
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_arg = fn ? arg : NULL;
    pthread_mutex_unlock(&log_lock);
}

void mpr__log(int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    /* One call at a time, as documented; the lock also keeps fn and arg
     * consistent while another thread replaces the handler. */
    pthread_mutex_lock(&log_lock);
    if (log_fn)
        log_fn(log_arg, level, msg);
    else
        default_log(NULL, level, msg);
    pthread_mutex_unlock(&log_lock);
}

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

/* ---- fork detection ---- */

static _Atomic uint64_t token_fallback; /* if the page cannot be had */
const _Atomic uint64_t *mpr__token_word = &token_fallback;
static pthread_once_t token_once = PTHREAD_ONCE_INIT;

static void token_child(void)
{
    atomic_store(&token_fallback, 0);
}

static void token_init(void)
{
    /* The page; and the atfork handler for when it cannot be had or the
     * kernel does not wipe it (then fork() is still noticed, only a bare
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
    pthread_once(&token_once, token_init);
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

/* ---- memory for secrets ---- */

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
    explicit_bzero(p, size);
    munmap(p, size);
}
