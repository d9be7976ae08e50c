"""The user's data (issue 28, first part): the example count, the token lengths and what they make of the
plan's time. A word-level tokenizer makes every length exact (one word, one token)."""

from __future__ import annotations

import json
import math
import random
import shutil

import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, invoke
from ftdecide.core.errors import InputError
from ftdecide.files import dataset
from ftdecide.files.dataset import DataStats, read_dataset

WORDS = [f"w{i}" for i in range(500)]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _model_dir(tmp_path):
    """A model folder: a catalog model's config.json and a word-level tokenizer.json (no special tokens)."""
    tokenizers = pytest.importorskip("tokenizers")
    d = tmp_path / "model"
    d.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "llama-3.2-1b.config.json", d / "config.json")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(["[UNK]", *WORDS])}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.save(str(d / "tokenizer.json"))
    return d


def _texts(n, seed=0):
    rng = random.Random(seed)
    lengths = [max(1, int(rng.lognormvariate(5.5, 0.9))) for _ in range(n)]
    return lengths, [" ".join(rng.choice(WORDS) for _ in range(k)) for k in lengths]


def _truth(lengths, q):
    s = sorted(lengths)
    return s[max(1, math.ceil(q / 100 * len(s))) - 1]


def test_count_and_percentiles_are_the_tokenizers(tmp_path):
    lengths, texts = _texts(3000)
    data = _write(tmp_path / "train.jsonl", [{"text": t} for t in texts])
    stats = read_dataset(str(data), str(_model_dir(tmp_path)))
    assert stats.examples == 3000 and stats.exact_tokens and stats.every == 1
    for q in (50, 95, 99, 100):
        assert stats.percentile(q) == _truth(lengths, q)


def test_the_cli_reads_the_data_and_refuses_a_size_that_disagrees(tmp_path):
    lengths, texts = _texts(800, seed=1)
    model = _model_dir(tmp_path)
    data = _write(tmp_path / "train.jsonl", [{"text": t} for t in texts])
    r = invoke(["recommend", "--model", str(model), "--gpu", "h100", "--dataset", str(data), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["scenario"]["dataset_size"] == 800 and doc["data"]["examples"] == 800
    assert doc["data"]["lengths"]["p95"] == _truth(lengths, 95) and doc["data"]["lengths"]["p50"] == _truth(lengths, 50)
    # padded per micro-batch: less than every example at --seq-len, more than the real tokens packed
    e = doc["data"]["epoch_tokens"]
    assert e["packed"] <= e["padded"] < e["full_length"]
    full = json.loads(invoke(["recommend", "--model", str(model), "--gpu", "h100", "--dataset-size", "800", "--format", "json"]).stdout)
    assert doc["recommendation"]["time_hours"] < full["recommendation"]["time_hours"]
    bad = invoke(["recommend", "--model", str(model), "--gpu", "h100", "--dataset", str(data), "--dataset-size", "900"])
    assert bad.exit_code == 2 and "--dataset-size 900 disagrees with the 800 examples" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "row, text, messages",
    [
        pytest.param({"text": "a b"}, "a b", 0, id="text"),
        pytest.param({"prompt": "a ", "completion": "b"}, "a b", 0, id="prompt-completion"),
        pytest.param(
            {"prompt": [{"role": "user", "content": "a "}], "completion": [{"role": "assistant", "content": "b"}]},
            "a b",
            2,
            id="conversational-prompt-completion",
        ),
        pytest.param({"messages": [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "cd"}]}, "abcd", 2, id="messages"),
        pytest.param({"instruction": "a", "input": "", "output": "b"}, "a\nb", 0, id="alpaca"),
    ],
)
def test_each_format_is_read_as_the_emitters_take_it(tmp_path, row, text, messages):
    stats = read_dataset(str(_write(tmp_path / "d.jsonl", [row])))
    assert stats.lengths == (math.ceil(len(text) / dataset.CHARS_PER_TOKEN) + dataset.MESSAGE_OVERHEAD * messages,)
    assert "assumed" in stats.counted_by and not stats.exact_tokens


@pytest.mark.parametrize(
    "content, phrase",
    [
        pytest.param(b'{"text": "a"}\n\xff\xfe\x00binary\n', "not UTF-8", id="binary"),
        pytest.param(b'{"text": "a"}\n[1, 2]\n', "must be a JSON object, not list", id="not-an-object"),
        pytest.param(b'{"text": "a"}\n{"foo": 1}\n', "no known format", id="unknown-format"),
        pytest.param(b'{"text": 5}\n', "'text' must be text", id="wrong-type"),
        pytest.param(b'{"text": "a"}\n{"text": "a", "x": ' + b"[" * 100 + b"]" * 100 + b"}\n", "nested deeper", id="deep"),
        pytest.param(b"{oops\n", "not JSON", id="not-json"),
        pytest.param(b"\n\n", "no examples", id="empty"),
    ],
)
def test_bad_data_is_one_error_naming_file_and_line(tmp_path, content, phrase):
    p = tmp_path / "d.jsonl"
    p.write_bytes(content)
    with pytest.raises(InputError, match=phrase) as e:
        read_dataset(str(p))
    if phrase != "no examples":
        assert e.value.path == str(p) and e.value.line == 2 - ("wrong-type" in phrase or phrase == "not JSON" or "'text'" in phrase)


def test_a_long_line_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset, "MAX_LINE_BYTES", 1000)
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a"}\n{"text": "' + "x" * 5000 + '"}\n')
    with pytest.raises(InputError, match="longer than") as e:
        read_dataset(str(p))
    assert e.value.line == 2


def test_a_large_file_is_sampled_deterministically_and_counted_exactly(tmp_path, monkeypatch):
    _, texts = _texts(2000, seed=2)
    p = _write(tmp_path / "d.jsonl", [{"text": t} for t in texts])
    monkeypatch.setattr(dataset, "SAMPLE_BYTES", p.stat().st_size // 5)
    a, b = read_dataset(str(p)), read_dataset(str(p))
    every = math.ceil(p.stat().st_size / (p.stat().st_size // 5))
    assert a.examples == 2000 and a.every == every > 1 and len(a.lengths) == 2000 // every and a == b


def test_a_folder_of_shards_is_read_in_name_order(tmp_path):
    d = tmp_path / "shards"
    d.mkdir()
    _write(d / "b.jsonl", [{"text": "x y z"}] * 3)
    _write(d / "a.jsonl", [{"text": "x"}] * 2)
    stats = read_dataset(str(d))
    assert stats.examples == 5
    (d / "a.jsonl").unlink()
    (d / "b.jsonl").unlink()
    (d / "c.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputError, match="Parquet"):
        read_dataset(str(d))


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 9000), min_size=1, max_size=300),
    seq_len=st.sampled_from([256, 1024, 4096]),
    micro_batch=st.integers(1, 16),
    scale=st.integers(1, 5),
)
def test_padded_tokens_lie_between_the_packed_and_the_full_length(lengths, seq_len, micro_batch, scale):
    stats = DataStats("d", len(lengths) * scale, tuple(sorted(lengths)), scale, "assumed", False, ("text",))
    padded, packed = stats.epoch_tokens(seq_len, micro_batch)
    real = sum(min(n, seq_len) for n in lengths) * scale
    assert real <= padded + 1e-6 and padded <= stats.examples * seq_len + 1e-6
    assert real <= packed < real + seq_len
    mb = stats.micro_batches(seq_len, micro_batch)
    assert sum(mb.values()) == pytest.approx(math.ceil(len(lengths) / micro_batch) * scale)
    assert max(mb) <= seq_len
    assert 256 <= stats.suggested_seq_len() and stats.suggested_seq_len() % 256 == 0
    assert stats.truncated_share(stats.suggested_seq_len()) <= 0.01 + 1e-9


def test_data_not_on_this_machine_is_only_written_into_the_configs():
    r = invoke(["recommend", "--model", "llama-3.2-1b", "--dataset", "/nowhere/train.jsonl", "--format", "json"])
    doc = json.loads(r.stdout)
    assert "data" not in doc and doc["warnings"][-1]["rule"] == "data" and "is not on this machine" in doc["warnings"][-1]["message"]
    assert (
        "DATASET = '/nowhere/train.jsonl'"
        in invoke(["recommend", "--model", "llama-3.2-1b", "--dataset", "/nowhere/train.jsonl", "--emit", "trl"]).stdout
    )
    # without --dataset nothing is read, whatever train.jsonl lies in the working folder
    assert "data" not in json.loads(invoke(["recommend", "--model", "llama-3.2-1b", "--format", "json"]).stdout)


def test_the_table_shows_the_histogram(tmp_path):
    _, texts = _texts(500, seed=3)
    data = _write(tmp_path / "train.jsonl", [{"text": t} for t in texts])
    out = invoke(["recommend", "--model", "llama-3.2-1b", "--gpu", "h100", "--dataset", str(data)]).stdout
    assert "500 examples, all read" in out and "covers 99%" in out and "#" * 10 in out


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/stdin"])
def test_a_device_or_pipe_is_refused_not_read(path):
    r = invoke(["recommend", "--model", "llama-3.2-1b", "--dataset", path])
    assert r.exit_code == 2 and "is not a regular file" in r.stderr


def test_a_scenario_files_dataset_is_taken_from_its_folder(tmp_path):
    _, texts = _texts(120, seed=4)
    _write(tmp_path / "train.jsonl", [{"text": t} for t in texts])
    sc = tmp_path / "scenario.yaml"
    sc.write_text("model: llama-3.2-1b\ngpu: h100\ndataset: train.jsonl\n")
    doc = json.loads(invoke(["recommend", "--scenario", str(sc), "--format", "json"]).stdout)
    assert doc["scenario"]["dataset"] == str(tmp_path / "train.jsonl") and doc["data"]["examples"] == 120
    assert doc["scenario"]["dataset_size"] == 120


# --- Parquet (pyarrow, an optional extra: these run where it is installed) ---------------------------------
def _parquet(path, rows: list[dict]) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), str(path), row_group_size=7)


def test_parquet_reads_as_its_jsonl_twin(tmp_path):
    """Rows of two formats in one shard (a null cell is a column the row does not use), read a batch at a time:
    the same count and lengths as the same examples in JSONL."""
    rows = [{"text": "w " * (i % 37 + 1), "messages": None} for i in range(40)]
    rows += [
        {"text": None, "messages": [{"role": "user", "content": "q " * (i + 1)}, {"role": "assistant", "content": "a"}]} for i in range(25)
    ]
    _parquet(tmp_path / "d.parquet", rows)
    _write(tmp_path / "d.jsonl", [{k: v for k, v in r.items() if v is not None} for r in rows])
    a, b = read_dataset(str(tmp_path / "d.parquet")), read_dataset(str(tmp_path / "d.jsonl"))
    assert a.examples == b.examples == 65 and a.lengths == b.lengths and a.formats == ("messages", "text")


def test_a_folder_mixes_jsonl_and_parquet_shards(tmp_path):
    _parquet(tmp_path / "b.parquet", [{"text": "x y"}] * 12)
    _write(tmp_path / "a.jsonl", [{"text": "x"}] * 3)
    assert read_dataset(str(tmp_path)).examples == 15


def test_a_bad_parquet_row_names_its_file_and_row(tmp_path):
    _parquet(tmp_path / "bad.parquet", [{"prompt": "p", "completion": "c"}] * 9 + [{"prompt": "p", "completion": None}])
    with pytest.raises(InputError) as e:
        read_dataset(str(tmp_path / "bad.parquet"))
    assert "bad.parquet:10" in str(e.value) and "no known format" in str(e.value)
    _parquet(tmp_path / "other.parquet", [{"label": 1}] * 3)
    with pytest.raises(InputError, match="no known format"):
        read_dataset(str(tmp_path / "other.parquet"))


def test_the_emitted_files_load_parquet_as_parquet(tmp_path):
    out = tmp_path / "axolotl.yaml"
    r = invoke(
        ["recommend", "--model", "qwen2.5-0.5b", "--gpu", "h100", "--emit", "axolotl", "--out", str(out), "--dataset", "train.parquet"]
    )
    assert r.exit_code == 0, r.stderr
    assert "ds_type: parquet" in out.read_text()
    script = tmp_path / "train.py"
    r = invoke(["recommend", "--model", "qwen2.5-0.5b", "--gpu", "h100", "--emit", "trl", "--out", str(script), "--dataset", "train.jsonl"])
    assert r.exit_code == 0 and 'load_dataset("parquet" if dataset_path.endswith(".parquet") else "json"' in script.read_text()


# --- chat templates (jinja2, in the data extra) -----------------------------------------------------------
TEMPLATE = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"


def _chat_model(tmp_path, template: str, where: str = "config"):
    pytest.importorskip("jinja2")
    d = tmp_path / "model"
    d.mkdir()
    shutil.copy(ROOT / "data" / "families" / "configs" / "qwen3-0.6b.json", d / "config.json")
    config = {"bos_token": {"content": "<s>"}, "eos_token": "</s>"}
    if where == "config":
        config["chat_template"] = template
    else:
        (d / "chat_template.jinja").write_text(template, encoding="utf-8")
    (d / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return d


@pytest.mark.parametrize("where", ["config", "jinja"])
def test_chat_examples_are_counted_as_their_template_renders_them(tmp_path, where):
    d = _chat_model(tmp_path, TEMPLATE, where)
    convo = [{"role": "user", "content": "hi " * 30}, {"role": "assistant", "content": "ok " * 70}]
    data = _write(tmp_path / "chat.jsonl", [{"messages": convo}] * 5)
    stats = dataset.read_dataset(str(data), str(d))
    rendered = "<s>" + "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in convo)
    assert stats.lengths == (math.ceil(len(rendered) / dataset.CHARS_PER_TOKEN),) * 5  # no per-message guess added
    assert "chat template from" in stats.counted_by
    # plain text is not templated
    assert dataset.read_dataset(str(_write(tmp_path / "t.jsonl", [{"text": "abcd" * 10}])), str(d)).lengths == (10,)


@pytest.mark.parametrize(
    "template, said",
    [
        ("{% for m in messages %}{{ m['content'] ", "does not compile"),
        ("{{ raise_exception('only user and assistant roles') }}", "only user and assistant roles"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "failed"),
        ("{% for i in range(10**9) %}x{% endfor %}", "failed"),
        ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}", "took over"),
    ],
    ids=["syntax", "raise_exception", "sandbox", "range", "endless"],
)
def test_a_hostile_chat_template_is_one_error_naming_its_file(tmp_path, template, said):
    d = _chat_model(tmp_path, template)
    data = _write(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(InputError) as e:
        dataset.read_dataset(str(data), str(d))
    assert said in str(e.value) and "tokenizer_config.json" in str(e.value)


@pytest.mark.parametrize(
    "model, family, ratio",
    [
        pytest.param("llama-3.1-8b", "llama3", 4.352, id="llama3"),
        pytest.param("llama-4-scout-17b-16e", "llama4", 4.349, id="llama4"),
        pytest.param("qwen3-8b", "qwen", 4.289, id="qwen3"),
        pytest.param("qwen2.5-7b", "qwen", 4.289, id="qwen2.5-152064"),
        pytest.param("mistral-7b", "mistral_v1", 3.673, id="mistral-v0.1"),
        pytest.param("mistral-7b-v0.3", "mistral_v3", 3.673, id="mistral-v0.3"),
        pytest.param("ministral-8b", "tekken", 4.173, id="tekken"),
        pytest.param("llama-2-7b", None, 4.0, id="llama2-not-fitted"),
        pytest.param("gemma-3-4b", None, 4.0, id="gemma3-not-fitted"),
    ],
)
def test_characters_a_token_are_the_tokenizer_familys_fit(model, family, ratio):
    """Without the model's tokenizer, its family's prose ratio (configs/tokenizers.yaml, written by
    benchmarks/fit_chars_per_token.py from data/tokenizers/), said with its held-out error; the default elsewhere."""
    from ftdecide.files.catalog import resolve_model

    got, said = dataset.chars_per_token(resolve_model(model))
    assert got == ratio
    fits = json.loads((ROOT / "data" / "tokenizers" / "chars_per_token_2026-12-06.json").read_text())
    if family:
        assert fits[family]["prose"]["chars_per_token"] == ratio and "fitted for" in said and "9 in 10 examples within" in said
    else:
        assert "not fitted for this model's tokenizer" in said


def test_the_cli_counts_by_the_familys_ratio_without_a_tokenizer(tmp_path):
    text = "x" * 4288  # 999.8 tokens at 4.289 a token, counted up
    data = _write(tmp_path / "train.jsonl", [{"text": text}] * 3)
    doc = json.loads(invoke(["recommend", "--model", "qwen3-8b", "--gpu", "h100", "--dataset", str(data), "--format", "json"]).stdout)
    assert doc["data"]["lengths"]["max"] == 1000 and not doc["data"]["exact_tokens"]
    assert "fitted for Qwen's tokenizer" in doc["data"]["tokens_counted_by"]
