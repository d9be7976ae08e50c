"""Read untrusted YAML and JSON files safely, with line numbers for error messages.

Every failure is an :class:`~ftdecide.core.errors.InputError` whose message starts with ``file:line:column``
(or ``file:`` when no position applies): a missing, unreadable or oversized file, bytes that are not
UTF-8, invalid syntax, Python tags (only the safe loader is used, so ``!!python/object`` is refused,
never run), alias bombs (more than :data:`MAX_ALIASES` aliases, or a document that aliases expand to
more than :data:`MAX_EXPANDED_NODES` nodes: nine levels of ten aliases are 90 aliases and 10^9 nodes),
duplicate keys, nesting deeper than :data:`MAX_DEPTH`, or a path that is not a regular file (a FIFO or a
device would block or never end).
"""

from __future__ import annotations

import json
import os

import yaml

from ..core.errors import InputError

MAX_BYTES = 1024 * 1024
MAX_ALIASES = 100
MAX_DEPTH = 64
# Nodes a document may hold once every alias is expanded: a rule file of a few hundred rules has a few
# thousand; anything that walks the data (validation, str(), repr()) walks the expanded tree.
MAX_EXPANDED_NODES = 100_000
BATCH_MAX_NODES = 1_000_000  # scenarios files: 10,000 scenarios of a few dozen fields, still under 1 MiB

try:  # the C loader is several times faster and just as safe
    _Base = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - pure-Python PyYAML
    _Base = yaml.SafeLoader


class LineDict(dict):
    """A mapping that remembers the 1-based line of itself and of each key."""

    line: int = 0
    key_lines: dict
    # (line, column) where each key's value starts, both 1-based, with the column moved past an opening
    # quote: where the text of a one-line condition begins, so errors inside it point into the file.
    value_pos: dict


def read_text(path: str, what: str = "file") -> str:
    """The UTF-8 text of ``path``, or an InputError naming why it cannot be read."""
    try:
        st = regular_file(path, what)
        if st.st_size > MAX_BYTES:
            raise InputError(f"{what} is {st.st_size} bytes; the limit is {MAX_BYTES} (1 MiB)", path)
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:  # it grew since the stat
            raise InputError(f"{what} is over the limit of {MAX_BYTES} bytes (1 MiB)", path)
    except OSError as e:  # opened after the stat: the file may have gone or be unreadable
        raise _os_error(e, path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte 0x{raw[e.start]:02x})", path, line) from None
    if not text.strip():
        raise InputError(f"{what} is empty", path)
    return text


def _os_error(e: OSError, path: str) -> InputError:
    if isinstance(e, FileNotFoundError):
        return InputError("no such file", path)
    if isinstance(e, PermissionError):
        return InputError("permission denied", path)
    return InputError(f"cannot read ({e.strerror or e})", path)


def regular_file(path: str, what: str = "file") -> os.stat_result:
    """``os.stat`` of ``path`` when it is a regular file (links followed); InputError otherwise, before
    anything opens it: reading a FIFO blocks until a writer comes, a device may never end."""
    import stat

    try:
        st = os.stat(path)
    except ValueError:  # a NUL byte in the path
        raise InputError("the path holds a NUL byte", path) from None
    except OSError as e:
        raise _os_error(e, path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"is a directory, not a {what}", path)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"is not a regular file (a pipe, socket or device), not a {what}", path)
    return st


class _Loader(_Base):  # type: ignore[misc, valid-type]
    pass


def _mark(node) -> str:
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _construct_mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    out.value_pos = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "unhashable key", key_node.start_mark) from None
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
        quoted = 1 if getattr(value_node, "style", None) in ("'", '"') else 0
        out.value_pos[key] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1 + quoted)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# Python refuses to convert integers of more than 4,300 digits (a ValueError, not a YAML error); no number
# ftdecide reads needs more than a few dozen, so a longer one is named where it stands.
MAX_DIGITS = 100


def _construct_int(loader, node):
    if len(str(node.value)) > MAX_DIGITS:
        raise yaml.constructor.ConstructorError(None, None, f"a number of {len(str(node.value)):,} characters: too long", node.start_mark)
    return _Base.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _check_events(text: str, path: str, max_nodes: int = MAX_EXPANDED_NODES) -> None:
    """Refuse alias bombs and deep nesting before anything is constructed. The expanded size is counted
    from the events: each anchor remembers how many nodes its value expands to, and each alias adds that
    many, so the count is the size of the tree the loader would hand over."""
    aliases = 0
    sizes: dict[str, int] = {}  # anchor -> expanded nodes
    open_nodes: list[list] = []  # [anchor, expanded nodes so far] of each open collection
    total = 0
    # what aliases add is held to MAX_EXPANDED_NODES whatever the file's own limit (``max_nodes``, larger
    # for batch files of many scenarios written out): a bomb is caught as early in every file
    by_alias = 0

    def add(n: int, mark, alias: bool = False) -> None:
        nonlocal total, by_alias
        total += n
        by_alias += n if alias else 0
        if open_nodes:
            open_nodes[-1][1] += n
        if by_alias > MAX_EXPANDED_NODES:
            raise InputError(
                f"expands to more than {MAX_EXPANDED_NODES:,} nodes through its aliases (alias bomb?)", path, mark.line + 1, mark.column + 1
            )
        if total > max_nodes:
            raise InputError(f"more than {max_nodes:,} values: too large for a file ftdecide reads", path, mark.line + 1, mark.column + 1)

    for ev in yaml.parse(text, Loader=_Base):
        m = ev.start_mark
        if isinstance(ev, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise InputError(f"more than {MAX_ALIASES} YAML aliases (alias bomb?)", path, m.line + 1, m.column + 1)
            add(sizes.get(ev.anchor, 1), m, alias=True)
        elif isinstance(ev, yaml.ScalarEvent):
            if ev.anchor:
                sizes[ev.anchor] = 1
            add(1, m)
        elif isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(open_nodes) >= MAX_DEPTH:
                raise InputError(f"nested deeper than {MAX_DEPTH} levels", path, m.line + 1, m.column + 1)
            add(1, m)
            open_nodes.append([ev.anchor, 1])
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, n = open_nodes.pop()
            if anchor:
                sizes[anchor] = n
            if open_nodes:
                open_nodes[-1][1] += n


def parse_yaml(text: str, path: str, max_nodes: int = MAX_EXPANDED_NODES):
    """Parse YAML text from ``path`` (used in messages) with the safe loader."""
    try:
        _check_events(text, path, max_nodes)
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except InputError:
        raise
    except yaml.MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        line, col = (m.line + 1, m.column + 1) if m else (1, 1)
        what = e.problem or e.context or "invalid YAML"
        if "python/" in str(what) or "could not determine a constructor" in str(what):
            what = f"{what} (Python tags are not allowed)"
        raise InputError(str(what), path, line, col) from None
    except yaml.YAMLError as e:
        raise InputError(f"invalid YAML ({e})", path) from None
    except RecursionError:
        raise InputError("nested too deeply", path) from None


def load_yaml(path: str, what: str = "YAML file", max_nodes: int = MAX_EXPANDED_NODES):
    """Read and parse a YAML file (see module docstring for what is refused); ``max_nodes``: the most
    values it may expand to (a batch file of 10,000 scenarios holds several hundred thousand)."""
    return parse_yaml(read_text(path, what), path, max_nodes)


def load_package_yaml(path: str):
    """Parse a YAML file that ships inside ftdecide (the catalogs): plain C safe loader, no line
    tracking. Never for user files: it has no alias or depth limits."""
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Base)  # noqa: S506 - _Base is the (C)SafeLoader


def load_json(path: str, what: str = "JSON file"):
    """Read and parse a JSON file; errors name ``file:line:column``."""
    text = read_text(path, what)

    def _no_dupes(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise InputError(f"duplicate key '{k}'", path)
            d[k] = v
        return d

    return parse_json(text, path, _no_dupes)


class _BadNumber(Exception):
    def __init__(self, message: str, needle: str):
        super().__init__(message)
        self.needle = needle


def parse_json(text: str, path: str, object_pairs_hook=None, line: int | None = None):
    """Parse JSON ``text`` from ``path``: standard JSON only (no NaN or Infinity) and no integer longer than
    :data:`MAX_DIGITS`; errors name ``file:line:column`` (``line``: the line of a JSON-lines file)."""

    def too_long(s: str):
        if len(s) > MAX_DIGITS:
            raise _BadNumber(f"a number of {len(s):,} digits: too long", s[: MAX_DIGITS + 1])
        return int(s)

    def finite(s: str):
        if len(s) > MAX_DIGITS:
            raise _BadNumber(f"a number of {len(s):,} characters: too long", s[: MAX_DIGITS + 1])
        v = float(s)
        if v in (float("inf"), float("-inf")):
            raise _BadNumber(f"{s} is too large for a number", s)
        return v

    def constant(s: str):
        raise _BadNumber(f"{s} is not a JSON number", s)

    def where(msg: str, needle: str):
        import re

        i = text.find(needle) if needle else -1
        ln = text.count("\n", 0, i) + 1 if i >= 0 else 1
        col = i - text.rfind("\n", 0, i) if i >= 0 else 1
        key = re.search(r'"([^"\\]{1,100})"\s*:\s*$', text[max(0, i - 200) : i]) if i >= 0 else None
        return InputError(f"{key.group(1)}: {msg}" if key else msg, path, line or ln, col)

    try:
        return json.loads(text, object_pairs_hook=object_pairs_hook, parse_int=too_long, parse_float=finite, parse_constant=constant)
    except _BadNumber as e:
        raise where(str(e), e.needle) from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON ({e.msg})", path, e.lineno, e.colno) from None
    except RecursionError:
        raise InputError("nested too deeply", path) from None
