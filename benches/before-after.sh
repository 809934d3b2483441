#!/usr/bin/env bash
# Runs this checkout's benchmarks and those of an earlier commit alternately, in one session,
# so that their figures are comparable on a shared machine; prints the load before each run.
#   benches/before-after.sh REV [BENCH...]     (default benches: wordcount state_window)
# The earlier commit is checked out in the git-ignored .tools/before-REV (a git worktree) and
# built there with its own target directory. SLUICE_BENCH_QUICK=1 shortens every phase.
set -euo pipefail
cd "$(dirname "$0")/.."
rev="${1:?usage: benches/before-after.sh REV [BENCH...]}"
shift
benches=("$@")
[ "${#benches[@]}" -gt 0 ] || benches=(wordcount state_window)
short=$(git rev-parse --short "$rev")
here=$(git rev-parse --short HEAD)
before=".tools/before-$short"
if [ ! -d "$before" ]; then
    git worktree add --detach "$before" "$rev" >&2
fi
for b in "${benches[@]}"; do
    (cd "$before" && cargo build --release --locked --bench "$b" >&2)
    cargo build --release --locked --bench "$b" >&2
done
for b in "${benches[@]}"; do
    for side in before after before after; do
        echo
        echo "### $b, $side ($([ "$side" = before ] && echo "$short" || echo "$here")), load: $(cut -d' ' -f1-3 /proc/loadavg)"
        if [ "$side" = before ]; then
            (cd "$before" && cargo bench --locked --bench "$b" 2>/dev/null)
        else
            cargo bench --locked --bench "$b" 2>/dev/null
        fi
    done
done
