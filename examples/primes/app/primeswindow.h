/*
 * primeswindow.h - the window of the primes example: a range, a number of
 * workers, Start and Cancel, one progress bar per worker, the running count
 * of primes, messages per second and the elapsed time; with workers on
 * other machines (PrimesJob::setHosts), the endpoint they connect to and
 * each worker's host.
 */
#ifndef PRIMESWINDOW_H
#define PRIMESWINDOW_H

#include "primesjob.h"

#include <QtCore/QElapsedTimer>
#include <QtCore/QTimer>
#include <QtCore/QVector>
#include <QtWidgets/QWidget>

class QGridLayout;
class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;

class PrimesWindow : public QWidget
{
    Q_OBJECT
public:
    explicit PrimesWindow(QWidget *parent = nullptr);

    PrimesJob *job() { return &m_job; }
    // The form's values (what Start uses).
    void setRange(quint64 from, quint64 to);
    void setWorkers(int workers);

public Q_SLOTS:
    void start();
    void cancel();
    // Refresh the count, messages per second and elapsed time now (a timer
    // does it five times a second during a run).
    void showTotals();

protected:
    // Closing the window during a run cancels it; the window closes once
    // every worker has stopped (by itself: cancel is cooperative).
    void closeEvent(QCloseEvent *event) override;

private:
    struct Row
    {
        QLabel *name;
        QProgressBar *bar;
        QLabel *status;
    };

    void makeRows();
    void showWorker(int index);
    void showEnd();
    void setRunning(bool running);

    PrimesJob m_job;
    QSpinBox *m_from;
    QSpinBox *m_to;
    QSpinBox *m_workers;
    QPushButton *m_start;
    QPushButton *m_cancel;
    QGridLayout *m_grid;
    QVector<Row> m_rows;
    QLabel *m_count;
    QLabel *m_rate;
    QLabel *m_elapsed;
    QLabel *m_status;
    QLabel *m_remote;
    QTimer m_tick;
    // For messages per second: the count a moment ago.
    QElapsedTimer m_rateClock;
    quint64 m_rateMessages = 0;
    bool m_closeWhenStopped = false;
};

#endif // PRIMESWINDOW_H
