/**
 * @file mprouter/version.h
 * @brief The version of mprouter: macros for the headers, mpr_version()
 * for the library actually loaded.
 *
 * This file is the ONE place where the version number is written: the
 * build (qmake, through .qmake.conf), the pkg-config, qmake and CMake files
 * made by `make install` and the documentation all read it from here.
 * The version follows semantic versioning; the libraries' soname is
 * libmprouter.so.MAJOR.
 *
 * Part of the public C API of mprouter; include <mprouter/mprouter.h>.
 */
#ifndef MPROUTER_VERSION_H
#define MPROUTER_VERSION_H

#include <mprouter/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Major version: incremented for changes that break the API or ABI. */
#define MPR_VERSION_MAJOR 1
/** Minor version: incremented for additions that keep compatibility. */
#define MPR_VERSION_MINOR 0
/** Patch version: incremented for fixes only. */
#define MPR_VERSION_PATCH 0

/** @cond MPR_INTERNAL */
#define MPR__VERSION_STR(x) #x
#define MPR__VERSION_XSTR(x) MPR__VERSION_STR(x)
/** @endcond */

/** The version as a string literal, "MAJOR.MINOR.PATCH". */
#define MPR_VERSION_STRING                  \
    MPR__VERSION_XSTR(MPR_VERSION_MAJOR) "." \
    MPR__VERSION_XSTR(MPR_VERSION_MINOR) "." \
    MPR__VERSION_XSTR(MPR_VERSION_PATCH)

/** The version as one number, 0xMMmmpp (MAJOR, MINOR, PATCH), for
 * compile-time comparisons: `#if MPR_VERSION_HEX >= 0x000200`. */
#define MPR_VERSION_HEX \
    ((MPR_VERSION_MAJOR << 16) | (MPR_VERSION_MINOR << 8) | MPR_VERSION_PATCH)

/**
 * The version of the mprouter library the program runs with, as
 * "MAJOR.MINOR.PATCH" (MPR_VERSION_STRING as the library was built).
 * Compare it with MPR_VERSION_STRING to detect a program built against
 * other headers than the library it loaded. ANY THREAD. Never NULL; the
 * string is static and must not be freed.
 */
MPR_EXTERN const char *mpr_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_VERSION_H */
