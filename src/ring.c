/*
 * ring.c - the ring of records (see ring.h): the writer's and the
 * reader's side, and their wake-ups.
 */
#include "ring.h"

#include "base.h"

#define WAIT_SLICE_NS (50 * 1000000) /* a writer waiting for room re-checks this often */

/* ---- the shared words, as the reader sees them ---- */

#if MPR__SHM_WINDOW
#define WINDOW(ring) ((ring)->window != NULL)

static uint64_t win_u64(mpr__ring *ring, unsigned off)
{
    unsigned char b[8] = {0};
    mpr__shm_read(ring->shm, off, b, sizeof b);
    return mpr__get_u64(b);
}

static uint32_t win_u32(mpr__ring *ring, unsigned off)
{
    unsigned char b[4] = {0};
    mpr__shm_read(ring->shm, off, b, sizeof b);
    return mpr__get_u32(b);
}

static void win_put_u32(mpr__ring *ring, unsigned off, uint32_t v)
{
    unsigned char b[4];
    mpr__put_u32(b, v);
    mpr__shm_write(ring->shm, off, b, sizeof b);
    atomic_thread_fence(memory_order_seq_cst); /* the store before any later load */
}

/* head, read until two reads agree (ring.h). */
static uint64_t win_head(mpr__ring *ring)
{
    uint64_t a = win_u64(ring, MPR__RING_OFF_HEAD), b;
    while ((b = win_u64(ring, MPR__RING_OFF_HEAD)) != a)
        a = b;
    return a;
}
#endif

static uint64_t reader_head(mpr__ring *ring)
{
#if MPR__SHM_WINDOW
    if (WINDOW(ring))
        return win_head(ring);
#endif
    return atomic_load_explicit(&ring->hdr->head, memory_order_acquire);
}

/* The reader's flags: 0 or 1. */
static void reader_set(mpr__ring *ring, _Atomic uint32_t *word, unsigned off, uint32_t v)
{
#if MPR__SHM_WINDOW
    if (WINDOW(ring)) {
        win_put_u32(ring, off, v);
        return;
    }
#endif
    (void)ring;
    (void)off;
    atomic_store(word, v);
}

static uint32_t reader_get(mpr__ring *ring, _Atomic uint32_t *word, unsigned off)
{
#if MPR__SHM_WINDOW
    if (WINDOW(ring))
        return win_u32(ring, off);
#endif
    (void)ring;
    (void)off;
    return atomic_load(word);
}

#if MPR__SHM_WINDOW
#define FIELD(ring, name) ((ring)->hdr ? &(ring)->hdr->name : NULL)
#else
#define FIELD(ring, name) (&(ring)->hdr->name)
#endif

/* ---- wake-ups ---- */

/* Wake the reader if it sleeps on this ring. */
static int wake_reader(mpr__ring *ring)
{
    if (!atomic_exchange(&ring->hdr->reader_sleeping, 0))
        return 0;
    if (ring->kind == MPR__RING_PRIVATE) {
        mpr__event_set(ring->reader_event);
        return 0;
    }
    long n = mpr__stream_send_some(ring->conn, "w", 1);
    /* MPR_EAGAIN: the connection is full of wake-ups the reader has yet
     * to read. */
    return n < 0 && n != MPR_EAGAIN ? MPR_EPIPE : 0;
}

/* True if the reader closed the ring (or, local, the connection). */
static int reader_gone(mpr__ring *ring)
{
    if (atomic_load(&ring->hdr->closed))
        return 1;
    return ring->kind == MPR__RING_LOCAL && mpr__stream_peer_gone(ring->conn);
}

/* Sleep until the reader made room (tail_seq moved from seq) or a slice
 * passed. */
static void sleep_for_room(mpr__ring *ring, uint32_t seq)
{
#if MPR__HAVE_FUTEX
    mpr__futex_wait(&ring->hdr->tail_seq, seq, WAIT_SLICE_NS);
#else
    (void)seq;
    if (ring->kind == MPR__RING_PRIVATE) {
        mpr__waitfd w = {mpr__event_fd(ring->room_event), MPR__WAIT_IN, 0};
        if (mpr__wait(&w, 1, WAIT_SLICE_NS / 1000000) > 0)
            mpr__event_clear(ring->room_event);
        return;
    }
    /* A ROOM item from the reader on the connection, read by its owner
     * with whatever else came on the way back. */
    ring->wait_conn(ring->conn_arg, WAIT_SLICE_NS / 1000000);
#endif
}

/* The reader made room: wake a writer that waits for it. */
static void wake_writer(mpr__ring *ring)
{
    if (!reader_get(ring, FIELD(ring, writer_waiting), MPR__RING_OFF_WAITING))
        return;
    reader_set(ring, FIELD(ring, writer_waiting), MPR__RING_OFF_WAITING, 0);
#if MPR__HAVE_FUTEX
    atomic_fetch_add(&ring->hdr->tail_seq, 1);
    mpr__futex_wake(&ring->hdr->tail_seq);
#else
    if (ring->kind == MPR__RING_PRIVATE)
        mpr__event_set(ring->room_event);
    else
        ring->wake_conn(ring->conn_arg);
#endif
}

/* ---- writer ---- */

static void init_view(mpr__ring *ring, void *base, uint64_t cap, int kind)
{
    ring->hdr = base;
    ring->data = base ? (unsigned char *)base + MPR__RING_HDR : NULL;
    ring->cap = cap;
    ring->map_size = MPR__RING_HDR + cap;
    ring->kind = kind;
    ring->pos = 0;
}

int mpr__ring_create(mpr__ring *ring, uint64_t cap, mpr__fd conn, mpr__fd *handle)
{
    memset(ring, 0, sizeof *ring);
    void *base;
    int rc = mpr__shm_create(MPR__RING_HDR + cap, handle, &base);
    if (rc < 0)
        return rc;
    init_view(ring, base, cap, MPR__RING_LOCAL);
    ring->conn = conn;
    return 0;
}

int mpr__ring_create_private(mpr__ring *ring, uint64_t cap, mpr__event *reader_event,
                             mpr__event *room_event)
{
    memset(ring, 0, sizeof *ring);
    void *base;
    int rc = mpr__shm_private(MPR__RING_HDR + cap, &base);
    if (rc < 0)
        return rc;
    init_view(ring, base, cap, MPR__RING_PRIVATE);
    ring->reader_event = reader_event;
    ring->room_event = room_event;
    atomic_store(&ring->hdr->reader_sleeping, 1);
    return 0;
}

/* The reader's position as the writer may trust it: tail, when tail_again
 * agrees (ring.h: a reader writing through a window may be caught half-way
 * through either; then the older position stands). */
static uint64_t writer_tail(mpr__ring *ring, uint64_t known)
{
    uint64_t again = atomic_load_explicit(&ring->hdr->tail_again, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&ring->hdr->tail, memory_order_acquire);
    return tail == again && tail - known <= ring->cap ? tail : known;
}

/* Wait until need bytes are free at head. */
static int wait_room(mpr__ring *ring, uint64_t need)
{
    mpr__ring_hdr *h = ring->hdr;
    uint64_t tail = ring->pos - ring->cap; /* at worst: full */
    if (ring->pos < ring->cap)
        tail = 0;
    for (;;) {
        tail = writer_tail(ring, tail);
        uint64_t used = ring->pos - tail;
        if (used > ring->cap)
            return MPR_EPIPE; /* the reader wrote nonsense: treat it as gone */
        if (ring->cap - used >= need)
            return 0;
        uint32_t seq = atomic_load(&h->tail_seq);
        atomic_store(&h->writer_waiting, 1);
        tail = writer_tail(ring, tail);
        if (ring->cap - (ring->pos - tail) >= need)
            continue;
        if (wake_reader(ring) < 0 || reader_gone(ring))
            return MPR_EPIPE;
        sleep_for_room(ring, seq);
    }
}

static int publish(mpr__ring *ring)
{
    /* seq_cst store then load: the store cannot pass the load (Dekker
     * with mpr__ring_try_sleep). */
    atomic_store(&ring->hdr->head, ring->pos);
    if (atomic_load(&ring->hdr->reader_sleeping))
        return wake_reader(ring);
    return 0;
}

static void put_header(unsigned char *at, uint32_t type, uint32_t len)
{
    mpr__put_u32(at, type);
    mpr__put_u32(at + 4, len);
}

int mpr__ring_put(mpr__ring *ring, uint32_t type, const void *data, uint32_t len)
{
    /* The reader marks the ring closed when it drops the connection. A
     * reader that died without doing so is noticed at the next wake-up or
     * wait for room, like a socket peer. */
    if (atomic_load_explicit(&ring->hdr->closed, memory_order_relaxed))
        return MPR_EPIPE;
    uint64_t size = mpr__ring_rec_size(len);
    MPR__ASSERT(size <= ring->cap / 4);
    uint64_t at = ring->pos & (ring->cap - 1);
    if (ring->cap - at < size) {
        /* No room before the end: pad to it and start over at 0. */
        uint64_t pad = ring->cap - at;
        int rc = wait_room(ring, pad);
        if (rc < 0)
            return rc;
        put_header(ring->data + at, MPR__RING_PAD, 0);
        ring->pos += pad;
        at = 0;
    }
    int rc = wait_room(ring, size);
    if (rc < 0)
        return rc;
    put_header(ring->data + at, type, len);
    if (len)
        memcpy(ring->data + at + 8, data, len);
    ring->pos += size;
    return publish(ring);
}

int mpr__ring_put_message(mpr__ring *ring, const void *data, size_t size)
{
    uint32_t piece = (uint32_t)(ring->cap / 4 - 8);
    if (size <= piece)
        return mpr__ring_put(ring, MPR__RING_MSG, data, (uint32_t)size);
    unsigned char total[8];
    mpr__put_u64(total, (uint64_t)size);
    int rc = mpr__ring_put(ring, MPR__RING_FRAG_START, total, sizeof total);
    const unsigned char *p = data;
    for (size_t done = 0; rc == 0 && done < size; done += piece) {
        size_t n = size - done < piece ? size - done : piece;
        rc = mpr__ring_put(ring, MPR__RING_FRAG_DATA, p + done, (uint32_t)n);
    }
    return rc;
}

int mpr__ring_cancel_tag(const mpr__ring *ring, uint64_t *tag)
{
    uint64_t again = atomic_load_explicit(&ring->hdr->cancel_again, memory_order_acquire);
    uint64_t first = atomic_load_explicit(&ring->hdr->cancel_tag, memory_order_acquire);
    if (first != again)
        return 0;
    *tag = first;
    return 1;
}

/* ---- reader ---- */

int mpr__ring_map(mpr__ring *ring, mpr__fd handle, mpr__fd conn, unsigned char *window,
                  size_t window_size)
{
    memset(ring, 0, sizeof *ring);
#if MPR__SHM_WINDOW
    /* Read through the window: a ring whose records fit it. */
    long size = mpr__shm_size(handle);
    uint64_t cap = size > 0 ? (uint64_t)size - MPR__RING_HDR : 0;
    if (size < (long)(MPR__RING_HDR + MPR__RING_MIN) || cap > MPR__RING_MAX || (cap & (cap - 1)) ||
        cap / 4 > window_size) {
        mpr__fd_close(handle);
        return MPR_EPROTO;
    }
    init_view(ring, NULL, cap, MPR__RING_LOCAL);
    ring->shm = handle;
    ring->window = window;
    ring->window_size = window_size;
    ring->conn = conn;
    if (win_head(ring) != 0 || win_u64(ring, MPR__RING_OFF_TAIL) != 0) {
        mpr__fd_close(handle);
        memset(ring, 0, sizeof *ring);
        return MPR_EPROTO;
    }
    win_put_u32(ring, MPR__RING_OFF_SLEEPING, 1);
    return 0;
#else
    (void)window;
    (void)window_size;
    void *base;
    size_t size;
    int rc = mpr__shm_map(handle, MPR__RING_HDR + MPR__RING_MIN, MPR__RING_HDR + MPR__RING_MAX,
                          &base, &size);
    mpr__fd_close(handle);
    if (rc < 0)
        return MPR_EPROTO;
    uint64_t cap = size - MPR__RING_HDR;
    mpr__ring_hdr *h = base;
    if ((cap & (cap - 1)) || atomic_load(&h->tail) != 0 || atomic_load(&h->head) != 0) {
        mpr__shm_unmap(base, size);
        return MPR_EPROTO;
    }
    init_view(ring, base, cap, MPR__RING_LOCAL);
    ring->conn = conn;
    atomic_store(&h->reader_sleeping, 1);
    return 0;
#endif
}

void mpr__ring_reader_of(mpr__ring *reader, const mpr__ring *writer)
{
    *reader = *writer; /* the same memory; the positions apart */
    reader->pos = 0;
}

#if MPR__SHM_WINDOW
/* The record at the reader's position, read through the window. */
static int win_next(mpr__ring *ring, uint64_t head, mpr__ring_rec *rec)
{
    uint64_t avail = head - ring->pos;
    if (avail == 0)
        return 0;
    if (avail > ring->cap || (avail & 7u) != 0)
        return MPR_EPROTO;
    uint64_t off = ring->pos & (ring->cap - 1), contiguous = ring->cap - off;
    unsigned char *w = ring->window;
    if (mpr__shm_read(ring->shm, MPR__RING_HDR + off, w, 8) < 0)
        return MPR_EPROTO;
    if (mpr__get_u32(w) == MPR__RING_PAD) {
        if (contiguous > avail)
            return MPR_EPROTO;
        rec->type = MPR__RING_PAD;
        rec->len = 0;
        rec->total = 0;
        rec->payload = NULL;
        rec->size = contiguous;
        return 1;
    }
    uint64_t size = mpr__ring_rec_size(mpr__get_u32(w + 4));
    if (size > contiguous || size > avail || size > ring->window_size)
        return MPR_EPROTO;
    if (size > 8 && mpr__shm_read(ring->shm, MPR__RING_HDR + off + 8, w + 8, size - 8) < 0)
        return MPR_EPROTO;
    return mpr__record_next(w, size, rec);
}
#endif

int mpr__ring_peek(mpr__ring *ring, mpr__ring_rec *rec)
{
    for (;;) {
        uint64_t head = reader_head(ring);
        int rc;
#if MPR__SHM_WINDOW
        if (WINDOW(ring))
            rc = win_next(ring, head, rec);
        else
#endif
            rc = mpr__ring_next(ring->data, ring->cap, ring->pos, head, rec);
        if (rc <= 0 || rec->type != MPR__RING_PAD)
            return rc;
        ring->pos += rec->size;
    }
}

int mpr__ring_try_sleep(mpr__ring *ring)
{
    reader_set(ring, FIELD(ring, reader_sleeping), MPR__RING_OFF_SLEEPING, 1);
    if (reader_head(ring) == ring->pos)
        return 1;
    reader_set(ring, FIELD(ring, reader_sleeping), MPR__RING_OFF_SLEEPING, 0);
    return 0;
}

void mpr__ring_consumed(mpr__ring *ring)
{
#if MPR__SHM_WINDOW
    if (WINDOW(ring)) {
        unsigned char b[8];
        mpr__put_u64(b, ring->pos);
        mpr__shm_write(ring->shm, MPR__RING_OFF_TAIL, b, 8);
        mpr__shm_write(ring->shm, MPR__RING_OFF_TAIL_AGAIN, b, 8);
        atomic_thread_fence(memory_order_seq_cst);
        wake_writer(ring);
        return;
    }
#endif
    atomic_store(&ring->hdr->tail, ring->pos);
    atomic_store(&ring->hdr->tail_again, ring->pos);
    wake_writer(ring);
}

uint64_t mpr__ring_head(const mpr__ring *ring)
{
    return reader_head((mpr__ring *)ring);
}

void mpr__ring_close(mpr__ring *ring)
{
    reader_set(ring, FIELD(ring, closed), MPR__RING_OFF_CLOSED, 1);
#if MPR__HAVE_FUTEX
    atomic_fetch_add(&ring->hdr->tail_seq, 1);
    mpr__futex_wake(&ring->hdr->tail_seq);
#else
    if (ring->kind == MPR__RING_PRIVATE)
        mpr__event_set(ring->room_event);
    else
        ring->wake_conn(ring->conn_arg);
#endif
}

void mpr__ring_set_cancel(mpr__ring *ring, uint64_t tag)
{
#if MPR__SHM_WINDOW
    if (WINDOW(ring)) {
        unsigned char b[8];
        mpr__put_u64(b, tag);
        mpr__shm_write(ring->shm, MPR__RING_OFF_CANCEL, b, 8);
        mpr__shm_write(ring->shm, MPR__RING_OFF_CANCEL_AGAIN, b, 8);
        return;
    }
#endif
    if (!ring->hdr)
        return;
    atomic_store_explicit(&ring->hdr->cancel_tag, tag, memory_order_release);
    atomic_store_explicit(&ring->hdr->cancel_again, tag, memory_order_release);
}

void mpr__ring_unmap(mpr__ring *ring, int closing)
{
#if MPR__SHM_WINDOW
    if (WINDOW(ring)) {
        if (closing)
            mpr__ring_close(ring);
        mpr__fd_close(ring->shm);
        memset(ring, 0, sizeof *ring);
        return;
    }
#endif
    if (!ring->hdr)
        return;
    if (closing)
        mpr__ring_close(ring);
    mpr__shm_unmap(ring->hdr, ring->map_size);
    memset(ring, 0, sizeof *ring);
}
