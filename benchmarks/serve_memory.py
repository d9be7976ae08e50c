"""Serving memory of one base with N LoRA adapters loaded through peft, against the plan's serving memory
(issue 30), on the device GPU:

    python benchmarks/serve_memory.py OUT.jsonl [MODEL]        # MODEL: a catalog name (default llama-3.2-1b)

Without a CUDA GPU it runs on the CPU and counts the tensors instead (every parameter's and buffer's bytes after
loading, and the KV cache the prefill keeps; no allocator peak), at a shorter prefill (``CPU_CASE``).

A random-weight bf16 base is built from the catalog config and saved, with 16 LoRA adapters (r=16,
all-linear, each its own random B so none is zero) saved as peft saves them. Then, each case in its own
process: the base loaded in bf16, N of the adapters loaded with ``PeftModel.from_pretrained`` /
``load_adapter`` (peft's default ``autocast_adapter_dtype=True``, which holds them in fp32, and with it off:
bf16, as vLLM holds them), the memory allocated after loading (GiB = 2**30 B), and the peak of one prefill of
``concurrency`` sequences of ``context`` tokens with the KV cache kept (``use_cache``, ``logits_to_keep=1``).
One JSON record per case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
GIB = 2**30
CASES = [(n, fp32, ctx, conc) for n in (1, 4, 16) for fp32 in (True, False) for ctx, conc in ((4096, 8),)]
CPU_CASE = (1024, 2)  # context, concurrency of the CPU's prefill


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _tensor_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def build(model: str, root: str) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftdecide.files.catalog import resolve_model
    from ftdecide.files.hfconfig import hf_config

    cfg = hf_config(resolve_model(model))
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(0)
    with torch.device(_device()):
        base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    base.save_pretrained(f"{root}/base")
    for i in range(16):
        m = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
        for name, p in m.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.01)
        m.save_pretrained(f"{root}/a{i}")
        base = m.unload()
    print("built", model, flush=True)


def case(root: str, n: int, fp32: bool, ctx: int, conc: int) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dev = _device()
    cuda = dev == "cuda"
    base = AutoModelForCausalLM.from_pretrained(f"{root}/base", dtype=torch.bfloat16, device_map=dev)
    weights = torch.cuda.memory_allocated() if cuda else _tensor_bytes(base)
    m = PeftModel.from_pretrained(base, f"{root}/a0", adapter_name="a0", autocast_adapter_dtype=fp32)
    for i in range(1, n):
        m.load_adapter(f"{root}/a{i}", adapter_name=f"a{i}", autocast_adapter_dtype=fp32)
    m.eval()
    loaded = torch.cuda.memory_allocated() if cuda else _tensor_bytes(m)
    lora = [p for k, p in m.named_parameters() if "lora_" in k]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        ctx, conc = CPU_CASE
    ids = torch.randint(0, base.config.vocab_size, (conc, ctx), device=dev)
    with torch.inference_mode():
        out = m(input_ids=ids, use_cache=True, logits_to_keep=1)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    kv = sum(t.numel() * t.element_size() for layer in out.past_key_values.layers for t in (layer.keys, layer.values))
    return {
        "adapters": n,
        "adapter_dtype": str(lora[0].dtype),
        "adapter_params": sum(p.numel() for p in lora),
        "context": ctx,
        "concurrency": conc,
        "weights_gib": weights / GIB,
        "loaded_gib": loaded / GIB,
        "adapters_gib": (loaded - weights) / GIB,
        "kv_gib": kv / GIB,
        "prefill_peak_gib": peak / GIB if cuda else None,
        "after_prefill_gib": torch.cuda.memory_allocated() / GIB if cuda else None,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (tensor bytes)",
        "torch": torch.__version__,
        "peft": __import__("peft").__version__,
        "transformers": __import__("transformers").__version__,
    }


def main() -> None:
    if sys.argv[1] == "--case":
        root, n, fp32, ctx, conc = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5]), int(sys.argv[6])
        print(json.dumps(case(root, n, fp32, ctx, conc)))
        return
    out, model = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "llama-3.2-1b")
    root = tempfile.mkdtemp()
    build(model, root)
    with open(out, "a", encoding="utf-8") as fh:
        for n, fp32, ctx, conc in CASES:
            p = subprocess.run(
                [sys.executable, __file__, "--case", root, str(n), "1" if fp32 else "0", str(ctx), str(conc)],
                capture_output=True,
                text=True,
            )
            if p.returncode:
                print("failed", n, fp32, p.stderr[-800:], flush=True)
                continue
            rec = dict(json.loads(p.stdout.strip().splitlines()[-1]), model=model)
            fh.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
