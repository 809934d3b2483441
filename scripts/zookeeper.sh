#!/usr/bin/env bash
# ZooKeeper for the ZooKeeper offset store's tests: Debian's `zookeeper` package, one standalone
# server on 127.0.0.1:2181 (data in the git-ignored .tools/zookeeper). Idempotent.
#   scripts/zookeeper.sh start | stop
set -euo pipefail
cd "$(dirname "$0")/.."
zk=/usr/share/zookeeper/bin/zkServer.sh
data="$PWD/.tools/zookeeper"
conf="$data/conf"

listening() { (exec 3<>/dev/tcp/127.0.0.1/2181) 2>/dev/null; }

case "${1:-start}" in
start)
    if listening; then exit 0; fi
    if [ ! -x "$zk" ]; then
        echo "installing Debian's zookeeper" >&2
        if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq zookeeper >&2
    fi
    mkdir -p "$conf" "$data/data"
    cp /etc/zookeeper/conf/log4j.properties "$conf/" 2>/dev/null || true
    printf 'tickTime=2000\ndataDir=%s\nclientPort=2181\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n' "$data/data" > "$conf/zoo.cfg"
    ZOOCFGDIR="$conf" ZOO_LOG_DIR="$data" "$zk" start "$conf/zoo.cfg" >&2
    for _ in $(seq 1 100); do listening && exit 0; sleep 0.1; done
    echo "ZooKeeper did not start; see $data/*.log" >&2
    exit 1
    ;;
stop)
    ZOOCFGDIR="$conf" ZOO_LOG_DIR="$data" "$zk" stop "$conf/zoo.cfg" >&2 || true
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
