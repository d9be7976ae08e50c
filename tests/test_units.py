"""Units own their options and constants (issue 24): the method options of ``methods/options.py`` and the
fitted constants each method, strategy, lever and trainer declares beside it, assembled by Calibration."""

from __future__ import annotations

import pathlib
import re

import pytest
from hypothesis import given, settings, strategies as st

from ftdecide import levers, methods, strategies, trainers
from ftdecide.core.calibration import DEFAULT, Calibration
from ftdecide.files.catalog import resolve_model
from ftdecide.core.config import TrainConfig
from ftdecide.core.estimator import estimate_memory
from ftdecide.methods import options
from ftdecide.probe.records import config_from_record, config_from_trainer_record, record_from_config
from ftdecide.decide.scenario import validate_scenario

from conftest import ROOT

OPTION_NAMES = [o.name for o in options.all_options()]


def test_no_module_outside_the_methods_names_an_option_but_one():
    """The issue's bound: method options appear in at most one module outside src/ftdecide/methods/."""
    src = ROOT / "src" / "ftdecide"
    pattern = re.compile(r"\b(" + "|".join(OPTION_NAMES) + r")\b")
    naming = sorted(
        str(p.relative_to(src)) for p in src.rglob("*.py") if "methods" not in p.parts and pattern.search(p.read_text(encoding="utf-8"))
    )
    assert len(naming) <= 1, naming


@pytest.mark.parametrize(
    "name, takers, flag_help",
    [
        ("lora_rank", ["lora", "qlora", "dora"], "LoRA, QLoRA, DoRA: rank (default 16)"),
        ("lora_dropout", ["lora", "qlora", "dora"], "LoRA, QLoRA, DoRA: dropout (default 0.05)"),
        ("ia3_targets", ["ia3"], "IA3: modules to scale, like k_proj,v_proj,down_proj (default: peft's for the family)"),
        ("virtual_tokens", ["prefix", "prompt"], "prefix and prompt tuning: virtual tokens (default 20)"),
        ("adapter_reduction", ["adapter"], "Houlsby adapters: bottleneck = hidden / this (default 16)"),
    ],
)
def test_each_option_is_taken_by_its_methods_and_says_so(name, takers, flag_help):
    opt = next(o for o in options.all_options() if o.name == name)
    assert [m.name for m in options.takers(opt)] == takers
    assert options.help_text(opt) == flag_help
    assert name in TrainConfig.model_fields


def test_another_methods_option_is_refused_by_name():
    assert options.given_problem(methods.get("prompt"), {"lora_rank": 8}) == (
        "prompt tuning takes no --lora-rank (its options: --virtual-tokens)"
    )
    assert options.given_problem(methods.get("full"), {"virtual_tokens": 8}) == (
        "full fine-tuning takes no --virtual-tokens (it has no options of its own)"
    )
    assert options.given_problem(methods.get("lora"), {"lora_rank": 8, "virtual_tokens": None}) is None


def test_records_read_older_keys_as_they_were_measured():
    base = {"method": "lora", "seq": 512, "batch": 1, "gc": True}
    # probe records without dropout ran without it; trainer records without it ran with the default
    assert config_from_record(base).lora_dropout == 0.0
    assert config_from_trainer_record({**base, "trainer": "trl"}).lora_dropout == 0.05
    assert config_from_trainer_record({**base, "trainer": "trl", "dropout": 0.0}).lora_dropout == 0.0
    rec = config_from_record({**base, "r": 64, "targets": "qv", "dropout": 0.1})
    assert (rec.lora_rank, rec.lora_targets, rec.lora_dropout) == (64, "qv", 0.1)
    assert config_from_record({**base, "method": "prompt", "vt": 50}).virtual_tokens == 50
    assert config_from_record({**base, "method": "adapter", "reduction": 4}).adapter_reduction == 4


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["lora", "qlora", "dora", "ia3", "prompt", "prefix", "adapter", "full"]),
    rank=st.integers(1, 256),
    dropout=st.sampled_from([0.0, 0.05, 0.1]),
    vt=st.integers(1, 512),
    reduction=st.integers(1, 64),
    ia3=st.sampled_from(["default", "attn", "k_proj,v_proj"]),
)
def test_a_record_of_a_configuration_reads_back_as_it(method, rank, dropout, vt, reduction, ia3):
    arch = resolve_model("llama-3.2-1b")
    cfg = TrainConfig(method=method, lora_rank=rank, lora_dropout=dropout, virtual_tokens=vt, adapter_reduction=reduction, ia3_targets=ia3)
    back = config_from_record(record_from_config(arch, cfg))
    for o in methods.get(method).options:  # the method's own options survive; the others are not its
        assert getattr(back, o.name) == getattr(cfg, o.name), o.name


def test_a_scenario_shortens_the_default_and_refuses_a_longer_value():
    sc = validate_scenario({"model": "llama-3.2-1b", "seq_len": 16})
    from ftdecide.core.policy import DEFAULT_LORA

    values = options.plan_values(sc, DEFAULT_LORA)
    assert values["virtual_tokens"] == 16 and values["lora_rank"] == DEFAULT_LORA.rank
    with pytest.raises(Exception, match="40 virtual tokens is more than the sequence"):
        validate_scenario({"model": "llama-3.2-1b", "seq_len": 16, "virtual_tokens": 40})


def _declared() -> dict[str, float]:
    units = (*methods.all_methods(), *strategies.all_strategies(), *levers.all_levers(), *trainers.all_trainers())
    out = {name: value for u in units for name, value in u.constants}
    out.update(trainers.CONSTANTS)
    return out


def test_calibration_assembles_every_units_constants():
    declared = _declared()
    assert dict(DEFAULT.units) == declared
    assert {"liger_norm_h", "fsdp_fwd_layers", "chunk_bwd_h", "dropout_bytes"} <= set(declared)
    for name, value in declared.items():
        assert getattr(DEFAULT, name) == value
    # no unit constant is also a Calibration field: one home each
    assert not set(declared) & set(Calibration.__dataclass_fields__)


def test_a_refit_replaces_a_units_constant_in_a_copy():
    arch = resolve_model("llama-3.2-1b")
    cfg = TrainConfig(method="lora", liger=True, trainer="hf", batch_size=4)
    cal = DEFAULT.with_constants(liger_saved_h=DEFAULT.liger_saved_h + 100.0, cuda_context_gib=1.0)
    assert DEFAULT.liger_saved_h == 24.55 and cal.liger_saved_h == 124.55 and cal.cuda_context_gib == 1.0
    base, refit = estimate_memory(arch, cfg), estimate_memory(arch, cfg, cal)
    # 100 B per hidden value per token more kept: 2048 x 4 tokens x 2048 hidden values x 100 B
    assert refit.peak_allocated_gib - base.peak_allocated_gib == pytest.approx(2048 * 4 * 2048 * 100 / 2**30, abs=2e-3)
    with pytest.raises(KeyError):
        DEFAULT.with_constants(no_such_constant=1.0)
    with pytest.raises(AttributeError):
        DEFAULT.no_such_constant  # noqa: B018


def test_the_calibration_module_names_no_units_constant():
    text = pathlib.Path(ROOT / "src" / "ftdecide" / "core" / "calibration.py").read_text(encoding="utf-8")
    assert not [name for name in _declared() if re.search(rf"\b{name}\b", text)]
