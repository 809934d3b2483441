#!/usr/bin/env bash
# Seeds the corpora from real files: runs `sluice run driver-ha-wordcount` (1 s batches, a
# socket with its write-ahead log, a checkpoint) for a few seconds, stops it, and keeps its
# checkpoint directory packed (checkpoint_dir), its plan logs (plan_log), its write-ahead-log
# segments (write_ahead_log) and its framed files (framed_file). Hand-written seeds for the
# line splitter, hostfile and ETL record are in the corpora already.
#   fuzz/seed.sh [path to the sluice binary]   (default target/release/sluice)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/sluice}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$work/port" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
c, _ = s.accept()
for i in range(40):
    c.sendall(b"spark streaming %d\n" % (i % 7) * 5)
    time.sleep(0.1)
time.sleep(10)
PY
server=$!
while [ ! -s "$work/port" ]; do sleep 0.1; done
"$bin" run driver-ha-wordcount --port "$(cat "$work/port")" --batch 1s \
    --checkpoint-interval 1s --checkpoint "$work/ck" >/dev/null 2>&1 &
job=$!
sleep 6
kill -TERM "$job"; wait "$job" || true
kill "$server" 2>/dev/null || true
python3 - "$work/ck" fuzz/corpus <<'PY'
import os, sys, shutil
ck, corpus = sys.argv[1], sys.argv[2]
files = []
for root, _, names in os.walk(ck):
    for n in sorted(names):
        p = os.path.join(root, n)
        files.append((os.path.relpath(p, ck), open(p, "rb").read()))
def pack(fs):
    out = b""
    for name, data in fs:
        name = name.encode()[:255]; data = data[:65535]
        out += bytes([len(name)]) + name + len(data).to_bytes(2, "little") + data
    return out
def keep(target, name, data):
    os.makedirs(os.path.join(corpus, target), exist_ok=True)
    open(os.path.join(corpus, target, name), "wb").write(data)
keep("checkpoint_dir", "seed-driver-ha", pack(files))
for name, data in files:
    flat = "seed-" + name.replace("/", "-")
    if name.startswith("plans/"):
        keep("plan_log", flat, data)
    elif name.endswith(".wal"):
        keep("write_ahead_log", flat, data)
    elif not name.endswith(".log"):
        keep("framed_file", flat, data)
print("\n".join(sorted(n for n, _ in files)))
PY
