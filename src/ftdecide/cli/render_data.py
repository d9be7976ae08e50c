"""The ``data`` part of ``recommend``'s table: the lengths of the user's data (``--dataset``) as a histogram,
their percentiles, what ``--seq-len`` cuts, the epoch's tokens padded per micro-batch and packed, and which the plan takes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .render import _table, esc

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..decide.results import Recommendation

BAR = 40  # characters of the longest bar


def data_table(res: "Recommendation", console) -> None:
    d = res.data_json()
    stats = res.scenario.data
    sampled = f"{d['sampled']:,} of them read (every {d['every']})" if d["every"] > 1 else "all read"
    t = _table(f"{esc(d['path'])}: {d['examples']:,} examples, {sampled}; tokens {esc(d['tokens_counted_by'])}", ("tokens", "examples", ""))
    bins = stats.histogram()
    top = max(c for _, _, c in bins) or 1
    scale = stats.examples / len(stats.lengths)
    for lo, hi, c in bins:
        t.add_row(f"{lo:,}-{hi:,}", f"{round(c * scale):,}", "#" * round(BAR * c / top))
    console.print(t)
    q = d["lengths"]
    console.print(
        f"p50 {q['p50']:,}, p95 {q['p95']:,}, p99 {q['p99']:,}, max {q['max']:,} tokens; --seq-len {res.scenario.seq_len:,} cuts "
        f"{d['truncated_share']:.1%} of the examples; {d['suggested_seq_len']:,} covers 99%"
    )
    if "epoch_tokens" in d:
        e, h = d["epoch_tokens"], d["time_hours"]
        times = ", ".join(f"{k} {v:.2f} h" for k, v in h.items())
        console.print(
            f"an epoch: {e['padded']:,} tokens padded per micro-batch, {e['packed']:,} packed, against {e['full_length']:,} "
            f"were every example {res.scenario.seq_len:,} tokens long; the plan's examples are {d['collation']} ({times})"
        )
    if d.get("time_measured"):
        console.print(
            'held out (whole epochs of the emitted TRL script on an H100, none in the fit; docs/accuracy.md, "Data"), '
            "the plan's epoch time was a median of "
            + " and ".join(
                f"{m['median_abs_error']:.1%} off {k} ({m['runs']} runs, planned {m['min']:+.1%} to {m['max']:+.1%} of the measured"
                + (": every one ran longer" if m["max"] < 0 else "")
                + ")"
                for k, m in d["time_measured"].items()
            )
        )
