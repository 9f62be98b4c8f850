/*
 * common.c - the version, error strings and the log.
 */
#include <stdarg.h>
#include <stdio.h>

#include <mprouter/version.h>

#include "base.h"
#include "platform.h"

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

static mpr__mutex log_lock = MPR__MUTEX_INIT;
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
    mpr__mutex_lock(&log_lock);
    log_fn = fn;
    log_arg = fn ? arg : NULL;
    mpr__mutex_unlock(&log_lock);
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
    mpr__mutex_lock(&log_lock);
    if (log_fn)
        log_fn(log_arg, level, msg);
    else
        default_log(NULL, level, msg);
    mpr__mutex_unlock(&log_lock);
}
