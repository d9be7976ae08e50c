"""Trainable parameters as peft counts them, for IA3 (peft's default modules for the family), prompt
tuning and prefix tuning, beside ftdecide's count: one JSON line per (architecture, method).
Builds each model on the meta device (no memory, no download). Needs torch, transformers and peft:
``PYTHONPATH=src python benchmarks/peft_counts.py > data/measurements/peft_counts.jsonl``."""

from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from make_grid import ARCH  # noqa: E402

from ftdecide.core.estimator import TrainConfig  # noqa: E402
from ftdecide.files.hfconfig import arch_from_hf_config  # noqa: E402


def main() -> int:
    import peft
    import torch
    import transformers
    from peft import IA3Config, PrefixTuningConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    for name, hf in ARCH.items():
        arch = arch_from_hf_config(hf, name)
        for method, make in (
            ("ia3", lambda: IA3Config(task_type="CAUSAL_LM")),
            ("prompt", lambda: PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20)),
            ("prefix", lambda: PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20)),
        ):
            rec = {"arch": name, "method": method, "vt": 20, "software": versions}
            try:
                tc = TrainConfig(method=method, virtual_tokens=20)
                rec["ftdecide"] = tc.method_spec.trainable_params(arch, tc, tc.method_spec.adapted_modules(arch, tc))
            except Exception as e:  # noqa: BLE001 - recorded, the comparison says what failed
                rec["ftdecide_error"] = str(e)
            try:
                cfg = dict(hf)
                config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
                with torch.device("meta"):
                    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
                pm = get_peft_model(model, make())
                rec["peft"] = pm.get_nb_trainable_parameters()[0]
                if method == "ia3":
                    c = pm.peft_config["default"]
                    rec["target_modules"] = sorted(c.target_modules)
                    rec["feedforward_modules"] = sorted(c.feedforward_modules)
            except Exception as e:  # noqa: BLE001
                rec["peft_error"] = f"{type(e).__name__}: {e}"[:300]
            print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
