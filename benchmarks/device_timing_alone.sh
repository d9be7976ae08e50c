#!/usr/bin/env bash
# Step times of Houlsby adapters and prefix tuning, each run alone on its GPU (issue 12): the memory runs of
# these methods shared one GPU two or three at a time (their records say concurrent_runs), so their step
# times timed the sharing. Here two workers run one configuration at a time, each on a GPU of its own:
#   bash benchmarks/device_timing_alone.sh     (device kind nvidia-h200-x2; carry .whl_min and .whl_ad)
# Houlsby runs need the adapters library's transformers 4.57 (.whl_ad, a site of their own); prefix runs
# use the image's transformers and peft. Results: $OUT/houlsby.jsonl, $OUT/prefix.jsonl, $OUT/log.txt.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site_min .whl_min/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site_ad .whl_ad/*.whl || exit 1
export PYTHONUNBUFFERED=1
run() {  # GPU GRID LINES PYTHONPATH OUTFILE
  for i in $3; do
    one=$(mktemp); sed -n "${i}p" "$2" > "$one"
    CUDA_VISIBLE_DEVICES=$1 PYTHONPATH=$4 timeout 120 python3 -m ftdecide.probe.runner "$one" >> "$5.$1" 2>> "$OUT/log.txt" \
      || echo "failed: $2 line $i" >> "$OUT/log.txt"
  done
}
worker() {  # GPU HOULSBY-LINES PREFIX-LINES
  run "$1" data/grids/houlsby.jsonl "$2" /tmp/site_ad:/tmp/site_min:src "$OUT/houlsby.jsonl"
  run "$1" data/grids/peft_family.jsonl "$3" /tmp/site_min:src "$OUT/prefix.jsonl"
}
worker 0 "1 2 3 4" "29 31 33" &
worker 1 "5 6 7 8" "35 37 39" &
wait
for f in houlsby prefix; do cat "$OUT/$f.jsonl".* > "$OUT/$f.jsonl" 2>/dev/null; rm -f "$OUT/$f.jsonl".*; done
grep -v '^#' "$OUT/log.txt" | tail -n 20; wc -l "$OUT"/*.jsonl
