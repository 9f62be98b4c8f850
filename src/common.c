/*
 * common.c - version, error strings, logging, randomness.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/random.h>

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
