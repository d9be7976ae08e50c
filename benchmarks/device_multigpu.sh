#!/usr/bin/env bash
# Issue 11 on a machine with 2, 4 or 8 GPUs (device kinds nvidia-h200-x2, -x4, -x8), carrying .whl, .whl_ds
# and .whl_trl:
#   bash benchmarks/device_multigpu.sh real GRID FIRST LAST    lines FIRST..LAST under torchrun with NCCL, each
#                                                               on as many GPUs as its world_size (a line for
#                                                               more GPUs than the machine has is logged, skipped)
#   bash benchmarks/device_multigpu.sh fake GRID FIRST LAST    the same lines under the fake process group,
#                                                               two workers, one per GPU
#   bash benchmarks/device_multigpu.sh single GRID FIRST LAST  one-GPU runs, two workers, one per GPU
#   bash benchmarks/device_multigpu.sh fake0 GRID FIRST LAST   fake-group runs on GPU 0 only
# One configuration per process (memory a case leaves behind must not reach the next). No new run starts
# after BUDGET seconds (default 540) so that what was measured comes back within the call's limit; the log
# says which lines were left. Results: $OUT/results.jsonl (DeepSpeed also prints lines of its own there:
# keep those that start with {"arch"), logs in $OUT/log.txt, the GPU link in $OUT/topo.txt.
set -u
# WHEELS: the carried wheel folders (a call that needs no bitsandbytes can carry .whl_min instead of .whl)
wheels=(); for d in ${WHEELS:-.whl .whl_ds .whl_trl}; do wheels+=("$d"/*.whl); done
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "${wheels[@]}" >/dev/null 2>&1 || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
start=$(date +%s); budget=${BUDGET:-540}
[ -f "$OUT/topo.txt" ] || nvidia-smi topo -m > "$OUT/topo.txt" 2>&1
left() { [ $(( $(date +%s) - start )) -lt "$budget" ]; }
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
world_size() { python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline()).get("world_size", 1))' "$1"; }

run_one() {  # mode line-number gpu-list
  local one; one=$(mktemp --suffix=.jsonl)
  sed -n "${2}p" "$grid" > "$one"
  local n; n=$(world_size "$one")
  if [ "$1" = real ] && [ "$n" -gt "$gpus" ]; then echo "line $2 skipped: world_size $n > $gpus GPUs" >> "$OUT/$1_$3.log"; rm -f "$one"; return; fi
  case $1 in
    real) timeout 240 python3 -m torch.distributed.run --standalone --nproc_per_node="$n" -m ftdecide.probe.runner "$one" ;;
    *) CUDA_VISIBLE_DEVICES=$3 timeout 240 python3 -m ftdecide.probe.runner "$one" ;;
  esac >> "$OUT/$1_$3.jsonl" 2>> "$OUT/$1_$3.log" || echo "line $2 failed: $?" >> "$OUT/$1_$3.log"
  rm -f "$one"
}

worker() {  # mode gpu stride offset
  local i
  for ((i = first + $4; i <= last; i += $3)); do
    if ! left; then echo "line $i left: out of time" >> "$OUT/$1_$2.log"; continue; fi
    run_one "$1" "$i" "$2"
  done
}

while [ $# -ge 4 ]; do
  mode=$1; grid=$2; first=$3; last=$4; shift 4
  case $mode in
    real) worker real 01 1 0 ;;
    fake|single) worker "$mode" 0 2 0 & worker "$mode" 1 2 1 & wait ;;
    fake0) worker fake 0 1 0 ;;  # GPU 0 alone (GPU 1 busy with something else)
  esac
done
# the device tool brings back a handful of files: one results file and one log per call
cat "$OUT"/*_*.jsonl > "$OUT/results.jsonl" 2>/dev/null; tail -n 20 "$OUT"/*_*.log > "$OUT/log.txt" 2>/dev/null
rm -f "$OUT"/*_*.jsonl "$OUT"/*_*.log
grep -c '^{"arch"' "$OUT/results.jsonl"; grep "failed\|left\|skipped" "$OUT/log.txt" | tail -n 20
