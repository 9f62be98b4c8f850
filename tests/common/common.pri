# Shared by the router test programs: the suite, its helpers and the worker.
include($$MPR_ROOT/mprouter.pri)
INCLUDEPATH += $$PWD
HEADERS += $$PWD/quiet.h $$PWD/testsupport.h $$PWD/routersuite.h $$PWD/payload.h $$PWD/rawpeer.h $$PWD/peers.h \
    $$PWD/netns.h $$PWD/procs.h
SOURCES += $$PWD/testsupport.cpp $$PWD/routersuite.cpp $$PWD/netns.cpp $$PWD/procs.cpp
# The hand-made peer (rawpeer.c) speaks src/wire.h; its handshake tags come
# from src/wire.c, compiled in (the library hides its internal symbols).
mpr_rawpeer {
    INCLUDEPATH += $$MPR_ROOT/src
    QMAKE_CFLAGS += -D_GNU_SOURCE
    SOURCES += $$PWD/rawpeer.c $$MPR_ROOT/src/wire.c $$MPR_ROOT/src/base.c
}
# The remote transport's calls answer MPR_ENOTSUP in a build without it.
!mpr_remote: DEFINES += MPR_TEST_NO_REMOTE
DEFINES += MPR_TEST_WORKER=\\\"$$MPR_BUILD/tests/worker/mpr_test_worker\\\"
DEFINES += MPR_TEST_ROUTERPROC=\\\"$$MPR_BUILD/tests/routerproc/mpr_test_routerproc\\\"
