#!/usr/bin/env bash
# The crash harness at soak strength (outside CI): every Kafka → database job killed with
# SIGKILL 200 times at random points; each must end with every record exactly once.
#   scripts/soak.sh [KILLS]   (default 200; about 5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/kafka-broker.sh install
scripts/services.sh
SLUICE_CRASH_KILLS="${1:-200}" cargo test --release --locked --test crash -- --nocapture
