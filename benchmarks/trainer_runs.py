"""Run the emitted training files as a user would, on the device GPU, and record what they peak at.

For each line of a grid (``data/grids/trainer_*.jsonl``: a catalog model, a trainer, a method and its
options, micro-batch, sequence length, checkpointing, optimizer, levers, example lengths) this script

1. writes the file ``ftdecide`` emits for that configuration (:func:`ftdecide.emit.emit_config`: the same
   text ``recommend --emit KIND`` writes for a plan of it),
2. changes only what a measurement must: the model path (a random-weight checkpoint built here from the
   model's config.json dimensions), ``max_steps``, and no evaluation or saving,
3. runs it in its own process under ``benchmarks/launch_peak.py``, which records the peak allocated and
   reserved memory from the start of ``Trainer.train``, each optimizer step's time, and the tokens each
   micro-batch held (padded and not), so a tokenizer that collapsed the text is caught,
4. appends one JSON record to the output file.

Runs of small configurations share the GPU (each process's ``max_memory_allocated`` is its own); each
record says how many ran beside it (``concurrent``), and only runs made alone are used for step time.

    python benchmarks/trainer_runs.py GRID.jsonl OUT.jsonl [--first N] [--last N] [--budget-gib 72] [--parallel 4]
    python benchmarks/trainer_runs.py --tokenizer-check     # here: every word is one token

Needs torch, transformers, peft, trl, datasets (and bitsandbytes for QLoRA) on the GPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import math
import random
import re
import shutil
import subprocess
import sys
import time
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

LETTERS = "abcdefghijklmnop"  # 16 letters: 4,096 three-letter words
WORDS = [a + b + c for a in LETTERS for b in LETTERS for c in LETTERS]
HELD_OUT = 2  # the emitted split needs a test set; evaluation itself is switched off
STEPS = 3  # optimizer steps: the states exist from the first, the peak repeats from the second on


def tokenizer_json(path: pathlib.Path) -> None:
    """A byte-level BPE tokenizer in which each word of :data:`WORDS` after a space is one token.

    Byte-level, not word-level: transformers 5 loads some families' tokenizers through their own class
    (Qwen2's byte-level BPE), whatever ``tokenizer_class`` says, and a word-level vocabulary then
    collapses every example to one token. Letters only: Qwen's pre-tokenizer splits digits one by one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=256 + 16 + 256 + len(WORDS) + 64,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([" ".join(WORDS)] * 4, trainer)
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "eos_token": "<|endoftext|>",
                "pad_token": "<pad>",
                "bos_token": None,
                "unk_token": None,
                "model_max_length": 1_000_000,
            }
        )
    )
    (path / "special_tokens_map.json").write_text(json.dumps({"eos_token": "<|endoftext|>", "pad_token": "<pad>"}))


def tokenizer_check() -> None:
    import tempfile

    from tokenizers import Tokenizer

    d = pathlib.Path(tempfile.mkdtemp())
    tokenizer_json(d)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    text = " ".join(random.Random(0).choice(WORDS) for _ in range(1000))
    n = len(tok.encode(text).ids)
    print(f"1000 words -> {n} tokens")
    assert n == 1000, n


def build_model(line: dict, out: pathlib.Path) -> float:
    """A random-weight bf16 checkpoint of the line's catalog model (``layers`` of it, where given) in
    ``out``, and the tokenizer; GiB written. Built in a child process (:func:`build_here`): building on the GPU
    here would keep this process's CUDA context (612 MiB on an H100) on the card through every run after it,
    memory a user's run has and the runs of 2026-12-07's edge grid did not."""
    subprocess.run([sys.executable, __file__, "--build", str(out)], input=json.dumps(line), text=True, check=True)
    return sum(f.stat().st_size for f in out.glob("*.safetensors")) / 2**30


def build_here(line: dict, out: pathlib.Path) -> None:
    """:func:`build_model`'s work, in the process that runs it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftdecide.probe.records import arch_of_trainer_record
    from ftdecide.files.hfconfig import hf_config

    cfg = hf_config(arch_of_trainer_record(line))
    ids = dict(eos_token_id=0, pad_token_id=1, bos_token_id=None)
    cfg.update(ids)
    if "text_config" in cfg:
        cfg["text_config"].update(ids)
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    torch.manual_seed(0)
    with torch.device("cuda"):
        m = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    m.save_pretrained(out)
    del m
    torch.cuda.empty_cache()
    if line.get("mxfp4"):
        as_mxfp4(out)
    tokenizer_json(out)


# what gpt-oss's own config.json leaves unquantized (openai/gpt-oss-20b, quantization_config)
MXFP4_NOT_CONVERTED = ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]


def as_mxfp4(out: pathlib.Path) -> None:
    """Rewrite a saved gpt-oss checkpoint as the released one is shipped: every expert stack (``gate_up_proj``,
    ``down_proj``) as MXFP4 ``_blocks`` (two 4-bit values a byte, 32 a block) and ``_scales`` (one uint8 exponent a
    block, 2^-9 to 2^-5: weights of at most 0.19), and ``quantization_config`` in config.json. transformers 5.17
    loads it as it loads openai/gpt-oss-*: de-quantized to bf16 where the ``kernels`` package is missing (the GPU
    machine, and the training recipes' ``Mxfp4Config(dequantize=True)``), which is what the plan sizes."""
    import torch
    from safetensors.torch import load_file, save_file

    g = torch.Generator().manual_seed(0)
    for f in sorted(out.glob("*.safetensors")):
        tensors = load_file(str(f))
        for name in [n for n in tensors if n.endswith(("experts.gate_up_proj", "experts.down_proj"))]:
            w = tensors.pop(name)  # [experts, in, out]: de-quantization yields it from [experts, out, in / 32, 16]
            e, k, n = w.shape
            tensors[name + "_blocks"] = torch.randint(0, 256, (e, n, k // 32, 16), dtype=torch.uint8, generator=g)
            tensors[name + "_scales"] = torch.randint(118, 123, (e, n, k // 32), dtype=torch.uint8, generator=g)
        save_file(tensors, str(f), metadata={"format": "pt"})
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": MXFP4_NOT_CONVERTED}
    cfg_path.write_text(json.dumps(cfg, indent=2))


# Word counts of the length distributions issue 28 names (lognormal: median, sigma), drawn per example;
# "bimodal" draws half its examples from each of the two.
LENGTHS = {"chat": ((300, 0.8),), "docs": ((1500, 0.5),), "bimodal": ((150, 0.5), (1800, 0.4))}


def write_data(path: pathlib.Path, n: int, seq: int, lengths: str, seed: int = 0) -> list[int]:
    """``n`` "text" examples: ``full`` ones longer than ``seq`` (cut at it), ``mixed`` ones of seq/4 to
    seq words (padded per micro-batch), or drawn from a distribution of :data:`LENGTHS` (at least 8 words,
    at most 4 x ``seq``: the trainer cuts them at ``seq``). Returns the word counts."""
    rng = random.Random(seed)
    counts = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            if lengths == "full":
                k = seq + 16
            elif lengths == "mixed":
                k = rng.randint(max(seq // 4, 1), seq - 1)
            else:
                median, sigma = LENGTHS[lengths][i % len(LENGTHS[lengths])]
                k = min(4 * seq, max(8, round(rng.lognormvariate(math.log(median), sigma))))
            counts.append(k)
            fh.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(k))}) + "\n")
    return counts


def _key(line: dict) -> str:
    """The checkpoint a line runs: its model, at its number of layers, shipped in MXFP4 or not."""
    return line["model"] + (f"@{line['layers']}L" if line.get("layers") else "") + ("-mxfp4" if line.get("mxfp4") else "")


def config_of(line: dict):
    from ftdecide.probe.records import config_from_trainer_record

    return config_from_trainer_record(line)


def emitted(kind: str, line: dict) -> str:
    """What ``recommend --emit KIND`` writes for ``line``'s plan."""
    from ftdecide.emit import emit_config
    from ftdecide.probe.records import arch_of_trainer_record

    return emit_config(
        kind,
        arch_of_trainer_record(line),
        config_of(line),
        accum=line.get("accum", 2),
        held_out=HELD_OUT,
        dataset_size=1000,
        gpu_name="device",
    )


def script_for(line: dict, model_dir: pathlib.Path) -> str:
    """The emitted file for ``line``, changed only where a measurement must be."""
    text = emitted(line["trainer"], line)
    text = re.sub(r"^MODEL = .*$", f"MODEL = {str(model_dir)!r}", text, count=1, flags=re.M)
    text = text.replace('eval_strategy="epoch"', 'eval_strategy="no"').replace('save_strategy="epoch"', 'save_strategy="no"')
    if not line.get("examples"):  # a fixed-step segment; with "examples" the run is one whole epoch
        text = text.replace('report_to="none",', f'report_to="none",\n    max_steps={line.get("steps", STEPS)},', 1)
    text = re.sub(r"^\s*trainer\.save_model\(.*\)\n", "", text, flags=re.M)
    if line.get("load") == "cpu" and "device_map=" not in text:  # the base loaded (and quantized) on the CPU where not emitted so
        text = text.replace("attn_implementation=", 'device_map={"": "cpu"}, attn_implementation=', 1)
    return text


def run_one(line: dict, model_dir: pathlib.Path, work: pathlib.Path, timeout: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    (work / "train.py").write_text(script_for(line, model_dir))
    gpus = int(line.get("gpus", 1))
    n = line.get("examples") or line["batch"] * line.get("accum", 2) * line.get("steps", STEPS) * gpus + HELD_OUT + 2
    counts = write_data(work / "train.jsonl", n, line["seq"], line.get("lengths", "full"), seed=line.get("seed", 0))
    env = dict(os.environ, OUT=str(work), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if line.get("profile"):  # torch.profiler over that many steps from the third (benchmarks/launch_peak.py)
        env["FTD_PROFILE"] = str(line["profile"])
    if line.get("memtrace"):  # what was allocated at the peak, by frame (benchmarks/launch_peak.py)
        env["FTD_MEMTRACE"] = "1"
    t0 = time.time()
    try:
        cmd = [sys.executable, str(ROOT / "benchmarks" / "launch_peak.py"), "train.py", "train.jsonl"]
        if gpus > 1:
            # the emitted accelerate config, launched as its header says with one process, which is rank 0 of
            # `gpus` under the fake process group (benchmarks/launch_peak.py, FTD_FAKE_WORLD)
            (work / "accelerate.yaml").write_text(emitted("accelerate", line))
            env["FTD_FAKE_WORLD"] = str(gpus)
            # each launch's own rendezvous port: runs share the machine
            port = str(20000 + zlib.crc32(line["id"].encode()) % 20000)
            launch = [
                "-m",
                "accelerate.commands.launch",
                "--config_file",
                "accelerate.yaml",
                "--num_processes",
                "1",
                "--main_process_port",
                port,
            ]
            cmd = [sys.executable, *launch, *cmd[1:]]
        p = subprocess.run(
            cmd,
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        rc, log = p.returncode, (p.stdout + p.stderr)
    except subprocess.TimeoutExpired as e:
        rc, log = 124, str(e.stdout or "") + str(e.stderr or "")
    rec = dict(line, wall_s=round(time.time() - t0, 1), rc=rc, words=counts if line.get("examples") else counts[:8])
    # the window the model was built with, where its family's config names one (probe/records.py, _window_as_run)
    from ftdecide.files.hfconfig import hf_config
    from ftdecide.probe.records import arch_of_trainer_record

    built = hf_config(arch_of_trainer_record(line))
    if "sliding_window" in built and "text_config" not in built:
        rec["sliding_window"] = built["sliding_window"]
    info_path = work / "launch_rank0.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        info.pop("log_history", None)
        rec.update(info)
    oom = "OutOfMemoryError" in log or "CUDA out of memory" in log
    rec["status"] = "ok" if rc == 0 and "peak_train_alloc_gib" in rec else ("oom" if oom else "error")
    if rec["status"] != "ok":
        rec["log_tail"] = log[-1500:]
        # under a launcher the tail is its own traceback: the script's first one says what stopped it
        first = log.find("Traceback (most recent call last)")
        if first >= 0:
            rec["log_first_error"] = log[first : first + 3000]
            # the exception's own line ends the traceback, past what 3,000 characters keep
            raised = re.search(r"^(?:\[rank\d+\]: )?\w[\w.]*(?:Error|Exception)\b.*$", log[first:], re.M)
            if raised:
                rec["raised"] = raised.group(0)[:500]
    return rec


def estimate_gib(line: dict) -> float:
    """The probe loop's plan for this line: an upper bound to pack runs on the GPU with."""
    from ftdecide.core.estimator import estimate_memory
    from ftdecide.probe.records import arch_of_trainer_record

    return estimate_memory(arch_of_trainer_record(line), config_of(line)).required_gib


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("grid", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--first", type=int, default=1)
    ap.add_argument("--last", type=int, default=10**9)
    ap.add_argument("--budget-gib", type=float, default=70.0)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--share", type=float, default=1.15, help="of the loop's plan, to pack runs on the GPU with")
    ap.add_argument("--timeout", type=int, default=420)
    ap.add_argument("--deadline-s", type=float, default=540.0, help="start no run after this many seconds")
    ap.add_argument("--tokenizer-check", action="store_true")
    ap.add_argument("--build", metavar="DIR", help="build the grid line read from stdin into DIR (build_model's child)")
    a = ap.parse_args()
    if a.tokenizer_check:
        tokenizer_check()
        return
    if a.build:
        build_here(json.loads(sys.stdin.read()), pathlib.Path(a.build))
        return
    lines = [json.loads(x) for x in open(a.grid, encoding="utf-8") if x.strip()][a.first - 1 : a.last]
    for i, line in enumerate(lines):
        line.setdefault("id", f"{pathlib.Path(a.grid).stem}:{a.first + i}")
        # the probe loop's plan is an upper bound of what the trainers peak at (TRL's chunked loss, no
        # fp32 up-casts): a share of it packs the GPU; a run that runs out beside others runs again alone
        line["_need"] = min(estimate_gib(line) * a.share + 1.5, a.budget_gib)
    assets = pathlib.Path(os.environ.get("ASSETS", "/tmp/ftd_assets"))
    built: dict[str, pathlib.Path] = {}
    running: list[tuple[dict, object, float]] = []
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=a.parallel)
    t_start = time.time()
    pending = list(lines)
    out = open(a.out, "a", encoding="utf-8")

    results: list[str] = []

    def finish(done):
        for item in done:
            running.remove(item)
            rec = item[1].result()
            if rec["status"] == "oom" and item[0]["_need"] < a.budget_gib and not item[0].get("_retried"):
                # it may have run out beside others: once more, alone
                item[0].update(_need=a.budget_gib, _retried=True)
                pending.insert(0, item[0])
                print(f"{rec['id']}: out of memory beside others, again alone", flush=True)
                continue
            rec.pop("_need", None)
            rec.pop("_retried", None)
            results.append(rec["status"])
            if results[:3] == ["error"] * 3:
                print("the first three runs failed: stopping\n" + rec.get("log_tail", ""), flush=True)
                os._exit(3)
            out.write(json.dumps(rec, default=str) + "\n")
            out.flush()
            print(
                f"{rec['id']} {rec['model']} {rec['trainer']} {rec['method']} b{rec['batch']} s{rec['seq']} gc={rec['gc']}: "
                f"{rec['status']} {rec.get('peak_train_alloc_gib', 0):.2f} GiB ({rec['wall_s']} s, {rec['concurrent']} beside)",
                flush=True,
            )
        # a model's checkpoint goes once no pending or running line needs it (the disk holds about two)
        for m in list(built):
            if not any(_key(x) == m for x in pending) and not any(_key(x[0]) == m for x in running):
                shutil.rmtree(built.pop(m), ignore_errors=True)

    while pending or running:
        finish([r for r in running if r[1].done()])
        if pending and time.time() - t_start > a.deadline_s:
            print(f"deadline: {len(pending)} lines not started", flush=True)
            for x in pending:
                x.pop("_need", None)
            pending.clear()
        started = False
        used = sum(r[2] for r in running)
        # the first pending line that can start now: its model built (or room to build it) and its
        # memory free; a line that needs half the budget runs alone
        for line in pending[: a.parallel * 3]:
            alone = line["_need"] > a.budget_gib / 2
            ok = (not running) if alone else (len(running) < a.parallel and used + line["_need"] <= a.budget_gib)
            if ok and _key(line) not in built:
                if len(built) >= 2 and running:
                    continue  # wait for a model's runs to end before writing a third checkpoint
                d = assets / _key(line)
                shutil.rmtree(d, ignore_errors=True)
                gib = build_model(line, d)
                built[_key(line)] = d
                print(f"built {_key(line)}: {gib:.2f} GiB", flush=True)
            if ok:
                pending.remove(line)
                line["concurrent"] = len(running)
                work = pathlib.Path("/tmp/ftd_runs") / line["id"].replace(":", "_")
                fut = pool.submit(run_one, line, built[_key(line)], work, a.timeout)
                running.append((line, fut, line["_need"]))
                started = True
                break
            if alone:
                break  # keep its turn: smaller lines behind it would starve it
        if not started:
            time.sleep(0.5)
    out.close()


if __name__ == "__main__":
    main()
