#!/usr/bin/env bash
# The Kafka-protocol broker the tests use: noida-db 0.2.3 (see shared/notes/kafka-broker.md),
# pinned, built once into ~/.cache/sluice and linked from the git-ignored .tools/noida. Tests start their own instances (fresh
# data dir, free port) through tests/common/kafka.rs; `start`/`stop` here are for trying things
# by hand.
#   scripts/kafka-broker.sh install          install if missing (about 1 minute on 2 cores)
#   scripts/kafka-broker.sh start [PORT]     run one on 127.0.0.1:PORT (default 9092), fresh data dir
#   scripts/kafka-broker.sh stop             stop the one `start` ran
set -euo pipefail
cd "$(dirname "$0")/.."
root=.tools/noida
bin="$root/bin/noida-db"
version=0.2.3

case "${1:-install}" in
install)
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$version"; then
        exit 0
    fi
    # Built once per machine into the user's cache (a fresh checkout links it), as CI caches.
    cache="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/noida-$version"
    if ! { [ -x "$cache/bin/noida-db" ] && "$cache/bin/noida-db" --version 2>/dev/null | grep -q "$version"; }; then
        echo "installing noida-db $version into $cache" >&2
        cargo install --locked --root "$cache" "noida-db@$version" --no-default-features --features kafka >&2
    fi
    mkdir -p "$root/bin"
    ln -sf "$cache/bin/noida-db" "$bin"
    ;;
start)
    "$0" install
    port="${2:-9092}"
    data=$(mktemp -d)
    "$bin" start --data-dir "$data" --host 127.0.0.1 --only kafka --kafka-port "$port" > "$root/broker.log" 2>&1 &
    echo $! > "$root/broker.pid"
    echo "broker on 127.0.0.1:$port (pid $(cat "$root/broker.pid"), data $data)"
    ;;
stop)
    [ -f "$root/broker.pid" ] && kill "$(cat "$root/broker.pid")" 2>/dev/null || true
    rm -f "$root/broker.pid"
    ;;
*)
    echo "usage: $0 install|start [PORT]|stop" >&2
    exit 2
    ;;
esac
