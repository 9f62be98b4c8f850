// The router's contract under the fd event loop (driven by a QSocketNotifier).
#include <QtTest>

#include "routersuite.h"

class tst_RouterFdLoop : public RouterSuite
{
    Q_OBJECT
public:
    tst_RouterFdLoop() : RouterSuite(mprtest::makeFdLoopDriver) {}
};

QTEST_GUILESS_MAIN(tst_RouterFdLoop)
#include "tst_router_fdloop.moc"
