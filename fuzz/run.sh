#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), JOBS at a time (default 2), on the
# corpora in fuzz/corpus (new inputs are added there), and prints a table: target, seconds,
# executions, executions/s, corpus inputs, crashes. A crash's input is kept in
# fuzz/artifacts/<target>/ and the script exits 1.
#   fuzz/run.sh [SECONDS] [JOBS]        needs the nightly toolchain and cargo-fuzz
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
jobs="${2:-2}"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: no nightly toolchain (rustup toolchain install nightly); skipped" >&2
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz >&2
fi
# One build directory per machine, kept between checkouts (the nightly build is minutes).
target_dir="${SLUICE_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/fuzz-target}"
targets=(checkpoint_dir framed_file plan_log write_ahead_log line_splitter hostfile etl_record)
cargo +nightly fuzz build -O --target-dir "$target_dir" >&2
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
run() {
    local t="$1"
    mkdir -p "corpus/$t" "artifacts/$t"
    cargo +nightly fuzz run -O --target-dir "$target_dir" "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 >"$logs/$t" 2>&1 && echo ok >"$logs/$t.rc" \
        || echo crash >"$logs/$t.rc"
}
running=0
for t in "${targets[@]}"; do
    run "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait
failed=0
printf '%-16s %8s %12s %10s %8s %8s\n' target seconds executions execs/s corpus crashes
for t in "${targets[@]}"; do
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t" | grep -o '[0-9]*$' || echo 0)
    took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$logs/$t" | awk '{print $5}' || true)
    took="${took:-$secs}"
    corpus=$(find "corpus/$t" -type f | wc -l)
    crashes=0
    if [ "$(cat "$logs/$t.rc")" != ok ]; then
        crashes=1
        failed=1
        echo "--- $t crashed:" >&2
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$logs/$t" | head -5 >&2
    fi
    printf '%-16s %8s %12s %10s %8s %8s\n' "$t" "$took" "${runs:-0}" \
        "$(( ${runs:-0} / (took > 0 ? took : 1) ))" "$corpus" "$crashes"
done
exit "$failed"
