#!/usr/bin/env bash
# The project's test command (the README's, and what .ci/run calls).
#
# Installs what the build and the tests need on this machine (the C libraries the connectors
# link, the Kafka broker, ZooKeeper; PostgreSQL, MariaDB and Redis are the machine's own, on
# their default ports), then runs every test of the workspace: unit, integration, the command
# line's, and documentation examples.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup" >&2; exit 1; }

scripts/build-deps.sh
# A real Kafka-protocol broker for the Kafka tests (each test starts its own instance), and
# the servers behind the offset stores; an S3-protocol server (moto) for the directory streams.
scripts/kafka-broker.sh install
scripts/s3-server.sh install
scripts/services.sh

cargo test --locked --workspace "$@"
