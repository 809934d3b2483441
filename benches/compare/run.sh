#!/usr/bin/env bash
# One command, one table: sluice beside Spark Streaming 4.3 (and Flink 2.3 where its wheel
# installs) on the course's socket jobs, on this machine, in one run, under the protocol of
# benches/compare.rs: every engine a child process behind the same paced sender, a quiet
# machine before and during every trial (foreign load <= 0.3 cores, else the trial is run
# again or left out), SLUICE_BENCH_RUNS runs (default 3) with the engines alternated, medians
# with min-max.
#
#   benches/compare/run.sh          (about 30 minutes per 3 runs on 2 cores; SLUICE_BENCH_QUICK=1 shortens every trial)
#
# Workloads (each engine's own program, the same input):
#   socket word count  the largest stable rate (sluice -w 1/-w 2, Spark local[2], Flink p=2),
#                      and words per CPU-second at 2 M words/s
#   updateStateByKey   the running word count, 10 000 words, 1 M words/s: p50/p90, memory
#   window             reduceByKeyAndWindow 3 s / 2 s, 1 M words/s: processing per 2 s of input
# Installs into the git-ignored .tools/: the pyspark wheel (Spark's jars) and the apache-flink
# wheel (Flink's jars; skipped with a note if it does not install).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.tools/compare
mkdir -p "$out"

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

# The library alone (no connector) is all the bench needs: a shorter build.
cargo bench --locked -p sluice --no-default-features --bench compare 2>"$out/compare.err" | tee "$out/compare.txt"
echo "(the trials, with the foreign load of each: $out/compare.err)" >&2
