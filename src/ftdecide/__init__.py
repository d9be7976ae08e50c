"""ftdecide: decide how to fine-tune a language model, and why."""

__version__ = "0.1.0"
