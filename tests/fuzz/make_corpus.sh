#!/usr/bin/env bash
# tests/fuzz/make_corpus.sh - writes the seed corpus (committed in corpus/;
# run again only to change the seeds). One folder per target.
set -eu
cd "$(dirname "$0")/corpus"
hello='MPR1\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00SSSSSSSSSSSSSSSS'
msg5='\x05\x00\x00\x00hello'
bye='\x01\x00\x00\x80'
w() { printf "$2" >"wire/$1"; }
# control bytes: [max size index][policy/flags][oom at][chunk seed]
w hello-only            "\x06\x00\x00\x01$hello"
w messages-bye          "\x06\x00\x00\x02$hello$msg5\x00\x00\x00\x00$msg5$bye"
w direct-bodies         "\x05\x08\x00\x03$hello\x10\x00\x00\x000123456789abcdef$msg5"
w over-max              "\x03\x00\x00\x04$hello\x41\x00\x00\x00"
w huge-length           "\x06\x00\x00\x05$hello\xff\xff\xff\x7f"
w bad-control           "\x06\x00\x00\x06$hello\x02\x00\x00\x80"
w after-bye             "\x06\x00\x00\x07$hello$bye$msg5"
w truncated-body        "\x06\x00\x00\x08$hello\x64\x00\x00\x00abc"
w rejected              "\x06\x01\x00\x09$hello$msg5"
w raw-mode              "\x06\x02\x00\x0a${hello}wake"
w out-of-memory         "\x06\x04\x01\x0b$hello$msg5$msg5"
w bad-magic             "\x06\x00\x00\x0cGET / HTTP/1.1\r\nHost: x\r\n\r\n....."
# ring: [size][head u64][tail u64][contents]
r() { printf "$2" >"ring/$1"; }
u64() { printf '\\x%02x\\x00\\x00\\x00\\x00\\x00\\x00\\x00' "$1"; }
r empty        "\x0b$(u64 0)$(u64 0)"
r one-message  "\x0b$(u64 16)$(u64 0)\x01\x00\x00\x00\x05\x00\x00\x00hello\x00\x00\x00"
r fragments    "\x0b$(u64 56)$(u64 0)\x02\x00\x00\x00\x08\x00\x00\x00\x0c\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x06\x00\x00\x00abcdef\x00\x00\x03\x00\x00\x00\x06\x00\x00\x00ghijkl\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"
r pad-wrap     "\x03$(u64 96)$(u64 48)\x04\x00\x00\x00\x00\x00\x00\x00"
r bad-length   "\x0b$(u64 16)$(u64 0)\x01\x00\x00\x00\xff\xff\xff\xff"
r head-too-far "\x0b$(u64 200)$(u64 0)\x01\x00\x00\x00\x00\x00\x00\x00"
