/*
 * internal.h - helpers shared by the files of the C core. Never installed.
 */
#ifndef MPR_INTERNAL_H
#define MPR_INTERNAL_H

#include <stdatomic.h>
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

/* The MPR_ code of a system error number: the same code where the map of
 * <mprouter/common.h> has one, else the nearest documented one (MPR_EIO
 * when none is near). Never 0, never a code outside the map. */
int mpr__errno_code(int err);

/* The MPR_ code of the last failed system call (errno). */
static inline int mpr__syserr(void)
{
    return mpr__errno_code(errno);
}

/*
 * Fork detection. mpr__process_token() is a random non-zero number kept in
 * a page marked MADV_WIPEONFORK: a child made by fork() (or any clone
 * without shared memory) reads 0 there until it asks for a token of its
 * own, which is then a new number. An object that stored the token of the
 * process that made it can tell, with one load, that it is a forked copy:
 * mpr__forked(token).
 */
uint64_t mpr__process_token(void);
extern const _Atomic uint64_t *mpr__token_word;
static inline int mpr__forked(uint64_t token)
{
    return *mpr__token_word != token;
}

/* A new INITIAL sender for pipe #id of the router listening at the
 * abstract socket name (sender.c). */
int mpr__sender_new(mpr_sender **out, const char *name, uint32_t id, const unsigned char *key,
                    uint32_t max_msg);
/* Where the sender finds its router from elsewhere: the router's remote
 * endpoint ("tcp://host:port") and CURVE public key (Z85), or "" for none. */
int mpr__sender_set_remote(mpr_sender *s, const char *endpoint, const char *server_key);
/* Is text a ZeroMQ tcp endpoint "tcp://HOST:PORT" (HOST a name, an IPv4
 * address, [an IPv6 address] or *; PORT a number, 0 or *)? */
int mpr__valid_tcp_endpoint(const char *text, int allow_wildcards);

/* Memory for secrets: whole pages, zero-filled, MADV_WIPEONFORK (a forked
 * child reads zeros) and MADV_DONTDUMP (not in core dumps). NULL when out
 * of memory. mpr__secure_free wipes before unmapping. */
void *mpr__secure_alloc(size_t size);
void mpr__secure_free(void *p, size_t size);

#endif /* MPR_INTERNAL_H */
