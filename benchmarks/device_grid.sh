#!/usr/bin/env bash
# One device call: measure lines FIRST..LAST of a probe grid, one configuration per process (memory a
# case leaves behind must not reach the next), appending result lines to $OUT/results.jsonl.
#   bash benchmarks/device_grid.sh data/grids/dora.jsonl 1 25   [SECONDS per run, default 120]
# ftdecide's own dependencies (pydantic) and bitsandbytes travel as wheels in .whl/ (see the device README).
set -u
grid=$1; first=$2; last=$3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
# private temporary files: several of these may run side by side on one GPU
part=$(mktemp); one=$(mktemp)
sed -n "${first},${last}p" "$grid" > "$part"
i=0
while IFS= read -r line; do
  i=$((i + 1))
  printf '%s\n' "$line" > "$one"
  timeout "${4:-120}" python3 -m ftdecide.probe.runner "$one" >> "$OUT/results.jsonl" 2>> "$OUT/log.txt" || echo "run $i failed: $?" >> "$OUT/log.txt"
done < "$part"
grep -c . "$OUT/results.jsonl"
tail -n 30 "$OUT/log.txt"
