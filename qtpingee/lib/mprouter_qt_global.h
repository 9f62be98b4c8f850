/*
 * mprouter_qt_global.h - export macro of the mprouter-qt library.
 */
#ifndef MPROUTER_QT_GLOBAL_H
#define MPROUTER_QT_GLOBAL_H

#include <QtCore/qglobal.h>

#if defined(MPR_QT_BUILD_LIB)
#  define MPR_QT_EXPORT Q_DECL_EXPORT
#else
#  define MPR_QT_EXPORT Q_DECL_IMPORT
#endif

#endif // MPROUTER_QT_GLOBAL_H
