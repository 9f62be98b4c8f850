/**
 * @file mprouter/common.h
 * @brief Export macro, error codes, logging.
 *
 * Part of the public C API of mprouter; include <mprouter/mprouter.h>.
 */
#ifndef MPROUTER_COMMON_H
#define MPROUTER_COMMON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Every public function is marked MPR_EXTERN; the library is built with
 * -fvisibility=hidden, so the ABI is exactly what the headers declare.
 * Windows: __declspec(dllexport) while the DLL is built (MPR_BUILDING_LIB),
 * nothing for the static library and its users (define MPR_STATIC),
 * __declspec(dllimport) for users of the DLL. */
#if defined(_WIN32)
#if defined(MPR_BUILDING_LIB) && !defined(MPR_STATIC)
#define MPR_EXTERN __declspec(dllexport)
#elif defined(MPR_STATIC)
#define MPR_EXTERN
#else
#define MPR_EXTERN __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define MPR_EXTERN __attribute__((visibility("default")))
#else
#define MPR_EXTERN
#endif

/**
 * Errors.
 *
 * Every fallible call returns an int: 0 on success or one of the negative
 * codes below. The codes are mprouter's own numbers, the same on every
 * platform (they are not errno values: compare with the names, never with
 * -EINVAL and the like); each platform's system errors are mapped to them
 * in one place inside the library. Every call returns only codes of this
 * map: a system error without a code of the same meaning is reported as
 * MPR_EIO (a reset connection as MPR_EPIPE, a lack of buffers as
 * MPR_ENOMEM). mpr_strerror() gives a short English description of every
 * code in this map, and "unknown error" for any other value.
 *
 * MPR_EOWNER is never a system error: it means a sender was used from a
 * thread other than the one that started it, or from a process that
 * inherited a started sender through fork() (see <mprouter/sender.h>).
 */
#define MPR_ERRNO_MAP(XX)                                                       \
    XX(EINVAL, 1, "invalid argument")                                           \
    XX(ENOMEM, 2, "out of memory")                                              \
    XX(EALREADY, 3, "already started")                                          \
    XX(ESTATE, 4, "not allowed in the object's current state")                  \
    XX(ENOENT, 5, "no such pipe")                                               \
    XX(ETIMEDOUT, 6, "timed out")                                               \
    XX(EPIPE, 7, "the router has closed the connection")                        \
    XX(ECONNREFUSED, 8, "the router is not accepting connections")              \
    XX(EACCES, 9, "the router refused the sender or closed its handshake")      \
    XX(EMSGSIZE, 10, "message larger than the router accepts")                  \
    XX(EPROTO, 11, "protocol error")                                            \
    XX(EMFILE, 12, "too many open files")                                       \
    XX(ENFILE, 13, "too many open files in system")                             \
    XX(EAGAIN, 14, "resource temporarily unavailable")                          \
    XX(EIO, 15, "input/output error")                                           \
    XX(EOWNER, 16, "the sender was started by another thread or process")      \
    XX(ENOTSUP, 17, "not supported by this build of mprouter")                  \
    XX(EADDRINUSE, 18, "address already in use")                                \
    XX(EADDRNOTAVAIL, 19, "address not available on this host")

/** MPR_EINVAL, MPR_ENOMEM, ... : the public names of the codes, one
 * MPR_name = -(number) for each row XX(name, number, text) of
 * MPR_ERRNO_MAP. */
enum mpr_errno {
/** @cond MPR_INTERNAL */
#define MPR__ERRNO_ENUM(name, num, text) MPR_##name = -(num),
    MPR_ERRNO_MAP(MPR__ERRNO_ENUM)
#undef MPR__ERRNO_ENUM
    MPR__ERRNO_LAST_ = 0
/** @endcond */
};

/** Description of an error code. ANY THREAD. Never returns NULL; the string
 * is static and must not be freed. */
MPR_EXTERN const char *mpr_strerror(int err);

/** The largest message mprouter can carry, in bytes (just under 2 GiB). */
#define MPR_MAX_MESSAGE_SIZE ((size_t)0x7fff0000u)

/** The largest control message (mpr_receiver_send, the way back:
 * <mprouter/router.h>), in bytes: 1 MiB. */
#define MPR_CONTROL_MAX_SIZE ((size_t)1 << 20)
/** The bytes of control messages one pipe holds at most (see
 * mpr_receiver_send): 4 MiB. */
#define MPR_CONTROL_QUEUE_SIZE ((size_t)4 << 20)

/**
 * Logging.
 *
 * mprouter reports problems that are not errors of the call in progress
 * (for example "router 0x..: 2 unclosed pipes" at stop, or "discarding
 * message from closed pipe #7") as log messages. By default warnings and
 * errors are printed to stderr as "mprouter: warning: ...".
 */
enum mpr_log_level {
    MPR_LOG_DEBUG = 0,   /**< details for debugging; not printed by default */
    MPR_LOG_INFO = 1,    /**< normal events; not printed by default */
    MPR_LOG_WARNING = 2, /**< something went wrong but mprouter carries on */
    MPR_LOG_ERROR = 3    /**< something failed */
};

/** Install a log handler; fn == NULL restores the default handler.
 * ANY THREAD; the handler itself may be called from ANY THREAD mprouter
 * runs (the main thread or the router's monitor thread), one call at a
 * time, with a NUL-terminated message without a trailing newline. The
 * handler must not call back into mprouter. */
MPR_EXTERN void mpr_set_log_handler(void (*fn)(void *arg, int level, const char *msg),
                                    void *arg);

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_COMMON_H */
