// The router's contract over the remote transport: ZeroMQ over tcp with
// CURVE, on loopback. Every router gets a remote endpoint and every sender
// this process and its children start is forced onto ZeroMQ
// (MPR_TRANSPORT=zmq), so the whole suite runs as it does for the ring
// and the socket.
#include <QtTest>

#include "routersuite.h"

class tst_RouterZmq : public RouterSuite
{
    Q_OBJECT
public:
    tst_RouterZmq()
        : RouterSuite(mprtest::makeFdLoopDriver, [](mpr_router *r) {
              QCOMPARE(mpr_router_set_remote(r, "tcp://127.0.0.1:0", nullptr), 0);
              // Lost senders are noticed after the window: short, for the tests.
              QCOMPARE(mpr_router_set_remote_window(r, 2.0), 0);
          })
    {
        qputenv("MPR_TRANSPORT", "zmq");
    }
};

QTEST_GUILESS_MAIN(tst_RouterZmq)
#include "tst_router_zmq.moc"
