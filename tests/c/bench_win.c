/* bench_win.c - not a test: 32-byte messages from a worker process (this
 * program started again) to the main thread, through mprouter's ring and
 * with one WriteFile per message on a named pipe, in the same run, rounds
 * taking turns; prints the median of 5 rounds of each and their ratio.
 *
 *   bench_win.exe [ROUNDS]
 *
 * Each round is timed by the receiving side, from the first message to the
 * last: mprouter's receiver callback on the main thread (an fd loop driven
 * by its event handle), and a reader of the pipe with 64 KiB overlapped
 * reads. Under wine every pipe WriteFile is a trip to the wineserver,
 * which makes the second one slow: numbers taken under wine say nothing
 * about Windows, and the output says so. */
#include "winproc.h"

#define MSG 32
#define RING_MSGS 2000000
#define PIPE_MSGS 20000

static double now_s(void)
{
    static LARGE_INTEGER f;
    LARGE_INTEGER c;
    if (!f.QuadPart)
        QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- the workers ---- */

static int ring_worker(long n)
{
    mpr_sender *s = wp_sender_from_stdin();
    if (!s || mpr_sender_start(s) < 0)
        return 20;
    unsigned char msg[MSG];
    memset(msg, 'r', sizeof msg);
    for (long i = 0; i < n; i++)
        if (mpr_sender_send(s, msg, sizeof msg) < 0)
            return 21;
    int rc = mpr_sender_stop(s);
    mpr_sender_free(s);
    return rc < 0 ? 22 : 0;
}

static int pipe_worker(long n)
{
    char name[300];
    if (wp_read_line(GetStdHandle(STD_INPUT_HANDLE), name, sizeof name) < 0)
        return 20;
    HANDLE h = CreateFileA(name, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return 21;
    unsigned char msg[MSG];
    memset(msg, 'p', sizeof msg);
    for (long i = 0; i < n; i++) {
        DWORD w;
        if (!WriteFile(h, msg, sizeof msg, &w, NULL) || w != sizeof msg)
            return 22;
    }
    CloseHandle(h);
    return 0;
}

/* ---- the receiving side ---- */

typedef struct {
    long count, want;
    double first, last;
} tally;

static void on_msg(void *arg, const void *data, size_t size)
{
    tally *t = arg;
    (void)data;
    (void)size;
    if (t->count == 0)
        t->first = now_s();
    if (++t->count == t->want)
        t->last = now_s();
}

static int got_all(void *arg)
{
    tally *t = arg;
    return t->count >= t->want;
}

/* Messages per second through the ring, or a negative number. */
static double ring_round(void)
{
    wp_router r;
    if (wp_router_new(&r) < 0 || mpr_router_start(r.router) < 0)
        return -1;
    tally t = {0, RING_MSGS, 0, 0};
    mpr_sender *s;
    mpr_receiver *rcv;
    if (mpr_router_pipe(r.router, &s, &rcv) < 0)
        return -1;
    mpr_receiver_set_callback(rcv, on_msg, &t);
    wp_child c;
    char arg[32];
    snprintf(arg, sizeof arg, "%d", RING_MSGS);
    int rc = wp_start_sender(&c, "ring", arg, s, 0);
    mpr_sender_free(s);
    if (rc < 0 || !wp_run_until(&r, got_all, &t, 120000))
        return -1;
    wp_wait(&c, 10000);
    wp_close(&c);
    mpr_router_close_pipe(r.router, rcv);
    mpr_router_stop(r.router);
    wp_router_free(&r);
    return (double)(t.want - 1) / (t.last - t.first);
}

/* Messages per second with one WriteFile each, or a negative number. */
static double pipe_round(void)
{
    char name[128];
    snprintf(name, sizeof name, "\\\\.\\pipe\\mprouter-bench-%lu-%lu", GetCurrentProcessId(),
             GetTickCount());
    HANDLE h = CreateNamedPipeA(name, PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED,
                                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 1, 65536, 65536,
                                0, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return -1;
    wp_child c;
    char arg[32];
    snprintf(arg, sizeof arg, "%d", PIPE_MSGS);
    if (wp_start(&c, "pipe", arg, 0) < 0 || wp_say(&c, name) < 0)
        return -1;
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    DWORD n;
    if (!ConnectNamedPipe(h, &ov) && GetLastError() == ERROR_IO_PENDING)
        GetOverlappedResult(h, &ov, &n, TRUE);
    static unsigned char buf[65536];
    long long bytes = 0, want = (long long)PIPE_MSGS * MSG;
    double first = 0, last = 0;
    while (bytes < want) {
        ResetEvent(ov.hEvent);
        BOOL ok = ReadFile(h, buf, sizeof buf, NULL, &ov);
        if (!ok && GetLastError() != ERROR_IO_PENDING)
            break;
        if (!GetOverlappedResult(h, &ov, &n, TRUE) || n == 0)
            break;
        if (bytes == 0)
            first = now_s();
        bytes += n;
        last = now_s();
    }
    CloseHandle(ov.hEvent);
    wp_wait(&c, 10000);
    wp_close(&c);
    CloseHandle(h);
    if (bytes < want)
        return -1;
    /* The first read took at least one message: time the rest. */
    return (double)(PIPE_MSGS - 1) / (last - first);
}

int main(int argc, char **argv)
{
    if (argc > 2 && !strcmp(argv[1], "ring"))
        return ring_worker(atol(argv[2]));
    if (argc > 2 && !strcmp(argv[1], "pipe"))
        return pipe_worker(atol(argv[2]));
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    if (rounds < 1 || rounds > 50)
        rounds = 5;
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    int wine = nt && GetProcAddress(nt, "wine_get_version");
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("bench_win: %d-byte messages from a worker process, median of %d rounds\n", MSG, rounds);
    if (wine)
        printf("NOTE: running under wine: every pipe operation is a trip to the wineserver; "
               "these numbers say nothing about real Windows.\n");
    double ring[50], pipe[50];
    for (int i = 0; i < rounds; i++) {
        ring[i] = ring_round();
        pipe[i] = pipe_round();
        printf("  round %d: ring %.0f msg/s, pipe %.0f msg/s\n", i + 1, ring[i], pipe[i]);
        if (ring[i] <= 0 || pipe[i] <= 0) {
            printf("bench_win: a round failed\n");
            return 1;
        }
    }
    double mr = median(ring, rounds), mp = median(pipe, rounds);
    printf("mprouter ring (%d msgs/round):        %12.0f msg/s\n", RING_MSGS, mr);
    printf("one WriteFile per message (%d/round): %12.0f msg/s\n", PIPE_MSGS, mp);
    printf("ratio ring / WriteFile:                  %12.1f x%s\n", mr / mp, wine ? " (under wine)" : "");
    return 0;
}
