#!/usr/bin/env bash
# The project's test command (the README's, and what .ci/run calls).
#
# Installs what the tests need on this machine (the Kafka broker; PostgreSQL, MariaDB and Redis
# are the machine's own, on their default ports), then runs every test: unit, integration and
# documentation examples.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup" >&2; exit 1; }

# A real Kafka-protocol broker for the Kafka tests (each test starts its own instance), and
# the servers behind the offset stores.
scripts/kafka-broker.sh install
scripts/services.sh

cargo test --locked "$@"
