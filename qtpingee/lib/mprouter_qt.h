/**
 * @file mprouter_qt.h
 * @brief The QObject API of mprouter for Qt code.
 *
 * mpr::Router owns a C router (<mprouter/router.h>) driven by the Qt event
 * loop (<mprouter/qt.h>); every pipe it makes gives a C sender, for the
 * worker, and an mpr::Receiver, which emits messageReceived() once per
 * message, in order, on the main thread:
 *
 *     mpr::Router router;
 *     router.start();
 *     mpr_sender *sender;
 *     mpr::Receiver *receiver;
 *     router.pipe(&sender, &receiver);
 *     QObject::connect(receiver, &mpr::Receiver::messageReceived,
 *                      [](const QByteArray &m) { qDebug() << mpr::decodeVariant(m); });
 *     if (fork() == 0) {            // the worker
 *         mpr_sender_start(sender);
 *         QByteArray m = mpr::encodeVariant(42);
 *         mpr_sender_send(sender, m.constData(), size_t(m.size()));
 *         mpr_sender_stop(sender);
 *         _exit(0);
 *     }
 *     mpr_sender_free(sender);      // the parent's copy
 *
 * Errors are the C library's: 0 or a negative MPR_ code; errorString()
 * describes them. Warnings (for example "2 unclosed pipes" at stop) go to
 * the logging category "mprouter" (QT_LOGGING_RULES="mprouter.warning=false"
 * silences them).
 *
 * MAIN THREAD ONLY: every call here, except encodeVariant/decodeVariant
 * and installLogHandler, which are thread-safe. A QCoreApplication must
 * exist before the first Router is made.
 */
#ifndef MPROUTER_QTAPI_H
#define MPROUTER_QTAPI_H

#include <QtCore/QByteArray>
#include <QtCore/QObject>
#include <QtCore/QScopedPointer>
#include <QtCore/QString>
#include <QtCore/QVariant>

#include <functional>

#include <mprouter/mprouter.h>

#include "mprouter_qt_global.h"

namespace mpr {

class Receiver;
class RouterPrivate;
class ReceiverPrivate;

/// A router running in the Qt event loop of the thread that creates it.
class MPR_QT_EXPORT Router : public QObject
{
    Q_OBJECT
public:
    /// Creates a stopped router and installs the Qt log handler
    /// (installLogHandler()).
    explicit Router(QObject *parent = nullptr);
    /// Stops the router if it is running (warning about unclosed pipes) and
    /// deletes its receivers. May be deleted from a slot connected to one
    /// of its receivers: the C router is then freed when the emission has
    /// unwound, and nothing more is emitted.
    ~Router() override;

    /// Start routing. 0, MPR_EALREADY if running, or a system error.
    int start();
    /// Stop routing: every open Receiver is closed and deleted later (as by
    /// closePipe()); warns "N unclosed pipes" if there were any. 0 or
    /// MPR_ESTATE if not running. May be called from a messageReceived slot.
    int stop();
    /// True between a successful start() and stop().
    bool isRunning() const;

    /// Make a pipe. On success *sender is a new C sender that the caller
    /// owns (hand it to the worker; mpr_sender_free it in every process
    /// that has a copy) and *receiver a Receiver, child of this router.
    /// 0, MPR_ESTATE if not running, MPR_EINVAL or MPR_ENOMEM.
    int pipe(mpr_sender **sender, Receiver **receiver);
    /// Close a pipe: later messages for it are dropped with a warning, and
    /// the receiver is deleted later (deleteLater()). 0, MPR_ESTATE if not
    /// running, MPR_ENOENT if receiver is not an open pipe of this router.
    /// May be called from the receiver's own messageReceived slot.
    int closePipe(Receiver *receiver);

    /// Route messages by hand until condition() is true (see
    /// mpr_router_route_until: afterwards the router routes only by this
    /// call until it is restarted). timeoutSeconds < 0: no deadline.
    /// 0, MPR_ETIMEDOUT, MPR_ESTATE or MPR_EINVAL.
    int routeUntil(const std::function<bool()> &condition, double timeoutSeconds = -1);

    /// The C router, for calls this class does not wrap (stats, limits).
    /// Do not free it, nor close pipes of Receivers through it.
    mpr_router *handle() const;

    /// mpr_strerror() as a QString.
    static QString errorString(int error);

private:
    Q_DISABLE_COPY(Router)
    Q_DECLARE_PRIVATE(Router)
    QScopedPointer<RouterPrivate> d_ptr;
    friend class Receiver;
};

/// The receiving end of a pipe, made by Router::pipe().
class MPR_QT_EXPORT Receiver : public QObject
{
    Q_OBJECT
public:
    /// Deleting an open receiver closes its pipe; also from a slot connected
    /// to its own signals.
    ~Receiver() override;

    /// The connection id shared with the sender (>= 1).
    quint32 id() const;
    /// False once the pipe was closed (closePipe, Router::stop).
    bool isOpen() const;

    /// The way back (mpr_receiver_send): queue message for the worker, which
    /// reads it with mpr_sender_recv, whole and in order. Never blocks.
    /// 0; MPR_EMSGSIZE over MPR_CONTROL_MAX_SIZE; MPR_EAGAIN while the pipe
    /// already holds MPR_CONTROL_QUEUE_SIZE bytes its worker has not taken;
    /// MPR_EPIPE once the sender has stopped or was lost; MPR_ENOENT once the
    /// pipe is closed; MPR_ESTATE if the router is not running.
    int send(const QByteArray &message);
    /// Ask the worker to cancel (mpr_receiver_cancel): mpr_sender_cancelled()
    /// returns tag (non-zero) there from now on, until a newer tag. Same
    /// errors as send(), but never MPR_EAGAIN or MPR_EMSGSIZE; MPR_EINVAL for
    /// a tag of 0.
    int cancel(quint64 tag);

Q_SIGNALS:
    /// One message from the sender, in the order sent, on the main thread.
    /// Keeping a copy of message is cheap (implicitly shared) and safe.
    /// When no slot kept the previous message, its buffer is reused for the
    /// next one; a buffer over 16 KiB is freed after the pipe has been
    /// quiet for one to two seconds.
    void messageReceived(const QByteArray &message);
    /// The sender's connection ended without mpr_sender_stop (the worker
    /// crashed or was killed); emitted once, after its last message.
    void senderLost();

private:
    explicit Receiver(Router *router, mpr_receiver *handle);
    Q_DISABLE_COPY(Receiver)
    Q_DECLARE_PRIVATE(Receiver)
    QScopedPointer<ReceiverPrivate> d_ptr;
    friend class Router;
    friend class RouterPrivate;
};

/// A QVariant as bytes (QDataStream, version Qt_5_12), for a worker to send;
/// decodeVariant() reads them back. Bytes written by Qt 5 are read by Qt 6
/// and the other way round. Any thread.
MPR_QT_EXPORT QByteArray encodeVariant(const QVariant &value);

/// The QVariant encoded in bytes by encodeVariant(), or an invalid QVariant
/// for bytes that are not exactly one encoded variant of the types below.
/// Made for bytes from a worker that may be hostile: whatever the bytes,
/// it never crashes, nests at most 64 containers deep (a container at the
/// top counts as 1), and holds at most 32 times bytes.size() in memory,
/// plus a few KiB, the decoded value included (lists of small values take
/// 2 to 12 times their size, a list of empty QUrls about 25). The check
/// before decoding takes time linear in the size. Any thread.
///
/// Accepted, and nothing else:
///  - bool, int, uint, qlonglong, qulonglong, double, float, long, ulong,
///    short, ushort, char, signed char, uchar, QChar, std::nullptr_t,
///    QString, QByteArray; an invalid QVariant inside a container;
///  - QBitArray, QDate, QTime, QUrl, QUuid, QPoint, QPointF, QSize, QSizeF,
///    QRect, QRectF, QLine, QLineF;
///  - QDateTime in local time, in UTC or at an offset from UTC of at most
///    16 hours, with a null date or one within 100,000,000,000 days
///    (about 274 million years) of 1970; not one with a QTimeZone;
///  - QVariantList, QVariantMap and QVariantHash of these, QStringList and
///    QByteArrayList.
///
/// Refused even though encodeVariant() writes them: user types (they travel
/// by name), GUI and widget types (QColor, QFont, ...), QLocale, QRegExp,
/// QRegularExpression, QEasingCurve, QJsonValue/Object/Array/Document,
/// QCborValue/Array/Map, QVariantPair, char16_t, char32_t. Refused too:
/// bytes that encodeVariant() never writes but Qt would read (a null flag
/// or bool other than 0 or 1, a date outside QDate's range, a time of day
/// of 24:00 or later, an unknown time spec).
MPR_QT_EXPORT QVariant decodeVariant(const QByteArray &bytes);

/// Send mprouter's log messages (the C library's, from any thread) to the
/// logging category "mprouter": debug, info, warning, critical by level.
/// Replaces any handler set with mpr_set_log_handler. Any thread.
MPR_QT_EXPORT void installLogHandler();

} // namespace mpr

#endif // MPROUTER_QTAPI_H
