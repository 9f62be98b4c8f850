// The router's contract with the fallback transport: messages as frames on
// the socket instead of the shared-memory ring (MPR_TRANSPORT=socket, read
// by every sender this process and its children start).
#include <QtTest>

#include "routersuite.h"

class tst_RouterSocket : public RouterSuite
{
    Q_OBJECT
public:
    tst_RouterSocket() : RouterSuite(mprtest::makeFdLoopDriver)
    {
        qputenv("MPR_TRANSPORT", "socket");
    }
};

QTEST_GUILESS_MAIN(tst_RouterSocket)
#include "tst_router_socket.moc"
