/*
 * qteventloop.cpp - the Qt implementation of mpr_event_loop.
 *
 * A pingee is a QObject (QtPingee) living on the thread that creates it. A
 * pinger's ping() posts one custom QEvent to it with
 * QCoreApplication::postEvent (thread-safe); QtPingee::event() runs on_ping
 * on the pingee's thread, once per event, if the pingee is still connected.
 * Qt never merges custom events, so every ping runs on_ping exactly once.
 *
 * Lifetime: the pingee counts references atomically: one for its creator
 * (dropped by pingee_free) and one per pinger (from pinger_new until
 * pinger_disconnect or pinger_free). Whoever drops the last one, the QObject
 * is deleted on its own thread: directly if that is the current thread and
 * the pingee is not inside its own event(), otherwise with deleteLater().
 * Deleting a QObject also discards the events still queued for it.
 */
#include <mprouter/qt.h>

#include <QtCore/QAtomicInt>
#include <QtCore/QCoreApplication>
#include <QtCore/QEvent>
#include <QtCore/QObject>
#include <QtCore/QThread>

#include <new>

#include "qteventloop_p.h"

namespace {

// The event type of a ping, registered with Qt once per process.
QEvent::Type pingEventType()
{
    static const QEvent::Type type = static_cast<QEvent::Type>(QEvent::registerEventType());
    return type;
}

class QtPingee : public QObject
{
public:
    QtPingee(void (*onPing)(void *), void *arg)
        : m_onPing(onPing), m_arg(arg)
    {
        setObjectName(QStringLiteral("mprouter pingee"));
    }

    // Loop thread only.
    void connectPings() { m_connected = m_onPing != nullptr; }
    void disconnectPings()
    {
        m_connected = false;
        m_onPing = nullptr;
        m_arg = nullptr;
    }
    bool holdsCallback() const { return m_onPing != nullptr || m_arg != nullptr; }

    // Any thread.
    void ref() { m_refs.ref(); }
    void deref()
    {
        if (!m_refs.deref())
            destroy();
    }
    void ping() { QCoreApplication::postEvent(this, new QEvent(pingEventType())); }

protected:
    bool event(QEvent *e) override
    {
        if (e->type() != pingEventType())
            return QObject::event(e);
        if (m_connected) {
            // on_ping may disconnect and free this pingee: m_dispatching
            // makes destroy() defer the deletion until we have returned.
            ++m_dispatching;
            m_onPing(m_arg);
            --m_dispatching;
        }
        return true;
    }

private:
    void destroy()
    {
        if (QThread::currentThread() == thread() && m_dispatching == 0)
            delete this;
        else
            deleteLater(); // thread-safe; runs on this object's thread
    }

    void (*m_onPing)(void *);
    void *m_arg;
    bool m_connected = false;
    int m_dispatching = 0;
    QAtomicInt m_refs{1}; // the creator's reference
};

struct QtPinger
{
    QtPingee *pingee; // null once disconnected
    bool connected;
};

QtPingee *toPingee(mpr_pingee *p) { return reinterpret_cast<QtPingee *>(p); }
QtPinger *toPinger(mpr_pinger *p) { return reinterpret_cast<QtPinger *>(p); }

int pingeeNew(const mpr_event_loop *, void (*onPing)(void *), void *arg, mpr_pingee **out)
{
    if (!out || !onPing)
        return MPR_EINVAL;
    if (!QCoreApplication::instance())
        return MPR_ESTATE;
    QtPingee *pingee = new (std::nothrow) QtPingee(onPing, arg);
    if (!pingee)
        return MPR_ENOMEM;
    *out = reinterpret_cast<mpr_pingee *>(pingee);
    return 0;
}

void pingeeConnect(mpr_pingee *pingee)
{
    if (pingee)
        toPingee(pingee)->connectPings();
}

void pingeeDisconnect(mpr_pingee *pingee)
{
    if (pingee)
        toPingee(pingee)->disconnectPings();
}

void pingeeFree(mpr_pingee *pingee)
{
    if (!pingee)
        return;
    toPingee(pingee)->disconnectPings();
    toPingee(pingee)->deref();
}

int pingerNew(mpr_pingee *pingee, mpr_pinger **out)
{
    if (!pingee || !out)
        return MPR_EINVAL;
    QtPinger *pinger = new (std::nothrow) QtPinger{toPingee(pingee), false};
    if (!pinger)
        return MPR_ENOMEM;
    toPingee(pingee)->ref();
    *out = reinterpret_cast<mpr_pinger *>(pinger);
    return 0;
}

void pingerConnect(mpr_pinger *pinger)
{
    if (pinger && toPinger(pinger)->pingee)
        toPinger(pinger)->connected = true;
}

void pingerPing(mpr_pinger *pinger)
{
    if (pinger && toPinger(pinger)->connected)
        toPinger(pinger)->pingee->ping();
}

void pingerDisconnect(mpr_pinger *pinger)
{
    if (!pinger)
        return;
    QtPinger *p = toPinger(pinger);
    p->connected = false;
    if (QtPingee *pingee = p->pingee) {
        p->pingee = nullptr;
        pingee->deref();
    }
}

void pingerFree(mpr_pinger *pinger)
{
    pingerDisconnect(pinger);
    delete toPinger(pinger);
}

const mpr_event_loop qtEventLoop = {
    sizeof(mpr_event_loop),
    nullptr,
    pingeeNew,
    pingeeConnect,
    pingeeDisconnect,
    pingeeFree,
    pingerNew,
    pingerConnect,
    pingerPing,
    pingerDisconnect,
    pingerFree,
};

} // namespace

extern "C" MPR_EXTERN const mpr_event_loop *mpr_qt_event_loop(void)
{
    pingEventType(); // register the event type on the main thread, early
    return &qtEventLoop;
}

namespace mpr {
namespace detail {

QObject *qtPingeeObject(mpr_pingee *pingee)
{
    return toPingee(pingee);
}

bool qtPingeeHoldsCallback(mpr_pingee *pingee)
{
    return toPingee(pingee)->holdsCallback();
}

} // namespace detail
} // namespace mpr
