"""The one error type for bad input, and the helper that keeps any text on one line.

``InputError`` is structured, like yamllint's ``LintProblem``: what is wrong (``message``) and, for
files, where (``path``, ``line``, ``column``, 1-based). Its text is ``path:line:column: message``.
The command line's single boundary (``ftdecide.cli.main``) turns it into one line on stderr and exit 2;
any other exception is a bug of ftdecide, reported as such with its own exit code. Core modules say what
is wrong with a value in the user's terms (``seq_len``, ``LoRA rank``), never a command-line flag.
"""

from __future__ import annotations

import math
from typing import Optional


class InputError(Exception):
    """Bad input: an unknown name, an impossible number, a broken file."""

    def __init__(self, message: str, path: Optional[str] = None, line: Optional[int] = None, column: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line
        self.column = column

    def at(self, path: Optional[str] = None, line: Optional[int] = None, column: Optional[int] = None, prefix: str = "") -> "InputError":
        """The same error placed in a file (what is already known is kept) and optionally prefixed."""
        return InputError(prefix + self.message, self.path or path, self.line or line, self.column or column)

    @property
    def where(self) -> str:
        parts = [p for p in (self.path, self.line, self.column) if p is not None]
        return ":".join(str(p) for p in parts)

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


def flag(value, name: str, default: bool = False) -> bool:
    """A boolean read from a file: JSON's ``true``/``false`` only (``None``: ``default``). ``bool()`` would
    take the string "false" as true; anything but a boolean is a ValueError naming the field."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise ValueError(f"'{name}' must be true or false, got {preview(value)}")


def one_line(text: str) -> str:
    """``text`` on one line: line breaks become spaces and other control characters (which user input
    may carry into a message or a generated file) are escaped, so nothing can start a new line."""
    flat = " ".join(text.splitlines())
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in flat).strip()


def preview(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for echoing user data in a message: the value may be
    a long string or a large structure (which is never walked past what the cut needs, for strings)."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]
    elif not isinstance(value, (str, int, float, bool, type(None))):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def error_message(err: dict) -> str:
    """What one pydantic error says, as ftdecide says it: "unknown field" for a key the model forbids, a
    validator's own message without pydantic's "Value error, " prefix, pydantic's message otherwise."""
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return err["msg"].removeprefix("Value error, ")


def validation_problem(e, dashes: bool = False) -> str:
    """``field: message`` of the first error of a pydantic ``ValidationError`` (nested fields joined with
    dots; ``dashes``: written as command-line options are, ``seq-len``), or the message alone where no
    field applies."""
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    if dashes:
        where = where.replace("_", "-")
    msg = error_message(err)
    return f"{where}: {msg}" if where else msg


def finite(value):
    """``value``, or ValueError when it is a float NaN or infinity (typer's float parsing and YAML both
    accept them): the one check, for pydantic validators (which turn the ValueError into a
    ValidationError naming the field) and for :func:`require_finite`."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def require_finite(name: str, value) -> None:
    """InputError naming ``name`` when ``value`` is a float NaN or infinity."""
    try:
        finite(value)
    except ValueError as e:
        raise InputError(f"{name}: {e}") from None
