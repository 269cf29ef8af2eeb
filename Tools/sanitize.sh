#!/usr/bin/env bash
# The whole unit-test suite under AddressSanitizer (+ LeakSanitizer), with UndefinedBehaviorSanitizer
# on the package's C code, in its own scratch path (.build-asan; the ThreadSanitizer run of the
# concurrency tests is part of Tools/test.sh).
#
#   bash Tools/sanitize.sh [FILTER]        e.g. bash Tools/sanitize.sh ModelIOTests
#
# - Swift code: `--sanitize=address`. swiftc has no `-sanitize=undefined` on Linux; Swift's own
#   checks (integer overflow, array bounds, force-unwraps, exclusivity) stay on in every build of this
#   package (it never uses -Ounchecked), and ASan covers what they do not: the unsafe-pointer code of
#   the kernels, the model readers and the FFmpeg glue.
# - C code (Sources/CSpin): `-fsanitize=undefined -fno-sanitize-recover=all` as well (the ASan runtime
#   carries UBSan's handlers), so any undefined behaviour there stops the run.
# - Leaks: LeakSanitizer is on in the test runner and in every `atp` process the CLI tests start;
#   Tools/lsan.supp lists the reports that are not this repository's (each with its reason).
# - ATP_SANITIZER=address tells the few wall-clock assertions that the instrumented build is slower.
# - System libraries (OpenBLAS, FFmpeg, Foundation) are not instrumented.
# The `atp` binary the CLI tests run is the instrumented one of the same build.
#
# Prints `sanitize: N passed, F failed, S skipped` and exits non-zero on any failure or report.
set -uo pipefail
cd "$(dirname "$0")/.."
FILTER=${1:-}
SCRATCH=${ATP_ASAN_BUILD:-.build-asan}
flags=(--scratch-path "$SCRATCH" --sanitize=address -Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=all)
export ATP_SMOLLM2_GGUF="${ATP_SMOLLM2_GGUF:-$(bash Tools/fetch_smollm2.sh 2>/dev/null || true)}"
start=$(date +%s)
echo "sanitize: building the tests with ASan/UBSan into $SCRATCH (cold: several minutes)"
BUILDLOG=$(mktemp)
if ! swift build --build-tests "${flags[@]}" >"$BUILDLOG" 2>&1; then
  grep -E "error:" "$BUILDLOG" | head -20 >&2; tail -5 "$BUILDLOG" >&2
  echo "sanitize: build failed" >&2; rm -f "$BUILDLOG"; exit 1
fi
rm -f "$BUILDLOG"
echo "sanitize: build took $(( $(date +%s) - start )) s"
LOG=$(mktemp)
t1=$(date +%s)
# halt_on_error: the first report ends the run (with a non-zero status); detect_leaks: LSan at exit.
ATP_SANITIZER=address ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=0:${ASAN_OPTIONS:-}" \
LSAN_OPTIONS="suppressions=$PWD/Tools/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}" \
UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}" \
  swift test --skip-build "${flags[@]}" --disable-swift-testing ${FILTER:+--filter "$FILTER"} 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
summary=$(grep -E "^\s*Executed [0-9]+ tests?, with " "$LOG" | tail -1)
reports=$(grep -cE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$LOG")
passed=0; failed=0; skipped=0
re='Executed ([0-9]+) tests?, with (([0-9]+) tests? skipped and )?([0-9]+) failures?'
if [[ $summary =~ $re ]]; then
  total=${BASH_REMATCH[1]}; skipped=${BASH_REMATCH[3]:-0}; failed=${BASH_REMATCH[4]}
  passed=$(( total - failed - skipped ))
fi
[ "$rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
rm -f "$LOG"
echo "sanitize: tests took $(( $(date +%s) - t1 )) s; sanitizer reports: $reports"
echo "sanitize: $passed passed, $failed failed, $skipped skipped"
[ "$rc" -eq 0 ] && [ "$reports" -eq 0 ]
