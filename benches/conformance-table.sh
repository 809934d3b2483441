#!/usr/bin/env bash
# Prints the conformance table (case × topology) of the Spark-suite ports: runs the conformance
# test binaries and collects the line every checked case prints per topology.
#   benches/conformance-table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
status=0
cargo test --locked -p sluice --test conformance --test windows_state --test initial_state \
    -- --nocapture --test-threads 2 >"$log" 2>&1 || status=$?
echo "| case | compared as | 1 worker | 2 workers | 4 workers | 2 processes |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '$1 == "conformance" {
        key = $2; how[key] = $4; ok[key, $3] = $5
        if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]
            printf "| %s | %s | %s | %s | %s | %s |\n", k, how[k],
                (ok[k, "OneWorker"] ? ok[k, "OneWorker"] : "FAIL"),
                (ok[k, "TwoWorkers"] ? ok[k, "TwoWorkers"] : "FAIL"),
                (ok[k, "FourWorkers"] ? ok[k, "FourWorkers"] : "FAIL"),
                (ok[k, "TwoProcesses"] ? ok[k, "TwoProcesses"] : "FAIL")
        }
        printf "\n%d cases\n", n
    }' "$log"
grep -E "^test result" "$log" || true
exit "$status"
