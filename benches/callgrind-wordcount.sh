#!/usr/bin/env bash
# Instructions (valgrind's callgrind: the same count for the same binary and input, whatever
# else the machine is doing) of the word count in examples/wordcount_rate.rs — 3 batches of
# 1 000 000 generated words, 1 and 2 workers — for this checkout and, given REV, an earlier
# commit (checked out in the git-ignored .tools/before-REV, as benches/before-after.sh does).
#   benches/callgrind-wordcount.sh [REV]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
sides=("after:.")
if [ -n "${1:-}" ]; then
    short=$(git rev-parse --short "$1")
    before=".tools/before-$short"
    [ -d "$before" ] || git worktree add --detach "$before" "$1" >&2
    sides=("before $short:$before" "${sides[@]}")
fi
echo "| build | workers | instructions |"
echo "|---|---|---|"
for side in "${sides[@]}"; do
    label=${side%%:*}
    dir=${side#*:}
    (cd "$dir" && cargo build --release --locked --example wordcount_rate >&2)
    for w in 1 2; do
        out=$(mktemp)
        valgrind --tool=callgrind --callgrind-out-file=/dev/null \
            "$dir/target/release/examples/wordcount_rate" 1000000 1000 3 -w "$w" >/dev/null 2>"$out"
        n=$(awk '/Collected/ { print $4 }' "$out")
        printf '| %s | %s | %s |\n' "$label" "$w" "$n"
        rm -f "$out"
    done
done
