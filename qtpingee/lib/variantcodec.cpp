/*
 * variantcodec.cpp - mpr::encodeVariant and mpr::decodeVariant: a QVariant
 * as QDataStream bytes (version Qt_5_12) and back. A file of its own, free
 * of QObject and moc, so that tests/fuzz can compile just this.
 *
 * Why decoding scans first
 * ------------------------
 * The bytes come from a worker, which may be hostile, and QDataStream
 * cannot be made safe against them: its container operators reserve() as
 * many elements as the stream claims (nine bytes, a QVariantList claiming
 * 0x7fffffff elements, end in std::bad_alloc), and containers nest by
 * recursion without a limit (30,000 nested lists overflow the stack).
 * Some types parse further formats of their own (QJson*, QCbor*, QLocale,
 * QRegularExpression, QTimeZone), and a user type is looked up by a name
 * the sender chooses.
 *
 * So decodeVariant first walks the bytes with the scanner below, which
 * reads exactly what QDataStream will read, for a closed set of types:
 * every count is checked against the bytes that remain (each element
 * takes at least its smallest encoding), every length against the bytes
 * that remain, and containers nest at most VariantMaxDepth deep. Only
 * bytes it accepts reach QDataStream. Then every count QDataStream
 * reserves for is at most a fifth of the message's size, every length it
 * reads is there, and what it builds is a bounded number of objects per
 * byte of the message (mprouter_qt.h states the bound; fuzz_variant
 * checks it). Anything else gives an invalid QVariant without QDataStream
 * ever seeing it.
 *
 * The format
 * ----------
 * As QDataStream writes and reads it at version Qt_5_12, big-endian, with
 * doubles of 8 bytes, on Qt 5.15 and on Qt 6 alike (read from Qt's
 * QVariant::save/load, QMetaType::save/load, the container operators of
 * qdatastream.h and the operator>> of each type; checked against both
 * libraries by tests/qt_api and tests/fuzz/fuzz_variant):
 *
 *   variant       type:u32  null:u8  payload      null is 0 or 1
 *
 * The type ids are Qt 5's. Qt 6 writes and reads the same ones in a
 * stream older than Qt_6_0 (it maps Qt 5's GUI ids 64-87, QSizePolicy 121
 * and the user type 1024 to its own, and writes types Qt 5 lacked, such
 * as char16_t, as user types by name); for the core types below the two
 * versions' ids are the same (static_asserts below). The payloads:
 *
 *   Invalid 0, Nullptr 51        nothing
 *   Bool 1                       u8, 0 or 1
 *   Char 34, UChar 37, SChar 40  1 byte
 *   Short 33, UShort 36, QChar 7 2 bytes
 *   Int 2, UInt 3                4 bytes
 *   LongLong 4, ULongLong 5      8 bytes
 *   Long 32, ULong 35            8 bytes (Qt streams them as 64-bit)
 *   Double 6, Float 38           8 bytes (a float too is written as a
 *                                double: the precision is DoublePrecision)
 *   QString 10                   bytes:u32, 0xffffffff for a null string,
 *                                else even, followed by that many (UTF-16)
 *   QByteArray 12, QUrl 17       length:u32, 0xffffffff for a null array,
 *                                else followed by that many bytes (a QUrl
 *                                is its encoded form, parsed by QUrl)
 *   QBitArray 13                 bits:u32 (at most 0x7fffffff), then
 *                                (bits + 7) / 8 bytes whose unused high
 *                                bits in the last byte are 0
 *   QDate 14                     julianDay:i64, INT64_MIN for a null date,
 *                                else within QDate's valid range
 *   QTime 15                     msecs:u32, 0xffffffff for a null time,
 *                                else below 86,400,000
 *   QDateTime 16                 QDate QTime spec:u8; spec 0 local time,
 *                                1 UTC, 2 an offset from UTC followed by
 *                                seconds:i32 within +-16 h. The date is
 *                                null or within DateTimeMaxDays of 1970,
 *                                inside what QDateTime's milliseconds hold
 *                                with room for any offset. Spec 3 (a time
 *                                zone, which carries a QTimeZone) is not
 *                                accepted, nor any other spec.
 *   QPoint 25, QSize 21          2 x i32     QPointF 26, QSizeF 22  2 x double
 *   QLine 23, QRect 19           4 x i32     QLineF 24, QRectF 20   4 x double
 *   QUuid 30                     16 bytes
 *   QVariantList 9               count:u32, count x variant
 *   QVariantMap 8, QVariantHash 28   count:u32, count x (QString, variant)
 *   QStringList 11               count:u32, count x QString
 *   QByteArrayList 49            count:u32, count x QByteArray
 *
 * Not accepted (an invalid QVariant): every other id, among them the user
 * type 1024 with its name, the GUI and widget types, QLocale, QRegExp,
 * QRegularExpression, QEasingCurve, QJson*, QCbor*, QModelIndex, pointers
 * and a QVariant in a QVariant (41).
 *
 * Where Qt is laxer than the scanner (a null flag or bool of 2, a time of
 * day past midnight, a date-time with an odd spec or a huge offset), the
 * bytes are refused: encodeVariant never writes them, and refusing them
 * keeps QDateTime's arithmetic on inputs it was written for.
 */
#include "mprouter_qt.h"
#include "variantcodec_p.h"

#include <QtCore/QDataStream>
#include <QtCore/QIODevice>
#include <QtCore/QMetaType>

#include <limits>

namespace mpr {

namespace {

// -------------------------------------------------------------- the format

// The type ids of the stream (Qt 5's numbers) that the scanner accepts.
enum WireType : quint32 {
    TypeInvalid = 0,
    TypeBool = 1,
    TypeInt = 2,
    TypeUInt = 3,
    TypeLongLong = 4,
    TypeULongLong = 5,
    TypeDouble = 6,
    TypeQChar = 7,
    TypeQVariantMap = 8,
    TypeQVariantList = 9,
    TypeQString = 10,
    TypeQStringList = 11,
    TypeQByteArray = 12,
    TypeQBitArray = 13,
    TypeQDate = 14,
    TypeQTime = 15,
    TypeQDateTime = 16,
    TypeQUrl = 17,
    TypeQRect = 19,
    TypeQRectF = 20,
    TypeQSize = 21,
    TypeQSizeF = 22,
    TypeQLine = 23,
    TypeQLineF = 24,
    TypeQPoint = 25,
    TypeQPointF = 26,
    TypeQVariantHash = 28,
    TypeQUuid = 30,
    TypeLong = 32,
    TypeShort = 33,
    TypeChar = 34,
    TypeULong = 35,
    TypeUShort = 36,
    TypeUChar = 37,
    TypeFloat = 38,
    TypeSChar = 40,
    TypeQByteArrayList = 49,
    TypeNullptr = 51,
};

// Qt 5 and Qt 6 number these types alike (and a stream older than
// Qt_6_0 carries these numbers on both).
constexpr bool sameId(WireType ours, QMetaType::Type qts)
{
    return quint32(ours) == quint32(qts);
}
static_assert(sameId(TypeBool, QMetaType::Bool)
              && sameId(TypeInt, QMetaType::Int)
              && sameId(TypeUInt, QMetaType::UInt)
              && sameId(TypeLongLong, QMetaType::LongLong)
              && sameId(TypeULongLong, QMetaType::ULongLong)
              && sameId(TypeDouble, QMetaType::Double)
              && sameId(TypeQChar, QMetaType::QChar)
              && sameId(TypeQVariantMap, QMetaType::QVariantMap)
              && sameId(TypeQVariantList, QMetaType::QVariantList)
              && sameId(TypeQString, QMetaType::QString)
              && sameId(TypeQStringList, QMetaType::QStringList)
              && sameId(TypeQByteArray, QMetaType::QByteArray)
              && sameId(TypeQBitArray, QMetaType::QBitArray)
              && sameId(TypeQDate, QMetaType::QDate)
              && sameId(TypeQTime, QMetaType::QTime)
              && sameId(TypeQDateTime, QMetaType::QDateTime)
              && sameId(TypeQUrl, QMetaType::QUrl)
              && sameId(TypeQRect, QMetaType::QRect)
              && sameId(TypeQRectF, QMetaType::QRectF)
              && sameId(TypeQSize, QMetaType::QSize)
              && sameId(TypeQSizeF, QMetaType::QSizeF)
              && sameId(TypeQLine, QMetaType::QLine)
              && sameId(TypeQLineF, QMetaType::QLineF)
              && sameId(TypeQPoint, QMetaType::QPoint)
              && sameId(TypeQPointF, QMetaType::QPointF)
              && sameId(TypeQVariantHash, QMetaType::QVariantHash)
              && sameId(TypeQUuid, QMetaType::QUuid)
              && sameId(TypeLong, QMetaType::Long)
              && sameId(TypeShort, QMetaType::Short)
              && sameId(TypeChar, QMetaType::Char)
              && sameId(TypeULong, QMetaType::ULong)
              && sameId(TypeUShort, QMetaType::UShort)
              && sameId(TypeUChar, QMetaType::UChar)
              && sameId(TypeFloat, QMetaType::Float)
              && sameId(TypeSChar, QMetaType::SChar)
              && sameId(TypeQByteArrayList, QMetaType::QByteArrayList)
              && sameId(TypeNullptr, QMetaType::Nullptr),
              "Qt's type ids differ from the stream's");

// A QString or QByteArray length meaning "null".
const quint32 NullLength = 0xffffffffu;
// The smallest encodings: a variant (an invalid one: type and null flag),
// a QString or QByteArray (an empty one: its length), a map entry.
const size_t MinVariantSize = 5;
const size_t MinStringSize = 4;
const size_t MinEntrySize = MinStringSize + MinVariantSize;

// QBitArray: at most as many bits as an int holds. Newer Qt 6 refuses more
// in this version of the stream; Qt 5 wraps (bits + 7) past 2^32, reads
// no bytes and then looks at the byte before its empty array.
const quint32 MaxBits = 0x7fffffffu;

// QDate: the null date and QDate's valid range (QDate::nullJd/minJd/maxJd).
const qint64 NullJulianDay = std::numeric_limits<qint64>::min();
const qint64 MinJulianDay = Q_INT64_C(-784350574879);
const qint64 MaxJulianDay = Q_INT64_C(784354017364);
// QTime: milliseconds in a day, and the null time.
const quint32 MsecsPerDay = 86400000u;
const quint32 NullTime = 0xffffffffu;
// QDateTime: the Julian day of 1970-01-01; the days either side of it a
// date may lie (about 274 million years: 1e11 days of 86,400,000 ms stay
// some 5.8e17 ms inside qint64, which holds QDateTime's milliseconds, so
// adding an offset cannot overflow); the specs accepted; the largest
// offset from UTC (QTimeZone::MaxUtcOffsetSecs of Qt 6.5: 16 hours).
const qint64 EpochJulianDay = 2440588;
const qint64 DateTimeMaxDays = Q_INT64_C(100000000000);
enum DateTimeSpec : quint8 { LocalTime = 0, Utc = 1, OffsetFromUtc = 2 };
const qint32 MaxUtcOffsetSecs = 16 * 3600;

// The payload size of the types that have a fixed one with no value to
// check, or -1.
int fixedPayloadSize(quint32 type)
{
    switch (type) {
    case TypeInvalid:
    case TypeNullptr:
        return 0;
    case TypeChar:
    case TypeUChar:
    case TypeSChar:
        return 1;
    case TypeShort:
    case TypeUShort:
    case TypeQChar:
        return 2;
    case TypeInt:
    case TypeUInt:
        return 4;
    case TypeLongLong:
    case TypeULongLong:
    case TypeLong:
    case TypeULong:
    case TypeDouble:
    case TypeFloat:
    case TypeQPoint:
    case TypeQSize:
        return 8;
    case TypeQPointF:
    case TypeQSizeF:
    case TypeQLine:
    case TypeQRect:
    case TypeQUuid:
        return 16;
    case TypeQLineF:
    case TypeQRectF:
        return 32;
    default:
        return -1;
    }
}

// ------------------------------------------------------------- the scanner

// One pass over the bytes, front to back. Every read first checks that
// enough bytes remain; nothing is allocated. Recursion goes one level per
// container and stops at VariantMaxDepth.
class Scanner
{
public:
    Scanner(const char *data, size_t size)
        : m_next(reinterpret_cast<const uchar *>(data)), m_left(size)
    {
    }

    // One variant and nothing after it.
    bool wholeVariant() { return variant(0) && m_left == 0; }

private:
    // depth: the containers around this variant.
    bool variant(int depth);
    bool payload(quint32 type, int depth);
    bool container(quint32 type, int depth);
    bool string();
    bool byteArray();
    bool bitArray();
    bool date();
    bool time();
    bool dateTime();

    // A count of elements, each at least minSize bytes: false if fewer
    // bytes remain than that many elements need at least.
    bool count(quint32 *n, size_t minSize);
    // count, then n elements, each checked by element().
    template <typename Element>
    bool elements(size_t minSize, Element element);

    // Consume n bytes; *bytes (if given) points at them.
    bool take(size_t n, const uchar **bytes = nullptr);
    bool u8(quint8 *v);
    bool u32(quint32 *v);
    bool i64(qint64 *v);

    const uchar *m_next;
    size_t m_left;
};

bool Scanner::take(size_t n, const uchar **bytes)
{
    if (n > m_left)
        return false;
    if (bytes)
        *bytes = m_next;
    m_next += n;
    m_left -= n;
    return true;
}

bool Scanner::u8(quint8 *v)
{
    const uchar *b;
    if (!take(1, &b))
        return false;
    *v = b[0];
    return true;
}

bool Scanner::u32(quint32 *v)
{
    const uchar *b;
    if (!take(4, &b))
        return false;
    *v = quint32(b[0]) << 24 | quint32(b[1]) << 16 | quint32(b[2]) << 8 | quint32(b[3]);
    return true;
}

bool Scanner::i64(qint64 *v)
{
    quint32 high, low;
    if (!u32(&high) || !u32(&low))
        return false;
    *v = qint64(quint64(high) << 32 | low); // two's complement, as Qt reads it
    return true;
}

bool Scanner::count(quint32 *n, size_t minSize)
{
    return u32(n) && *n <= m_left / minSize;
}

template <typename Element>
bool Scanner::elements(size_t minSize, Element element)
{
    quint32 n;
    if (!count(&n, minSize))
        return false;
    for (quint32 i = 0; i < n; ++i) {
        if (!element())
            return false;
    }
    return true;
}

bool Scanner::variant(int depth)
{
    quint32 type;
    quint8 null;
    return u32(&type) && u8(&null) && null <= 1 && payload(type, depth);
}

bool Scanner::payload(quint32 type, int depth)
{
    const int fixed = fixedPayloadSize(type);
    if (fixed >= 0)
        return take(size_t(fixed));
    switch (type) {
    case TypeBool: {
        quint8 b;
        return u8(&b) && b <= 1;
    }
    case TypeQString:
        return string();
    case TypeQByteArray:
    case TypeQUrl:
        return byteArray();
    case TypeQBitArray:
        return bitArray();
    case TypeQDate:
        return date();
    case TypeQTime:
        return time();
    case TypeQDateTime:
        return dateTime();
    case TypeQVariantList:
    case TypeQVariantMap:
    case TypeQVariantHash:
    case TypeQStringList:
    case TypeQByteArrayList:
        return container(type, depth);
    default:
        return false; // not a type we know to be safe to hand to Qt
    }
}

bool Scanner::container(quint32 type, int depth)
{
    if (depth >= VariantMaxDepth)
        return false;
    const int inner = depth + 1;
    switch (type) {
    case TypeQVariantList:
        return elements(MinVariantSize, [this, inner] { return variant(inner); });
    case TypeQVariantMap:
    case TypeQVariantHash:
        return elements(MinEntrySize, [this, inner] { return string() && variant(inner); });
    case TypeQStringList:
        return elements(MinStringSize, [this] { return string(); });
    case TypeQByteArrayList:
        return elements(MinStringSize, [this] { return byteArray(); });
    default:
        return false;
    }
}

bool Scanner::string()
{
    quint32 bytes;
    if (!u32(&bytes))
        return false;
    if (bytes == NullLength)
        return true;
    return bytes % 2 == 0 && take(bytes); // UTF-16: Qt refuses an odd count
}

bool Scanner::byteArray()
{
    quint32 length;
    if (!u32(&length))
        return false;
    return length == NullLength || take(length);
}

bool Scanner::bitArray()
{
    quint32 bits;
    if (!u32(&bits) || bits > MaxBits)
        return false;
    const size_t size = (size_t(bits) + 7) / 8;
    const uchar *data;
    if (!take(size, &data))
        return false;
    // Qt refuses set bits past the last one.
    const unsigned usedInLast = bits % 8;
    return usedInLast == 0 || (data[size - 1] >> usedInLast) == 0;
}

bool Scanner::date()
{
    qint64 julianDay;
    return i64(&julianDay)
        && (julianDay == NullJulianDay || (julianDay >= MinJulianDay && julianDay <= MaxJulianDay));
}

bool Scanner::time()
{
    quint32 msecs;
    return u32(&msecs) && (msecs == NullTime || msecs < MsecsPerDay);
}

bool Scanner::dateTime()
{
    qint64 julianDay;
    quint8 spec;
    if (!i64(&julianDay) || !time() || !u8(&spec))
        return false;
    if (julianDay != NullJulianDay
        && (julianDay < EpochJulianDay - DateTimeMaxDays || julianDay > EpochJulianDay + DateTimeMaxDays))
        return false;
    switch (spec) {
    case LocalTime:
    case Utc:
        return true;
    case OffsetFromUtc: {
        quint32 bits;
        if (!u32(&bits))
            return false;
        const qint32 offset = qint32(bits);
        return offset >= -MaxUtcOffsetSecs && offset <= MaxUtcOffsetSecs;
    }
    default:
        return false;
    }
}

// The stream settings both directions use (and the scanner assumes).
void setFormat(QDataStream &stream)
{
    stream.setVersion(QDataStream::Qt_5_12);
    stream.setByteOrder(QDataStream::BigEndian);
    stream.setFloatingPointPrecision(QDataStream::DoublePrecision);
}

} // namespace

bool isAcceptedVariant(const char *data, size_t size)
{
    return Scanner(data, size).wholeVariant();
}

// ------------------------------------------------------------- public API

QByteArray encodeVariant(const QVariant &value)
{
    QByteArray bytes;
    QDataStream out(&bytes, QIODevice::WriteOnly);
    setFormat(out);
    out << value;
    return bytes;
}

QVariant decodeVariant(const QByteArray &bytes)
{
    if (!isAcceptedVariant(bytes.constData(), size_t(bytes.size())))
        return QVariant();
    QDataStream in(bytes);
    setFormat(in);
    QVariant value;
    in >> value;
    // Never true for bytes the scanner accepted (fuzz_variant checks that
    // Qt and the scanner agree); kept so that a disagreement fails safe.
    if (in.status() != QDataStream::Ok || !in.atEnd())
        return QVariant();
    return value;
}

} // namespace mpr
