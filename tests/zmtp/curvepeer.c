/* curvepeer.c - see curvepeer.h. Uses libsodium's classic, zero-padded
 * crypto_box/crypto_box_open (not the detached or precomputed calls of
 * src/zmtp.c), so the two implementations share only the RFCs. */
#include "curvepeer.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define ZB crypto_box_ZEROBYTES    /* 32 */
#define BZB crypto_box_BOXZEROBYTES /* 16 */

void cp_put(cp_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q)
            abort();
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

void cp_buf_free(cp_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void cp_greeting(cp_buf *b, int major, int minor, const char *mechanism, int as_server)
{
    unsigned char g[64] = {0};
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = (unsigned char)major;
    g[11] = (unsigned char)minor;
    memcpy(g + 12, mechanism, strlen(mechanism) < 20 ? strlen(mechanism) : 20);
    g[32] = (unsigned char)as_server;
    cp_put(b, g, sizeof g);
}

void cp_long_header(cp_buf *b, unsigned flags, uint64_t size)
{
    unsigned char h[9];
    h[0] = (unsigned char)(flags | CP_F_LONG);
    be64(h + 1, size);
    cp_put(b, h, 9);
}

void cp_frame(cp_buf *b, unsigned flags, const void *body, size_t n)
{
    if (n > 255 || (flags & CP_F_LONG)) {
        cp_long_header(b, flags, n);
    } else {
        unsigned char h[2] = {(unsigned char)flags, (unsigned char)n};
        cp_put(b, h, 2);
    }
    cp_put(b, body, n);
}

void cp_command(cp_buf *b, const char *name, const void *data, size_t n)
{
    cp_buf body = {0};
    unsigned char len = (unsigned char)strlen(name);
    cp_put(&body, &len, 1);
    cp_put(&body, name, len);
    cp_put(&body, data, n);
    cp_frame(b, CP_F_COMMAND, body.p, body.len);
    cp_buf_free(&body);
}

void cp_error(cp_buf *b, const void *reason, size_t n)
{
    unsigned char data[256];
    data[0] = (unsigned char)n;
    memcpy(data + 1, reason, n);
    cp_command(b, "ERROR", data, n + 1);
}

void cp_property(cp_buf *b, const char *name, const void *value, size_t n)
{
    unsigned char len = (unsigned char)strlen(name), vl[4];
    cp_put(b, &len, 1);
    cp_put(b, name, len);
    vl[0] = (unsigned char)(n >> 24);
    vl[1] = (unsigned char)(n >> 16);
    vl[2] = (unsigned char)(n >> 8);
    vl[3] = (unsigned char)n;
    cp_put(b, vl, 4);
    cp_put(b, value, n);
}

size_t cp_take_frame(const unsigned char *buf, size_t len, unsigned *flags,
                     const unsigned char **body, size_t *n)
{
    if (len < 2)
        return 0;
    size_t hdr = buf[0] & CP_F_LONG ? 9 : 2;
    if (len < hdr)
        return 0;
    uint64_t size = hdr == 9 ? rd64(buf + 1) : buf[1];
    if (size > (1u << 30))
        return (size_t)-1;
    if (len - hdr < size)
        return 0;
    *flags = buf[0];
    *body = buf + hdr;
    *n = (size_t)size;
    return hdr + (size_t)size;
}

/* crypto_box with the classic padding: plain (mlen bytes) -> MAC + box
 * (mlen + 16 bytes) at out. */
static void box(unsigned char *out, const unsigned char *plain, size_t mlen,
                const unsigned char nonce[24], const unsigned char *pk, const unsigned char *sk)
{
    unsigned char *m = calloc(1, ZB + mlen), *c = malloc(ZB + mlen);
    if (!m || !c)
        abort();
    memcpy(m + ZB, plain, mlen);
    if (crypto_box(c, m, ZB + mlen, nonce, pk, sk) != 0)
        abort();
    memcpy(out, c + BZB, mlen + 16);
    sodium_memzero(m, ZB + mlen);
    free(m);
    free(c);
}

/* The inverse: MAC + box (clen bytes) -> plain (clen - 16). 0 or -1. */
static int unbox(unsigned char *plain, const unsigned char *in, size_t clen,
                 const unsigned char nonce[24], const unsigned char *pk, const unsigned char *sk)
{
    if (clen < 16)
        return -1;
    unsigned char *c = calloc(1, BZB + clen), *m = malloc(BZB + clen);
    if (!c || !m)
        abort();
    memcpy(c + BZB, in, clen);
    int rc = crypto_box_open(m, c, BZB + clen, nonce, pk, sk);
    if (rc == 0)
        memcpy(plain, m + ZB, clen - 16);
    sodium_memzero(m, BZB + clen);
    free(c);
    free(m);
    return rc == 0 ? 0 : -1;
}

static void short_nonce(unsigned char n[24], const char *prefix, uint64_t v)
{
    memcpy(n, prefix, 16);
    be64(n + 16, v);
}

void cp_init(cp_peer *p, int server, const unsigned char pub[32], const unsigned char sec[32],
             const unsigned char *server_key)
{
    if (sodium_init() < 0)
        abort();
    memset(p, 0, sizeof *p);
    p->server = server;
    memcpy(p->pub, pub, 32);
    memcpy(p->sec, sec, 32);
    if (server_key)
        memcpy(p->peer_pub, server_key, 32);
    crypto_box_keypair(p->cn_pub, p->cn_sec);
    randombytes_buf(p->cookie_key, 32);
    p->nonce = 1;
}

void cp_hello(cp_peer *c, cp_buf *out)
{
    unsigned char h[200] = {0}, zeros[64] = {0}, n[24];
    memcpy(h, "\x05HELLO\x01\x00", 8);
    memcpy(h + 80, c->cn_pub, 32);
    be64(h + 112, c->nonce);
    short_nonce(n, "CurveZMQHELLO---", c->nonce++);
    box(h + 120, zeros, 64, n, c->peer_pub, c->cn_sec);
    cp_frame(out, CP_F_COMMAND, h, sizeof h);
}

int cp_on_welcome(cp_peer *c, const unsigned char *b, size_t n)
{
    if (n != 168 || memcmp(b, "\x07WELCOME", 8) != 0)
        return -1;
    unsigned char nonce[24], plain[128];
    memcpy(nonce, "WELCOME-", 8);
    memcpy(nonce + 8, b + 8, 16);
    if (unbox(plain, b + 24, 144, nonce, c->peer_pub, c->cn_sec) != 0)
        return -1;
    memcpy(c->peer_cn, plain, 32);
    memcpy(c->cookie, plain + 32, 96);
    return 0;
}

void cp_initiate(cp_peer *c, cp_buf *out, const cp_initiate_opts *o)
{
    static const cp_initiate_opts honest;
    if (!o)
        o = &honest;
    cp_buf md = {0};
    if (o->metadata || o->use_metadata)
        cp_put(&md, o->metadata, o->metadata_len);
    else
        cp_property(&md, "Socket-Type", "DEALER", 6);

    unsigned char vouch_plain[64], vouch_nonce[24];
    memcpy(vouch_plain, o->vouch_cn ? o->vouch_cn : c->cn_pub, 32);
    memcpy(vouch_plain + 32, o->vouch_server ? o->vouch_server : c->peer_pub, 32);
    memcpy(vouch_nonce, "VOUCH---", 8);
    randombytes_buf(vouch_nonce + 8, 16);

    size_t plen = 128 + md.len;
    unsigned char *plain = malloc(plen), *boxed = malloc(plen + 16);
    if (!plain || !boxed)
        abort();
    memcpy(plain, o->claimed_pub ? o->claimed_pub : c->pub, 32);
    memcpy(plain + 32, vouch_nonce + 8, 16);
    box(plain + 48, vouch_plain, 64, vouch_nonce, c->peer_cn, o->vouch_sec ? o->vouch_sec : c->sec);
    if (md.len)
        memcpy(plain + 128, md.p, md.len);
    unsigned char n[24];
    uint64_t v = c->nonce++;
    short_nonce(n, "CurveZMQINITIATE", v);
    box(boxed, plain, plen, n, c->peer_cn, c->cn_sec);

    cp_buf body = {0};
    cp_put(&body, "\x08INITIATE", 9);
    cp_put(&body, c->cookie, 96);
    unsigned char sn[8];
    be64(sn, v);
    cp_put(&body, sn, 8);
    cp_put(&body, boxed, plen + 16);
    cp_frame(out, CP_F_COMMAND, body.p, body.len);
    cp_buf_free(&body);
    cp_buf_free(&md);
    free(plain);
    free(boxed);
}

static void keep_metadata(cp_peer *p, const unsigned char *md, size_t n)
{
    p->metadata_len = n < sizeof p->metadata ? n : sizeof p->metadata;
    memcpy(p->metadata, md, p->metadata_len);
}

int cp_on_ready(cp_peer *c, const unsigned char *b, size_t n)
{
    if (n < 30 || memcmp(b, "\x05READY", 6) != 0)
        return -1;
    unsigned char nonce[24];
    memcpy(nonce, "CurveZMQREADY---", 16);
    memcpy(nonce + 16, b + 6, 8);
    unsigned char *plain = malloc(n);
    if (!plain)
        abort();
    int rc = unbox(plain, b + 14, n - 14, nonce, c->peer_cn, c->cn_sec);
    if (rc == 0) {
        keep_metadata(c, plain, n - 30);
        c->peer_nonce = rd64(b + 6);
    }
    free(plain);
    return rc;
}

int cp_on_hello(cp_peer *s, const unsigned char *b, size_t n)
{
    if (n != 200 || memcmp(b, "\x05HELLO", 6) != 0)
        return -1;
    unsigned char nonce[24], plain[64];
    memcpy(nonce, "CurveZMQHELLO---", 16);
    memcpy(nonce + 16, b + 112, 8);
    memcpy(s->peer_cn, b + 80, 32);
    if (unbox(plain, b + 120, 80, nonce, s->peer_cn, s->sec) != 0)
        return -1;
    s->peer_nonce = rd64(b + 112);
    return 0;
}

void cp_welcome(cp_peer *s, cp_buf *out)
{
    unsigned char cookie_plain[64], cookie[96], cookie_nonce[24];
    memcpy(cookie_plain, s->peer_cn, 32);
    memcpy(cookie_plain + 32, s->cn_sec, 32);
    memcpy(cookie_nonce, "COOKIE--", 8);
    randombytes_buf(cookie_nonce + 8, 16);
    memcpy(cookie, cookie_nonce + 8, 16);
    unsigned char m[32 + 64] = {0}, c[32 + 64];
    memcpy(m + 32, cookie_plain, 64);
    crypto_secretbox(c, m, sizeof m, cookie_nonce, s->cookie_key);
    memcpy(cookie + 16, c + 16, 80);

    unsigned char plain[128], w[168], nonce[24];
    memcpy(plain, s->cn_pub, 32);
    memcpy(plain + 32, cookie, 96);
    memcpy(w, "\x07WELCOME", 8);
    randombytes_buf(w + 8, 16);
    memcpy(nonce, "WELCOME-", 8);
    memcpy(nonce + 8, w + 8, 16);
    box(w + 24, plain, 128, nonce, s->peer_cn, s->sec);
    cp_frame(out, CP_F_COMMAND, w, sizeof w);
}

int cp_on_initiate(cp_peer *s, const unsigned char *b, size_t n)
{
    if (n < 257 || memcmp(b, "\x08INITIATE", 9) != 0)
        return -1;
    unsigned char cn[24], m[16 + 80] = {0}, c[32 + 64];
    memcpy(cn, "COOKIE--", 8);
    memcpy(cn + 8, b + 9, 16);
    memcpy(m + 16, b + 25, 80);
    if (crypto_secretbox_open(c, m, sizeof m, cn, s->cookie_key) != 0 ||
        memcmp(c + 32, s->peer_cn, 32) != 0 || memcmp(c + 64, s->cn_sec, 32) != 0)
        return -1;
    unsigned char nonce[24];
    memcpy(nonce, "CurveZMQINITIATE", 16);
    memcpy(nonce + 16, b + 105, 8);
    unsigned char *plain = malloc(n);
    if (!plain)
        abort();
    int rc = unbox(plain, b + 113, n - 113, nonce, s->peer_cn, s->cn_sec);
    if (rc == 0) {
        unsigned char vn[24], vouch[64];
        memcpy(vn, "VOUCH---", 8);
        memcpy(vn + 8, plain + 32, 16);
        rc = unbox(vouch, plain + 48, 80, vn, plain, s->cn_sec);
        if (rc == 0 && (memcmp(vouch, s->peer_cn, 32) != 0 || memcmp(vouch + 32, s->pub, 32) != 0))
            rc = -1;
    }
    if (rc == 0) {
        memcpy(s->peer_pub, plain, 32);
        keep_metadata(s, plain + 128, n - 257);
        s->peer_nonce = rd64(b + 105);
    }
    free(plain);
    return rc;
}

void cp_ready(cp_peer *s, cp_buf *out, const void *metadata, size_t n)
{
    cp_buf md = {0};
    if (metadata)
        cp_put(&md, metadata, n);
    else
        cp_property(&md, "Socket-Type", "ROUTER", 6);
    cp_buf body = {0};
    cp_put(&body, "\x05READY", 6);
    unsigned char sn[8], nonce[24];
    be64(sn, s->nonce);
    cp_put(&body, sn, 8);
    short_nonce(nonce, "CurveZMQREADY---", s->nonce++);
    unsigned char *boxed = malloc(md.len + 16);
    if (!boxed)
        abort();
    box(boxed, md.p ? md.p : (const unsigned char *)"", md.len, nonce, s->peer_cn, s->cn_sec);
    cp_put(&body, boxed, md.len + 16);
    cp_frame(out, CP_F_COMMAND, body.p, body.len);
    free(boxed);
    cp_buf_free(&body);
    cp_buf_free(&md);
}

void cp_message(cp_peer *p, cp_buf *out, unsigned mflags, const void *data, size_t n)
{
    unsigned char *plain = malloc(n + 1), *boxed = malloc(n + 17), nonce[24], sn[8];
    if (!plain || !boxed)
        abort();
    plain[0] = (unsigned char)mflags;
    if (n)
        memcpy(plain + 1, data, n);
    be64(sn, p->nonce);
    short_nonce(nonce, p->server ? "CurveZMQMESSAGES" : "CurveZMQMESSAGEC", p->nonce++);
    box(boxed, plain, n + 1, nonce, p->peer_cn, p->cn_sec);
    cp_buf body = {0};
    cp_put(&body, "\x07MESSAGE", 8);
    cp_put(&body, sn, 8);
    cp_put(&body, boxed, n + 17);
    cp_frame(out, 0, body.p, body.len);
    cp_buf_free(&body);
    free(plain);
    free(boxed);
}

int cp_open(cp_peer *p, const unsigned char *b, size_t n, unsigned *mflags, unsigned char *plain,
            size_t *plain_len)
{
    if (n < 33 || memcmp(b, "\x07MESSAGE", 8) != 0)
        return -1;
    unsigned char nonce[24];
    memcpy(nonce, p->server ? "CurveZMQMESSAGEC" : "CurveZMQMESSAGES", 16);
    memcpy(nonce + 16, b + 8, 8);
    unsigned char *m = malloc(n);
    if (!m)
        abort();
    int rc = unbox(m, b + 16, n - 16, nonce, p->peer_cn, p->cn_sec);
    if (rc == 0) {
        *mflags = m[0];
        *plain_len = n - 33;
        memcpy(plain, m + 1, n - 33);
        p->peer_nonce = rd64(b + 8);
    }
    free(m);
    return rc;
}

int cp_metadata_has_type(const unsigned char *md, size_t n, const char *want)
{
    size_t i = 0;
    while (i < n) {
        size_t nl = md[i];
        if (n - i < 1 + nl + 4)
            return 0;
        const unsigned char *name = md + i + 1;
        size_t vl = (size_t)md[i + 1 + nl] << 24 | (size_t)md[i + 2 + nl] << 16 |
                    (size_t)md[i + 3 + nl] << 8 | md[i + 4 + nl];
        i += 1 + nl + 4;
        if (vl > n - i)
            return 0;
        if (nl == 11 && memcmp(name, "Socket-Type", 11) == 0)
            return vl == strlen(want) && memcmp(md + i, want, vl) == 0;
        i += vl;
    }
    return 0;
}
