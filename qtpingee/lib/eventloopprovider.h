/**
 * @file eventloopprovider.h
 * @brief The interface of the mprouter Qt plugin.
 *
 * An application that links only the C core can get the Qt event loop at
 * run time by loading the plugin (qtpingee/plugin, built into
 * BUILD/plugins/mprouter/, installed into Qt's plugin folder, in
 * QT_INSTALL_PLUGINS/mprouter-qt5/ or mprouter-qt6/) with QPluginLoader:
 *
 *     QPluginLoader loader(path);
 *     auto *provider = qobject_cast<mpr::EventLoopProvider *>(loader.instance());
 *     if (provider)
 *         mpr_router_new(&router, provider->eventLoop());
 *
 * This header needs no library: it declares only the interface.
 */
#ifndef MPROUTER_EVENTLOOPPROVIDER_H
#define MPROUTER_EVENTLOOPPROVIDER_H

#include <QtCore/QtPlugin>

#include <mprouter/event_loop.h>

/** The interface id of mpr::EventLoopProvider (Q_DECLARE_INTERFACE). */
#define MPR_EVENT_LOOP_PROVIDER_IID "org.mprouter.EventLoopProvider/1.0"

namespace mpr {

/// The interface the mprouter Qt plugin implements: hands out the Qt
/// event loop (see the top of this file).
class EventLoopProvider
{
public:
    virtual ~EventLoopProvider() = default;

    /// An event loop for the C core; same contract as mpr_qt_event_loop():
    /// MAIN THREAD, once a QCoreApplication exists; valid while the plugin
    /// stays loaded.
    virtual const mpr_event_loop *eventLoop() = 0;
};

} // namespace mpr

Q_DECLARE_INTERFACE(mpr::EventLoopProvider, MPR_EVENT_LOOP_PROVIDER_IID)

#endif // MPROUTER_EVENTLOOPPROVIDER_H
