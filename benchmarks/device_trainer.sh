#!/usr/bin/env bash
# One device call: the emitted trainer files run as a user runs them (benchmarks/trainer_runs.py), lines
# of one or more grids in turn, appending to $OUT/trainer.jsonl. Carry .whl_core (ftdecide's own
# dependencies), .whl_trl (trl, datasets and the parts of its stack the GPU image lacks) and .whl_bnb
# (bitsandbytes, for the 4-bit base).
#   bash benchmarks/device_trainer.sh data/grids/trainer_trl_a.jsonl:1:60 [more GRID:FIRST:LAST ...]
# DEADLINE_S (default 500): no run starts after it; PARALLEL (default 4): runs sharing the GPU.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl_core/*.whl .whl_trl/*.whl .whl_bnb/*.whl >/dev/null 2>&1 || { echo "wheels failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, peft, trl, datasets, pyarrow, pandas, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__, 'bnb', bitsandbytes.__version__, torch.cuda.get_device_name(0))" 2>&1 | tail -2
t0=$(date +%s)
for spec in "$@"; do
  IFS=: read -r grid first last <<< "$spec"
  left=$(( ${DEADLINE_S:-500} - ($(date +%s) - t0) ))
  [ "$left" -gt 30 ] || break
  python3 benchmarks/trainer_runs.py "$grid" "$OUT/trainer.jsonl" --first "$first" --last "$last" \
    --deadline-s "$left" --parallel "${PARALLEL:-4}" --budget-gib "${BUDGET_GIB:-70}" --share "${SHARE:-1.15}" 2>&1 | tee -a "$OUT/log.txt" | grep -v "^$"
done
grep -c . "$OUT/trainer.jsonl"
