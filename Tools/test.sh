#!/usr/bin/env bash
# The test command: builds and runs the whole suite, then the concurrency tests under ThreadSanitizer.
# Numeric targets are compiled with -O even here (see Package.swift).
set -uo pipefail
cd "$(dirname "$0")/.."
bash Tools/setup.sh || exit 1
export ATP_SMOLLM2_GGUF="${ATP_SMOLLM2_GGUF:-$(bash Tools/fetch_smollm2.sh || true)}"
swift build --build-tests || exit 1
# OpenBLAS picks its kernels from a table of CPU models when it loads; on a CPU it does not know it
# falls back to generic SSE3 kernels. `atp` restarts itself with the kernel set the cpuid flags call
# for; the test processes get the same setting here (NativeKernelTests fails loudly without it).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  core=$(ATP_BLAS_KEEP_CORE=1 "$(swift build --show-bin-path)/atp" bench kernels --coretype 2>/dev/null || true)
  if [ -n "$core" ]; then
    export OPENBLAS_CORETYPE=$core
    echo "tests: OpenBLAS chose a generic kernel set on this CPU; OPENBLAS_CORETYPE=$core"
  fi
fi
LOG=$(mktemp)
swift test --skip-build --disable-swift-testing 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
# XCTest's closing line: "Executed N tests, with [S test(s) skipped and ]F failures ..."
summary=$(grep -E "^\s*Executed [0-9]+ tests?, with " "$LOG" | tail -1)
passed=0; failed=0; skipped=0
re='Executed ([0-9]+) tests?, with (([0-9]+) tests? skipped and )?([0-9]+) failures?'
if [[ $summary =~ $re ]]; then
  total=${BASH_REMATCH[1]}; skipped=${BASH_REMATCH[3]:-0}; failed=${BASH_REMATCH[4]}
  passed=$(( total - failed - skipped ))
elif [ "$rc" -ne 0 ]; then
  failed=1
fi
rm -f "$LOG"
tsan_rc=0
if [ "$rc" -eq 0 ] && [ "${ATP_SKIP_TSAN:-0}" != "1" ]; then
  # ThreadSanitizer on the concurrency tests: the pipeline's and the kernels' worker pool (own build
  # folder; OpenBLAS single-threaded).
  # ATP_CORE_ONLY=1: the manifest leaves out the HTTP service and the CLI (not under test here).
  ATP_CORE_ONLY=1 OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS="suppressions=$PWD/Tools/tsan.supp halt_on_error=1" \
    swift test --scratch-path .build-tsan --sanitize=thread --disable-swift-testing --filter "PipelineTests|KernelTests.testHotPool"
  tsan_rc=$?
  [ $tsan_rc -eq 0 ] || failed=$(( failed + 1 ))
fi
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$rc" -eq 0 ] && [ "$tsan_rc" -eq 0 ]
