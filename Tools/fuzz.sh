#!/usr/bin/env bash
# Builds the libFuzzer harnesses of Tests/Fuzz/harnesses (not part of the package: `swift build` never
# sees them) and runs each for SECONDS (default 120). See Tests/Fuzz/README.md.
#
#   Tools/fuzz.sh [SECONDS] [HARNESS...]     e.g. Tools/fuzz.sh 10   or   Tools/fuzz.sh 300 gguf
#
# 1. The package's library modules (target Pipeline and everything it depends on, ATP_CORE_ONLY=1 so
#    no NIO/Hummingbird) are built with `swift build -c release -Xswiftc -sanitize=fuzzer,address
#    -Xcc -fsanitize=fuzzer-no-link,address` into $ATP_FUZZ_BUILD/spm (default .build-fuzz/spm, ignored
#    by git; incremental after the first run). Not `--sanitize fuzzer --sanitize address`: SwiftPM
#    passes those as two -sanitize= options, of which swiftc 6.3 keeps only the last, in set order
#    (so a build had either coverage or ASan in the Swift modules, never both).
# 2. Each harness is compiled with `swiftc -sanitize=fuzzer,address -O` against those modules and
#    linked with their objects into $ATP_FUZZ_BUILD/bin/HARNESS.
# 3. Each runs for SECONDS with its seeds (Tests/Fuzz/corpus/HARNESS, read only), a writable corpus for
#    new inputs, its dictionary (Tests/Fuzz/dicts/HARNESS.dict, if any), -timeout=10 and
#    -rss_limit_mb=2048. Everything a run writes goes to $ATP_FUZZ_WORK (default
#    ${TMPDIR:-/tmp}/atp-fuzz-DATE-TIME, outside the repository): corpus/HARNESS (new inputs),
#    artifacts/ (crash-, leak-, timeout-, oom- inputs), logs/HARNESS.log.
#
# Prints per harness: executions, coverage (cov/ft of libFuzzer's last stats line) and crashes; then
# exactly one line `fuzz: H harnesses, E executions, C crashes`. Exits non-zero on any crash, leak,
# timeout, out-of-memory or build failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=${1:-120}
[ $# -gt 0 ] && shift
case "$SECS" in ''|*[!0-9]*) echo "usage: Tools/fuzz.sh [SECONDS] [HARNESS...]" >&2; exit 2;; esac

if [ $# -gt 0 ]; then
  HARNESSES=("$@")
else
  HARNESSES=()
  for f in Tests/Fuzz/harnesses/*.swift; do HARNESSES+=("$(basename "$f" .swift)"); done
fi
for h in "${HARNESSES[@]}"; do
  [ -f "Tests/Fuzz/harnesses/$h.swift" ] || { echo "fuzz: no harness Tests/Fuzz/harnesses/$h.swift" >&2; exit 2; }
done

BUILD=${ATP_FUZZ_BUILD:-$ROOT/.build-fuzz}
WORK=${ATP_FUZZ_WORK:-${TMPDIR:-/tmp}/atp-fuzz-$(date +%Y%m%d-%H%M%S)}
JOBS=${ATP_FUZZ_JOBS:-2}
mkdir -p "$BUILD/bin" "$WORK/artifacts" "$WORK/logs" "$WORK/corpus"
WORK=$(cd "$WORK" && pwd)

# ---- 1. library modules ----------------------------------------------------------------------------
echo "fuzz: building the library modules into $BUILD/spm (cold: several minutes)"
start=$(date +%s)
resolved=()
# Keep the checkout's Package.resolved as it is (the core-only graph needs fewer packages).
[ -f Package.resolved ] && resolved=(--force-resolved-versions)
if ! ATP_CORE_ONLY=1 swift build --scratch-path "$BUILD/spm" -c release -j "$JOBS" "${resolved[@]}" \
      --target Pipeline -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address \
      >"$WORK/logs/build-modules.log" 2>&1; then
  tail -40 "$WORK/logs/build-modules.log" >&2
  echo "fuzz: building the library modules failed (log: $WORK/logs/build-modules.log)" >&2
  echo "fuzz: 0 harnesses, 0 executions, 0 crashes"
  exit 1
fi
BIN="$BUILD/spm/release"
[ -d "$BIN" ] || BIN=$(ls -d "$BUILD"/spm/*/release | head -1)
# The Swift modules must carry both libFuzzer's coverage and ASan.
probe="$BIN/ModelIO.build/GGUF.swift.o"
if command -v nm >/dev/null && [ -f "$probe" ]; then
  syms=$(nm "$probe")
  if ! grep -q __sanitizer_cov <<<"$syms" || ! grep -q __asan <<<"$syms"; then
    echo "fuzz: $probe lacks coverage or ASan instrumentation; remove $BUILD/spm and rerun" >&2
    echo "fuzz: 0 harnesses, 0 executions, 0 crashes"
    exit 1
  fi
fi

# The clang module maps and include paths the Pipeline module was compiled with (system libraries,
# C targets, C targets of dependencies), taken from SwiftPM's build description.
args_line=$(grep -A1 "description: \"Compiling Swift Module 'Pipeline'" "$BUILD/spm/release.yaml" | tail -1)
IMPORT=(-I "$BIN/Modules")
while read -r m; do [ -n "$m" ] && IMPORT+=(-Xcc "$m"); done \
  < <(grep -o '"-fmodule-map-file=[^"]*"' <<<"$args_line" | tr -d '"')
while read -r i; do [ -n "$i" ] && IMPORT+=("$i"); done \
  < <(grep -o '"-I/[^"]*"' <<<"$args_line" | tr -d '"')
while read -r i; do [ -n "$i" ] && IMPORT+=(-Xcc -I -Xcc "$i"); done \
  < <(grep -o '"-Xcc","-I","-Xcc","[^"]*"' <<<"$args_line" | sed 's/.*,"//; s/"$//')
# Every object of the modules built above (tests and tools are not built by --target Pipeline).
OBJECTS=()
for d in "$BIN"/*.build; do
  case "$(basename "$d")" in *Tests.build|*-tool.build|atpPackage*) continue;; esac
  while IFS= read -r o; do OBJECTS+=("$o"); done < <(find "$d" -name '*.o')
done
LIBDIRS=()
for l in $(pkg-config --libs-only-L openblas libavformat 2>/dev/null); do LIBDIRS+=("$l"); done

# ---- 2. harnesses ----------------------------------------------------------------------------------
build_failed=0
for h in "${HARNESSES[@]}"; do
  sources=("Tests/Fuzz/harnesses/$h.swift" Tests/Fuzz/support/FuzzSupport.swift)
  # /queries parsing lives in the Serve module, which needs Hummingbird: compile its one file here.
  [ "$h" = queries_json ] && sources+=(Sources/Serve/QueryAPI.swift Tests/Fuzz/support/ServeShim.swift)
  out="$BUILD/bin/$h"
  newest=$(ls -t "${sources[@]}" "${OBJECTS[@]}" 2>/dev/null | head -1)
  if [ -x "$out" ] && [ "$out" -nt "$newest" ]; then continue; fi
  echo "fuzz: compiling $h"
  if ! swiftc -sanitize=fuzzer,address -O -g -parse-as-library -swift-version 5 -module-name "fuzz_$h" \
        "${IMPORT[@]}" "${sources[@]}" "${OBJECTS[@]}" "${LIBDIRS[@]}" -o "$out" >"$WORK/logs/build-$h.log" 2>&1; then
    grep -E "error|undefined" "$WORK/logs/build-$h.log" | head -20 >&2
    echo "fuzz: compiling $h failed (log: $WORK/logs/build-$h.log)" >&2
    build_failed=1
  fi
done
echo "fuzz: build took $(( $(date +%s) - start ))s"
if [ "$build_failed" = 1 ]; then
  echo "fuzz: 0 harnesses, 0 executions, 0 crashes"
  exit 1
fi

# ---- 3. runs ---------------------------------------------------------------------------------------
# Harnesses whose entry points need files write them to a per-process folder under ATP_FUZZ_TMP.
if [ -z "${ATP_FUZZ_TMP:-}" ]; then
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then ATP_FUZZ_TMP=$(mktemp -d /dev/shm/atp-fuzz.XXXXXX)
  else ATP_FUZZ_TMP="$WORK/scratch"; mkdir -p "$ATP_FUZZ_TMP"; fi
  trap 'rm -rf "$ATP_FUZZ_TMP"' EXIT
fi
export ATP_FUZZ_TMP
export ATP_FUZZ_FIXTURES="$ROOT/Tests/Fixtures"
SYMBOLIZER=$(command -v llvm-symbolizer || ls "$(dirname "$(command -v swiftc)")/llvm-symbolizer" 2>/dev/null || true)
export ASAN_OPTIONS=${ASAN_OPTIONS:-"symbolize=1:detect_leaks=1:abort_on_error=0${SYMBOLIZER:+:external_symbolizer_path=$SYMBOLIZER}"}
export LSAN_OPTIONS=${LSAN_OPTIONS:-"suppressions=$ROOT/Tests/Fuzz/lsan.supp:print_suppressions=0"}

echo "fuzz: $SECS s per harness; new inputs, artifacts and logs in $WORK"
total_exec=0
total_crash=0
failed=0
printf '%-18s %12s %8s %8s %8s  %s\n' harness executions cov ft crashes status
for h in "${HARNESSES[@]}"; do
  seeds="$ROOT/Tests/Fuzz/corpus/$h"
  mkdir -p "$WORK/corpus/$h"
  dict=()
  [ -f "Tests/Fuzz/dicts/$h.dict" ] && dict=(-dict="$ROOT/Tests/Fuzz/dicts/$h.dict")
  before=$(ls "$WORK/artifacts" | grep -c "^$h-" || true)
  log="$WORK/logs/$h.log"
  "$BUILD/bin/$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$WORK/artifacts/$h-" "${dict[@]}" "$WORK/corpus/$h" "$seeds" >"$log" 2>&1
  rc=$?
  after=$(ls "$WORK/artifacts" | grep -c "^$h-" || true)
  crashes=$(( after - before ))
  [ "$rc" != 0 ] && [ "$crashes" = 0 ] && crashes=1   # died without leaving an input (e.g. killed)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  [ -z "$execs" ] && execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  execs=${execs:-0}
  stats=$(grep ' cov: ' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$stats" | grep -o '[0-9]*$'); cov=${cov:-0}
  ft=$(grep -o 'ft: [0-9]*' <<<"$stats" | grep -o '[0-9]*$'); ft=${ft:-0}
  status=ok
  if [ "$crashes" != 0 ]; then
    status="FAILED (rc $rc): $(grep -m1 -E 'ERROR: |Fatal error|fatal error|deadly signal|out-of-memory|timeout' "$log" | cut -c1-100) — see $log"
    failed=1
  fi
  printf '%-18s %12s %8s %8s %8s  %s\n' "$h" "$execs" "$cov" "$ft" "$crashes" "$status"
  total_exec=$(( total_exec + execs ))
  total_crash=$(( total_crash + crashes ))
done
if [ "$total_crash" != 0 ]; then
  echo "fuzz: crash inputs are in $WORK/artifacts (reproduce: $BUILD/bin/HARNESS FILE; minimise: add -minimize_crash=1 -runs=10000)"
fi
echo "fuzz: ${#HARNESSES[@]} harnesses, $total_exec executions, $total_crash crashes"
exit $failed
