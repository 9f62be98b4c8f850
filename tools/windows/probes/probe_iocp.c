/* probe_iocp.c - (c) overlapped I/O on a named pipe through an I/O
 * completion port, as the router's one-thread event loop would use it.
 *
 * The server end (FILE_FLAG_OVERLAPPED, byte mode) is associated with an
 * IOCP; the client is this program started again ("client"), which does
 * what the server asks by one-byte commands on the pipe. Checked:
 *  - ConnectNamedPipe's completion arrives on the port;
 *  - a zero-byte overlapped ReadFile with no data: pending (readiness) or
 *    completed at once? then completed when data arrives?
 *  - a 4 KiB ReadFile posted before the data: completes with what arrived
 *    (byte mode: a partial read);
 *  - a ReadFile with data already there returns TRUE at once and still
 *    queues a packet; SetFileCompletionNotificationModes
 *    (FILE_SKIP_COMPLETION_PORT_ON_SUCCESS) stops that packet;
 *  - 100000 bytes written at once: how the 4 KiB reads see them;
 *  - PostQueuedCompletionStatus from another thread wakes the waiter
 *    (and how long it takes);
 *  - GetQueuedCompletionStatusEx dequeues several packets at once;
 *  - CancelIoEx on a pending read: its packet, with ERROR_OPERATION_ABORTED;
 *  - TerminateProcess of the client with a read pending: the packet's
 *    error (ERROR_BROKEN_PIPE?); a write after that.
 *
 * What wine 8.0 answered: 23 checks, 0 failed.
 *  ConnectNamedPipe: ERROR_IO_PENDING (997), then its packet on the port;
 *  zero-byte ReadFile: ERROR_IO_PENDING, no packet while no data (it is
 *    readiness), a packet with 0 bytes and success 0.2 ms after the data;
 *  ReadFile with data waiting: TRUE at once and a packet all the same;
 *    with FILE_SKIP_COMPLETION_PORT_ON_SUCCESS no packet;
 *  a pending 4 KiB read completes with the 10 bytes that came;
 *  100000 bytes in one WriteFile: 25 reads of at most 4096;
 *  PostQueuedCompletionStatus from a thread: woken (101 ms for a 100 ms
 *    sleep); GetQueuedCompletionStatusEx: 3 packets in one call, and
 *    WAIT_TIMEOUT (258) when none;
 *  CancelIoEx: TRUE, the packet fails with ERROR_OPERATION_ABORTED (995);
 *  TerminateProcess of the client with a zero-byte read pending: its
 *    packet fails with ERROR_BROKEN_PIPE (109) at once; a later ReadFile:
 *    ERROR_BROKEN_PIPE, WriteFile: ERROR_NO_DATA (232);
 *    DisconnectNamedPipe then works.
 */
#include "probe.h"

#define KEY_PIPE 1
#define KEY_WAKE 99

static HANDLE port, pipe_h;

/* Waits (up to ms) for the packet of ov, counting others; returns 1 when
 * it came, with its bytes, status (0 = success, else the error) and key. */
static int wait_packet(OVERLAPPED *ov, DWORD ms, DWORD *bytes, DWORD *status, ULONG_PTR *key_out,
                       int *others)
{
    double end = now_ms() + ms;
    for (;;) {
        double left = end - now_ms();
        if (left < 0)
            left = 0;
        DWORD n = 0;
        ULONG_PTR key = 0;
        OVERLAPPED *got = NULL;
        BOOL ok = GetQueuedCompletionStatus(port, &n, &key, &got, (DWORD)left);
        if (!got) {
            if (!ok && GetLastError() == WAIT_TIMEOUT)
                return 0;
            if (!ok)
                return 0;
            /* a posted packet without an OVERLAPPED */
            if (others)
                (*others)++;
            continue;
        }
        if (got == ov) {
            *bytes = n;
            *status = ok ? 0 : GetLastError();
            if (key_out)
                *key_out = key;
            return 1;
        }
        if (others)
            (*others)++;
    }
}

/* Sends a one-byte command to the client, waited for with an event whose
 * handle has its low bit set: documented to keep the completion off the
 * port (checked: the waits below count no stray packets). */
static int command(char c)
{
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = (HANDLE)((ULONG_PTR)CreateEventA(NULL, TRUE, FALSE, NULL) | 1);
    DWORD n = 0;
    BOOL ok = WriteFile(pipe_h, &c, 1, &n, &ov);
    if (!ok && GetLastError() == ERROR_IO_PENDING)
        ok = GetOverlappedResult(pipe_h, &ov, &n, TRUE);
    CloseHandle((HANDLE)((ULONG_PTR)ov.hEvent & ~(ULONG_PTR)1));
    return ok && n == 1 ? 0 : -1;
}

static DWORD WINAPI poster(void *arg)
{
    (void)arg;
    Sleep(100);
    PostQueuedCompletionStatus(port, 0, KEY_WAKE, NULL);
    return 0;
}

static int client_main(void)
{
    char name[256];
    if (stdin_line(name, sizeof name) < 0)
        return 90;
    HANDLE h = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                           SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        child_log("CreateFile: %s", last_err());
        return 91;
    }
    static char big[100000];
    memset(big, 'b', sizeof big);
    for (;;) {
        char c;
        DWORD n;
        if (!ReadFile(h, &c, 1, &n, NULL) || n != 1)
            return 0;
        const char *s = NULL;
        DWORD len = 0;
        switch (c) {
        case 'A': s = "hello"; len = 5; break;
        case 'B': s = "seven!!"; len = 7; break;
        case 'C': s = "0123456789"; len = 10; break;
        case 'D': s = big; len = sizeof big; break;
        case 'Q': return 0;
        }
        if (s && (!WriteFile(h, s, len, &n, NULL) || n != len)) {
            child_log("WriteFile: %s", last_err());
            return 92;
        }
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "client"))
        return client_main();
    printf("probe_iocp: (c) overlapped named pipe I/O through a completion port\n");

    char hex[33], name[128];
    random_hex(hex, 16);
    snprintf(name, sizeof name, "\\\\.\\pipe\\mprouter-%s", hex);
    pipe_h = CreateNamedPipeA(name,
                              PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
                              PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                              PIPE_UNLIMITED_INSTANCES, 65536, 65536, 0, NULL);
    if (!check(pipe_h != INVALID_HANDLE_VALUE, "CreateNamedPipe"))
        return probe_end("probe_iocp");
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    HANDLE assoc = port ? CreateIoCompletionPort(pipe_h, port, KEY_PIPE, 0) : NULL;
    if (!check(port && assoc == port, "CreateIoCompletionPort, pipe associated (key %d)", KEY_PIPE))
        return probe_end("probe_iocp");

    OVERLAPPED ovc, ovr, ovr2;
    memset(&ovc, 0, sizeof ovc);
    BOOL cn = ConnectNamedPipe(pipe_h, &ovc);
    DWORD cerr = cn ? 0 : GetLastError();
    check(!cn && cerr == ERROR_IO_PENDING, "ConnectNamedPipe (overlapped, no client yet): %s",
          cn ? "TRUE" : err_str(cerr));
    child_t c;
    if (!check(spawn_self(&c, "client", NULL, 0) == 0, "client started"))
        return probe_end("probe_iocp");
    child_say(&c, name);
    child_say(&c, "\n");
    DWORD n, st;
    ULONG_PTR key;
    int got = wait_packet(&ovc, 10000, &n, &st, &key, NULL);
    check(got && st == 0 && key == KEY_PIPE, "ConnectNamedPipe's completion on the port (key %lu, %s)",
          (unsigned long)key, got ? err_str(st) : "no packet");

    /* Zero-byte read, no data. */
    static char buf[4096];
    memset(&ovr, 0, sizeof ovr);
    BOOL r0 = ReadFile(pipe_h, buf, 0, &n, &ovr);
    DWORD r0e = r0 ? 0 : GetLastError();
    note("zero-byte ReadFile with no data returns %s", r0 ? "TRUE (completed at once)" : err_str(r0e));
    double t0 = now_ms();
    got = wait_packet(&ovr, 300, &n, &st, &key, NULL);
    check(!got, "zero-byte read: no packet in 300 ms while no data (readiness semantics)%s",
          got ? " -- it completed at once" : "");
    if (!got) {
        command('A'); /* the client writes "hello" */
        t0 = now_ms();
        got = wait_packet(&ovr, 5000, &n, &st, &key, NULL);
        check(got && st == 0 && n == 0,
              "zero-byte read completes when data arrives: %lu bytes, %s, %.2f ms after the command",
              n, got ? err_str(st) : "no packet", now_ms() - t0);
    }
    DWORD avail = 0;
    BOOL pk = PeekNamedPipe(pipe_h, NULL, 0, NULL, &avail, NULL);
    check(pk && avail == 5, "PeekNamedPipe after it: %lu bytes available%s%s", avail,
          pk ? "" : ": ", pk ? "" : last_err());

    /* Data already there: TRUE at once, and a packet anyway. */
    memset(&ovr2, 0, sizeof ovr2);
    BOOL rn = ReadFile(pipe_h, buf, sizeof buf, &n, &ovr2);
    DWORD rne = rn ? 0 : GetLastError();
    DWORD imm = n;
    if (!rn && rne == ERROR_IO_PENDING)
        note("ReadFile with 5 bytes waiting returned ERROR_IO_PENDING (not at once)");
    else
        check(rn && imm == 5, "ReadFile with 5 bytes waiting: %s, %lu bytes", rn ? "TRUE" : err_str(rne),
              imm);
    got = wait_packet(&ovr2, 1000, &n, &st, &key, NULL);
    check(got && n == 5, "...and its packet is queued all the same (%s, %lu bytes)",
          got ? "packet" : "no packet", n);

    /* FILE_SKIP_COMPLETION_PORT_ON_SUCCESS */
    BOOL skip = SetFileCompletionNotificationModes(pipe_h, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS);
    check(skip, "SetFileCompletionNotificationModes(FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)%s%s",
          skip ? "" : ": ", skip ? "" : last_err());
    command('B'); /* "seven!!" */
    Sleep(300);
    memset(&ovr2, 0, sizeof ovr2);
    rn = ReadFile(pipe_h, buf, sizeof buf, &n, &ovr2);
    rne = rn ? 0 : GetLastError();
    imm = n;
    if (rn) {
        got = wait_packet(&ovr2, 300, &n, &st, &key, NULL);
        check(imm == 7 && !got, "with it, a read that succeeds at once (%lu bytes) queues no packet%s",
              imm, got ? " -- a packet came" : "");
    } else {
        note("the read after SKIP did not complete at once: %s", err_str(rne));
        wait_packet(&ovr2, 3000, &n, &st, &key, NULL);
    }

    /* A read posted before the data: completes with what arrived. */
    memset(&ovr, 0, sizeof ovr);
    rn = ReadFile(pipe_h, buf, sizeof buf, &n, &ovr);
    rne = rn ? 0 : GetLastError();
    check(!rn && rne == ERROR_IO_PENDING, "4 KiB ReadFile with no data: %s", rn ? "TRUE" : err_str(rne));
    command('C'); /* 10 bytes */
    t0 = now_ms();
    got = wait_packet(&ovr, 5000, &n, &st, &key, NULL);
    check(got && st == 0 && n == 10, "it completes with the 10 bytes that came: %lu bytes, %s, %.2f ms",
          n, got ? err_str(st) : "no packet", now_ms() - t0);

    /* 100000 bytes in one WriteFile by the client, read 4 KiB at a time. */
    command('D');
    DWORD total = 0;
    int reads = 0, at_once = 0, partial = 0;
    t0 = now_ms();
    while (total < 100000 && now_ms() - t0 < 10000) {
        memset(&ovr, 0, sizeof ovr);
        rn = ReadFile(pipe_h, buf, sizeof buf, &n, &ovr);
        if (rn) {
            at_once++;
        } else if (GetLastError() == ERROR_IO_PENDING) {
            if (!wait_packet(&ovr, 5000, &n, &st, &key, NULL) || st)
                break;
        } else {
            break;
        }
        if (n < sizeof buf)
            partial++;
        total += n;
        reads++;
    }
    check(total == 100000, "100000 bytes written at once, read in %d reads of up to 4096 (%d at once, %d short)",
          reads, at_once, partial);

    /* PostQueuedCompletionStatus from another thread. */
    HANDLE th = CreateThread(NULL, 0, poster, NULL, 0, NULL);
    t0 = now_ms();
    OVERLAPPED *pov = NULL;
    BOOL pq = GetQueuedCompletionStatus(port, &n, &key, &pov, 5000);
    double dt = now_ms() - t0;
    check(pq && key == KEY_WAKE && !pov,
          "PostQueuedCompletionStatus from another thread wakes GetQueuedCompletionStatus (after %.1f ms, "
          "the thread slept 100)",
          dt);
    WaitForSingleObject(th, INFINITE);
    CloseHandle(th);

    /* GetQueuedCompletionStatusEx: three packets at once. */
    for (int i = 0; i < 3; i++)
        PostQueuedCompletionStatus(port, (DWORD)i, KEY_WAKE, NULL);
    OVERLAPPED_ENTRY ent[8];
    ULONG removed = 0;
    BOOL ex = GetQueuedCompletionStatusEx(port, ent, 8, &removed, 1000, FALSE);
    check(ex && removed == 3, "GetQueuedCompletionStatusEx: %lu packets in one call%s%s", removed,
          ex ? "" : ": ", ex ? "" : last_err());
    removed = 0;
    ex = GetQueuedCompletionStatusEx(port, ent, 8, &removed, 200, FALSE);
    DWORD exe = ex ? 0 : GetLastError();
    check(!ex && exe == WAIT_TIMEOUT, "GetQueuedCompletionStatusEx with none: %s", ex ? "TRUE" : err_str(exe));

    /* CancelIoEx on a pending read. */
    memset(&ovr, 0, sizeof ovr);
    rn = ReadFile(pipe_h, buf, sizeof buf, &n, &ovr);
    rne = rn ? 0 : GetLastError();
    BOOL ci = CancelIoEx(pipe_h, &ovr);
    DWORD cie = ci ? 0 : GetLastError();
    got = wait_packet(&ovr, 3000, &n, &st, &key, NULL);
    check(!rn && ci && got && st == ERROR_OPERATION_ABORTED,
          "CancelIoEx on a pending read (%s): %s, its packet: %s", err_str(rne), ci ? "TRUE" : err_str(cie),
          got ? err_str(st) : "no packet");
    DWORD gor_n;
    BOOL gor = GetOverlappedResult(pipe_h, &ovr, &gor_n, FALSE);
    note("GetOverlappedResult of the cancelled read: %s", gor ? "TRUE" : last_err());

    /* The client is killed with a read pending. */
    memset(&ovr, 0, sizeof ovr);
    rn = ReadFile(pipe_h, buf, 0, &n, &ovr); /* zero-byte: as the event loop would */
    rne = rn ? 0 : GetLastError();
    memset(&ovr2, 0, sizeof ovr2);
    Sleep(100);
    BOOL term = TerminateProcess(c.pi.hProcess, 77);
    t0 = now_ms();
    got = wait_packet(&ovr, 5000, &n, &st, &key, NULL);
    check(term && got && st == ERROR_BROKEN_PIPE,
          "TerminateProcess(client) with a zero-byte read pending: packet %s after %.1f ms",
          got ? err_str(st) : "none", now_ms() - t0);
    DWORD code = child_wait(&c, 5000);
    check(code == 77, "the client's exit code is 77 (%lu)", code);
    memset(&ovr, 0, sizeof ovr);
    rn = ReadFile(pipe_h, buf, sizeof buf, &n, &ovr);
    rne = rn ? 0 : GetLastError();
    note("ReadFile after that: %s", rn ? "TRUE" : err_str(rne));
    if (!rn && rne == ERROR_IO_PENDING)
        wait_packet(&ovr, 1000, &n, &st, &key, NULL);
    memset(&ovr, 0, sizeof ovr);
    BOOL wr = WriteFile(pipe_h, "x", 1, &n, &ovr);
    DWORD wre = wr ? 0 : GetLastError();
    check(!wr && (wre == ERROR_NO_DATA || wre == ERROR_BROKEN_PIPE), "WriteFile after that: %s",
          wr ? "TRUE" : err_str(wre));
    if (!wr && wre == ERROR_IO_PENDING)
        wait_packet(&ovr, 1000, &n, &st, &key, NULL);
    child_close(&c);
    BOOL dis = DisconnectNamedPipe(pipe_h);
    check(dis, "DisconnectNamedPipe after the client died%s%s", dis ? "" : ": ", dis ? "" : last_err());
    CloseHandle(pipe_h);
    CloseHandle(port);
    return probe_end("probe_iocp");
}
