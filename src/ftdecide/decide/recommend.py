"""Decide how to fine-tune: candidates, their memory, time and cost, and the rules' verdict.

Pure functions over pydantic models and the typed results of :mod:`ftdecide.decide.results`; nothing here
prints or reads the terminal. Every method comes from the registry (:mod:`ftdecide.methods`), every
policy number from :mod:`ftdecide.core.policy` or the rule files, every name a rule may read from
:mod:`ftdecide.decide.rulenames`.
"""

from __future__ import annotations

import re
from dataclasses import fields as dataclass_fields, replace
from typing import Optional

from ..files import catalog
from .. import methods
from ..methods.lora import dropout_for
from . import rulenames, rules
from ..core.arch import Arch
from ..core.calibration import DEFAULT, Calibration
from ..core.errors import InputError
from ..core.policy import (
    DEFAULT_EPOCHS,
    DEFAULT_GPU,
    DEFAULT_LORA,
    DEFAULT_METHOD,
    GLOBAL_BATCH,
    SAFETY_MARGIN,
    LoraShape,
)
from .results import (
    SCHEMA_VERSION,
    Alternative,
    Candidate,
    LoraSettings,
    Message,
    Plan,
    Recommendation,
    accumulation_steps,
)
from ..core.throughput import link_gbs

from .advice import deployment_note, evaluation_plan
from .alternatives import alternatives_for
from .switches import switched, unblocked
from .choice import choose, held_back
from .scenario import Scenario, Task, validate_scenario
from .sizing import (
    _candidate,
    _lever_sizes,
    _min_gpus,
    _refuse_scenario,
    _scale_out,
    resolve_hardware,
    train_config,
    usable,
)

__all__ = ["SCHEMA_VERSION", "Scenario", "Task", "recommend", "resolve_hardware", "train_config", "validate_scenario"]

# Said with every plan on several GPUs: what its per-GPU memory rests on (the strategy's basis) and what
# its step time rests on: timed on 2 H200s over NVLink only (issue 11), so other links, more GPUs and
# several nodes are extrapolated.
MULTI_GPU_CAVEAT = (
    "{label} over {world} GPUs: per-GPU memory {basis}; communication time modelled ({link:g} GB/s links, "
    "{overlap:.0%} hidden behind the kernels), timed on 2 H200s over NVLink only: keep a margin"
)


def default_rule_paths() -> list[str]:
    return [str(catalog.config_dir() / "rules" / "default.yaml")]


def _lora_from_rules(arch: Arch, settings: dict) -> LoraShape:
    """The LoRA shape the rules set. The rank is capped by the targeted layers; a rule's alpha
    holds for the rank it set, and where the rank had to shrink alpha stays 2x rank."""
    targets = str(settings.get("targets", DEFAULT_LORA.targets))
    try:
        max_rank = arch.max_rank(arch.resolve_targets(targets))
    except InputError as e:
        raise e.at(prefix=f"rules set LoRA targets '{targets}': ") from None
    requested = int(settings.get("rank", DEFAULT_LORA.rank))
    rank = min(requested, max_rank)
    alpha = int(settings["alpha"]) if ("alpha" in settings and rank == requested) else 2 * rank
    # peft's wrapper of fused experts refuses dropout: a plan that adapts them trains without (rule moe-experts-adapted says so)
    dropout = dropout_for(arch, targets, float(settings.get("dropout", DEFAULT_LORA.dropout)))
    return LoraShape(rank=rank, alpha=alpha, targets=targets, dropout=dropout)


def _assumptions(cal: Calibration) -> dict:
    by_flops: dict[float, list[str]] = {}
    for m in methods.all_methods():
        by_flops.setdefault(m.flops_per_param, []).append(m.short_label)
    flops = ", ".join(f"{f:g}N {'/'.join(names)}" for f, names in by_flops.items())
    return {
        "matmul_utilisation": dict(cal.util),
        "attention_utilisation": cal.step.attn_util,
        "flops_per_token": f"{flops}, +2N with checkpointing, + attention",
        "time": "per step: the GPU stream (FLOPs at the method's matmul utilisation, attention at its own, memory-bound traffic at "
        "the GPU's bandwidth) against the CPU stream (kernels launched x time per kernel), combined by a fitted p-norm "
        "(ftdecide/throughput.py); GPUs scale linearly",
        "memory": "peak of the Hugging Face stack (transformers+peft+bitsandbytes, sdpa, bf16 autocast), "
        "plus CUDA context and allocator headroom",
        "global_batch_size": GLOBAL_BATCH,
    }


def recommend(sc: Scenario, rule_paths: Optional[list[str]] = None, cal: Calibration = DEFAULT) -> Recommendation:
    """The whole recommendation for ``sc``: every method sized for its GPU, the rules' verdict, the
    plan, and what would make an infeasible plan feasible. ``rule_paths`` extend the defaults and the
    scenario's own ``rules``. Where a switch that changes how the run executes, not what it learns, makes a plan fit
    that does not as asked, that plan, with the switch on and said (:mod:`ftdecide.decide.switches`)."""

    def run(scenario: Scenario) -> Recommendation:
        return _recommend(scenario, rule_paths, cal)

    res = run(sc)
    if res.plan.feasible:
        return unblocked(sc, res, run, cal) or res
    return switched(sc, res, run) or res


def _recommend(sc: Scenario, rule_paths: Optional[list[str]], cal: Calibration) -> Recommendation:
    arch = catalog.resolve_model(sc.model)
    gpu = resolve_hardware(sc)
    _refuse_scenario(sc, arch)
    fp16_master = not gpu.bf16 and sc.precision == "bf16"
    if fp16_master:
        # without bf16 the trainers train in fp16, whose grad scaler cannot unscale fp16 weights ("Attempting
        # to unscale FP16 gradients", torch 2.11 / transformers 5.17): full fine-tuning keeps fp32 master
        # weights under fp16 autocast, and is sized so
        sc = sc.model_copy(update={"precision": "mixed"})
    price = sc.price_per_hour if sc.price_per_hour is not None else gpu.price_per_hour
    rs = rules.load_rules(default_rule_paths() + list(sc.rules) + list(rule_paths or []), rulenames.schema())
    all_methods = methods.all_methods()
    # served on the training GPU at its price (the catalog's, or --price-per-hour), or on --serve-gpu at its catalog price
    serve_gpu = catalog.resolve_gpu(sc.serve_gpu) if sc.serve_gpu else gpu.model_copy(update={"price_per_hour": price})

    sizes = _Sizes(arch, gpu, sc, price, cal, serve_gpu)
    size, scale, levers = sizes.size, sizes.scale, sizes.levers

    # First pass with the default LoRA shape to learn what fits; the rules then set the final shape,
    # and are evaluated again, since conditions may read the costs and fits of the final shape.
    epochs0 = sc.epochs or DEFAULT_EPOCHS
    lora0 = _lora_from_rules(arch, {})  # the default shape, as this model takes it (dropout)
    cands0 = size(lora0, epochs0, SAFETY_MARGIN)
    facts0 = rulenames.Facts(
        sc,
        arch,
        gpu,
        cands0,
        epochs0,
        levers(lora0),
        SAFETY_MARGIN,
        _min_gpus(sc, cands0, scale(lora0, epochs0, SAFETY_MARGIN, cands0)),
    )
    first = rules.evaluate(rs, rulenames.environment(facts0))
    st = first.settings
    margin = float(st.get("safety_margin", SAFETY_MARGIN))
    epochs = sc.epochs or int(st.get("epochs", DEFAULT_EPOCHS))
    lora = _lora_from_rules(arch, st)
    cands = size(lora, epochs, margin)
    scaled = scale(lora, epochs, margin, cands)
    env = rulenames.environment(rulenames.Facts(sc, arch, gpu, cands, epochs, levers(lora), margin, _min_gpus(sc, cands, scaled)))
    outcome = rules.evaluate(rs, env)

    allowed, method = choose(all_methods, cands, outcome)
    said = outcome.warnings if method is None else [w for w in outcome.warnings if _true_of(w, method, outcome)]
    warnings = list(said) + _context_warnings(sc, arch, gpu, cands, method, fp16_master)
    alternatives: list[Alternative]
    # methods a rule forbids for another reason than their fit (a memory wall's condition reads fits.M: more
    # GPUs or a switch are its answer): never proposed
    policy = frozenset(m for lr in outcome.fired for m in lr.rule.forbid if f"fits.{m}" not in lr.rule.when)
    if method is None:
        warnings.append(
            Message(
                "feasibility",
                f"no method fits {arch.name} on {sc.world_size}x {gpu.name} ({gpu.memory_gib:g} GiB, {margin:.0%} kept free) "
                f"at seq_len {sc.seq_len}",
            )
        )
        plan = Plan(candidate=None, epochs=epochs, reasons=tuple(outcome.notes), gpus=sc.world_size, nodes=sc.nodes, safety_margin=margin)
        alternatives = alternatives_for(arch, gpu, sc, lora, cal, margin, policy)
    else:
        plan, more, alternatives = _feasible_plan(sc, arch, gpu, cands, method, allowed, outcome, st, lora, epochs, margin)
        warnings += more
    # methods that miss these GPUs, on the fewest that fit them
    alternatives += [hit for name, hit in scaled.items() if hit is not None and name not in policy]
    return Recommendation(
        scenario=sc,
        arch=arch,
        gpu=gpu,
        price_per_hour=price,
        model_source=model_source(arch),
        plan=plan,
        candidates=tuple(cands.values()),
        warnings=tuple(warnings),
        alternatives=tuple(alternatives),
        rules_fired=tuple(lr.rule.id for lr in outcome.fired),
        assumptions=_assumptions(cal),
        blocked=held_back(rs, env, all_methods, cands, method, outcome, policy) if method is not None else None,
    )


class _Sizes:
    """One scenario's sizes on its GPUs, each asked once: both rule passes ask for them, and where the rules
    leave the shape, epochs and margin as they were, the first pass's answer is the second's (nothing after
    sizing changes a candidate in place)."""

    def __init__(self, arch: Arch, gpu, sc: Scenario, price: float, cal: Calibration, serve_gpu) -> None:
        self.arch, self.gpu, self.sc, self.price, self.cal, self.serve_gpu = arch, gpu, sc, price, cal, serve_gpu
        self._sized: dict[tuple, dict[str, Candidate]] = {}
        self._scaled: dict[tuple, Optional[Alternative]] = {}
        self._levers: dict[LoraShape, dict[str, dict[str, float]]] = {}

    def size(self, lora: LoraShape, epochs: int, margin: float) -> dict[str, Candidate]:
        """Every method sized for the scenario's GPUs, with what its variants cost."""
        key = (lora, epochs, margin)
        if key not in self._sized:
            arch, gpu, sc = self.arch, self.gpu, self.sc
            room = usable(gpu, margin)
            cands = {m.name: _candidate(arch, gpu, sc, m, lora, epochs, self.price, self.cal, room) for m in methods.all_methods()}
            self._sized[key] = {name: _deployed(c, arch, sc, self.serve_gpu) for name, c in cands.items()}
        return self._sized[key]

    def scale(self, lora: LoraShape, epochs: int, margin: float, cands: dict[str, Candidate]) -> dict[str, Optional[Alternative]]:
        """For each method that misses these GPUs (and that its library can train), the fewest that fit it."""
        out = {}
        for m in methods.all_methods():
            if not cands[m.name].fits and m.unsupported(self.arch) is None:
                key = (m.name, lora, epochs, margin)
                if key not in self._scaled:
                    self._scaled[key] = _scale_out(self.arch, self.gpu, self.sc, m, lora, epochs, self.price, self.cal, margin)
                out[m.name] = self._scaled[key]
        return out

    def levers(self, lora: LoraShape) -> dict[str, dict[str, float]]:
        """Each lever's sizes, as the rules read them."""
        if lora not in self._levers:
            self._levers[lora] = {
                lever: _lever_sizes(self.arch, self.sc, field, lora, self.cal) for lever, field in rulenames.LEVERS.items()
            }
        return self._levers[lora]


def _deployed(c: Candidate, arch: Arch, sc: Scenario, serve_gpu) -> Candidate:
    """The candidate with what training and serving the scenario's variants costs (:mod:`ftdecide.decide.deploy`)."""
    from .deploy import deployment

    method = methods.get(c.method)
    est = c.estimate
    d = deployment(arch, method, est.trainable_params, method.param_bytes(c.config), c.cost_usd, sc, serve_gpu, catalog.serving_prices())
    return replace(c, deployment=d)


_SHAPE_KEYS = frozenset(f.name for f in dataclass_fields(LoraShape))


def _true_of(message: Message, method, outcome) -> bool:
    """Whether a rule's note or warning holds for a plan of ``method``: the rule preferred no other method,
    is about this one (``about``), and any LoRA shape it set is the plan's (the method takes a shape, and no
    rule of higher priority set another value)."""
    rule = next((lr.rule for lr in outcome.fired if lr.rule.id == message.rule), None)
    if rule is None:
        return True
    if rule.prefer not in (None, method.name) or (rule.about and method.name not in rule.about):
        return False
    shape = {k: v for k, v in rule.set.model_dump(exclude_none=True).items() if k in _SHAPE_KEYS}
    return not shape or (method.takes_shape and all(outcome.settings.get(k) == v for k, v in shape.items()))


def _context_warnings(sc: Scenario, arch: Arch, gpu, cands: dict[str, Candidate], method, fp16_master: bool) -> list[Message]:
    """What every plan of this scenario says about what its figures stand on: fp32 master weights where
    the GPU lacks bf16, an assumed architecture, several GPUs, a GPU known only by its memory, a method's
    serving cost."""
    warnings: list[Message] = []
    if fp16_master:
        warnings.append(
            Message(
                "fp16-master-weights",
                f"{gpu.name} has no bf16: full fine-tuning is sized and emitted with fp32 master weights under fp16 autocast "
                "(fp16 weights cannot be trained with the fp16 grad scaler); adapters train in fp32 over an fp16 base",
            )
        )
    if arch.assumed:
        warnings.append(Message("model", arch.assumed))
    if arch.note:
        # what sizing leaves out or counts of this family (a vision tower loaded, or not)
        warnings.append(Message("model-family", arch.note))
    if arch.is_moe:
        # python benchmarks/fit_trainers.py --time: the family runs trained alone (data/trainers/h100_families_*)
        warnings.append(
            Message(
                "moe-time",
                "step time of a mixture-of-experts model is counted from its active parameters and LoRA's folded expert "
                "copies; the emitted TRL script ran 0.9-2.5x that on Qwen3-30B-A3B, Qwen1.5-MoE, GLM-4.5-Air, Mixtral, "
                "gpt-oss-20b and DeepSeek-V3 (copies of 2-24 layers, one H100), and the transformers Trainer's 1.2-1.8x with "
                "LoRA and 3.1-7.2x with QLoRA (its k-bit preparation leaves the experts in fp32): expect the time and cost to "
                "be up to that much higher",
            )
        )
    host = cands[method.name].estimate.host_gib * sc.gpus if method else 0.0
    if host:
        warnings.append(
            Message(
                "host-memory",
                f"the offload keeps at least {host:,.0f} GiB of parameters, gradients and optimizer states in each node's host "
                f"memory ({sc.gpus} GPUs x {host / sc.gpus:,.1f} GiB): check the machines have it, beside the data loader's and the OS's",
            )
        )
    if sc.world_size > 1:
        spec = (cands[method.name] if method else cands[DEFAULT_METHOD]).config.strategy_spec
        warnings.append(
            Message(
                "multi-gpu",
                MULTI_GPU_CAVEAT.format(
                    label=spec.label, world=sc.world_size, basis=spec.basis, link=link_gbs(gpu, sc.nodes), overlap=spec.overlap
                ),
            )
        )
    if sc.gpu_memory is not None:
        what = "speed" if sc.price_per_hour is not None else "speed and price"
        warnings.append(
            Message(
                "gpu",
                f"a GPU known only by its memory ({gpu.memory_gib:g} GiB): the {what} of the {DEFAULT_GPU} are assumed "
                f"({gpu.bf16_tflops:g} TFLOPS bf16, {gpu.memory_bandwidth_gbs:g} GB/s"
                + (f", ${gpu.price_per_hour}/h)" if sc.price_per_hour is None else ")")
                + "; time and cost hold only for a card like it",
            )
        )
    if method is not None and method.serving_warning:
        warnings.append(Message("serving", method.serving_warning))
    return warnings


def _feasible_plan(
    sc: Scenario,
    arch: Arch,
    gpu,
    cands: dict[str, Candidate],
    method,
    allowed,
    outcome,
    st: dict,
    lora: LoraShape,
    epochs: int,
    margin: float,
):
    """(plan, its warnings, the other methods that fit) for the method the rules chose: only the notes of
    rules that led to it are its reasons; the global batch is said where it differs from the policy's or
    exceeds the data."""
    warnings: list[Message] = []
    chosen = cands[method.name]
    # a note that is not true of this plan (another method preferred, a LoRA shape it does not take or that
    # a higher rule replaced) did not lead here: it is shown apart, as such
    followed = tuple(n for n in outcome.notes if _true_of(n, method, outcome))
    over_budget = sc.budget is not None and chosen.cost_usd > sc.budget
    if over_budget:  # a rule that rejects a method for its cost is no reason for a plan that costs more
        budget_rules = {lr.rule.id for lr in outcome.fired if re.search(r"\bbudget\b", lr.rule.when)}
        followed = tuple(n for n in followed if n.rule not in budget_rules)
    plan = Plan(
        candidate=chosen,
        epochs=epochs,
        reasons=followed,
        not_followed=tuple(n for n in outcome.notes if n not in followed),
        lora=LoraSettings(lora.rank, lora.alpha, lora.targets, lora.dropout) if method.takes_shape else None,
        method_settings=method.settings(arch, chosen.config),
        learning_rate=float(st.get(method.learning_rate_setting, method.default_learning_rate)),
        gradient_accumulation_steps=accumulation_steps(chosen.micro_batch_size, sc.world_size),
        gpus=sc.world_size,
        nodes=sc.nodes,
        safety_margin=margin,
        precision="bf16" if gpu.bf16 else "fp16",
        evaluation=evaluation_plan(
            sc, method, accumulation_steps(chosen.micro_batch_size, sc.world_size) * chosen.micro_batch_size * sc.world_size
        ),
        deployment=deployment_note(arch, sc, method, chosen),
    )
    trained = sc.dataset_size - plan.evaluation.held_out_examples
    if plan.global_batch_size > trained:
        warnings.append(
            Message(
                "global-batch-exceeds-data",
                f"the global batch ({plan.global_batch_size:,} examples: micro-batch {chosen.micro_batch_size} x "
                f"{plan.gradient_accumulation_steps} accumulation x {sc.world_size:,} GPUs) is more than the "
                f"{trained:,} examples to train on: an epoch is less than one optimizer step"
                + ("; nothing is held out for evaluation" if plan.evaluation.held_out_examples == 0 else "")
                + ": use fewer GPUs or more data",
            )
        )
    if plan.global_batch_size != GLOBAL_BATCH:
        warnings.append(
            Message(
                "global-batch",
                f"global batch {plan.global_batch_size} examples, not {GLOBAL_BATCH}: {GLOBAL_BATCH} does not divide evenly over "
                f"{sc.world_size} GPUs x micro-batch {chosen.micro_batch_size}; scale the learning rate with it, or pick a GPU count "
                "that "
                f"divides {GLOBAL_BATCH}",
            )
        )
    alternatives = _within_budget(sc, chosen, epochs, warnings) if over_budget else []
    alternatives += [
        Alternative(
            "method",
            f"{m.name} also fits ({round(cands[m.name].required_gib, 2):.1f} GiB, ${round(cands[m.name].cost_usd, 2):,.2f})",
            {"method": m.name, "cost_usd": round(cands[m.name].cost_usd, 2), "time_hours": round(cands[m.name].time_hours, 3)},
        )
        for m in allowed
        if m is not method
    ]
    return plan, warnings, alternatives


def _within_budget(sc: Scenario, chosen: Candidate, epochs: int, warnings: list[Message]) -> list[Alternative]:
    """The plan costs more than the budget: say so, and offer the epochs of it the budget buys (the cost is
    per token: an epoch is a third of three)."""
    per_epoch = chosen.cost_usd / epochs
    fit = int(sc.budget // per_epoch) if per_epoch > 0 else 0
    warnings.append(
        Message(
            "budget",
            f"the plan costs ${chosen.cost_usd:,.2f}, over the ${sc.budget:,.2f} budget"
            + (f": {fit} of its {epochs} epochs cost ${fit * per_epoch:,.2f}" if 0 < fit < epochs else ": less data or shorter sequences"),
        )
    )
    if 0 < fit < epochs:
        said = f"{fit} epoch{'s' if fit > 1 else ''} cost ${fit * per_epoch:,.2f}, within the budget"
        return [Alternative("epochs", said, {"epochs": fit})]
    return []


def model_source(arch: Arch) -> str:
    """Where the architecture came from, as the output states it."""
    if arch.assumed:
        return f"assumed: {arch.assumed}"
    if arch.source.startswith(("config.json:", "Hugging Face cache:")):
        return arch.source
    return f"catalog ({arch.source})" if arch.source else "catalog"
