/* probe_event.c - (e) unnamed auto-reset events across processes, as the
 * "wait for room" of a ring writer.
 *
 * The server makes two unnamed auto-reset events, "room" and "data", and
 * a 64 KiB section holding a ring; it duplicates all three into the client
 * (this program started again) with DuplicateHandle into the child's
 * process handle, the events with SYNCHRONIZE | EVENT_MODIFY_STATE only,
 * and writes their values into the client's standard input. Checked:
 *  - WaitForSingleObject(room, 200) in the client times out (WAIT_TIMEOUT)
 *    after about 200 ms;
 *  - SetEvent(room) in the server wakes the client's infinite wait, and
 *    how long that takes;
 *  - auto-reset: two SetEvent before a wait give one wake;
 *  - 1000 ping-pongs (server SetEvent(room), client waits room, sets data,
 *    server waits data): the median round trip;
 *  - a ring: the client writes 200000 messages of 32 bytes into a 16 KiB
 *    ring in the section; when full it sets a "writer waits" flag and waits
 *    for room (with a 100 ms timeout as a guard against a lost wake-up,
 *    counted), the server reads, checks the sequence and signals room when
 *    the flag was set; the same the other way for "data".
 *
 * What wine 8.0 answered: 8 checks, 0 failed.
 *  DuplicateHandle into the child with SYNCHRONIZE|EVENT_MODIFY_STATE:
 *    works; WaitForSingleObject(room, 200): WAIT_TIMEOUT (258) after
 *    200.6 ms; SetEvent in the server woke the client (100.9 ms for a
 *    100 ms sleep); two SetEvent then two waits: WAIT_OBJECT_0, then
 *    WAIT_TIMEOUT; event ping-pong round trip: median 47 us; the ring:
 *    200000 messages in order, the writer waited for room 11 times, none
 *    ended by the 100 ms guard (no lost wake-up).
 */
#include "probe.h"
#include <stdatomic.h>

#define RING 16384
#define MSG 32
#define NMSG 200000

struct ring {
    _Atomic unsigned long long head; /* bytes written */
    _Atomic unsigned long long tail; /* bytes read */
    _Atomic int writer_waits;
    _Atomic int reader_waits;
    char pad[64];
    unsigned char data[RING];
};

static int client_main(void)
{
    char line[256];
    unsigned long long hr, hd, hs;
    if (stdin_line(line, sizeof line) < 0 || sscanf(line, "%llu %llu %llu", &hr, &hd, &hs) != 3)
        return 90;
    HANDLE room = (HANDLE)(ULONG_PTR)hr, data = (HANDLE)(ULONG_PTR)hd, sec = (HANDLE)(ULONG_PTR)hs;

    double t0 = now_ms();
    DWORD w = WaitForSingleObject(room, 200);
    stdout_line("timeout %lu %.1f", w, now_ms() - t0);

    /* woken by the server */
    stdout_line("waiting");
    t0 = now_ms();
    w = WaitForSingleObject(room, 10000);
    stdout_line("woken %lu %.3f", w, now_ms() - t0);

    /* auto-reset: the server set room twice before this line */
    stdin_line(line, sizeof line);
    DWORD w1 = WaitForSingleObject(room, 0), w2 = WaitForSingleObject(room, 0);
    stdout_line("twice %lu %lu", w1, w2);

    /* ping-pong */
    for (int i = 0; i < 1000; i++) {
        if (WaitForSingleObject(room, 10000) != WAIT_OBJECT_0)
            return 93;
        SetEvent(data);
    }

    /* the ring writer */
    struct ring *r = MapViewOfFile(sec, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    if (!r)
        return 94;
    unsigned long long waits = 0, guard_timeouts = 0;
    unsigned char msg[MSG];
    memset(msg, 'm', sizeof msg);
    t0 = now_ms();
    for (unsigned long long seq = 0; seq < NMSG; seq++) {
        memcpy(msg, &seq, sizeof seq);
        for (;;) {
            unsigned long long head = atomic_load(&r->head), tail = atomic_load(&r->tail);
            if (head - tail + MSG <= RING)
                break;
            atomic_store(&r->writer_waits, 1);
            tail = atomic_load(&r->tail);
            if (head - tail + MSG <= RING) {
                atomic_store(&r->writer_waits, 0);
                break;
            }
            waits++;
            if (WaitForSingleObject(room, 100) == WAIT_TIMEOUT)
                guard_timeouts++;
        }
        unsigned long long head = atomic_load(&r->head);
        memcpy(r->data + head % RING, msg, MSG); /* RING % MSG == 0: no wrap inside */
        atomic_store(&r->head, head + MSG);
        if (atomic_exchange(&r->reader_waits, 0))
            SetEvent(data);
    }
    stdout_line("ring %llu %llu %.1f", waits, guard_timeouts, now_ms() - t0);
    UnmapViewOfFile(r);
    return 0;
}

static HANDLE give(HANDLE child, HANDLE h, DWORD access)
{
    HANDLE out = NULL;
    if (!DuplicateHandle(GetCurrentProcess(), h, child, &out, access, FALSE, access ? 0 : DUPLICATE_SAME_ACCESS))
        return NULL;
    return out;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "client"))
        return client_main();
    printf("probe_event: (e) unnamed auto-reset events across processes\n");

    HANDLE room = CreateEventA(NULL, FALSE, FALSE, NULL);
    HANDLE data = CreateEventA(NULL, FALSE, FALSE, NULL);
    HANDLE sec = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, sizeof(struct ring), NULL);
    struct ring *r = sec ? MapViewOfFile(sec, FILE_MAP_ALL_ACCESS, 0, 0, 0) : NULL;
    if (!check(room && data && r, "two unnamed auto-reset events and a section"))
        return probe_end("probe_event");
    child_t c;
    if (!check(spawn_self(&c, "client", NULL, 1) == 0, "client started"))
        return probe_end("probe_event");
    HANDLE rr = give(c.pi.hProcess, room, SYNCHRONIZE | EVENT_MODIFY_STATE);
    HANDLE rd = give(c.pi.hProcess, data, SYNCHRONIZE | EVENT_MODIFY_STATE);
    HANDLE rs = give(c.pi.hProcess, sec, 0);
    if (!check(rr && rd && rs, "DuplicateHandle of both events (SYNCHRONIZE|EVENT_MODIFY_STATE) and the section into the client"))
        return probe_end("probe_event");
    char line[256];
    snprintf(line, sizeof line, "%llu %llu %llu\n", (unsigned long long)(ULONG_PTR)rr,
             (unsigned long long)(ULONG_PTR)rd, (unsigned long long)(ULONG_PTR)rs);
    child_say(&c, line);

    unsigned long w;
    double ms;
    if (read_line(c.out, line, sizeof line) >= 0 && sscanf(line, "timeout %lu %lf", &w, &ms) == 2)
        check(w == WAIT_TIMEOUT && ms >= 190 && ms < 1000, "client WaitForSingleObject(room, 200): %s after %.1f ms",
              err_str(w), ms);
    read_line(c.out, line, sizeof line); /* "waiting" */
    Sleep(100);
    SetEvent(room);
    if (read_line(c.out, line, sizeof line) >= 0 && sscanf(line, "woken %lu %lf", &w, &ms) == 2)
        check(w == WAIT_OBJECT_0, "SetEvent in the server wakes the client: WAIT_OBJECT_0 = %lu, after %.1f ms (server set it after 100)",
              w, ms);
    SetEvent(room);
    SetEvent(room);
    child_say(&c, "go\n");
    unsigned long w1, w2;
    if (read_line(c.out, line, sizeof line) >= 0 && sscanf(line, "twice %lu %lu", &w1, &w2) == 2)
        check(w1 == WAIT_OBJECT_0 && w2 == WAIT_TIMEOUT, "auto-reset: two SetEvent, then two waits: %lu, %lu", w1, w2);

    double rt[1000];
    for (int i = 0; i < 1000; i++) {
        double t0 = now_ms();
        SetEvent(room);
        if (WaitForSingleObject(data, 10000) != WAIT_OBJECT_0) {
            check(0, "ping-pong %d: no answer", i);
            break;
        }
        rt[i] = now_ms() - t0;
    }
    note("1000 event ping-pongs between the processes: median round trip %.1f us", median(rt, 1000) * 1000);

    /* the ring reader */
    unsigned long long expect_seq = 0, reader_waits = 0, bad = 0;
    double t0 = now_ms();
    while (expect_seq < NMSG && now_ms() - t0 < 60000) {
        unsigned long long head = atomic_load(&r->head), tail = atomic_load(&r->tail);
        if (head == tail) {
            atomic_store(&r->reader_waits, 1);
            if (atomic_load(&r->head) == tail) {
                reader_waits++;
                WaitForSingleObject(data, 100);
            }
            atomic_store(&r->reader_waits, 0);
            continue;
        }
        while (tail < head) {
            unsigned long long seq;
            memcpy(&seq, r->data + tail % RING, sizeof seq);
            if (seq != expect_seq)
                bad++;
            expect_seq++;
            tail += MSG;
        }
        atomic_store(&r->tail, tail);
        if (atomic_exchange(&r->writer_waits, 0))
            SetEvent(room);
    }
    double dt = now_ms() - t0;
    unsigned long long waits = 0, guards = 0;
    double cms = 0;
    if (read_line(c.out, line, sizeof line) >= 0 && sscanf(line, "ring %llu %llu %lf", &waits, &guards, &cms) == 3)
        check(expect_seq == NMSG && bad == 0,
              "ring: %llu messages of 32 bytes in order through a 16 KiB ring in %.0f ms; writer waited for room %llu times "
              "(%llu ended by the 100 ms guard), reader waited %llu times",
              expect_seq, dt, waits, guards, reader_waits);
    else
        check(0, "ring: no report from the writer (%llu messages read)", expect_seq);
    DWORD code = child_wait(&c, 10000);
    check(code == 0, "client exited (%lu)", code);
    child_close(&c);
    return probe_end("probe_event");
}
