"""Probe records (one JSON object per measured run) to and from the estimator's types. Pure: no torch.

A record is what ``ftdecide probe`` and ``data/measurements/*.jsonl`` hold: the configuration
(``arch``, ``hf_config``, ``method``: a method variant such as full_bf16 or lora, ``optim``, ``seq``,
``batch``, ``gc``; the method's own options under the keys its module declares (``r`` for LoRA's rank:
:func:`ftdecide.methods.options.from_record`); the levers ``liger`` and ``offload_act``) and, once
measured, ``status`` (ok/oom), ``peak_alloc_gib``,
``peak_reserved_gib``, ``tokens_per_s`` and the software versions.
"""

from __future__ import annotations

from ..core.arch import Arch
from ..core.config import TrainConfig
from ..files.hfconfig import arch_from_hf_config, hf_config, reduce_layers
from ..core.errors import flag
from ..methods import from_variant, get, names, options, variants

# What an H100 80GB reports as total memory to torch (GiB); records measured there are held against it.
H100_TOTAL_GIB = 79.18


def config_from_record(d: dict) -> TrainConfig:
    """The TrainConfig a record was measured with (``method`` is a method variant: ``full_mixed``, ...)."""
    try:
        method, precision = from_variant(d["method"])
    except KeyError:
        raise ValueError(f"unknown method '{d['method']}' (choose from {', '.join(variants())})") from None
    return TrainConfig(
        method=method.name,
        precision=precision,
        optimizer=d.get("optim", "adamw"),
        seq_len=d["seq"],
        batch_size=d["batch"],
        gradient_checkpointing=flag(d["gc"], "gc"),
        **options.from_record(d),
        gpus=int(d.get("world_size") or 1),
        strategy=d.get("strategy") or "auto",
        liger=flag(d.get("liger"), "liger"),
        offload_activations=flag(d.get("offload_act"), "offload_act"),
    )


_FILLED = "full"  # the trainer harness's "lengths" of examples that fill the sequence (benchmarks/trainer_runs.py)


def config_from_trainer_record(d: dict) -> TrainConfig:
    """The TrainConfig of a record of an emitted trainer file run as is (``benchmarks/trainer_runs.py``:
    ``data/trainers/``): catalog ``model``, ``trainer``, the method by name, ``accum`` micro-batches per step."""
    return TrainConfig(
        trainer=d["trainer"],
        method=d["method"],
        precision=d.get("precision", "bf16"),
        optimizer=d.get("optim", "adamw"),
        seq_len=d["seq"],
        batch_size=d["batch"],
        gradient_checkpointing=flag(d["gc"], "gc"),
        **options.from_record(d, legacy=False),
        liger=flag(d.get("liger"), "liger"),
        offload_activations=flag(d.get("offload"), "offload"),
        offload_params=flag(d.get("offload_params"), "offload_params"),
        gradient_accumulation=int(d.get("accum", 1)),
        gpus=int(d.get("gpus", 1)),
        strategy=d.get("strategy", "auto"),
        # examples of mixed length run padded (sdpa masked), or packed
        collation="packed" if flag(d.get("packing"), "packing") else ("filled" if d.get("lengths", _FILLED) == _FILLED else "padded"),
    )


def arch_of_trainer_record(d: dict) -> Arch:
    """The architecture a trainer record ran: catalog ``model``, or a copy of it with ``layers`` decoder
    layers (a family's model too large for one GPU, measured smaller), built from the same config; ``tie``
    (bool), where given, is the head's tying that the run's model had, when it differs from the config's."""
    from ..files.catalog import resolve_model

    arch = _window_as_run(resolve_model(d["model"]), d)
    layers, tie = d.get("layers"), d.get("tie")
    if not layers and tie is None:
        return arch
    cfg = hf_config(arch)
    if layers:
        cfg = reduce_layers(cfg, int(layers))
    if tie is not None:
        for part in (cfg, cfg.get("text_config") or {}):
            part["tie_word_embeddings"] = bool(tie)
    small = arch_from_hf_config(cfg, arch.name)
    suffix = (f"@{layers}L" if layers else "") + ("" if tie is None else f"@tie={bool(tie)}")
    return small.model_copy(update={"name": f"{arch.name}{suffix}", "model_id": arch.model_id})


def _window_as_run(arch: Arch, d: dict) -> Arch:
    """``arch`` with the sliding window its run's model had, in the families whose every layer slides or none
    (Mistral, Phi-3, Mixtral): the record's ``sliding_window`` (None: none), or, in a finished record without it,
    the family class's default: until 2026-12-07 the checkpoint's config named no window (Phi-3-mini ran without
    its 2,047, Ministral-8B with MistralConfig's 4,096)."""
    from ..files.families import FAMILIES

    family = FAMILIES[arch.family]
    if not family.slides_alike or ("sliding_window" not in d and "status" not in d):
        return arch
    window = d.get("sliding_window", family.defaults["sliding"][0]) or 0
    return arch.model_copy(update={"sliding_window": window, "sliding_layers": arch.num_layers if window else 0})


def arch_from_record(d: dict) -> Arch:
    return arch_from_hf_config(d["hf_config"], d["arch"])


def record_from_config(arch: Arch, cfg: TrainConfig, reentrant: bool = False, steps: int = 3) -> dict:
    """The probe record (before measurement) of ``cfg`` on ``arch``; inverse of :func:`config_from_record`."""
    rec = {
        "arch": arch.name,
        "hf_config": hf_config(arch),
        "method": cfg.variant,
        "optim": cfg.optimizer,
        "seq": cfg.seq_len,
        "batch": cfg.batch_size,
        "gc": cfg.gradient_checkpointing,
        "steps": steps,
    }
    rec.update(options.to_record(cfg))
    if cfg.world_size > 1:
        rec.update(world_size=cfg.world_size, strategy=cfg.strategy_spec.name)
    if cfg.liger:
        rec["liger"] = True
    if cfg.offload_activations:
        rec["offload_act"] = True
    if reentrant:
        rec["reentrant"] = True
    return rec


def config_from_recommendation(doc: dict, source: str = "recommendation") -> tuple[str, TrainConfig]:
    """(model name, TrainConfig) of the plan in a ``recommend --format json`` document; InputError for
    anything else, whatever its fields hold."""
    from pydantic import ValidationError

    from ..core.errors import InputError, preview, validation_problem

    def bad(what: str) -> InputError:
        return InputError(f"not a 'ftdecide recommend --format json' document ({what})", source)

    try:
        sc, rec = doc["scenario"], doc["recommendation"]
        if not isinstance(sc, dict) or not isinstance(rec, dict):
            raise bad("'scenario' and 'recommendation' must be objects")
        if not rec.get("feasible"):
            raise InputError("the recommendation is not feasible: there is no plan to probe", source)
        if not isinstance(sc["model"], str):
            raise bad(f"'scenario.model' must be a string, got {preview(sc['model'])}")
        if not isinstance(rec["method"], str) or rec["method"] not in names():
            raise InputError(f"unknown method {preview(rec['method'])} in the recommendation", source)
        lora = rec.get("lora") or {}
        if not isinstance(lora, dict):
            raise bad("'recommendation.lora' must be an object")
        shape = {o.name: lora[o.shape_attr] for o in options.all_options() if o.shape_attr and o.shape_attr in lora}
        if isinstance(rec.get("config"), dict):
            # schema 1.1: the plan's configuration itself, strategy, GPUs, levers and trainer included
            return sc["model"], TrainConfig.model_validate(rec["config"], strict=True)  # JSON booleans only, as elsewhere
        # schema 1.0 documents (no 'config'): what they state of the plan
        method = get(rec["method"])
        cfg = TrainConfig(
            method=method.name,
            precision=method.precision_for(sc.get("precision", "bf16")),
            optimizer=sc.get("optimizer", "adamw"),
            seq_len=sc["seq_len"],
            batch_size=rec["micro_batch_size"],
            gradient_checkpointing=flag(rec["gradient_checkpointing"], "recommendation.gradient_checkpointing"),
            **shape,
            trainer=sc.get("trainer", "loop"),
        )
        return sc["model"], cfg
    except KeyError as e:
        raise bad(f"missing {e}") from None
    except (TypeError, AttributeError) as e:
        raise bad(str(e)) from None
    except ValidationError as e:
        raise bad(validation_problem(e)) from None


def compare(rec: dict, tflops: float | None = None, bandwidth_gbs: float | None = None) -> dict:
    """ftdecide's estimate for a measured record, and its error: ``estimate`` (peak_allocated_gib,
    required_gib, fits_card, tokens_per_s where the GPU's figures are given) and ``error`` (estimate /
    measured - 1 for peak memory and tokens/s; whether fits/OOM agree with the card's total memory)."""
    from ..core.estimator import estimate_memory
    from ..core.throughput import tokens_per_second

    arch, cfg = arch_from_record(rec), config_from_record(rec)
    est = estimate_memory(arch, cfg)
    card = (rec.get("software") or {}).get("gpu_total_gib") or H100_TOTAL_GIB
    out = {
        "peak_allocated_gib": round(est.peak_allocated_gib, 3),
        "required_gib": round(est.required_gib, 3),
        "fits_card": est.required_gib <= card,
    }
    err: dict = {"fits_agree": out["fits_card"] == (rec.get("status") == "ok")}
    if tflops and bandwidth_gbs:
        out["tokens_per_s"] = round(tokens_per_second(arch, cfg, tflops, bandwidth_gbs), 1)
    if rec.get("status") == "ok":
        err["peak_allocated"] = round(est.peak_allocated_gib / rec["peak_alloc_gib"] - 1, 4)
        if "tokens_per_s" in out and rec.get("tokens_per_s"):
            err["tokens_per_s"] = round(out["tokens_per_s"] / rec["tokens_per_s"] - 1, 4)
    return {"estimate": out, "error": err}


def read_records(measurements_dir, calibration_dir=None) -> list[dict]:
    """Every record of ``measurements_dir/*.jsonl`` and, where given and present, the calibration file
    (``h100_peak_memory.jsonl`` with its ``architectures.json``). Each record gets ``src``: the file it
    came from, or ``calibration``."""
    import json
    import pathlib

    rows = []
    for f in sorted(pathlib.Path(measurements_dir).glob("*.jsonl")):
        rows += [{**json.loads(line), "src": f.name} for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    cal = pathlib.Path(calibration_dir) if calibration_dir else None
    if cal and (cal / "h100_peak_memory.jsonl").is_file():
        archs = json.loads((cal / "architectures.json").read_text(encoding="utf-8"))
        for line in (cal / "h100_peak_memory.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                d["hf_config"] = archs[d["arch"]]
                d["src"] = "calibration"
                rows.append(d)
    return rows
