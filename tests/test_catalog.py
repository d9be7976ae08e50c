import pytest

from ftdecide.files import catalog
from ftdecide.core.errors import InputError


@pytest.mark.parametrize("arch", catalog.models(), ids=lambda a: a.name)
def test_parameter_count_equals_published_total(arch):
    assert arch.params_published is not None and arch.source.startswith("https://huggingface.co/")
    assert arch.total_params() == arch.params_published


def test_catalog_sizes():
    assert len(catalog.models()) >= 25
    assert len(catalog.gpus()) >= 15
    assert all(g.source for g in catalog.gpus())


@pytest.mark.parametrize(
    "name,expected",
    [
        ("meta-llama/Llama-3.1-8B", "llama-3.1-8b"),
        ("meta-llama/Llama-2-7b-hf", "llama-2-7b"),
        ("Qwen/Qwen2.5-7B", "qwen2.5-7b"),
        ("mistralai/Mistral-7B-v0.1", "mistral-7b"),
        ("llama-3.1-8b", "llama-3.1-8b"),
        ("LLAMA 3.1 8B", "llama-3.1-8b"),
        ("llama_3.1_8b", "llama-3.1-8b"),
        # the families of 2025 by their Hugging Face ids
        ("Qwen/Qwen3-30B-A3B", "qwen3-30b-a3b"),
        ("openai/gpt-oss-20b", "gpt-oss-20b"),
        ("google/gemma-3-12b-it", "gemma-3-12b"),
        ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama-4-scout-17b-16e"),
        ("deepseek-ai/DeepSeek-V3", "deepseek-v3"),
    ],
)
def test_model_names_resolve_loosely(name, expected):
    assert catalog.resolve_model(name).name == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("h200", "h200"),
        ("h100", "h100"),
        ("h100-pcie", "h100-pcie"),
        ("a100-80gb", "a100-80gb"),
        ("a100-40gb", "a100-40gb"),
        ("l40s", "l40s"),
        ("a6000", "a6000"),
        ("l4", "l4"),
        ("a10g", "a10g"),
        ("rtx-4090", "rtx-4090"),
        ("rtx-3090", "rtx-3090"),
        ("rtx-5090", "rtx-5090"),
        ("t4", "t4"),
        ("v100-32gb", "v100-32gb"),
        ("mi300x", "mi300x"),
        ("RTX 4090", "rtx-4090"),
        ("rtx_4090", "rtx-4090"),
    ],
)
def test_gpu_names_resolve(name, expected):
    assert catalog.resolve_gpu(name).name == expected


def test_unknown_names_suggest_close_ones():
    with pytest.raises(InputError, match="did you mean.*llama-3.1-8b"):
        catalog.resolve_model("llama-3.1-8c")
    with pytest.raises(InputError, match="did you mean.*rtx-4090"):
        catalog.resolve_gpu("rtx-4009")


def test_bare_size_is_llama_like_and_says_so():
    a = catalog.resolve_model("13b")
    assert abs(a.total_params() - 13e9) / 13e9 < 0.03
    assert "assumed" in a.assumed


def test_config_json_path(tmp_path):
    import json

    p = tmp_path / "config.json"
    p.write_text(
        json.dumps(
            {
                "model_type": "qwen2",
                "hidden_size": 896,
                "intermediate_size": 4864,
                "num_hidden_layers": 24,
                "num_attention_heads": 14,
                "num_key_value_heads": 2,
                "vocab_size": 151936,
                "tie_word_embeddings": True,
            }
        )
    )
    assert catalog.resolve_model(str(p)).total_params() == 494032768
    p.write_text(json.dumps({"model_type": "llama", "hidden_size": 10}))
    with pytest.raises(InputError, match="missing intermediate_size"):
        catalog.resolve_model(str(p))
    p.write_text(json.dumps({"foo": 1}))
    with pytest.raises(InputError, match="not a model config"):
        catalog.resolve_model(str(p))


def test_every_gpu_cites_its_links():
    """Communication time reads each GPU's links: every catalog card states them and where they come from,
    and a card joined by NVLink/NVSwitch or Infinity Fabric has a faster link to its peers than PCIe's 64 GB/s."""
    from ftdecide.files import catalog

    for g in catalog.gpus():
        assert g.intra_node_gbs > 0 and g.inter_node_gbs > 0 and g.link_source, g.name
        assert g.inter_node_gbs <= g.intra_node_gbs, g.name
        fabric = any(k in g.link_source for k in ("NVLink 3", "NVLink 4", "NVLink 2", "Infinity Fabric"))
        assert fabric == (g.intra_node_gbs > 64), g.name
