#!/usr/bin/env bash
# Where the CPU of a paced socket word count goes, thread by thread: the sender (the bench's
# own, on the same cores), the receiver, each worker. Runs the socket_overload bench at one
# rate under `perf record` (cpu-clock samples, which work without hardware counters) and prints
#   - each thread's average cores over its round (sender, receiver, timely:work-N), and
#   - the first round's timeline: cores per thread in every 100 ms, from the sender's start.
#
#   benches/thread-cpu.sh [LINES_PER_S] [WORKERS]      (default 1250000 lines/s on 2 workers)
# Needs perf (Debian's linux-perf). One QUICK run: three rounds of 5 batches of 1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
rate="${1:-1250000}"
workers="${2:-2}"
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
bin=$(cargo bench --locked --bench socket_overload --no-run 2>&1 |
    sed -n 's/.*Executable .*(\(.*socket_overload-[0-9a-f]*\)).*/\1/p' | head -n 1)
[ -x "$bin" ] || { echo "could not build the socket_overload bench" >&2; exit 1; }
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
hz=499
echo "# socket word count at $rate lines/s on -w $workers under perf (load $(cut -d' ' -f1-3 /proc/loadavg))"
SLUICE_BENCH_QUICK=1 SLUICE_BENCH_WORKERS="$workers" SLUICE_BENCH_RATE="$rate" \
    perf record -q -e cpu-clock -F "$hz" -o "$data/perf.data" "$bin" 2>/dev/null |
    grep -E '^\| [123] ' | cut -d'|' -f2,6,7
perf script -i "$data/perf.data" -F comm,tid,time 2>/dev/null >"$data/samples"
# Threads are named by sluice (receiver, timely:work-N); the bench's main thread and its
# sender thread keep the binary's name: the sender is the busiest of those after the first
# thread (which runs the roofline loops).
awk -v hz="$hz" '
    { t = $NF; sub(":", "", t); tid = $(NF - 1); name = $1; for (i = 2; i < NF - 1; i++) name = name " " $i
      if (!(tid in first)) { first[tid] = t; order[n++] = tid; names[tid] = name }
      last[tid] = t; samples[tid]++ }
    END {
      print "\n| thread | tid | samples | seconds it ran | average cores |"
      print "|---|---|---|---|---|"
      for (i = 0; i < n; i++) { id = order[i]; span = last[id] - first[id]
        if (samples[id] < hz / 10) continue
        printf "| %s | %s | %d | %.1f | %.2f |\n", names[id], id, samples[id], span, (span > 0 ? samples[id] / hz / span : 0) }
    }' "$data/samples"
# The first round: the first receiver and workers to appear, and the sender (the second thread
# with the binary's name; the first is the main thread). Its timeline starts with the sender.
awk -v hz="$hz" '
    { t = $NF; sub(":", "", t); tid = $(NF - 1); name = $1; for (i = 2; i < NF - 1; i++) name = name " " $i
      if (!(tid in kind)) {
          k = (name == "receiver socket" || name ~ /^timely:work/) ? name : (mains++ == 0 ? "main" : "sender")
          kind[tid] = k; if (!(k in tid_of)) { tid_of[k] = tid; if (k != "main") cols[nc++] = k } }
      n++; ts[n] = t; tids[n] = tid }
    END {
      for (i = 1; i <= n; i++) if (tids[i] == tid_of["sender"]) { start = ts[i]; break }
      for (i = 1; i <= n; i++) { k = kind[tids[i]]; b = int((ts[i] - start) * 10)
          if (tid_of[k] == tids[i] && b >= 0 && b < 60) cnt[b, k]++ }
      printf "\nfirst round, cores per thread in each 100 ms from the sender'"'"'s start:\n| 0.1 s |"
      for (i = 0; i < nc; i++) printf " %s |", cols[i]; print ""
      printf "|---|"; for (i = 0; i < nc; i++) printf "---|"; print ""
      for (b = 0; b < 60; b++) { printf "| %d |", b
          for (i = 0; i < nc; i++) printf " %.2f |", cnt[b, cols[i]] / (hz / 10); print "" }
    }' "$data/samples"
