/*
 * mprouter_qt_p.h - private data of mpr::Router and mpr::Receiver.
 * NOT PUBLIC API.
 */
#ifndef MPROUTER_QT_P_H
#define MPROUTER_QT_P_H

#include <QtCore/QByteArray>
#include <QtCore/QList>
#include <QtCore/QLoggingCategory>
#include <QtCore/QPointer>

QT_BEGIN_NAMESPACE
class QTimer;
QT_END_NAMESPACE

#include "mprouter_qt.h"

namespace mpr {

Q_DECLARE_LOGGING_CATEGORY(lcRouter)

class RouterPrivate
{
public:
    // Mark receiver closed (its C handle is gone) and, if asked, schedule
    // its deletion.
    void forget(Receiver *receiver, bool deleteLater);
    // mpr_router_close_pipe for receiver, then forget() it.
    int close(Receiver *receiver, bool deleteLater);

    mpr_router *router = nullptr;
    int createError = 0;
    bool running = false;
    QList<Receiver *> receivers; // the open ones
};

class ReceiverPrivate
{
public:
    static void onMessage(void *arg, const void *data, size_t size);
    static void onLost(void *arg);

    // The buffer of the last message, reused for the next one when no slot
    // kept a copy (it is not shared) and it fits: no allocation per
    // message, and for large messages no fresh pages to fault in. Up to
    // KeepSmall bytes it is kept; a larger one is dropped after a full
    // ReleaseAfterMs period without a large message (1 to 2 periods).
    static const int KeepSmall = 16 * 1024;
    static const int ReleaseAfterMs = 1000;
    QByteArray buffer;
    QTimer *releaseTimer = nullptr; // child of the Receiver, made when needed
    bool busySinceTick = false;     // a large message since the timer last fired

    QPointer<Router> router;
    mpr_receiver *handle = nullptr; // null once closed
    quint32 id = 0;
};

} // namespace mpr

#endif // MPROUTER_QT_P_H
