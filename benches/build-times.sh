#!/usr/bin/env bash
# Clean build times, same run: the library alone (no connectors, what a Rust team embeds) against
# the full `sluice` binary (every connector, clap, mimalloc). Each build starts from an empty
# target directory; crates are already downloaded. Prints a Markdown table.
#   benches/build-times.sh            dev profile
#   benches/build-times.sh --release  release profile
set -euo pipefail
cd "$(dirname "$0")/.."

clean_build() {
    local dir start end
    dir=$(mktemp -d)
    start=$(date +%s%N)
    CARGO_TARGET_DIR="$dir" cargo build --locked --quiet "$@" >&2
    end=$(date +%s%N)
    rm -rf "$dir"
    echo $(( (end - start) / 1000000 ))
}

profile=${1:-}
echo "load before: $(uptime | sed 's/.*load average/load average/')"
lib=$(clean_build -p sluice --lib --no-default-features $profile) || exit 1
full=$(clean_build -p sluice-cli $profile) || exit 1
echo
echo "| clean build (${profile:-dev}, $(nproc) cores) | seconds |"
echo "|---|---|"
printf '| library alone (`-p sluice --lib --no-default-features`) | %d.%d |\n' $((lib / 1000)) $((lib % 1000 / 100))
printf '| full binary (`-p sluice-cli`, every connector) | %d.%d |\n' $((full / 1000)) $((full % 1000 / 100))
echo "load after: $(uptime | sed 's/.*load average/load average/')"
