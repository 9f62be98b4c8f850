#!/bin/sh
# build a probe against the portable build: sh build.sh p1_dir
cd "$(dirname "$0")"; R=../../..; gcc -O1 -g -I$R/include -o /tmp/r3_$1 $1.c -L$R/build-portable/src -lmprouter -Wl,-rpath,$PWD/$R/build-portable/src -lpthread
