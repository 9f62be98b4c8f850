/*
 * zmtp.c - ZeroMQ's wire protocol (RFC 23 ZMTP 3.0) with its CURVE
 * mechanism (RFC 25, RFC 26), both ends, as a machine without I/O
 * (zmtp.h is the contract).
 *
 * A connection goes through:
 *   greeting   64 bytes each way, ours in two parts as libzmq sends its
 *              own: the signature and major version at once, the rest
 *              when the peer's first 11 bytes (and all that came with
 *              them) passed the checks. libzmq queues the rest of its
 *              greeting when it sees our version, and hangs up without
 *              sending it if our whole greeting was already there and
 *              named another mechanism: a plaintext libzmq peer is told
 *              apart ("not CURVE") only because we wait. The peer's
 *              greeting is checked as its bytes arrive (signature, major
 *              version 3 or more, mechanism CURVE), so a ZMTP 1/2 peer
 *              or a plaintext one is refused without waiting for all 64.
 *   handshake  client                          server
 *              HELLO     C', Box[64 zeros](C'->S)  ->
 *                     <-  WELCOME   Box[S' + cookie](S->C')
 *              INITIATE  cookie, Box[C + vouch + metadata](C'->S')  ->
 *                     <-  READY     Box[metadata](S'->C')
 *              (the vouch is Box[C' + S](C->S'); the cookie is
 *              SecretBox[C' + s'] under the server's cookie key).
 *              Commands are frames with the COMMAND flag, at most
 *              MPR__ZMTP_HANDSHAKE_MAX bytes each.
 *   traffic    every frame is a MESSAGE: Box[flags + body](C'<->S') under
 *              the session key (crypto_box_beforenm of the short-term
 *              keys), with a short nonce that grows strictly in each
 *              direction. The flags byte may say COMMAND: a PING is
 *              answered with a PONG, anything else is an error, and so is
 *              MORE (messages are single-part).
 *
 * Input. One buffer holds the frame being assembled and whatever the
 * caller read after it. Before READY it is the MPR__ZMTP_HANDSHAKE_MAX
 * bytes inside the machine's own page; at READY its contents move to a
 * heap buffer that starts at min(bound, READ_CHUNK) and grows, only when a
 * frame header asks for it, up to the bound: max_message plus the MESSAGE
 * overhead. A header that announces more than the bound is an error before
 * any of its body is read. Consumed bytes are moved to the front when the
 * caller asks for room (mpr__zmtp_input), so the room offered is never
 * more than the bound. MESSAGEs are decrypted in place there, and the
 * event points at the plaintext.
 *
 * Output. One heap buffer: the greeting and handshake commands (a few
 * hundred bytes), then what the caller sends (each message copied once,
 * then encrypted in place) and our PONGs. A PONG is skipped while more than
 * PONG_BACKLOG bytes wait to be written: a peer that pings without reading
 * cannot make the output grow.
 *
 * Secrets. This struct lives in a mpr__secure_alloc page (wipe-on-fork,
 * not in core dumps): the short-term secret key, the session key, the key
 * shared with the peer's long-term key during the handshake, and the
 * cookie's plaintext. The long-term secret key and the cookie key are read
 * through the config's pointers and never copied. libsodium (1.0.18)
 * leaves the raw X25519 result of crypto_box_beforenm in its dead stack
 * frame (not the scalar: it clamps that in the output buffer), so every
 * handshake call that used a secret key, long-term or short-term, is
 * followed by sodium_stackzero. Per-message encryption is not: it would
 * cost more than the encryption, and it only uses the session key, which
 * lives as long as the connection anyway.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "platform.h"
#include "zmtp.h"

#define GREETING_SIZE 64
#define GREETING_FIRST 11 /* signature and major version: sent at once */
#define F_MORE 0x01u    /* frame flags (RFC 23) */
#define F_LONG 0x02u
#define F_COMMAND 0x04u
#define M_MORE 0x01u    /* the flags byte inside a MESSAGE's box */
#define M_COMMAND 0x02u
#define HDR_MAX 9u      /* flags + 8-byte size */
#define KEY MPR__ZMTP_KEY_SIZE
#define MAC crypto_box_MACBYTES
#define MESSAGE_HEAD (8u + 8u + MAC + 1u) /* "\7MESSAGE", short nonce, MAC, flags byte */
#define HELLO_SIZE 200u
#define WELCOME_SIZE 168u
#define INITIATE_MIN 257u /* name 9, cookie 96, nonce 8, MAC 16, C 32, vouch 16 + 80 */
#define READY_MIN 30u     /* name 6, nonce 8, MAC 16 */
#define PING_CONTEXT_MAX 16u
#define READ_CHUNK (64u * 1024u)     /* the first input buffer after READY, at most */
#define OUT_INITIAL 512u
#define PONG_BACKLOG (64u * 1024u)
#define STACK_SCRUB (16u * 1024u)    /* libsodium's calls here use about 3 KiB of stack */
#define WHY_REASON_MAX 64u           /* characters of a peer's ERROR reason kept */

_Static_assert(HDR_MAX + MESSAGE_HEAD <= MPR__ZMTP_OVERHEAD, "the MESSAGE overhead grew");
_Static_assert(MAC == 16 && crypto_box_NONCEBYTES == 24 && crypto_box_BEFORENMBYTES == KEY &&
                   crypto_box_PUBLICKEYBYTES == KEY && crypto_box_SECRETKEYBYTES == KEY &&
                   crypto_secretbox_KEYBYTES == KEY && crypto_secretbox_MACBYTES == MAC,
               "libsodium's CURVE sizes");

enum state {
    ST_GREETING,  /* waiting for the peer's greeting */
    ST_HELLO,     /* server: waiting for HELLO */
    ST_INITIATE,  /* server: WELCOME sent, waiting for INITIATE */
    ST_WELCOME,   /* client: HELLO sent, waiting for WELCOME */
    ST_READY_CMD, /* client: INITIATE sent, waiting for READY */
    ST_READY,     /* the handshake is complete: MESSAGEs */
    ST_FAILED
};

struct mpr__zmtp {
    /* Key material first; the whole struct is in a secure page. */
    unsigned char own_secret[KEY]; /* short-term c' or s': wiped at READY */
    unsigned char session[KEY];    /* beforenm(peer's short-term, own_secret) */
    unsigned char temp_key[KEY];   /* a handshake key shared with a long-term key, briefly */
    unsigned char scratch[2 * KEY]; /* the cookie's plaintext, briefly */
    unsigned char own_public[KEY];  /* C' or S' */
    unsigned char peer_short[KEY];  /* S' or C' */
    unsigned char cookie[16 + MAC + 2 * KEY]; /* client: the server's cookie */
    unsigned char peer_key[KEY];    /* the peer's long-term key, for the READY event */
    const unsigned char *public_key, *secret_key, *server_key, *cookie_key;
    size_t max_message;
    int role;
    enum state state;
    int error;
    int greeting_done;   /* the rest of our greeting is queued */
    uint64_t send_nonce; /* our next short nonce */
    uint64_t peer_nonce; /* the last short nonce the peer used */
    const char *why;
    char why_buf[96];
    unsigned char *in; /* hs_in before READY, then the heap */
    size_t in_cap, in_start, in_end;
    unsigned char *out;
    size_t out_cap, out_start, out_end;
    unsigned char hs_in[MPR__ZMTP_HANDSHAKE_MAX];
};

static const unsigned char GREETING_MECHANISM[20] = "CURVE";

/* Our greeting: ZMTP 3.0, CURVE, as-server per role. */
static void greeting(unsigned char g[GREETING_SIZE], int role)
{
    memset(g, 0, GREETING_SIZE);
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 0;
    memcpy(g + 12, GREETING_MECHANISM, sizeof GREETING_MECHANISM);
    g[32] = role == MPR__ZMTP_SERVER;
}

/* ---- small helpers ---- */

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A 24-byte nonce: a 16-byte prefix and a short nonce, or an 8-byte prefix
 * and a long one. */
static void nonce_short(unsigned char n[24], const char prefix[16], const unsigned char *shortn)
{
    memcpy(n, prefix, 16);
    memcpy(n + 16, shortn, 8);
}

static void nonce_long(unsigned char n[24], const char prefix[8], const unsigned char *longn)
{
    memcpy(n, prefix, 8);
    memcpy(n + 8, longn, 16);
}

/* libsodium leaves what it computed from a secret key (the raw X25519
 * result of crypto_box_beforenm, and intermediate values) in its dead
 * stack frames: clear them after every use of a secret key. */
static void scrub_stack(void)
{
    sodium_stackzero(STACK_SCRUB);
}

static int fail(mpr__zmtp *z, int code, const char *why)
{
    z->state = ST_FAILED;
    z->error = code;
    z->why = why;
    /* Nothing more will be decrypted or sent: the keys can go now. */
    sodium_memzero(z->own_secret, sizeof z->own_secret);
    sodium_memzero(z->session, sizeof z->session);
    sodium_memzero(z->temp_key, sizeof z->temp_key);
    sodium_memzero(z->scratch, sizeof z->scratch);
    return code;
}

static int proto(mpr__zmtp *z, const char *why)
{
    return fail(z, MPR_EPROTO, why);
}

/* ---- output ---- */

/* Room for n more bytes at the end of the output; NULL when out of memory. */
static unsigned char *out_reserve(mpr__zmtp *z, size_t n)
{
    if (z->out_cap - z->out_end >= n)
        return z->out + z->out_end;
    if (z->out_start > 0) {
        memmove(z->out, z->out + z->out_start, z->out_end - z->out_start);
        z->out_end -= z->out_start;
        z->out_start = 0;
        if (z->out_cap - z->out_end >= n)
            return z->out + z->out_end;
    }
    if (n > SIZE_MAX / 2 - z->out_end)
        return NULL;
    size_t cap = z->out_cap ? z->out_cap * 2 : OUT_INITIAL;
    if (cap < z->out_end + n)
        cap = z->out_end + n;
    unsigned char *p = realloc(z->out, cap);
    if (!p)
        return NULL;
    z->out = p;
    z->out_cap = cap;
    return z->out + z->out_end;
}

/* A frame header for a body of n bytes; returns its length. */
static size_t put_header(unsigned char *p, unsigned flags, size_t n)
{
    if (n <= 255) {
        p[0] = (unsigned char)flags;
        p[1] = (unsigned char)n;
        return 2;
    }
    p[0] = (unsigned char)(flags | F_LONG);
    put_be64(p + 1, (uint64_t)n);
    return 9;
}

static size_t header_size(size_t n)
{
    return n <= 255 ? 2 : 9;
}

/* Start a command frame of n body bytes in the output: where its body
 * goes (the caller fills it, then calls out_commit), or NULL. */
static unsigned char *command_begin(mpr__zmtp *z, size_t n)
{
    unsigned char *p = out_reserve(z, header_size(n) + n);
    if (!p)
        return NULL;
    return p + put_header(p, F_COMMAND, n);
}

static void out_commit(mpr__zmtp *z, const unsigned char *end)
{
    z->out_end = (size_t)(end - z->out);
}

/* Encrypt one MESSAGE (flags byte mflags, then size bytes of data) into
 * the output: copied once, then boxed in place. It goes in a data frame
 * (no COMMAND flag) as libzmq sends it: libzmq adds a frame's COMMAND flag
 * to the decrypted message's flags, so in a command frame every message
 * would be a command to it. */
static int queue_message(mpr__zmtp *z, unsigned mflags, const void *data, size_t size)
{
    if (z->send_nonce == UINT64_MAX)
        return fail(z, MPR_ESTATE, "our nonces are used up");
    size_t body = MESSAGE_HEAD + size;
    unsigned char *p = out_reserve(z, header_size(body) + body);
    if (!p)
        return MPR_ENOMEM;
    p += put_header(p, 0, body);
    memcpy(p, "\x07MESSAGE", 8);
    put_be64(p + 8, z->send_nonce);
    unsigned char *box = p + 16 + MAC;
    box[0] = (unsigned char)mflags;
    if (size)
        memcpy(box + 1, data, size);
    unsigned char n[24];
    nonce_short(n, z->role == MPR__ZMTP_SERVER ? "CurveZMQMESSAGES" : "CurveZMQMESSAGEC", p + 8);
    crypto_box_detached_afternm(box, p + 16, box, size + 1, n, z->session);
    z->send_nonce++;
    out_commit(z, box + 1 + size);
    return 0;
}

/* ---- input ---- */

static size_t body_bound(const mpr__zmtp *z, size_t hdr)
{
    if (z->state == ST_READY)
        return z->max_message + MESSAGE_HEAD;
    return MPR__ZMTP_HANDSHAKE_MAX - hdr;
}

static size_t in_bound(const mpr__zmtp *z)
{
    return z->state == ST_READY ? z->max_message + HDR_MAX + MESSAGE_HEAD
                                : MPR__ZMTP_HANDSHAKE_MAX;
}

/* Make room for a frame of total bytes that starts at in_start. */
static int in_fit(mpr__zmtp *z, size_t total)
{
    if (z->in_cap - z->in_start >= total)
        return 0;
    memmove(z->in, z->in + z->in_start, z->in_end - z->in_start);
    z->in_end -= z->in_start;
    z->in_start = 0;
    if (z->in_cap >= total)
        return 0;
    /* Only after READY can a frame be larger than the buffer (the
     * handshake buffer is the handshake bound). */
    if (z->in == z->hs_in)
        return proto(z, "frame too large");
    size_t bound = in_bound(z);
    size_t cap = z->in_cap <= bound / 2 ? z->in_cap * 2 : bound;
    if (cap < total)
        cap = total;
    unsigned char *p = realloc(z->in, cap);
    if (!p)
        return fail(z, MPR_ENOMEM, "out of memory");
    z->in = p;
    z->in_cap = cap;
    return 0;
}

/* The next complete frame: 1 with its flags and body (consumed from the
 * input, still in the buffer), 0 if it is not all there, or an error. */
static int take_frame(mpr__zmtp *z, unsigned *flags, unsigned char **body, size_t *n)
{
    unsigned char *p = z->in + z->in_start;
    size_t have = z->in_end - z->in_start;
    if (have < 1)
        return 0;
    unsigned f = p[0];
    if (f & ~(F_MORE | F_LONG | F_COMMAND))
        return proto(z, "bad frame flags");
    if (f & F_MORE)
        return proto(z, "message flagged MORE");
    size_t hdr = f & F_LONG ? 9 : 2;
    if (have < hdr)
        return 0;
    uint64_t size = f & F_LONG ? get_be64(p + 1) : p[1];
    if (size > body_bound(z, hdr))
        return proto(z, "frame too large");
    size_t total = hdr + (size_t)size;
    if (have < total) {
        int rc = in_fit(z, total);
        return rc < 0 ? rc : 0;
    }
    *flags = f;
    *body = p + hdr;
    *n = (size_t)size;
    z->in_start += total;
    return 1;
}

/* At READY: the input moves from the handshake buffer to the heap, with
 * whatever the peer sent after its last handshake command. */
static int in_to_heap(mpr__zmtp *z)
{
    size_t left = z->in_end - z->in_start;
    size_t cap = in_bound(z) < READ_CHUNK ? in_bound(z) : READ_CHUNK;
    if (cap < left)
        cap = left; /* frames already here, more than a small bound holds */
    unsigned char *p = malloc(cap);
    if (!p)
        return fail(z, MPR_ENOMEM, "out of memory");
    memcpy(p, z->in + z->in_start, left);
    sodium_memzero(z->hs_in, sizeof z->hs_in);
    z->in = p;
    z->in_cap = cap;
    z->in_start = 0;
    z->in_end = left;
    return 0;
}

/* ---- commands ---- */

/* Is body[0..n) a well-formed command named name? */
static int command_is(const unsigned char *body, size_t n, const char *name)
{
    size_t len = strlen(name);
    return n >= 1 + len && body[0] == len && memcmp(body + 1, name, len) == 0;
}

/* The peer's ERROR command: its reason, printable and bounded, in why. */
static int peer_error(mpr__zmtp *z, const unsigned char *body, size_t n)
{
    if (n < 7 || body[6] > n - 7)
        return proto(z, "malformed ERROR");
    static const char prefix[] = "peer sent ERROR: ";
    size_t len = body[6] < WHY_REASON_MAX ? body[6] : WHY_REASON_MAX;
    char *w = z->why_buf;
    memcpy(w, prefix, sizeof prefix - 1);
    w += sizeof prefix - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = body[7 + i];
        *w++ = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    if (len < body[6]) {
        memcpy(w, "...", 3);
        w += 3;
    }
    *w = '\0';
    _Static_assert(sizeof prefix - 1 + WHY_REASON_MAX + 3 + 1 <= sizeof z->why_buf, "why_buf");
    return proto(z, z->why_buf);
}

/* Metadata (RFC 23): properties of a 1-byte name length, the name, a
 * 4-byte value length and the value, filling n bytes exactly. It must
 * name the socket type once, and that type must be want. Every other
 * property (Identity above all: a routing id is never taken from a peer)
 * is ignored. */
static int check_metadata(mpr__zmtp *z, const unsigned char *p, size_t n, const char *want,
                          const char *wrong)
{
    static const char type_name[] = "socket-type";
    int types = 0, match = 0;
    while (n > 0) {
        size_t name_len = p[0];
        if (n - 1 < name_len + 4)
            return proto(z, "bad metadata");
        const unsigned char *name = p + 1;
        size_t value_len = get_be32(p + 1 + name_len);
        p += 1 + name_len + 4;
        n -= 1 + name_len + 4;
        if (value_len > n)
            return proto(z, "bad metadata");
        if (name_len == sizeof type_name - 1) {
            int same = 1; /* property names are case-insensitive */
            for (size_t i = 0; i < name_len; i++) {
                unsigned char c = name[i];
                if (c >= 'A' && c <= 'Z')
                    c = (unsigned char)(c - 'A' + 'a');
                same &= c == (unsigned char)type_name[i];
            }
            if (same) {
                types++;
                match = value_len == strlen(want) && memcmp(p, want, value_len) == 0;
            }
        }
        p += value_len;
        n -= value_len;
    }
    if (types > 1)
        return proto(z, "bad metadata (two socket types)");
    if (!match)
        return proto(z, wrong);
    return 0;
}

/* Our metadata: the socket type and nothing else (no Identity: a
 * libzmq ROUTER then makes up the routing id itself). */
static size_t put_metadata(unsigned char *p, const char *type)
{
    static const char name[] = "Socket-Type";
    size_t len = strlen(type);
    p[0] = sizeof name - 1;
    memcpy(p + 1, name, sizeof name - 1);
    put_be32(p + sizeof name, (uint32_t)len);
    memcpy(p + sizeof name + 4, type, len);
    return sizeof name + 4 + len;
}

#define METADATA_SIZE(type) (1 + 11 + 4 + sizeof type - 1)

/* ---- client ---- */

/* HELLO: C', a short nonce, and Box[64 zeros](C'->S), which only the
 * holder of s can open. */
static int client_hello(mpr__zmtp *z)
{
    unsigned char *b = command_begin(z, HELLO_SIZE);
    if (!b)
        return fail(z, MPR_ENOMEM, "out of memory");
    memcpy(b, "\x05HELLO\x01\x00", 8);
    memset(b + 8, 0, 72);
    memcpy(b + 80, z->own_public, KEY);
    put_be64(b + 112, z->send_nonce++);
    memset(b + 136, 0, 64);
    /* temp_key (C' with S, made by mpr__zmtp_new) also opens the WELCOME. */
    unsigned char n[24];
    nonce_short(n, "CurveZMQHELLO---", b + 112);
    crypto_box_detached_afternm(b + 136, b + 120, b + 136, 64, n, z->temp_key);
    out_commit(z, b + HELLO_SIZE);
    return 0;
}

/* WELCOME: Box[S' + cookie](S->C') under a long nonce; then INITIATE. */
static int client_welcome(mpr__zmtp *z, unsigned char *b, size_t n)
{
    if (!command_is(b, n, "WELCOME"))
        return proto(z, "expected WELCOME");
    if (n != WELCOME_SIZE)
        return proto(z, "malformed WELCOME");
    unsigned char wn[24];
    nonce_long(wn, "WELCOME-", b + 8);
    int rc = crypto_box_open_detached_afternm(b + 40, b + 40, b + 24, 128, wn, z->temp_key);
    sodium_memzero(z->temp_key, KEY);
    if (rc != 0)
        return proto(z, "bad WELCOME (not from the server's key)");
    memcpy(z->peer_short, b + 40, KEY);
    memcpy(z->cookie, b + 40 + KEY, sizeof z->cookie);
    rc = crypto_box_beforenm(z->session, z->peer_short, z->own_secret);
    scrub_stack();
    if (rc != 0)
        return proto(z, "bad WELCOME (unusable short-term key)");

    /* INITIATE: the cookie, a short nonce, and Box[C + vouch + metadata]
     * (C'->S'); the vouch, Box[C' + S](C->S') under a long nonce, proves
     * that the holder of c made C'. */
    const size_t md = METADATA_SIZE("DEALER");
    const size_t size = INITIATE_MIN + md;
    unsigned char *p = command_begin(z, size);
    if (!p)
        return fail(z, MPR_ENOMEM, "out of memory");
    memcpy(p, "\x08INITIATE", 9);
    memcpy(p + 9, z->cookie, sizeof z->cookie);
    put_be64(p + 105, z->send_nonce++);
    unsigned char *box = p + 113 + MAC;
    memcpy(box, z->public_key, KEY);
    randombytes_buf(box + 32, 16);
    unsigned char *vouch = box + 48 + MAC;
    memcpy(vouch, z->own_public, KEY);
    memcpy(vouch + KEY, z->server_key, KEY);
    rc = crypto_box_beforenm(z->temp_key, z->peer_short, z->secret_key);
    scrub_stack();
    if (rc != 0) {
        sodium_memzero(z->temp_key, KEY);
        return proto(z, "bad WELCOME (unusable short-term key)");
    }
    unsigned char vn[24];
    nonce_long(vn, "VOUCH---", box + 32);
    crypto_box_detached_afternm(vouch, box + 48, vouch, 2 * KEY, vn, z->temp_key);
    sodium_memzero(z->temp_key, KEY);
    put_metadata(box + 128, "DEALER");
    unsigned char in[24];
    nonce_short(in, "CurveZMQINITIATE", p + 105);
    crypto_box_detached_afternm(box, p + 113, box, 128 + md, in, z->session);
    out_commit(z, p + size);
    z->state = ST_READY_CMD;
    return 0;
}

/* READY: Box[metadata](S'->C'). */
static int client_ready(mpr__zmtp *z, unsigned char *b, size_t n, mpr__zmtp_event *ev)
{
    if (!command_is(b, n, "READY"))
        return proto(z, "expected READY");
    if (n < READY_MIN)
        return proto(z, "malformed READY");
    unsigned char rn[24];
    nonce_short(rn, "CurveZMQREADY---", b + 6);
    if (crypto_box_open_detached_afternm(b + 30, b + 30, b + 14, n - 30, rn, z->session) != 0)
        return proto(z, "bad READY");
    int rc = check_metadata(z, b + 30, n - 30, "ROUTER", "not a ROUTER");
    if (rc < 0)
        return rc;
    z->peer_nonce = get_be64(b + 6);
    sodium_memzero(z->own_secret, KEY);
    sodium_memzero(z->cookie, sizeof z->cookie);
    memcpy(z->peer_key, z->server_key, KEY);
    z->state = ST_READY;
    if ((rc = in_to_heap(z)) < 0)
        return rc;
    ev->kind = MPR__ZMTP_READY;
    ev->data = NULL;
    ev->size = 0;
    memcpy(ev->peer_key, z->peer_key, KEY);
    return 1;
}

/* ---- server ---- */

/* HELLO: can we open its box with s? Then WELCOME. */
static int server_hello(mpr__zmtp *z, unsigned char *b, size_t n)
{
    if (!command_is(b, n, "HELLO"))
        return proto(z, "expected HELLO");
    if (n != HELLO_SIZE)
        return proto(z, "malformed HELLO");
    if (b[6] != 1 || b[7] != 0)
        return proto(z, "HELLO of an unknown CURVE version");
    if (!sodium_is_zero(b + 8, 72))
        return proto(z, "malformed HELLO (padding)");
    memcpy(z->peer_short, b + 80, KEY);
    /* temp_key (C' with S) opens the HELLO and boxes the WELCOME. */
    int rc = crypto_box_beforenm(z->temp_key, z->peer_short, z->secret_key);
    scrub_stack();
    unsigned char hn[24];
    nonce_short(hn, "CurveZMQHELLO---", b + 112);
    if (rc != 0 ||
        crypto_box_open_detached_afternm(b + 136, b + 136, b + 120, 64, hn, z->temp_key) != 0 ||
        !sodium_is_zero(b + 136, 64)) {
        sodium_memzero(z->temp_key, KEY);
        return proto(z, "HELLO not for this server's key");
    }
    z->peer_nonce = get_be64(b + 112);

    /* Our short-term keys, made only for a client that knows S. */
    crypto_box_keypair(z->own_public, z->own_secret);
    scrub_stack();

    /* WELCOME: a long nonce and Box[S' + cookie](S->C'); the cookie is
     * SecretBox[C' + s'] under the cookie key with its own long nonce. */
    unsigned char *p = command_begin(z, WELCOME_SIZE);
    if (!p) {
        sodium_memzero(z->temp_key, KEY);
        return fail(z, MPR_ENOMEM, "out of memory");
    }
    memcpy(p, "\x07WELCOME", 8);
    randombytes_buf(p + 8, 16);
    unsigned char *box = p + 24 + MAC;
    memcpy(box, z->own_public, KEY);
    unsigned char *cookie = box + KEY;
    randombytes_buf(cookie, 16);
    memcpy(z->scratch, z->peer_short, KEY);
    memcpy(z->scratch + KEY, z->own_secret, KEY);
    unsigned char cn[24];
    nonce_long(cn, "COOKIE--", cookie);
    crypto_secretbox_detached(cookie + 16 + MAC, cookie + 16, z->scratch, 2 * KEY, cn,
                              z->cookie_key);
    sodium_memzero(z->scratch, sizeof z->scratch);
    scrub_stack();
    unsigned char wn[24];
    nonce_long(wn, "WELCOME-", p + 8);
    crypto_box_detached_afternm(box, p + 24, box, 128, wn, z->temp_key);
    sodium_memzero(z->temp_key, KEY);
    out_commit(z, p + WELCOME_SIZE);
    z->state = ST_INITIATE;
    return 0;
}

/* INITIATE: our cookie back, then the client's key C and its vouch. */
static int server_initiate(mpr__zmtp *z, unsigned char *b, size_t n, mpr__zmtp_event *ev)
{
    if (!command_is(b, n, "INITIATE"))
        return proto(z, "expected INITIATE");
    if (n < INITIATE_MIN)
        return proto(z, "malformed INITIATE");
    /* The cookie must hold this connection's C' and s': a cookie from
     * another connection (a replayed INITIATE) does not. */
    unsigned char cn[24];
    nonce_long(cn, "COOKIE--", b + 9);
    int ok = crypto_secretbox_open_detached(z->scratch, b + 9 + 16 + MAC, b + 9 + 16, 2 * KEY, cn,
                                            z->cookie_key) == 0;
    ok = ok && sodium_memcmp(z->scratch, z->peer_short, KEY) == 0;
    ok = ok && sodium_memcmp(z->scratch + KEY, z->own_secret, KEY) == 0;
    sodium_memzero(z->scratch, sizeof z->scratch);
    scrub_stack();
    if (!ok)
        return proto(z, "bad cookie");
    uint64_t nonce = get_be64(b + 105);
    if (nonce <= z->peer_nonce)
        return proto(z, "nonce not increasing");
    int rc = crypto_box_beforenm(z->session, z->peer_short, z->own_secret);
    scrub_stack();
    if (rc != 0)
        return proto(z, "bad INITIATE");
    unsigned char in[24];
    nonce_short(in, "CurveZMQINITIATE", b + 105);
    unsigned char *pt = b + 113 + MAC;
    if (crypto_box_open_detached_afternm(pt, pt, b + 113, n - 113 - MAC, in, z->session) != 0)
        return proto(z, "bad INITIATE");
    /* pt: C, the vouch's nonce (16), its MAC and box (16 + 64), metadata. */
    const unsigned char *client_key = pt;
    unsigned char *vouch = pt + 48 + MAC;
    rc = crypto_box_beforenm(z->temp_key, client_key, z->own_secret);
    scrub_stack();
    unsigned char vn[24];
    nonce_long(vn, "VOUCH---", pt + 32);
    ok = rc == 0 &&
         crypto_box_open_detached_afternm(vouch, vouch, pt + 48, 2 * KEY, vn, z->temp_key) == 0;
    sodium_memzero(z->temp_key, KEY);
    ok = ok && sodium_memcmp(vouch, z->peer_short, KEY) == 0;
    ok = ok && sodium_memcmp(vouch + KEY, z->public_key, KEY) == 0;
    if (!ok)
        return proto(z, "bad vouch");
    rc = check_metadata(z, pt + 128, n - INITIATE_MIN, "DEALER", "not a DEALER");
    if (rc < 0)
        return rc;
    z->peer_nonce = nonce;
    memcpy(z->peer_key, client_key, KEY);

    /* READY: a short nonce and Box[metadata](S'->C'). */
    const size_t md = METADATA_SIZE("ROUTER");
    unsigned char *p = command_begin(z, READY_MIN + md);
    if (!p)
        return fail(z, MPR_ENOMEM, "out of memory");
    memcpy(p, "\x05READY", 6);
    put_be64(p + 6, z->send_nonce++);
    put_metadata(p + READY_MIN, "ROUTER");
    unsigned char rn[24];
    nonce_short(rn, "CurveZMQREADY---", p + 6);
    crypto_box_detached_afternm(p + READY_MIN, p + 14, p + READY_MIN, md, rn, z->session);
    out_commit(z, p + READY_MIN + md);
    sodium_memzero(z->own_secret, KEY);
    z->state = ST_READY;
    if ((rc = in_to_heap(z)) < 0)
        return rc;
    ev->kind = MPR__ZMTP_READY;
    ev->data = NULL;
    ev->size = 0;
    memcpy(ev->peer_key, z->peer_key, KEY);
    return 1;
}

/* ---- the greeting ---- */

/* Check what has arrived of the peer's greeting; take it when complete. */
static int take_greeting(mpr__zmtp *z)
{
    const unsigned char *p = z->in + z->in_start;
    size_t have = z->in_end - z->in_start;
    if (have >= 1 && p[0] != 0xff)
        return proto(z, "not ZMTP 3 (bad greeting signature)");
    if (have >= 10 && p[9] != 0x7f)
        return proto(z, "not ZMTP 3 (bad greeting signature)");
    /* RFC 23: a peer must accept higher versions; it is their job to
     * speak ours (so does libzmq). */
    if (have >= 11 && p[10] < 3)
        return proto(z, "not ZMTP 3 (a ZMTP 1.0 or 2.0 peer)");
    if (have >= 32 && memcmp(p + 12, GREETING_MECHANISM, sizeof GREETING_MECHANISM) != 0)
        return proto(z, "not CURVE (plaintext or another mechanism)");
    if (have >= GREETING_FIRST && !z->greeting_done) {
        unsigned char *o = out_reserve(z, GREETING_SIZE - GREETING_FIRST);
        if (!o)
            return fail(z, MPR_ENOMEM, "out of memory");
        unsigned char g[GREETING_SIZE];
        greeting(g, z->role);
        memcpy(o, g + GREETING_FIRST, GREETING_SIZE - GREETING_FIRST);
        out_commit(z, o + GREETING_SIZE - GREETING_FIRST);
        z->greeting_done = 1;
    }
    if (have < GREETING_SIZE)
        return 0;
    /* The as-server byte is not checked: libzmq sends 0 either way. */
    z->in_start += GREETING_SIZE;
    if (z->role == MPR__ZMTP_SERVER) {
        z->state = ST_HELLO;
        return 1;
    }
    int rc = client_hello(z);
    if (rc < 0)
        return rc;
    z->state = ST_WELCOME;
    return 1;
}

/* ---- traffic ---- */

/* A command inside a MESSAGE: a PING gets its PONG, the rest is an error. */
static int traffic_command(mpr__zmtp *z, const unsigned char *body, size_t n)
{
    if (!command_is(body, n, "PING"))
        return proto(z, n >= 1 && n >= 1u + body[0] ? "unexpected command after READY"
                                                    : "malformed command");
    if (n < 7 || n - 7 > PING_CONTEXT_MAX)
        return proto(z, "malformed PING");
    if (z->out_end - z->out_start > PONG_BACKLOG)
        return 0; /* the peer is not reading; the backlog, once read, shows that we live */
    unsigned char pong[5 + PING_CONTEXT_MAX];
    memcpy(pong, "\x04PONG", 5);
    memcpy(pong + 5, body + 7, n - 7);
    int rc = queue_message(z, M_COMMAND, pong, 5 + (n - 7));
    return rc == MPR_ENOMEM ? fail(z, rc, "out of memory") : rc;
}

static int traffic(mpr__zmtp *z, unsigned flags, unsigned char *b, size_t n, mpr__zmtp_event *ev)
{
    if (!command_is(b, n, "MESSAGE")) {
        if ((flags & F_COMMAND) && command_is(b, n, "ERROR"))
            return peer_error(z, b, n);
        return proto(z, "unencrypted frame after READY");
    }
    if (n < MESSAGE_HEAD)
        return proto(z, "malformed MESSAGE");
    uint64_t nonce = get_be64(b + 8);
    if (nonce <= z->peer_nonce)
        return proto(z, "nonce not increasing");
    unsigned char mn[24];
    nonce_short(mn, z->role == MPR__ZMTP_SERVER ? "CurveZMQMESSAGEC" : "CurveZMQMESSAGES", b + 8);
    unsigned char *box = b + 16 + MAC;
    if (crypto_box_open_detached_afternm(box, box, b + 16, n - 16 - MAC, mn, z->session) != 0)
        return proto(z, "bad MESSAGE (forged or corrupted)");
    z->peer_nonce = nonce;
    unsigned mflags = box[0];
    if (mflags & M_MORE)
        return proto(z, "message flagged MORE");
    if (mflags & ~(unsigned)(M_MORE | M_COMMAND))
        return proto(z, "bad message flags");
    if (mflags & M_COMMAND)
        return traffic_command(z, box + 1, n - MESSAGE_HEAD);
    ev->kind = MPR__ZMTP_MESSAGE;
    ev->data = box + 1;
    ev->size = n - MESSAGE_HEAD;
    return 1;
}

/* ---- the API ---- */

int mpr__zmtp_new(mpr__zmtp **out, const mpr__zmtp_config *cfg)
{
    *out = NULL;
    if (!cfg || !cfg->public_key || !cfg->secret_key || cfg->max_message > MPR_MAX_MESSAGE_SIZE)
        return MPR_EINVAL;
    if (cfg->role == MPR__ZMTP_CLIENT ? !cfg->server_key
                                      : cfg->role != MPR__ZMTP_SERVER || !cfg->cookie_key)
        return MPR_EINVAL;
    if (sodium_init() < 0)
        return MPR_EIO;
    mpr__zmtp *z = mpr__secure_alloc(sizeof *z);
    if (!z)
        return MPR_ENOMEM;
    z->role = cfg->role;
    z->public_key = cfg->public_key;
    z->secret_key = cfg->secret_key;
    z->server_key = cfg->server_key;
    z->cookie_key = cfg->cookie_key;
    z->max_message = cfg->max_message;
    z->state = ST_GREETING;
    z->send_nonce = 1;
    z->why = "";
    z->in = z->hs_in;
    z->in_cap = sizeof z->hs_in;

    unsigned char *g = out_reserve(z, GREETING_FIRST);
    if (!g) {
        mpr__secure_free(z, sizeof *z);
        return MPR_ENOMEM;
    }
    unsigned char whole[GREETING_SIZE];
    greeting(whole, z->role);
    memcpy(g, whole, GREETING_FIRST);
    out_commit(z, g + GREETING_FIRST);

    if (z->role == MPR__ZMTP_CLIENT) {
        /* Our short-term keys, and the key they share with S (HELLO and
         * WELCOME): a server key that is no key (a point of small order)
         * fails here. */
        crypto_box_keypair(z->own_public, z->own_secret);
        int rc = crypto_box_beforenm(z->temp_key, z->server_key, z->own_secret);
        scrub_stack();
        if (rc != 0) {
            mpr__zmtp_free(z);
            return MPR_EINVAL;
        }
    }
    *out = z;
    return 0;
}

void mpr__zmtp_free(mpr__zmtp *z)
{
    if (!z)
        return;
    if (z->in != z->hs_in)
        free(z->in);
    free(z->out);
    mpr__secure_free(z, sizeof *z); /* wipes */
}

void mpr__zmtp_input(mpr__zmtp *z, unsigned char **buf, size_t *space)
{
    if (z->in_start > 0) {
        memmove(z->in, z->in + z->in_start, z->in_end - z->in_start);
        z->in_end -= z->in_start;
        z->in_start = 0;
    }
    /* The buffer may be larger than the bound (frames that came right
     * behind the last handshake command, more than a small bound), never
     * the room offered. Held bytes at the bound hold a whole frame. */
    size_t limit = in_bound(z) < z->in_cap ? in_bound(z) : z->in_cap;
    *buf = z->in + z->in_end;
    *space = z->state == ST_FAILED || z->in_end >= limit ? 0 : limit - z->in_end;
}

void mpr__zmtp_input_done(mpr__zmtp *z, size_t n)
{
    if (n > z->in_cap - z->in_end)
        n = z->in_cap - z->in_end;
    z->in_end += n;
}

int mpr__zmtp_step(mpr__zmtp *z, mpr__zmtp_event *ev)
{
    for (;;) {
        int rc;
        if (z->state == ST_FAILED)
            return z->error;
        if (z->state == ST_GREETING) {
            if ((rc = take_greeting(z)) <= 0)
                return rc;
            continue;
        }
        unsigned flags = 0;
        unsigned char *body = NULL;
        size_t n = 0;
        if ((rc = take_frame(z, &flags, &body, &n)) <= 0)
            return rc;
        if (z->state == ST_READY) {
            rc = traffic(z, flags, body, n, ev);
        } else if (!(flags & F_COMMAND)) {
            rc = proto(z, "a message before the handshake is complete");
        } else if (command_is(body, n, "ERROR")) {
            rc = peer_error(z, body, n);
        } else {
            switch (z->state) {
            case ST_HELLO:
                rc = server_hello(z, body, n);
                break;
            case ST_INITIATE:
                rc = server_initiate(z, body, n, ev);
                break;
            case ST_WELCOME:
                rc = client_welcome(z, body, n);
                break;
            default: /* ST_READY_CMD */
                rc = client_ready(z, body, n, ev);
                break;
            }
        }
        if (rc != 0)
            return rc;
    }
}

int mpr__zmtp_send(mpr__zmtp *z, const void *data, size_t size)
{
    if (z->state != ST_READY)
        return MPR_ESTATE;
    if (size > z->max_message)
        return MPR_EMSGSIZE;
    return queue_message(z, 0, data, size);
}

size_t mpr__zmtp_output(const mpr__zmtp *z, const unsigned char **buf)
{
    *buf = z->out + z->out_start;
    return z->out_end - z->out_start;
}

void mpr__zmtp_output_done(mpr__zmtp *z, size_t n)
{
    if (n > z->out_end - z->out_start)
        n = z->out_end - z->out_start;
    z->out_start += n;
    if (z->out_start == z->out_end)
        z->out_start = z->out_end = 0;
}

int mpr__zmtp_is_ready(const mpr__zmtp *z)
{
    return z->state == ST_READY;
}

int mpr__zmtp_stage(const mpr__zmtp *z)
{
    switch (z->state) {
    case ST_GREETING:
        return 0;
    case ST_HELLO:
    case ST_WELCOME:
        return 1;
    case ST_INITIATE:
    case ST_READY_CMD:
        return 2;
    default:
        return 3;
    }
}

const char *mpr__zmtp_why(const mpr__zmtp *z)
{
    return z->why;
}

size_t mpr__zmtp_memory(const mpr__zmtp *z)
{
    size_t page = mpr__page_size();
    size_t own = (sizeof *z + page - 1) / page * page;
    return own + (z->in != z->hs_in ? z->in_cap : 0) + z->out_cap;
}

int mpr__zmtp_keypair(unsigned char pub[MPR__ZMTP_KEY_SIZE], unsigned char sec[MPR__ZMTP_KEY_SIZE])
{
    if (sodium_init() < 0)
        return MPR_EIO;
    int rc = crypto_box_keypair(pub, sec);
    scrub_stack();
    return rc == 0 ? 0 : MPR_EIO;
}

/* ---- Z85 (RFC 32) ---- */

static const char Z85[86] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/* All ones if a == b (both below 2^16), else 0: no branch, no index on a
 * secret key's bytes. */
static unsigned ct_mask_eq(unsigned a, unsigned b)
{
    return 0u - (((a ^ b) - 1u) >> 31);
}

void mpr__z85_encode(char out[41], const unsigned char key[MPR__ZMTP_KEY_SIZE])
{
    for (int i = 0; i < 8; i++) {
        uint32_t v = get_be32(key + 4 * i);
        for (int j = 4; j >= 0; j--) {
            unsigned digit = v % 85, c = 0;
            v /= 85;
            for (unsigned k = 0; k < 85; k++)
                c |= ct_mask_eq(k, digit) & (unsigned char)Z85[k];
            out[5 * i + j] = (char)c;
        }
    }
    out[40] = '\0';
}

int mpr__z85_decode(unsigned char key[MPR__ZMTP_KEY_SIZE], const char *text)
{
    size_t len = 0;
    while (text && len < 41 && text[len])
        len++;
    if (!text || len != 40) {
        sodium_memzero(key, MPR__ZMTP_KEY_SIZE);
        return MPR_EINVAL;
    }
    unsigned bad = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 5; j++) {
            unsigned c = (unsigned char)text[5 * i + j], digit = 0, found = 0;
            for (unsigned k = 0; k < 85; k++) {
                unsigned m = ct_mask_eq(c, (unsigned char)Z85[k]);
                digit |= m & k;
                found |= m;
            }
            bad |= ~found & 1u;
            v = v * 85 + digit;
        }
        bad |= (unsigned)(v >> 32 != 0); /* "%%%%%" and the like: more than 32 bits */
        put_be32(key + 4 * i, (uint32_t)v);
    }
    if (bad) {
        sodium_memzero(key, MPR__ZMTP_KEY_SIZE);
        return MPR_EINVAL;
    }
    return 0;
}
