// The router's contract again, under the Qt event loop (posted QEvents).
#include <QtTest>

#include <mprouter/qt.h>

#include "routersuite.h"

namespace {
class QtLoopDriver : public mprtest::LoopDriver
{
public:
    const mpr_event_loop *loop() override { return mpr_qt_event_loop(); }
};
} // namespace

class tst_RouterQt : public RouterSuite
{
    Q_OBJECT
public:
    tst_RouterQt()
        : RouterSuite([] { return std::unique_ptr<mprtest::LoopDriver>(new QtLoopDriver); })
    {
    }
};

QTEST_GUILESS_MAIN(tst_RouterQt)
#include "tst_router_qt.moc"
