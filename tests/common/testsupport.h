// testsupport.h - helpers shared by the test programs: event-loop drivers,
// log capture, message inboxes and worker processes.
#ifndef MPR_TESTSUPPORT_H
#define MPR_TESTSUPPORT_H

#include <QByteArray>
#include <QString>
#include <QStringList>
#include <QVector>

#include <functional>
#include <memory>
#include <mutex>
#include <sys/types.h>

#include <mprouter/mprouter.h>
#include "quiet.h"

namespace mprtest {

// An event loop the router can use, driven by the running QCoreApplication.
class LoopDriver
{
public:
    virtual ~LoopDriver() = default;
    virtual const mpr_event_loop *loop() = 0;
};
using LoopFactory = std::function<std::unique_ptr<LoopDriver>()>;

// The fd loop, watched by a QSocketNotifier that calls dispatch: the way a
// Qt application would drive it.
std::unique_ptr<LoopDriver> makeFdLoopDriver();

// Collects mprouter's log messages while it exists (thread-safe).
class LogCapture
{
public:
    LogCapture();
    ~LogCapture();
    int count(const QString &needle) const;
    QStringList messages() const;

private:
    static void handler(void *arg, int level, const char *msg);
    // std::mutex, not QMutex: ThreadSanitizer sees pthread locks, not the
    // uninstrumented Qt library's.
    mutable std::mutex lock;
    QStringList lines;
};

// Messages received by one receiver, in order.
struct Inbox
{
    QVector<QByteArray> messages;
    int lost = 0;
    void attach(mpr_receiver *receiver);
    // True if the messages are #0..#n-1 of stream tag, each of size bytes.
    bool isSequence(int n, size_t size, uint32_t tag) const;
};

// fork() a child that runs body and _exit()s with its result. The child
// must use only async-safe-ish code: mprouter sender calls, malloc.
pid_t forkWorker(const std::function<int()> &body);

// Several forked workers that start together: each child waits until
// open() (or the gate's end) before it runs its body. Fork every worker of
// a test through one gate, then open it. Besides starting them at once,
// this keeps fork() away from traffic: a child forked while another thread
// of this process is inside malloc inherits that lock held, and GCC 12's
// AddressSanitizer allocator (unlike glibc's malloc) has no fork handler,
// so such a child can hang in its first malloc. The router's ZeroMQ I/O
// thread allocates for every frame it receives; forking worker N while
// workers 0..N-1 already send is exactly that.
class ForkGate
{
public:
    ForkGate();
    ~ForkGate();
    pid_t fork(const std::function<int()> &body);
    // For a child forked some other way (NetNs::fork): wait for open().
    void waitInChild() const;
    void open();

private:
    int fds[2] = {-1, -1};
};
// Non-blocking: true once the child has exited (status stored); may be
// called again for the same child.
bool reaped(pid_t pid, int *status);

// In a worker: start, send count messages (payload.h) and stop.
int sendSequence(mpr_sender *sender, int count, size_t size, uint32_t tag, bool stop = true);

// The exec'ed worker program (tests/worker).
QString workerPath();

// Names in /proc/self/fd or /proc/self/task.
QStringList procEntries(const char *dir);

} // namespace mprtest

#endif
