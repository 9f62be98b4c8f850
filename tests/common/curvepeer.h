// curvepeer.h - a ZeroMQ client written by hand: ZMTP 3.0 with CURVE
// (RFC 23, RFC 26) over a plain TCP socket, with libsodium, as a DEALER.
// A hostile peer needs only the server's public key to get through CURVE;
// then it sends what libzmq would never send: parts of one message, each
// flagged MORE, without end (libzmq keeps the parts of an unfinished
// message on its own side until the last one), and it reads what it
// likes when it likes. Only for tests/remote (link libsodium).
#ifndef MPR_TEST_CURVEPEER_H
#define MPR_TEST_CURVEPEER_H

#include <QByteArray>

#include <cstdint>

namespace mprtest {

class CurvePeer
{
public:
    CurvePeer() = default;
    CurvePeer(const CurvePeer &) = delete;
    CurvePeer &operator=(const CurvePeer &) = delete;
    ~CurvePeer() { close(); }

    // Connect to 127.0.0.1:port and get through the ZeroMQ greeting and the
    // CURVE handshake with this server key (Z85, 40 characters), as a
    // DEALER with this routing id (may be empty). False on failure (why()).
    bool connect(uint16_t port, const QByteArray &serverKeyZ85, const QByteArray &routingId = {},
                 int timeoutMs = 10000);
    // Queue one message part (more: another part of the same message
    // follows) and write what the socket takes within timeoutMs. At most
    // one part waits here: returns 1 if this part was queued, 0 if the one
    // before is still going out (nothing queued: call again), -1 if the
    // connection failed (closed by the server).
    int sendPart(const QByteArray &data, bool more, int timeoutMs);
    // Write what is queued within timeoutMs; true once all is out.
    bool flush(int timeoutMs);
    bool queued() const { return m_outAt < m_out.size(); }
    // The next message part from the server within timeoutMs (PINGs are
    // answered on the way); a null QByteArray if none.
    QByteArray recv(int timeoutMs);
    // True once the server closed the connection (reads what is there).
    bool closedByServer();
    bool failed() const { return m_failed; }
    const char *why() const { return m_why; }
    uint16_t localPort() const;
    int fd() const { return m_fd; }
    void close();

private:
    bool writeAll(const QByteArray &b, int timeoutMs);
    bool readFrame(QByteArray *body, bool *command, int timeoutMs);
    bool fill(int need, int timeoutMs);
    QByteArray frame(const QByteArray &body, bool command) const;
    QByteArray box(const QByteArray &plain, bool command, bool more);
    bool fail(const char *why);

    int m_fd = -1;
    bool m_failed = false;
    const char *m_why = "";
    unsigned char m_server[32] = {}, m_serverShort[32] = {};
    unsigned char m_pub[32] = {}, m_sec[32] = {}, m_shortPub[32] = {}, m_shortSec[32] = {};
    unsigned char m_precom[32] = {};
    uint64_t m_nonce = 1;
    QByteArray m_in;  // read, not yet parsed
    QByteArray m_out; // to write, from m_outAt
    int m_outAt = 0;
};

} // namespace mprtest

#endif
