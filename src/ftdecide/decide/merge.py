"""Planning a merge of task adapters into one (``ftdecide merge``): pure, over what the adapters declare.

Checks, each an InputError naming the adapter: the same base model; a method whose update merges into the
weights (soft prompts do not); the same shapes where two adapters adapt the same module; positive, finite
weights. Then the advice:

- ``task_arithmetic`` (the default): the weighted sum of the adapters' updates, exactly. peft gets it with
  ``combination_type="cat"`` (the ranks concatenate: the merged rank is their sum), mergekit with
  ``task_arithmetic`` over the base (Ilharco et al. 2023, "Editing Models with Task Arithmetic");
- ``linear``: peft's ``linear`` averages the A and the B matrices apart (same ranks only), which is not the sum
  of the updates; mergekit's ``linear`` averages the merged models (weights normalised);
- ``ties`` (Yadav et al. 2023), ``dare_ties`` and ``dare_linear`` (Yu et al. 2024) with a ``density``: for tasks
  whose updates conflict (code and creative writing more than code and multilingual: the seeds).

Sources: peft's ``LoraModel.add_weighted_adapter`` (``src/peft/tuners/lora/model.py``: the ranks must match for
linear, ties and dare; ``cat`` sums them; DoRA's magnitude vectors are not combined, so a DoRA merge is refused
there) and mergekit's ``ModelReference`` (``base+adapter`` merges the adapter into the base through peft first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from .. import methods as registry
from ..core.errors import InputError

METHODS = ("task_arithmetic", "linear", "ties", "dare_ties", "dare_linear")
SPARSE = ("ties", "dare_ties", "dare_linear")  # they take a density
DEFAULT_DENSITY = 0.5  # mergekit's examples; TIES kept the top 20% (Yadav et al. 2023), DARE dropped up to 90%
PEFT_COMBINATION = {"task_arithmetic": "cat", "linear": "linear", "ties": "ties", "dare_ties": "dare_ties", "dare_linear": "dare_linear"}


@dataclass(frozen=True)
class AdapterInfo:
    """What one adapter declares: its path, base model, method, rank, alpha and the modules it adapts, with
    {module: (rank, in, out)} where its weights' shapes were read (the safetensors header)."""

    path: str
    base_model: str
    method: str  # a registered method's name
    rank: Optional[int] = None
    alpha: Optional[float] = None
    targets: tuple[str, ...] = ()
    shapes: dict = field(default_factory=dict, compare=False, hash=False)
    task: Optional[str] = None  # from a recommend document
    fused_experts: bool = False  # it adapts a MoE's fused experts (peft's ParamWrapper: target_parameters)


@dataclass(frozen=True)
class MergePlan:
    adapters: tuple[AdapterInfo, ...]
    weights: tuple[float, ...]
    method: str
    density: Optional[float]
    peft_combination: str
    merged_rank: Optional[int]
    warnings: tuple[str, ...]
    advice: tuple[str, ...]
    base_params: Optional[int]  # of the base model, where the catalog knows it
    peft_problem: Optional[str] = None  # why the peft script cannot do this merge (the mergekit config can)

    @property
    def base_model(self) -> str:
        return self.adapters[0].base_model

    def memory_gib(self) -> Optional[float]:
        """GiB of CPU memory the merge into full weights needs: the bf16 base, once (mergekit merges each adapter
        into it). An upper bound for the peft script, which maps the base from its safetensors and never reads
        its weights (measured: 0.54 GB peak RSS merging two adapters over a 2.3 GiB Llama-3.2-1B base)."""
        return self.base_params * 2 / 2**30 if self.base_params else None

    def mergekit_seconds(self, read_gbs: float) -> Optional[float]:
        """Seconds mergekit's merge spends on disk at ``read_gbs`` GB/s (GB = 10^9 B), a lower bound: it reads the
        bf16 base once for the base model and once for each adapter merged into it, and writes the merged model
        once (taken at the same rate). Not measured (mergekit's full stack is not installed here)."""
        if not self.base_params:
            return None
        return (len(self.adapters) + 2) * self.base_params * 2 / (read_gbs * 1e9)


def _same_base(a: str, b: str) -> bool:
    norm = lambda s: s.rstrip("/").split("/")[-1].lower()  # noqa: E731 - a local key
    return norm(a) == norm(b)


def plan_merge(
    adapters: list[AdapterInfo],
    weights: Optional[list[float]] = None,
    method: str = "task_arithmetic",
    density: Optional[float] = None,
    base_params: Optional[int] = None,
) -> MergePlan:
    """The merge of ``adapters`` with ``weights`` (equal shares when None) by ``method`` (one of :data:`METHODS`);
    InputError for anything that cannot merge."""
    if len(adapters) < 2:
        raise InputError("merge needs two adapters or more")
    if method not in METHODS:
        raise InputError(f"unknown merge method '{method}' (choose from {', '.join(METHODS)})")
    w = list(weights) if weights is not None else [1.0 / len(adapters)] * len(adapters)
    if len(w) != len(adapters):
        raise InputError(f"{len(w)} weights for {len(adapters)} adapters")
    for a, x in zip(adapters, w, strict=True):
        if not isinstance(x, (int, float)) or isinstance(x, bool) or not math.isfinite(x) or x <= 0:
            raise InputError(f"{a.path}: its weight must be a positive number, not {x!r}")
    if density is not None and not (0.0 < density <= 1.0):
        raise InputError(f"--density must be in (0, 1], not {density!r}")
    if density is not None and method not in SPARSE:
        raise InputError(f"--density is for {', '.join(SPARSE)}, not {method}")
    first = adapters[0]
    for a in adapters[1:]:
        if not _same_base(a.base_model, first.base_model):
            raise InputError(
                f"{a.path}: trained on {a.base_model}, not on {first.base_model} as {first.path} was: adapters of another base do not merge"
            )
    for a in adapters:
        if not registry.get(a.method).mergeable:
            raise InputError(
                f"{a.path}: {a.method} adds tokens, not an update of the weights: it cannot merge; serve the adapters side by side "
                "or train one multi-task model (ftdecide mix)"
            )
    _check_shapes(adapters)
    warnings: list[str] = []
    methods = {a.method for a in adapters}
    peft_problem: Optional[str] = None
    # LoRA over a bf16 base and over a 4-bit one (QLoRA) are the same adapter: what merges is peft's config class
    families = {(registry.get(m).emit_keys.peft_class, registry.get(m).decomposed) for m in methods}
    if len(families) > 1:
        raise InputError(f"adapters of different methods ({', '.join(sorted(methods))}) do not merge into one adapter")
    ranks = [a.rank for a in adapters]
    if method in ("linear", *SPARSE) and len(set(ranks)) > 1:
        peft_problem = (
            f"peft's add_weighted_adapter needs the same rank in every adapter for {method}, not {', '.join(str(r) for r in ranks)}: "
            "use --emit mergekit, which merges each adapter's full update, or --method task_arithmetic"
        )
        warnings.append(peft_problem)
    if any(a.fused_experts for a in adapters):
        # measured (peft 0.21): "add_weighted_adapter does not support targeting nn.Parameter"; merge_and_unload
        # folds such an adapter into its base exactly, which is what mergekit's base+adapter references do
        peft_problem = (
            "peft's add_weighted_adapter does not combine adapters on a MoE's fused experts (nn.Parameter targets): "
            "use --emit mergekit, which merges each adapter into the base first"
        )
        warnings.append(peft_problem)
    elif any(registry.get(m).decomposed for m in methods):
        peft_problem = "peft's add_weighted_adapter does not combine DoRA's magnitude vectors: use --emit mergekit"
        warnings.append(peft_problem)
    elif not all(registry.get(m).takes_shape for m in methods):
        peft_problem = "peft's add_weighted_adapter combines LoRA adapters: use --emit mergekit for these"
    all_targets = set().union(*(set(a.targets) for a in adapters))
    for t in sorted(all_targets):
        having = [a.path for a in adapters if t in a.targets]
        if 0 < len(having) < len(adapters):
            warnings.append(f"{t} is adapted by {', '.join(having)} only: the others add nothing to it, so its update is scaled down")
    merged_rank = sum(r for r in ranks if r) if method == "task_arithmetic" and all(ranks) else (ranks[0] if all(ranks) else None)
    advice = [
        "serving the adapters side by side over one base (vLLM, SGLang multi-LoRA) loses nothing and needs no merge"
        if all(registry.get(m).batched_by_engines for m in methods)
        else "no engine batches these adapters over one base: merge, or serve each merged into its own model",
        {
            "task_arithmetic": "task arithmetic: the weighted sum of the updates, exactly (Ilharco et al. 2023); where the tasks conflict "
            "(code and creative writing), --method ties or dare_ties keeps each task's largest changes",
            "linear": "linear: peft averages the A and B matrices apart, not the updates; task_arithmetic is the exact sum",
            "ties": "TIES keeps each task's largest changes and resolves their signs (Yadav et al. 2023)",
            "dare_ties": "DARE drops changes at random and rescales the rest (Yu et al. 2024), then resolves signs as TIES does",
            "dare_linear": "DARE drops changes at random and rescales the rest (Yu et al. 2024), then sums them",
        }[method],
    ]
    tasks = {a.task for a in adapters if a.task}
    if len(tasks) > 1:
        advice.append(
            f"tasks {', '.join(sorted(tasks))}: if each must keep its full strength, one multi-task run (ftdecide mix) is the alternative"
        )
    return MergePlan(
        adapters=tuple(adapters),
        weights=tuple(float(x) for x in w),
        method=method,
        density=(density if density is not None else DEFAULT_DENSITY) if method in SPARSE else None,
        peft_combination=PEFT_COMBINATION[method],
        merged_rank=merged_rank,
        warnings=tuple(warnings),
        advice=tuple(advice),
        base_params=base_params,
        peft_problem=peft_problem,
    )


def _check_shapes(adapters: list[AdapterInfo]) -> None:
    """Two adapters that adapt the same module must see it with the same input and output sizes: else they
    were trained on different architectures, whatever their configs call the base."""
    seen: dict[str, tuple[str, int, int]] = {}
    for a in adapters:
        for module, (_, fan_in, fan_out) in a.shapes.items():
            if module in seen and seen[module][1:] != (fan_in, fan_out):
                other = seen[module]
                raise InputError(
                    f"{a.path}: {module} is {fan_in}x{fan_out} there and {other[1]}x{other[2]} in {other[0]}: not the same architecture"
                )
            seen.setdefault(module, (a.path, fan_in, fan_out))
