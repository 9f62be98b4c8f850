/**
 * @file mprouter/mprouter.h
 * @brief The whole public C API of mprouter.
 *
 * mprouter carries byte messages from worker processes and threads to
 * receivers on the main thread of an event-loop-driven application.
 *
 *   common.h      export macro, error codes (mpr_strerror), logging
 *   event_loop.h  the interface to an event loop (pingee / pinger)
 *   fd_loop.h     the built-in file-descriptor event loop
 *   router.h      the router and its receivers (main thread)
 *   sender.h      the sending end, used in workers
 *   executor.h    jobs: a pool of worker processes with futures
 *   worker.h      the worker side of an executor
 *
 * The Qt event loop is in <mprouter/qt.h> (library mprouter-qt5 or
 * mprouter-qt6).
 */
#ifndef MPROUTER_MPROUTER_H
#define MPROUTER_MPROUTER_H

#include <mprouter/common.h>
#include <mprouter/event_loop.h>
#include <mprouter/executor.h>
#include <mprouter/fd_loop.h>
#include <mprouter/router.h>
#include <mprouter/sender.h>
#include <mprouter/version.h>
#include <mprouter/worker.h>

#endif /* MPROUTER_MPROUTER_H */
