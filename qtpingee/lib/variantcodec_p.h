/*
 * variantcodec_p.h - the validating scan behind mpr::decodeVariant
 * (variantcodec.cpp). NOT PUBLIC API; tests/fuzz/fuzz_variant.cpp uses it.
 */
#ifndef MPROUTER_VARIANTCODEC_P_H
#define MPROUTER_VARIANTCODEC_P_H

#include <stddef.h>

namespace mpr {

/// The deepest nesting of containers decodeVariant accepts: a container at
/// the top counts as 1, a container in it as 2, and so on.
constexpr int VariantMaxDepth = 64;

/// True if the size bytes at data are exactly one QVariant as
/// encodeVariant writes it, made only of the types decodeVariant accepts
/// (mprouter_qt.h), nested at most VariantMaxDepth deep, with nothing
/// after it. Reads each byte at most once, allocates nothing, and takes
/// time linear in size. For such bytes QDataStream (Qt_5_12) reads the
/// whole of them with status Ok.
bool isAcceptedVariant(const char *data, size_t size);

} // namespace mpr

#endif // MPROUTER_VARIANTCODEC_P_H
