/*
 * fuzz_variant - mpr::decodeVariant on hostile bytes: what a worker sends
 * and the application decodes on its main thread.
 *
 * fuzz-sources: qtpingee/lib/variantcodec.cpp
 * fuzz-options: -malloc_limit_mb=64
 *
 * For every input:
 *  - decodeVariant returns (no crash, no sanitizer report), and the heap
 *    it holds at any moment of the call stays within the bound of
 *    mprouter_qt.h: AllocFactor times the input's size, plus AllocSlack;
 *  - a valid result only for bytes the scanner (isAcceptedVariant)
 *    accepted;
 *  - the scanner and Qt agree: for accepted bytes, QDataStream by itself
 *    reads all of them with status Ok, and Qt logs nothing;
 *  - accepted bytes re-encode to bytes the scanner accepts, whose decoding
 *    re-encodes to the same bytes again (with a QVariantHash somewhere,
 *    whose order is the hash's own, to the same number of bytes).
 * A failed check aborts with "check failed: ..." (run.sh greps for it).
 */
#include "mprouter_qt.h"
#include "variantcodec_p.h"

#include <QtCore/QDataStream>
#include <QtCore/QVariant>

#include <sanitizer/allocator_interface.h>

#include <limits>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

namespace {

// The allocation bound promised in mprouter_qt.h.
const size_t AllocFactor = 32;
const size_t AllocSlack = 64 * 1024;

void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "check failed: %s\n", what);
        abort();
    }
}

// ------------------------------------------------ heap held during a call

// Bytes requested and not yet freed since measuring started (a free of an
// older block may take it below 0), and the most it reached. The hooks run
// on every thread; the target is single-threaded.
bool measuring = false;
long long heldBytes = 0;
long long peakBytes = 0;

void onMalloc(const volatile void *, size_t size)
{
    if (!measuring)
        return;
    heldBytes += static_cast<long long>(size);
    if (heldBytes > peakBytes)
        peakBytes = heldBytes;
}

void onFree(const volatile void *ptr)
{
    if (measuring && ptr)
        heldBytes -= static_cast<long long>(__sanitizer_get_allocated_size(const_cast<const void *>(ptr)));
}

// --------------------------------------------------- Qt must stay silent

bool qtLogged = false;

void onQtMessage(QtMsgType, const QMessageLogContext &, const QString &message)
{
    qtLogged = true;
    fprintf(stderr, "Qt: %s\n", qPrintable(message));
}

// Reads bytes with QDataStream alone, as decodeVariant sets it up.
bool qtReadsWhole(const QByteArray &bytes, QVariant *value)
{
    QDataStream in(bytes);
    in.setVersion(QDataStream::Qt_5_12);
    in.setByteOrder(QDataStream::BigEndian);
    in.setFloatingPointPrecision(QDataStream::DoublePrecision);
    in >> *value;
    return in.status() == QDataStream::Ok && in.atEnd();
}

bool containsHash(const QVariant &value)
{
    switch (value.userType()) {
    case QMetaType::QVariantHash:
        return true;
    case QMetaType::QVariantList:
        for (const QVariant &v : value.toList())
            if (containsHash(v))
                return true;
        return false;
    case QMetaType::QVariantMap: {
        const QVariantMap map = value.toMap();
        for (auto it = map.cbegin(); it != map.cend(); ++it)
            if (containsHash(it.value()))
                return true;
        return false;
    }
    default:
        return false;
    }
}

void checkReencoding(const QVariant &value)
{
    const QByteArray once = mpr::encodeVariant(value);
    check(mpr::isAcceptedVariant(once.constData(), size_t(once.size())),
          "the scanner refuses a re-encoded value");
    QVariant back;
    check(qtReadsWhole(once, &back), "Qt cannot read a re-encoded value");
    const QByteArray twice = mpr::encodeVariant(back);
    if (containsHash(value))
        check(twice.size() == once.size(), "re-encoding changes the size");
    else
        check(twice == once, "re-encoding is not stable");
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    __sanitizer_install_malloc_and_free_hooks(onMalloc, onFree);
    qInstallMessageHandler(onQtMessage);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > size_t(std::numeric_limits<int>::max()))
        return 0;
    const QByteArray bytes(reinterpret_cast<const char *>(data), int(size));
    const bool accepted = mpr::isAcceptedVariant(bytes.constData(), size);

    qtLogged = false;
    heldBytes = peakBytes = 0;
    measuring = true;
    QVariant value = mpr::decodeVariant(bytes);
    measuring = false;
    check(size_t(peakBytes) <= AllocFactor * size + AllocSlack, "decodeVariant allocated past its bound");
    check(accepted || !value.isValid(), "a valid result from bytes the scanner refused");
    check(!qtLogged, "Qt logged while decoding");
    if (!accepted)
        return 0;

    QVariant raw;
    check(qtReadsWhole(bytes, &raw), "Qt disagrees with the scanner");
    check(raw.isValid() == value.isValid(), "decodeVariant and Qt disagree");
    check(!qtLogged, "Qt logged while decoding");
    checkReencoding(raw);
    return 0;
}
