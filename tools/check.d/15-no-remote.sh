# Stage (sourced by tools/check): the whole tree built without the remote
# transport (CONFIG+=mpr_no_remote: no ZeroMQ) in build-no-remote/ and every
# test run there: the local transports do not need libzmq, and the remote
# calls say MPR_ENOTSUP.
build_and_check build-no-remote CONFIG+=mpr_no_remote
if [ -e build-no-remote/src/libmprouter.so ] &&
    objdump -p build-no-remote/src/libmprouter.so | grep -q "NEEDED.*libzmq"; then
    echo "== build-no-remote links libzmq"
    echo "Totals: 0 passed, 1 failed, 0 skipped (no-remote build links libzmq)" >>"$log"
    status=1
fi
