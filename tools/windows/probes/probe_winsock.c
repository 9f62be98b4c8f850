/* probe_winsock.c - (f) Winsock as the remote (TCP) transport would use it:
 * WSAStartup; a listener on 127.0.0.1:0; non-blocking connect and accept;
 * WSAPoll on several sockets (one readable among three, a closed peer, a
 * refused connect); and a socket on the same I/O completion port as a
 * named pipe, with a zero-byte overlapped WSARecv as readiness; what that
 * read says when the peer closes, and when it resets.
 *
 * What wine 8.0 answered: 24 checks, 0 failed.
 *  WSAStartup 2.2; accept with nobody: WSAEWOULDBLOCK (10035);
 *  non-blocking connect: WSAEWOULDBLOCK; WSAPoll: listener POLLRDNORM,
 *  connecting sockets POLLWRNORM; accepted sockets are non-blocking; one
 *  readable of three: only its POLLRDNORM; a closed peer: POLLHUP, recv 0;
 *  a refused connect: WSAPoll returns at once with POLLERR, SO_ERROR
 *  WSAECONNREFUSED (10061); a socket and a pipe on one port: zero-byte
 *  WSARecv is pending (WSA_IO_PENDING 997) until data, then a 0-byte
 *  packet with the socket's key; WSAPoll still works on it; a peer's close
 *  completes the zero-byte WSARecv with success and 0 bytes (recv then
 *  says 0).
 *  note: a peer's reset (SO_LINGER 0) completes it with
 *  ERROR_NETNAME_DELETED (64), and recv then returns 0, not
 *  WSAECONNRESET.
 */
#include "probe.h"

#define KEY_SOCK 7
#define KEY_PIPE 8

static SOCKET tcp_socket(int nonblocking)
{
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (s != INVALID_SOCKET && nonblocking) {
        u_long one = 1;
        ioctlsocket(s, FIONBIO, &one);
    }
    return s;
}

static const char *revents_str(short r)
{
    static char b[4][96];
    static int n;
    char *p = b[n++ % 4];
    snprintf(p, sizeof b[0], "0x%x%s%s%s%s%s", (unsigned)r, r & POLLRDNORM ? " RDNORM" : "",
             r & POLLWRNORM ? " WRNORM" : "", r & POLLHUP ? " HUP" : "", r & POLLERR ? " ERR" : "",
             r & POLLNVAL ? " NVAL" : "");
    return p;
}

/* Waits on the port for a packet with this OVERLAPPED. */
static int wait_packet(HANDLE port, OVERLAPPED *ov, DWORD ms, DWORD *bytes, DWORD *status, ULONG_PTR *key)
{
    double end = now_ms() + ms;
    for (;;) {
        double left = end - now_ms();
        if (left < 0)
            left = 0;
        OVERLAPPED *got = NULL;
        BOOL ok = GetQueuedCompletionStatus(port, bytes, key, &got, (DWORD)left);
        if (!got)
            return 0;
        if (got == ov) {
            *status = ok ? 0 : GetLastError();
            return 1;
        }
    }
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("probe_winsock: (f) Winsock: listener, non-blocking connect/accept, WSAPoll, IOCP\n");
    WSADATA wd;
    int ws = WSAStartup(MAKEWORD(2, 2), &wd);
    if (!check(ws == 0, "WSAStartup(2.2): %d, version %d.%d", ws, LOBYTE(wd.wVersion), HIBYTE(wd.wVersion)))
        return probe_end("probe_winsock");

    SOCKET l = tcp_socket(1);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    int alen = sizeof a;
    int b = bind(l, (struct sockaddr *)&a, sizeof a);
    int li = b == 0 ? listen(l, 16) : -1;
    getsockname(l, (struct sockaddr *)&a, &alen);
    if (!check(l != INVALID_SOCKET && b == 0 && li == 0, "listener on 127.0.0.1:%u (non-blocking)", ntohs(a.sin_port)))
        return probe_end("probe_winsock");

    SOCKET s = accept(l, NULL, NULL);
    int e = WSAGetLastError();
    check(s == INVALID_SOCKET && e == WSAEWOULDBLOCK, "accept with nobody waiting: %s",
          s == INVALID_SOCKET ? err_str((DWORD)e) : "a socket");

    SOCKET cl[3], sv[3];
    for (int i = 0; i < 3; i++) {
        cl[i] = tcp_socket(1);
        int r = connect(cl[i], (struct sockaddr *)&a, sizeof a);
        e = WSAGetLastError();
        check(r == SOCKET_ERROR && e == WSAEWOULDBLOCK, "non-blocking connect %d: %s", i,
              r == 0 ? "0 (connected at once)" : err_str((DWORD)e));
    }
    /* WSAPoll: the listener readable, the clients writable. */
    WSAPOLLFD p[4];
    int accepted = 0;
    double t0 = now_ms();
    while (accepted < 3 && now_ms() - t0 < 5000) {
        p[0].fd = l;
        p[0].events = POLLRDNORM;
        for (int i = 0; i < 3; i++) {
            p[i + 1].fd = cl[i];
            p[i + 1].events = POLLWRNORM;
        }
        int n = WSAPoll(p, 4, 1000);
        if (n <= 0)
            break;
        if (p[0].revents & POLLRDNORM) {
            SOCKET x;
            while (accepted < 3 && (x = accept(l, NULL, NULL)) != INVALID_SOCKET)
                sv[accepted++] = x;
        }
    }
    check(accepted == 3, "WSAPoll on the listener (POLLRDNORM) + accept: %d accepted", accepted);
    int writable = 0;
    for (int i = 0; i < 3; i++)
        writable += (p[i + 1].revents & POLLWRNORM) != 0;
    check(writable == 3, "WSAPoll: the three connecting sockets writable (%s %s %s)", revents_str(p[1].revents),
          revents_str(p[2].revents), revents_str(p[3].revents));
    char buf[64];
    int r = recv(sv[0], buf, sizeof buf, 0);
    e = WSAGetLastError();
    check(r == SOCKET_ERROR && e == WSAEWOULDBLOCK, "an accepted socket is non-blocking like the listener: recv %s",
          r == SOCKET_ERROR ? err_str((DWORD)e) : "returned data");

    /* Three sockets, one readable. */
    for (int i = 0; i < 3; i++) {
        p[i].fd = sv[i];
        p[i].events = POLLRDNORM;
        p[i].revents = 0;
    }
    int n = WSAPoll(p, 3, 100);
    check(n == 0, "WSAPoll on three quiet sockets, 100 ms: %d", n);
    send(cl[1], "x", 1, 0);
    n = WSAPoll(p, 3, 2000);
    check(n == 1 && !p[0].revents && (p[1].revents & POLLRDNORM) && !p[2].revents,
          "one byte sent on pair 1: WSAPoll returns %d (%s / %s / %s)", n, revents_str(p[0].revents),
          revents_str(p[1].revents), revents_str(p[2].revents));
    recv(sv[1], buf, sizeof buf, 0);
    closesocket(cl[2]);
    n = WSAPoll(p, 3, 2000);
    note("peer of pair 2 closed: WSAPoll returns %d, pair 2: %s", n, revents_str(p[2].revents));
    r = recv(sv[2], buf, sizeof buf, 0);
    check(r == 0, "recv after the peer's close: %d (0 = end of stream)", r);

    /* A refused connect. */
    SOCKET tmp = tcp_socket(0);
    struct sockaddr_in free_addr;
    memset(&free_addr, 0, sizeof free_addr);
    free_addr.sin_family = AF_INET;
    free_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(tmp, (struct sockaddr *)&free_addr, sizeof free_addr);
    alen = sizeof free_addr;
    getsockname(tmp, (struct sockaddr *)&free_addr, &alen);
    closesocket(tmp); /* a port nobody listens on */
    SOCKET rc = tcp_socket(1);
    connect(rc, (struct sockaddr *)&free_addr, sizeof free_addr);
    WSAPOLLFD rp = {rc, POLLWRNORM, 0};
    t0 = now_ms();
    n = WSAPoll(&rp, 1, 3000);
    double dt = now_ms() - t0;
    int soerr = 0, sl = sizeof soerr;
    getsockopt(rc, SOL_SOCKET, SO_ERROR, (char *)&soerr, &sl);
    check(n == 1 && (rp.revents & (POLLERR | POLLHUP)),
          "refused connect: WSAPoll returns %d after %.0f ms, %s, SO_ERROR %s", n, dt, revents_str(rp.revents),
          err_str((DWORD)soerr));
    closesocket(rc);

    /* A socket and a pipe on one completion port. */
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    HANDLE as = CreateIoCompletionPort((HANDLE)sv[0], port, KEY_SOCK, 0);
    check(as == port, "an accepted socket associated with a completion port%s%s", as ? "" : ": ",
          as ? "" : last_err());
    char hex[33], name[128];
    random_hex(hex, 16);
    snprintf(name, sizeof name, "\\\\.\\pipe\\mprouter-%s", hex);
    HANDLE ps = CreateNamedPipeA(name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
                                 PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_REJECT_REMOTE_CLIENTS, 1, 4096, 4096, 0,
                                 NULL);
    HANDLE pc = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    HANDLE ap = CreateIoCompletionPort(ps, port, KEY_PIPE, 0);
    check(ps != INVALID_HANDLE_VALUE && pc != INVALID_HANDLE_VALUE && ap == port,
          "a named pipe (server end) on the same port");

    WSAOVERLAPPED sov;
    memset(&sov, 0, sizeof sov);
    WSABUF wb = {0, NULL};
    DWORD flags = 0, got = 0;
    r = WSARecv(sv[0], &wb, 1, &got, &flags, &sov, NULL);
    e = WSAGetLastError();
    check(r == SOCKET_ERROR && e == WSA_IO_PENDING, "zero-byte overlapped WSARecv with no data: %s",
          r == 0 ? "0 (completed at once)" : err_str((DWORD)e));
    OVERLAPPED pov;
    memset(&pov, 0, sizeof pov);
    BOOL pr = ReadFile(ps, buf, 0, &got, &pov);
    DWORD pe = pr ? 0 : GetLastError();
    check(!pr && pe == ERROR_IO_PENDING, "zero-byte ReadFile on the pipe: %s", pr ? "TRUE" : err_str(pe));
    DWORD bytes, st;
    ULONG_PTR key;
    int gotp = wait_packet(port, &sov, 300, &bytes, &st, &key);
    check(!gotp, "no packet in 300 ms while neither has data");
    send(cl[0], "hello", 5, 0);
    t0 = now_ms();
    gotp = wait_packet(port, &sov, 3000, &bytes, &st, &key);
    check(gotp && st == 0 && bytes == 0 && key == KEY_SOCK,
          "5 bytes sent to the socket: its zero-byte WSARecv completes (%lu bytes, %s, key %lu) after %.2f ms", bytes,
          gotp ? err_str(st) : "no packet", (unsigned long)key, now_ms() - t0);
    r = recv(sv[0], buf, sizeof buf, 0);
    check(r == 5, "recv then reads the 5 bytes (%d)", r);
    DWORD w;
    WriteFile(pc, "pipe", 4, &w, NULL);
    gotp = wait_packet(port, &pov, 3000, &bytes, &st, &key);
    check(gotp && st == 0 && key == KEY_PIPE, "4 bytes into the pipe: its zero-byte read completes on the same port (key %lu)",
          (unsigned long)key);
    WSAPOLLFD sp = {sv[0], POLLRDNORM, 0};
    send(cl[0], "again", 5, 0);
    n = WSAPoll(&sp, 1, 2000);
    check(n == 1 && (sp.revents & POLLRDNORM), "WSAPoll still works on the socket on the port (%s)",
          revents_str(sp.revents));
    recv(sv[0], buf, sizeof buf, 0);

    /* The peer closes, then a reset. */
    memset(&sov, 0, sizeof sov);
    flags = 0;
    r = WSARecv(sv[0], &wb, 1, &got, &flags, &sov, NULL);
    closesocket(cl[0]);
    gotp = wait_packet(port, &sov, 3000, &bytes, &st, &key);
    check(gotp && st == 0 && bytes == 0,
          "peer closed: the pending zero-byte WSARecv completes with 0 bytes, %s (like data: recv tells)",
          gotp ? err_str(st) : "no packet");
    r = recv(sv[0], buf, sizeof buf, 0);
    check(r == 0, "recv after that: %d (end of stream)", r);

    SOCKET rs = sv[1];
    CreateIoCompletionPort((HANDLE)rs, port, KEY_SOCK, 0);
    memset(&sov, 0, sizeof sov);
    flags = 0;
    r = WSARecv(rs, &wb, 1, &got, &flags, &sov, NULL);
    struct linger lg = {1, 0};
    setsockopt(cl[1], SOL_SOCKET, SO_LINGER, (char *)&lg, sizeof lg);
    closesocket(cl[1]); /* RST */
    gotp = wait_packet(port, &sov, 3000, &bytes, &st, &key);
    note("peer reset (SO_LINGER 0): the pending zero-byte WSARecv: %s, %lu bytes",
         gotp ? err_str(st) : "no packet", bytes);
    r = recv(rs, buf, sizeof buf, 0);
    e = WSAGetLastError();
    note("recv after the reset: %d %s", r, r < 0 ? err_str((DWORD)e) : "");

    CloseHandle(pc);
    CloseHandle(ps);
    closesocket(sv[0]);
    closesocket(sv[1]);
    closesocket(sv[2]);
    closesocket(l);
    CloseHandle(port);
    WSACleanup();
    return probe_end("probe_winsock");
}
