"""FSDP2 as accelerate applies it (``fsdp_version: 2``): ``fully_shard`` on every decoder layer and on the
root, parameters resharded after forward; ``--precision mixed`` keeps fp32 sharded parameters under
``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)``.

Memory per GPU: weights, gradients and optimizer states divided over the GPUs, plus what FSDP2 holds
unsharded at each moment of the step (:func:`in_flight`): decoder layers gathered in forward, more in
backward, and at the end of backward the root's gradients (embeddings and head, which reduce once, all
together) beside a few layers' parameters and gradients. Five constants
(``fsdp_*``, the strategy's ``constants`` below) are chosen on 95 FSDP2 configurations measured at 2 to
64 GPUs (``data/scaleout/``; ``python benchmarks/scaleout.py --fit``), with the probe loop's layout; where
accelerate's layout of the emitted launch differs (its head in a unit of its own), the plan follows the launch:
a tied model's embedding held through the step where it trains, and for an adapter the head's unit at the loss
beside ``fsdp_frozen_layers``, chosen on the launches of ``data/sharded_trainers/``
(``python benchmarks/fit_trainers.py --frozen``); under TRL's fused head, by moment as the allocator's traces show
them (``fsdp_fused_bwd_layers`` in backward, ``fsdp_fused_fwd_layers`` between two layers in forward, none at the
loss; with a tied head, its unit twice at the start of forward, :func:`early_bytes`). The policy's bf16 parameters run
without autocast: the activation terms are those of bf16 weights under ``--precision mixed`` too
(``Strategy.bf16_engine``). A 4-bit base is refused: measured, ``fully_shard`` drops bitsandbytes'
quantization state.
With ``--offload-params`` (FSDP2's ``CPUOffloadPolicy``) the shards live in CPU memory: modelled.
"""

from __future__ import annotations

from . import Shares, Strategy, Traffic, register, ring


def layer_params(arch) -> float:
    """Parameters of one decoder layer (what FSDP gathers at once)."""
    return (arch.total_params() - arch.embedding_params() - arch.head_params()) / arch.num_layers


def gathered_bytes(arch, cfg) -> float:
    """Bytes per parameter of a gathered layer: bf16 (also for fp32 master weights under the mixed
    policy), or the base's own storage where that is smaller (QLoRA's 4-bit weights)."""
    return min(2.0, cfg.method_spec.weight_bytes(arch, cfg, 0) / arch.total_params())


def reduce_bytes(cfg) -> float:
    """Bytes per gradient value the reduce-scatter moves where the base trains: fp32 under the mixed
    policy (``reduce_dtype=float32``), bf16 otherwise."""
    return 4.0 if cfg.precision == "mixed" else 2.0


def in_flight_units(arch, cfg) -> tuple[float, float, float]:
    """Bytes of the units :func:`in_flight` counts in: one decoder layer gathered, one layer's unsharded
    gradients (none where the base is frozen), the root's gradients in bf16 and the reduce dtype (likewise)."""
    layer = layer_params(arch)
    method = cfg.method_spec
    lg = layer * gathered_bytes(arch, cfg)
    lp = layer * method.param_bytes(cfg) if method.trains_base else 0.0
    root = (arch.embedding_params() + arch.head_params()) * (2.0 + reduce_bytes(cfg)) if method.trains_base else 0.0
    return lg, lp, root


def tail_bytes(arch, cfg) -> float:
    """Bytes of the unit accelerate 1.15 carves for the head (``fsdp2_prepare_model``), gathered whole for the
    loss: the final norm and the head, or where the head is tied, the embedding it shares (the unit then spans
    the whole forward). Its ``reshard_after_forward=False`` keeps it gathered from its forward into backward."""
    shared = arch.embedding_params() if arch.tie_embeddings else arch.head_params()
    return (shared + arch.hidden_size) * gathered_bytes(arch, cfg)


def fused_head(cfg) -> bool:
    """A launch under TRL's fused head, of an adapter or of the whole model: its layers in flight are backward's, and the
    loss's moment and the recompute's are two (traced, :func:`in_flight`; FSDP1 asks it too, for its two moments and
    its recompute)."""
    return cfg.trainer_spec.chunked_loss


def early_bytes(arch, cfg) -> float:
    """Bytes FSDP2 holds beyond a GPU's shards at the start of forward, over a frozen base under TRL's fused head with
    a tied head: the tied unit twice and one decoder layer. Traced (data/traces/h100_sharded_fsdp2_e_2026-12-07.jsonl,
    Gemma-2-2B IA3 over 2): the peak came in the backbone's call from TRL's fused forward, with two blocks the size of
    the tied head (1.10 GiB each) and one layer gathered, before the layers had saved much; a model whose tied head is
    large beside its layers (a 256k vocabulary) peaks there. Later moments hold the unit once (traced in backward)."""
    if not (fused_head(cfg) and not cfg.method_spec.trains_base and arch.tie_embeddings):
        return 0.0
    return 2.0 * tail_bytes(arch, cfg) + in_flight_units(arch, cfg)[0]


def in_flight(arch, cfg, cal) -> tuple[float, float, float, float, float]:
    """Bytes FSDP2 holds unsharded beyond a GPU's shards, by moment: (through forward and backward, through
    backward only, at the end of backward only, in forward only at the loss, in forward between decoder layers).

    - forward: ``fsdp_fwd_layers`` decoder layers' worth gathered (the one computing and the one
      prefetched, each as its all-gather output and as its parameters);
    - backward: ``fsdp_bwd_layers`` more gathered (recomputed and prefetched) and, where the base trains,
      ``fsdp_grad_layers`` layers of unsharded gradients waiting for their reduce-scatter;
    - the end of backward, where the root (embeddings, final norm, head) reduces its gradients once, all
      of them together: ``fsdp_root_grad`` times the root's gradients unsharded in bf16 and in the reduce
      dtype, beside ``fsdp_end_layers`` layers' parameters and gradients.

    These were chosen on the probe loop's layout. The emitted launches follow accelerate's units instead
    (:func:`tail_bytes`): under TRL's fused head, an adapter's or the whole model's, a tied head's unit through the
    step, an untied one's at the loss (``Shares.forward_buffers``), ``fsdp_fused_bwd_layers`` layers in backward and
    ``fsdp_fused_fwd_layers`` in forward between decoder layers (``Shares.layer_fwd_buffers``), none at the loss, and
    the loss's backward and the recompute two moments (``Shares.loss_apart``; traced, adapters and full fine-tuning);
    without it (the transformers Trainer), a frozen base holds ``fsdp_frozen_layers`` layers through the step and
    the head's unit in forward only, and a tied model that trains its embedding's unit through the whole step."""
    lg, lp, root = in_flight_units(arch, cfg)
    tail = tail_bytes(arch, cfg)
    tied = tail if arch.tie_embeddings else 0.0
    # the end of backward: the root's and the last layers' gradients where the base trains (lp and root are 0 over a
    # frozen base, which holds the layers alone)
    end = cal.fsdp_root_grad * root + cal.fsdp_end_layers * (lg + lp)
    if fused_head(cfg):
        # under TRL's fused head (traced: data/traces/h100_sharded_fsdp2_b_2026-12-07.jsonl, adapters;
        # h100_sharded_fsdp2_2026-12-07.jsonl, full fine-tuning): its forward takes a tied weight whole and keeps it to
        # the last layer's recompute (trl/trainer/utils.py _fused_forward), an untied head's unit is gathered at the
        # loss only; and every decoder layer is resharded after its forward (reshard_after_forward), so the layers in
        # flight are backward's: none at the loss
        return tied, cal.fsdp_fused_bwd_layers * lg, end, tail - tied, cal.fsdp_fused_fwd_layers * lg
    if not cfg.method_spec.trains_base:
        # the emitted launch of an adapter without the fused head (data/sharded_trainers/): see FROZEN below
        return cal.fsdp_frozen_layers * lg, 0.0, end, tail, 0.0
    # a tied head's unit is the embedding, which trains: gathered from the first layer's input to the last gradient
    return cal.fsdp_fwd_layers * lg + tied, cal.fsdp_bwd_layers * lg + cal.fsdp_grad_layers * lp, end, 0.0, 0.0


class FSDP2(Strategy):
    def per_gpu(self, arch, cfg, weights, grads, optimizer, cal) -> Shares:
        n = cfg.world_size
        fwd, bwd, end, loss, between = in_flight(arch, cfg, cal)
        shard_w, shard_g, shard_o = weights / n, grads / n, optimizer / n
        notes = [f"FSDP2: weights, gradients and optimizer states sharded over {n} GPUs, plus the layers gathered in flight"]
        if cfg.offload_params:
            shard_w = shard_g = shard_o = 0.0
            notes.append("parameters, gradients and optimizer states offloaded to CPU memory (CPUOffloadPolicy; modelled)")
        if n > 1 and cfg.trainer_spec.accumulates and cfg.gradient_accumulation > 1:
            notes.append(
                "FSDP2 keeps every trained gradient unsharded (bf16) until the step's last micro-batch (the trainers' no_sync; "
                "measured); accelerate's gradient_accumulation_kwargs sync_each_batch=True would keep them sharded, at one "
                "reduce-scatter per micro-batch (not emitted: not measured)"
            )
        buffers = dict(compute_buffers=fwd, backward_buffers=bwd, end_buffers=end, forward_buffers=loss, layer_fwd_buffers=between)
        return Shares(
            shard_w, shard_g, shard_o, **buffers, early_buffers=early_bytes(arch, cfg), notes=tuple(notes), loss_apart=fused_head(cfg)
        )

    def accumulated_grad_bytes(self, arch, cfg, trainable, grads):
        # the Trainer accumulates under accelerate's no_sync, which for FSDP2 is set_requires_gradient_sync(False):
        # every trained parameter's gradient stays unsharded, in the bf16 compute dtype, until the last micro-batch
        # reduce-scatters them. Measured as rank 0 of N (data/sharded_trainers/): full fine-tuning with 2
        # micro-batches a step held the whole model's bf16 gradients beside its shards
        return trainable * 2.0 if cfg.world_size > 1 else grads

    def problem(self, cfg):
        # measured under the fake process group (data/scaleout/h200_fake_edge_*): fully_shard turns
        # bitsandbytes' Params4bit into plain DTensors without their quantization state, and the first forward
        # stops (4 of 4 QLoRA runs, 2-8 GPUs, bnb_4bit_quant_storage=bfloat16); reported elsewhere as a
        # silent failure instead (huggingface/accelerate#3983: loss 0, grad_norm nan)
        if cfg.method_spec.quantized_base:
            return (
                "FSDP2 cannot shard a 4-bit base (measured: torch 2.11's fully_shard drops bitsandbytes' quantization state, "
                "'quant_state is required' at the first forward, 4 of 4 runs): use --strategy ddp or zero2"
            )
        if cfg.optimizer_spec.fsdp2_problem:
            return cfg.optimizer_spec.fsdp2_problem
        return super().problem(cfg)

    def launch_problem(self, arch, cfg):
        # seen on 2 H200s (data/launches/, 2026-11-29): the emitted accelerate + TRL launch of Qwen2.5-0.5B LoRA stopped
        # at the first forward on both ranks; TinyLlama (untied) trained 30 steps with the same files. The launches
        # emitted since (data/sharded_trainers/, rank 0 of 2-4 under the fake process group) trained 4 tied adapters
        # (Llama-3.2-1B LoRA and IA3, Llama-3.2-3B DoRA, Qwen2.5-3B LoRA): not seen on real GPUs since, so still said
        if arch.tie_embeddings and not cfg.method_spec.trains_base:
            return (
                "FSDP2 launch: accelerate 1.15 + peft 0.21 (torch 2.11) stopped at the first forward of a model whose head is tied "
                "to its embeddings when an adapter trained, on 2 GPUs ('aten.embedding got mixed torch.Tensor and DTensor'; 4 later "
                "launches of tied adapters trained, as rank 0 under a fake process group): use --strategy ddp or zero3"
            )
        return None

    def traffic(self, arch, cfg) -> Traffic:
        method = cfg.method_spec
        n = cfg.world_size
        trainable = method.trainable_params(arch, cfg, method.adapted_modules(arch, cfg))
        reduce = reduce_bytes(cfg) if method.trains_base else method.param_bytes(cfg)
        gathered = arch.total_params() * gathered_bytes(arch, cfg)
        # forward gathers every layer, backward again (resharded after forward); gradients reduce-scatter once a
        # step: the trainers accumulate the earlier micro-batches unsharded, without syncing
        # (accumulated_grad_bytes)
        return Traffic(
            per_step={"reduce-scatter": ring(n) * trainable * reduce},
            per_micro_batch={"all-gather": 2 * ring(n) * gathered},
        )

    def trainer_args(self, layer_cls, offload_params) -> dict:
        cfg: dict = {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "reshard_after_forward": True}
        if layer_cls:
            cfg["transformer_layer_cls_to_wrap"] = [layer_cls]
        return {"fsdp": "full_shard offload" if offload_params else "full_shard", "fsdp_config": cfg}

    def axolotl_keys(self, layer_cls, offload_params) -> dict:
        fsdp: dict = {"offload_params": offload_params, "state_dict_type": "FULL_STATE_DICT", "auto_wrap_policy": "TRANSFORMER_BASED_WRAP"}
        if layer_cls:
            fsdp["transformer_layer_cls_to_wrap"] = layer_cls
        fsdp["reshard_after_forward"] = True
        return {"fsdp_version": 2, "fsdp_config": fsdp}

    def accelerate_config(self, world, nodes, layer_cls, mixed, offload_params) -> dict:
        fsdp = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_reshard_after_forward": True,
            "fsdp_offload_params": offload_params,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_activation_checkpointing": False,  # the trainer's gradient_checkpointing does it
        }
        if layer_cls:
            fsdp["fsdp_transformer_layer_cls_to_wrap"] = layer_cls
        return {
            "compute_environment": "LOCAL_MACHINE",
            "distributed_type": "FSDP",
            "fsdp_config": fsdp,
            "mixed_precision": "bf16",
            "num_machines": nodes,
            "num_processes": world,
        }


STRATEGY = register(
    FSDP2(
        name="fsdp",
        label="FSDP2",
        summary="weights, gradients and optimizer states sharded; layers gathered as they run",
        measured=True,
        basis=(
            "fitted to 95 FSDP2 configurations of ftdecide's probe loop at 2-64 GPUs (H200; 14 real NCCL runs, each matched to "
            "0.01 GiB by its fake-group twin): median 1.7%, -4.3% / +34.9% then, out of sample (5 folds) 2.5%, worst -8.2%: keep "
            "headroom at 16 GPUs and more; the emitted TRL launch itself, as rank 0 of 2-8 GPUs under the fake group, sized "
            "for its own layout under TRL's fused head (2.5 layers in flight in backward, 3 in forward between layers, none "
            "at the loss; the head's unit at the loss or, tied, through the step; the loss and the recompute two moments, the "
            "head's fp32 gradient whole; each checkpointed layer's input at 2 B a hidden value; from 12 traced launches): "
            "full fine-tuning in bf16: 16 launches, median 0.7%, -3.0% / +1.8% (the layout taken from two traces with 12 of "
            "these launches in view: 2.1%, -2.1% / +13.2% before); adapters (a tied head's unit also twice at the start of "
            "forward; IA3's checkpointed backward three MLP-wide blocks, as traced; Gemma 2's eager attention as transformers "
            "writes it): 53 launches, median 1.6%, -5.4% / +9.0% (planned before they ran: 8 at "
            "a median 4.8%, -2.1% / +18.5% then, 8 after the moments at 4.1%, -3.6% / +11.4%, 12 after the layers were "
            "counted by moment at 5.3%, -7.0% / +10.5%, 10 of every method at 3.7%, -6.0% / +10.9%, and 18 of every method "
            "(grids j and k, two of them FSDP1) at 1.4%, -4.4% / +10.4%; DoRA is the worst "
            "over, +4% to +9% on 4 of 5 launches, untraced)"
        ),
        # profiled on 2 H200s: 50%, 87% and 81% of the NCCL time hidden (Llama-3.2-3B, Llama-3.1-8B full,
        # Qwen2.5-72B LoRA); 2.5 ms per layer fitted on 7 of the 14 timed runs (benchmarks/fit_scaleout_time.py)
        overlap=0.8,
        layer_s=0.0025,
        # MixedPrecisionPolicy(param_dtype=bf16) gathers bf16 weights and runs them without autocast's copies
        bf16_engine=True,
        trainer_gc_excess=False,
        # measured as rank 0 of N under the fake process group (data/sharded_trainers/): with mixed_precision bf16
        # the emitted TRL launch of full fine-tuning peaked 1.4-2.3x the pure-bf16 plan (fp32 weights, gradients and
        # optimizer states)
        upcasts_trained=True,
        launch_measured=("trl",),
        shards_parameters=True,
        probed=True,
        probe_runner="run_fsdp_probe",
        # In decoder layers beyond each GPU's shards (:func:`in_flight`): gathered through forward and backward,
        # gathered more through backward, unsharded gradients in backward where the base trains (the search put
        # none beyond the backward layers); at the end of backward the root's gradients (bf16 and reduce dtype)
        # and layers' parameters and gradients. Chosen on a 0.5 grid over the 95 distinct FSDP2 configurations
        # of data/scaleout/ (2-64 GPUs) as the smallest median error whose worst under-estimate stays within
        # -4.5% (python benchmarks/scaleout.py --fit: median 1.7%, -4.3% / +34.9%; the worst over is an MoE
        # adapter whose forward held 1.6 of its large layers, not 5.5). The two constants before (6.0 layers
        # held the whole step, 2.0 gradient layers) were -18.7% on a 14B model over 32 GPUs once more
        # configurations came in: its root's gradients (1.6e9 parameters, in bf16 and fp32) set the peak at
        # the end of backward.
        constants=(
            ("fsdp_fwd_layers", 5.5),
            ("fsdp_bwd_layers", 1.0),
            ("fsdp_grad_layers", 0.0),
            ("fsdp_root_grad", 1.0),
            ("fsdp_end_layers", 2.0),
            # FROZEN: an adapter's launch as emitted. The probe loop above shards the embeddings and the head
            # in the root unit, gathered through forward; accelerate 1.15 (fsdp2_prepare_model) gives the
            # embeddings a unit of their own (freed after their forward) and the head another with
            # reshard_after_forward=False (tail_bytes: gathered at the loss). Where the base trains, the
            # constants above stay, and a tied model's unit (its embedding) is held through the step: the 10
            # launches go from -9.3% / +2.2% to -1.6% / +6.6% (Llama-3.2-1B over 4 GPUs was -9.3%); where it is frozen
            # they were over by +2.4% to +22% (5 runs: Llama-3.1-8B LoRA held one layer gathered at its peak,
            # traced). Decoder layers gathered through forward and backward, beside the head's unit in forward:
            # chosen on those 5 runs on a 0.5 grid as the smallest median whose worst under-estimate stays
            # within -4.5% (benchmarks/fit_trainers.py --frozen: median 3.6%, -3.0% / +11.2%). Chosen again by
            # that rule (2026-12-07) once three launches were traced (a tied head held to the recompute under TRL's
            # fused head; the loss and the recompute two moments, Shares.loss_apart; the layers in flight backward's,
            # none at the loss): 3.0 still
            ("fsdp_frozen_layers", 3.0),
            # ... and under TRL's fused head, the layers in flight by moment, from the allocator's history at the peak
            # (data/traces/h100_sharded_fsdp2_c_*, _d_*): backward's recompute held 2.3 and 2.4 decoder layers gathered
            # (Qwen2.5-7B LoRA over 4, Qwen3-8B over 8; 2.5 taken, the next half); the MoE launch (Qwen3-30B-A3B, 1.1 GiB
            # layers) peaked in forward between two layers with 3.05 gathered beside what they saved, where the plan had
            # held none. On the 46 launches of data/sharded_trainers/ the median goes from 3.2% to 2.3% (-4.9% /
            # +15.6%; 2.4 would put Llama-3.2-1B IA3 at -5.2%); data/grids/sharded_trl_g.jsonl was planned after
            ("fsdp_fused_bwd_layers", 2.5),
            ("fsdp_fused_fwd_layers", 3.0),
        ),
    )
)
