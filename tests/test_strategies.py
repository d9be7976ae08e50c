"""Distribution strategies (issue 10): each a unit with its per-GPU shares, buffers, traffic and launch
configs; the estimator, step-time model, recommender and emitters ask it. DDP and ZeRO are modelled (their
figures say so); FSDP2 is fitted to fake-process-group runs (tests/test_estimator.py checks those bounds)."""

import ast
import json
import pathlib
import statistics
import sys

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from conftest import invoke
from ftdecide.files import catalog
from ftdecide import strategies
from ftdecide.emit import emit
from ftdecide.core.estimator import GIB, TrainConfig, estimate_memory, memory_model
from ftdecide.decide.recommend import Scenario, recommend
from ftdecide.probe.records import arch_from_record, config_from_record
from ftdecide.strategies.zero import FROZEN_NOGC_NOTE as zero_note, QUANT_GATHERED_NOTE
from ftdecide.core.throughput import step_seconds

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "benchmarks"))
import scaleout  # noqa: E402  (the benchmark's loader and its one-record-per-configuration rule)

A8B = catalog.resolve_model("llama-3.1-8b")


def test_registry():
    assert strategies.names() == ("ddp", "fsdp", "zero1", "zero2", "zero3", "fsdp1")
    assert strategies.resolve(TrainConfig()).name == "single"
    assert strategies.resolve(TrainConfig(gpus=4)).name == "fsdp"  # auto without a GPU to fit: FSDP2
    assert strategies.resolve(TrainConfig(gpus=2, nodes=2, strategy="zero2")).name == "zero2"
    assert TrainConfig(gpus=8, nodes=4).world_size == 32


def test_ddp_is_a_replica_plus_a_bucket_copy_of_the_gradients():
    """The buckets hold a copy of the gradients for the whole step; where bf16 weights train, one more
    gradient-sized buffer through forward and backward (measured at an early step of a real 2-GPU run)."""
    one = estimate_memory(A8B, TrainConfig(method="full", seq_len=1024))
    ddp = estimate_memory(A8B, TrainConfig(method="full", seq_len=1024, gpus=4, strategy="ddp"))
    grads = A8B.total_params() * 2  # bf16 gradients, copied once into the reducer's buckets
    assert ddp.breakdown["weights"] - one.breakdown["weights"] == pytest.approx(grads / GIB)
    assert grads / GIB < ddp.peak_allocated_gib - one.peak_allocated_gib <= 2 * grads / GIB
    assert memory_model(A8B, TrainConfig(method="full", seq_len=1024, gpus=4, strategy="ddp")).gathered == pytest.approx(grads)
    mixed = TrainConfig(method="full", precision="mixed", seq_len=1024, gpus=4, strategy="ddp")
    mixed_one = TrainConfig(method="full", precision="mixed", seq_len=1024)
    assert estimate_memory(A8B, mixed).breakdown["weights"] - estimate_memory(A8B, mixed_one).breakdown["weights"] == pytest.approx(
        4 * A8B.total_params() / GIB
    )
    assert memory_model(A8B, mixed).gathered == 0.0  # fp32 weights: no early buffer measured
    eight = TrainConfig(method="full", seq_len=1024, gpus=4, strategy="ddp", optimizer="adamw8bit")
    assert memory_model(A8B, eight).gathered == 0.0  # none with bitsandbytes' 8-bit AdamW (3 real runs)


@pytest.mark.parametrize("stage", [1, 2, 3])
@pytest.mark.parametrize("optimizer, state", [("adamw", 12.0), ("adamw8bit", 4 + 2 + 8 / 256), ("sgd", 4.0)])
def test_zero_follows_deepspeeds_accounting(stage, optimizer, state):
    """The optimizer's partition per parameter: the fp32 master weight and the states of it (Adam 8 B, 8-bit
    AdamW 2 B and two fp32 scales per 256 values of the flat partition, SGD none); bf16 weights whole
    (stages 1, 2) or partitioned with a bf16 gradient partition (stage 3); the reduce and all-gather buckets
    of hidden^2 bf16 values; for stage 3, through forward and backward, up to 1e9 live parameters gathered
    and the prefetch bucket of 0.9 hidden^2; at the step, 8 P / N (stages 1, 2: the bf16 gradient partition
    twice and its fp32 copy) or 6 x min(P / N, 1e9) (stage 3); stage 1 reduces after backward, so its
    bf16 gradients are whole (2 P) at the end of backward where that is more (8 GPUs here)."""
    n, p, h = 8, A8B.total_params(), A8B.hidden_size
    cfg = TrainConfig(method="full", seq_len=1024, gpus=n, strategy=f"zero{stage}", optimizer=optimizer)
    est = estimate_memory(A8B, cfg)
    weights = (4 * p / n if stage == 3 else 2 * p) + 2 * h * h * 2
    assert est.breakdown["weights"] == pytest.approx(weights / GIB, rel=1e-6)
    assert est.breakdown["optimizer"] == pytest.approx(state * p / n / GIB, rel=1e-6)
    mm = memory_model(A8B, cfg)
    assert mm.grads == pytest.approx({1: max(8 * p / n, 2 * p), 2: 8 * p / n, 3: 6 * min(p / n, 1e9)}[stage])
    assert mm.gathered == pytest.approx((2 * min(p, 1e9) + int(0.9 * h * h) * 2) if stage == 3 else 0.0)
    basis = " ".join(est.notes)
    assert "measured on" in basis and strategies.get(f"zero{stage}").measured


def test_zero_casts_a_4bit_bases_fp32_parts_to_bf16():
    """DeepSpeed's bf16 engine casts what peft's k-bit preparation left in fp32 (embeddings, norms, head)
    back to bf16: 2 B less per such parameter than on one GPU, whatever the stage-1/2 partitioning."""
    one = memory_model(A8B, TrainConfig(method="qlora", seq_len=1024))
    z2 = memory_model(A8B, TrainConfig(method="qlora", seq_len=1024, gpus=2, strategy="zero2"))
    lora = estimate_memory(A8B, TrainConfig(method="lora", seq_len=1024)).trainable_params
    cast = (A8B.total_params() - A8B.quantizable_params()) * 2
    buckets = 2 * A8B.hidden_size**2 * 2
    # adapters: fp32 (4 B) on one GPU; under ZeRO bf16 weights (2 B), the rest of them in the partitions
    assert one.weights - z2.weights == pytest.approx(cast + lora * 2 - buckets)


def test_zero3_offload_leaves_the_gradient_partition_and_the_buckets():
    est = estimate_memory(A8B, TrainConfig(method="full", gpus=8, strategy="zero3", offload_params=True, offload_optimizer=True))
    h = A8B.hidden_size
    assert est.breakdown["optimizer"] == 0.0
    assert est.breakdown["weights"] == pytest.approx((2 * A8B.total_params() / 8 + 2 * h * h * 2) / GIB)


def test_traffic_is_nccl_ring_bytes():
    n, p = 8, A8B.total_params()
    ddp = strategies.get("ddp").traffic(A8B, TrainConfig(method="full", gpus=n, strategy="ddp"))
    assert ddp.per_step == {"all-reduce": pytest.approx(2 * 7 / 8 * 2 * p)}
    fsdp = strategies.get("fsdp").traffic(A8B, TrainConfig(method="full", gpus=n, strategy="fsdp"))
    assert fsdp.per_micro_batch["all-gather"] == pytest.approx(2 * 7 / 8 * 2 * p)
    # once a step: the trainers accumulate earlier micro-batches unsharded, without syncing
    assert fsdp.per_step["reduce-scatter"] == pytest.approx(7 / 8 * 2 * p)


def test_communication_time_over_the_link():
    """DDP of Llama-3.1-8B full fine-tuning over 8 H100s: 2 x 7/8 x 16.06 GB all-reduced at 33% of 450 GB/s,
    once per 4 micro-batches; 40% of it hidden behind the kernels. FSDP2 adds 2.5 ms per layer."""
    cfg = TrainConfig(method="full", seq_len=2048, gpus=8, strategy="ddp")
    alone = step_seconds(A8B, cfg, 989, 3350)
    s = step_seconds(A8B, cfg, 989, 3350, link_gbs=450, accumulation=4)
    comm = 2 * 7 / 8 * 2 * A8B.total_params() / (450e9 * 0.33) / 4
    assert s["comm"] == pytest.approx(comm - min(0.4 * comm, alone["matmul"] + alone["memory"]))
    fsdp = TrainConfig(method="full", seq_len=2048, gpus=8, strategy="fsdp")
    f = step_seconds(A8B, fsdp, 989, 3350, link_gbs=450)
    gathered = 2 * 7 / 8 * 2 * A8B.total_params() + 7 / 8 * 2 * A8B.total_params()
    c = gathered / (450e9 * 0.33)
    assert f["comm"] == pytest.approx(c - min(0.8 * c, alone["matmul"] + alone["memory"]) + 0.0025 * A8B.num_layers)
    assert s["total"] > alone["total"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--gpus", "2", "--strategy", "ddp", "--offload-params"], "--offload-params needs sharded parameters: DDP keeps a full copy"),
        (["--gpus", "2", "--strategy", "zero2", "--offload-params"], "--offload-params needs sharded parameters: ZeRO-2 keeps"),
        (["--nodes", "0"], "nodes: Input should be greater than 0"),
        (["--gpus", "0"], "gpus: Input should be greater than 0"),
        (
            ["--gpus", "2", "--strategy", "zero4"],
            "strategy: unknown strategy 'zero4' (choose from auto, ddp, fsdp, zero1, zero2, zero3, fsdp1)",
        ),
    ],
)
def test_bad_strategy_input(argv, message):
    r = invoke(["estimate", "--model", "llama-3.1-8b", *argv])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith("ftdecide: error: " + message) and r.stderr.count("\n") == 1


def test_zero3_on_one_gpu_says_what_it_means():
    est = estimate_memory(A8B, TrainConfig(method="full", strategy="zero3", offload_optimizer=True))
    assert "ZeRO-3 on one GPU partitions nothing: it only moves states to CPU memory" in " ".join(est.notes)


def test_auto_picks_the_cheapest_strategy_that_fits():
    """LoRA of an 8B model on 4 RTX 4090s (PCIe, no peer-to-peer): a replica fits, and DDP sends only the
    adapters' gradients where FSDP would gather the 16 GB base twice per micro-batch. On 2 H100s (NVLink) the
    gathers are cheap, and FSDP2's half of the base leaves room to train without checkpointing (DDP needs it
    at micro-batch 8): FSDP2 is faster. Full fine-tuning of a 70B
    model on 2 nodes of 8: only sharding fits, and FSDP2 is kept over a ZeRO stage the model finds barely
    cheaper."""
    pcie = recommend(Scenario(model="llama-3.1-8b", gpu="rtx-4090", gpus=4))
    assert pcie.plan.method == "lora" and pcie.candidate("lora").config.strategy == "ddp"
    nvlink = recommend(Scenario(model="llama-3.1-8b", gpu="h100", gpus=2))
    lora = nvlink.candidate("lora")
    assert lora.config.strategy == "fsdp" and not lora.config.gradient_checkpointing
    ddp = recommend(Scenario(model="llama-3.1-8b", gpu="h100", gpus=2, strategy="ddp")).candidate("lora")
    assert ddp.config.gradient_checkpointing and ddp.time_hours > lora.time_hours
    big = recommend(Scenario(model="llama-3.1-70b", gpu="h100", gpus=8, nodes=2, dataset_size=100_000, task="domain"))
    assert big.candidate("full").config.strategy == "fsdp"
    doc = big.to_json()
    assert doc["recommendation"]["strategy"]["name"] == "fsdp" and doc["recommendation"]["strategy"]["measured"] is True
    assert doc["recommendation"]["strategy"]["world_size"] == 16 and doc["recommendation"]["strategy"]["nodes"] == 2
    (w,) = [w for w in doc["warnings"] if w["rule"] == "multi-gpu"]
    assert "communication time modelled (50 GB/s links" in w["message"]


def test_every_plan_keeps_the_safety_margin_a_team_can_change(tmp_path):
    """The issue's case: Llama-3.1-8B LoRA on one H100 took micro-batch 16 at 79.0 of 79.6 GiB (the loop's
    sizes; under TRL micro-batch 16 fits with room to spare)."""
    res = recommend(Scenario(model="llama-3.1-8b", gpu="h100", dataset_size=50_000, trainer="loop"))
    c = res.candidate(res.plan.method)
    assert c.required_gib <= 0.95 * 79.6 and res.to_json()["recommendation"]["safety_margin"] == 0.05
    team = tmp_path / "no-margin.yaml"
    team.write_text('version: 1\nrules:\n  - id: tight\n    when: "true"\n    priority: 50\n    set: {safety_margin: 0.0}\n')
    tight = recommend(Scenario(model="llama-3.1-8b", gpu="h100", dataset_size=50_000, rules=(str(team),), trainer="loop"))
    assert tight.to_json()["recommendation"]["safety_margin"] == 0.0
    assert tight.candidate(tight.plan.method).micro_batch_size > c.micro_batch_size


def test_emitters_launch_the_strategy():
    zero = recommend(Scenario(model="llama-3.1-8b", gpu="h100", gpus=4, strategy="zero3"))
    ds = json.loads(emit("deepspeed", zero))
    h = A8B.hidden_size
    assert ds["zero_optimization"]["stage"] == 3 and ds["zero_optimization"]["reduce_bucket_size"] == h * h
    assert ds["zero_optimization"]["stage3_prefetch_bucket_size"] == int(0.9 * h * h)
    assert ds["train_micro_batch_size_per_gpu"] == zero.plan.micro_batch_size
    assert ds["gradient_accumulation_steps"] == zero.plan.gradient_accumulation_steps
    acc = yaml.safe_load(emit("accelerate", zero))
    assert acc["distributed_type"] == "DEEPSPEED" and acc["num_processes"] == 4 and acc["deepspeed_config"]["zero3_init_flag"] is True
    sft = [n for n in ast.walk(ast.parse(emit("trl", zero))) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "SFTConfig"][0]
    assert {k.arg: ast.literal_eval(k.value) for k in sft.keywords}["deepspeed"] == "ds_config.json"
    assert yaml.safe_load(emit("axolotl", zero))["deepspeed"] == "ds_config.json"
    fsdp = recommend(Scenario(model="llama-3.1-8b", gpu="h100", gpus=2, nodes=2, strategy="fsdp"))
    acc = yaml.safe_load(emit("accelerate", fsdp))
    assert acc["distributed_type"] == "FSDP" and acc["fsdp_config"]["fsdp_version"] == 2 and acc["num_machines"] == 2
    assert acc["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    r = invoke(["recommend", "--model", "llama-3.1-8b", "--gpu", "h100", "--gpus", "2", "--strategy", "fsdp", "--emit", "deepspeed"])
    assert r.exit_code == 2 and "the plan's strategy is FSDP2, which DeepSpeed does not run" in r.stderr


def test_rules_read_the_fewest_gpus_a_method_fits_on(tmp_path):
    """min_gpus.M: the scenario's GPUs where M fits, the scale-out's count where more fit it."""
    team = tmp_path / "scale.yaml"
    team.write_text(
        'version: 1\nrules:\n  - id: say-full-needs\n    when: "not fits.full and min_gpus.full <= 8"\n'
        '    warn: "full fine-tuning needs {min_gpus.full:.0f} GPUs; LoRA needs {min_gpus.lora:.0f}"\n'
    )
    res = recommend(Scenario(model="llama-3.1-8b", gpu="rtx-4090", rules=(str(team),)))
    (scale,) = [a for a in res.alternatives if a.kind == "scale_out" and a.details["method"] == "full"]
    (w,) = [w for w in res.warnings if w.rule == "say-full-needs"]
    assert w.message == f"full fine-tuning needs {scale.details['gpus'] * scale.details['nodes']} GPUs; LoRA needs 1"


def test_launch_configs_load_in_accelerate_and_deepspeed(tmp_path):
    """accelerate's and DeepSpeed's own loaders accept every emitted launch config. Runs where accelerate and
    deepspeed are installed (the device: benchmarks/device_emitters.sh carries deepspeed as a wheel); CI has
    no torch and skips it."""
    pytest.importorskip("accelerate")
    pytest.importorskip("deepspeed")
    import torch.distributed as dist
    from accelerate.commands.config.config_args import load_config_from_file
    from deepspeed.runtime.config import DeepSpeedConfig
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if not dist.is_initialized():
        dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=4)
    for strategy in ("ddp", "fsdp", "zero1", "zero2", "zero3"):
        res = recommend(Scenario(model="llama-3.1-8b", gpu="h100", gpus=4, strategy=strategy))
        path = tmp_path / f"{strategy}.yaml"
        path.write_text(emit("accelerate", res))
        loaded = load_config_from_file(str(path))
        assert loaded.num_processes == 4, strategy
        if strategy.startswith("zero"):
            ds = DeepSpeedConfig(json.loads(emit("deepspeed", res)))
            assert ds.zero_optimization_stage == int(strategy[-1])


@pytest.mark.parametrize(
    "model, method, problem",
    [
        pytest.param("qwen2.5-0.5b", "lora", True, id="tied-head-adapter-seen-to-fail"),
        pytest.param("llama-3.2-1b", "dora", True, id="tied-head-dora"),
        pytest.param("tinyllama-1.1b", "lora", False, id="untied-head-trained-30-steps"),
        pytest.param("qwen2.5-0.5b", "full", False, id="tied-head-full-fine-tuning"),
    ],
)
def test_fsdp_launch_problem_of_tied_heads_under_adapters(model, method, problem):
    """The emitted FSDP2 launch (accelerate 1.15, peft 0.21) stopped at the first forward of Qwen2.5-0.5B LoRA
    and trained TinyLlama LoRA (data/launches/): the plan says so, and auto takes another strategy. The ZeRO-3
    launch of the same tied-head model logged a loss of 0: said too."""
    arch = catalog.resolve_model(model)
    cfg = TrainConfig(method=method, gpus=2, strategy="fsdp")
    said = strategies.get("fsdp").launch_problem(arch, cfg)
    assert (said is not None) == problem
    notes = " ".join(estimate_memory(arch, cfg).notes)
    assert ("--strategy ddp or zero3" in notes) == problem
    tied_adapter = arch.tie_embeddings and method != "full"
    assert (strategies.get("zero3").launch_problem(arch, TrainConfig(method=method, gpus=2, strategy="zero3")) is not None) == tied_adapter
    if method != "full":
        chosen = recommend(Scenario(model=model, gpu="h200", gpus=2, dataset_size=2000)).candidate(method).config.strategy
        assert chosen != "fsdp" or not problem
        assert chosen != "zero3" or not tied_adapter


def _scaleout(pattern):
    return scaleout.load(pattern)


def _error(d):
    return estimate_memory(arch_from_record(d), config_from_record(d)).peak_allocated_gib / d["peak_alloc_gib"] - 1


def _measured(status=("ok", "oom")):
    """One record per configuration (a real run where there is one, else its fake-group twin), as
    benchmarks/scaleout.py scores them."""
    return scaleout.measured(scaleout.load(), status)


def test_scaleout_data_covers_what_issue_10_asks():
    """Runs with their software versions and launcher: world sizes 2 to 64, 6+ model families 0.5B-72B with
    the MoE, full bf16 and mixed, LoRA and QLoRA, checkpointing on and off, AdamW and 8-bit AdamW, and
    out-of-memory runs near the edge."""
    runs = _scaleout("*.jsonl")
    assert len(runs) == 229 and all("torch" in d["software"] and "fake_process_group" in d for d in runs)
    assert {d["world_size"] for d in runs} == {2, 4, 8, 16, 32, 64}
    assert len({d["hf_config"]["model_type"] for d in runs}) >= 6 and any(d["arch"].startswith("qwen15_moe") for d in runs)
    assert {"full_bf16", "full_mixed", "lora", "qlora"} <= {d["method"] for d in runs if d["status"] == "ok"}
    assert {d["gc"] for d in runs} == {True, False} and {d["optim"] for d in runs if d["status"] == "ok"} == {"adamw", "adamw8bit"}
    assert sum(d["status"] == "oom" for d in runs) == 4


def _probe_layout(d) -> bool:
    """An FSDP2 record of the probe loop where its layout and the emitted launch's part: the probe shards the
    embeddings and the head in its root unit; accelerate gives the head (or the tied embedding) a unit of its own
    (ftdecide.strategies.fsdp.tail_bytes), which the plan follows for an adapter and for a tied model that trains.
    Those plans are judged by the launches themselves (test_sharded_launches_within_the_sharded_bounds)."""
    if d["strategy"] != "fsdp":
        return False
    return not config_from_record(d).method_spec.trains_base or arch_from_record(d).tie_embeddings


def test_scaleout_peaks_within_the_single_gpu_bounds():
    """Every distinct configuration of data/scaleout (FSDP2, DDP, ZeRO-1/2/3; 2-64 GPUs; real NCCL runs and
    fake-group ones): median <= 3%, no under-estimate worse than -5%, and the plan's fit against the card
    agrees with every run that trained or ran out of memory. FSDP2's probes of another layout than the launch
    the plan sizes: within -8.5% (70B-72B adapters at 8-16 GPUs, whose embeddings the probe held gathered beside
    the head) and +17% (a tied model's full fine-tuning: the launch holds its embedding gathered through the step)."""
    errs, probe, agree = [], [], 0
    runs = _measured()
    for d in runs:
        est = estimate_memory(arch_from_record(d), config_from_record(d))
        agree += (est.required_gib <= d["software"]["gpu_total_gib"]) == (d["status"] == "ok")
        if d["status"] == "ok":
            (probe if _probe_layout(d) else errs).append(est.peak_allocated_gib / d["peak_alloc_gib"] - 1)
    assert len(runs) == 186 and agree == len(runs) and len(probe) == 62
    assert statistics.median(abs(e) for e in errs) <= 0.03 and statistics.median(abs(e) for e in probe) <= 0.04
    assert min(errs) >= -0.05 and -0.085 <= min(probe) and max(probe) <= 0.17


@pytest.mark.parametrize(
    "strategy, median, worst",
    [("fsdp", 0.11, 0.33), ("ddp", 0.02, 0.15), ("zero1", 0.03, 0.06), ("zero2", 0.02, 0.05), ("zero3", 0.01, 0.18)],
)
def test_scaleout_peaks_by_strategy(strategy, median, worst):
    """Per strategy: the median and the largest error either way. FSDP2's records here are untied models that
    train the base (the others are held in the test above): 19 in pure bf16 (a median 4.2%, -4.0% / +20.5%) and 14
    under --precision mixed, whose small shards at 16-64 GPUs are over by up to 33%; the other over-estimates above 6% are
    Phi-3-mini QLoRA under DDP as on one GPU, and Qwen2.5-32B QLoRA under ZeRO-3 at 8 GPUs."""
    errs = [_error(d) for d in _measured(("ok",)) if d["strategy"] == strategy and not _probe_layout(d)]
    assert len(errs) >= 4
    assert statistics.median(abs(e) for e in errs) <= median
    assert min(errs) >= -0.05 and max(errs) <= worst


def test_real_two_gpu_runs_within_their_bounds():
    """The 37 runs on 2 H200s under torchrun with NCCL that trained (data/scaleout/h200x2_real_*, QLoRA under
    DDP, ZeRO-2 and ZeRO-3 among them): within 5% below and 14% above (the one above 5%: Phi-3-mini QLoRA,
    as on one GPU); the frozen base under ZeRO-3 without checkpointing says what was added for it."""
    real = [d for d in _scaleout("h200x2_real_*.jsonl") if d["status"] == "ok"]
    assert len(real) == 37 and all(d["fake_process_group"] is False for d in real)
    errs = [_error(d) for d in real]
    assert min(errs) >= -0.05 and max(errs) <= 0.14 and statistics.median(abs(e) for e in errs) <= 0.02
    for d in real:
        cfg = config_from_record(d)
        frozen_bf16 = not cfg.method_spec.trains_base and not cfg.method_spec.quantized_base
        if d["strategy"] == "zero3" and frozen_bf16 and not d["gc"]:
            assert zero_note in " ".join(estimate_memory(arch_from_record(d), cfg).notes)


def test_fake_process_group_matches_real_gpus():
    """Every configuration measured both ways (2 real GPUs, and rank 0 under the fake process group on one)
    agrees to 0.01 GiB; DDP does not run under the fake group (its reducer's hook gets no tensor back)."""
    real = {(d["strategy"], d["arch"], d["method"], d["optim"], d["seq"], d["batch"], d["gc"]): d for d in _scaleout("h200x2_real_*.jsonl")}
    pairs = 0
    for f in _scaleout("h200_fake_*.jsonl"):
        if f["world_size"] != 2:
            continue
        assert f["fake_process_group"] is True
        r = real.get((f["strategy"], f["arch"], f["method"], f["optim"], f["seq"], f["batch"], f["gc"]))
        if f["strategy"] == "ddp":
            assert f["status"] == "error" and "isTensor" in f["error"]
        elif r is not None:
            pairs += 1
            assert abs(f["peak_alloc_gib"] - r["peak_alloc_gib"]) <= 0.01, f["arch"]
    assert pairs == 25


def test_two_gpu_step_time_on_held_out_runs():
    """Tokens/s of the 2-GPU runs held out from the per-layer fit (every second run of each strategy;
    benchmarks/fit_scaleout_time.py): the GPU-bound ones (kernels longer than their launches) within a
    median 15%, none off by more than 35%."""
    from ftdecide.core.throughput import link_gbs, step_seconds

    h200 = catalog.resolve_gpu("h200")
    real = [d for d in _scaleout("h200x2_real_2026-11-29.jsonl") if "tokens_per_s" in d]
    held = [d for s in ("fsdp", "ddp", "zero2", "zero3") for d in [r for r in real if r["strategy"] == s][1::2]]
    errs = []
    for d in held:
        arch, cfg = arch_from_record(d), config_from_record(d)
        st = step_seconds(arch, cfg, h200.bf16_tflops, h200.memory_bandwidth_gbs, link_gbs=link_gbs(h200, 1))
        if st["matmul"] + st["memory"] >= st["launch"]:
            errs.append(d["seq"] * d["batch"] / st["total"] / d["tokens_per_s"] - 1)
    assert len(errs) >= 8
    assert statistics.median(abs(e) for e in errs) <= 0.15
    assert max(abs(e) for e in errs) <= 0.35


@pytest.mark.parametrize("optimizer, refused", [("adamw8bit", True), ("paged_adamw_8bit", True), ("adamw", False), ("adafactor", False)])
def test_fsdp_refuses_bitsandbytes_8bit_adamw(optimizer, refused):
    """Measured under the fake process group: bitsandbytes' 8-bit AdamW cannot step DTensors. The command
    says so and auto goes elsewhere."""
    r = invoke(["estimate", "--model", "llama-3.1-8b", "--method", "full", "--optimizer", optimizer, "--gpus", "4", "--strategy", "fsdp"])
    assert (r.exit_code == 2) == refused
    if refused:
        assert "cannot step FSDP2's sharded (DTensor) parameters" in r.stderr
        res = recommend(Scenario(model="llama-3.1-8b", gpu="h100", gpus=4, optimizer=optimizer))
        assert all(c.config.strategy != "fsdp" for c in res.candidates)


def test_a_4bit_base_is_refused_by_fsdp2_and_held_whole_by_zero3():
    """FSDP2 could not run a 4-bit base (4 of 4 runs: 'quant_state is required'): refused in one line. ZeRO-3
    with one was measured (2 real runs, 5 under the fake process group): the whole 4-bit base stays gathered
    (0.71 B per quantizable parameter) through forward and backward, which its plans say; auto takes DDP or
    ZeRO-2, which communicate less, wherever they fit. A 70B QLoRA fits 24 GB cards with none of them as asked: FSDP1
    shards the 4-bit base, but rank 0 starts training with all of it on its GPU (transformers 5.17, measured), unless the
    parameters are offloaded and the base loaded in host memory, which the plan then switches on (the Answer.AI recipe)."""
    r = invoke(["estimate", "--model", "llama-3.1-8b", "--method", "qlora", "--gpus", "2", "--strategy", "fsdp"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "quant_state is required" in r.stderr and "zero2" in r.stderr
    arch = catalog.resolve_model("llama-3.1-8b")
    for n in (2, 8):
        mm = memory_model(arch, TrainConfig(method="qlora", gpus=n, strategy="zero3"))
        assert mm.gathered == pytest.approx(0.71 * arch.quantizable_params() + int(0.9 * 4096 * 4096) * 2)
    notes = " ".join(estimate_memory(arch, TrainConfig(method="qlora", gpus=2, strategy="zero3")).notes)
    assert QUANT_GATHERED_NOTE in notes and strategies.get("zero3").launch_problem(arch, TrainConfig(method="qlora", gpus=2)) is None
    assert QUANT_GATHERED_NOTE not in " ".join(estimate_memory(arch, TrainConfig(method="qlora", gpus=2, strategy="zero2")).notes)
    small = recommend(Scenario(model="llama-3.1-8b", gpu="rtx-4090", gpus=2)).candidate("qlora").config.strategy
    assert small in ("ddp", "zero1", "zero2")
    big = recommend(Scenario(model="llama-3.1-70b", gpu="rtx-4090", gpus=4))
    assert big.plan.method == "qlora" and (big.plan.candidate.config.strategy, big.plan.candidate.config.offload_params) == ("fsdp1", True)
    assert big.plan.reasons[0].rule == "switch" and "FSDP1 and the 4-bit base in host memory" in big.plan.reasons[0].message
    for name in ("ddp", "zero2", "zero3", "fsdp1"):
        cfg = TrainConfig(method="qlora", gpus=4, strategy=name, gradient_checkpointing=True, batch_size=1)
        assert estimate_memory(catalog.resolve_model("llama-3.1-70b"), cfg).required_gib > 22.4


def test_zero3_with_a_4bit_base_pays_its_fetches_per_layer():
    """The real 2-GPU QLoRA runs under ZeRO (data/scaleout/h200x2_real_qlora_*): ZeRO-3 with a 4-bit base ran
    62-65% slower than the step-time model without a term for it; 25 ms per decoder layer per micro-batch,
    fitted to those 2 runs, brings them within 6%. ZeRO-2 has no such term."""
    from ftdecide.strategies.zero import QUANT_LAYER_S
    from ftdecide.core.throughput import link_gbs

    h200 = catalog.resolve_gpu("h200")
    runs = [d for d in _scaleout("h200x2_real_qlora_*.jsonl") if d["status"] == "ok"]
    assert {d["strategy"] for d in runs} == {"zero2", "zero3"} and len(runs) == 4
    for d in runs:
        arch, cfg = arch_from_record(d), config_from_record(d)
        spec = strategies.get(d["strategy"])
        extra = QUANT_LAYER_S * arch.num_layers if d["strategy"] == "zero3" else 0.0
        assert spec.hook_seconds(arch, cfg) == pytest.approx(spec.layer_s * arch.num_layers + extra)
        st = step_seconds(arch, cfg, h200.bf16_tflops, h200.memory_bandwidth_gbs, link_gbs=link_gbs(h200, 1))
        if d["strategy"] == "zero3":
            assert abs(d["seq"] * d["batch"] / st["total"] / d["tokens_per_s"] - 1) <= 0.06


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["qwen2.5-0.5b", "llama-3.2-1b", "gemma-2-2b", "mistral-7b", "qwen1.5-moe-a2.7b", "llama-3.1-70b"]),
    st.sampled_from(["full", "lora", "qlora", "dora"]),
    st.sampled_from(["bf16", "mixed"]),
    st.sampled_from(["ddp", "fsdp", "zero1", "zero2", "zero3"]),
    st.sampled_from([2, 4, 8, 16, 32]),
    st.integers(128, 4096),
    st.integers(1, 8),
    st.booleans(),
)
def test_more_gpus_never_hold_more_per_gpu(model, method, precision, strategy, n, seq, batch, gc):
    """Every strategy's per-GPU figure, at every moment of the step, is non-negative and does not grow
    with the GPU count: what it shards shrinks, what it buffers (layers in flight, root gradients, buckets,
    a 4-bit base held whole) stays."""
    a = catalog.resolve_model(model)
    precision = precision if method == "full" else "bf16"
    cfg = dict(method=method, precision=precision, seq_len=seq, batch_size=batch, gradient_checkpointing=gc, strategy=strategy)
    few = memory_model(a, TrainConfig(**cfg, gpus=n))
    many = memory_model(a, TrainConfig(**cfg, gpus=n * 2))
    assert min(few.gathered, few.bwd_gathered, few.end_gathered, few.grads, few.weights) >= 0
    p_few, p_many = few.phases(seq, batch, gc), many.phases(seq, batch, gc)
    for moment in ("forward", "backward", "end"):
        assert p_many[moment] + many.weights + many.opt_gpu <= p_few[moment] + few.weights + few.opt_gpu + 1.0, moment


def test_no_module_compares_a_strategy_name():
    """The estimator, recommender, results and probe ask the strategy (``single_gpu``, ``probe_runner``,
    ``strategies.is_auto``); only the strategies package names them."""
    from conftest import name_comparisons
    from ftdecide import strategies

    assert name_comparisons(set(strategies.names()) | {strategies.AUTO}, skip=lambda path: "strategies" in path.parts) == []


@pytest.mark.parametrize(
    "strategy, method, unsharded",
    [
        # FSDP2 under the Trainer's no_sync: every trained gradient unsharded, bf16 (2 B a parameter)
        pytest.param("fsdp", "full", True, id="fsdp full: whole bf16 gradients"),
        pytest.param("fsdp", "lora", True, id="fsdp lora: whole bf16 adapter gradients"),
        # the others hold what their share of the gradients already is (DDP a replica's, ZeRO what DeepSpeed keeps)
        pytest.param("ddp", "full", False, id="ddp full"),
        pytest.param("zero2", "full", False, id="zero2 full"),
        pytest.param("zero3", "full", False, id="zero3 full"),
    ],
)
def test_gradients_held_across_accumulated_micro_batches_follow_the_strategy(strategy, method, unsharded):
    """TRL's step of 2 micro-batches holds the earlier micro-batch's gradients through the later one: FSDP2's
    unsharded (measured: data/sharded_trainers/, the ten full fine-tuning launches within -1.6% / +6.6% with it), the
    others' own share."""
    cfg = TrainConfig(method=method, trainer="trl", gpus=4, strategy=strategy, seq_len=1024, batch_size=2)
    one = memory_model(A8B, cfg)
    two = memory_model(A8B, cfg.model_copy(update={"gradient_accumulation": 2}))
    assert two.accum_grads == pytest.approx(one.trainable_params * 2.0 if unsharded else one.grads)
    assert one.accum_grads == 0.0
    if unsharded:
        # more than its shard: 4x a bf16 weight's quarter, 2x an fp32 adapter's
        assert two.accum_grads == pytest.approx(one.grads * (4.0 if method == "full" else 2.0))


@pytest.mark.parametrize(
    "trainer, strategy, accum, unmeasured, no_sync",
    [
        pytest.param("trl", "fsdp", 1, False, False, id="trl fsdp: its launch measured"),
        pytest.param("trl", "fsdp", 2, False, True, id="trl fsdp accumulating: the unsharded gradients said"),
        pytest.param("hf", "fsdp", 2, True, True, id="hf fsdp: not measured as launched"),
        pytest.param("trl", "zero3", 2, True, False, id="trl zero3: not measured as launched"),
    ],
)
def test_a_sharded_plan_says_what_of_its_launch_was_measured(trainer, strategy, accum, unmeasured, no_sync):
    cfg = TrainConfig(method="full", trainer=trainer, gpus=4, strategy=strategy, gradient_accumulation=accum)
    notes = " ".join(estimate_memory(A8B, cfg).notes)
    assert ("not measured as launched" in notes) == unmeasured
    assert ("unsharded (bf16) until the step's last micro-batch" in notes) == no_sync


# FSDP1 over a 4-bit base (the FSDP+QLoRA recipe): Llama-3.1-8B's numbers by hand. 6,979,321,856 quantizable
# parameters (8,030,261,248 less the embedding and head, 525,336,576 each, and 65 norms of 4,096); their constants
# one 8-bit absmax per 64 weights plus one fp32 per 256 absmax: 6,979,321,856 / 64 x (1 + 4/256) = 110,755,840 B.
# A layer's flat parameter: 6,979,321,856 / 32 x 0.5 B packed plus 2 norms x 4,096 x 2 B = 109,068,288 B; the
# root unit (embedding, head, final norm in bf16): (2 x 525,336,576 + 4,096) x 2 B = 2,101,354,496 B.
FSDP1_CONSTS, FSDP1_LAYER, FSDP1_ROOT = 110_755_840, 109_068_288, 2_101_354_496


@pytest.mark.parametrize("gpus,offload", [(2, False), (4, False), (2, True)])
def test_fsdp1_shards_the_packed_base_and_keeps_its_constants_whole(gpus, offload):
    from ftdecide.core.calibration import DEFAULT
    from ftdecide.strategies.fsdp1 import layer_unit_bytes, root_bytes

    cfg = TrainConfig(method="qlora", trainer="trl", gpus=gpus, strategy="fsdp1", offload_params=offload)
    assert cfg.method_spec.unsharded_bytes(A8B, cfg) == FSDP1_CONSTS
    assert (layer_unit_bytes(A8B, cfg), root_bytes(A8B)) == (FSDP1_LAYER, FSDP1_ROOT)
    sh = strategies.get("fsdp1").per_gpu(A8B, cfg, 1e10, 1e8, 3e8, DEFAULT)
    shard = 0.0 if offload else 1.0 / gpus
    assert (sh.weights, sh.grads, sh.optimizer) == pytest.approx(((1e10 - FSDP1_CONSTS) * shard + FSDP1_CONSTS, 1e8 * shard, 3e8 * shard))
    # the root unit and fsdp_frozen_layers (3.0) layers gathered, through forward and backward
    assert sh.compute_buffers == pytest.approx(3.0 * FSDP1_LAYER + FSDP1_ROOT)
    assert sh.backward_buffers == sh.end_buffers == sh.forward_buffers == 0.0


@pytest.mark.parametrize(
    "fields,refusal",
    [
        (dict(method="lora"), "FSDP1 is emitted for a 4-bit base only"),
        (dict(method="full"), "FSDP1 is emitted for a 4-bit base only"),
        (dict(method="qlora", trainer="hf"), "casts its norms and embeddings to fp32"),
        (dict(method="qlora", trainer="trl", offload_optimizer=True), "--offload-optimizer: FSDP1 keeps the optimizer states"),
        (dict(method="qlora", trainer="trl"), None),
        (dict(method="qlora", trainer="trl", offload_params=True), None),
    ],
)
def test_fsdp1_runs_a_4bit_base_under_trl_only(fields, refusal):
    problem = TrainConfig(gpus=2, strategy="fsdp1", **fields).run_problem()
    assert (problem is None) if refusal is None else (refusal in problem)


@pytest.mark.parametrize("offload", [False, True])
def test_fsdp1_launch_is_peft_documented_recipe(offload, tmp_path):
    """The accelerate config is peft's fsdp_config_qlora.yaml (FSDP1, FULL_SHARD, transformer-layer wrap, BACKWARD_PRE,
    flat parameters, rank 0 loading), with the plan's offload; the script stores the 4-bit weights as bf16."""
    argv = ["recommend", "--model", "llama-3.1-8b", "--gpu", "rtx-4090", "--gpus", "2", "--strategy", "fsdp1", "--task", "instruction"]
    argv += ["--offload-params" if offload else "--no-offload-params"]
    r = invoke(argv + ["--format", "json"])
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.stdout)["recommendation"]
    assert plan["method"] == "qlora" and plan["strategy"]["name"] == "fsdp1"
    for kind in ("accelerate", "trl"):
        assert invoke(argv + ["--emit", kind, "--out", str(tmp_path / kind)]).exit_code == 0
    acc = yaml.safe_load((tmp_path / "accelerate").read_text())
    assert acc["distributed_type"] == "FSDP" and acc["num_processes"] == 2
    assert acc["fsdp_config"] == {
        "fsdp_version": 1,
        "fsdp_sharding_strategy": "FULL_SHARD",
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_backward_prefetch": "BACKWARD_PRE",
        "fsdp_forward_prefetch": False,
        "fsdp_offload_params": offload,
        "fsdp_use_orig_params": False,
        "fsdp_cpu_ram_efficient_loading": True,
        "fsdp_sync_module_states": True,
        "fsdp_state_dict_type": "SHARDED_STATE_DICT",
        "fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer",
    }
    script = (tmp_path / "trl").read_text()
    assert "bnb_4bit_quant_storage=torch.bfloat16" in script and "prepare_model_for_kbit_training" not in script


@pytest.mark.parametrize(
    "model, gpus, offload, in_host",
    [
        pytest.param("llama-2-70b", 2, True, True, id="70b-offloaded-over-2"),
        pytest.param("llama-3.1-8b", 4, True, True, id="8b-offloaded-over-4"),
        pytest.param("llama-2-70b", 2, False, False, id="not-offloaded"),
        pytest.param("llama-3.1-8b", 1, True, False, id="one-gpu"),
        # a small model with a large vocabulary: its root unit flattened holds more than the whole 4-bit model
        pytest.param("qwen2.5-0.5b", 2, True, False, id="root-larger-than-the-model"),
    ],
)
def test_fsdp1_emits_the_load_in_host_memory_where_it_was_sized_so(model, gpus, offload, in_host):
    """An offloaded FSDP1 plan over several GPUs loads and quantizes the base in host memory where that starts lower
    than the whole 4-bit model on the GPU; the emitted TRL file says so in its load and its header, and the plan's
    start is that moment."""
    from ftdecide.emit import emit_config
    from ftdecide.strategies.fsdp1 import cpu_load_start, gpu_load_start

    arch = catalog.resolve_model(model)
    cfg = TrainConfig(method="qlora", trainer="trl", strategy="fsdp1", gpus=gpus, offload_params=offload, gradient_checkpointing=True)
    text = emit_config("trl", arch, cfg, accum=2, held_out=0, dataset_size=1000, gpu_name="device")
    assert ('device_map={"": "cpu"}' in text) == in_host == ("the base loaded and quantized there" in text)
    start = memory_model(arch, cfg).start
    assert start == (cpu_load_start(arch, cfg) if in_host else gpu_load_start(arch, cfg))
    assert start <= gpu_load_start(arch, cfg)
