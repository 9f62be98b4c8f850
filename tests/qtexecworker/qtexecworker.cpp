// qtexecworker - a worker program of mpr::Executor (tests/qt_executor):
// mpr_worker_main with tasks that speak QVariants (mpr::encodeVariant).
#include <QtCore/QThread>
#include <QtCore/QVariant>

#include <mprouter/worker.h>
#include <mprouter_qt.h>

namespace {

QVariant argument(const void *arg, size_t size)
{
    return mpr::decodeVariant(QByteArray(static_cast<const char *>(arg), int(size)));
}

int result(mpr_task *task, const QVariant &value)
{
    const QByteArray bytes = mpr::encodeVariant(value);
    return mpr_task_result(task, bytes.constData(), size_t(bytes.size()));
}

// A QVariantList of numbers: their sum (qlonglong) and the list's size in a map.
int sum(mpr_task *task, const void *arg, size_t size)
{
    const QVariant v = argument(arg, size);
    if (v.userType() != QMetaType::QVariantList)
        return mpr_task_fail(task, "sum needs a list");
    qlonglong total = 0;
    const QVariantList list = v.toList();
    for (const QVariant &x : list)
        total += x.toLongLong();
    QVariantMap m;
    m.insert(QStringLiteral("sum"), total);
    m.insert(QStringLiteral("count"), list.size());
    return result(task, m);
}

// A QString: fails with it as the message.
int fail(mpr_task *task, const void *arg, size_t size)
{
    return mpr_task_fail(task, "%s", argument(arg, size).toString().toUtf8().constData());
}

// An int n: progress 0 .. n-1, then the result "done".
int count(mpr_task *task, const void *arg, size_t size)
{
    const int n = argument(arg, size).toInt();
    for (int i = 0; i < n; i++) {
        const QByteArray bytes = mpr::encodeVariant(i);
        if (mpr_task_progress(task, bytes.constData(), size_t(bytes.size())) != 0)
            return mpr_task_fail(task, "progress %d failed", i);
    }
    return result(task, QStringLiteral("done"));
}

// Runs until cancelled (at most 120 s, then fails), testing every ms.
int spin(mpr_task *task, const void *, size_t)
{
    for (int i = 0; i < 120000; i++) {
        if (mpr_task_cancelled(task))
            return 0;
        QThread::msleep(1);
    }
    return mpr_task_fail(task, "spin was never cancelled");
}

} // namespace

int main()
{
    static const mpr_task_def tasks[] = {
        {"sum", sum}, {"fail", fail}, {"count", count}, {"spin", spin}, {nullptr, nullptr}};
    return mpr_worker_main(tasks, nullptr, nullptr);
}
