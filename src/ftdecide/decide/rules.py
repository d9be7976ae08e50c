"""Rules as data: YAML files validated by pydantic, conditions in :mod:`ftdecide.decide.expr`.

A rule file::

    version: 1
    disable: [prefer-lora-default]      # optional: ids of rules (from earlier files) to switch off
    rules:
      - id: math-rank-64
        description: Reasoning benefits from capacity.
        when: task == "math"
        priority: 30                     # higher wins where rules set the same thing
        prefer: lora                     # a method of 'ftdecide rules schema' (full, lora, qlora, ...)
        forbid: [full]                   # methods ruled out
        set: {rank: 64}                  # rank, alpha, targets, dropout, lora_learning_rate,
                                         # full_learning_rate, epochs
        warn: "..."                      # a warning shown with the recommendation
        note: "..."                      # a reason shown with the recommendation

Messages may quote the context: ``{memory.full:.1f}``. Files given with ``--rules`` extend the defaults;
a rule whose id exists already replaces it. Rules cannot refer to other rules, so there are no cycles.

Evaluation: every rule whose condition holds "fires". Forbids add up. Among the methods that fit and are
not forbidden, the one preferred by the highest-priority firing rule wins (ties: the later rule).
``set`` values are applied in ascending priority, so the highest priority wins; two firing rules of the
same priority that set one key to different values are reported as a conflict warning.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import expr
from .. import methods
from ..core.errors import InputError, error_message, preview
from .results import Message
from ..files.yamlio import LineDict, load_yaml


def _method_name(v: Any) -> Any:
    if isinstance(v, str) and v not in methods.names():
        raise ValueError(f"unknown method {preview(v)} (choose from {', '.join(methods.names())})")
    return v


_MODULE = __import__("re").compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _targets_spec(v: Optional[str]) -> Optional[str]:
    """A LoRA target set (all-linear, attn, mlp, qv) or a comma-separated list of module names, checked
    where the file is read; whether the model has those modules is known only once a model is given."""
    from ..core.arch import TARGET_SETS

    if v is None or v.strip() in TARGET_SETS or v.strip() in ("all_linear", "all"):
        return v
    parts = [t.strip() for t in v.split(",")]
    # all-linear may head a list ("all-linear,experts": peft's all-linear and the fused experts)
    bad = [t for t in parts if not _MODULE.match(t) and t not in ("all-linear", "all_linear")]
    if bad or not parts:
        raise ValueError(
            f"{preview(v)} is not a target set ({', '.join(TARGET_SETS)}) or a comma-separated list of module names "
            f"(not a name: {preview(bad[0] if bad else v)})"
        )
    return v


class SetEffect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rank: Optional[int] = Field(None, gt=0, le=4096)
    alpha: Optional[int] = Field(None, gt=0, le=16384)
    targets: Optional[str] = Field(None, min_length=1)
    dropout: Optional[float] = Field(None, ge=0, lt=1)
    lora_learning_rate: Optional[float] = Field(None, gt=0, lt=1)
    full_learning_rate: Optional[float] = Field(None, gt=0, lt=1)
    ia3_learning_rate: Optional[float] = Field(None, gt=0, lt=1)
    prompt_learning_rate: Optional[float] = Field(None, gt=0, lt=1)
    prefix_learning_rate: Optional[float] = Field(None, gt=0, lt=1)
    adapter_learning_rate: Optional[float] = Field(None, gt=0, lt=1)
    epochs: Optional[int] = Field(None, gt=0, le=100)
    # share of each GPU's memory a plan leaves free (another driver, torch version or process)
    safety_margin: Optional[float] = Field(None, ge=0, lt=0.5)

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: Optional[str]) -> Optional[str]:
        return _targets_spec(v)


class Rule(BaseModel):
    """One rule of a rule file."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str = ""
    when: str
    priority: int = Field(0, ge=-1000, le=1000)
    prefer: Optional[str] = None
    forbid: list[str] = []
    set: SetEffect = SetEffect()
    warn: Optional[str] = None
    note: Optional[str] = None
    # the methods whose plans its note and warning are about (empty: any plan): said only with those
    about: list[str] = []
    enabled: bool = True

    @field_validator("prefer")
    @classmethod
    def _prefer_known(cls, v: Optional[str]) -> Optional[str]:
        return _method_name(v)

    @field_validator("forbid", "about")
    @classmethod
    def _forbid_known(cls, v: list[str]) -> list[str]:
        for m in v:
            _method_name(m)
        return v

    @field_validator("when", mode="before")
    @classmethod
    def _when_text(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return "true" if v else "false"
        return v


class RuleFile(BaseModel):
    # The schema of a whole file, for 'ftdecide rules schema'; files are checked piece by piece by
    # check_data, so that every problem gets its own line. (A docstring would become the schema's
    # description.)
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    disable: list[str] = []
    rules: list[Rule] = []


@dataclass
class Problem:
    """A finding of ``rules check``: where, what, which rule (like yamllint's LintProblem)."""

    path: str
    line: int
    column: int
    message: str
    rule: str = ""

    def __str__(self) -> str:
        rid = f" [{self.rule}]" if self.rule else ""
        return f"{self.path}:{self.line}:{self.column}: {self.message}{rid}"


@dataclass
class LoadedRule:
    rule: Rule
    tree: Any
    path: str
    line: int


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, in order (later files' rules after, replacing same ids)."""

    rules: tuple[LoadedRule, ...] = ()


def _line_of(node: Any, key: Any = None) -> int:
    if isinstance(node, LineDict):
        if key is not None and key in node.key_lines:
            return node.key_lines[key]
        return node.line
    return 1


def check_data(data: Any, path: str, schema: dict[str, str]) -> tuple[list[Problem], list[LoadedRule], list[str]]:
    """Validate parsed YAML: (every problem found, the rules that loaded cleanly, the ids to disable)."""
    problems: list[Problem] = []
    if not isinstance(data, dict):
        return [Problem(path, 1, 1, "a rule file is a mapping with 'rules:' (and optional 'version:', 'disable:')")], [], []
    top_unknown = [k for k in data if k not in ("version", "disable", "rules")]
    for k in top_unknown:
        problems.append(Problem(path, _line_of(data, k), 1, f"unknown field {preview(k)} (allowed: version, disable, rules)"))
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        problems.append(Problem(path, _line_of(data, "rules"), 1, "'rules' must be a list"))
        raw_rules = []
    if data.get("version", 1) != 1:
        problems.append(Problem(path, _line_of(data, "version"), 1, f"unsupported version {preview(data.get('version'))} (expected 1)"))
    disable = data.get("disable", [])
    if not isinstance(disable, list) or not all(isinstance(x, str) for x in disable):
        problems.append(Problem(path, _line_of(data, "disable"), 1, "'disable' must be a list of rule ids"))
        disable = []
    loaded: list[LoadedRule] = []
    seen: dict[str, int] = {}
    for raw in raw_rules:
        line = _line_of(raw)
        rid = raw.get("id", "") if isinstance(raw, dict) else ""
        rid = rid if isinstance(rid, str) else ""
        if not isinstance(raw, dict):
            problems.append(Problem(path, line, 1, "each rule must be a mapping"))
            continue
        try:
            rule = Rule.model_validate(dict(raw))
        except ValidationError as e:
            for err in e.errors():
                loc = err["loc"]
                key = loc[0] if loc else None
                where = ".".join(str(x) for x in loc)
                msg = error_message(err)
                problems.append(Problem(path, _line_of(raw, key), 1, f"{where}: {msg}", rid))
            continue
        if rule.id in seen:
            problems.append(Problem(path, line, 1, f"duplicate rule id (first at line {seen[rule.id]})", rule.id))
        seen[rule.id] = line
        if rule.prefer and rule.prefer in rule.forbid:
            problems.append(Problem(path, _line_of(raw, "forbid"), 1, f"conflicting effects: prefers and forbids '{rule.prefer}'", rule.id))
        for text in (rule.warn, rule.note):
            for bad in _template_names(text) - set(schema):
                problems.append(Problem(path, line, 1, f"unknown name '{bad}' in message", rule.id))
            for spec in _bad_specs(text):
                problems.append(
                    Problem(path, line, 1, f"unsupported format '{spec}' in message (width and precision up to 2 digits; no 'c')", rule.id)
                )
        wline, wcol = _line_of(raw, "when"), 1
        pos = getattr(raw, "value_pos", {}).get("when")
        if pos and isinstance(raw.get("when"), str) and "\n" not in raw["when"] and pos[0] == wline:
            wcol = pos[1]  # a one-line condition: its columns map onto the file's
        try:
            tree = expr.parse(rule.when, schema)
        except expr.ExprError as e:
            problems.append(Problem(path, wline, wcol + e.col - 1, f"when: {e}", rule.id))
            continue
        loaded.append(LoadedRule(rule, tree, path, line))
    return problems, loaded, disable


_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?::([^{}]*))?\}")
# A format spec as messages need it ("{cost.full:,.0f}"), with width and precision of at most two
# digits: "{x:999999999}" would otherwise build a gigabyte string.
# No 'c' (a number as a character: overflows above 0x10FFFF and makes lone surrogates below it).
_SPEC = re.compile(r"^(?:.?[<>^=])?[+\- ]?#?0?\d{0,2}[,_]?(?:\.\d{1,2})?[bdeEfFgGnosxX%]?$")


def _bad_specs(text: Optional[str]) -> list[str]:
    return [m.group(2) for m in _TEMPLATE.finditer(text or "") if m.group(2) and not _SPEC.match(m.group(2))]


def _template_names(text: Optional[str]) -> set[str]:
    return {m.group(1) for m in _TEMPLATE.finditer(text or "")}


def render_message(text: str, env: dict[str, Any]) -> str:
    """Fill ``{name}`` / ``{name:spec}`` placeholders from ``env`` (no attribute or index access)."""

    def sub(m: re.Match) -> str:
        v = env.get(m.group(1))
        if v is None or (m.group(2) and not _SPEC.match(m.group(2))):
            return m.group(0)
        try:
            return format(v, m.group(2) or "")
        except (ValueError, TypeError, OverflowError):
            return str(v)

    return _TEMPLATE.sub(sub, text)


def check_file(path: str, schema: dict[str, str]) -> list[Problem]:
    """Every problem of a rule file (``ftdecide rules check``). File-level errors come as one problem."""
    try:
        data = load_yaml(path, "rule file")
    except InputError as e:
        return [Problem(path, e.line or 1, e.column or 1, e.message)]
    return check_data(data, path, schema)[0]


def _file_key(path: str) -> tuple:
    try:
        st = os.stat(path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return ()  # load_yaml reports the file's problem


@lru_cache(maxsize=64)
def _load_file(path: str, key: tuple, schema: tuple[tuple[str, str], ...]) -> tuple[tuple[LoadedRule, ...], tuple[str, ...]]:
    data = load_yaml(path, "rule file")
    problems, loaded, disable = check_data(data, path, dict(schema))
    if problems:
        extra = f" (and {len(problems) - 1} more; run 'ftdecide rules check {path}')" if len(problems) > 1 else ""
        p = problems[0]
        rid = f" [{p.rule}]" if p.rule else ""
        raise InputError(f"{p.message}{rid}{extra}", p.path, p.line, p.column)
    return tuple(loaded), tuple(disable)


def load_rules(paths: list[str], schema: dict[str, str]) -> RuleSet:
    """Load rule files in order (later files extend and override earlier ones); the first problem
    becomes an InputError with file:line:column. A file is parsed once per process while it is
    unchanged (``batch`` runs many scenarios over the same rules)."""
    by_id: dict[str, LoadedRule] = {}
    frozen_schema = tuple(sorted(schema.items()))
    for path in paths:
        loaded, disable = _load_file(path, _file_key(path), frozen_schema)
        for rid in disable:
            by_id.pop(rid, None)
        for lr in loaded:
            by_id.pop(lr.rule.id, None)  # replacing keeps the new file position
            by_id[lr.rule.id] = lr
    return RuleSet(tuple(lr for lr in by_id.values() if lr.rule.enabled))


@dataclass
class Outcome:
    """What the rules decided for one scenario."""

    fired: list[LoadedRule]
    forbidden: set[str]
    preferences: list[tuple[int, int, str, str]]  # (priority, order, method, rule id)
    settings: dict[str, Any]
    setting_rule: dict[str, str]
    warnings: list[Message]
    notes: list[Message]


def evaluate(rs: RuleSet, env: dict[str, Any]) -> Outcome:
    """Fire every rule whose condition holds in ``env``; InputError names a rule whose condition fails
    at evaluation (division by zero)."""
    fired: list[LoadedRule] = []
    for lr in rs.rules:
        try:
            if expr.evaluate(lr.tree, env):
                fired.append(lr)
        except expr.ExprError as e:
            raise InputError(f"{lr.path}:{lr.line}:{e.col}: rule '{lr.rule.id}': {e}") from None
    order = {id(lr): i for i, lr in enumerate(fired)}
    forbidden: set[str] = set()
    prefs = []
    settings: dict[str, Any] = {}
    setting_rule: dict[str, str] = {}
    setting_prio: dict[str, int] = {}
    warnings, notes = [], []
    for lr in sorted(fired, key=lambda r: (r.rule.priority, order[id(r)])):
        r = lr.rule
        forbidden.update(r.forbid)
        if r.prefer:
            prefs.append((r.priority, order[id(lr)], r.prefer, r.id))
        for k, v in r.set.model_dump(exclude_none=True).items():
            if k in settings and setting_prio[k] == r.priority and settings[k] != v:
                warnings.append(
                    Message(
                        r.id,
                        f"conflicting effects: '{setting_rule[k]}' and '{r.id}' (same priority {r.priority}) "
                        f"set {k} to {settings[k]} and {v}; {v} was used",
                    )
                )
            settings[k], setting_rule[k], setting_prio[k] = v, r.id, r.priority
        if r.warn:
            warnings.append(Message(r.id, render_message(r.warn, env)))
        if r.note:
            notes.append(Message(r.id, render_message(r.note, env)))
    return Outcome(fired, forbidden, prefs, settings, setting_rule, warnings, notes)


def json_schema(names: dict[str, str]) -> dict:
    """The JSON Schema of a rule file, from the pydantic models, with the names a condition may read
    listed in the description of ``when`` (``ftdecide rules schema``)."""
    schema = RuleFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ftdecide rule file"
    rule = schema["$defs"]["Rule"]["properties"]
    listing = ", ".join(f"{k} ({v})" for k, v in sorted(names.items()))
    rule["when"]["description"] = (
        f"A condition in ftdecide's expression language (comparisons, and/or/not, in [...], + - * / // %, min/max/abs) over: {listing}"
    )
    # The method names come from the registry, not from a Literal, so the enums are written here.
    rule["prefer"]["anyOf"][0] = {"enum": list(methods.names()), **rule["prefer"]["anyOf"][0]}
    rule["forbid"]["items"] = {"enum": list(methods.names()), **rule["forbid"]["items"]}
    rule["prefer"]["description"] = "the method this rule prefers when it fires"
    rule["forbid"]["description"] = "methods ruled out when this rule fires"
    rule["priority"]["description"] = "higher wins where rules prefer or set the same thing"
    return schema
