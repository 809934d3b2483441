#!/usr/bin/env bash
# One command, one table: sluice beside Spark Streaming 4.3 (and Flink 2.3 where its wheel
# installs) on the same workloads, on this machine, in one run, with the machine's load.
#
#   benches/compare/run.sh          (about 20 minutes on 2 cores; SLUICE_BENCH_QUICK=1 shortens the sluice side)
#
# Workloads (each engine's own program, the same input):
#   socket word count  the largest rate kept up with, one paced sender for every engine
#                      (cargo bench --bench compare: sluice -w 1/-w 2, Spark local[2], Flink p=2)
#   updateStateByKey   1 000 000 keys in the first batch, then 10 000 per batch, Spark's rule
#                      (every key every batch, the full state out): p50 processing per batch
#                      (cargo bench --bench state_window, scenario ubk-spark-snapshots;
#                      benches/spark/run.sh state)
#   window             reduceByKeyAndWindow, 60 s window, 1 s slide, 1 000 000 words a batch:
#                      p50 once the window is full (scenario window; benches/spark/run.sh window)
#   Kafka pass-through Kafka → Kafka, at-least-once and exactly-once (cargo bench --bench kafka,
#                      noida-db); the pyspark and apache-flink wheels carry no Kafka connector
#                      and nothing else here can fetch one, so sluice is compared with a bare
#                      rdkafka consumer instead.
# Installs into the git-ignored .tools/: the pyspark wheel (Spark's jars), the apache-flink wheel
# (Flink's jars; skipped with a note if it does not install), the Kafka-protocol broker.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.tools/compare
mkdir -p "$out"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(loadavg)

# Spark: the wheel, and SluiceCompare.java compiled against its jars.
venv=.tools/spark-venv
if ! ls "$venv"/lib/python*/site-packages/pyspark/bin/spark-submit >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "pyspark==4.3.0"
fi
command -v javac >/dev/null || { echo "javac is missing: apt-get install openjdk-17-jdk-headless" >&2; exit 1; }
SPARK_HOME=$(cd "$(ls -d "$venv"/lib/python*/site-packages/pyspark | head -n 1)" && pwd)
mkdir -p .tools/spark-compare
javac -nowarn -d .tools/spark-compare -cp "$SPARK_HOME/jars/*" benches/spark/SluiceCompare.java
(cd .tools/spark-compare && jar cf sluice-compare.jar ./*.class)
SLUICE_SPARK_JAR=$PWD/.tools/spark-compare/sluice-compare.jar
export SPARK_HOME SLUICE_SPARK_JAR

# Flink, if its wheel installs here.
fvenv=.tools/flink-venv
if ! ls "$fvenv"/lib/python*/site-packages/pyflink/lib/flink-dist-*.jar >/dev/null 2>&1; then
    python3 -m venv "$fvenv"
    "$fvenv/bin/pip" install -q "apache-flink==2.3.0" || echo "apache-flink did not install: Flink is left out" >&2
fi
if flink_lib=$(ls -d "$fvenv"/lib/python*/site-packages/pyflink/lib 2>/dev/null | head -n 1) && [ -n "$flink_lib" ]; then
    flink_lib=$(cd "$flink_lib" && pwd)
    mkdir -p .tools/flink-compare
    javac -nowarn -d .tools/flink-compare -cp "$flink_lib/*" benches/flink/FlinkWordCount.java
    export SLUICE_FLINK_CLASSPATH="$flink_lib/*:$PWD/.tools/flink-compare"
fi
scripts/kafka-broker.sh install >/dev/null

echo "== socket word count (cargo bench --bench compare)" >&2
cargo bench --locked --bench compare 2>"$out/socket.err" | tee "$out/socket.txt"
echo "== updateStateByKey and window on sluice (cargo bench --bench state_window)" >&2
SLUICE_BENCH_SCENARIO=ubk-spark-snapshots cargo bench --locked --bench state_window | tee "$out/state.txt"
SLUICE_BENCH_SCENARIO=window cargo bench --locked --bench state_window | tee "$out/window.txt"
echo "== the same on Spark (benches/spark/run.sh)" >&2
benches/spark/run.sh "" state window | tee "$out/spark.txt"
echo "== Kafka (cargo bench --bench kafka)" >&2
records=${SLUICE_BENCH_RECORDS:-2000000}
SLUICE_BENCH_RECORDS=$records cargo bench --locked --bench kafka | tee "$out/kafka.txt"
load_end=$(loadavg)

# The table.
socket() { awk -v k="$1" '$1 == "RESULT" && $2 == "socket" && $3 == k { print $4 * 10 }' "$out/socket.txt"; }
ms_col() { awk -F'|' -v c="$2" 'NR == 1 || /^\|/ { gsub(/ ms| /, "", $c); if ($c ~ /^[0-9.]+$/) { print $c; exit } }' "$1"; }
spark_p50() { awk -F'|' -v m="$1" '{ gsub(/ /, "", $2) } $2 == m { gsub(/ ms| /, "", $3); print $3 }' "$out/spark.txt"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.1f×", a / b; else print "–" }'; }
mw() { awk -v a="$1" 'BEGIN { if (a + 0 > 0) printf "%.2f M", a / 1e6; else print "–" }'; }
s1=$(socket sluice-w1); s2=$(socket sluice-w2); sp=$(socket spark); fl=$(socket flink)
cpu() { awk -v k="$1" '$1 == "RESULT" && $2 == "cpu" && $3 == k { print $4 }' "$out/socket.txt"; }
c1=$(cpu sluice-w1); c2=$(cpu sluice-w2); csp=$(cpu spark); cfl=$(cpu flink)
state_sluice=$(ms_col "$out/state.txt" 4); state_spark=$(spark_p50 state)
window_sluice=$(ms_col "$out/window.txt" 4); window_spark=$(spark_p50 window)
k1=$(awk -F'|' '$2 ~ /direct stream \+ count\(\), -w 1 *$/ { gsub(/ /, "", $4); print $4 }' "$out/kafka.txt")
k2=$(awk -F'|' '$2 ~ /direct stream \+ count\(\), -w 2 *$/ { gsub(/ /, "", $4); printf "%.2f", $4 / 2 }' "$out/kafka.txt")
eo=$(awk '/pass-through/ { print $NF }' "$out/kafka.txt")
alo=$(awk '/pass-through/ { for (i = 1; i <= NF; i++) if ($i == "at-least-once") print $(i + 1) }' "$out/kafka.txt")

echo
echo "# sluice beside Spark Streaming 4.3 and Flink 2.3: $(nproc) cores, load $load_start at the start, $load_end at the end"
echo
echo "| workload | sluice | Spark Streaming | Flink | sluice vs Spark | sluice vs Flink |"
echo "|---|---|---|---|---|---|"
echo "| socket word count, largest stable rate, words/s (sluice -w 1) | $(mw "$s1") | $(mw "$sp") | $(mw "$fl") | $(ratio "$s1" "$sp") | $(ratio "$s1" "$fl") |"
echo "| the same, sluice -w 2 | $(mw "$s2") | | | $(ratio "$s2" "$sp") | $(ratio "$s2" "$fl") |"
echo "| the same, words per CPU-second at that rate (sluice -w 1) | $(mw "$c1") | $(mw "$csp") | $(mw "$cfl") | $(ratio "$c1" "$csp") | $(ratio "$c1" "$cfl") |"
echo "| words per CPU-second, sluice -w 2 | $(mw "$c2") | | | $(ratio "$c2" "$csp") | $(ratio "$c2" "$cfl") |"
echo "| updateStateByKey, 1 M keys, 10 000 updated a batch, full state every batch: p50 processing | ${state_sluice:-–} ms | ${state_spark:-–} ms | (no DStream state) | $(ratio "$state_spark" "$state_sluice") faster | |"
echo "| reduceByKeyAndWindow 60 s / 1 s, 1 M words a batch: p50 processing once full | ${window_sluice:-–} ms | ${window_spark:-–} ms | | $(ratio "$window_spark" "$window_sluice") faster | |"
echo "| Kafka direct stream read, per worker, ratio to a bare rdkafka consumer (-w 1 / -w 2) | ${k1:-–} / ${k2:-–} | no Kafka connector in the wheel | no Kafka connector in the wheel | | |"
echo "| Kafka → Kafka pass-through, -w 2: exactly-once / at-least-once | ${eo:-–} (at-least-once ${alo:-–} M/s) | no Kafka connector | no Kafka connector | | |"
