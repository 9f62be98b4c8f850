/*
 * wire.c - the handshake messages, the pipe keys and proofs, the frame
 * parser and the record parsers (see wire.h).
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
    memcpy(out + 16, h->nonce, MPR__NONCE_SIZE);
}

int mpr__hello_decode(const unsigned char in[MPR__HELLO_SIZE], mpr__hello *h)
{
    if (mpr__get_u32(in) != MPR__HELLO_MAGIC)
        return MPR_EPROTO;
    h->version = mpr__get_u32(in + 4);
    h->conn_id = mpr__get_u32(in + 8);
    h->flags = mpr__get_u32(in + 12);
    memcpy(h->nonce, in + 16, MPR__NONCE_SIZE);
    return 0;
}

void mpr__challenge_encode(unsigned char out[MPR__CHALLENGE_SIZE], const mpr__challenge *c)
{
    mpr__put_u32(out, MPR__CHALLENGE_MAGIC);
    mpr__put_u32(out + 4, 0);
    mpr__put_u32(out + 8, c->max_msg);
    mpr__put_u32(out + 12, 0);
    memcpy(out + 16, c->nonce, MPR__NONCE_SIZE);
    memcpy(out + 32, c->proof, MPR__SECRET_SIZE);
}

int mpr__challenge_decode(const unsigned char in[MPR__CHALLENGE_SIZE], mpr__challenge *c)
{
    if (mpr__get_u32(in) != MPR__CHALLENGE_MAGIC || mpr__get_u32(in + 4) != 0 ||
        mpr__get_u32(in + 12) != 0)
        return MPR_EPROTO;
    c->max_msg = mpr__get_u32(in + 8);
    memcpy(c->nonce, in + 16, MPR__NONCE_SIZE);
    memcpy(c->proof, in + 32, MPR__SECRET_SIZE);
    return 0;
}

void mpr__proof_encode(unsigned char out[MPR__PROOF_SIZE], const mpr__proof *p)
{
    mpr__put_u32(out, MPR__PROOF_MAGIC);
    mpr__put_u32(out + 4, p->flags);
    mpr__put_u32(out + 8, 0);
    mpr__put_u32(out + 12, 0);
    memcpy(out + 16, p->proof, MPR__SECRET_SIZE);
}

int mpr__proof_decode(const unsigned char in[MPR__PROOF_SIZE], mpr__proof *p)
{
    if (mpr__get_u32(in) != MPR__PROOF_MAGIC || mpr__get_u32(in + 8) != 0 ||
        mpr__get_u32(in + 12) != 0)
        return MPR_EPROTO;
    p->flags = mpr__get_u32(in + 4);
    memcpy(p->proof, in + 16, MPR__SECRET_SIZE);
    return 0;
}

void mpr__ack_encode(unsigned char out[MPR__ACK_SIZE], const mpr__ack *a)
{
    mpr__put_u32(out, MPR__ACK_MAGIC);
    mpr__put_u32(out + 4, a->status);
    mpr__put_u32(out + 8, a->mode);
    mpr__put_u32(out + 12, 0);
}

int mpr__ack_decode(const unsigned char in[MPR__ACK_SIZE], mpr__ack *a)
{
    if (mpr__get_u32(in) != MPR__ACK_MAGIC || mpr__get_u32(in + 12) != 0)
        return MPR_EPROTO;
    a->status = mpr__get_u32(in + 4);
    a->mode = mpr__get_u32(in + 8);
    if (a->status > MPR__ACK_TAKEN || a->mode > MPR__MODE_REMOTE)
        return MPR_EPROTO;
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
    /* "somepseudorandomlygeneratedbytes" */
    uint64_t v[4] = {mpr__get_u64(key) ^ 0x736f6d6570736575ull,
                     mpr__get_u64(key + 8) ^ 0x646f72616e646f6dull,
                     mpr__get_u64(key) ^ 0x6c7967656e657261ull,
                     mpr__get_u64(key + 8) ^ 0x7465646279746573ull};
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
    /* The state holds the key (xored with constants): leave no copy on
     * the stack for a forked child to find. */
    mpr__wipe(v, sizeof v);
}

void mpr__pipe_key(unsigned char out[MPR__SECRET_SIZE], const unsigned char secret[MPR__SECRET_SIZE],
                   uint32_t id)
{
    unsigned char msg[8] = {'M', 'P', 'R', 'K'};
    mpr__put_u32(msg + 4, id);
    mpr__siphash(out, MPR__SECRET_SIZE, secret, msg, sizeof msg);
}

void mpr__proof_tag(unsigned char out[MPR__SECRET_SIZE], const unsigned char key[MPR__SECRET_SIZE],
                    char role, uint32_t id, const unsigned char answered[MPR__NONCE_SIZE],
                    const unsigned char own[MPR__NONCE_SIZE])
{
    unsigned char msg[12 + 2 * MPR__NONCE_SIZE] = {'M', 'P', 'R', 'P'};
    msg[4] = (unsigned char)role;
    mpr__put_u32(msg + 8, id);
    memcpy(msg + 12, answered, MPR__NONCE_SIZE);
    memcpy(msg + 12 + MPR__NONCE_SIZE, own, MPR__NONCE_SIZE);
    mpr__siphash(out, MPR__SECRET_SIZE, key, msg, sizeof msg);
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

/* Collect a fixed-size handshake message of size bytes into w->hdr; returns
 * how many bytes of p it took (the message is whole if hdr_have == size). */
static size_t collect(mpr__wire *w, const unsigned char *p, size_t n, uint32_t size)
{
    size_t take = size - w->hdr_have;
    if (take > n)
        take = n;
    memcpy(w->hdr + w->hdr_have, p, take);
    w->hdr_have += (uint32_t)take;
    return take;
}

int mpr__wire_feed(mpr__wire *w, const mpr__wire_sink *s, const unsigned char *p, size_t n)
{
    while (n > 0) {
        switch (w->state) {
        case MPR__WIRE_HELLO: {
            size_t take = collect(w, p, n, MPR__HELLO_SIZE);
            p += take;
            n -= take;
            if (w->hdr_have < MPR__HELLO_SIZE)
                break;
            mpr__hello h;
            int rc = mpr__hello_decode(w->hdr, &h);
            w->hdr_have = 0;
            if (rc == 0)
                rc = s->hello(s->ctx, w->hdr);
            if (rc < 0)
                return fail(w, rc);
            w->state = MPR__WIRE_PROOF;
            break;
        }
        case MPR__WIRE_PROOF: {
            size_t take = collect(w, p, n, MPR__PROOF_SIZE);
            p += take;
            n -= take;
            if (w->hdr_have < MPR__PROOF_SIZE)
                break;
            mpr__proof pr;
            int rc = mpr__proof_decode(w->hdr, &pr);
            w->hdr_have = 0;
            mpr__wipe(&pr, sizeof pr);
            if (rc == 0)
                rc = s->proof(s->ctx, w->hdr);
            if (rc < 0)
                return fail(w, rc);
            w->state = rc == MPR__MODE_RING ? MPR__WIRE_RAW : MPR__WIRE_HEADER;
            break;
        }
        case MPR__WIRE_HEADER: {
            if (w->hdr_have == 0 && n >= 4) {
                /* The common case: a whole header in the buffer. */
                memcpy(w->hdr, p, 4);
                p += 4;
                n -= 4;
            } else {
                size_t take = collect(w, p, n, 4);
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

/* One record at p: hdr is a copy of its 8-byte header (taken once: a ring
 * may change under us), avail the bytes published from p on, contiguous
 * those before the end of the buffer. PAD only where allow_pad (a ring). */
static int parse_record(const unsigned char hdr[8], const unsigned char *p, uint64_t avail,
                        uint64_t contiguous, int allow_pad, mpr__ring_rec *out)
{
    uint32_t type = mpr__get_u32(hdr);
    uint32_t len = mpr__get_u32(hdr + 4);
    out->type = type;
    out->len = len;
    out->total = 0;
    out->payload = p + 8;
    if (type == MPR__RING_PAD && allow_pad) {
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
        memcpy(t, (const void *)(p + 8), 8);
        out->total = mpr__get_u64(t);
        return 1;
    }
    case MPR__RING_BYE:
        return len == 0 ? 1 : MPR_EPROTO;
    default:
        return MPR_EPROTO;
    }
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
    unsigned char hdr[8];
    memcpy(hdr, (const void *)(data + pos), 8);
    /* >= 8 bytes before the end: positions are 8-aligned */
    return parse_record(hdr, data + pos, avail, cap - pos, 1, out);
}

int mpr__record_next(const unsigned char *buf, size_t n, mpr__ring_rec *out)
{
    if (n == 0)
        return 0;
    if (n < 8)
        return MPR_EPROTO;
    return parse_record(buf, buf, n, n, 0, out); /* a frame has no end of ring: no PAD */
}

/* ---- the remote transport's frames ---- */

void mpr__state_encode(unsigned char out[MPR__STATE_SIZE], const mpr__state *st)
{
    mpr__put_u32(out, MPR__STATE_MAGIC);
    mpr__put_u32(out + 4, st->flags);
    mpr__put_u64(out + 8, st->seq);
    mpr__put_u64(out + 16, st->credit);
    mpr__put_u32(out + 24, st->window_ms);
    mpr__put_u32(out + 28, 0);
}

int mpr__state_decode(const unsigned char *in, size_t n, mpr__state *st)
{
    if (n != MPR__STATE_SIZE || mpr__get_u32(in) != MPR__STATE_MAGIC ||
        (mpr__get_u32(in + 4) & ~MPR__STATE_GONE) != 0 || mpr__get_u32(in + 28) != 0)
        return MPR_EPROTO;
    st->flags = mpr__get_u32(in + 4);
    st->seq = mpr__get_u64(in + 8);
    st->credit = mpr__get_u64(in + 16);
    st->window_ms = mpr__get_u32(in + 24);
    return 0;
}

int mpr__remote_parse(const unsigned char *p, size_t n, mpr__remote_frame *out)
{
    memset(out, 0, sizeof *out);
    if (n < 4)
        return MPR_EPROTO;
    out->kind = mpr__get_u32(p);
    out->body = p;
    switch (out->kind) {
    case MPR__HELLO_MAGIC:
        return n == MPR__HELLO_SIZE ? 0 : MPR_EPROTO;
    case MPR__PROOF_MAGIC:
        return n == MPR__PROOF_SIZE ? 0 : MPR_EPROTO;
    case MPR__DATA_MAGIC:
        if (n < MPR__DATA_HDR || n - MPR__DATA_HDR > MPR__FRAME_MAX || mpr__get_u32(p + 4) != 0)
            return MPR_EPROTO;
        out->seq = mpr__get_u64(p + 8);
        if (out->seq == 0)
            return MPR_EPROTO;
        out->records = p + MPR__DATA_HDR;
        out->nrecords = n - MPR__DATA_HDR;
        return 0;
    case MPR__HEART_MAGIC:
    case MPR__ABORT_MAGIC:
        return n == MPR__DATA_HDR && mpr__get_u32(p + 4) == 0 && mpr__get_u64(p + 8) == 0
                   ? 0
                   : MPR_EPROTO;
    case MPR__GOT_MAGIC:
        if (n != MPR__DATA_HDR || mpr__get_u32(p + 4) != 0)
            return MPR_EPROTO;
        out->seq = mpr__get_u64(p + 8);
        return 0;
    default:
        return MPR_EPROTO;
    }
}

/* ---- the way back ---- */

int mpr__ctl_item_next(const unsigned char *buf, size_t n, mpr__ctl_item *item)
{
    memset(item, 0, sizeof *item);
    if (n == 0)
        return 0;
    item->type = buf[0];
    switch (buf[0]) {
    case MPR__CTL_ROOM:
        item->used = 1;
        return 1;
    case MPR__CTL_CANCEL:
        item->used = 9;
        if (n < 9)
            return 0;
        item->tag = mpr__get_u64(buf + 1);
        return item->tag != 0 ? 1 : MPR_EPROTO;
    case MPR__CTL_MSG: {
        if (n < MPR__CTL_MSG_HDR)
            return 0;
        uint32_t len = mpr__get_u32(buf + 1);
        if (len > MPR_CONTROL_MAX_SIZE)
            return MPR_EPROTO;
        item->used = MPR__CTL_MSG_HDR + (size_t)len;
        if (n < item->used)
            return 0;
        item->data = buf + MPR__CTL_MSG_HDR;
        item->size = len;
        return 1;
    }
    default:
        return MPR_EPROTO;
    }
}

void mpr__ctl_msg_header(unsigned char out[MPR__CTL_MSG_HDR], uint32_t size)
{
    out[0] = MPR__CTL_MSG;
    mpr__put_u32(out + 1, size);
}

void mpr__ctl_cancel_item(unsigned char out[9], uint64_t tag)
{
    out[0] = MPR__CTL_CANCEL;
    mpr__put_u64(out + 1, tag);
}

int mpr__down_parse(const unsigned char *p, size_t n, mpr__down_frame *out)
{
    memset(out, 0, sizeof *out);
    if (n < 4)
        return MPR_EPROTO;
    out->kind = mpr__get_u32(p);
    switch (out->kind) {
    case MPR__STATE_MAGIC:
        return mpr__state_decode(p, n, &out->st);
    case MPR__CANCEL_MAGIC:
        if (n != MPR__DATA_HDR || mpr__get_u32(p + 4) != 0)
            return MPR_EPROTO;
        out->tag = mpr__get_u64(p + 8);
        return out->tag != 0 ? 0 : MPR_EPROTO;
    case MPR__CTRL_MAGIC:
        if (n < MPR__CTRL_HDR || mpr__get_u32(p + 20) != 0)
            return MPR_EPROTO;
        out->total = mpr__get_u32(p + 4);
        out->cseq = mpr__get_u64(p + 8);
        out->offset = mpr__get_u32(p + 16);
        out->piece = p + MPR__CTRL_HDR;
        out->n = n - MPR__CTRL_HDR;
        if (out->total > MPR_CONTROL_MAX_SIZE || out->cseq == 0 || out->n > MPR__CTRL_PIECE ||
            out->offset > out->total || out->n > out->total - out->offset ||
            (out->n == 0 && out->total != 0))
            return MPR_EPROTO;
        return 0;
    default:
        return MPR_EPROTO;
    }
}

void mpr__ctrl_header(unsigned char out[MPR__CTRL_HDR], uint32_t total, uint64_t cseq,
                      uint32_t offset)
{
    mpr__put_u32(out, MPR__CTRL_MAGIC);
    mpr__put_u32(out + 4, total);
    mpr__put_u64(out + 8, cseq);
    mpr__put_u32(out + 16, offset);
    mpr__put_u32(out + 20, 0);
}

void mpr__small_frame(unsigned char out[MPR__DATA_HDR], uint32_t magic, uint64_t value)
{
    mpr__put_u32(out, magic);
    mpr__put_u32(out + 4, 0);
    mpr__put_u64(out + 8, value);
}
