"""Render results for people: rich tables and markdown. JSON is ``json.dumps`` of the core's dicts."""

from __future__ import annotations

from typing import Any


def esc(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def _bar(used: float, total: float, width: int = 20) -> str:
    frac = used / total if total > 0 else 1.0
    n = min(width, int(round(frac * width)))
    return ("█" * n + "░" * (width - n)) + ("▶" if frac > 1 else " ")


def recommendation_markdown(res: dict[str, Any]) -> str:
    sc, rec = res["scenario"], res["recommendation"]
    lines = [f"# ftdecide: {sc['model']} on {sc['gpus']}x {sc['gpu']}", ""]
    lines.append("| method | fits | required GiB | peak GiB | micro-batch | checkpointing | tokens/s | hours | cost USD |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for c in res["candidates"]:
        m = c["memory"]
        lines.append(f"| {c['method']} | {'yes' if c['fits'] else 'no'} | {m['required_gib']:.1f} / {m['gpu_memory_gib']:g} | {m['peak_allocated_gib']:.1f} | "
                     f"{c['micro_batch_size']} | {'on' if c['gradient_checkpointing'] else 'off'} | {c['tokens_per_second']:,.0f} | {c['time_hours']:.2f} | {c['cost_usd']:,.2f} |")
    lines.append("")
    lines.append(f"**Recommendation:** {_rec_line(rec)}")
    if rec.get("reasons"):
        lines += ["", "## Reasons"] + [f"- {r['message']} (`{r['rule']}`)" for r in rec["reasons"]]
    if rec.get("evaluation"):
        ev, dep = rec["evaluation"], rec["deployment"]
        lines += ["", "## Evaluation", f"- hold out {ev['held_out_examples']:,} examples; measure {ev['task_metric']}", f"- {ev['regression_check']}",
                  "", "## Deployment", f"- {dep['advice']}" + (f" (adapter: {dep['adapter_size_mb']:,.1f} MB)" if "adapter_size_mb" in dep else "")]
    if res["warnings"]:
        lines += ["", "## Warnings"] + [f"- {w['message']} (`{w['rule']}`)" for w in res["warnings"]]
    if res["alternatives"]:
        lines += ["", "## Alternatives"] + [f"- {a['message']}" for a in res["alternatives"]]
    return "\n".join(lines) + "\n"


def _rec_line(rec: dict[str, Any]) -> str:
    if not rec["feasible"]:
        return "nothing fits - see alternatives"
    s = rec["method"].upper() if rec["method"] != "full" else "full fine-tuning"
    if rec.get("lora"):
        lo = rec["lora"]
        s += f" r={lo['rank']} alpha={lo['alpha']} targets={lo['targets']} dropout={lo['dropout']}"
    s += (f", lr {rec['learning_rate']:.0e}, {rec['epochs']} epochs, micro-batch {rec['micro_batch_size']} x {rec['gradient_accumulation_steps']} accumulation"
          f", checkpointing {'on' if rec['gradient_checkpointing'] else 'off'}, {rec['precision']}: ~{rec['time_hours']:.1f} h, ${rec['cost_usd']:,.2f}")
    return s


def recommendation_table(res: dict[str, Any], console, explain: bool = False) -> None:
    from rich.table import Table

    sc, rec = res["scenario"], res["recommendation"]
    t = Table(title=esc(f"{sc['model']} on {sc['gpus']}x {sc['gpu']} ({sc['gpu_memory_gib']:g} GiB) - {sc['task']}, {sc['dataset_size']:,} examples x {sc['seq_len']} tokens x {sc['epochs']} epochs"))
    for col in ("method", "fits", "memory (required / GPU)", "", "micro-batch", "ckpt", "tokens/s", "time", "cost"):
        t.add_column(col, justify="right" if col in ("time", "cost", "micro-batch", "tokens/s") else "left")
    for c in res["candidates"]:
        m = c["memory"]
        style = "bold green" if c["method"] == rec.get("method") else ("" if c["fits"] else "red")
        t.add_row(c["method"], "yes" if c["fits"] else "no", f"{m['required_gib']:.1f} / {m['gpu_memory_gib']:g} GiB",
                  _bar(m["required_gib"], m["gpu_memory_gib"]), str(c["micro_batch_size"]), "on" if c["gradient_checkpointing"] else "off",
                  f"{c['tokens_per_second']:,.0f}",
                  f"{c['time_hours']:.2f} h", f"${c['cost_usd']:,.2f}", style=style)
    console.print(t)
    # Messages come from rule files and names from config files: never read them as rich markup.
    console.print(f"[bold]Recommendation:[/bold] {esc(_rec_line(rec))}")
    for r in rec.get("reasons", []):
        console.print(f"  • {esc(r['message'])} [dim]({esc(r['rule'])})[/dim]")
    for w in res["warnings"]:
        console.print(f"  [yellow]! {esc(w['message'])}[/yellow] [dim]({esc(w['rule'])})[/dim]")
    for a in res["alternatives"]:
        console.print(f"  → {esc(a['message'])}")
    if rec.get("evaluation"):
        ev, dep = rec["evaluation"], rec["deployment"]
        console.print(f"  evaluate: hold out {ev['held_out_examples']:,} examples, {esc(ev['task_metric'])}; forgetting: perplexity +{ev['perplexity_rise_max']:.0%} "
                      f"or a benchmark -{ev['benchmark_drop_max_points']:g}-3 points")
        size = f" (adapter {dep['adapter_size_mb']:,.1f} MB)" if "adapter_size_mb" in dep else f" ({dep['size_mb'] / 1e3:,.1f} GB)"
        console.print(f"  deploy: {esc(dep['advice'])}{size}")
    if explain:
        console.print(f"[dim]rules fired: {', '.join(res['rules_fired'])}[/dim]")
        a = res["assumptions"]
        console.print(f"[dim]time: {a['time']}; FLOPs {a['flops_per_token']}; matmul utilisation {a['matmul_utilisation']}; memory: {a['memory']}[/dim]")
        for c in res["candidates"]:
            console.print(f"[dim]{c['method']}: " + ", ".join(f"{k} {v:.2f}" for k, v in c["memory"]["breakdown"].items()) + " GiB[/dim]")


def estimate_table(d: dict[str, Any], title: str, console) -> None:
    from rich.table import Table

    t = Table(title=esc(title))
    t.add_column("term")
    t.add_column("GiB", justify="right")
    for k, v in d["breakdown"].items():
        t.add_row(k, f"{v:.2f}")
    t.add_row("[bold]peak allocated[/bold]", f"[bold]{d['peak_allocated_gib']:.2f}[/bold]")
    t.add_row("[bold]required on the GPU[/bold]", f"[bold]{d['required_gib']:.2f}[/bold]")
    console.print(t)
    console.print(f"parameters: {d['total_params']:,} total, {d['trainable_params']:,} trainable; peak during {d['peak_phase']}")
    for n in d.get("notes", []):
        console.print(f"  • {n}")


def probe_table(rec: dict[str, Any], console) -> None:
    """One measured probe beside ftdecide's estimate."""
    from rich.table import Table

    est, err = rec.get("estimate", {}), rec.get("error", {})
    sw = rec.get("software", {})
    title = f"{rec['arch']}: {rec['method']} ({rec.get('optim', 'adamw')}), seq {rec['seq']} x micro-batch {rec['batch']} on {sw.get('gpu', '?')}"
    t = Table(title=esc(title))
    for c in ("", "measured", "ftdecide", "error"):
        t.add_column(c, justify="right" if c else "left")
    ok = rec.get("status") == "ok"

    def pct(k):
        return f"{err[k]:+.1%}" if k in err else ""

    t.add_row("status", rec.get("status", "?"), "fits" if est.get("fits_card") else "does not fit", "agree" if err.get("fits_agree") else "DISAGREE")
    t.add_row("peak allocated GiB", f"{rec.get('peak_alloc_gib', 0):.2f}" + ("" if ok else " (at OOM)"), f"{est.get('peak_allocated_gib', 0):.2f}", pct("peak_allocated"))
    t.add_row("peak reserved GiB", f"{rec.get('peak_reserved_gib', 0):.2f}", "", "")
    t.add_row("CUDA context GiB", f"{rec.get('cuda_context_gib', 0):.2f}", "", "")
    t.add_row("required GiB", "", f"{est.get('required_gib', 0):.2f}", "")
    if ok:
        t.add_row("tokens/s", f"{rec.get('tokens_per_s', 0):,.0f}", f"{est['tokens_per_s']:,.0f}" if "tokens_per_s" in est else "", pct("tokens_per_s"))
    console.print(t)
