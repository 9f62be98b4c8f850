/*
 * base.h - what every file of the C core uses: the export and format
 * attributes, container_of, array sizes, static and run-time assertions,
 * little-endian integers, wiping memory, logging. Plain C11: no operating
 * system header (those are platform.h's business). Never installed.
 *
 * The layers of src/, each using only those below it (transport.h has the
 * map of the data path):
 *
 *   base       base.h                             this file
 *              platform.h, platform_*.c           everything the OS gives
 *              common.c                           error codes, the log, version
 *   proto      wire.c, hs.c, zmtp.c, ring.c        bytes and state machines
 *   core       queue.c, control.c, monitor.c,      the local queue, the way
 *              handle.c, fd_loop.c                 back's table, the monitor
 *                                                  thread, receiver handles
 *   transports local_router.c, local_sender.c,     each one table of operations
 *              remote_router.c, remote_sender.c
 *   API        router.c, sender.c                  the public calls
 */
#ifndef MPR_BASE_H
#define MPR_BASE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <mprouter/common.h>

#if defined(__MINGW32__)
/* mingw-w64: the C99 formats (%zu, %llu) of its own stdio, which the
 * Windows build selects (__USE_MINGW_ANSI_STDIO=1), not msvcrt's. */
#define MPR__PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#elif defined(__GNUC__)
#define MPR__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MPR__PRINTF(a, b)
#endif

#define MPR__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* The struct of type that holds member at ptr. */
#define MPR__CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define MPR__STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
/* An invariant of our own (not a check of input): kept in debug and
 * sanitizer builds, compiled out with NDEBUG (release builds). */
#define MPR__ASSERT(cond) assert(cond)

/* ---- little-endian integers (every byte format of wire.h) ---- */

static inline void mpr__put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t mpr__get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void mpr__put_u64(unsigned char *p, uint64_t v)
{
    mpr__put_u32(p, (uint32_t)v);
    mpr__put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t mpr__get_u64(const unsigned char *p)
{
    return (uint64_t)mpr__get_u32(p) | (uint64_t)mpr__get_u32(p + 4) << 32;
}

/* ---- wiping ---- */

/* Overwrite n bytes with zeros in a way the compiler may not drop (the
 * call goes through a volatile pointer), for keys and their temporaries. */
extern void *(*const volatile mpr__memset_v)(void *, int, size_t);
static inline void mpr__wipe(void *p, size_t n)
{
    mpr__memset_v(p, 0, n);
}

/* ---- a set of ids (connection ids): a bitset that grows (base.c) ---- */

typedef struct mpr__idset {
    uint64_t *words;
    size_t nwords;
} mpr__idset;

/* 1 if id is in the set. */
static inline int mpr__idset_has(const mpr__idset *s, uint32_t id)
{
    size_t w = id / 64;
    return w < s->nwords && (s->words[w] >> (id % 64) & 1);
}
/* Add id: 0, or MPR_ENOMEM (the set unchanged). */
int mpr__idset_add(mpr__idset *s, uint32_t id);
void mpr__idset_free(mpr__idset *s);

/* ---- the log (common.c) ---- */

/* Send a message to the log handler installed by mpr_set_log_handler. */
void mpr__log(int level, const char *fmt, ...) MPR__PRINTF(2, 3);

#define mpr__warn(...) mpr__log(MPR_LOG_WARNING, __VA_ARGS__)
#define mpr__debug(...) mpr__log(MPR_LOG_DEBUG, __VA_ARGS__)

#endif /* MPR_BASE_H */
