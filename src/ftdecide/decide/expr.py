"""The small, safe expression language of rule conditions.

Grammar (a subset of Python's expression syntax)::

    task == "math" and dataset_size >= 1_000_000
    fits.full and quality == "best"
    not fits.lora and cost.qlora <= budget * 0.5
    task in ["chat", "instruction"]  and  min(epochs, 3) > 1

Literals (numbers, strings, true/false), names, dotted names declared in the schema (``fits.full`` is one
name, not attribute access), comparisons (chains too), ``and``/``or``/``not``, ``in``/``not in`` over a
list literal, ``+ - * / // %``, unary minus, and the calls ``min``, ``max``, ``abs``.

Why Python's own ``ast`` parser behind a whitelist of node types: it costs nothing to import (the
parser is built in), while cel-python adds ~100 ms of import and ~180 ms per compiled expression and
rule-engine ~500 ms, which would double ``recommend``'s start-up. Nothing is ever passed to ``eval`` or
``exec``: the tree is walked by :func:`evaluate`, which knows only the nodes above. Conditions are
limited to :data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels of nesting, and every error names
its column in the condition.
"""

from __future__ import annotations

import ast
import math
import warnings
from typing import Any, Mapping

MAX_LENGTH = 2000
MAX_DEPTH = 32

NUM, STR, BOOL, LIST = "number", "string", "bool", "list"

_CMP = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}
_ARITH = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)
_CALLS = {"min": min, "max": max, "abs": abs}
_CONSTS = {"true": True, "false": False, "True": True, "False": False}


class ExprError(ValueError):
    """An error in a condition; ``col`` is its 1-based column."""

    def __init__(self, message: str, col: int = 1):
        super().__init__(message)
        self.col = col


def _col(node: ast.AST) -> int:
    return getattr(node, "col_offset", 0) + 1


def _show(node: ast.AST, limit: int = 60) -> str:
    """Source text of ``node`` for a message, cut to ``limit`` characters. ``ast.unparse`` recurses once
    per level and more, so a deep node (hundreds of nested ``not``) is named by its type instead."""
    try:
        text = ast.unparse(node)
    except (RecursionError, ValueError):
        return f"<{type(node).__name__.lower()} expression>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def parse(text: str, schema: Mapping[str, str]) -> ast.Expression:
    """Parse and type-check a condition against ``schema`` ({name: type}); it must be a bool."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("empty condition")
    if len(text) > MAX_LENGTH:
        raise ExprError(f"condition longer than {MAX_LENGTH} characters")
    if "\x00" in text:
        raise ExprError("condition contains a NUL character")
    try:
        with warnings.catch_warnings():  # Python's SyntaxWarnings ("invalid decimal literal") must not reach stderr
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"syntax error: {e.msg}", e.offset or 1) from None
    except (RecursionError, MemoryError):
        raise ExprError("condition too deeply nested") from None
    kind = _check(tree.body, schema, 0)
    if kind != BOOL:
        raise ExprError(f"condition must be true or false, not a {kind}", _col(tree.body))
    return tree


def _check(node: ast.AST, schema: Mapping[str, str], depth: int) -> str:
    """Static type of ``node``; raises ExprError for anything outside the language."""
    if depth > MAX_DEPTH:
        raise ExprError(f"condition nested deeper than {MAX_DEPTH} levels", _col(node))
    d = depth + 1
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            return BOOL
        if isinstance(v, (int, float)):
            return NUM
        if isinstance(v, str):
            return STR
        raise ExprError(f"unsupported literal {v!r}", _col(node))
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        if name in _CONSTS:
            return BOOL
        if name is None or name not in schema:
            known = ", ".join(sorted(schema))
            raise ExprError(f"unknown name '{name or _show(node)}' (known: {known})", _col(node))
        return schema[name]
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            if _check(v, schema, d) != BOOL:
                raise ExprError("'and'/'or' need true/false operands", _col(v))
        return BOOL
    if isinstance(node, ast.UnaryOp):
        t = _check(node.operand, schema, d)
        if isinstance(node.op, ast.Not):
            if t != BOOL:
                raise ExprError("'not' needs a true/false operand", _col(node))
            return BOOL
        if isinstance(node.op, (ast.USub, ast.UAdd)) and t == NUM:
            return NUM
        raise ExprError("unary minus needs a number", _col(node))
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, _ARITH):
            raise ExprError(f"operator {type(node.op).__name__} is not allowed", _col(node))
        lt, rt = _check(node.left, schema, d), _check(node.right, schema, d)
        if lt != NUM or rt != NUM:
            raise ExprError(f"arithmetic needs numbers, got {lt} and {rt}", _col(node))
        return NUM
    if isinstance(node, ast.Compare):
        left = _check(node.left, schema, d)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(comp, (ast.List, ast.Tuple)):
                    raise ExprError('\'in\' needs a list literal on its right, like ["chat", "code"]', _col(comp))
                for el in comp.elts:
                    et = _check(el, schema, d)
                    if et != left:
                        raise ExprError(f"type error: {left} 'in' a list holding a {et}", _col(el))
                left_next = LIST
            elif type(op) in _CMP:
                right = _check(comp, schema, d)
                if left != right:
                    raise ExprError(f"type error: cannot compare {left} with {right}", _col(comp))
                if left in (STR, BOOL) and not isinstance(op, (ast.Eq, ast.NotEq)):
                    raise ExprError(f"type error: {left}s only compare with == and !=", _col(comp))
                left_next = right
            else:
                raise ExprError(f"operator {type(op).__name__} is not allowed", _col(comp))
            left = left_next
        return BOOL
    if isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if fname not in _CALLS or node.keywords:
            raise ExprError(f"call to '{_show(node.func)}' is not allowed (only min, max, abs)", _col(node))
        n = len(node.args)
        if (fname == "abs" and n != 1) or (fname != "abs" and n < 2):
            raise ExprError(f"{fname}() takes {'one argument' if fname == 'abs' else 'two or more arguments'}", _col(node))
        for a in node.args:
            if _check(a, schema, d) != NUM:
                raise ExprError(f"{fname}() needs numbers", _col(a))
        return NUM
    raise ExprError(f"'{_show(node)}' is not allowed in a condition", _col(node))


def evaluate(tree: ast.Expression, env: Mapping[str, Any]) -> Any:
    """Evaluate a condition parsed by :func:`parse`; ExprError on division by zero or overflow."""
    return _eval(tree.body, env)


def _eval(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        return _CONSTS[name] if name in _CONSTS else env[name]
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(_eval(v, env) for v in node.values)
        return any(_eval(v, env) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, env)
        return (not v) if isinstance(node.op, ast.Not) else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, env), _eval(node.right, env)
        try:
            if isinstance(node.op, ast.Add):
                r = a + b
            elif isinstance(node.op, ast.Sub):
                r = a - b
            elif isinstance(node.op, ast.Mult):
                r = a * b
            elif isinstance(node.op, ast.Div):
                r = a / b
            elif isinstance(node.op, ast.FloorDiv):
                r = a // b
            else:
                r = a % b
        except ZeroDivisionError:
            raise ExprError("division by zero", _col(node)) from None
        except OverflowError:
            raise ExprError("number too large", _col(node)) from None
        if isinstance(r, float) and math.isnan(r):
            raise ExprError("result is not a number", _col(node))
        return r
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)):
                items = [_eval(e, env) for e in comp.elts]
                ok = (left in items) == isinstance(op, ast.In)
                right = items
            else:
                right = _eval(comp, env)
                ok = _CMP[type(op)](left, right)
            if not ok:
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return _CALLS[node.func.id](*[_eval(a, env) for a in node.args])
    raise ExprError("unsupported expression", _col(node))  # unreachable after parse()
