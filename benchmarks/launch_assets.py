"""What launching an emitted config needs on a machine that downloads nothing: a checkpoint with random
weights built from a catalog model's config.json dimensions, a word-level tokenizer, and a synthetic JSONL
data set of "text" examples long enough that every one is cut at the plan's sequence length.

    python benchmarks/launch_assets.py qwen2.5-0.5b /tmp/launch/model /tmp/launch/train.jsonl 360

Needs torch, transformers and tokenizers (the device has them). Random weights: memory and speed are
real, the loss is not.
"""

from __future__ import annotations

import json
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

WORDS = 4000  # the tokenizer's vocabulary: far below the model's, so every id is an embedding row


def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<pad>": 1, "<|endoftext|>": 2}
    vocab.update({f"w{i}": i + 3 for i in range(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    try:
        from transformers import PreTrainedTokenizerFast as Fast
    except ImportError:  # transformers 5 names the tokenizers-backed class differently
        from transformers import TokenizersBackend as Fast
    return Fast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|endoftext|>")


def main(model: str, out_dir: str, data: str, examples: int, words: int = 3000) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftdecide.files.catalog import resolve_model
    from ftdecide.files.hfconfig import hf_config

    cfg = hf_config(resolve_model(model))
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    m.save_pretrained(out_dir)
    tokenizer().save_pretrained(out_dir)
    rng = random.Random(0)
    with open(data, "w", encoding="utf-8") as fh:
        for _ in range(examples):
            fh.write(json.dumps({"text": " ".join(f"w{rng.randrange(WORDS)}" for _ in range(words))}) + "\n")
    print(f"{model}: {sum(p.numel() for p in m.parameters()) / 1e9:.3f} B parameters in {out_dir}; {examples} examples in {data}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
