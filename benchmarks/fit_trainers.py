"""Each trainer's figures against its emitted file run as is (``data/trainers/``), and the fit of TRL's
chunked-loss constants.

    python benchmarks/fit_trainers.py            # the table per trainer: runs, median, worst, held out
    python benchmarks/fit_trainers.py --fit      # search the chunked-loss constants on four fifths
    python benchmarks/fit_trainers.py --time     # step time of the runs that trained alone, against the model
    python benchmarks/fit_trainers.py --kbit     # each trainer's QLoRA step-time factor against the probe loop's
    python benchmarks/fit_trainers.py --eager    # Gemma 2's eager attention under the trainers, around the shipped bytes
    python benchmarks/fit_trainers.py --oom      # the runs that ran out of memory, against the plan's first step

A fifth of the runs (those whose id hashes to 0 mod 5) is held out of every fit: ``--fit`` first prints
the held-out error of the constants as shipped, then searches the constants on the other four fifths
only, then prints both parts' errors with the constants found. Errors are (estimate / measured - 1) of
the peak allocated memory (``torch.cuda.max_memory_allocated`` from the start of ``Trainer.train``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import re
import statistics
import sys
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ftdecide.core.calibration import DEFAULT
from ftdecide.probe.records import arch_of_trainer_record
from ftdecide.core.estimator import estimate_memory, memory_model
from ftdecide.probe.records import config_from_trainer_record, read_records

DATA = ROOT / "data" / "trainers"
# the emitted launches on several GPUs, each run as rank 0 of N under torch's fake process group
SHARDED = ROOT / "data" / "sharded_trainers"


# the sharded grids planned by the model kept before any of them ran (j twice: its second plan, planned_gib_b, is the
# model kept; k once); earlier grids' plans were overtaken by changes made with them in view
HELD_OUT_GRIDS = ("sharded_trl_j:", "sharded_trl_k:")


def kept_plan(rec: dict) -> float:
    """The plan a held-out launch was written with by the model kept: the second where two were written."""
    return rec.get("planned_gib_b", rec["planned_gib"])


def held_out(rec: dict) -> bool:
    return zlib.crc32(rec["id"].encode()) % 5 == 0


def load(trainer: str | None = None, status: str = "ok") -> list[dict]:
    """The runs of ``status`` (ok: they trained; oom: they ran out of memory), one record per run id, of ``trainer``
    or all."""
    out: dict[str, dict] = {}
    for rec in read_records(DATA):
        if rec.get("status") == status and (trainer is None or rec["trainer"] == trainer):
            out[rec["id"]] = rec
    return list(out.values())


def config(rec: dict):
    """The record's configuration at the shape that set its peak: examples of mixed length (any ``lengths`` but
    "full") are padded per micro-batch, so the longest micro-batch it trained is the sequence length to hold it
    against."""
    cfg = config_from_trainer_record(rec)
    if rec.get("lengths", "full") != "full" and rec.get("padded_tokens"):
        cfg = cfg.model_copy(update={"seq_len": -(-max(rec["padded_tokens"]) // rec["batch"])})
    return cfg


def error(rec: dict, cal=DEFAULT) -> float:
    est = estimate_memory(arch_of_trainer_record(rec), config(rec), cal)
    return est.peak_allocated_gib / rec["peak_train_alloc_gib"] - 1


def summary(errs: list[float]) -> str:
    if not errs:
        return "no runs"
    return (
        f"{len(errs):3d} runs, median |error| {statistics.median(abs(e) for e in errs) * 100:4.1f}%, "
        f"worst {min(errs) * 100:+6.1f}% / {max(errs) * 100:+6.1f}%"
    )


def sharded() -> list[dict]:
    """The sharded launches that trained, of what is emitted today; a record's ``precision`` is what its launch ran
    (``ran_as`` says why where that is not what its emission asked for)."""
    return [r for r in read_records(SHARDED) if r.get("status") == "ok" and not superseded(r)]


def superseded(rec: dict) -> bool:
    """A launch that loaded its base on the GPU where today's plan loads it in host memory (FSDP1 offloaded, before
    the seventeenth session: fsdp1_a:8-9): it ran what is no longer emitted."""
    cfg = config(rec)
    return cfg.strategy_spec.load_on_cpu(arch_of_trainer_record(rec), cfg) and rec.get("alloc_before_train_gib", 0.0) > 0.01


def disagreements(recs: list[dict], cal=DEFAULT) -> list[tuple[dict, str]]:
    """The runs whose plan's fit verdict, the one a recommendation turns on, is wrong: ``required_gib`` (peak, CUDA
    context and the allocator's reserve) above the memory of the card the run trained on (:func:`gpu_of`), or within
    that of a card it ran out of memory on."""
    out = []
    for r in recs:
        fits = estimate_memory(arch_of_trainer_record(r), config(r), cal).required_gib <= gpu_of(r).memory_gib
        if fits != (r.get("status") == "ok"):
            out.append((r, "refused, trained" if r.get("status") == "ok" else "fits, ran out"))
    return out


def table(cal=DEFAULT) -> None:
    oom = load(status="oom")
    runs = load() + sharded() + oom
    wrong = disagreements(runs, cal)
    print(
        f"fit verdicts: {len(runs)} runs ({len(oom)} out of memory), {len(wrong)} the plan gets wrong "
        f"{[(r['id'], why) for r, why in wrong]}"
    )
    for trainer in sorted({r["trainer"] for r in load()}):
        runs = load(trainer)
        fit = [error(r, cal) for r in runs if not held_out(r)]
        out = [error(r, cal) for r in runs if held_out(r)]
        sw = runs[0].get("software", {})
        print(f"{trainer:5s} all {summary(fit + out)}")
        print(f"      fitted part {summary(fit)}")
        print(f"      held out    {summary(out)}")
        print("      " + ", ".join(f"{k} {v}" for k, v in sw.items()))
    runs = sharded()
    if runs:
        print(f"sharded launches (rank 0 of N, fake process group) {summary([error(r, cal) for r in runs])}")
        held = [r for r in runs if r["id"].startswith(HELD_OUT_GRIDS)]
        print(
            f"      held out, as planned before they ran ({', '.join(g[:-1] for g in HELD_OUT_GRIDS)}) "
            f"{summary([kept_plan(r) / r['peak_train_alloc_gib'] - 1 for r in held])}"
        )
        for r in sorted(runs, key=lambda r: r["id"]):
            print(
                f"      {r['id']:18s} {r['model']:16s} {r['method']:5s} {r['gpus']} GPUs s{r['seq']} b{r['batch']} gc={r['gc']}: "
                f"{r['peak_train_alloc_gib']:6.2f} GiB measured, {error(r, cal) * 100:+5.1f}%"
                # a plan written in the grid before the run: its error then, beside today's
                + (
                    f" (planned {r['planned_gib']:.2f} before the run: {r['planned_gib'] / r['peak_train_alloc_gib'] - 1:+.1%})"
                    if "planned_gib" in r
                    else ""
                )
                # a second plan written before the run (grid i: today's model then)
                + (
                    f", and {r['planned_gib_b']:.2f}: {r['planned_gib_b'] / r['peak_train_alloc_gib'] - 1:+.1%}"
                    if "planned_gib_b" in r
                    else ""
                )
            )


GRID = {
    "chunk_saved_h": [2.0, 4.0, 6.0],
    "chunk_saved_tok": [0.0, 16.0, 32.0],
    "chunk_bwd_h": [4.0, 6.0, 10.0, 16.0],
    "eager_saved_bytes": [4.0, 6.0, 8.0, 10.0, 12.0],
    "fused_head_gc_h": [0.0, 0.5, 1.0, 1.5, 2.0],
    "lora_gc_down_in": [0.0, 2.0, 4.0, 6.0],
}


def loss(errs: list[float]) -> float:
    # the median error, with every under-estimate past -5% (the bound) counted three times over (an under-estimate
    # refuses nothing but runs out of memory)
    return statistics.median(abs(e) for e in errs) + sum(3 * (-e - 0.05) for e in errs if e < -0.05) / len(errs)


def fit() -> None:
    runs = [r for r in load("trl") if not r.get("liger")]  # Liger runs take Liger's loss, not the chunked one
    train = [r for r in runs if not held_out(r)]
    test = [r for r in runs if held_out(r)]
    print("as shipped: held out", summary([error(r) for r in test]))
    best = None
    for values in itertools.product(*GRID.values()):
        cal = DEFAULT.with_constants(**dict(zip(GRID, values, strict=True)))
        score = loss([error(r, cal) for r in train])
        if best is None or score < best[0]:
            best = (score, values)
    chosen = dict(zip(GRID, best[1], strict=True))
    cal = DEFAULT.with_constants(**chosen)
    print("chosen on", len(train), "runs:", json.dumps(chosen))
    print("fitted part", summary([error(r, cal) for r in train]))
    print("held out   ", summary([error(r, cal) for r in test]))


# launches written after FSDP2's launch layout was set, their plans in the grid before any run (planned_gib): lines
# 1-8 adapters (fsdp_frozen_layers), 9-13 full fine-tuning (a tied model's embedding through the step)
SHARDED_HELD_OUT = ("sharded_trl_d:",)


def frozen() -> None:
    """FSDP2's ``fsdp_frozen_layers`` on the adapters' sharded launches chosen before SHARDED_HELD_OUT: on a
    0.5 grid, the smallest median error whose worst under-estimate stays within -4.5% (the rule of
    benchmarks/scaleout.py --fit), checked on the launches held out. The count under TRL's fused head moves with it,
    one value as when it was chosen (it has been read from traces since: --fused)."""
    runs = [r for r in sharded() if not config(r).method_spec.trains_base]
    train = [r for r in runs if not r["id"].startswith(SHARDED_HELD_OUT)]
    test = [r for r in runs if r["id"].startswith(SHARDED_HELD_OUT)]
    scored = []
    for layers in [x / 2 for x in range(0, 13)]:
        cal = DEFAULT.with_constants(fsdp_frozen_layers=layers, fsdp_fused_bwd_layers=layers, fsdp_fused_fwd_layers=0.0)
        errs = [error(r, cal) for r in train]
        scored.append((statistics.median(abs(e) for e in errs), layers, min(errs), max(errs)))
    med, layers, lo, hi = min(x for x in scored if x[2] >= -0.045)
    print(f"fsdp_frozen_layers {layers} on {len(train)} launches: median {med:.1%}, {lo:+.1%} / {hi:+.1%}")
    cal = DEFAULT.with_constants(fsdp_frozen_layers=layers, fsdp_fused_bwd_layers=layers, fsdp_fused_fwd_layers=0.0)
    print("held out", summary([error(r, cal) for r in test]))
    full = [r for r in sharded() if config(r).method_spec.trains_base and r["id"].startswith(SHARDED_HELD_OUT)]
    print("full fine-tuning held out", summary([error(r) for r in full]))
    for r in test:
        print(f"      {r['id']:18s} {r['model']:16s} {r['method']:5s} {r['gpus']} GPUs gc={r['gc']}: {error(r, cal) * 100:+5.1f}%")


def fused() -> None:
    """FSDP2's layers in flight under TRL's fused head (``fsdp_fused_bwd_layers``, ``fsdp_fused_fwd_layers``): taken
    from the traces (data/traces/h100_sharded_fsdp2_*), not searched; this prints every launch's error around them,
    and the launches planned after they were set (sharded_trl_g)."""
    runs = sharded()
    for bwd in [x / 10 for x in range(20, 31)]:
        cal = DEFAULT.with_constants(fsdp_fused_bwd_layers=bwd)
        errs = [error(r, cal) for r in runs]
        late = [error(r, cal) for r in runs if r["id"].startswith("sharded_trl_g:")]
        print(f"backward {bwd:.1f}, forward {cal.fsdp_fused_fwd_layers:.1f}: all {summary(errs)}; sharded_trl_g {summary(late)}")


def alone(recs: list[dict]) -> list[dict]:
    """The runs no other run overlapped while they trained (their ``train_wall`` windows): the only ones
    whose step time is their own."""
    windows = [(r["id"], r["train_wall"]) for r in recs if r.get("train_wall")]
    return [
        r
        for r in recs
        if r.get("train_wall") and not any(i != r["id"] and w[0] < r["train_wall"][1] and w[1] > r["train_wall"][0] for i, w in windows)
    ]


def gpu_of(r: dict):
    """The catalog's GPU a run was made on: an H200 where its ``gpu`` (the device name) says so (a few family runs),
    else an H100."""
    from ftdecide.files.catalog import resolve_gpu

    return resolve_gpu("h200" if "H200" in (r.get("gpu") or "") else "h100")


def time_error(r: dict, cal=DEFAULT) -> tuple[float, float, float]:
    """(measured tokens/s, predicted tokens/s, predicted / measured - 1) of a run timed alone: the median of its
    steps after the first, against the step-time model of ``cal`` on the GPU it ran on (:func:`gpu_of`)."""
    from ftdecide.core.throughput import tokens_per_second

    gpu = gpu_of(r)
    tokens = sum(r["padded_tokens"][-r["accum"] :])
    measured = tokens / statistics.median(r["step_s"][1:])
    predicted = tokens_per_second(
        arch_of_trainer_record(r), config(r), gpu.bf16_tflops, gpu.memory_bandwidth_gbs, cal, accumulation=r["accum"]
    )
    return measured, predicted, predicted / measured - 1


def timing() -> None:
    """Measured tokens/s of each run timed alone (the median of its steps after the first) against the
    step-time model on the GPU it ran on."""
    from ftdecide.core.throughput import step_seconds

    errs: dict[str, list[float]] = {}
    # GPU-bound: the model's GPU time (products and memory traffic) over its CPU launch time (the target
    # is for these)
    bound: dict[str, list[float]] = {}
    dense: dict[str, list[float]] = {}
    dense_bound: dict[str, list[float]] = {}
    # a timing grid written with the tokens/s the model planned on each card before any of it ran
    planned: dict[str, list[float]] = {}
    # the timing grids: each run by itself on the GPU over 6 steps (the other grids' runs took 3, some of them beside
    # other runs' model builds)
    timed: dict[str, list[float]] = {}
    for r in alone(load()):
        cfg, gpu = config(r), gpu_of(r)
        measured, predicted, err = time_error(r)
        errs.setdefault(r["trainer"], []).append(err)
        s = step_seconds(arch_of_trainer_record(r), cfg, gpu.bf16_tflops, gpu.memory_bandwidth_gbs, accumulation=r["accum"])
        gpu_bound = s["matmul"] + s["memory"] > s["launch"]
        if gpu_bound:
            bound.setdefault(r["trainer"], []).append(err)
        if r["id"].startswith("trainer_"):
            dense.setdefault(r["trainer"], []).append(err)
            if gpu_bound:
                dense_bound.setdefault(r["trainer"], []).append(err)
        key = f"planned_tps_{'h200' if 'H200' in (r.get('gpu') or '') else 'h100'}"
        if key in r:
            planned.setdefault(r["trainer"], []).append(r[key] / measured - 1)
        if key + "_2" in r:  # planned again before it ran (benchmarks/plan_grid.py --suffix _2)
            planned.setdefault(r["trainer"] + " (second plan)", []).append(r[key + "_2"] / measured - 1)
        if r["id"].startswith(f"trainer_{r['trainer']}_timing:"):
            timed.setdefault(r["trainer"], []).append(err)
        shape = f"{r['trainer']:4s} {r['model']:14s} {r['method']:6s} b{r['batch']:<2d} s{r['seq']:<5d} gc={int(r['gc'])}"
        print(f"{shape} {measured:9,.0f} {predicted:9,.0f} {err:+6.1%}")
    for trainer, e in sorted(errs.items()):
        print(f"{trainer:5s} alone: {summary(e)}")
        for name in (trainer, trainer + " (second plan)"):
            if name in planned:
                print(f"{name:5s} held out, as planned before they ran: {summary(planned[name])}")
        print(f"{trainer:5s} GPU-bound: {summary(bound.get(trainer, []))}")
        # the trainer grids' dense models (issue 25's target); the family grids' MoE, hybrid and multimodal runs apart
        print(f"{trainer:5s} dense trainer grids alone: {summary(dense.get(trainer, []))}")
        print(f"{trainer:5s} dense trainer grids GPU-bound: {summary(dense_bound.get(trainer, []))}")
        print(f"{trainer:5s} timing grid: {summary(timed.get(trainer, []))}")


def kbit() -> None:
    """Each measured trainer's factor on a 4-bit base's GPU time against the probe loop's (``<trainer>_kbit_step``):
    searched on its dense QLoRA runs timed alone, its timing grid and its held-out fifth left out, then checked on both
    (log error of tokens/s; the factor on a 0.01 grid)."""
    import math

    def error(r: dict, scale: float) -> float:
        return time_error(r, DEFAULT.with_constants(**{f"{r['trainer']}_kbit_step": scale}))[2]

    for trainer in ("trl", "hf"):
        runs = [r for r in alone(load(trainer)) if r["method"] == "qlora" and not arch_of_trainer_record(r).is_moe]
        # its timing grids (trainer_<name>_timing and _timing_b), planned before they ran: checks, never fitted on
        timed = [r for r in runs if r["id"].startswith(f"trainer_{trainer}_timing")]
        fifth = [r for r in runs if r not in timed and held_out(r)]
        fitted = [r for r in runs if r not in timed and r not in fifth]
        scale = min((i / 100 for i in range(50, 151)), key=lambda x: sum(math.log1p(error(r, x)) ** 2 for r in fitted))
        for name, part in (("fitted on", fitted), ("held-out fifth", fifth), ("timing grids", timed)):
            shown = ", ".join(f"{r['model']} {error(r, 1.0):+.1%} -> {error(r, scale):+.1%}" for r in part)
            print(f"{trainer} {name} ({len(part)}): {shown}")
        print(f"{trainer}_kbit_step = {scale:.2f}")


def eager() -> None:
    """Gemma 2's eager attention under the trainers (``eager_saved_bytes``, ``eager_bwd_bytes``: read in transformers'
    code, trainers/__init__.py): every Gemma-2 run and launch of TRL and the transformers Trainer, with the values
    shipped and around them."""
    from ftdecide.core.estimator import softcapped_as_written

    def softcapped(r: dict) -> bool:
        return softcapped_as_written(arch_of_trainer_record(r), config(r))

    runs = [r for r in load() + sharded() if softcapped(r)]
    oom = [r for r in load(status="oom") if softcapped(r)]
    for saved, bwd in itertools.product((6.0, 8.0, 10.0, 12.0), (0.0, 2.0, 4.0, 6.0)):
        cal = DEFAULT.with_constants(eager_saved_bytes=saved, eager_bwd_bytes=bwd)
        errs = [error(r, cal) for r in runs]
        wrong = [r["id"] for r, _ in disagreements(runs + oom, cal)]
        mark = " (shipped)" if (saved, bwd) == (DEFAULT.eager_saved_bytes, DEFAULT.eager_bwd_bytes) else ""
        print(f"saved {saved:4.1f} B, backward {bwd:3.1f} B: {summary(errs)}, verdicts wrong {wrong}{mark}")
    for r in runs:
        gc = "checkpointed" if r["gc"] else "no checkpointing"
        print(f"  {r['id']:22s} {r['trainer']:3s} {r['method']:6s} {r['batch']} x {r['seq']} {gc}: {error(r):+.1%}")
    # the step time's traffic for those scores (eager_traffic_bytes), on the runs timed alone
    timed = [r for r in alone(load()) if softcapped(r)]
    for traffic in (DEFAULT.eager_saved_bytes, 10.0, DEFAULT.eager_traffic_bytes, 16.0):
        cal = DEFAULT.with_constants(eager_traffic_bytes=traffic)
        mark = " (shipped)" if traffic == DEFAULT.eager_traffic_bytes else ""
        print(f"step time, traffic {traffic:5.2f} B: {summary([time_error(r, cal)[2] for r in timed])}{mark}")


def oom() -> None:
    """Each run that ran out of memory: the step and the moment it failed in (the loss's forward, or backward: read in
    its traceback and its progress bar), what it held then with the block it asked for (a lower bound of that moment),
    and the plan at that moment (the optimizer's states from the second step on). A run that failed holding more than
    the plan's whole moment is under there by at least the difference."""
    for r in load(status="oom"):
        cfg = config(r)
        mm = memory_model(arch_of_trainer_record(r), cfg)
        log = r.get("log_first_error", "") + r.get("log_tail", "")
        moment = "forward" if "outputs = model(" in log else "backward" if "_engine_run_backward" in log else None
        asked = re.search(r"Tried to allocate ([0-9.]+) ([MG])iB", r.get("raised", ""))
        held = r["peak_alloc_gib"] + (float(asked[1]) / (1024 if asked[2] == "M" else 1) if asked else 0.0)
        done = re.findall(r"(\d+)/\d+ \[", log)
        step = int(done[-1]) + 1 if done else 1
        head = f"{r['id']:22s} {r['method']:5s} {r['batch']} x {r['seq']}: held {held:.2f} GiB in step {step}"
        if moment is None:
            print(f"{head}, outside forward and backward")
            continue
        states = mm.opt_gpu if step > 1 else 0.0
        plan = (mm.weights + states + mm.phases(cfg.seq_len, cfg.batch_size, cfg.gradient_checkpointing)[moment]) / 2**30
        print(f"{head}'s {moment}; the plan there {plan:.2f} ({plan / held - 1:+.1%})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--time", action="store_true", help="step time of the runs timed alone against the model")
    ap.add_argument("--frozen", action="store_true", help="FSDP2's gathered layers under an adapter's launch")
    ap.add_argument("--fused", action="store_true", help="... and under TRL's fused head, by moment (from the traces)")
    ap.add_argument("--kbit", action="store_true", help="each trainer's factor on a 4-bit base's step time against the loop's")
    ap.add_argument("--eager", action="store_true", help="Gemma 2's eager attention under the trainers")
    ap.add_argument("--oom", action="store_true", help="the runs that ran out of memory: where, and against the plan's first step")
    a = ap.parse_args()
    modes = {"fit": fit, "time": timing, "frozen": frozen, "fused": fused, "kbit": kbit, "eager": eager, "oom": oom}
    next((f for name, f in modes.items() if getattr(a, name)), table)()
