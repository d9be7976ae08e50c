"""TRL's ``SFTTrainer`` (trl 1.16): what ``recommend --emit trl`` writes, and the default.

Memory, read from its source and measured on its emitted file (``data/trainers/``):

- the loss runs through a fused LM head (``trl.trainer.utils.add_fused_lm_head``, ``loss_type="nll"``):
  the final hidden states of the tokens that carry a label are gathered and held for backward, and the
  head and the log-softmax run on tiles of 4,096 tokens x 32,768 vocabulary entries in bf16
  (``TOKEN_CHUNK_SIZE``, ``_CHUNKED_LOGPROB_CHUNK_SIZE``), folded into per-token statistics; backward
  recomputes each tile and accumulates the hidden states' gradient in fp32 (the head's too where it
  trains). No logits are held for the step;
- no ``prepare_model_for_kbit_training``: a 4-bit base keeps its embeddings, norms and head in bf16,
  and the adapters over it are cast to bf16 (``param.data.to(torch.bfloat16)``, the QLoRA paper's
  choice), so their gradients and AdamW states are bf16 too;
- LoRA over a bf16 base keeps peft's fp32 adapters;
- gradients accumulate in ``param.grad`` across micro-batches.
Time: its LoRA steps are the loop's on the same shape (Llama-3.2-1B, Llama-3.2-3B and Llama-3.1-8B at 4 x 2,048,
checkpointed: within 2%), but over a 4-bit base, without k-bit preparation and with bf16 adapters, its kernels take
0.79 of the loop's time (``trl_kbit_step``).

With Liger (``use_liger_kernel=True``) TRL applies Liger's layer kernels only
(``fused_linear_cross_entropy=False``): the fused head stays TRL's.
"""

from . import Trainer, register

TRAINER = register(
    Trainer(
        name="trl",
        label="TRL SFTTrainer",
        summary="TRL's SFTTrainer (fused LM head, no k-bit preparation): what --emit trl writes",
        loss="chunked",
        chunk_tokens=4096,
        chunk_vocab=32768,
        kbit_prepare=False,
        # the fused head (python benchmarks/fit_trainers.py --fit): bytes per hidden value and per token each
        # labelled token holds for backward (its gathered final hidden state in bf16; its target,
        # log-normaliser and entropy), and bytes per hidden value per token of the hidden states' gradient that
        # backward accumulates in fp32 and casts back; and bytes per hidden value per token per layer a
        # checkpointed step keeps beyond the loop's (fitted on one GPU; its cause is not isolated: the hf trainer's
        # checkpointed runs need none, and under FSDP2 and FSDP1, whose allocator traces hold each checkpointed input at
        # 2 B a hidden value and nothing per layer beside it, it is not counted: Strategy.trainer_gc_excess). And
        # bytes per value of down_proj's adapted input that a recomputed layer's backward holds under LoRA beyond
        # the loop's recompute term (fitted on the TRL LoRA runs'
        # fitted part: their worst under-estimate, long micro-batches of 32k tokens with checkpointing, went
        # from -18.5% to -10.8%; the allocator trace of Gemma-3-1B's shows two fp32 blocks that wide)
        constants=(
            ("chunk_saved_h", 2.0),
            ("chunk_saved_tok", 0.0),
            ("chunk_bwd_h", 16.0),
            ("fused_head_gc_h", 0.5),
            ("lora_gc_down_in", 4.0),
            # a 4-bit base's step: its GPU time against the probe loop's, on which QLoRA's utilisation was fitted (the loop
            # runs k-bit preparation and fp32 adapters; TRL neither). Fitted on its dense QLoRA runs timed alone, its
            # timing grid and held-out fifth left out (python benchmarks/fit_trainers.py --kbit: 3 runs, -18% to +4%
            # -> -10% to +8%); the timing grid's two went from -15% and -16% to +1% and +0.5%, Phi-3-mini's held out
            # from -17% to +5%, Gemma-3-4B's from +4% to +25% (Gemma 3's runs are all fast in the model)
            ("trl_kbit_step", 0.79),
        ),
        quantized_adapter_bytes=2.0,
        emit="trl",
        # SFTConfig(packing=True): best-fit decreasing into rows of max_length, collated padding-free (one flattened
        # sequence a micro-batch, position ids restarting at each example); transformers 5.17 derives a block-diagonal
        # causal mask from the position ids for sdpa and eager (masking_utils.find_packed_sequence_indices, with
        # use_cache off, which TRL's compute_loss sets): exact, checked on the CPU against each example alone.
        # Padding-free collation without packing (SFTConfig(padding_free=True) alone) is not offered: trl 1.16
        # refuses it while max_length is set (sft_trainer.py, SFTTrainer.__init__: "When `padding_free=True` without
        # packing, `max_length` is not enforced"), so its examples would train uncut, longer than any --seq-len a
        # plan is sized for. Packing is TRL's padding-free collation that cuts at max_length.
        packs="SFTConfig(packing=True): best-fit decreasing, padding-free",
        refuses=(
            (
                "llama4_text",
                "its fused LM head stops in the first step on Llama 4's text model ('CausalLMOutputWithPast' object has no "
                "attribute 'last_hidden_state', trl 1.16, measured); use --trainer hf",
            ),
        ),
        versions="trl 1.16, transformers 5.17, peft 0.21, torch 2.11, bitsandbytes 0.50",
        basis="measured: the emitted TRL script run unmodified on an H100 (data/trainers/), its chunked-loss terms fitted "
        "on four fifths of the runs and checked on the fifth held out (docs/accuracy.md)",
    )
)
