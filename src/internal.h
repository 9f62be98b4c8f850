/*
 * internal.h - helpers shared by the files of the C core. Never installed.
 */
#ifndef MPR_INTERNAL_H
#define MPR_INTERNAL_H

#include <stdint.h>
#include <time.h>

#include <mprouter/common.h>
#include <mprouter/sender.h>

#if defined(__GNUC__)
#define MPR__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MPR__PRINTF(a, b)
#endif

/* Send a message to the log handler installed by mpr_set_log_handler. */
void mpr__log(int level, const char *fmt, ...) MPR__PRINTF(2, 3);

#define mpr__warn(...) mpr__log(MPR_LOG_WARNING, __VA_ARGS__)
#define mpr__debug(...) mpr__log(MPR_LOG_DEBUG, __VA_ARGS__)

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t mpr__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Fill buf with n random bytes from getrandom(). Returns 0 or -errno. */
int mpr__random(void *buf, size_t n);

/* Negative errno of the last failed system call, never 0. */
static inline int mpr__syserr(void)
{
    return errno > 0 ? -errno : MPR_EIO;
}

/* A new INITIAL sender for pipe #id of the router listening at the
 * abstract socket name (sender.c). */
int mpr__sender_new(mpr_sender **out, const char *name, uint32_t id, const unsigned char *key,
                    uint32_t max_msg);

#endif /* MPR_INTERNAL_H */
