// routersuite.h - the router's contract as one QtTest suite, run once per
// event loop (tests/router_fdloop, tests/router_qt).
#ifndef MPR_ROUTERSUITE_H
#define MPR_ROUTERSUITE_H

#include <QObject>

#include "testsupport.h"

class RouterSuite : public QObject
{
    Q_OBJECT
public:
    // configure, if given, runs on every new router before its first start
    // (the remote suite asks for a remote endpoint there).
    explicit RouterSuite(mprtest::LoopFactory factory,
                         std::function<void(mpr_router *)> configure = {});
    ~RouterSuite() override;

private slots:
    void init();
    void cleanup();

    void forkedWorker();
    void manyWorkersAtOnce();
    void sendFromMainThread();
    void sendFromThreads();
    void execedWorker();
    void messageSizes_data();
    void messageSizes();

    void startTwice();
    void notRunning_data();
    void notRunning();
    void closePipeOfAnotherRouter();
    void unclosedPipesWarning();
    void noThreadsOrFdsLeftAfterStop();
    void sendAfterCloseIsDiscarded();
    void senderMisuse_data();
    void senderMisuse();
    void senderOfRestartedRouter();
    void badSenderStrings_data();
    void badSenderStrings();

    void lostSender();
    void stoppedRouterGivesEpipeNotSigpipe();
    void stopInsideCallback();
    void closePipeInsideOwnCallback();

    void routeUntilMessages_data();
    void routeUntilMessages();
    void routeUntilTrueOnEntryRoutesNothing();
    void routeUntilTimesOut();
    void routeUntilDeadlineNotPerMessage();
    void routeUntilSecondCallAfterTimeout();
    void routeUntilQueuedWithTimeoutZero();
    void routeUntilTimeoutZeroAfterSends_data();
    void routeUntilTimeoutZeroAfterSends();
    void routeUntilRejectsNaN();
    void eventLoopAfterRouteUntil();

    void senderForkedAfterStart();
    void senderUsedFromAnotherThread();
    void staleReceiverHandle();
    void freeRouterInsideCallback_data();
    void freeRouterInsideCallback();
    void onlyDocumentedErrors();
    void remoteCallsOfThisBuild();

private:
    mprtest::LoopFactory factory;
    std::function<void(mpr_router *)> configure;
    // A new stopped router, configured.
    mpr_router *newRouter();
    // Senders go over ZeroMQ (MPR_TRANSPORT=zmq): where the contract is
    // that of a network, the suite checks that one.
    static bool remote();
    std::unique_ptr<mprtest::LoopDriver> driver;
    mpr_router *router = nullptr;
};

#endif
