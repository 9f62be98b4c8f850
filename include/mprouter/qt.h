/**
 * @file mprouter/qt.h
 * @brief The Qt event loop, as a C entry point.
 *
 * Link with the mprouter-qt5 or mprouter-qt6 library (or load the Qt
 * plugin, see qtpingee/lib/eventloopprovider.h). Pingees are QObjects
 * created on the thread that asks for them; pingers post QEvents to them,
 * and on_ping runs in that thread's Qt event loop.
 */
#ifndef MPROUTER_QT_H
#define MPROUTER_QT_H

#include <mprouter/event_loop.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The Qt event loop. MAIN THREAD, once a QCoreApplication exists; the
 * returned struct is static and valid for the life of the program. Pingees
 * made from it belong to the thread that makes them. */
MPR_EXTERN const mpr_event_loop *mpr_qt_event_loop(void);

#ifdef __cplusplus
}
#endif

#endif /* MPROUTER_QT_H */
