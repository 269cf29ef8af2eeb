#!/usr/bin/env bash
# Soak: `atp serve` on a pipeline (default: the sample pipeline, the looped sample video at real time,
# the bundled trained model) with one client on /events, for SECONDS. Every 10 s it samples the
# server's RSS and open file descriptors and the machine's load average; at the end Tools/plot_soak.py reduces the samples and the
# events the client received to per-minute RSS, fds and p99 of fresh answers (soak.tsv), a summary
# (soak-summary.json) and a plot (soak.svg).
#
#   bash Tools/soak.sh [SECONDS] [OUTDIR] [PIPELINE]      (defaults: 3600, soak-out, Pipelines/warehouse.yaml)
#
# Needs a release build (swift build -c release) and python3 (the plot only).
# On a shared machine, run it at real-time priority (`chrt -r 10 bash Tools/soak.sh …`): the server
# then gets the CPU it asks for whatever else runs, and the p99 measures the server, not the neighbours
# (the load panel of the plot still shows what ran beside it).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-3600}
OUT=${2:-soak-out}
PIPELINE=${3:-Pipelines/warehouse.yaml}
ATP=${ATP_BIN:-.build/release/atp}
[ -x "$ATP" ] || { echo "soak: $ATP not found; run 'swift build -c release' first" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT/events.sse" "$OUT/samples.tsv" "$OUT/serve.err" "$OUT/stdout.jsonl"

"$ATP" serve "$PIPELINE" --port 0 --duration "$SECONDS_TOTAL" --profile-json "$OUT/profile.json" \
  > "$OUT/stdout.jsonl" 2> "$OUT/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null; [ -n "${client:-}" ] && kill $client 2>/dev/null' EXIT

# The address is printed on stderr once the server listens.
url=""
for _ in $(seq 1 600); do
  url=$(sed -n 's/^atp: serving on \(http[^ ]*\).*/\1/p' "$OUT/serve.err" | head -1)
  [ -n "$url" ] && break
  kill -0 $pid 2>/dev/null || { echo "soak: atp serve exited early:" >&2; cat "$OUT/serve.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "soak: no address on stderr after 60 s" >&2; exit 1; }
echo "soak: serving on $url (pid $pid) for $SECONDS_TOTAL s; output in $OUT" >&2

curl -sN "$url/events" > "$OUT/events.sse" &
client=$!

t0=$(date +%s)
printf "t_s\trss_kb\tfds\tload1\n" > "$OUT/samples.tsv"
while kill -0 $pid 2>/dev/null; do
  rss=$(awk '/^VmRSS/{print $2}' /proc/$pid/status 2>/dev/null)
  fds=$(ls /proc/$pid/fd 2>/dev/null | wc -l)
  load=$(cut -d' ' -f1 /proc/loadavg)   # the machine's load: latency depends on what else runs
  [ -n "$rss" ] && printf "%d\t%s\t%s\t%s\n" $(( $(date +%s) - t0 )) "$rss" "$fds" "$load" >> "$OUT/samples.tsv"
  if [ $(( ($(date +%s) - t0) % 300 )) -lt 10 ]; then
    echo "soak: $(( $(date +%s) - t0 )) s, RSS ${rss:-?} kB, fds ${fds:-?}, events $(grep -c '^data:' "$OUT/events.sse")" >&2
  fi
  sleep 10
done
wait $pid
rc=$?
kill $client 2>/dev/null; wait $client 2>/dev/null
trap - EXIT
echo "soak: atp serve exited with $rc" >&2
python3 Tools/plot_soak.py "$OUT"
exit $rc
