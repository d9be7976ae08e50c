"""What prompt and prefix tuning share: one fp32 embedding of ``virtual_tokens`` rows, peft's config of
``num_virtual_tokens``, the plan's ``virtual_tokens`` setting. Not a method itself (no ``register``)."""

from __future__ import annotations

from . import Method
from .options import Option

# Prompt and prefix tuning's soft tokens when not given: the framework document in shared/seeds puts
# prefix lengths at 10-50; peft's examples use 20 (num_virtual_tokens=20). Probe records call it vt.
VIRTUAL_TOKENS = Option(
    "virtual_tokens",
    int,
    20,
    "virtual tokens",
    bounds=(("gt", 0), ("le", 65536)),
    scenario_bounds=(("ge", 1), ("le", 65536)),
    record_key="vt",
    in_scenario=True,
    not_above=("seq_len", "{v} virtual tokens is more than the sequence ({limit} tokens)"),
)


class SoftTokens(Method):
    def width(self, arch) -> int:
        """Values per virtual token in the trained embedding."""
        raise NotImplementedError

    def adapter_params(self, arch, cfg, mods) -> int:
        return cfg.virtual_tokens * self.width(arch)

    def packing_problem(self):
        # peft puts the virtual tokens (or keys) before each row, not before each packed example, and passes past
        # key values, with which transformers derives no packed mask: the examples of a row would see each other
        return f"{self.label} puts its virtual tokens before each row, not each packed example"

    def trainable_matrices(self, arch, cfg, mods):
        return [(cfg.virtual_tokens, self.width(arch), 1)]

    def trainable_tensors(self, arch, mods) -> int:
        return 1

    def settings(self, arch, cfg) -> dict:
        return {"virtual_tokens": cfg.virtual_tokens}

    def peft_config(self, arch, cfg):
        import peft

        return getattr(peft, self.emit_keys.peft_class)(task_type="CAUSAL_LM", num_virtual_tokens=cfg.virtual_tokens)
