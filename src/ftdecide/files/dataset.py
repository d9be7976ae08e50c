"""The user's training data, read for its example count and token lengths (``--dataset PATH``).

PATH is a JSONL file, a Parquet file, or a folder of them (``*.jsonl`` and ``*.parquet`` shards, in name order;
Parquet through pyarrow, an optional extra: ``pip install 'ftdecide[data]'``; only the formats' columns are read,
a bounded batch of rows at a time, and a row's number stands where a line's would). Each line is one example in a format the
emitters accept: ``messages`` (a list of ``{role, content}``), ``prompt``/``completion``, ``text``, or alpaca's
``instruction``/``input``/``output``. The example count is exact; the token lengths are those of a deterministic
sample of the lines (every k-th line, k chosen from the file size so that about :data:`SAMPLE_BYTES` are
tokenized; k is stated), never the whole file in memory.

Tokens are counted with the model's own ``tokenizer.json`` where the model folder holds one and the optional
``tokenizers`` package is installed (``pip install 'ftdecide[data]'``), else from characters a token: the
ratio fitted for the model's tokenizer family on English prose (``configs/tokenizers.yaml``, with its held-out
error), or :data:`CHARS_PER_TOKEN` where none was fitted, an assumption the output states either way. Chat messages
are rendered with the model's chat template where its folder has one and jinja2 is installed (:mod:`ftdecide.files.chat_template`), else add
:data:`MESSAGE_OVERHEAD` tokens each (role headers and end markers of the common chat templates), as said.

Bad data is one error naming file:line: not UTF-8, a line over :data:`MAX_LINE_BYTES`, not a JSON object, no
known format, nesting deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import os
import random
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from .chat_template import template_for
from ..core.errors import InputError, preview

SAMPLE_BYTES = 64 * 2**20  # about this much text is tokenized, whatever the file's size
MAX_LINE_BYTES = 16 * 2**20  # one example longer than this is not training data
MAX_DEPTH = 64
PACK_SAMPLE = 20_000  # lengths a packing is simulated on (the sample's, evenly spaced)
# an assumption where no tokenizer is at hand: English prose under the BPE vocabularies of Llama, Mistral and
# where the model's tokenizer is not at hand and configs/tokenizers.yaml has no fit for its tokenizer family
CHARS_PER_TOKEN = 4.0


def chars_per_token(arch=None) -> tuple[float, str]:
    """(characters a token, what that rests on) for text whose tokenizer is not at hand: the prose ratio fitted
    for the model's tokenizer family (``configs/tokenizers.yaml``: the family whose model types and vocabulary sizes
    hold the model's), with its held-out error, or the unfitted default."""
    from .catalog import config_dir
    from .yamlio import load_package_yaml

    table = load_package_yaml(str(config_dir() / "tokenizers.yaml"))
    for f in table["families"].values():
        if arch is not None and arch.family in f["model_types"] and arch.vocab_size in f["vocab_sizes"]:
            p = f["prose"]
            lo, hi = p["held_out_p5_p95_error"]
            return p["chars_per_token"], (
                f"assumed: {p['chars_per_token']:g} characters a token, fitted for {f['source']} on English prose (held out, "
                f"9 in 10 examples within {lo:+.0%} / {hi:+.0%}; code runs {f['code']['chars_per_token']:g}, markdown "
                f"{f['markdown']['chars_per_token']:g})"
            )
    d = table["default_chars_per_token"]
    return d, f"assumed: {d:g} characters a token (not fitted for this model's tokenizer)"


# tokens a chat template adds per message: a role header and an end marker (Llama 3: <|start_header_id|>role
# <|end_header_id|>\n\n ... <|eot_id|>, 5; ChatML: <|im_start|>role\n ... <|im_end|>\n, 5; Mistral's [INST] pair, 4)
MESSAGE_OVERHEAD = 5
FORMATS = ("messages", "prompt/completion", "text", "instruction/input/output")
PROMPT_COMPLETION = ("prompt", "completion")


@dataclass(frozen=True)
class DataStats:
    """What a data set holds: ``examples`` (exact), the token lengths of the sampled ones (sorted), how they were
    counted, and where from. Lengths in tokens, before any truncation."""

    path: str
    examples: int
    lengths: tuple[int, ...]
    every: int  # one line in this many was tokenized
    counted_by: str  # "tokenizer.json at ..." or the characters-per-token assumption
    exact_tokens: bool  # counted by the model's tokenizer (not assumed)
    formats: tuple[str, ...]

    def percentile(self, q: float) -> int:
        """The nearest-rank ``q`` percentile (0-100) of the sampled lengths."""
        if not self.lengths:
            return 0
        k = max(1, math.ceil(q / 100 * len(self.lengths)))
        return self.lengths[k - 1]

    def truncated_share(self, seq_len: int) -> float:
        """Share of the examples longer than ``seq_len`` tokens (cut by the trainer's max length)."""
        return sum(1 for n in self.lengths if n > seq_len) / len(self.lengths) if self.lengths else 0.0

    def suggested_seq_len(self, context: Optional[int] = None) -> int:
        """The length that covers 99% of the examples, rounded up to 256, capped at the model's context."""
        n = max(256, math.ceil(self.percentile(99) / 256) * 256)
        return min(n, context) if context else n

    def epoch_tokens(self, seq_len: int, micro_batch: int, seed: int = 0) -> tuple[float, float]:
        """(padded, packed) tokens the trainer processes for one epoch, scaled from the sample to every example:
        padded per micro-batch to its longest example (the trainers' default collation, examples shuffled),
        or packed into rows of ``seq_len`` (only the real tokens, after truncation)."""
        if not self.lengths:
            return 0.0, 0.0
        scale = self.examples / len(self.lengths)
        padded = sum(n * longest for n, longest in self._micro_batches(seq_len, micro_batch, seed))
        return padded * scale, self.packed_rows(seq_len) * seq_len

    def packed_rows(self, seq_len: int) -> int:
        """Rows of ``seq_len`` tokens every example's real tokens (after truncation) pack into, scaled from the sample."""
        if not self.lengths:
            return 0
        return math.ceil(_truncated_sum(self.lengths, seq_len) * self.examples / len(self.lengths) / seq_len)

    def _micro_batches(self, seq_len: int, micro_batch: int, seed: int) -> list[tuple[int, int]]:
        """(examples, longest) of each micro-batch of the sample: shuffled (the trainers' sampler), cut at
        ``seq_len``; the last one of an epoch may be short."""
        order = [min(n, seq_len) for n in self.lengths]
        random.Random(seed).shuffle(order)
        return [(len(c), max(c)) for c in (order[i : i + micro_batch] for i in range(0, len(order), micro_batch))]

    def micro_batches(self, seq_len: int, micro_batch: int, seed: int = 0, step: int = 64) -> dict[int, float]:
        """{padded length: micro-batches of it an epoch}: the examples shuffled, cut at ``seq_len``, grouped in
        micro-batches padded to their longest (rounded up to ``step`` tokens, as step times are), scaled from
        the sample to every example."""
        if not self.lengths:
            return {}
        scale = self.examples / len(self.lengths)
        out: dict[int, float] = {}
        for _, longest in self._micro_batches(seq_len, micro_batch, seed):
            length = min(seq_len, math.ceil(longest / step) * step)
            out[length] = out.get(length, 0.0) + scale
        return out

    def new_length_share(self, seq_len: int, micro_batch: int, seed: int = 0) -> float:
        """Share of an epoch's padded micro-batches whose length (their longest example, exact) no earlier one of
        the run had: ``sum over lengths v of 1 - (1 - p_v) ** N``, the expected count of distinct lengths among the
        epoch's ``N`` micro-batches when each is the sample's length ``v`` with its share ``p_v``, over ``N``. Later
        epochs meet lengths the first had (taken as known; runs of one epoch were measured)."""
        batches = self._micro_batches(seq_len, micro_batch, seed)
        if not batches:
            return 0.0
        return self._distinct_share([longest for _, longest in batches], max(1.0, self.examples / micro_batch))

    def packed_new_length_share(self, seq_len: int, micro_batch: int, seed: int = 0) -> float:
        """The same share for packed micro-batches: TRL packs the examples (cut at ``seq_len``) into rows best fit
        decreasing, and a padding-free micro-batch is its rows flattened into one sequence, whose length (their sum)
        varies as the rows' fill does: the expected count of distinct lengths among the epoch's micro-batches, over
        their number, from the sample packed the same way (an evenly spaced subsample of at most
        :data:`PACK_SAMPLE` lengths)."""
        rows = self._packed_row_lengths(seq_len)
        if not rows:
            return 0.0
        random.Random(seed).shuffle(rows)
        totals = [sum(rows[i : i + micro_batch]) for i in range(0, len(rows), micro_batch)]
        return self._distinct_share(totals, max(1.0, self.packed_rows(seq_len) / micro_batch))

    def _distinct_share(self, lengths: list[int], n: float) -> float:
        """Distinct values among an epoch's ``n`` micro-batches, over ``n``, from the sample's micro-batch ``lengths``:
        where every example was read, the epoch is the sample shuffled again, and its micro-batches are as varied as
        the sample's; otherwise each of the ``n`` draws a length at its share in the sample (the expected count of
        distinct ones: ``sum over lengths v of 1 - (1 - p_v) ** n``)."""
        counts: dict[int, int] = {}
        for v in lengths:
            counts[v] = counts.get(v, 0) + 1
        if self.every == 1 and len(self.lengths) == self.examples:
            return len(counts) / len(lengths)
        distinct = sum(1.0 - (1.0 - c / len(lengths)) ** n for c in counts.values())
        return min(1.0, distinct / n)

    def _packed_row_lengths(self, seq_len: int) -> list[int]:
        """Tokens in each row of a best-fit-decreasing packing (trl 1.16 ``_pack_bfd``, examples truncated) of the sample."""
        return list(_best_fit_decreasing(self.lengths, seq_len))

    def histogram(self, bins: int = 12) -> list[tuple[int, int, int]]:
        """(from, to, examples in the sample) in equal bins up to the longest."""
        if not self.lengths:
            return []
        top = self.lengths[-1]
        width = max(1, math.ceil((top + 1) / bins))
        counts = [0] * bins
        for n in self.lengths:
            counts[min(n // width, bins - 1)] += 1
        return [(i * width, (i + 1) * width - 1, c) for i, c in enumerate(counts)]


# a plan sizes every candidate against the same data: the sums and the packing are worked out once per length
@functools.lru_cache(maxsize=16)
def _truncated_sum(lengths: tuple[int, ...], seq_len: int) -> int:
    return sum(min(n, seq_len) for n in lengths)


@functools.lru_cache(maxsize=16)
def _best_fit_decreasing(lengths: tuple[int, ...], seq_len: int) -> tuple[int, ...]:
    step = max(1, math.ceil(len(lengths) / PACK_SAMPLE))
    spaces: list[int] = []  # what each open row has left, sorted
    for n in sorted((min(x, seq_len) for x in lengths[::step] if x > 0), reverse=True):
        i = bisect.bisect_left(spaces, n)
        left = spaces.pop(i) - n if i < len(spaces) else seq_len - n
        bisect.insort(spaces, left)
    return tuple(seq_len - s for s in spaces)


def files_of(path: str) -> list[str]:
    """The data files of ``path`` (a file, or a folder of ``*.jsonl`` or ``*.parquet`` shards, in name order);
    InputError where there are none."""
    if os.path.isdir(path):
        names = sorted(f for f in os.listdir(path) if f.endswith((".jsonl", ".parquet")) and os.path.isfile(os.path.join(path, f)))
        if not names:
            raise InputError(f"{path}: no .jsonl or .parquet files in this folder")
        return [os.path.join(path, f) for f in names]
    if not os.path.isfile(path):  # a pipe or a device would be read forever, or wait
        raise InputError(f"{preview(path)} is not a regular file")
    return [path]


def _depth(v, limit: int, d: int = 0) -> int:
    if d > limit:
        return d
    if isinstance(v, dict):
        return max((_depth(x, limit, d + 1) for x in v.values()), default=d + 1)
    if isinstance(v, list):
        return max((_depth(x, limit, d + 1) for x in v), default=d + 1)
    return d


def _text(obj: dict, where: tuple[str, int]) -> tuple[str, int, str]:
    """(the example's text, its messages, its format); InputError naming file:line for anything else."""

    def text_of(v, key: str) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, list):  # TRL's conversational prompt/completion: lists of messages
            return "".join(text_of(m.get("content", ""), key) if isinstance(m, dict) else text_of(m, key) for m in v)
        raise InputError(f"'{key}' must be text or a list of messages, not {type(v).__name__}", *where)

    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise InputError("'messages' must be a list of {role, content} objects", *where)
        return "".join(text_of(m.get("content", ""), "content") for m in msgs), len(msgs), "messages"
    if all(k in obj for k in PROMPT_COMPLETION):  # TRL's keys (the word is not prompt tuning's)
        n = sum(len(obj[k]) for k in PROMPT_COMPLETION if isinstance(obj[k], list))
        return "".join(text_of(obj[k], k) for k in PROMPT_COMPLETION), n, "prompt/completion"
    if "text" in obj:
        return text_of(obj["text"], "text"), 0, "text"
    if "instruction" in obj and "output" in obj:
        parts = [text_of(obj.get(k, ""), k) for k in ("instruction", "input", "output")]
        return "\n".join(p for p in parts if p), 0, "instruction/input/output"
    keys = ", ".join(preview(k) for k in list(obj)[:5])
    raise InputError(f"no known format (keys {keys or 'none'}; expected one of {', '.join(FORMATS)})", *where)


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of a file, each bounded in size; blank lines skipped."""
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot read {preview(path)}: {e.strerror or e}") from None
    with fh:
        number = 0
        while True:
            raw = fh.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise InputError(f"a line longer than {MAX_LINE_BYTES // 2**20} MiB: not one training example", path, number)
            if raw.strip():
                yield number, raw


# what a Parquet example may hold: the formats' columns (no other column is read)
_COLUMNS = ("messages", "prompt", "completion", "text", "instruction", "input", "output")
_BATCH_ROWS = 1024


def _parquet_rows(path: str, every: int) -> Iterator[tuple[int, int, Optional[dict]]]:
    """(row number, its bytes' share, the row as a dict or None where the sample skips it) of a Parquet file,
    read a bounded batch of rows at a time and only the formats' columns (pyarrow, an optional extra)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{preview(path)}: Parquet needs pyarrow: pip install 'ftdecide[data]'") from None
    try:
        pf = pq.ParquetFile(path)
        columns = [c for c in pf.schema_arrow.names if c in _COLUMNS]
        rows = pf.metadata.num_rows
        share = os.path.getsize(path) // max(1, rows)
        number = 0
        for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=columns or None):
            records = batch.to_pylist() if columns else [{} for _ in range(batch.num_rows)]
            for rec in records:
                number += 1
                # a null cell is a column this row does not use (a shard may mix formats)
                yield number, share, ({k: v for k, v in rec.items() if v is not None} if number % every == 0 else None)
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow's errors on a damaged file are the user's file to fix
        raise InputError(f"not a readable Parquet file: {preview(str(e), 120)}", path) from None


def tokenizer_for(model_dir: Optional[str], arch=None) -> tuple[Callable[..., int], str]:
    """(a function counting the tokens of a text, what counts them): the model folder's ``tokenizer.json``
    through the ``tokenizers`` package where both are there, else characters a token (:func:`chars_per_token`)."""
    ratio, assumed = chars_per_token(arch)

    def by_chars(text: str, special: bool = True) -> int:
        return math.ceil(len(text) / ratio)

    if not model_dir or not os.path.isfile(os.path.join(model_dir, "tokenizer.json")):
        return by_chars, assumed + "; no tokenizer.json with the model"
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return by_chars, assumed + "; pip install 'ftdecide[data]' to count exactly"
    path = os.path.join(model_dir, "tokenizer.json")
    try:
        tok = Tokenizer.from_file(path)
    except Exception as e:  # noqa: BLE001 - any unreadable tokenizer is the user's file to fix
        raise InputError(f"cannot read the tokenizer: {preview(str(e), 120)}", path) from None
    # the special tokens a trainer adds: TRL and the hf trainer tokenize plain text with them; a rendered chat
    # template carries its own (apply_chat_template tokenizes without adding more)
    return (lambda text, special=True: len(tok.encode(text, add_special_tokens=special).ids)), f"tokenizer.json at {path}"


def _examples(files: list[str], every: int) -> Iterator[tuple[str, int, int, Optional[dict]]]:
    """(file, line or row number, bytes, the example as a dict, or None where the sample skips it) of every
    example of ``files``: JSONL lines parsed here, Parquet rows as pyarrow reads them."""
    seen = 0
    for f in files:
        if f.endswith(".parquet"):
            for number, size, row in _parquet_rows(f, every):
                yield f, number, size, row
            continue
        for number, raw in _lines(f):
            seen += 1
            if seen % every:
                yield f, number, len(raw), None
                continue
            where = (f, number)
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise InputError("not UTF-8 text (a binary file?)", *where) from None
            except RecursionError:
                raise InputError(f"JSON nested deeper than {MAX_DEPTH} levels", *where) from None
            except ValueError as e:
                raise InputError(f"not JSON: {preview(str(e), 80)}", *where) from None
            if not isinstance(obj, dict):
                raise InputError(f"an example must be a JSON object, not {type(obj).__name__}", *where)
            yield f, number, len(raw), obj


def read_dataset(path: str, model_dir: Optional[str] = None, progress: Optional[Callable[[int, int], None]] = None, arch=None) -> DataStats:
    """The example count and the sampled token lengths of the data at ``path`` (see the module's docstring).
    ``progress(done_bytes, total_bytes)`` is told as the files are read; ``arch``: the model, whose tokenizer
    family sets the characters a token where its tokenizer is not at hand."""
    files = files_of(path)
    total = sum(os.path.getsize(f) for f in files if os.path.isfile(f))
    every = max(1, math.ceil(total / SAMPLE_BYTES))
    count_tokens, counted_by = tokenizer_for(model_dir, arch)
    render, rendered_by = template_for(model_dir)
    if rendered_by:
        counted_by += f"; {rendered_by}"
    examples, lengths, formats, done = 0, [], set(), 0
    for f, number, size, obj in _examples(files, every):
        done += size
        examples += 1
        if obj is None:  # counted, not parsed: every k-th example is read
            continue
        where = (f, number)
        if _depth(obj, MAX_DEPTH) > MAX_DEPTH:
            raise InputError(f"JSON nested deeper than {MAX_DEPTH} levels", *where)
        text, messages, fmt = _text(obj, where)
        if len(text) > MAX_LINE_BYTES:
            raise InputError(f"an example longer than {MAX_LINE_BYTES // 2**20} MiB of text: not one training example", *where)
        formats.add(fmt)
        if render is not None and fmt == "messages":
            # the conversation as the trainer formats it: its template's headers and special tokens counted
            text = render(obj["messages"])
            n = count_tokens(text, False)
        else:
            n = count_tokens(text)
            n += MESSAGE_OVERHEAD * messages
        lengths.append(n)
        if progress and examples % 4096 == 0:
            progress(done, total)
    if not examples:
        raise InputError(f"{path}: no examples (empty, or blank lines only)")
    return DataStats(
        path=path,
        examples=examples,
        lengths=tuple(sorted(lengths)),
        every=every,
        counted_by=counted_by,
        exact_tokens=counted_by.startswith("tokenizer.json"),
        formats=tuple(sorted(formats)),
    )
