#!/usr/bin/env bash
# What the web UI costs: the same generated word count (network-wordcount, 2 M words/s,
# 10 000-word vocabulary, 1 s batches, 20 batches) with `--ui off` and with the UI on while a
# client reads it as the page does (statistics and batches every second) plus a Prometheus
# scrape every second; alternated 3 times each in one run. Prints per run and the ratios of
# the means: CPU seconds of the process (user + system) per million records, mean processing
# time per batch, and peak RSS. Records are the generator's lines (5 words each).
#   benches/webui-cost.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
cargo build --release --locked -p sluice-cli >&2
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$rounds" <<'PY'
import os, re, subprocess, sys, threading, time, urllib.request

rounds = int(sys.argv[1])
binary = "target/release/sluice"
args = ["run", "network-wordcount", "--rate", "2000000", "--vocabulary", "10000",
        "--batch", "1s", "--max-batches", "20", "--print", "0", "-vv"]

def run(ui):
    cmd = [binary] + args + ["--ui", "127.0.0.1:0" if ui else "off"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines, addr, stop = [], [None], threading.Event()
    def read():
        for line in p.stderr:
            lines.append(line)
            m = re.search(r"web UI at http://([^/]+)/", line)
            if m:
                addr[0] = m.group(1)
    def scrape():
        while not stop.is_set():
            if addr[0]:
                base = f"http://{addr[0]}/api/v1/applications/network-wordcount/streaming"
                for url in (base + "/statistics", base + "/batches", f"http://{addr[0]}/metrics"):
                    try:
                        urllib.request.urlopen(url, timeout=2).read()
                    except Exception:
                        pass
            stop.wait(1.0)
    t = threading.Thread(target=read); t.start()
    s = threading.Thread(target=scrape); s.start()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = status
    stop.set(); t.join(); s.join()
    words = procs = 0.0
    n = 0
    for line in lines:
        m = re.search(r"records=(\d+) .*processing_ms=([\d.]+)", line)
        if m and int(m.group(1)) > 0:
            words += int(m.group(1)); procs += float(m.group(2)); n += 1
    cpu = usage.ru_utime + usage.ru_stime
    return dict(cpu_per_mword=cpu / (words / 1e6), proc_ms=procs / max(n, 1), rss_mib=usage.ru_maxrss / 1024, words=words)

results = {False: [], True: []}
for r in range(rounds):
    for ui in (False, True):
        x = run(ui)
        results[ui].append(x)
        print(f"round {r + 1} ui {'on ' if ui else 'off'}: {x['words'] / 1e6:.1f} M records, "
              f"{x['cpu_per_mword']:.3f} CPU s per M records, {x['proc_ms']:.1f} ms per batch, "
              f"peak RSS {x['rss_mib']:.1f} MiB", flush=True)
mean = lambda ui, k: sum(x[k] for x in results[ui]) / len(results[ui])
print()
print("| measure | UI off | UI on | on / off |")
print("|---|---|---|---|")
for k, name in (("cpu_per_mword", "CPU s per M records (lines)"), ("proc_ms", "processing ms per batch"), ("rss_mib", "peak RSS, MiB")):
    off, on = mean(False, k), mean(True, k)
    print(f"| {name} | {off:.3f} | {on:.3f} | {on / off:.3f} |")
print(f"| peak RSS difference, MiB | | | {mean(True, 'rss_mib') - mean(False, 'rss_mib'):+.1f} |")

# The server's own cost, measured directly: CPU time of the `sluice-webui` thread while a
# client asks for statistics, batches and /metrics as fast as it can for 10 s.
p = subprocess.Popen([binary] + args[:-1] + ["--ui", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, text=True)
addr = None
for line in p.stderr:
    m = re.search(r"web UI at http://([^/]+)/", line)
    if m:
        addr = m.group(1)
        break
threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
tick = os.sysconf("SC_CLK_TCK")
def webui_cpu():
    total = 0
    for t in os.listdir(f"/proc/{p.pid}/task"):
        with open(f"/proc/{p.pid}/task/{t}/stat") as f:
            x = f.read()
        if "(sluice-webui)" in x:
            y = x[x.index(")") + 2:].split()
            total += int(y[11]) + int(y[12])
    return total / tick
time.sleep(3)
base = f"http://{addr}/api/v1/applications/network-wordcount/streaming"
before, n, start = webui_cpu(), 0, time.time()
while time.time() - start < 10:
    for url in (base + "/statistics", base + "/batches", f"http://{addr}/metrics"):
        urllib.request.urlopen(url, timeout=2).read()
        n += 1
spent = webui_cpu() - before
p.kill()
print()
print(f"server: {n} requests in 10 s took {spent:.2f} CPU s of its thread: {spent / n * 1e6:.0f} µs a request;"
      f" a page and a scrape every second (3 requests/s) cost {3 * spent / n * 100:.3f} % of a core")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
