#!/usr/bin/env bash
# tests/fuzz/make_corpus.sh - writes the seed corpus (committed in corpus/;
# run again only to change the seeds). One folder per target.
set -eu
cd "$(dirname "$0")/corpus"
hello='MPR1\x04\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00NNNNNNNNNNNNNNNN'
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
w proof-rejected        "\x06\x03\x00\x0f\x4d\x50\x52\x31\x04\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00NNNNNNNNNNNNNNNN${ringproof}$msg5"
w out-of-memory         "\x06\x04\x01\x0b$hello$proof$msg5$msg5"
w bad-magic             "\x06\x00\x00\x0cGET / HTTP/1.1\r\nHost: x\r\n\r\n....."
w took-words "\x06\x00\x00\x10$hello$proof\x05\x00\x00\xc0$msg5\x00\x10\x00\xc0$bye"
w took-too-much "\x06\x00\x00\x11$hello$proof\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
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
q hello        "MPR1\x04\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00NNNNNNNNNNNNNNNN"
q proof        "MPRP\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00TTTTTTTTTTTTTTTT"
q data-msg     "MPRD\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x05\x00\x00\x00hello\x00\x00\x00"
q data-frag    "MPRD\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x08\x00\x00\x00\x06\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x06\x00\x00\x00abcdef\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"
q data-pad     "MPRD\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00"
q heart        "MPRH\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
q abort        "MPRX\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
q state        "MPRK\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x00\x00\x00\x00\x00\x10\x27\x00\x00\x00\x00\x00\x00"
q challenge    "MPRC\x00\x00\x00\x00\x00\x00\xff\x7f\x00\x00\x00\x00RRRRRRRRRRRRRRRRPPPPPPPPPPPPPPPP"
q ack          "MPRA\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00"
q got          "MPRG\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"
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
# zmtp: [mode | max_message index << 2 | pile-up << 5][chunk seed][payload]
# (fuzz_zmtp.c). Modes 0/1: raw bytes to a server/client; 2/3: a script
# after an honest handshake with the hand-made peer. max index 5: 1000
# bytes, 6: 64 KiB.
mkdir -p zmtp
z() { printf "$2" >"zmtp/$1"; }
nul15='\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
fill31="$nul15$nul15\x00"
sig='\xff\x00\x00\x00\x00\x00\x00\x00\x00\x7f'
curve_c="${sig}\x03\x00CURVE${nul15}\x00${fill31}"
curve_s="${sig}\x03\x01CURVE${nul15}\x01${fill31}"
zeros64="$nul15$nul15$nul15$nul15\x00\x00\x00\x00"
hello="\x04\xc8\x05HELLO\x01\x00${zeros64}${zeros64}${zeros64}\x00\x00\x00\x00\x00\x00\x00\x00"
meta_dealer='\x0bSocket-Type\x00\x00\x00\x06DEALER'
meta_router='\x0bSocket-Type\x00\x00\x00\x06ROUTER'
z raw-hello-of-zeros     "\x14\x01${curve_c}${hello}"
z raw-null-greeting      "\x14\x02${sig}\x03\x00NULL${nul15}\x00\x00${fill31}"
z raw-zmtp2              "\x14\x03${sig}\x01\x05"
z raw-http               "\x14\x04GET / HTTP/1.1\r\nHost: x\r\n\r\n"
z raw-error              "\x14\x05${curve_c}\x04\x0e\x05ERROR\x07go away"
z raw-huge-header        "\x14\x06${curve_c}\x06\xff\xff\xff\xff\xff\xff\xff\xff"
z raw-more-flag          "\x14\x07${curve_c}\x05\x06\x05HELLO"
z raw-client-welcome     "\x15\x08${curve_s}\x04\xa8\x07WELCOME${zeros64}${zeros64}${zeros64}${nul15}\x00"
z raw-client-ready-first "\x35\x09${curve_s}\x04\x1e\x05READY${zeros64}"
z script-server-messages "\x1a\x0aM\x00\x00\x05\x01helloM\x00\x00\x00\x01M\x02\x00\x0a\x01\x04PING\x00\x0aabcM\x00\x00\x03\x01bye"
z script-server-sends    "\x1a\x0bS\x00\x05hS\x00\x00\x00M\x00\x00\x02\x01hiM\x02\x00\x07\x01\x04PING\x00\x01"
z script-server-metadata "\x1a\x0cI\x28${meta_dealer}\x08Identity\x00\x00\x00\x02idM\x00\x00\x02\x01ok"
z script-server-router   "\x1a\x0dI\x16${meta_router}"
z script-server-repeat   "\x1a\x0eM\x00\x00\x03\x01oneM\x00\x00\x03\x00two"
z script-server-jump     "\x1a\x0fM\x00\x00\x03\x07oneM\x00\x00\x03\x01two"
z script-server-more     "\x1a\x10M\x01\x00\x04\x01part"
z script-server-command  "\x1a\x11M\x02\x00\x0a\x01\x09SUBSCRIBE"
z script-server-too-big  "\x06\x12M\x00\x00\x02\x01ok"
z script-server-frames   "\x1a\x13F\x04\x05\x04PINGH\x00\x00\x00\x00\x00\x7f\xff\xff\xff"
z script-server-raw      "\x1a\x14M\x00\x00\x02\x01okX\x03\x00\x05\x07"
z script-client-messages "\x1b\x15M\x00\x00\x05\x01helloM\x02\x00\x17\x01\x04PING\x00\x0a0123456789abcdefS\x00\x03o"
z script-client-metadata "\x1b\x16R\x1d${meta_router}\x03X-Y\x00\x00\x00\x00"
z script-client-dealer   "\x1b\x17R\x16${meta_dealer}"
z script-client-backlog  "\x1b\x18S\xff\xffxS\x10\x00yM\x02\x00\x07\x01\x04PING\x00\x01M\x00\x00\x02\x01ok"
z script-server-vouch    "\x1a\x19V\x01\x00M\x00\x00\x02\x01ok"
z script-server-flip     "\x1a\x1aV\x10\x70M\x00\x00\x02\x01ok"
z script-client-flip     "\x1b\x1bV\x10\x20M\x00\x00\x02\x01ok"
z script-server-behind   "\x02\x1cM\x00\x00\x00\x01M\x00\x00\x00\x01M\x00\x00\x00\x01M\x00\x00\x00\x01M\x00\x00\x00\x01M\x00\x00\x00\x01M\x00\x00\x00\x01M\x00\x00\x00\x01"
z script-server-grow     "\x1e\x1dM\x00\x00\x02\x01okH\x00\x00\x00\x00\x00\x00\x02\x00\x00"
z z85-key                "\x00\x1eHelloWorld000000000000000000000000000000"
# job: one message of the job protocol (src/job.h), either direction.
mkdir -p job
j() { printf "$2" >"job/$1"; }
job1='\x01\x00\x00\x00\x00\x00\x00\x00'
j ready          "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x39\x30\x00\x00"
j init-failed    "\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00initialisation failed: no data"
j started        "\x03\x00\x00\x00${job1}"
j progress       "\x04\x00\x00\x00${job1}\x2a\x00\x00\x00"
j result         "\x05\x00\x00\x00${job1}hello"
j failed         "\x06\x00\x00\x00${job1}bad input"
j cancelled      "\x07\x00\x00\x00${job1}"
j bye            "\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
j run            "\x40\x00\x00\x00${job1}\x04echohello"
j run-no-args    "\x40\x00\x00\x00${job1}\x06square"
j exit           "\x41\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
j run-bad-len    "\x40\x00\x00\x00${job1}\x09echo"
j run-nul-name   "\x40\x00\x00\x00${job1}\x04ec\x00o"
j job-zero       "\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00x"
j reserved       "\x03\x01\x00\x00${job1}"
j short          "\x05\x00\x00"
# what tests/executor's hostile worker sends (execworker --hostile)
j empty          ""
j unknown-kind   "\x63\x00\x00\x00${job1}x"
j ready-size     "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00"
j started-data   "\x03\x00\x00\x00${job1}x"
j failed-nul     "\x06\x00\x00\x00${job1}a\x00b"
j progress-zero  "\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00p"
j bye-job        "\x08\x00\x00\x00${job1}"
j failed-long    "\x06\x00\x00\x00${job1}"
head -c 4097 /dev/zero | tr '\0' x >>job/failed-long
# ctl (fuzz_ctl.c): [mode][chunk seed], then local items (mode 0) or
# remote frames each after a 2-byte length (mode 1).
mkdir -p ctl
c() { printf "$2" >"ctl/$1"; }
c local-items        "\x00\x01\x01\x02\x07\x00\x00\x00\x00\x00\x00\x00\x03\x05\x00\x00\x00hello\x03\x00\x00\x00\x00\x01"
c local-cancel-zero  "\x00\x02\x02\x00\x00\x00\x00\x00\x00\x00\x00"
c local-too-big      "\x00\x03\x03\x01\x00\x10\x00"
c local-cut          "\x00\x04\x03\x09\x00\x00\x00abc"
c remote-ctrl        "\x01\x00\x1d\x00MPRJ\x05\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00hello"
c remote-pieces      "\x01\x00\x1b\x00MPRJ\x05\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00hel\x1a\x00MPRJ\x05\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00lo"
c remote-cancel      "\x01\x00\x10\x00MPRQ\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00"
c remote-beyond      "\x01\x00\x1b\x00MPRJ\x02\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00abc"
# hs: [secret 16][last_id][max_msg index], then a script of fuzz_hs.c's
# ops: S(begin) h(HELLO) c(CHALLENGE) p(PROOF) a(ACK) H/P/C/A(raw)
# x(flip a byte in flight) n(new connection) F(random fails) L(issue ids)
mkdir -p hs
s() { printf "$2" >"hs/$1"; }
sec='0123456789abcdef'
hs_ok='S\x00\x01\x00h\x00\x00c\x00\x00\x01p\x00\x00'
raw_proof='MPRP\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00TTTTTTTTTTTTTTTT'
raw_hello='MPR1\x04\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00NNNNNNNNNNNNNNNN'
raw_challenge='MPRC\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00RRRRRRRRRRRRRRRRPPPPPPPPPPPPPPPP'
s honest           "$sec\x05\x02${hs_ok}a\x00\x00\x01"
s honest-frames    "$sec\x05\x03S\x00\x05\x00h\x00\x00c\x00\x00\x00p\x00\x00a\x00\x00\x00"
s taken            "$sec\x05\x02${hs_ok}a\x00\x01\x01"
s hello-again      "$sec\x05\x02S\x00\x01\x00h\x00\x00h\x00\x00c\x00\x00\x00p\x00\x00a\x00\x00\x00"
s second-hello     "$sec\x05\x02S\x00\x01\x00S\x01\x01\x00h\x00\x00h\x01\x00"
s wrong-key        "$sec\x05\x02S\x00\x01\x01h\x00\x00c\x00\x00\x00p\x00\x00"
s other-secret     "$sec\x05\x02S\x00\x01\x02h\x00\x00c\x00\x00\x00"
s own-key          "$sec\x05\x02S\x00\x02\x03KKKKKKKKKKKKKKKKh\x00\x00P\x00${raw_proof}"
s never-issued     "$sec\x03\x02S\x00\x04\x00h\x00\x00S\x01\xff\x00h\x01\x01S\x02\x00\x00h\x02\x02"
s issued-later     "$sec\x00\x02S\x00\x01\x00h\x00\x00n\x00L\x01h\x00\x00c\x00\x00\x01p\x00\x00"
s replayed-proof   "$sec\x05\x02${hs_ok}h\x00\x01p\x00\x01"
s new-connection   "$sec\x05\x02S\x00\x01\x00h\x00\x00c\x00\x00\x00n\x00h\x00\x00p\x00\x00"
s crossed          "$sec\x05\x02S\x00\x01\x00S\x01\x02\x00h\x00\x00h\x01\x01c\x00\x01\x00c\x01\x00\x00"
s flipped-proof    "$sec\x05\x02S\x00\x01\x00h\x00\x00c\x00\x00\x00x\x01\x00\x14\x01p\x00\x00"
s flipped-flags    "$sec\x05\x02S\x00\x01\x00h\x00\x00c\x00\x00\x00x\x01\x00\x04\x01p\x00\x00"
s flipped-nonce    "$sec\x05\x02S\x00\x01\x00h\x00\x00x\x02\x00\x10\x80c\x00\x00\x00"
s flipped-hello    "$sec\x05\x02S\x00\x01\x00x\x00\x00\x05\x01h\x00\x00"
s proof-first      "$sec\x05\x02P\x00${raw_proof}S\x00\x01\x00h\x00\x00"
s raw-hello        "$sec\x05\x02H\x00${raw_hello}P\x00${raw_proof}"
s raw-challenge    "$sec\x05\x02S\x00\x01\x00C\x00\x01${raw_challenge}"
s random-fails     "$sec\x05\x02FS\x00\x01\x00S\x00\x01\x00Fh\x00\x00h\x00\x01c\x01\x00\x00"
s ack-early        "$sec\x05\x02S\x00\x01\x00A\x00MPRA\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
s bad-ack          "$sec\x05\x02${hs_ok}a\x00\x02\x03"
s after-failure    "$sec\x05\x02H\x00GET / HTTP/1.1\r\nHost: xxxxxS\x00\x01\x00h\x00\x00"
s hello-after-done "$sec\x05\x02${hs_ok}a\x00\x00\x01h\x00\x00p\x00\x00a\x00\x00\x01"
