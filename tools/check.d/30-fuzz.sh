# Stage (sourced by tools/check): the libFuzzer targets of tests/fuzz (socket
# frame parser, shared-memory ring records, remote frames, the sender
# string, mpr::decodeVariant, the ZMTP/CURVE machine, the handshake state
# machine) built with clang and run for 105 s in all (15 s a target) from
# the committed seed corpus; fails on any crash, sanitizer report or
# failed check.
# MPR_FUZZ_SECONDS changes the budget.
if mpr_need_packages "${MPR_SANITIZER_PACKAGES[@]}"; then
    fuzz_out=$root/build-fuzz
    mkdir -p "$fuzz_out"
    bash tests/fuzz/run.sh "${MPR_FUZZ_SECONDS:-105}" "$fuzz_out" >"$fuzz_out/run.log" 2>&1 || status=1
    grep -vE "^Totals:" "$fuzz_out/run.log"
    grep -E "^Totals:" "$fuzz_out/run.log" >>"$log" ||
        echo "Totals: 0 passed, 1 failed, 0 skipped (fuzz: no result)" >>"$log"
    grep -E "^Totals:" "$fuzz_out/run.log"
else
    echo "== clang/libFuzzer could not be installed"
    echo "Totals: 0 passed, 1 failed, 0 skipped (fuzz packages)" >>"$log"
    status=1
fi
