"""Everything the commands show: rich tables, markdown and the JSON documents of each command.

The core returns typed objects (:mod:`ftdecide.decide.results`, :class:`ftdecide.core.estimator.MemoryEstimate`,
:class:`ftdecide.decide.fit.FitRow`, ...); the functions here turn them into text, and know nothing of how
the input was read. ``*_json`` functions return JSON-ready values; the ``recommend`` document is
:meth:`ftdecide.decide.results.Recommendation.to_json`. Every string that came from a user's file or argument
is escaped before rich sees it, so it is never read as markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..core.arch import Arch
    from ..files.catalog import GPU
    from ..core.estimator import MemoryEstimate, TrainConfig
    from ..decide.fit import FitRow
    from ..decide.mix import TaskMix
    from ..decide.results import Plan, Recommendation
    from ..decide.rules import RuleSet


def clean(text) -> str:
    """``text`` with every control character, line break and lone surrogate escaped (``\\x1b``,
    ``\\ud800``): names and messages come from config files, rule files and the command line, and an
    ANSI or OSC sequence among them must not reach the terminal."""
    from ..core.errors import one_line

    return one_line(str(text))


def esc(text) -> str:
    """:func:`clean`, then escaped for rich markup (a name like ``[bold]`` stays text)."""
    from rich.markup import escape

    return escape(clean(text))


# Symbols of the table and the lines under it, and their ASCII stand-ins for a stream that cannot
# encode them (PYTHONIOENCODING=ascii, latin-1, a Windows code page redirected to a file).
_UNICODE = {"full": "█", "empty": "░", "over": "▶", "bullet": "•", "arrow": "→"}
_ASCII = {"full": "#", "empty": ".", "over": ">", "bullet": "*", "arrow": "->"}


def symbols(encoding: str | None) -> dict[str, str]:
    try:
        "".join(_UNICODE.values()).encode(encoding or "ascii")
        return _UNICODE
    except (LookupError, UnicodeEncodeError):
        return _ASCII


def _table(title: str, columns: Iterable[str], right: Iterable[str] = ()):
    from rich.table import Table

    t = Table(title=esc(title))
    right = set(right)
    for c in columns:
        t.add_column(c, justify="right" if c in right else "left")
    return t


def _bar(used: float, total: float, sym: dict[str, str], width: int = 20) -> str:
    frac = used / total if total > 0 else 1.0
    n = min(width, int(round(frac * width)))
    return (sym["full"] * n + sym["empty"] * (width - n)) + (sym["over"] if frac > 1 else " ")


# --- recommend ------------------------------------------------------------------------------------
def _rec_line(plan: "Plan") -> str:
    c = plan.candidate
    if c is None:
        return "nothing fits - see alternatives"
    spec = c.config.method_spec
    s = spec.name.upper() if plan.lora else spec.label
    if plan.lora:
        lo = plan.lora
        s += f" r={lo.rank} alpha={lo.alpha} targets={lo.targets} dropout={lo.dropout}"
    for k, v in (plan.method_settings or {}).items():
        s += f" {k}={','.join(map(str, v)) if isinstance(v, list) else v}"
    s += (
        f", lr {plan.learning_rate:.0e}, {plan.epochs} epochs, micro-batch {c.micro_batch_size} x "
        f"{plan.gradient_accumulation_steps} accumulation"
        f", checkpointing {'on' if c.gradient_checkpointing else 'off'}, {plan.precision}"
        + (f", {plan.gpus}x {c.config.strategy_spec.label}" if plan.gpus > 1 else "")
        + f": ~{round(c.time_hours, 3):.2f} h, ${round(c.cost_usd, 2):,.2f}"
    )
    return s


def _deploy_size(plan: "Plan") -> str:
    dep = plan.deployment
    if dep is None:
        return ""
    if dep.adapter_size_mb is not None:
        return f" (adapter {dep.adapter_size_mb:,.1f} MB)"
    return f" ({(dep.size_mb or 0) / 1e3:,.1f} GB)"


# The stack the figures assume, said under every recommendation (not only with --explain): users of
# Unsloth, torchtune or Liger kernels need less memory than these figures.
STACK = (
    "figures for {trainer} ({versions}{unmeasured}), {attention} attention, bf16 autocast",
    "levers sized when switched on: --liger, --offload-activations, --optimizer paged_adamw_8bit; not modelled: Unsloth",
)


def stack(res) -> list[str]:
    """The stack lines of a recommendation: the trainer it was sized for and the versions the figures hold for."""
    t = res.trainer
    unmeasured = "; not measured: sized as the " + t.wraps + " trainer" if t.wraps else ""
    # eager where the model needs it (Gemma 2's softcapping, gpt-oss's sinks): its s x s scores are sized
    attention = "eager" if res.arch.attention == "eager" else "sdpa"
    return [STACK[0].format(trainer=t.label, versions=t.versions, unmeasured=unmeasured, attention=attention), *STACK[1:]]


def _margin(required: float, total: float) -> str:
    """GiB left on the card and its share: a plan with a few percent left has no room for a longer
    example or a fragmented allocator."""
    free = total - required
    if total <= 0:
        return "-"
    return f"{free:.1f} GiB ({free / total:.0%})" if free >= 0 else f"{-free:.1f} GiB short"


def recommendation_markdown(res: "Recommendation") -> str:
    """The recommendation as markdown; every name and message is :func:`clean`."""
    plan = res.plan
    lines = [f"# ftdecide: {clean(res.arch.name)} on {res.scenario.gpus}x {clean(res.gpu.name)}", ""]
    lines.append("| method | fits | required GiB | free GiB | peak GiB | micro-batch | checkpointing | tokens/s | hours | cost USD |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for c in res.candidates:
        est = c.estimate
        hours, cost = f"{round(c.time_hours, 3):.2f}", f"{round(c.cost_usd, 2):,.2f}"
        lines.append(
            f"| {c.method} | {'yes' if c.fits else 'no'} | {round(est.required_gib, 2):.1f} / {c.gpu_memory_gib:g} | "
            f"{_margin(round(est.required_gib, 2), c.gpu_memory_gib)} | "
            f"{round(est.peak_allocated_gib, 2):.1f} | {c.micro_batch_size} | {'on' if c.gradient_checkpointing else 'off'} | "
            f"{round(c.tokens_per_second, 1):,.0f} | {hours if c.fits else f'({hours})'} | {cost if c.fits else f'({cost})'} |"
        )
    lines += ["", f"_{'; '.join(stack(res))}; (...): does not fit, the time and cost it would take._"]
    lines.append("")
    lines.append(f"**Recommendation:** {clean(_rec_line(plan))}")
    if plan.reasons:
        lines += ["", "## Reasons"] + [f"- {clean(r.message)} (`{clean(r.rule)}`)" for r in plan.reasons]
    if plan.not_followed:
        lines += ["", "## Not followed (the rule preferred a method the plan does not use)"]
        lines += [f"- {clean(r.message)} (`{clean(r.rule)}`)" for r in plan.not_followed]
    if plan.evaluation and plan.deployment:
        ev, dep = plan.evaluation, plan.deployment
        lines += [
            "",
            "## Evaluation",
            f"- hold out {ev.held_out_examples:,} examples; measure {ev.task_metric}",
            f"- {ev.regression_check}",
            "",
            "## Deployment",
            f"- {dep.advice}" + (f" (adapter: {dep.adapter_size_mb:,.1f} MB)" if dep.adapter_size_mb is not None else ""),
        ]
    if res.warnings:
        lines += ["", "## Warnings"] + [f"- {clean(w.message)} (`{clean(w.rule)}`)" for w in res.warnings]
    if res.alternatives:
        lines += ["", "## Alternatives"] + [f"- {clean(a.message)}" for a in res.alternatives]
    return "\n".join(lines) + "\n"


def recommendation_table(res: "Recommendation", console, explain: bool = False) -> None:
    sc, plan = res.scenario, res.plan
    sym = symbols(console.encoding)
    several = sc.world_size > 1
    nodes = f" ({sc.nodes} nodes)" if sc.nodes > 1 else ""
    cols = ("method", "fits", "memory (required / GPU)", "use", "free", "micro-batch", "ckpt", "tokens/s", "time", "cost")
    if several:
        cols = (*cols[:2], "strategy", *cols[2:])
    variants = sc.variants > 1  # the first year of training and serving every variant decides: its column
    if variants:
        cols = (*cols, f"{sc.variants} variants, {sc.months} months")
    t = _table(
        f"{res.arch.name} on {sc.world_size}x {res.gpu.name}{nodes} ({res.gpu.memory_gib:g} GiB) - {sc.task}, {sc.dataset_size:,} "
        f"examples x {sc.seq_len} tokens x {plan.epochs} epochs",
        cols,
        right=("free", "time", "cost", "micro-batch", "tokens/s", f"{sc.variants} variants, {sc.months} months"),
    )
    for c in res.candidates:
        req = round(c.required_gib, 2)
        style = "bold green" if c.method == plan.method else ("" if c.fits else "red")
        # what a method that does not fit would take is shown in parentheses: it is not a plan
        time, cost = f"{round(c.time_hours, 3):.2f} h", f"${round(c.cost_usd, 2):,.2f}"
        t.add_row(
            c.method,
            "yes" if c.fits else "no",
            *([c.config.strategy_spec.label] if several else []),
            f"{req:.1f} / {c.gpu_memory_gib:g} GiB",
            _bar(req, c.gpu_memory_gib, sym),
            _margin(req, c.gpu_memory_gib),
            str(c.micro_batch_size),
            "on" if c.gradient_checkpointing else "off",
            f"{round(c.tokens_per_second, 1):,.0f}",
            time if c.fits else f"({time})",
            cost if c.fits else f"({cost})",
            *([f"${round(c.deployment.total_usd):,}" if c.fits else f"(${round(c.deployment.total_usd):,})"] if variants else []),
            style=style,
        )
    console.print(t)
    for line in stack(res):
        console.print(f"[dim]{esc(line)}[/dim]")
    if not all(c.fits for c in res.candidates):
        console.print("[dim](...): does not fit; the time and cost it would take[/dim]")
    console.print(f"[bold]Recommendation:[/bold] {esc(_rec_line(plan))}")
    for r in plan.reasons:
        console.print(f"  {sym['bullet']} {esc(r.message)} [dim]({esc(r.rule)})[/dim]")
    for r in plan.not_followed:
        console.print(f"  [dim]{sym['bullet']} not followed: {esc(r.message)} ({esc(r.rule)})[/dim]")
    for w in res.warnings:
        console.print(f"  [yellow]! {esc(w.message)}[/yellow] [dim]({esc(w.rule)})[/dim]")
    for a in res.alternatives:
        console.print(f"  {sym['arrow']} {esc(a.message)}")
    if plan.evaluation and plan.deployment:
        ev, dep = plan.evaluation, plan.deployment
        console.print(
            f"  evaluate: hold out {ev.held_out_examples:,} examples, {esc(ev.task_metric)}; "
            f"forgetting: perplexity +{ev.perplexity_rise_max:.0%} "
            f"or a benchmark -{ev.benchmark_drop_max_points:g}-3 points"
        )
        console.print(f"  deploy: {esc(dep.advice)}{_deploy_size(plan)}")
    if explain:
        console.print(f"[dim]rules fired: {esc(', '.join(res.rules_fired))}[/dim]")
        a = res.assumptions
        console.print(
            f"[dim]time: {a['time']}; FLOPs {a['flops_per_token']}; matmul utilisation {a['matmul_utilisation']}; "
            f"memory: {a['memory']}[/dim]"
        )
        for c in res.candidates:
            console.print(
                f"[dim]{c.method}: " + ", ".join(f"{k} {round(v, 3):.2f}" for k, v in c.estimate.breakdown.items()) + " GiB[/dim]"
            )
        for c in res.candidates if variants else ():
            d = c.deployment
            console.print(
                f"[dim]{c.method}, {d.variants} variants: training ${d.training_usd:,.0f}; serving {d.serving_gpus} GPU(s) "
                f"({d.instances} instance(s) of {d.serving_gib:.1f} GiB) ${d.monthly_serving_usd:,.0f}/month; storage "
                f"{d.storage_gb:,.1f} GB ${d.monthly_storage_usd:,.2f}/month; a variant loads in {d.switch_seconds:.2f} s[/dim]"
            )


# --- estimate -------------------------------------------------------------------------------------
def estimate_json(arch: "Arch", cfg: "TrainConfig", est: "MemoryEstimate") -> dict[str, Any]:
    return {"model": arch.name, "config": cfg.model_dump(), **est.as_dict()}


def estimate_table(arch: "Arch", cfg: "TrainConfig", est: "MemoryEstimate", console) -> None:
    d = est.as_dict()
    t = _table(
        f"{arch.name}: {cfg.method} ({cfg.optimizer}), seq {cfg.seq_len} x micro-batch {cfg.batch_size}", ("term", "GiB"), right=("GiB",)
    )
    for k, v in d["breakdown"].items():
        t.add_row(k, f"{v:.2f}")
    t.add_row("[bold]peak allocated[/bold]", f"[bold]{d['peak_allocated_gib']:.2f}[/bold]")
    t.add_row("[bold]required on the GPU[/bold]", f"[bold]{d['required_gib']:.2f}[/bold]")
    if d["host_memory_gib_per_gpu"]:
        host = d["host_memory_gib_per_gpu"]
        t.add_row("host memory (offloaded)", f"{host:.2f} per GPU, {host * cfg.gpus:.1f} per node")
    console.print(t)
    console.print(f"parameters: {d['total_params']:,} total, {d['trainable_params']:,} trainable; peak during {d['peak_phase']}")
    for n in d["notes"]:
        console.print(f"  {symbols(console.encoding)['bullet']} {esc(n)}")


# --- fit ------------------------------------------------------------------------------------------
def fit_json(arch: "Arch", gpu: "GPU", gpus: int, seq_len: int, rows: list["FitRow"], safety_margin: float = 0.0) -> dict[str, Any]:
    return {
        "model": arch.name,
        "gpu": gpu.name,
        "gpus": gpus,
        "memory_gib": gpu.memory_gib,
        "safety_margin": safety_margin,
        "seq_len": seq_len,
        "rows": [r.__dict__ for r in rows],
    }


def fit_table(arch: "Arch", gpu: "GPU", gpus: int, seq_len: int, rows: list["FitRow"], console, safety_margin: float = 0.0) -> None:
    from ..core.policy import GLOBAL_BATCH, MIN_MICRO_BATCH_WITHOUT_CHECKPOINTING

    cols = ("method", "checkpointing", f"max micro-batch @ {seq_len}", "max seq len @ 1", f"GiB @ 1 x {seq_len}")
    kept = f", {safety_margin:.0%} kept free" if safety_margin else ""
    t = _table(f"{arch.name} on {gpus}x {gpu.name} ({gpu.memory_gib:g} GiB each{kept})", cols, right=cols[2:])
    for r in rows:
        t.add_row(
            esc(r.method),
            "on" if r.gradient_checkpointing else "off",
            str(r.max_micro_batch) if r.max_micro_batch else "does not fit",
            f"{r.max_seq_len:,}" if r.max_seq_len else "does not fit",
            f"{r.required_gib_at_1:.1f}",
        )
    console.print(t)
    # why recommend's micro-batch can be smaller than the largest that fits
    console.print(
        f"[dim]recommend takes at most micro-batch {max(1, GLOBAL_BATCH // gpus)} (its global batch of {GLOBAL_BATCH} over {gpus} GPU(s)), "
        f"and checkpointing off only where a micro-batch of {MIN_MICRO_BATCH_WITHOUT_CHECKPOINTING} or more fits without it; "
        f"this table keeps {safety_margin:.0%} of each card free (--safety-margin), recommend the rules' safety_margin[/dim]"
    )


# --- mix ------------------------------------------------------------------------------------------
def mix_json(rows: list["TaskMix"], temperature: float, cap, max_upsample: float) -> dict[str, Any]:
    return {
        "temperature": temperature,
        "cap": cap,
        "max_upsample": max_upsample,
        "tasks": [
            {
                "task": r.task,
                "examples": r.examples,
                "weight": round(r.weight, 6),
                "per_epoch": round(r.per_epoch, 1),
                "repeats": round(r.repeats, 4),
            }
            for r in rows
        ],
    }


def mix_table(rows: list["TaskMix"], temperature: float, cap, max_upsample: float, console) -> None:
    cols = ("task", "examples", "weight", "per epoch", "repeats")
    t = _table(f"task mix (T={temperature:g}{f', cap {cap:,}' if cap else ''}, at most {max_upsample:g}x per epoch)", cols, right=cols[1:])
    for r in rows:
        t.add_row(esc(r.task), f"{r.examples:,}", f"{r.weight:.3f}", f"{r.per_epoch:,.0f}", f"{r.repeats:.2f}x")
    console.print(t)


# --- catalogs -------------------------------------------------------------------------------------
def models_json(archs: list["Arch"]) -> list[dict[str, Any]]:
    return [
        {
            "name": a.name,
            "hf_id": a.aliases[0] if a.aliases else "",
            "family": a.family,
            "params": a.total_params(),
            "active_params": a.active_params(),
            "experts": f"{a.experts_per_token}/{a.num_experts}" if a.is_moe else "",
            "layers": a.num_layers,
            "hidden": a.hidden_size,
            "heads": a.num_heads,
            "kv_heads": a.num_kv_heads,
            "vocab": a.vocab_size,
            "source": a.source,
        }
        for a in archs
    ]


def models_markdown(archs: list["Arch"]) -> str:
    """The catalog as the README's Markdown table (``ftdecide models --format markdown``)."""
    rows = ["| name | Hugging Face id | family | parameters | active | experts | what sizing says of it |", "|---|---|---|---|---|---|---|"]
    for a, r in zip(archs, models_json(archs), strict=True):
        wrapper = f"{a.wrapper} > " if a.wrapper else ""
        rows.append(
            f"| {r['name']} | {r['hf_id']} | {wrapper}{r['family']} | {r['params'] / 1e9:.2f}B | {r['active_params'] / 1e9:.2f}B "
            f"| {r['experts']} | {'; '.join(a.sizing_notes())} |"
        )
    return "\n".join(rows) + "\n"


def models_table(archs: list["Arch"], console) -> None:
    t = _table("models", ("name", "hf_id", "family", "params", "active", "experts", "layers", "hidden", "heads", "kv_heads", "vocab"))
    for r in models_json(archs):
        t.add_row(
            esc(r["name"]),
            esc(r["hf_id"]),
            esc(r["family"]),
            f"{r['params'] / 1e9:.2f}B",
            f"{r['active_params'] / 1e9:.2f}B",
            r["experts"],
            *(str(r[k]) for k in ("layers", "hidden", "heads", "kv_heads", "vocab")),
        )
    console.print(t)


def gpus_json(gpus: list["GPU"]) -> list[dict[str, Any]]:
    return [g.model_dump() for g in gpus]


def gpus_table(gpus: list["GPU"], console) -> None:
    t = _table("GPUs", ("name", "memory GiB", "bf16 TFLOPS", "bf16", "USD/h"))
    for g in gpus:
        t.add_row(esc(g.name), f"{g.memory_gib:g}", f"{g.bf16_tflops:g}", "yes" if g.bf16 else "no", f"{g.price_per_hour:.2f}")
    console.print(t)


# --- rules ----------------------------------------------------------------------------------------
def rules_json(rs: "RuleSet") -> list[dict[str, Any]]:
    return [
        {
            "id": lr.rule.id,
            "priority": lr.rule.priority,
            "when": lr.rule.when,
            "prefer": lr.rule.prefer,
            "forbid": lr.rule.forbid,
            "set": lr.rule.set.model_dump(exclude_none=True),
            "warn": lr.rule.warn,
            "note": lr.rule.note,
            "about": lr.rule.about,
            "source": f"{lr.path}:{lr.line}",
        }
        for lr in rs.rules
    ]


def rules_table(rs: "RuleSet", console) -> None:
    t = _table("rules in force", ("id", "priority", "when", "effects"))
    for r in rules_json(rs):
        eff = " ".join(
            filter(
                None,
                [
                    f"prefer {r['prefer']}" if r["prefer"] else "",
                    f"forbid {','.join(r['forbid'])}" if r["forbid"] else "",
                    " ".join(f"{k}={v}" for k, v in r["set"].items()),
                    "warn" if r["warn"] else "",
                    "note" if r["note"] else "",
                    f"(about {','.join(r['about'])})" if r["about"] else "",
                ],
            )
        )
        t.add_row(esc(r["id"]), str(r["priority"]), esc(r["when"]), esc(eff))
    console.print(t)


# --- probe ----------------------------------------------------------------------------------------
def probe_table(rec: dict[str, Any], console) -> None:
    """One measured probe beside ftdecide's estimate (``rec``: a probe record, see
    :mod:`ftdecide.probe.records`)."""
    est, err = rec.get("estimate", {}), rec.get("error", {})
    sw = rec.get("software", {})
    title = (
        f"{rec['arch']}: {rec['method']} ({rec.get('optim', 'adamw')}), seq {rec['seq']} x micro-batch {rec['batch']} "
        f"on {sw.get('gpu', '?')}"
    )
    t = _table(title, ("", "measured", "ftdecide", "error"), right=("measured", "ftdecide", "error"))
    ok = rec.get("status") == "ok"

    def pct(k):
        return f"{err[k]:+.1%}" if k in err else ""

    t.add_row(
        "status",
        esc(rec.get("status", "?")),
        "fits" if est.get("fits_card") else "does not fit",
        "agree" if err.get("fits_agree") else "DISAGREE",
    )
    t.add_row(
        "peak allocated GiB",
        f"{rec.get('peak_alloc_gib', 0):.2f}" + ("" if ok else " (at OOM)"),
        f"{est.get('peak_allocated_gib', 0):.2f}",
        pct("peak_allocated"),
    )
    t.add_row("peak reserved GiB", f"{rec.get('peak_reserved_gib', 0):.2f}", "", "")
    t.add_row("CUDA context GiB", f"{rec.get('cuda_context_gib', 0):.2f}", "", "")
    t.add_row("required GiB", "", f"{est.get('required_gib', 0):.2f}", "")
    if ok:
        t.add_row(
            "tokens/s",
            f"{rec.get('tokens_per_s', 0):,.0f}",
            f"{est['tokens_per_s']:,.0f}" if "tokens_per_s" in est else "",
            pct("tokens_per_s"),
        )
    console.print(t)
