#!/usr/bin/env bash
# One device call for the Houlsby adapter runs and the lever timings (issue 12):
#   bash benchmarks/device_adapters.sh      (carry .whl_min and .whl_ad: see the device README)
# The adapters library pins transformers 4.57: its runs get a site of their own (.whl_ad: transformers
# 4.57.6, tokenizers 0.22.1, huggingface_hub 0.36.0, adapters 1.3.0), two at a time (their peaks are per
# process; their step times time the sharing: the records say concurrent_runs 2, and benchmarks/accuracy.py
# leaves them out of the time tables). The lever timings run one at a time on the image's transformers.
set -u
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site_min .whl_min/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site_ad .whl_ad/*.whl || exit 1
export PYTHONUNBUFFERED=1
run() {  # GRID FIRST LAST PYTHONPATH OUTFILE
  sed -n "$2,$3p" "$1" | while IFS= read -r line; do
    one=$(mktemp); printf '%s\n' "$line" > "$one"
    PYTHONPATH=$4 timeout 90 python3 -m ftdecide.probe.runner "$one" >> "$5" 2>> "$OUT/log.txt" || echo "failed: $line" >> "$OUT/log.txt"
  done
}
run data/grids/houlsby.jsonl 1 4 /tmp/site_ad:/tmp/site_min:src "$OUT/houlsby.jsonl" &
run data/grids/houlsby.jsonl 5 8 /tmp/site_ad:/tmp/site_min:src "$OUT/houlsby.jsonl" &
wait
python3 - "$OUT/houlsby.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
open(sys.argv[1], "w").write("".join(json.dumps(dict(r, concurrent_runs=2)) + "\n" for r in rows))
PY
run data/grids/lever_timing.jsonl 1 6 /tmp/site_min:src "$OUT/timing.jsonl"
wc -l "$OUT"/*.jsonl
