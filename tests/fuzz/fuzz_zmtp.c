/*
 * fuzz_zmtp - libFuzzer target for the ZMTP 3.0 + CURVE machine of
 * src/zmtp.c: everything a peer sends, before the handshake (anyone) and
 * after it (a peer that holds a key the router accepts).
 *
 * fuzz-sources: src/zmtp.c src/common.c tests/zmtp/curvepeer.c
 * fuzz-libs: -lsodium
 *
 * Input: 2 control bytes, then the payload.
 *   [0] bits 0-1: the mode
 *         0  a server machine fed the payload as raw bytes
 *         1  a client machine fed the payload as raw bytes
 *         2  a server machine after an honest greeting and HELLO from the
 *            hand-made client (tests/zmtp/curvepeer.c), then a script
 *         3  a client machine after an honest greeting and WELCOME from
 *            the hand-made server, then a script
 *       bits 2-4: max_message (index into max_sizes)
 *       bit 5: modes 0 and 1: the output is left to pile up (else it is
 *       taken as it comes)
 *   [1] seed of the chunking: input arrives in pieces of 1..256 bytes
 *
 * A script (modes 2 and 3) is a list of operations, each an op byte and
 * its bytes, that the hand-made peer turns into frames:
 *   'I'/'R' len md...  first: INITIATE (mode 2) or READY (mode 3) with
 *                      this metadata (else an honest one)
 *   'V' how where      then: INITIATE with a vouch made by another key
 *                      (how bit 0), claiming another C (1: with bit 0, an
 *                      honest client of another key), for another C' (2)
 *                      or server (3); bit 4: one bit of the INITIATE's
 *                      or READY's body flipped at where
 *   'M' f n1 n0 d k..  a MESSAGE: flags byte f, n bytes of body (cut to
 *                      what is left), nonce step d (0: repeat the last,
 *                      1: next, else a jump)
 *   'S' n1 n0 c        the machine sends n bytes of c when it is READY
 * The INITIATE or READY and every frame of the script go out as one
 * stream (libzmq sends its first messages right behind its INITIATE).
 *   'F' f len ...      an unencrypted frame with flags f
 *   'H' f 8 bytes      a frame header alone, any size
 *   'X' len ...        raw bytes
 *
 * Checks: the machine never offers more input space than its bound,
 * never says 0 without a frame to take, never reports a message over
 * max_message or READY twice, answers the same error forever after one,
 * holds no more memory than its page, its bound and its output. With a
 * script and until the first raw op, a reference written from the RFCs
 * predicts every outcome: READY or an error for the INITIATE/READY's
 * metadata, then for each MESSAGE whether it is delivered (the same
 * bytes), answered (a PING: a PONG with its context, checked by the
 * hand-made peer, unless 64 KiB of output wait) or refused, and that
 * nothing is taken after a refusal.
 * Randomness is deterministic per input (libsodium's randombytes is
 * replaced) so every finding replays. Every input's payload is also read
 * as Z85 text (mpr__z85_decode): a key only from 40 characters of Z85,
 * which mpr__z85_encode gives back the same.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/common.h>

#include "../zmtp/curvepeer.h"
#include "zmtp.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "fuzz_zmtp: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

static const size_t max_sizes[] = {0, 1, 7, 222, 223, 1000, 65536, 1u << 20};
#define OVERHEAD_IN 42u /* frame header 9 + MESSAGE 33 */
#define PAGE 4096u

/* ---- deterministic randomness ---- */

static uint64_t rng;

static uint32_t rb_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static const char *rb_name(void)
{
    return "fuzz_zmtp";
}

static void rb_stir(void)
{
}

static uint32_t rb_uniform(const uint32_t upper)
{
    return upper ? rb_random() % upper : 0;
}

static void rb_buf(void *const buf, const size_t size)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)rb_random();
}

static int rb_close(void)
{
    return 0;
}

static randombytes_implementation rb = {rb_name, rb_random, rb_stir, rb_uniform, rb_buf, rb_close};

static unsigned char server_pub[32], server_sec[32], client_pub[32], client_sec[32], cookie_key[32];
static unsigned char other_pub[32], other_sec[32]; /* a key pair nobody uses */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    randombytes_set_implementation(&rb);
    if (sodium_init() < 0)
        abort();
    rng = 0x9e3779b97f4a7c15u;
    crypto_box_keypair(server_pub, server_sec);
    crypto_box_keypair(client_pub, client_sec);
    crypto_box_keypair(other_pub, other_sec);
    randombytes_buf(cookie_key, sizeof cookie_key);
    return 0;
}

/* ---- the machine and its checks ---- */

/* A send the machine makes at READY: n bytes of c. */
struct send {
    size_t n;
    unsigned c;
};

struct run {
    mpr__zmtp *z;
    const struct send *sends; /* made at READY */
    size_t nsends;
    size_t max;
    uint32_t seed;
    int drain;    /* drain the output as we go */
    int ready;    /* READY events */
    unsigned char peer_key[32]; /* READY's */
    int error;
    size_t delivered;
    unsigned char **msgs; /* copies of what was delivered */
    size_t *lens;
    size_t nmsgs, cap;
    size_t out_taken; /* output bytes drained so far (after the handshake) */
    cp_buf out;       /* output kept for the peer */
};

static size_t bound(const struct run *r)
{
    return mpr__zmtp_is_ready(r->z) ? r->max + OVERHEAD_IN : MPR__ZMTP_HANDSHAKE_MAX;
}

static void keep(struct run *r, const unsigned char *p, size_t n)
{
    if (r->nmsgs == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->msgs = realloc(r->msgs, r->cap * sizeof *r->msgs);
        r->lens = realloc(r->lens, r->cap * sizeof *r->lens);
        CHECK(r->msgs && r->lens);
    }
    unsigned char *copy = malloc(n ? n : 1);
    CHECK(copy);
    if (n)
        memcpy(copy, p, n);
    r->msgs[r->nmsgs] = copy;
    r->lens[r->nmsgs++] = n;
}

static void take_output(struct run *r)
{
    const unsigned char *o;
    size_t n = mpr__zmtp_output(r->z, &o);
    if (n) {
        cp_put(&r->out, o, n);
        mpr__zmtp_output_done(r->z, n);
    }
}

static void steps(struct run *r)
{
    mpr__zmtp_event ev;
    int rc;
    while ((rc = mpr__zmtp_step(r->z, &ev)) > 0) {
        CHECK(!r->error);
        if (ev.kind == MPR__ZMTP_READY) {
            CHECK(r->ready == 0);
            r->ready = 1;
            memcpy(r->peer_key, ev.peer_key, 32);
            CHECK(mpr__zmtp_is_ready(r->z));
            for (size_t i = 0; i < r->nsends; i++) {
                const size_t size = r->sends[i].n;
                unsigned char *m = malloc(size ? size : 1);
                CHECK(m);
                memset(m, (int)r->sends[i].c, size);
                int sent = mpr__zmtp_send(r->z, m, size);
                free(m);
                CHECK(sent == (size > r->max ? MPR_EMSGSIZE : 0));
            }
        } else {
            CHECK(ev.kind == MPR__ZMTP_MESSAGE);
            CHECK(r->ready);
            CHECK(ev.size <= r->max);
            keep(r, ev.data, ev.size); /* reads every byte: ASan checks they are the buffer's */
        }
    }
    if (rc < 0) {
        CHECK(rc == MPR_EPROTO || rc == MPR_ENOMEM);
        CHECK(!r->error || r->error == rc);
        r->error = rc;
        const char *why = mpr__zmtp_why(r->z);
        CHECK(why && why[0] && strlen(why) < 96);
        for (const char *c = why; *c; c++)
            CHECK(*c >= 0x20 && *c < 0x7f);
        CHECK(mpr__zmtp_step(r->z, &ev) == rc); /* the same error, forever */
        CHECK(!mpr__zmtp_is_ready(r->z));
        CHECK(mpr__zmtp_send(r->z, "x", 1) == MPR_ESTATE);
    }
    /* Page, input bound, and the output: handshake commands, what was
     * sent, PONGs up to their backlog (64 KiB) and one more. */
    const unsigned char *o;
    size_t pending = mpr__zmtp_output(r->z, &o);
    CHECK(mpr__zmtp_memory(r->z) <= PAGE + r->max + OVERHEAD_IN + 2 * (pending + 64 * 1024 + 4096));
    if (r->drain)
        take_output(r);
}

/* Feed bytes in pieces as a socket would deliver them. */
static void feed(struct run *r, const unsigned char *p, size_t n)
{
    while (n > 0 && !r->error) {
        unsigned char *in;
        size_t space;
        mpr__zmtp_input(r->z, &in, &space);
        CHECK(space <= bound(r));
        if (space == 0) {
            steps(r);
            if (r->error)
                break;
            mpr__zmtp_input(r->z, &in, &space);
            CHECK(space > 0); /* 0 only while a frame waits: steps() took it */
        }
        r->seed = r->seed * 1103515245u + 12345u;
        size_t piece = 1 + (r->seed >> 16) % 256;
        if (piece > n)
            piece = n;
        if (piece > space)
            piece = space;
        memcpy(in, p, piece);
        mpr__zmtp_input_done(r->z, piece);
        p += piece;
        n -= piece;
        steps(r);
    }
    if (!r->error)
        steps(r);
}

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->nmsgs; i++)
        free(r->msgs[i]);
    free(r->msgs);
    free(r->lens);
    cp_buf_free(&r->out);
    mpr__zmtp_free(r->z);
}

/* The next frame of the machine's output kept for the peer, after off. */
static int out_frame(struct run *r, size_t *off, const unsigned char **body, size_t *n)
{
    unsigned flags;
    size_t used = cp_take_frame(r->out.p + *off, r->out.len - *off, &flags, body, n);
    if (used == 0 || used == (size_t)-1)
        return 0;
    *off += used;
    return 1;
}

/* ---- the reference ---- */

/* Metadata as RFC 23 has it: is it well formed, with exactly one
 * socket-type property (name in any case) whose value is want? */
static int ref_metadata(const unsigned char *p, size_t n, const char *want)
{
    int types = 0, match = 0;
    size_t i = 0;
    while (i < n) {
        size_t nl = p[i];
        if (n - i < 1 + nl + 4)
            return 0;
        const unsigned char *name = p + i + 1;
        uint32_t vl = (uint32_t)p[i + 1 + nl] << 24 | (uint32_t)p[i + 2 + nl] << 16 |
                      (uint32_t)p[i + 3 + nl] << 8 | p[i + 4 + nl];
        i += 1 + nl + 4;
        if (vl > n - i)
            return 0;
        if (nl == 11) {
            int same = 1;
            for (size_t k = 0; k < 11; k++) {
                int c = name[k];
                if (c >= 'A' && c <= 'Z')
                    c += 'a' - 'A';
                same &= c == "socket-type"[k];
            }
            if (same) {
                types++;
                match = vl == strlen(want) && memcmp(p + i, want, vl) == 0;
            }
        }
        i += vl;
    }
    return types == 1 && match;
}

/* What a MESSAGE's plaintext (flags byte f, body) should do: 1 delivered,
 * 2 a PING answered, 0 refused. */
static int ref_message(unsigned f, const unsigned char *body, size_t n, size_t max)
{
    if (n > max || (f & 1) || (f & ~3u))
        return 0;
    if (!(f & 2))
        return 1;
    return n >= 7 && n <= 7 + 16 && body[0] == 4 && memcmp(body + 1, "PING", 4) == 0 ? 2 : 0;
}

/* ---- scripted modes ---- */

struct reader {
    const uint8_t *p;
    size_t n;
};

static int rd_byte(struct reader *rd, unsigned *v)
{
    if (rd->n == 0)
        return 0;
    *v = *rd->p++;
    rd->n--;
    return 1;
}

static size_t rd_take(struct reader *rd, size_t want, const uint8_t **out)
{
    if (want > rd->n)
        want = rd->n;
    *out = rd->p;
    rd->p += want;
    rd->n -= want;
    return want;
}

static void scripted(struct run *r, int server, struct reader *rd)
{
    cp_peer peer;
    cp_buf b = {0};
    size_t off = 0;
    const unsigned char *body;
    size_t n;
    if (server) {
        /* Our hand-made client: greeting, HELLO; the server's WELCOME. */
        cp_init(&peer, 0, client_pub, client_sec, server_pub);
        cp_greeting(&b, 3, 0, "CURVE", 0);
        cp_hello(&peer, &b);
        feed(r, b.p, b.len);
        cp_buf_free(&b);
        take_output(r);
        CHECK(!r->error && r->out.len >= 64);
        off = 64;
        CHECK(out_frame(r, &off, &body, &n));
        CHECK(cp_on_welcome(&peer, body, n) == 0);
    } else {
        /* Our hand-made server: greeting; the client's HELLO; WELCOME;
         * the client's INITIATE. */
        cp_init(&peer, 1, server_pub, server_sec, NULL);
        cp_greeting(&b, 3, 0, "CURVE", 1);
        feed(r, b.p, b.len);
        cp_buf_free(&b);
        take_output(r);
        off = 64;
        CHECK(!r->error && out_frame(r, &off, &body, &n));
        CHECK(cp_on_hello(&peer, body, n) == 0);
        cp_welcome(&peer, &b);
        feed(r, b.p, b.len);
        cp_buf_free(&b);
        take_output(r);
        CHECK(!r->error && out_frame(r, &off, &body, &n));
        CHECK(cp_on_initiate(&peer, body, n) == 0);
        CHECK(memcmp(peer.peer_pub, client_pub, 32) == 0);
        CHECK(cp_metadata_has_type(peer.metadata, peer.metadata_len, "DEALER"));
    }

    /* The last step of the handshake (INITIATE or READY): honest, or with
     * the script's metadata ('I'/'R'), or forged ('V'). */
    unsigned op = 0, len = 0, how = 0, where = 0;
    const char *want = server ? "DEALER" : "ROUTER";
    int expect_ready = 1;
    cp_buf md = {0};
    if (rd->n > 0 && (rd->p[0] == 'I' || rd->p[0] == 'R')) {
        const uint8_t *m;
        rd_byte(rd, &op);
        rd_byte(rd, &len);
        size_t k = rd_take(rd, len, &m);
        cp_put(&md, m, k);
        expect_ready = ref_metadata(md.p, md.len, want);
    } else {
        cp_property(&md, "Socket-Type", want, 6);
    }
    if (rd->n > 0 && rd->p[0] == 'V') {
        rd_byte(rd, &op);
        rd_byte(rd, &how);
        rd_byte(rd, &where);
        how &= server ? 0x1f : 0x10; /* a server's READY has no vouch */
        /* Another key that vouches for itself is an honest client (with
         * another identity); one of the two alone is a forgery. */
        const int forged = (how & 3) == 1 || (how & 3) == 2 || (how & 0x1c);
        expect_ready = expect_ready && !forged;
    }
    static const unsigned char junk[32] = "not the key anyone vouched for";
    if (server) {
        cp_initiate_opts o = {0};
        o.metadata = md.p;
        o.metadata_len = md.len;
        o.use_metadata = 1;
        o.vouch_sec = how & 1 ? other_sec : NULL;     /* a vouch C did not make */
        o.claimed_pub = how & 2 ? other_pub : NULL;   /* C is someone else's */
        o.vouch_cn = how & 4 ? junk : NULL;           /* for another C' */
        o.vouch_server = how & 8 ? junk : NULL;       /* for another server */
        cp_initiate(&peer, &b, &o);
    } else {
        cp_ready(&peer, &b, md.p ? md.p : (const unsigned char *)"", md.len);
    }
    cp_buf_free(&md);
    if (how & 0x10) { /* one bit of the command's body changed on its way */
        const size_t hdr = b.p[0] & CP_F_LONG ? 9 : 2;
        b.p[hdr + where % (b.len - hdr)] ^= 1;
    }

    /* The script, sent right behind it (as libzmq sends its first
     * messages): its frames, and the sends the machine makes at READY. */
    struct send sends[64];
    size_t nsends = 0;
    unsigned char pings[1024][16], pongs[1024][16];
    size_t ping_len[1024], nping = 0, pong_len[1024], npongs = 0;
    const uint8_t *expect_body[1024];
    size_t expect_len[1024], expect_msgs = 0; /* what the reference says is taken */
    int known = 1;          /* the reference still knows what must happen */
    int refused = 0;        /* ... and an op must have been refused */
    uint64_t last_peer_sent = peer.nonce - 1; /* the last nonce taken */
    while (rd_byte(rd, &op)) {
        unsigned f = 0, hi = 0, lo = 0, d = 0;
        const uint8_t *bytes;
        switch (op) {
        case 'M': {
            rd_byte(rd, &f);
            rd_byte(rd, &hi);
            rd_byte(rd, &lo);
            rd_byte(rd, &d);
            size_t want_n = rd_take(rd, hi << 8 | lo, &bytes);
            uint64_t nonce = d == 0 ? peer.nonce - 1 : d == 1 ? peer.nonce : peer.nonce + d * 1000003u;
            peer.nonce = nonce;
            cp_message(&peer, &b, f, bytes, want_n);
            if (known && !refused) {
                if (nonce <= last_peer_sent) {
                    refused = 1;
                } else {
                    int what = ref_message(f, bytes, want_n, r->max);
                    if (what == 0) {
                        refused = 1;
                    } else if (what == 1) {
                        CHECK(expect_msgs < 1024);
                        expect_body[expect_msgs] = bytes;
                        expect_len[expect_msgs++] = want_n;
                        last_peer_sent = nonce;
                    } else { /* a PING: its PONG is decided below */
                        CHECK(nping < 1024);
                        ping_len[nping] = want_n - 7;
                        memcpy(pings[nping++], bytes + 7, want_n - 7);
                        last_peer_sent = nonce;
                    }
                }
            }
            break;
        }
        case 'S': {
            unsigned c = 0;
            rd_byte(rd, &hi);
            rd_byte(rd, &lo);
            rd_byte(rd, &c);
            if (nsends < 64) {
                sends[nsends].n = hi << 8 | lo;
                sends[nsends++].c = c;
            }
            break;
        }
        case 'F': {
            rd_byte(rd, &f);
            rd_byte(rd, &len);
            size_t k = rd_take(rd, len, &bytes);
            cp_frame(&b, f, bytes, k);
            known = 0;
            break;
        }
        case 'H': {
            rd_byte(rd, &f);
            uint64_t size = 0;
            for (int i = 0; i < 8; i++) {
                unsigned v = 0;
                rd_byte(rd, &v);
                size = size << 8 | v;
            }
            cp_long_header(&b, f, size);
            known = 0;
            break;
        }
        default: { /* 'X' and anything else: raw bytes */
            rd_byte(rd, &len);
            size_t k = rd_take(rd, len, &bytes);
            cp_put(&b, bytes, k);
            known = 0;
            break;
        }
        }
    }
    r->sends = sends;
    r->nsends = nsends;
    feed(r, b.p, b.len);
    cp_buf_free(&b);
    take_output(r);
    CHECK(r->ready == expect_ready);
    if (!expect_ready) {
        CHECK(r->error && r->nmsgs == 0);
        return;
    }
    if (server) /* whose key the server says it talked to */
        CHECK(memcmp(r->peer_key, (how & 3) == 3 ? other_pub : client_pub, 32) == 0);
    else
        CHECK(memcmp(r->peer_key, server_pub, 32) == 0);

    /* What the machine wrote: READY (server), then the sends made at
     * READY, then the PONGs, each a MESSAGE the hand-made peer opens.
     * The sends were made before any of the script was taken: each PING
     * is answered unless 64 KiB of output waited then. */
    size_t pending = server ? 2 + 52 : 0;
    if (server) {
        CHECK(out_frame(r, &off, &body, &n) && cp_on_ready(&peer, body, n) == 0);
        CHECK(cp_metadata_has_type(peer.metadata, peer.metadata_len, "ROUTER"));
        CHECK(off == 64 + 2 + 168 + 2 + 52);
    }
    size_t nsent = 0; /* the sends the machine took */
    for (size_t i = 0; i < nsends; i++) {
        if (sends[i].n <= r->max) {
            pending += (33 + sends[i].n <= 255 ? 2 : 9) + 33 + sends[i].n;
            nsent++;
        }
    }
    for (size_t i = 0; i < nping; i++) {
        if (pending > 64 * 1024)
            continue;
        pong_len[npongs] = ping_len[i];
        memcpy(pongs[npongs++], pings[i], ping_len[i]);
        pending += 2 + 33 + 5 + ping_len[i];
    }
    if (known) {
        CHECK(r->nmsgs == expect_msgs);
        for (size_t i = 0; i < expect_msgs; i++)
            CHECK(r->lens[i] == expect_len[i] && memcmp(r->msgs[i], expect_body[i], expect_len[i]) == 0);
        CHECK(!!r->error == refused);
    }
    if (!r->error || known) {
        size_t i = 0, k = 0;
        unsigned char *plain = malloc(r->max > 65536 ? r->max + 64 : 65536 + 64);
        CHECK(plain);
        while (out_frame(r, &off, &body, &n)) {
            unsigned mf;
            size_t plen;
            CHECK(cp_open(&peer, body, n, &mf, plain, &plen) == 0);
            while (i < nsends && sends[i].n > r->max)
                i++;
            if (i < nsends) {
                CHECK(mf == 0 && plen == sends[i].n);
                for (size_t j = 0; j < plen; j++)
                    CHECK(plain[j] == sends[i].c);
                i++;
            } else if (known) {
                CHECK(k < npongs);
                CHECK(mf == 2 && plen == 5 + pong_len[k] && memcmp(plain, "\x04PONG", 5) == 0 &&
                      memcmp(plain + 5, pongs[k], pong_len[k]) == 0);
                k++;
            } else {
                CHECK(mf == 2 && plen >= 5 && memcmp(plain, "\x04PONG", 5) == 0);
            }
        }
        CHECK(off == r->out.len);
        while (i < nsends && sends[i].n > r->max)
            i++;
        CHECK(i == nsends);
        if (known)
            CHECK(k == npongs);
        free(plain);
    }
    (void)nsent;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    rng = 0x2545f4914f6cdd1du ^ (uint64_t)data[1] << 32 ^ size;
    const int mode = data[0] & 3;
    struct run r = {0};
    r.max = max_sizes[(data[0] >> 2) & 7];
    r.drain = !(data[0] & 0x20);
    r.seed = data[1] * 2654435761u + 1;
    mpr__zmtp_config cfg = {0};
    cfg.role = mode == 0 || mode == 2 ? MPR__ZMTP_SERVER : MPR__ZMTP_CLIENT;
    cfg.public_key = cfg.role == MPR__ZMTP_SERVER ? server_pub : client_pub;
    cfg.secret_key = cfg.role == MPR__ZMTP_SERVER ? server_sec : client_sec;
    cfg.server_key = cfg.role == MPR__ZMTP_CLIENT ? server_pub : NULL;
    cfg.cookie_key = cfg.role == MPR__ZMTP_SERVER ? cookie_key : NULL;
    cfg.max_message = r.max;
    CHECK(mpr__zmtp_new(&r.z, &cfg) == 0);
    struct reader rd = {data + 2, size - 2};
    char text[42];
    const size_t tn = rd.n < 41 ? rd.n : 41;
    memcpy(text, rd.p, tn);
    text[tn] = '\0';
    unsigned char key[32];
    if (mpr__z85_decode(key, text) == 0) {
        char back[41];
        mpr__z85_encode(back, key);
        CHECK(strlen(text) == 40 && strcmp(back, text) == 0);
    } else {
        for (int i = 0; i < 32; i++)
            CHECK(key[i] == 0);
    }
    if (mode < 2) {
        feed(&r, rd.p, rd.n);
        /* Bounded by construction: the output holds our greeting and at
         * most the handshake's answers. */
        const unsigned char *o;
        CHECK(mpr__zmtp_output(r.z, &o) <= 64 + 2 + 168 + 2 + 52 + 9 + 279 + 1024);
    } else {
        r.drain = 0; /* the peer reads all output itself */
        scripted(&r, mode == 2, &rd);
    }
    run_free(&r);
    return 0;
}
