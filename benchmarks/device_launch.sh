#!/usr/bin/env bash
# Issue 11, part 3, on a 2-GPU machine (nvidia-h200-x2), carrying .whl, .whl_ds and .whl_trl: what
# `ftdecide recommend --gpus 2 --emit ...` writes, launched for real with `accelerate launch` on a random
# Qwen2.5-0.5B (benchmarks/launch_assets.py) and a synthetic JSONL set, once with the FSDP2 plan and once
# with ZeRO-3. Each rank's peak goes to $OUT/<strategy>/launch_rank<R>.json (benchmarks/launch_peak.py).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl .whl_ds/*.whl .whl_trl/*.whl >/dev/null 2>&1 || exit 1
root=$PWD
export PYTHONPATH=/tmp/site:$root/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
w=/tmp/launch; mkdir -p $w
model=${MODEL:-qwen2.5-0.5b}
# 2,000 examples sized, 200 held out; 360 written: 160 to train = 10 steps an epoch at 8 x 2 GPUs, 3 epochs
python3 benchmarks/launch_assets.py "$model" $w/model $w/train.jsonl 360 || exit 1
for strategy in ${STRATEGIES:-fsdp zero3}; do
  d=$w/$strategy; mkdir -p "$d" "$OUT/$strategy"; cd "$d" || exit 1
  args=(--model "$model" --gpu h200 --gpus 2 --strategy "$strategy" --dataset-size 2000 --task instruction)
  python3 -m ftdecide recommend "${args[@]}" --format json > rec.json
  python3 -m ftdecide recommend "${args[@]}" --emit accelerate > accelerate.yaml
  python3 -m ftdecide recommend "${args[@]}" --emit trl > train.py
  [ "$strategy" = fsdp ] || python3 -m ftdecide recommend "${args[@]}" --emit deepspeed > ds_config.json
  sed -i "s#^MODEL = .*#MODEL = '$w/model'#" train.py
  OUT=$OUT/$strategy timeout ${LAUNCH_S:-240} python3 -m accelerate.commands.launch --config_file accelerate.yaml --num_processes 2 \
    "$root/benchmarks/launch_peak.py" train.py $w/train.jsonl > launch.log 2>&1
  echo "$strategy: rc=$?"; tail -n 4 launch.log
  cp rec.json accelerate.yaml train.py launch.log "$OUT/$strategy/"; [ -f ds_config.json ] && cp ds_config.json "$OUT/$strategy/"
  cd "$root" || exit 1
done
# the device tool brings back a handful of files: one archive
(cd "$OUT" && tar czf launch.tgz --remove-files */)
