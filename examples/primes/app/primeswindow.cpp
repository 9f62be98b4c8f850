/*
 * primeswindow.cpp - see primeswindow.h.
 *
 * Progress bars move as messages arrive (PrimesJob::workerProgress, one
 * per message, on the main thread); the totals are refreshed five times a
 * second by a timer. mprouter dispatches messages in short time slices, so
 * the window keeps painting however fast the workers send.
 */
#include "primeswindow.h"

#include <QtCore/QLocale>
#include <QtCore/QThread>
#include <QtGui/QCloseEvent>
#include <QtWidgets/QFormLayout>
#include <QtWidgets/QGridLayout>
#include <QtWidgets/QGroupBox>
#include <QtWidgets/QHBoxLayout>
#include <QtWidgets/QLabel>
#include <QtWidgets/QProgressBar>
#include <QtWidgets/QPushButton>
#include <QtWidgets/QSpinBox>
#include <QtWidgets/QVBoxLayout>

namespace {

const int BarSteps = 1000;

QString number(quint64 n)
{
    return QLocale(QLocale::English, QLocale::UnitedStates).toString(qulonglong(n));
}

QSpinBox *spinBox(int min, int max, int value)
{
    QSpinBox *box = new QSpinBox;
    box->setRange(min, max);
    box->setValue(value);
    box->setGroupSeparatorShown(true);
    box->setAlignment(Qt::AlignRight);
    return box;
}

} // namespace

PrimesWindow::PrimesWindow(QWidget *parent)
    : QWidget(parent)
{
    setWindowTitle(QStringLiteral("mprouter: counting primes in worker processes"));

    m_from = spinBox(1, 2000000000, 1);
    m_to = spinBox(1, 2000000000, 20000000);
    m_workers = spinBox(1, 64, qMax(1, QThread::idealThreadCount()));
    m_from->setObjectName(QStringLiteral("from"));
    m_to->setObjectName(QStringLiteral("to"));
    m_workers->setObjectName(QStringLiteral("workers"));
    m_start = new QPushButton(QStringLiteral("&Start"));
    m_cancel = new QPushButton(QStringLiteral("&Cancel"));
    m_start->setObjectName(QStringLiteral("start"));
    m_cancel->setObjectName(QStringLiteral("cancel"));
    m_start->setDefault(true);

    QHBoxLayout *form = new QHBoxLayout;
    form->addWidget(new QLabel(QStringLiteral("Primes from")));
    form->addWidget(m_from, 1);
    form->addWidget(new QLabel(QStringLiteral("to")));
    form->addWidget(m_to, 1);
    form->addWidget(new QLabel(QStringLiteral("with")));
    form->addWidget(m_workers);
    form->addWidget(new QLabel(QStringLiteral("worker processes")));
    form->addSpacing(12);
    form->addWidget(m_start);
    form->addWidget(m_cancel);

    QGroupBox *workers = new QGroupBox(QStringLiteral("Workers"));
    m_grid = new QGridLayout(workers);
    m_grid->setColumnStretch(1, 1);

    m_count = new QLabel;
    m_rate = new QLabel;
    m_elapsed = new QLabel;
    m_status = new QLabel(QStringLiteral("Set a range and press Start."));
    m_remote = new QLabel;
    m_remote->setObjectName(QStringLiteral("remote"));
    m_remote->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_remote->hide();
    m_count->setObjectName(QStringLiteral("count"));
    m_rate->setObjectName(QStringLiteral("rate"));
    m_elapsed->setObjectName(QStringLiteral("elapsed"));
    m_status->setObjectName(QStringLiteral("status"));
    QFont big = m_count->font();
    big.setPointSizeF(big.pointSizeF() * 1.4);
    big.setBold(true);
    m_count->setFont(big);
    QFormLayout *totals = new QFormLayout;
    totals->addRow(QStringLiteral("Primes found:"), m_count);
    totals->addRow(QStringLiteral("Messages per second:"), m_rate);
    totals->addRow(QStringLiteral("Elapsed:"), m_elapsed);

    QVBoxLayout *layout = new QVBoxLayout(this);
    layout->addLayout(form);
    layout->addWidget(workers);
    layout->addLayout(totals);
    layout->addWidget(m_remote);
    layout->addWidget(m_status);
    layout->addStretch(1);

    connect(m_start, &QPushButton::clicked, this, &PrimesWindow::start);
    connect(m_cancel, &QPushButton::clicked, this, &PrimesWindow::cancel);
    connect(&m_job, &PrimesJob::workerProgress, this, &PrimesWindow::showWorker);
    connect(&m_job, &PrimesJob::workerFinished, this, &PrimesWindow::showWorker);
    connect(&m_job, &PrimesJob::workerStarted, this, &PrimesWindow::showWorker);
    connect(&m_job, &PrimesJob::finished, this, &PrimesWindow::showEnd);
    connect(&m_job, &PrimesJob::cancelled, this, &PrimesWindow::showEnd);
    m_tick.setInterval(200);
    connect(&m_tick, &QTimer::timeout, this, &PrimesWindow::showTotals);

    setRunning(false);
    showTotals();
    resize(760, 420);
}

void PrimesWindow::setRange(quint64 from, quint64 to)
{
    m_from->setValue(int(from));
    m_to->setValue(int(to));
}

void PrimesWindow::setWorkers(int workers)
{
    m_workers->setValue(workers);
}

void PrimesWindow::start()
{
    QString error;
    if (!m_job.start(quint64(m_from->value()), quint64(m_to->value()), m_workers->value(),
                     &error)) {
        m_status->setText(QStringLiteral("Cannot start: ") + error);
        return;
    }
    makeRows();
    // Where workers on other machines connect (and the hosts they run on).
    m_remote->setVisible(!m_job.remoteEndpoint().isEmpty());
    m_remote->setText(QStringLiteral("Remote workers connect to %1 (ZeroMQ, CURVE)%2")
                          .arg(m_job.remoteEndpoint(),
                               m_job.hosts().isEmpty()
                                   ? QString()
                                   : QStringLiteral("; hosts: ")
                                         + m_job.hosts().join(QStringLiteral(", "))));
    m_rateClock.start();
    m_rateMessages = 0;
    m_rate->setText(QStringLiteral("0"));
    m_status->setText(QStringLiteral("Running %1 worker processes…").arg(m_job.workerCount()));
    setRunning(true);
    m_tick.start();
    showTotals();
}

void PrimesWindow::cancel()
{
    m_job.cancel(); // cancelled() follows once every worker has stopped: showEnd()
    if (m_job.isCancelling()) {
        m_cancel->setEnabled(false);
        m_status->setText(QStringLiteral("Cancelling: the workers stop by themselves…"));
    }
}

void PrimesWindow::closeEvent(QCloseEvent *event)
{
    if (!m_job.isRunning()) {
        event->accept();
        return;
    }
    m_closeWhenStopped = true;
    cancel();
    event->ignore(); // closed by showEnd()
}

void PrimesWindow::makeRows()
{
    for (const Row &row : qAsConst(m_rows)) {
        delete row.name;
        delete row.bar;
        delete row.status;
    }
    m_rows.clear();
    for (int i = 0; i < m_job.workerCount(); i++) {
        Row row;
        row.name = new QLabel;
        row.bar = new QProgressBar;
        row.bar->setRange(0, BarSteps);
        row.bar->setObjectName(QStringLiteral("bar%1").arg(i));
        row.status = new QLabel;
        row.status->setObjectName(QStringLiteral("worker%1").arg(i));
        row.status->setMinimumWidth(row.status->fontMetrics().horizontalAdvance(
            QStringLiteral("killed by signal 9 (Killed), 000,000 primes")));
        m_grid->addWidget(row.name, i, 0);
        m_grid->addWidget(row.bar, i, 1);
        m_grid->addWidget(row.status, i, 2);
        m_rows.append(row);
        showWorker(i);
    }
}

void PrimesWindow::showWorker(int index)
{
    if (index >= m_rows.size())
        return;
    const PrimesJob::Worker &w = m_job.worker(index);
    const Row &row = m_rows[index];
    row.name->setText(QStringLiteral("%1 – %2%3").arg(
        number(w.from), number(w.to),
        w.host.isEmpty() ? QString() : QStringLiteral(" on ") + w.host));
    row.bar->setValue(int(w.checked * BarSteps / w.size()));
    QString text;
    QString colour;
    switch (w.state) {
    case PrimesJob::WorkerState::Running:
        text = w.pid ? QStringLiteral("pid %1, %2 primes").arg(w.pid).arg(number(w.primes))
                     : QStringLiteral("waiting for a worker");
        break;
    case PrimesJob::WorkerState::Done:
        text = QStringLiteral("done, %1 primes").arg(number(w.primes));
        colour = QStringLiteral("darkgreen");
        break;
    case PrimesJob::WorkerState::Failed:
        text = QStringLiteral("FAILED: %1").arg(w.failure);
        colour = QStringLiteral("red");
        break;
    case PrimesJob::WorkerState::Cancelled:
        text = QStringLiteral("cancelled");
        colour = QStringLiteral("gray");
        break;
    }
    row.status->setText(text);
    row.status->setStyleSheet(colour.isEmpty() ? QString() : QStringLiteral("color: ") + colour);
}

void PrimesWindow::showTotals()
{
    m_count->setText(number(m_job.primes()));
    m_elapsed->setText(QStringLiteral("%1 s").arg(m_job.elapsedSeconds(), 0, 'f', 1));
    if (m_job.isRunning() && m_rateMessages == 0 && m_job.elapsedSeconds() > 0.1) {
        // The first second: the average so far.
        m_rate->setText(number(quint64(m_job.messages() / m_job.elapsedSeconds() + 0.5)));
    }
    if (m_job.isRunning() && m_rateClock.elapsed() >= 1000) {
        // Messages per second over the last second or so.
        const double seconds = m_rateClock.restart() / 1000.0;
        m_rate->setText(number(quint64((m_job.messages() - m_rateMessages) / seconds + 0.5)));
        m_rateMessages = m_job.messages();
    } else if (!m_job.isRunning() && m_job.elapsedSeconds() > 0) {
        m_rate->setText(QStringLiteral("%1 on average (%2 messages)")
                            .arg(number(quint64(m_job.messages() / m_job.elapsedSeconds() + 0.5)),
                                 number(m_job.messages())));
    }
}

void PrimesWindow::showEnd()
{
    m_tick.stop();
    setRunning(false);
    for (int i = 0; i < m_rows.size(); i++)
        showWorker(i);
    showTotals();
    const QString seconds = QString::number(m_job.elapsedSeconds(), 'f', 1);
    if (m_job.state() == PrimesJob::State::Cancelled) {
        m_status->setText(QStringLiteral("Cancelled after %1 s: every worker stopped, "
                                         "%2 killed.")
                              .arg(seconds)
                              .arg(m_job.executorStats().workers_killed));
    } else if (m_job.failedWorkers() > 0) {
        m_status->setText(QStringLiteral("Finished in %1 s, but %2 of %3 workers failed: "
                                         "the count misses their chunks.")
                              .arg(seconds)
                              .arg(m_job.failedWorkers())
                              .arg(m_job.workerCount()));
    } else {
        m_status->setText(QStringLiteral("Done: %1 primes from %2 to %3 in %4 s.")
                              .arg(number(m_job.primes()), number(m_job.from()),
                                   number(m_job.to()), seconds));
    }
    if (m_closeWhenStopped) {
        m_closeWhenStopped = false;
        close();
    }
}

void PrimesWindow::setRunning(bool running)
{
    m_start->setEnabled(!running);
    m_cancel->setEnabled(running);
    m_from->setEnabled(!running);
    m_to->setEnabled(!running);
    m_workers->setEnabled(!running);
}
