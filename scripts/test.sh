#!/usr/bin/env bash
# The project's test command (the README's, and what .ci/run calls).
#
# Starts what the tests need on this machine, then runs every test: unit, integration and
# documentation examples. Today the tests need only loopback TCP; later services (the Kafka
# broker, databases) are started here.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup" >&2; exit 1; }

cargo test --locked "$@"
