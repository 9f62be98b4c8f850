#include "testsupport.h"

#include <QDir>
#include <QHash>
#include <QSocketNotifier>

#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "payload.h"

namespace mprtest {

namespace {

class FdLoopDriver : public LoopDriver
{
public:
    FdLoopDriver()
    {
        if (mpr_fd_loop_new(&fdLoop) < 0)
            qFatal("mpr_fd_loop_new failed");
        notifier.reset(new QSocketNotifier(mpr_fd_loop_fd(fdLoop), QSocketNotifier::Read));
        QObject::connect(notifier.get(), &QSocketNotifier::activated,
                         [this] { mpr_fd_loop_dispatch(fdLoop); });
    }
    ~FdLoopDriver() override
    {
        notifier.reset();
        mpr_fd_loop_free(fdLoop);
    }
    const mpr_event_loop *loop() override { return mpr_fd_loop_event_loop(fdLoop); }

private:
    mpr_fd_loop *fdLoop = nullptr;
    std::unique_ptr<QSocketNotifier> notifier;
};

} // namespace

std::unique_ptr<LoopDriver> makeFdLoopDriver()
{
    return std::unique_ptr<LoopDriver>(new FdLoopDriver);
}

LogCapture::LogCapture()
{
    mpr_set_log_handler(handler, this);
}

LogCapture::~LogCapture()
{
    mpr_set_log_handler(nullptr, nullptr);
}

void LogCapture::handler(void *arg, int level, const char *msg)
{
    if (level < MPR_LOG_WARNING)
        return;
    auto self = static_cast<LogCapture *>(arg);
    std::lock_guard<std::mutex> locker(self->lock);
    self->lines << QString::fromUtf8(msg);
}

int LogCapture::count(const QString &needle) const
{
    std::lock_guard<std::mutex> locker(lock);
    int n = 0;
    for (const QString &line : lines)
        n += line.contains(needle);
    return n;
}

QStringList LogCapture::messages() const
{
    std::lock_guard<std::mutex> locker(lock);
    return lines;
}

void Inbox::attach(mpr_receiver *receiver)
{
    mpr_receiver_set_callback(
        receiver,
        [](void *arg, const void *data, size_t size) {
            static_cast<Inbox *>(arg)->messages.append(
                QByteArray(static_cast<const char *>(data), int(size)));
        },
        this);
    mpr_receiver_set_lost_callback(
        receiver, [](void *arg) { static_cast<Inbox *>(arg)->lost++; }, this);
}

bool Inbox::isSequence(int n, size_t size, uint32_t tag) const
{
    if (messages.size() != n)
        return false;
    for (int i = 0; i < n; i++) {
        const QByteArray &m = messages[i];
        if (size_t(m.size()) != size
            || !mpr_test_check(reinterpret_cast<const unsigned char *>(m.constData()), size,
                               uint32_t(i), tag))
            return false;
    }
    return true;
}

pid_t forkWorker(const std::function<int()> &body)
{
    waitForQuietThreads();
    pid_t pid = fork();
    if (pid == 0)
        _exit(body());
    return pid;
}

ForkGate::ForkGate()
{
    if (::pipe2(fds, O_CLOEXEC) != 0)
        fds[0] = fds[1] = -1;
}

ForkGate::~ForkGate()
{
    open();
}

pid_t ForkGate::fork(const std::function<int()> &body)
{
    if (fds[0] < 0 || fds[1] < 0)
        return -1;
    return forkWorker([this, &body] {
        waitInChild();
        return body();
    });
}

void ForkGate::waitInChild() const
{
    if (fds[0] < 0 || fds[1] < 0)
        return;
    ::close(fds[1]);
    char byte; // end of file once the parent (and every child) closed it
    while (::read(fds[0], &byte, 1) < 0 && errno == EINTR) {
    }
    ::close(fds[0]);
}

void ForkGate::open()
{
    for (int &fd : fds) {
        if (fd >= 0)
            ::close(fd);
        fd = -1;
    }
}

bool reaped(pid_t pid, int *status)
{
    // QTRY_* evaluates its expression once more after it became true, so
    // remember what waitpid() said.
    static QHash<pid_t, int> exited;
    if (!exited.contains(pid)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) != pid)
            return false;
        exited.insert(pid, st);
    }
    *status = exited.value(pid);
    return true;
}

int sendSequence(mpr_sender *sender, int count, size_t size, uint32_t tag, bool stop)
{
    int rc = mpr_sender_start(sender);
    if (rc < 0)
        return rc;
    QByteArray buf(int(size ? size : 1), '\0');
    auto p = reinterpret_cast<unsigned char *>(buf.data());
    for (int i = 0; i < count && rc == 0; i++) {
        mpr_test_fill(p, size, uint32_t(i), tag);
        rc = mpr_sender_send(sender, p, size);
    }
    if (stop && rc == 0)
        rc = mpr_sender_stop(sender);
    return rc;
}

QString workerPath()
{
    return QStringLiteral(MPR_TEST_WORKER);
}

QStringList procEntries(const char *dir)
{
    return QDir(QString::fromLatin1(dir)).entryList(QDir::NoDotAndDotDot | QDir::AllEntries
                                                    | QDir::System);
}

} // namespace mprtest
