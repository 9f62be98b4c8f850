#!/bin/sh
# cross-build a Windows probe against build-win/core (static library): sh wbuild.sh w1_back
cd "$(dirname "$0")"; R=../../..
x86_64-w64-mingw32-gcc -O1 -g -DMPR_STATIC -I$R/include -o $R/build-win/r3_$1.exe $1.c $R/build-win/core/libmprouter_static.a $R/build-win/deps/lib/libsodium.a -lws2_32 -lbcrypt -ladvapi32 -lntdll
