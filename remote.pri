# remote.pri - is the remote transport built? Included by the .pro files
# that need to know (src, tests, packaging, examples; through mprouter.pri
# for everything that uses the C core). Not in .qmake.conf: that runs
# before the command line's CONFIG+=mpr_no_remote.
#
# CONFIG mpr_remote is set when pkg-config finds libsodium (the remote
# transport speaks ZeroMQ's protocol with CURVE itself, src/zmtp.c),
# unless qmake is given CONFIG+=mpr_no_remote. CONFIG mpr_zmq is set when
# it also finds libzmq: only the tests and the benchmark use it (real
# ZeroMQ peers, hostile ones among them, and the ZeroMQ baselines).
!mpr_no_remote:!mpr_remote {
    MPR_SODIUM_VERSION = $$system(pkg-config --modversion libsodium 2>/dev/null)
    !isEmpty(MPR_SODIUM_VERSION): CONFIG += mpr_remote
}
mpr_remote:!mpr_zmq {
    MPR_ZMQ_VERSION = $$system(pkg-config --modversion libzmq 2>/dev/null)
    !isEmpty(MPR_ZMQ_VERSION): CONFIG += mpr_zmq
}
