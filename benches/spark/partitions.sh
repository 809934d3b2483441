#!/usr/bin/env bash
# Prints Spark 4.3's own partitions for the conformance cases where placement shows
# (benches/spark/PartitionsReference.java), with the pyspark wheel's jars (installed into the
# git-ignored .tools/ as benches/spark/run.sh does). Usage: benches/spark/partitions.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.tools/spark-venv
if ! ls "$venv"/lib/python*/site-packages/pyspark/bin/spark-submit >/dev/null 2>&1; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "pyspark==4.3.0"
fi
spark_home=$(ls -d "$venv"/lib/python*/site-packages/pyspark | head -n 1)
build=.tools/spark-partitions
mkdir -p "$build"
javac -nowarn -d "$build" -cp "$spark_home/jars/*" benches/spark/PartitionsReference.java
(cd "$build" && jar cf partitions.jar ./*.class)
"$spark_home/bin/spark-submit" --class PartitionsReference "$build/partitions.jar" 2>"$build/err.log"
