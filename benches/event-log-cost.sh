#!/usr/bin/env bash
# What the event log costs (issue 29): the same generated word count (stateful-wordcount,
# 2 M words/s, 10 000-word vocabulary, 1 s batches, 20 batches, `--ui off`) without and with
# `--event-log DIR`, alternated ROUNDS times in one run. Prints per run the load, CPU seconds of
# the process per million records and the mean processing time per batch, then the ratios of
# the means, and the log's bytes per batch. The foreign load is the cores busy over the 2 s
# before each run (nothing of the bench runs then); runs where it exceeds 0.3 are marked and
# left out of the means.
#   benches/event-log-cost.sh [ROUNDS]        (SLUICE_NO_BUILD=1: use the release binary as is)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
[ -n "${SLUICE_NO_BUILD:-}" ] || cargo build --release --locked -p sluice-cli >&2
python3 - "$rounds" <<'PY'
import glob, os, re, shutil, subprocess, sys, tempfile, time

rounds = int(sys.argv[1])
binary = "target/release/sluice"
args = ["run", "stateful-wordcount", "--rate", "2000000", "--vocabulary", "10000",
        "--batch", "1s", "--max-batches", "20", "--print", "0", "--ui", "off", "-vv"]

def load():
    """Cores busy over 2 s just before a run (nothing of ours runs then): the foreign load."""
    def stat():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v) - idle, sum(v)
    b0, t0 = stat(); time.sleep(2); b1, t1 = stat()
    return (b1 - b0) / max(t1 - t0, 1) * os.cpu_count()

def run(log_dir):
    cmd = [binary] + args + (["--event-log", log_dir] if log_dir else [])
    before = load()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = p.stderr.readlines()
    _, status, usage = os.wait4(p.pid, 0)
    records = procs = 0.0
    n = 0
    for line in lines:
        m = re.search(r"records=(\d+) .*processing_ms=([\d.]+)", line)
        if m and int(m.group(1)) > 0:
            records += int(m.group(1)); procs += float(m.group(2)); n += 1
    cpu = usage.ru_utime + usage.ru_stime
    size = sum(os.path.getsize(f) for f in glob.glob(f"{log_dir}/*.jsonl")) if log_dir else 0
    return dict(load=before, cpu_per_m=cpu / max(records / 1e6, 1e-9), proc_ms=procs / max(n, 1),
                bytes_per_batch=size / 21 if log_dir else 0, records=records)

results = {False: [], True: []}
for r in range(rounds):
    for on in (False, True):
        d = tempfile.mkdtemp() if on else None
        x = run(d)
        if d:
            shutil.rmtree(d)
        noisy = x["load"] > 0.3
        if not noisy:
            results[on].append(x)
        print(f"round {r + 1} event log {'on ' if on else 'off'}: load {x['load']:.2f}{' (noisy: left out)' if noisy else ''}, "
              f"{x['records'] / 1e6:.1f} M records, {x['cpu_per_m']:.3f} CPU s per M records, "
              f"{x['proc_ms']:.1f} ms per batch" + (f", {x['bytes_per_batch']:.0f} log bytes per batch" if on else ""),
              flush=True)
if not results[False] or not results[True]:
    sys.exit("every run of one side was noisy: wait for a quiet machine")
mean = lambda on, k: sum(x[k] for x in results[on]) / len(results[on])
print()
print("| measure | event log off | on | on / off |")
print("|---|---|---|---|")
for k, name in (("cpu_per_m", "CPU s per M records (lines)"), ("proc_ms", "processing ms per batch")):
    off, on = mean(False, k), mean(True, k)
    print(f"| {name} | {off:.3f} | {on:.3f} | {on / off:.3f} |")
print(f"| log bytes per batch | | {mean(True, 'bytes_per_batch'):.0f} | |")
PY
