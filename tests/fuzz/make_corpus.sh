#!/usr/bin/env bash
# tests/fuzz/make_corpus.sh - writes the seed corpus (committed in corpus/;
# run again only to change the seeds). One folder per target.
set -eu
cd "$(dirname "$0")/corpus"
hello='MPR1\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00NNNNNNNNNNNNNNNN'
proof='MPRP\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00TTTTTTTTTTTTTTTT'
ringproof='MPRP\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00TTTTTTTTTTTTTTTT'
msg5='\x05\x00\x00\x00hello'
bye='\x01\x00\x00\x80'
w() { printf "$2" >"wire/$1"; }
# control bytes: [max size index][policy/flags][oom at][chunk seed]
w hello-only            "\x06\x00\x00\x01$hello"
w messages-bye          "\x06\x00\x00\x02$hello$proof$msg5\x00\x00\x00\x00$msg5$bye"
w direct-bodies         "\x05\x08\x00\x03$hello$proof\x10\x00\x00\x000123456789abcdef$msg5"
w over-max              "\x03\x00\x00\x04$hello$proof\x41\x00\x00\x00"
w huge-length           "\x06\x00\x00\x05$hello$proof\xff\xff\xff\x7f"
w bad-control           "\x06\x00\x00\x06$hello$proof\x02\x00\x00\x80"
w after-bye             "\x06\x00\x00\x07$hello$proof$bye$msg5"
w truncated-body        "\x06\x00\x00\x08$hello$proof\x64\x00\x00\x00abc"
w rejected              "\x06\x01\x00\x09$hello$msg5"
w raw-mode              "\x06\x02\x00\x0a${hello}${ringproof}wake"
w proof-only            "\x06\x00\x00\x0d$hello$proof"
w proof-bad-magic       "\x06\x00\x00\x0e${hello}XPRP\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00TTTTTTTTTTTTTTTT$msg5"
w proof-rejected        "\x06\x03\x00\x0f\x4d\x50\x52\x31\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00NNNNNNNNNNNNNNNN${ringproof}$msg5"
w out-of-memory         "\x06\x04\x01\x0b$hello$proof$msg5$msg5"
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
# variant: encodeVariant's bytes of one value of each accepted type (as
# Qt 5.15 and Qt 6.4 both write them), containers, and some it refuses.
x() { printf "$(printf '%s' "$2" | tr -d ' ' | sed 's/../\\x&/g')" >"variant/$1"; }
x invalid      "00000000 01"
x bool         "00000001 00 01"
x int          "00000002 00 fffffffe"
x uint         "00000003 00 00000003"
x longlong     "00000004 00 fffffffffffffffc"
x ulonglong    "00000005 00 0000000000000005"
x double       "00000006 00 3ff8000000000000"
x float        "00000026 00 3ff8000000000000"
x long         "00000020 00 fffffffffffffffa"
x ulong        "00000023 00 0000000000000007"
x short        "00000021 00 fff8"
x ushort       "00000024 00 0009"
x char         "00000022 00 0a"
x schar        "00000028 00 f5"
x uchar        "00000025 00 0c"
x qchar        "00000007 00 263a"
x nullptr      "00000033 01"
x string       "0000000a 00 00000004 00610062"
x null-string  "0000000a 00 ffffffff"
x bytes        "0000000c 00 00000002 6162"
x null-bytes   "0000000c 00 ffffffff"
x bit-array    "0000000d 00 0000000a 0102"
x date         "0000000e 00 00000000002584e3"
x null-date    "0000000e 00 8000000000000000"
x time         "0000000f 00 0038cefc"
x null-time    "0000000f 00 ffffffff"
x datetime-utc "00000010 00 00000000002584e3 0038cef8 01"
x datetime-local "00000010 00 00000000002584e3 0038cef8 00"
x datetime-offset "00000010 00 00000000002584e3 0038cef8 02 00000e10"
x datetime-null "00000010 00 8000000000000000 ffffffff 00"
x url          "00000011 00 0000000a 687474703a2f2f782f79"
x uuid         "0000001e 00 0102030405060708090a0b0c0d0e0f10"
x point        "00000019 00 00000001 fffffffe"
x pointf       "0000001a 00 3ff8000000000000 4000000000000000"
x size         "00000015 00 00000003 00000004"
x sizef        "00000016 00 4008000000000000 4010000000000000"
x rect         "00000013 00 00000001 00000002 00000003 00000005"
x rectf        "00000014 00 3ff0000000000000 4000000000000000 4008000000000000 4010000000000000"
x line         "00000017 00 00000001 00000002 00000003 00000004"
x linef        "00000018 00 3ff0000000000000 4000000000000000 4008000000000000 4010000000000000"
x list         "00000009 00 00000002 00000002 00 00000001 00000000 01"
x map          "00000008 00 00000002 00000002 0061 00000002 00 00000001 00000002 0062 00000002 00 00000002"
x hash         "0000001c 00 00000001 00000002 0061 00000002 00 00000001"
x string-list  "0000000b 00 00000002 00000002 0061 ffffffff"
x bytes-list   "00000031 00 00000002 00000001 61 ffffffff"
x nested       "00000009 00 00000003 00000008 00 00000001 00000002 006b 00000009 00 00000002 00000002 00 00000001 0000000a 00 00000002 0073 0000000b 00 00000001 00000002 0061 0000001c 00 00000001 00000002 0068 0000000c 00 00000001 62"
x deep-66      "$(for i in $(seq 66); do printf '00000009 00 00000001 '; done)00000002 00 0000002a"
x huge-count   "00000009 00 7fffffff"
x user-type    "00000400 00 00000008 51537472696e6700 00000002 0041"
# remote: one frame from a remote sender (or a router's answer)
mkdir -p remote
q() { printf "$2" >"remote/$1"; }
q hello        "MPR1\x03\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00NNNNNNNNNNNNNNNN"
q proof        "MPRP\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00TTTTTTTTTTTTTTTT"
q data-msg     "MPRD\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05\x00\x00\x00hello\x00\x00\x00"
q data-frag    "MPRD\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x08\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x06\x00\x00\x00abcdef\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"
q data-pad     "MPRD\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00"
q heart        "MPRH\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
q abort        "MPRX\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
q state        "MPRK\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x00\x00\x00\x00\x00\x10\x27\x00\x00\x00\x00\x00\x00"
q challenge    "MPRC\x00\x00\x00\x00\x00\x00\xff\x7f\x00\x00\x00\x00RRRRRRRRRRRRRRRRPPPPPPPPPPPPPPPP"
q ack          "MPRA\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00"
# sender_string: strings as mpr_sender_to_string prints them (a local pipe,
# remote ones with an address, a host name, IPv6), and one it must refuse
mkdir -p sender_string
t() { printf '%s' "$2" >"sender_string/$1"; }
key='3pTaM.u%dtKcKQTZx+K[4HR<LEQwonAf05ca#r*]'
t local     'mpr3:mprouter-7252-293aea48bdd8e810:1:172d17afedfd97650359fe8d8f9b0722'
t remote    "mpr3:mprouter-7252-293aea48bdd8e810:2:d8b22879cec43ef9769450bd6018f5f3:$key:tcp://127.0.0.1:36661"
t host-name "mpr3:mprouter-7252-293aea48bdd8e810:3:d8b22879cec43ef9769450bd6018f5f3:$key:tcp://worker-gateway.example:5555"
t ipv6      "mpr3:mprouter-7252-293aea48bdd8e810:4:d8b22879cec43ef9769450bd6018f5f3:$key:tcp://[::1]:5555"
t no-endpoint "mpr3:mprouter-7252-293aea48bdd8e810:5:d8b22879cec43ef9769450bd6018f5f3:$key:"
