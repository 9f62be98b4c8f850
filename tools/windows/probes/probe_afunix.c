/* probe_afunix.c - (h) AF_UNIX sockets: Windows 10 (1803 and later) has
 * them (afunix.h); does wine 8? socket(AF_UNIX, SOCK_STREAM, 0), and if it
 * gives a socket, bind to a path and listen.
 *
 * What wine 8.0 answered: FAIL, as expected: socket(AF_UNIX, SOCK_STREAM,
 * 0) and socket(AF_UNIX, SOCK_DGRAM, 0) both give INVALID_SOCKET with
 * WSAEAFNOSUPPORT (10047). (mingw-w64 10 has afunix.h.)
 */
#include "probe.h"
#include <afunix.h>

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("probe_afunix: (h) AF_UNIX sockets\n");
    WSADATA wd;
    if (!check(WSAStartup(MAKEWORD(2, 2), &wd) == 0, "WSAStartup"))
        return probe_end("probe_afunix");
    SOCKET s = socket(AF_UNIX, SOCK_STREAM, 0);
    int e = WSAGetLastError();
    check(s != INVALID_SOCKET, "socket(AF_UNIX, SOCK_STREAM, 0): %s",
          s != INVALID_SOCKET ? "a socket" : err_str((DWORD)e));
    if (s != INVALID_SOCKET) {
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        char dir[MAX_PATH];
        GetTempPathA(sizeof dir, dir);
        snprintf(a.sun_path, sizeof a.sun_path, "%smpr-probe-%lu.sock", dir, (unsigned long)GetCurrentProcessId());
        int b = bind(s, (struct sockaddr *)&a, sizeof a);
        e = WSAGetLastError();
        check(b == 0, "bind(%s): %s", a.sun_path, b == 0 ? "0" : err_str((DWORD)e));
        int l = b == 0 ? listen(s, 4) : -1;
        check(l == 0, "listen: %d", l);
        closesocket(s);
        DeleteFileA(a.sun_path);
    }
    SOCKET d = socket(AF_UNIX, SOCK_DGRAM, 0);
    e = WSAGetLastError();
    note("socket(AF_UNIX, SOCK_DGRAM, 0): %s", d != INVALID_SOCKET ? "a socket" : err_str((DWORD)e));
    if (d != INVALID_SOCKET)
        closesocket(d);
    WSACleanup();
    return probe_end("probe_afunix");
}
