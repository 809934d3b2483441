#!/usr/bin/env bash
# Prints the fault matrix (fault × job → exact / refused / wrong) as a Markdown table: runs
# dataflows/tests/fault_matrix.rs (about 3 minutes) and tabulates its `fault-matrix` lines.
#   benches/fault-matrix.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-deps.sh >/dev/null
scripts/kafka-broker.sh install >/dev/null
scripts/services.sh >/dev/null
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
cargo test --locked -p sluice-cli --test fault_matrix -- --nocapture >"$log" 2>&1 || status=$?
python3 - "$log" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1], errors="replace"):
    if not line.startswith("fault-matrix\t"):
        continue
    f = line.rstrip("\n").split("\t")
    fault, job, outcome = f[1], f[2], f[3]
    rows.setdefault(fault, {})[job] = outcome.lower() if not outcome.startswith("skipped") else "skipped"
jobs = ["Socket", "KafkaState", "KafkaPostgres"]
names = {"Socket": "socket + WAL → state", "KafkaState": "Kafka → state → Kafka", "KafkaPostgres": "Kafka → PostgreSQL"}
print("| fault | " + " | ".join(names[j] for j in jobs) + " |")
print("|---|" + "---|" * len(jobs))
for fault, by in rows.items():
    print(f"| {fault} | " + " | ".join(by.get(j, "n/a") for j in jobs) + " |")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit "${status:-0}"
