# remote.pri - is the remote transport (ZeroMQ) built? Included by the
# .pro files that need to know (src, tests, packaging, examples; through
# mprouter.pri for everything that uses the C core). Not in .qmake.conf:
# that runs before the command line's CONFIG+=mpr_no_remote.
#
# CONFIG mpr_remote is set when pkg-config finds libzmq, unless qmake is
# given CONFIG+=mpr_no_remote.
!mpr_no_remote:!mpr_remote {
    MPR_ZMQ_VERSION = $$system(pkg-config --modversion libzmq 2>/dev/null)
    !isEmpty(MPR_ZMQ_VERSION): CONFIG += mpr_remote
}
