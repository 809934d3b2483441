#!/usr/bin/env bash
# What feeding a socket job costs: `sluice feed socket --rate` sends 4 000 000 generated word
# count lines (10 words a line) at 500 000 lines/s to `sluice run network-wordcount`; printed
# are the CPU (user + system) of the job and of the feed, and the lines the job counted.
#
#   benches/feed-cost.sh [OTHER_SLUICE] [ROUNDS] [feed|job]
#
# With OTHER_SLUICE (a `sluice` binary of another build, e.g. one built in a `git worktree` of an
# earlier commit), its feed (or with `job`, its job) is measured too, alternately with this
# build's, the other part being this build's, so that both are compared in one run. ROUNDS:
# rounds of each (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
other=${1:-}
rounds=${2:-2}
swap=${3:-feed}
cargo build --release --locked -p sluice-cli --bin sluice >&2
this=$PWD/target/release/sluice
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# 400 000 distinct lines, repeated ten times (the feed reads them from a file).
python3 - "$work/lines.txt" <<'EOF'
import sys
x, M, out = 7, (1 << 64) - 1, []
for _ in range(400000):
    ws = []
    for _ in range(10):
        x = (x * 6364136223846793005 + 1442695040888963407) & M
        ws.append("w%d" % ((x >> 33) % 10000))
    out.append(" ".join(ws))
open(sys.argv[1], "w").write("\n".join(out * 10) + "\n")
EOF
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu() { awk '{ print $1 + $2 }' "$1"; }
echo "# feeding 4 000 000 lines at 500 000 lines/s to network-wordcount (load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| $swap | lines counted | CPU of the job | CPU of the feed |"
echo "|---|---|---|---|"
for round in $(seq "$rounds"); do
    for build in ${other:+"$other"} "$this"; do
        feed=$this job=$this
        if [ "$swap" = job ]; then job=$build; else feed=$build; fi
        port=$(free_port)
        /usr/bin/time -f "%U %S" -o "$work/feed.time" \
            "$feed" feed socket --port "$port" --file "$work/lines.txt" --rate 500000 2>/dev/null &
        fed=$!
        sleep 0.3
        lines=$(/usr/bin/time -f "%U %S" -o "$work/job.time" \
            "$job" run network-wordcount --host 127.0.0.1 --port "$port" --batch 1s \
            --max-batches 11 --ui off --print 0 -vv 2>&1 >/dev/null |
            awk '/batch completed/ { match($0, /records=[0-9]+/); n += substr($0, RSTART + 8, RLENGTH - 8) } END { print n + 0 }')
        wait "$fed" || true
        label=$([ "$build" = "$this" ] && echo "this build" || echo "$build")
        printf '| %s | %s | %.2f s | %.2f s |\n' "$label" "$lines" "$(cpu "$work/job.time")" "$(cpu "$work/feed.time")"
    done
done
