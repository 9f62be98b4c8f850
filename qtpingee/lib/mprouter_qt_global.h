/**
 * @file mprouter_qt_global.h
 * @brief Export macro of the mprouter-qt library.
 */
#ifndef MPROUTER_QT_GLOBAL_H
#define MPROUTER_QT_GLOBAL_H

#include <QtCore/qglobal.h>

/** @def MPR_QT_EXPORT
 * Marks the public classes and functions of mprouter-qt (export when
 * building the library, import when using it). */
#if defined(MPR_QT_BUILD_LIB)
#  define MPR_QT_EXPORT Q_DECL_EXPORT
#else
#  define MPR_QT_EXPORT Q_DECL_IMPORT
#endif

#endif // MPROUTER_QT_GLOBAL_H
