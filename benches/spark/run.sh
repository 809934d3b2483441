#!/usr/bin/env bash
# Runs the Spark Streaming side of benches/state_window.rs on this machine (issue: stateful and
# windowed DStreams, measurement (c)). Installs the pyspark wheel (Spark's jars) into the
# git-ignored .tools/ folder, compiles SluiceCompare.java against them with javac (Java 17) and
# submits each scenario with spark-submit in local[2] mode; prints a table like the sluice
# benchmark's. Usage: benches/spark/run.sh [batches [modes…]]   (batches default to 25, and
# to 80 for the window modes so that their 60 s window fills and 20 full-window batches are
# measured; modes state mapwithstate window windowinv, or `sql` for benches/category_top3.rs;
# 1–2 minutes per scenario). Only the batches that had input count: the job runs on for a few
# seconds after its queue ran out, and those empty batches are left out of the summary.
set -euo pipefail
cd "$(dirname "$0")/../.."
given="${1:-}"
shift || true
modes="${*:-state mapwithstate window windowinv}"
venv=.tools/spark-venv
if [ ! -x "$venv/bin/spark-submit" ] && ! ls "$venv"/lib/python*/site-packages/pyspark/bin/spark-submit >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "pyspark==4.3.0"
fi
spark_home=$(ls -d "$venv"/lib/python*/site-packages/pyspark | head -n 1)
command -v javac >/dev/null || { echo "javac is missing: apt-get install openjdk-17-jdk-headless" >&2; exit 1; }
build=.tools/spark-compare
mkdir -p "$build"
javac -nowarn -d "$build" -cp "$spark_home/jars/*" benches/spark/SluiceCompare.java
(cd "$build" && jar cf sluice-compare.jar ./*.class)

summarize() { # label, skip (warm-up batches), batches: p50 and max processing time of batches skip+1..batches
    awk -v label="$1" -v skip="$2" -v last="$3" '/^batch /{ n++; if (n > skip && n <= last) { v[++m] = $6 } }
        END { if (m == 0) { print "| " label " | no batch completed |"; exit }
              asort(v); printf "| %s | %d ms | %d ms | %d batches |\n", label, v[int((m+1)/2)], v[m], m }'
}
echo "| Spark Streaming 4.3 local[2], 1 s batches | p50 processing | max processing | batches measured |"
echo "|---|---|---|---|"
for mode in $modes; do
    batches="${given:-25}"; skip=1
    if [ "${mode#window}" != "$mode" ]; then
        batches="${given:-80}"; skip=$(( batches > 70 ? 60 : 2 ))
    fi
    "$spark_home/bin/spark-submit" --class SluiceCompare --driver-memory 4g "$build/sluice-compare.jar" "$mode" "$batches" \
        2>"$build/$mode.err" | tee "$build/$mode.out" | summarize "$mode" "$skip" "$batches"
done
