/*
 * qteventloop_p.h - internals of the Qt event loop, for the library and its
 * tests only. NOT PUBLIC API: not installed, no compatibility promise.
 *
 * The two functions below are exported only so that tests/qt_pingee can
 * observe a pingee from outside (its QObject, to watch destroyed(); whether
 * it still holds its callback). Nothing else may use them.
 */
#ifndef MPROUTER_QTEVENTLOOP_P_H
#define MPROUTER_QTEVENTLOOP_P_H

#include <mprouter/event_loop.h>

#include "mprouter_qt_global.h"

QT_BEGIN_NAMESPACE
class QObject;
QT_END_NAMESPACE

namespace mpr {
namespace detail {

// The QObject behind a pingee made by mpr_qt_event_loop(). It lives on the
// thread that made the pingee and is deleted there once the last reference
// (the creator's and the pingers') is gone. Only valid while the pingee
// is alive: connect to QObject::destroyed to learn when it goes.
MPR_QT_EXPORT QObject *qtPingeeObject(mpr_pingee *pingee);

// True if the pingee still stores its on_ping callback or its argument.
// Loop thread only.
MPR_QT_EXPORT bool qtPingeeHoldsCallback(mpr_pingee *pingee);

} // namespace detail
} // namespace mpr

#endif // MPROUTER_QTEVENTLOOP_P_H
