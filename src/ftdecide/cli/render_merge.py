"""``ftdecide merge``'s outputs: the table, the JSON document and the markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .render import _table, esc

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..decide.merge import MergePlan


def merge_json(p: "MergePlan") -> dict[str, Any]:
    from ..files.catalog import serving_prices

    mem = p.memory_gib()
    disk = serving_prices()["disk"]
    secs = p.mergekit_seconds(disk["read_gbs"])
    return {
        "base_model": p.base_model,
        "method": p.method,
        "density": p.density,
        "peft_combination": p.peft_combination,
        "merged_rank": p.merged_rank,
        "adapters": [
            {"path": a.path, "method": a.method, "rank": a.rank, "alpha": a.alpha, "targets": list(a.targets), "weight": w, "task": a.task}
            for a, w in zip(p.adapters, p.weights, strict=True)
        ],
        "resources": {
            "where": "CPU RAM (no GPU needed)",
            "memory_gib": round(mem, 2) if mem is not None else None,
            "note": "the bf16 base, loaded whole once; mergekit writes each adapter merged into the base to its cache first; "
            "the peft script maps the base and reads only the adapters (0.54 GB peak RSS measured over a 2.3 GiB base)",
            "mergekit_disk_seconds": round(secs, 1) if secs is not None else None,
            "disk_read_gbs": disk["read_gbs"],
            "disk_source": disk["source"],
        },
        "warnings": list(p.warnings),
        "advice": list(p.advice),
    }


def merge_table(p: "MergePlan", console) -> None:
    d = merge_json(p)
    title = f"merge over {esc(p.base_model)}: {p.method}" + (f", density {p.density:g}" if p.density is not None else "")
    t = _table(title, ("adapter", "method", "rank", "targets", "weight"))
    for a in d["adapters"]:
        t.add_row(esc(a["path"]), a["method"], str(a["rank"] or "-"), esc(",".join(a["targets"]) or "-"), f"{a['weight']:g}")
    console.print(t)
    r = d["resources"]
    rank = f"; the merged adapter's rank: {p.merged_rank}" if p.merged_rank else ""
    mem = f"{r['memory_gib']:.1f} GiB" if r["memory_gib"] is not None else "the bf16 base (its size unknown to the catalog)"
    console.print(f"peft: add_weighted_adapter(combination_type={p.peft_combination!r}){rank}; runs in {r['where']}: {mem}")
    if r["mergekit_disk_seconds"] is not None:
        console.print(
            f"mergekit: at least {r['mergekit_disk_seconds']:,.0f} s of disk (the base read {len(p.adapters) + 1} times and the merged "
            f"model written once, at {r['disk_read_gbs']:g} GB/s, assumed)"
        )
    for w in p.warnings:
        console.print(f"  ! {esc(w)}")
    for a in p.advice:
        console.print(f"  > {esc(a)}")


def merge_markdown(p: "MergePlan") -> str:
    d = merge_json(p)
    rows = "\n".join(
        f"| {a['path']} | {a['method']} | {a['rank'] or '-'} | {','.join(a['targets']) or '-'} | {a['weight']:g} |" for a in d["adapters"]
    )
    notes = "".join(f"- {x}\n" for x in (*p.warnings, *p.advice))
    head = "| adapter | method | rank | targets | weight |\n|---|---|---|---|---|"
    return f"## merge over {p.base_model}: {p.method}\n\n{head}\n{rows}\n\n{notes}"
