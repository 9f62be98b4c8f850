/*
 * variantcodec.cpp - mpr::encodeVariant and mpr::decodeVariant: a QVariant
 * as QDataStream bytes (version Qt_5_12) and back. A file of its own, free
 * of QObject and moc, so that tests/fuzz can compile just this.
 */
#include "mprouter_qt.h"

#include <QtCore/QDataStream>
#include <QtCore/QIODevice>

namespace mpr {

QByteArray encodeVariant(const QVariant &value)
{
    QByteArray bytes;
    QDataStream out(&bytes, QIODevice::WriteOnly);
    out.setVersion(QDataStream::Qt_5_12);
    out << value;
    return bytes;
}

QVariant decodeVariant(const QByteArray &bytes)
{
    QDataStream in(bytes);
    in.setVersion(QDataStream::Qt_5_12);
    QVariant value;
    in >> value;
    if (in.status() != QDataStream::Ok || !in.atEnd())
        return QVariant();
    return value;
}

} // namespace mpr
