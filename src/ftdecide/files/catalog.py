"""The model and GPU catalogs (``configs/*.yaml``) and name resolution.

Names match loosely: case, spaces, ``_`` and ``-`` are alike, and a Hugging Face id (``org/name``)
matches as well as its short alias. An unknown name is an InputError that suggests the closest names.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..core.arch import Arch
from ..core.errors import InputError, preview
from .hfconfig import arch_from_hf_config, arch_from_size
from .yamlio import load_json, load_package_yaml


def config_dir() -> Path:
    """The directory of the shipped YAML: inside the wheel (``ftdecide/configs``) or, in a source
    checkout, the repository's ``configs/``."""
    package = Path(__file__).resolve().parent.parent
    for cand in (package / "configs", package.parent.parent / "configs"):
        if (cand / "models.yaml").is_file():
            return cand
    raise InputError("ftdecide's configs/ directory is missing from the installation")


class GPU(BaseModel):
    """One GPU model: memory in GiB (2**30 bytes) as the driver reports it, dense bf16 TFLOPS, memory
    bandwidth in GB/s."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    memory_gib: float = Field(gt=0)
    bf16_tflops: float = Field(gt=0)
    memory_bandwidth_gbs: float = Field(gt=0, description="datasheet memory bandwidth, GB/s (10^9 bytes)")
    bf16: bool = True
    price_per_hour: float = Field(ge=0)
    source: str = ""
    aliases: tuple[str, ...] = ()
    intra_node_gbs: float = Field(32.0, gt=0, description="GB/s one GPU sends to its peers in the node, one way")
    inter_node_gbs: float = Field(1.6, gt=0, description="GB/s one GPU sends to other nodes, one way")
    link_source: str = ""


def norm(name: str) -> str:
    """Loose form of a name: lower case, with spaces, ``_`` and ``-`` removed."""
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def _keys(name: str, aliases) -> list[str]:
    keys = [name, *aliases]
    out = []
    for k in keys:
        out.append(norm(k))
        if "/" in k:
            out.append(norm(k.split("/", 1)[1]))
    return out


@functools.lru_cache(maxsize=1)
def _models() -> tuple[dict[str, Arch], list[Arch]]:
    data = load_package_yaml(str(config_dir() / "models.yaml"))
    index: dict[str, Arch] = {}
    ordered = []
    for entry in data["models"]:
        e = dict(entry)
        name, hf_id, aliases = e.pop("name"), e.pop("hf_id", ""), tuple(e.pop("aliases", ()))
        published, source = e.pop("params_published", None), e.pop("source", "")
        arch = arch_from_hf_config(e, name).model_copy(
            update={"name": name, "aliases": (hf_id, *aliases), "params_published": published, "source": source, "model_id": hf_id}
        )
        ordered.append(arch)
        for k in _keys(name, (hf_id, *aliases)):
            index.setdefault(k, arch)
    return index, ordered


@functools.lru_cache(maxsize=1)
def _gpus() -> tuple[dict[str, GPU], list[GPU]]:
    data = load_package_yaml(str(config_dir() / "gpus.yaml"))
    index: dict[str, GPU] = {}
    ordered = []
    for entry in data["gpus"]:
        g = GPU(**entry)
        ordered.append(g)
        for k in _keys(g.name, g.aliases):
            index.setdefault(k, g)
    return index, ordered


# Words that name a variant of a checkpoint, not another architecture: instruction- and chat-tuned
# releases (Llama-3.1-8B-Instruct, gemma-2-9b-it, Llama-2-7b-chat-hf) share the base model's config.
_VARIANT_WORDS = frozenset({"instruct", "it", "chat", "hf", "base", "meta"})


def variant_key(name: str) -> str:
    """``name`` without its organisation and variant words, loosely: ``Qwen/Qwen2.5-7B-Instruct`` and
    ``qwen2.5-7b`` give the same key, ``mistralai/Mistral-7B-Instruct-v0.3`` and ``mistral-7b-v0.3``
    too; a version suffix (``v0.3``) is kept, since versions may differ in shape."""
    tail = name.split("/", 1)[-1].lower()
    return "".join(p for p in re.split(r"[-_\s]+", tail) if p and p not in _VARIANT_WORDS)


@functools.lru_cache(maxsize=1)
def _variants() -> dict[str, Arch]:
    index: dict[str, Arch] = {}
    for arch in _models()[1]:
        for k in (arch.name, *arch.aliases):
            index.setdefault(variant_key(k), arch)
    return index


def models_of_family(family: "str | None") -> list[Arch]:
    """The catalog's models of one ``model_type`` (all of them for None); an unknown family is an
    InputError that lists the catalog's families."""
    archs = models()
    if family is None:
        return archs
    known = sorted({a.family for a in archs} | {a.wrapper for a in archs if a.wrapper})
    want = family.strip().lower()
    if want not in known:
        raise InputError(f"no catalog model of family {preview(family)} (families: {', '.join(known)})")
    return [a for a in archs if want in (a.family, a.wrapper)]


def models() -> list[Arch]:
    """Every catalog model, in catalog order."""
    return _models()[1]


_SERVING: dict = {}


def serving_prices() -> dict:
    """``configs/serving.yaml``: storage per GB-month, disk read speed, the serving engine's share of a GPU and
    the hours of a month, each with its source."""
    if not _SERVING:
        _SERVING.update(load_package_yaml(str(config_dir() / "serving.yaml")))
    return _SERVING


def gpus() -> list[GPU]:
    """Every catalog GPU, in catalog order."""
    return _gpus()[1]


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


def _is_file(path: str) -> bool:
    try:
        return os.path.isfile(path)
    except (OSError, ValueError):
        return False


def _from_config_file(path: str) -> Arch:
    """The architecture of a ``config.json`` file; a refused field is placed at its line in the file."""
    import re

    from .yamlio import read_text

    data = load_json(path, "config.json")
    try:
        return arch_from_hf_config(data, path)
    except InputError as e:
        key = re.search(r"'([A-Za-z_][A-Za-z0-9_]*)'", e.message)
        if e.line is None and key:
            text = read_text(path, "config.json")
            i = text.find(f'"{key.group(1)}"')
            if i >= 0:
                line, col = text.count("\n", 0, i) + 1, i - text.rfind("\n", 0, i)
                message = e.message[len(path) + 2 :] if e.message.startswith(f"{path}: ") else e.message
                raise InputError(message, path, line, col) from None
        raise


def resolve_model(spec: str) -> Arch:
    """A path to a ``config.json`` (or a folder holding one); a Hugging Face id ``org/name`` found in the
    local cache (see :mod:`ftdecide.files.hfcache`); a catalog name or alias; or a bare size such as ``13b`` (a
    Llama-like shape; ``Arch.assumed`` says so). ``Arch.source`` says which was used."""
    spec = spec.strip()
    if not spec:
        raise InputError("the model name is empty")
    # a path, or a bare folder name holding a config.json (as from_pretrained takes a local folder)
    looks_like_path = spec.endswith(".json") or (os.sep in spec and os.path.exists(spec)) or _is_file(os.path.join(spec, "config.json"))
    if looks_like_path:
        path = os.path.join(spec, "config.json") if os.path.isdir(spec) else spec
        arch = _from_config_file(path)
        return arch.model_copy(update={"source": f"config.json: {path}", "model_id": os.path.dirname(os.path.abspath(path))})
    if "/" in spec:
        from .hfcache import find_config

        cached = find_config(spec)
        if cached is not None:
            arch = arch_from_hf_config(load_json(str(cached), "config.json"), str(cached))
            return arch.model_copy(update={"name": spec, "source": f"Hugging Face cache: {cached}", "model_id": spec})
    index, ordered = _models()
    hit = index.get(norm(spec))
    variant = hit is None and "/" in spec and _variants().get(variant_key(spec))
    if variant:
        hit = variant.model_copy(update={"source": f"{variant.source}; '{spec}' is a variant of {variant.name}, with its architecture"})
    if hit is not None:
        # an id the user gave (an Instruct release, an alias) is what they will load: keep it exactly
        return hit.model_copy(update={"model_id": spec}) if "/" in spec else hit
    sized = arch_from_size(spec)
    if sized is not None:
        return sized
    names = [a.name for a in ordered] + [a.aliases[0] for a in ordered if a.aliases]
    hint = _suggest(spec, names) if len(spec) <= 100 else ""  # difflib is quadratic in the length
    raise InputError(f"unknown model {preview(spec)}{hint} (see 'ftdecide models', or pass a config.json path or a size like 13b)")


def resolve_gpu(spec: str) -> GPU:
    """A catalog GPU by name or alias, or by the name the driver reports (``NVIDIA GeForce RTX 4090``,
    ``NVIDIA A100-SXM4-40GB``); a name that several cards start with (``A100``) is an error listing them."""
    index, ordered = _gpus()
    hit = index.get(norm(spec)) or (gpu_for_device(spec) if len(norm(spec)) > 4 else None)
    if hit is None:
        key = norm(spec)
        several = [g.name for g in ordered if key and any(norm(k).startswith(key) for k in (g.name, *g.aliases))]
        if len(several) > 1:
            raise InputError(f"GPU {preview(spec)} is ambiguous: {', '.join(several)}")
        hint = _suggest(spec, [g.name for g in ordered]) if len(spec) <= 100 else ""
        raise InputError(f"unknown GPU {preview(spec)}{hint} (see 'ftdecide gpus', or use --gpu-memory GIB)")
    return hit


def custom_gpu(memory_gib: float) -> GPU:
    """A GPU known only by its memory (``--gpu-memory``); throughput, bandwidth and price of an A100 are assumed."""
    from ..core.policy import DEFAULT_GPU

    ref = resolve_gpu(DEFAULT_GPU)
    return GPU(
        name=f"custom-{memory_gib:g}gib",
        memory_gib=memory_gib,
        bf16_tflops=ref.bf16_tflops,
        memory_bandwidth_gbs=ref.memory_bandwidth_gbs,
        price_per_hour=ref.price_per_hour,
        intra_node_gbs=ref.intra_node_gbs,
        inter_node_gbs=ref.inter_node_gbs,
        link_source=f"the {ref.name}'s links assumed",
        source=f"GPU memory {memory_gib:g} GiB given; throughput and price of the {ref.name} assumed",
    )


def gpu_for_device(device_name: str) -> GPU | None:
    """The catalog GPU whose name or alias the driver's device name contains (longest match), or None."""

    def bare(x: str) -> str:  # vendor words say nothing about the model
        return re.sub(r"nvidia|geforce|tesla|amd|instinct", "", norm(x))

    n = bare(device_name)
    best: tuple[int, GPU] | None = None
    for g in gpus():
        for key in (g.name, *g.aliases):
            k = bare(key)
            if k and k in n and (best is None or len(k) > best[0]):
                best = (len(k), g)
    return best[1] if best else None
