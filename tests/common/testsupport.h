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
