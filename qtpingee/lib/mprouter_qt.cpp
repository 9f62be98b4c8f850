/*
 * mprouter_qt.cpp - mpr::Router, mpr::Receiver and the log handler
 * (encodeVariant/decodeVariant are in variantcodec.cpp).
 */
#include "mprouter_qt.h"
#include "mprouter_qt_p.h"

#include <mprouter/qt.h>

#include <QtCore/QTimer>

namespace mpr {

Q_LOGGING_CATEGORY(lcRouter, "mprouter", QtWarningMsg)

namespace {

void forwardLog(void *, int level, const char *msg)
{
    switch (level) {
    case MPR_LOG_DEBUG:
        qCDebug(lcRouter, "%s", msg);
        break;
    case MPR_LOG_INFO:
        qCInfo(lcRouter, "%s", msg);
        break;
    case MPR_LOG_WARNING:
        qCWarning(lcRouter, "%s", msg);
        break;
    default:
        qCCritical(lcRouter, "%s", msg);
        break;
    }
}

int callCondition(void *arg)
{
    return (*static_cast<const std::function<bool()> *>(arg))() ? 1 : 0;
}

} // namespace

void installLogHandler()
{
    mpr_set_log_handler(forwardLog, nullptr);
}

// ---------------------------------------------------------------- Router

void RouterPrivate::forget(Receiver *receiver, bool deleteLater)
{
    receivers.removeOne(receiver);
    receiver->d_func()->handle = nullptr;
    if (deleteLater)
        receiver->deleteLater();
}

int RouterPrivate::close(Receiver *receiver, bool deleteLater)
{
    if (!router)
        return MPR_ESTATE;
    if (!receiver || !receivers.contains(receiver))
        return running ? MPR_ENOENT : MPR_ESTATE;
    const int rc = mpr_router_close_pipe(router, receiver->d_func()->handle);
    if (rc == 0)
        forget(receiver, deleteLater);
    return rc;
}

Router::Router(QObject *parent)
    : QObject(parent), d_ptr(new RouterPrivate)
{
    Q_D(Router);
    installLogHandler();
    d->createError = mpr_router_new(&d->router, mpr_qt_event_loop());
    if (d->createError < 0) {
        d->router = nullptr;
        qCWarning(lcRouter, "cannot create router: %s", mpr_strerror(d->createError));
    }
}

Router::~Router()
{
    Q_D(Router);
    if (d->running)
        stop();
    mpr_router_free(d->router);
    // The children (closed receivers) are deleted by ~QObject.
}

int Router::start()
{
    Q_D(Router);
    if (!d->router)
        return d->createError;
    const int rc = mpr_router_start(d->router);
    if (rc == 0)
        d->running = true;
    return rc;
}

int Router::stop()
{
    Q_D(Router);
    if (!d->router)
        return MPR_ESTATE;
    const int rc = mpr_router_stop(d->router);
    if (rc == 0) {
        d->running = false;
        // mpr_router_stop has freed the C receivers.
        const QList<Receiver *> open = d->receivers;
        for (Receiver *receiver : open)
            d->forget(receiver, true);
    }
    return rc;
}

bool Router::isRunning() const
{
    Q_D(const Router);
    return d->running;
}

int Router::pipe(mpr_sender **sender, Receiver **receiver)
{
    Q_D(Router);
    if (!sender || !receiver)
        return MPR_EINVAL;
    if (!d->router)
        return MPR_ESTATE;
    mpr_sender *s = nullptr;
    mpr_receiver *r = nullptr;
    const int rc = mpr_router_pipe(d->router, &s, &r);
    if (rc < 0)
        return rc;
    Receiver *object = new Receiver(this, r);
    d->receivers.append(object);
    *sender = s;
    *receiver = object;
    return 0;
}

int Router::closePipe(Receiver *receiver)
{
    Q_D(Router);
    return d->close(receiver, true);
}

int Router::routeUntil(const std::function<bool()> &condition, double timeoutSeconds)
{
    Q_D(Router);
    if (!d->router)
        return MPR_ESTATE;
    if (!condition)
        return MPR_EINVAL;
    return mpr_router_route_until(d->router, callCondition,
                                  const_cast<std::function<bool()> *>(&condition),
                                  timeoutSeconds);
}

mpr_router *Router::handle() const
{
    Q_D(const Router);
    return d->router;
}

QString Router::errorString(int error)
{
    return QString::fromUtf8(mpr_strerror(error));
}

// -------------------------------------------------------------- Receiver

void ReceiverPrivate::onMessage(void *arg, const void *data, size_t size)
{
    Receiver *receiver = static_cast<Receiver *>(arg);
    ReceiverPrivate *d = receiver->d_func();
    const int n = static_cast<int>(size);
    QByteArray &buf = d->buffer;
    // Reuse only an unshared buffer that is not much larger than needed
    // (a pipe whose messages shrink gets a fitting one again). Slots see
    // const QByteArray &; one that keeps a copy shares the buffer, and the
    // next message then gets a new one, so kept copies never change.
    const qsizetype cap = buf.capacity();
    if (buf.isDetached() && cap >= n && cap <= 2 * qsizetype(n) + KeepSmall) {
        buf.resize(n);
        if (n)
            memcpy(buf.data(), data, size);
    } else {
        buf = QByteArray(static_cast<const char *>(data), n);
    }
    if (buf.capacity() > KeepSmall) {
        // Not a timer restart per message (that re-registers the timer):
        // the running timer looks at busySinceTick when it fires.
        d->busySinceTick = true;
        if (!d->releaseTimer) {
            d->releaseTimer = new QTimer(receiver);
            d->releaseTimer->setInterval(ReleaseAfterMs);
            QObject::connect(d->releaseTimer, &QTimer::timeout, receiver, [d] {
                if (d->busySinceTick) {
                    d->busySinceTick = false;
                } else {
                    d->buffer = QByteArray();
                    d->releaseTimer->stop();
                }
            });
        }
        if (!d->releaseTimer->isActive())
            d->releaseTimer->start();
    }
    // A shallow copy (no bytes copied): the message stays valid for every
    // slot even if one of them deletes the receiver, and nothing of the
    // receiver is touched after the emission.
    const QByteArray message = buf;
    Q_EMIT receiver->messageReceived(message);
}

void ReceiverPrivate::onLost(void *arg)
{
    Q_EMIT static_cast<Receiver *>(arg)->senderLost();
}

Receiver::Receiver(Router *router, mpr_receiver *handle)
    : QObject(router), d_ptr(new ReceiverPrivate)
{
    Q_D(Receiver);
    d->router = router;
    d->handle = handle;
    d->id = mpr_receiver_id(handle);
    mpr_receiver_set_callback(handle, ReceiverPrivate::onMessage, this);
    mpr_receiver_set_lost_callback(handle, ReceiverPrivate::onLost, this);
}

Receiver::~Receiver()
{
    Q_D(Receiver);
    if (d->handle && d->router)
        d->router->d_func()->close(this, false);
}

quint32 Receiver::id() const
{
    Q_D(const Receiver);
    return d->id;
}

bool Receiver::isOpen() const
{
    Q_D(const Receiver);
    return d->handle != nullptr;
}

int Receiver::send(const QByteArray &message)
{
    Q_D(Receiver);
    if (!d->handle)
        return MPR_ENOENT;
    return mpr_receiver_send(d->handle, message.constData(), size_t(message.size()));
}

int Receiver::cancel(quint64 tag)
{
    Q_D(Receiver);
    if (!d->handle)
        return MPR_ENOENT;
    return mpr_receiver_cancel(d->handle, tag);
}

} // namespace mpr
