#!/bin/sh
# Windows probe: "no compiler warning allowed" (tools/windows/check.sh). Rebuilds platform_win.c's
# object with mingw-w64 and prints PASS/FAIL. Found: implicit declaration of _beginthreadex
# (its uintptr_t result then goes through an implicit int: a HANDLE truncated to 32 bits on Win64).
cd "$(dirname "$0")/../../.."
out=$(x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -DMPR_BUILDING_LIB -Iinclude -Isrc -c src/platform_win.c -o /tmp/r3_platform_win.o 2>&1)
n=$(printf '%s\n' "$out" | grep -c 'warning:')
printf '%s\n' "$out" | grep 'warning:' | head -3
if [ "$n" = 0 ]; then echo "PASS: platform_win.c compiles without warnings"; else echo "FAIL: platform_win.c: $n warnings"; exit 1; fi
