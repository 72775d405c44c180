"""trainer.models: presets, construction paths, layer roles, manifest dims."""
from __future__ import annotations

import json

import pytest
import torch

from accelsim.errors import UserError
from accelsim.trace import ROLES
from accelsim.trainer.models import PRESETS, build_model, linear_layers, model_dims

ROLE_ORDER = ["q", "k", "v", "attn_out", "ffn_in", "ffn_out"]

# (layers, hidden, heads, intermediate) as tabulated by Turc et al. 2019 / Devlin et al. 2019.
PAPER_SIZES = {
    "bert-tiny": (2, 128, 2, 512),
    "bert-mini": (4, 256, 4, 1024),
    "bert-small": (4, 512, 8, 2048),
    "bert-medium": (8, 512, 8, 2048),
    "bert-base": (12, 768, 12, 3072),
    "bert-large": (24, 1024, 16, 4096),
}


def _meta_model(name: str, vocab: int = 30522, seq_len: int = 128):
    # The meta device builds shapes without allocating or initialising weights: bert-base is free.
    with torch.device("meta"):
        return build_model(name, vocab, seq_len)


@pytest.mark.parametrize("name", sorted(PAPER_SIZES))
def test_preset_dims_match_paper(name):
    model = _meta_model(name)
    dims = model_dims(model, 128)
    layers, hidden, heads, inter = PAPER_SIZES[name]
    assert (dims["layers"], dims["hidden"], dims["heads"], dims["intermediate"]) == (layers, hidden, heads, inter)
    assert dims["vocab"] == 30522 and dims["seq_len"] == 128
    assert model.config._attn_implementation == "sdpa"


def test_preset_table_is_exactly_the_paper_sizes():
    assert set(PRESETS) == set(PAPER_SIZES)


def test_bert_base_parameter_count_matches_reference():
    # 109,514,298 is the published size of bert-base-uncased's BertForMaskedLM (tied decoder).
    assert model_dims(_meta_model("bert-base"), 128)["params"] == 109_514_298


@pytest.mark.parametrize("name", ["bert-tiny", "bert-medium"])
def test_linear_layers_roles_order_and_shapes(name):
    model = _meta_model(name, vocab=1000)
    cfg = model.config
    layers = linear_layers(model)
    assert len(layers) == 6 * cfg.num_hidden_layers
    assert [role for _, _, role in layers] == ROLE_ORDER * cfg.num_hidden_layers
    assert set(ROLE_ORDER) <= set(ROLES)
    h, i = cfg.hidden_size, cfg.intermediate_size
    expected = {"q": (h, h), "k": (h, h), "v": (h, h), "attn_out": (h, h), "ffn_in": (i, h), "ffn_out": (h, i)}
    for k, (name_, module, role) in enumerate(layers):
        assert isinstance(module, torch.nn.Linear)
        assert model.get_submodule(name_) is module
        assert f"layer.{k // 6}." in name_
        assert tuple(module.weight.shape) == expected[role]
    assert not any(n.startswith("cls.") for n, _, _ in layers)


def test_build_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_model("bert-tiny", 300, 64, seed=3)
    b = build_model("bert-tiny", 300, 64, seed=3)
    c = build_model("bert-tiny", 300, 64, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    wa, wb, wc = (dict(linear_layers(m)[0][1].named_parameters())["weight"] for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_dropout_and_positions_follow_arguments():
    model = build_model("bert-tiny", 300, 1024, dropout=0.0)
    assert model.config.hidden_dropout_prob == 0.0 and model.config.attention_probs_dropout_prob == 0.0
    assert model.config.max_position_embeddings >= 1024
    assert model.config.vocab_size == 300


def test_forward_runs_with_labels():
    model = build_model("bert-tiny", 300, 32)
    ids = torch.randint(5, 300, (2, 32))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    out = model(input_ids=ids, labels=labels)
    assert out.logits.shape == (2, 32, 300)
    assert torch.isfinite(out.loss)


def test_local_dir_with_weights_loads_them(tmp_path):
    saved = build_model("bert-tiny", 300, 64, seed=7)
    saved.save_pretrained(tmp_path)
    loaded = build_model(str(tmp_path), 300, 64, seed=99)
    for (n1, p1), (n2, p2) in zip(saved.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    assert loaded.config._attn_implementation == "sdpa"


def test_local_dir_with_config_only_builds_fresh_model(tmp_path):
    cfg = build_model("bert-mini", 300, 64).config.to_dict()
    cfg["vocab_size"] = 12345  # overridden by the tokenizer's size: no weights pin it
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    model = build_model(str(tmp_path), 300, 700)
    dims = model_dims(model, 700)
    assert (dims["layers"], dims["hidden"], dims["vocab"]) == (4, 256, 300)
    assert model.config.max_position_embeddings >= 700


def test_pretrained_vocab_too_small_is_user_error(tmp_path):
    build_model("bert-tiny", 300, 64).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="vocab_size"):
        build_model(str(tmp_path), 400, 64)


def test_unknown_model_lists_presets(tmp_path):
    with pytest.raises(UserError) as err:
        build_model("bert-huge", 300, 64)
    assert "bert-tiny" in str(err.value) and "bert-base" in str(err.value)
    with pytest.raises(UserError):
        build_model(str(tmp_path), 300, 64)  # a directory without config.json


def test_non_bert_config_is_user_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(UserError, match="config.json"):
        build_model(str(tmp_path), 300, 64)
