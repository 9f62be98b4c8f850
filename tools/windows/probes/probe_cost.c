/* probe_cost.c - (i) what starting a worker and moving small messages cost
 * under wine:
 *  - this program starting itself again with CreateProcess ("exit" mode:
 *    returns at once), 20 times, from CreateProcess to the process handle
 *    signalled: the median (plain CreateProcess, and through spawn_self:
 *    STARTUPINFOEX, handle list, a stdin pipe);
 *  - a child writing 32-byte messages for 1 s, one WriteFile each, into a
 *    named pipe the parent reads with 64 KiB reads; the same with 128
 *    messages (4 KiB) per WriteFile;
 *  - a child writing 32-byte messages for 1 s into a 1 MiB ring in a
 *    shared section (head/tail counters, an auto-reset event each way for
 *    "full" and "empty", as in probe_event.c).
 * Crude: 2 shared cores, the numbers move with the machine's load.
 *
 * What wine 8.0 answered (2 cores shared with other jobs; each run is one
 * sample of 1 s, so these move a lot):
 *   load ~1 (one run):   self-start median 42 ms (plain) / 25 ms (handle
 *     list); pipe, 1 message per WriteFile: 23400 msg/s (0.7 MB/s);
 *     128 per WriteFile: 3.0 M msg/s (96 MB/s); ring: 33.6 M msg/s;
 *   load ~4 (three runs): self-start medians 25-67 / 41-100 ms; pipe:
 *     3700-18800 msg/s; 128 per WriteFile: 1.3-2.7 M msg/s; ring: 11-42
 *     M msg/s.
 * Under wine a WriteFile on a named pipe goes through the wineserver
 * (strace -c of the server while a client made 10000 writes of 32 bytes:
 * 72066 read, 31498 write, 9958 writev calls), about 40 us each: batch
 * messages into few large writes. (Windows itself may differ.)
 */
#include "probe.h"
#include <stdatomic.h>

#define MSG 32
#define RING (1 << 20)

struct ring {
    _Atomic unsigned long long head, tail;
    _Atomic int writer_waits, reader_waits, done;
    char pad[64];
    unsigned char data[RING];
};

static int pipe_writer(int batch)
{
    char name[256];
    if (stdin_line(name, sizeof name) < 0)
        return 90;
    HANDLE h = CreateFileA(name, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return 91;
    static unsigned char buf[128 * MSG];
    memset(buf, 'p', sizeof buf);
    unsigned long long msgs = 0;
    double end = now_ms() + 1000;
    DWORD n;
    while (now_ms() < end) {
        if (!WriteFile(h, buf, (DWORD)(batch * MSG), &n, NULL))
            return 92;
        msgs += (unsigned long long)batch;
    }
    CloseHandle(h);
    stdout_line("%llu", msgs);
    return 0;
}

static int ring_writer(void)
{
    char line[128];
    unsigned long long hs, hr, hd;
    if (stdin_line(line, sizeof line) < 0 || sscanf(line, "%llu %llu %llu", &hs, &hr, &hd) != 3)
        return 90;
    struct ring *r = MapViewOfFile((HANDLE)(ULONG_PTR)hs, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    HANDLE room = (HANDLE)(ULONG_PTR)hr, data = (HANDLE)(ULONG_PTR)hd;
    if (!r)
        return 91;
    unsigned char msg[MSG];
    memset(msg, 'r', sizeof msg);
    unsigned long long msgs = 0;
    double end = now_ms() + 1000;
    while ((msgs & 1023) || now_ms() < end) {
        for (;;) {
            unsigned long long head = atomic_load(&r->head), tail = atomic_load(&r->tail);
            if (head - tail + MSG <= RING)
                break;
            atomic_store(&r->writer_waits, 1);
            if (atomic_load(&r->head) - atomic_load(&r->tail) + MSG <= RING) {
                atomic_store(&r->writer_waits, 0);
                break;
            }
            WaitForSingleObject(room, 100);
        }
        unsigned long long head = atomic_load(&r->head);
        memcpy(msg, &msgs, sizeof msgs);
        memcpy(r->data + head % RING, msg, MSG);
        atomic_store(&r->head, head + MSG);
        msgs++;
        if (atomic_exchange(&r->reader_waits, 0))
            SetEvent(data);
    }
    atomic_store(&r->done, 1);
    SetEvent(data);
    stdout_line("%llu", msgs);
    return 0;
}

static double start_once(int plain)
{
    double t0 = now_ms();
    if (plain) {
        char exe[MAX_PATH], cmd[MAX_PATH + 16];
        GetModuleFileNameA(NULL, exe, sizeof exe);
        snprintf(cmd, sizeof cmd, "\"%s\" exit", exe);
        STARTUPINFOA si;
        PROCESS_INFORMATION pi;
        memset(&si, 0, sizeof si);
        si.cb = sizeof si;
        if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
            return -1;
        WaitForSingleObject(pi.hProcess, INFINITE);
        CloseHandle(pi.hProcess);
        CloseHandle(pi.hThread);
    } else {
        child_t c;
        if (spawn_self(&c, "exit", NULL, 0))
            return -1;
        child_wait(&c, INFINITE);
        child_close(&c);
    }
    return now_ms() - t0;
}

static void measure_pipe(int batch)
{
    char hex[33], name[128];
    random_hex(hex, 16);
    snprintf(name, sizeof name, "\\\\.\\pipe\\mprouter-%s", hex);
    HANDLE p = CreateNamedPipeA(name, PIPE_ACCESS_INBOUND | FILE_FLAG_FIRST_PIPE_INSTANCE,
                                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_REJECT_REMOTE_CLIENTS, 1, 65536, 65536,
                                0, NULL);
    child_t c;
    if (p == INVALID_HANDLE_VALUE || spawn_self(&c, batch == 1 ? "pipe1" : "pipe128", NULL, 1)) {
        check(0, "pipe throughput: setup %s", last_err());
        return;
    }
    child_say(&c, name);
    child_say(&c, "\n");
    ConnectNamedPipe(p, NULL);
    static unsigned char buf[65536];
    unsigned long long bytes = 0, reads = 0;
    DWORD n;
    double t0 = now_ms();
    while (ReadFile(p, buf, sizeof buf, &n, NULL)) {
        bytes += n;
        reads++;
    }
    double dt = now_ms() - t0;
    char line[64];
    unsigned long long msgs = 0;
    if (read_line(c.out, line, sizeof line) >= 0)
        msgs = strtoull(line, NULL, 10);
    check(msgs && bytes == msgs * MSG,
          "named pipe, %d message(s) of 32 bytes per WriteFile: %llu messages in %.0f ms = %.0f msg/s, %.1f MB/s "
          "(%llu reads, %.0f bytes each)",
          batch, msgs, dt, msgs / dt * 1000.0, bytes / dt / 1000.0, reads, reads ? (double)bytes / reads : 0.0);
    child_wait(&c, 5000);
    child_close(&c);
    CloseHandle(p);
}

static void measure_ring(void)
{
    HANDLE sec = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, sizeof(struct ring), NULL);
    struct ring *r = sec ? MapViewOfFile(sec, FILE_MAP_ALL_ACCESS, 0, 0, 0) : NULL;
    HANDLE room = CreateEventA(NULL, FALSE, FALSE, NULL), data = CreateEventA(NULL, FALSE, FALSE, NULL);
    child_t c;
    if (!r || spawn_self(&c, "ring", NULL, 1)) {
        check(0, "ring throughput: setup");
        return;
    }
    HANDLE hs, hr, hd;
    DuplicateHandle(GetCurrentProcess(), sec, c.pi.hProcess, &hs, 0, FALSE, DUPLICATE_SAME_ACCESS);
    DuplicateHandle(GetCurrentProcess(), room, c.pi.hProcess, &hr, 0, FALSE, DUPLICATE_SAME_ACCESS);
    DuplicateHandle(GetCurrentProcess(), data, c.pi.hProcess, &hd, 0, FALSE, DUPLICATE_SAME_ACCESS);
    char line[128];
    snprintf(line, sizeof line, "%llu %llu %llu\n", (unsigned long long)(ULONG_PTR)hs,
             (unsigned long long)(ULONG_PTR)hr, (unsigned long long)(ULONG_PTR)hd);
    child_say(&c, line);
    unsigned long long got = 0, bad = 0, waits = 0;
    double t0 = 0;
    for (;;) {
        unsigned long long head = atomic_load(&r->head), tail = atomic_load(&r->tail);
        if (head == tail) {
            if (atomic_load(&r->done) && atomic_load(&r->head) == tail)
                break;
            atomic_store(&r->reader_waits, 1);
            if (atomic_load(&r->head) == tail && !atomic_load(&r->done)) {
                waits++;
                WaitForSingleObject(data, 100);
            }
            atomic_store(&r->reader_waits, 0);
            continue;
        }
        if (!t0)
            t0 = now_ms();
        for (; tail < head; tail += MSG) {
            unsigned long long seq;
            memcpy(&seq, r->data + tail % RING, sizeof seq);
            bad += seq != got;
            got++;
        }
        atomic_store(&r->tail, tail);
        if (atomic_exchange(&r->writer_waits, 0))
            SetEvent(room);
    }
    double dt = now_ms() - t0;
    unsigned long long msgs = 0;
    if (read_line(c.out, line, sizeof line) >= 0)
        msgs = strtoull(line, NULL, 10);
    check(msgs && got == msgs && !bad,
          "shared section ring (1 MiB), 32-byte messages: %llu messages in %.0f ms = %.0f msg/s, %.1f MB/s "
          "(reader waited %llu times)",
          got, dt, got / dt * 1000.0, got * MSG / dt / 1000.0, waits);
    child_wait(&c, 5000);
    child_close(&c);
    UnmapViewOfFile(r);
    CloseHandle(sec);
    CloseHandle(room);
    CloseHandle(data);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "exit"))
        return 0;
    if (argc > 1 && !strcmp(argv[1], "pipe1"))
        return pipe_writer(1);
    if (argc > 1 && !strcmp(argv[1], "pipe128"))
        return pipe_writer(128);
    if (argc > 1 && !strcmp(argv[1], "ring"))
        return ring_writer();
    printf("probe_cost: (i) process start-up, small-message throughput\n");

    for (int plain = 1; plain >= 0; plain--) {
        double v[20];
        int ok = 1;
        for (int i = 0; i < 20; i++)
            ok &= (v[i] = start_once(plain)) >= 0;
        double med = median(v, 20);
        check(ok, "%s, 20 times: median %.1f ms (min %.1f, max %.1f)",
              plain ? "CreateProcess(self, \"exit\") to its end" : "the same through STARTUPINFOEX + handle list + stdin pipe",
              med, v[0], v[19]);
    }
    measure_pipe(1);
    measure_pipe(128);
    measure_ring();
    return probe_end("probe_cost");
}
