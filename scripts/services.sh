#!/usr/bin/env bash
# Makes sure the servers the tests talk to are up on their default loopback ports: PostgreSQL
# (5432), MariaDB (3306) and Redis (6379), which this machine kind provides, and ZooKeeper
# (2181), which scripts/zookeeper.sh installs. Starts whichever is down; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { for _ in $(seq 1 100); do listening "$1" && return 0; sleep 0.1; done; echo "$2 did not come up on port $1" >&2; return 1; }

if ! listening 5432; then
    echo "starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    wait_for 5432 PostgreSQL
fi
if ! listening 3306; then
    echo "starting MariaDB" >&2
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for 3306 MariaDB
fi
if ! listening 6379; then
    echo "starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for 6379 Redis
fi
scripts/zookeeper.sh start
