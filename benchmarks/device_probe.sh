#!/usr/bin/env bash
# One call of the device tool: `ftdecide probe` end to end on a GPU, and the timing recheck grid.
# The device has torch/transformers/peft; ftdecide's own dependencies and bitsandbytes travel as wheels in .whl/.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
f() { echo "\$ ftdecide $*"; python3 -m ftdecide "$@"; echo "rc=$?"; }
{
  f probe --model qwen2.5-0.5b --method lora --seq-len 1024 --batch-size 4
  f probe --model llama-3.2-1b --method qlora --seq-len 2048 --batch-size 2 --format json
  f recommend --model qwen2.5-1.5b --gpu h100 --dataset-size 1000 --seq-len 1024 --format json > "$OUT/rec.json"
  f probe --from-json "$OUT/rec.json"
  f probe --model qwen2.5-0.5b --method full --optimizer adafactor --seq-len 512 --batch-size 2 --steps 4
} > "$OUT/probe_cli.txt" 2>&1
python3 -m ftdecide probe --grid data/grids/timing_recheck.jsonl --out "$OUT/timing_recheck.jsonl" 2> "$OUT/grid_err.txt"
echo "grid rc=$?"
tail -c 3000 "$OUT/probe_cli.txt"
