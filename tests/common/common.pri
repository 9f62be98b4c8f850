# Shared by the router test programs: the suite, its helpers and the worker.
include($$MPR_ROOT/mprouter.pri)
INCLUDEPATH += $$PWD
HEADERS += $$PWD/testsupport.h $$PWD/routersuite.h $$PWD/payload.h
SOURCES += $$PWD/testsupport.cpp $$PWD/routersuite.cpp
DEFINES += MPR_TEST_WORKER=\\\"$$MPR_BUILD/tests/worker/mpr_test_worker\\\"
