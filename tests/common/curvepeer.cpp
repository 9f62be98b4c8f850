// curvepeer.cpp - see curvepeer.h. The byte formats follow libzmq 4.3's
// curve_client_tools.hpp and curve_mechanism_base.cpp (which follow RFC 26).
#include "curvepeer.h"

#include <QElapsedTimer>

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

namespace mprtest {

namespace {

const char Z85Chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

bool z85Decode(const QByteArray &text, unsigned char out[32])
{
    if (text.size() != 40)
        return false;
    for (int g = 0; g < 8; g++) {
        uint32_t v = 0;
        for (int i = 0; i < 5; i++) {
            const char *at = strchr(Z85Chars, text[5 * g + i]);
            if (!at || !*at)
                return false;
            v = v * 85 + uint32_t(at - Z85Chars);
        }
        for (int i = 0; i < 4; i++)
            out[4 * g + i] = (unsigned char)(v >> (24 - 8 * i));
    }
    return true;
}

void putBe64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

uint64_t getBe64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

QByteArray property(const QByteArray &name, const QByteArray &value)
{
    QByteArray b;
    b.append(char(name.size()));
    b += name;
    for (int i = 3; i >= 0; i--)
        b.append(char((uint32_t(value.size()) >> (8 * i)) & 0xff));
    return b + value;
}

unsigned char *u(QByteArray &b)
{
    return reinterpret_cast<unsigned char *>(b.data());
}

} // namespace

bool CurvePeer::fail(const char *why)
{
    m_failed = true;
    m_why = why;
    return false;
}

void CurvePeer::close()
{
    if (m_fd >= 0)
        ::close(m_fd);
    m_fd = -1;
    sodium_memzero(m_sec, sizeof m_sec);
    sodium_memzero(m_shortSec, sizeof m_shortSec);
    sodium_memzero(m_precom, sizeof m_precom);
}

uint16_t CurvePeer::localPort() const
{
    sockaddr_in a = {};
    socklen_t len = sizeof a;
    return ::getsockname(m_fd, reinterpret_cast<sockaddr *>(&a), &len) == 0 ? ntohs(a.sin_port) : 0;
}

bool CurvePeer::writeAll(const QByteArray &b, int timeoutMs)
{
    m_out += b;
    return flush(timeoutMs) || (!m_failed && fail("could not write in time"));
}

bool CurvePeer::flush(int timeoutMs)
{
    QElapsedTimer t;
    t.start();
    while (m_outAt < m_out.size()) {
        if (m_failed)
            return false;
        const ssize_t n = ::send(m_fd, m_out.constData() + m_outAt, size_t(m_out.size() - m_outAt),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            m_outAt += int(n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return fail("the connection failed (write)");
        const qint64 left = timeoutMs - t.elapsed();
        if (left <= 0)
            return false;
        pollfd p = {m_fd, POLLOUT, 0};
        ::poll(&p, 1, int(left));
    }
    m_out.clear();
    m_outAt = 0;
    return true;
}

bool CurvePeer::fill(int need, int timeoutMs)
{
    QElapsedTimer t;
    t.start();
    while (m_in.size() < need) {
        char buf[65536];
        const ssize_t n = ::recv(m_fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            m_in.append(buf, int(n));
            continue;
        }
        if (n == 0)
            return fail("closed by the server");
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return fail("the connection failed (read)");
        const qint64 left = timeoutMs - t.elapsed();
        if (left <= 0)
            return false;
        pollfd p = {m_fd, POLLIN, 0};
        ::poll(&p, 1, int(left));
    }
    return true;
}

bool CurvePeer::readFrame(QByteArray *body, bool *command, int timeoutMs)
{
    QElapsedTimer t;
    t.start();
    if (!fill(2, timeoutMs))
        return false;
    const unsigned char flags = uchar(m_in[0]);
    const bool large = flags & 0x02;
    const int head = large ? 9 : 2;
    if (!fill(head, int(qMax<qint64>(0, timeoutMs - t.elapsed()))))
        return false;
    const uint64_t size = large ? getBe64(u(m_in) + 1) : uchar(m_in[1]);
    if (size > (64u << 20))
        return fail("a frame too large");
    if (!fill(head + int(size), int(qMax<qint64>(0, timeoutMs - t.elapsed()))))
        return false;
    *command = flags & 0x04;
    *body = m_in.mid(head, int(size));
    m_in.remove(0, head + int(size));
    return true;
}

QByteArray CurvePeer::frame(const QByteArray &body, bool command) const
{
    QByteArray f;
    const bool large = body.size() > 255;
    f.append(char((command ? 0x04 : 0) | (large ? 0x02 : 0)));
    if (large) {
        unsigned char n[8];
        putBe64(n, uint64_t(body.size()));
        f.append(reinterpret_cast<char *>(n), 8);
    } else {
        f.append(char(body.size()));
    }
    return f + body;
}

// A MESSAGE: "\x07MESSAGE", the short nonce, Box [flags + data](C'->S').
QByteArray CurvePeer::box(const QByteArray &plain, bool command, bool more)
{
    QByteArray p;
    p.reserve(plain.size() + 1);
    p.append(char((more ? 0x01 : 0) | (command ? 0x02 : 0)));
    p += plain;
    unsigned char nonce[24];
    memcpy(nonce, "CurveZMQMESSAGEC", 16);
    putBe64(nonce + 16, m_nonce++);
    QByteArray body(16 + int(crypto_box_MACBYTES) + p.size(), '\0');
    memcpy(body.data(), "\x07MESSAGE", 8);
    memcpy(body.data() + 8, nonce + 16, 8);
    crypto_box_easy_afternm(u(body) + 16, u(p), uint64_t(p.size()), nonce, m_precom);
    return frame(body, false);
}

bool CurvePeer::connect(uint16_t port, const QByteArray &serverKeyZ85, const QByteArray &routingId,
                        int timeoutMs)
{
    if (sodium_init() < 0)
        return fail("libsodium");
    if (!z85Decode(serverKeyZ85, m_server))
        return fail("not a Z85 key");
    QElapsedTimer t;
    t.start();
    auto left = [&] { return int(qMax<qint64>(0, timeoutMs - t.elapsed())); };
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(m_fd, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0) {
        if (errno != EINPROGRESS)
            return fail("connect");
        pollfd p = {m_fd, POLLOUT, 0};
        int err = 0;
        socklen_t len = sizeof err;
        if (::poll(&p, 1, left()) != 1 || getsockopt(m_fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err)
            return fail("connect");
    }
    // Greetings: ours (a client, CURVE), then the server's.
    QByteArray greeting(64, '\0');
    greeting[0] = char(0xff);
    greeting[9] = char(0x7f);
    greeting[10] = 3;
    memcpy(greeting.data() + 12, "CURVE", 5);
    if (!writeAll(greeting, left()))
        return false;
    if (!fill(64, left()))
        return m_failed ? false : fail("no greeting");
    if (uchar(m_in.at(0)) != 0xff || m_in.at(9) != char(0x7f) || m_in.at(10) < 3
        || m_in.mid(12, 5) != QByteArray("CURVE"))
        return fail("not a ZeroMQ CURVE server");
    m_in.remove(0, 64);
    // HELLO
    crypto_box_keypair(m_pub, m_sec);
    crypto_box_keypair(m_shortPub, m_shortSec);
    QByteArray hello(200, '\0');
    memcpy(hello.data(), "\x05HELLO\x01\x00", 8);
    memcpy(hello.data() + 80, m_shortPub, 32);
    unsigned char nonce[24];
    memcpy(nonce, "CurveZMQHELLO---", 16);
    putBe64(nonce + 16, m_nonce++);
    memcpy(hello.data() + 112, nonce + 16, 8);
    const unsigned char zeros[64] = {};
    if (crypto_box_easy(u(hello) + 120, zeros, 64, nonce, m_server, m_shortSec) != 0)
        return fail("crypto_box_easy");
    if (!writeAll(frame(hello, true), left()))
        return false;
    // WELCOME: Box [S' + cookie](S->C')
    QByteArray welcome;
    bool command = false;
    if (!readFrame(&welcome, &command, left()))
        return m_failed ? false : fail("no WELCOME");
    if (!command || welcome.size() != 168 || !welcome.startsWith("\x07WELCOME"))
        return fail("not a WELCOME");
    memcpy(nonce, "WELCOME-", 8);
    memcpy(nonce + 8, welcome.constData() + 8, 16);
    unsigned char plain[128];
    if (crypto_box_open_easy(plain, u(welcome) + 24, 144, nonce, m_server, m_shortSec) != 0)
        return fail("WELCOME does not open");
    memcpy(m_serverShort, plain, 32);
    const QByteArray cookie(reinterpret_cast<const char *>(plain) + 32, 96);
    if (crypto_box_beforenm(m_precom, m_serverShort, m_shortSec) != 0)
        return fail("crypto_box_beforenm");
    // INITIATE: cookie, short nonce, Box [C + vouch + metadata](C'->S')
    unsigned char vouchNonce[24], vouchPlain[64], vouch[80];
    memcpy(vouchNonce, "VOUCH---", 8);
    randombytes_buf(vouchNonce + 8, 16);
    memcpy(vouchPlain, m_shortPub, 32);
    memcpy(vouchPlain + 32, m_server, 32);
    if (crypto_box_easy(vouch, vouchPlain, 64, vouchNonce, m_serverShort, m_sec) != 0)
        return fail("crypto_box_easy");
    const QByteArray metadata = property("Socket-Type", "DEALER") + property("Identity", routingId);
    QByteArray inner(reinterpret_cast<const char *>(m_pub), 32);
    inner.append(reinterpret_cast<const char *>(vouchNonce) + 8, 16);
    inner.append(reinterpret_cast<const char *>(vouch), 80);
    inner += metadata;
    QByteArray initiate(113 + inner.size() + int(crypto_box_MACBYTES), '\0');
    memcpy(initiate.data(), "\x08INITIATE", 9);
    memcpy(initiate.data() + 9, cookie.constData(), 96);
    memcpy(nonce, "CurveZMQINITIATE", 16);
    putBe64(nonce + 16, m_nonce++);
    memcpy(initiate.data() + 105, nonce + 16, 8);
    crypto_box_easy_afternm(u(initiate) + 113, u(inner), uint64_t(inner.size()), nonce, m_precom);
    if (!writeAll(frame(initiate, true), left()))
        return false;
    // READY: short nonce, Box [metadata](S'->C')
    QByteArray ready;
    if (!readFrame(&ready, &command, left()))
        return m_failed ? false : fail("no READY");
    if (!command || ready.size() < 30 || !ready.startsWith("\x05READY"))
        return fail(ready.startsWith("\x05" "ERROR") ? "ERROR instead of READY" : "not a READY");
    memcpy(nonce, "CurveZMQREADY---", 16);
    memcpy(nonce + 16, ready.constData() + 6, 8);
    QByteArray readyPlain(ready.size() - 14 - int(crypto_box_MACBYTES), '\0');
    if (crypto_box_open_easy_afternm(u(readyPlain), u(ready) + 14, uint64_t(ready.size() - 14), nonce,
                                     m_precom)
        != 0)
        return fail("READY does not open");
    return true;
}

int CurvePeer::sendPart(const QByteArray &data, bool more, int timeoutMs)
{
    if (m_failed)
        return -1;
    if (queued() && !flush(timeoutMs))
        return m_failed ? -1 : 0;
    m_out = box(data, false, more);
    m_outAt = 0;
    flush(timeoutMs);
    return m_failed ? -1 : 1;
}

QByteArray CurvePeer::recv(int timeoutMs)
{
    QElapsedTimer t;
    t.start();
    for (;;) {
        QByteArray body;
        bool command = false;
        if (!readFrame(&body, &command, int(qMax<qint64>(0, timeoutMs - t.elapsed()))))
            return QByteArray();
        if (command || body.size() < 16 + int(crypto_box_MACBYTES) + 1 || !body.startsWith("\x07MESSAGE"))
            continue; // (an ERROR, or something else we do not need)
        unsigned char nonce[24];
        memcpy(nonce, "CurveZMQMESSAGES", 16);
        memcpy(nonce + 16, body.constData() + 8, 8);
        QByteArray plain(body.size() - 16 - int(crypto_box_MACBYTES), '\0');
        if (crypto_box_open_easy_afternm(u(plain), u(body) + 16, uint64_t(body.size() - 16), nonce, m_precom)
            != 0) {
            fail("a MESSAGE that does not open");
            return QByteArray();
        }
        const bool isCommand = plain[0] & 0x02;
        const QByteArray data = plain.mid(1);
        if (isCommand) {
            if (data.startsWith("\x04PING") && data.size() >= 7) {
                const QByteArray pong = QByteArray("\x04PONG", 5) + data.mid(7);
                m_out += box(pong, true, false);
                flush(0);
            }
            continue;
        }
        return data;
    }
}

bool CurvePeer::closedByServer()
{
    if (m_failed)
        return true;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::recv(m_fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            m_in.append(buf, int(n));
            if (m_in.size() > (8 << 20))
                m_in.clear(); // nobody reads it
            continue;
        }
        if (n == 0)
            return fail("closed by the server"), true;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return fail("the connection failed"), true;
        return false;
    }
}

} // namespace mprtest
