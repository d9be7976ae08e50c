#!/usr/bin/env bash
# One call of the device tool: the emitted peft/TRL configs loaded by the real libraries (the device has
# torch, transformers and peft; trl, pytest and ftdecide's own dependencies travel as wheels in .whl/),
# and probes of the optimizers beyond AdamW (data/grids/optimizers.jsonl).
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
# DeepSpeed (0.19.8, built here as a py3-none-any wheel with DS_BUILD_OPS=0) and hjson, for the launch
# configs' loaders (tests/test_strategies.py): carry .whl_ds too
[ -d .whl_ds ] && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl_ds/*.whl
export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1
python3 -c "import torch, transformers, peft, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__)" 2>&1 | tail -2
python3 -m pytest -q -p no:cacheprovider tests/test_workflow.py -k "real_libraries or carry or documented" -rs 2>&1 | tail -15
python3 -m pytest -q -p no:cacheprovider tests/test_strategies.py -k "load_in_accelerate" -rs 2>&1 | tail -15
python3 -m ftdecide probe --grid data/grids/optimizers.jsonl --out "$OUT/optimizers.jsonl"
echo "probe rc=$?"
