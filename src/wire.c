/*
 * wire.c - encoding of HELLO/ACK and the frame parser (see wire.h).
 */
#include <string.h>

#include <mprouter/common.h>

#include "wire.h"

void mpr__hello_encode(unsigned char out[MPR__HELLO_SIZE], const mpr__hello *h)
{
    mpr__put_u32(out, MPR__HELLO_MAGIC);
    mpr__put_u32(out + 4, h->version);
    mpr__put_u32(out + 8, h->conn_id);
    mpr__put_u32(out + 12, h->flags);
    memcpy(out + 16, h->key, MPR__SECRET_SIZE);
}

void mpr__ack_encode(unsigned char out[MPR__ACK_SIZE], uint32_t max_msg)
{
    mpr__put_u32(out, MPR__ACK_MAGIC);
    mpr__put_u32(out + 4, 0);
    mpr__put_u32(out + 8, max_msg);
    mpr__put_u32(out + 12, 0);
}

int mpr__ack_decode(const unsigned char in[MPR__ACK_SIZE], uint32_t *max_msg)
{
    if (mpr__get_u32(in) != MPR__ACK_MAGIC || mpr__get_u32(in + 4) != 0)
        return MPR_EPROTO;
    *max_msg = mpr__get_u32(in + 8);
    return 0;
}

int mpr__secret_equal(const unsigned char *a, const unsigned char *b)
{
    /* volatile keeps the compiler from turning this into an early exit. */
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < MPR__SECRET_SIZE; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* ---- SipHash-2-4 ---- */

#define ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static void sip_rounds(uint64_t v[4], int n)
{
    while (n-- > 0) {
        v[0] += v[1];
        v[1] = ROTL64(v[1], 13) ^ v[0];
        v[0] = ROTL64(v[0], 32);
        v[2] += v[3];
        v[3] = ROTL64(v[3], 16) ^ v[2];
        v[0] += v[3];
        v[3] = ROTL64(v[3], 21) ^ v[0];
        v[2] += v[1];
        v[1] = ROTL64(v[1], 17) ^ v[2];
        v[2] = ROTL64(v[2], 32);
    }
}

static void sip_absorb(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sip_rounds(v, 2);
    v[0] ^= m;
}

void mpr__siphash(unsigned char *out, size_t outlen, const unsigned char key[16], const void *in,
                  size_t len)
{
    const unsigned char *p = in;
    const uint64_t k0 = mpr__get_u64(key), k1 = mpr__get_u64(key + 8);
    /* "somepseudorandomlygeneratedbytes" */
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull,
                     k0 ^ 0x6c7967656e657261ull, k1 ^ 0x7465646279746573ull};
    if (outlen == 16)
        v[1] ^= 0xee;
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8)
        sip_absorb(v, mpr__get_u64(p + i));
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        last |= (uint64_t)p[full + i] << (8 * i);
    sip_absorb(v, last);
    v[2] ^= outlen == 16 ? 0xee : 0xff;
    sip_rounds(v, 4);
    mpr__put_u64(out, v[0] ^ v[1] ^ v[2] ^ v[3]);
    if (outlen == 16) {
        v[1] ^= 0xdd;
        sip_rounds(v, 4);
        mpr__put_u64(out + 8, v[0] ^ v[1] ^ v[2] ^ v[3]);
    }
}

void mpr__pipe_key(unsigned char out[MPR__SECRET_SIZE], const unsigned char secret[MPR__SECRET_SIZE],
                   uint32_t id)
{
    unsigned char msg[8] = {'M', 'P', 'R', 'K'};
    mpr__put_u32(msg + 4, id);
    mpr__siphash(out, MPR__SECRET_SIZE, secret, msg, sizeof msg);
}

void mpr__wire_init(mpr__wire *w, uint32_t max_msg)
{
    memset(w, 0, sizeof *w);
    w->state = MPR__WIRE_HELLO;
    w->max_msg = max_msg;
}

static int fail(mpr__wire *w, int err)
{
    w->state = MPR__WIRE_FAILED;
    return err;
}

void mpr__wire_body_written(mpr__wire *w, const mpr__wire_sink *s, size_t n)
{
    w->body_have += (uint32_t)n;
    if (w->body_have == w->body_len) {
        w->state = MPR__WIRE_HEADER;
        w->body = NULL;
        s->end(s->ctx);
    }
}

/* A frame header is complete in w->hdr: act on it. avail = bytes that
 * follow it in the current buffer. */
static int on_header(mpr__wire *w, const mpr__wire_sink *s, size_t avail)
{
    uint32_t word = mpr__get_u32(w->hdr);
    w->hdr_have = 0;
    if (word & MPR__WIRE_CONTROL) {
        if (word != MPR__WIRE_BYE)
            return fail(w, MPR_EPROTO);
        w->state = MPR__WIRE_CLOSED;
        return 0;
    }
    if (word > w->max_msg)
        return fail(w, MPR_EMSGSIZE);
    w->body = s->begin(s->ctx, word, avail);
    if (!w->body)
        return fail(w, MPR_ENOMEM);
    w->body_len = word;
    w->body_have = 0;
    w->state = MPR__WIRE_BODY;
    if (word == 0)
        mpr__wire_body_written(w, s, 0);
    return 0;
}

int mpr__wire_feed(mpr__wire *w, const mpr__wire_sink *s, const unsigned char *p, size_t n)
{
    while (n > 0) {
        switch (w->state) {
        case MPR__WIRE_HELLO: {
            size_t take = MPR__HELLO_SIZE - w->hdr_have;
            if (take > n)
                take = n;
            memcpy(w->hdr + w->hdr_have, p, take);
            w->hdr_have += (uint32_t)take;
            p += take;
            n -= take;
            if (w->hdr_have < MPR__HELLO_SIZE)
                break;
            if (mpr__get_u32(w->hdr) != MPR__HELLO_MAGIC)
                return fail(w, MPR_EPROTO);
            mpr__hello h;
            h.version = mpr__get_u32(w->hdr + 4);
            h.conn_id = mpr__get_u32(w->hdr + 8);
            h.flags = mpr__get_u32(w->hdr + 12);
            memcpy(h.key, w->hdr + 16, MPR__SECRET_SIZE);
            memset(w->hdr, 0, sizeof w->hdr); /* no copy of the secret lingers */
            w->hdr_have = 0;
            int rc = s->hello(s->ctx, &h);
            memset(h.key, 0, sizeof h.key);
            if (rc < 0)
                return fail(w, rc);
            w->state = rc == MPR__WIRE_RAW_MODE ? MPR__WIRE_RAW : MPR__WIRE_HEADER;
            break;
        }
        case MPR__WIRE_HEADER: {
            if (w->hdr_have == 0 && n >= 4) {
                /* The common case: a whole header in the buffer. */
                memcpy(w->hdr, p, 4);
                p += 4;
                n -= 4;
            } else {
                size_t take = 4 - w->hdr_have;
                if (take > n)
                    take = n;
                memcpy(w->hdr + w->hdr_have, p, take);
                w->hdr_have += (uint32_t)take;
                p += take;
                n -= take;
                if (w->hdr_have < 4)
                    break;
            }
            int rc = on_header(w, s, n);
            if (rc < 0)
                return rc;
            break;
        }
        case MPR__WIRE_BODY: {
            size_t take = w->body_len - w->body_have;
            if (take > n)
                take = n;
            memcpy(w->body + w->body_have, p, take);
            p += take;
            n -= take;
            mpr__wire_body_written(w, s, take);
            break;
        }
        case MPR__WIRE_RAW:
            return 0;
        case MPR__WIRE_CLOSED:
            return fail(w, MPR_EPROTO);
        case MPR__WIRE_FAILED:
            return MPR_EPROTO;
        }
    }
    return 0;
}

int mpr__ring_next(const unsigned char *data, uint64_t cap, uint64_t tail, uint64_t head,
                   mpr__ring_rec *out)
{
    uint64_t avail = head - tail;
    if (avail == 0)
        return 0;
    if (avail > cap || (avail & 7u) != 0)
        return MPR_EPROTO;
    uint64_t pos = tail & (cap - 1);
    uint64_t contiguous = cap - pos; /* >= 8: positions are 8-aligned */
    /* The sender may change the ring under us: copy the header once. */
    unsigned char hdr[8];
    memcpy(hdr, (const void *)(data + pos), 8);
    uint32_t type = mpr__get_u32(hdr);
    uint32_t len = mpr__get_u32(hdr + 4);
    out->type = type;
    out->len = len;
    out->total = 0;
    out->payload = data + pos + 8;
    if (type == MPR__RING_PAD) {
        if (contiguous > avail)
            return MPR_EPROTO;
        out->len = 0;
        out->size = contiguous;
        return 1;
    }
    out->size = mpr__ring_rec_size(len);
    if (out->size > contiguous || out->size > avail)
        return MPR_EPROTO;
    switch (type) {
    case MPR__RING_MSG:
    case MPR__RING_FRAG_DATA:
        return 1;
    case MPR__RING_FRAG_START: {
        if (len != 8)
            return MPR_EPROTO;
        unsigned char t[8];
        memcpy(t, (const void *)(data + pos + 8), 8);
        out->total = mpr__get_u64(t);
        return 1;
    }
    case MPR__RING_BYE:
        return len == 0 ? 1 : MPR_EPROTO;
    default:
        return MPR_EPROTO;
    }
}
