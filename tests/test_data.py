"""trainer.corpus / trainer.tokenizer / trainer.data: corpus, tokenizer cache, deterministic MLM batches."""
from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

import accelsim.trainer.corpus as corpus_mod
from accelsim.errors import UserError
from accelsim.trainer.data import DataConfig, build_data, default_corpus
from accelsim.trainer.tokenizer import get_tokenizer, tokenizer_cache_path

VOCAB = 500
# 40 texts of the default corpus = its first language-reference topics: ~100k characters.
SMALL = dict(max_texts=40, vocab_size=VOCAB, seq_len=64)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def data(cache):
    return build_data(DataConfig(**SMALL), seed=1, cache_dir=cache)


def _originals(batch):
    """Token ids before masking: labels hold them where selected, inputs elsewhere."""
    return torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])


# ---- default corpus ---------------------------------------------------------------------------

def test_default_corpus_is_sizeable_english_and_deterministic():
    texts = default_corpus()
    assert len(texts) > 1000
    assert sum(map(len, texts)) > 1_000_000
    assert len(set(texts)) == len(texts)
    words = Counter(w for t in texts[:500] for w in re.findall(r"[a-z]+", t.lower()))
    assert {"the", "of", "is", "to"} <= {w for w, _ in words.most_common(15)}
    rebuilt = corpus_mod._default_corpus.__wrapped__()  # bypass the in-process cache
    assert list(rebuilt) == texts


# ---- tokenizer --------------------------------------------------------------------------------

def test_tokenizer_round_trip_and_cache_reuse(tmp_path):
    texts = default_corpus()[:40]
    calls = []

    def texts_fn():
        calls.append(1)
        return texts

    tok = get_tokenizer(texts_fn, "k1", VOCAB, None, tmp_path)
    assert len(tok) <= VOCAB and tok.mask_token == "[MASK]" and tok.pad_token_id == 0
    sentence = "the function returns a list of the values"
    enc = tok(sentence)["input_ids"]
    assert enc[0] == tok.cls_token_id and enc[-1] == tok.sep_token_id
    assert tok.decode(enc, skip_special_tokens=True) == sentence
    assert (tokenizer_cache_path("k1", VOCAB, tmp_path) / "tokenizer.json").is_file()

    again = get_tokenizer(texts_fn, "k1", VOCAB, None, tmp_path)
    assert len(calls) == 1  # second call came from the cache, without reading the corpus
    assert again.get_vocab() == tok.get_vocab()
    assert tokenizer_cache_path("k1", VOCAB, tmp_path) != tokenizer_cache_path("k2", VOCAB, tmp_path)
    assert tokenizer_cache_path("k1", VOCAB, tmp_path) != tokenizer_cache_path("k1", 600, tmp_path)


def test_local_tokenizer_dir_is_used(data, cache, tmp_path):
    data.tokenizer.save_pretrained(tmp_path)
    other = build_data(DataConfig(**SMALL, tokenizer=str(tmp_path)), seed=1, cache_dir=cache)
    assert other.tokenizer.get_vocab() == data.tokenizer.get_vocab()
    assert other.corpus_info()["tokenizer"] == str(tmp_path)


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_bad_tokenizer_dir_is_user_error(tmp_path, cache, make):
    path = tmp_path / "tok"
    if make == "empty":
        path.mkdir()
    with pytest.raises(UserError, match="tokenizer") as err:
        build_data(DataConfig(**SMALL, tokenizer=str(path)), cache_dir=cache)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# ---- batches ----------------------------------------------------------------------------------

def test_split_and_info(data):
    info = data.corpus_info()
    assert info["source"] == "stdlib-docs" and info["n_texts"] == 40
    assert info["n_train_seqs"] == data.train_size and info["n_eval_seqs"] == data.eval_size
    assert data.train_size + data.eval_size == info["n_seqs"] > 100
    assert data.eval_size == pytest.approx(0.05 * info["n_seqs"], abs=1)
    assert info["tokenizer_vocab"] == len(data.tokenizer) == data.vocab_size
    train = {tuple(r) for r in data._train.tolist()}
    assert not any(tuple(r) in train for r in data._eval.tolist())


def test_train_batch_shape_and_deterministic_in_seed_step(data, cache):
    state = torch.get_rng_state()
    b = data.train_batch(5, 8)
    assert torch.equal(torch.get_rng_state(), state)
    assert set(b) >= {"input_ids", "labels", "attention_mask"}
    assert b["input_ids"].shape == (8, 64) and b["input_ids"].dtype == torch.long
    assert bool((b["attention_mask"] == 1).all())

    data.train_batch(9, 8)  # other calls in between must not matter
    fresh = build_data(DataConfig(**SMALL), seed=1, cache_dir=cache)  # rebuilt from the caches
    for again in (data.train_batch(5, 8), fresh.train_batch(5, 8)):
        assert all(torch.equal(b[k], again[k]) for k in b)
    assert not torch.equal(data.train_batch(6, 8)["input_ids"], b["input_ids"])
    other_seed = build_data(DataConfig(**SMALL), seed=2, cache_dir=cache).train_batch(5, 8)
    assert not torch.equal(other_seed["input_ids"], b["input_ids"])


def test_masking_rates_and_labels(data):
    tok = data.tokenizer
    special = torch.tensor(sorted(set(tok.all_special_ids)))
    selected = candidates = mask_tok = 0
    for step in range(6):
        b = data.train_batch(step, 16)
        orig = _originals(b)
        chosen = b["labels"] != -100
        is_special = torch.isin(orig, special)
        assert not bool((chosen & is_special).any())
        assert bool((b["input_ids"][~chosen] == orig[~chosen]).all())
        assert bool((orig[:, 0] == tok.cls_token_id).all() and (orig[:, -1] == tok.sep_token_id).all())
        selected += int(chosen.sum())
        candidates += int((~is_special).sum())
        mask_tok += int((b["input_ids"][chosen] == tok.mask_token_id).sum())
    assert 0.13 < selected / candidates < 0.17  # ~6000 candidates: std of the rate is ~0.005
    assert 0.74 < mask_tok / selected < 0.86  # 80 % of selected tokens become [MASK]


def test_epochs_are_permutations_of_the_train_set(data):
    n = data.train_size
    train_rows = sorted(map(tuple, data._train.tolist()))
    epoch0 = _originals(data.train_batch(0, n))
    epoch1 = _originals(data.train_batch(1, n))
    assert sorted(map(tuple, epoch0.tolist())) == train_rows
    assert sorted(map(tuple, epoch1.tolist())) == train_rows
    assert not torch.equal(epoch0, epoch1)  # reshuffled each epoch
    # A batch straddling the epoch boundary continues epoch 0's order into epoch 1's.
    k = 7
    straddle = _originals(data.train_batch(n // k, k))
    start = (n // k) * k
    expected = torch.cat([epoch0, epoch1])[start:start + k]
    assert torch.equal(straddle, expected)


def test_eval_batches_fixed_and_independent_of_batch_size(data):
    first = list(data.eval_batches(4))
    second = list(data.eval_batches(4))
    assert sum(len(b["input_ids"]) for b in first) == data.eval_size
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first, second) for k in a)
    by5 = torch.cat([b["labels"] for b in data.eval_batches(5)])
    assert torch.equal(by5, torch.cat([b["labels"] for b in first]))
    assert len(list(data.eval_batches(2, max_batches=3))) == 3
    assert bool((by5 != -100).any())


def test_cached_build_does_not_reload_corpus(data, cache, monkeypatch):
    def boom():
        raise AssertionError("corpus loaded despite the cache")

    monkeypatch.setattr(corpus_mod, "default_corpus", boom)
    again = build_data(DataConfig(**SMALL), seed=1, cache_dir=cache)
    assert again.train_size == data.train_size


# ---- text files -------------------------------------------------------------------------------

def test_text_files_source(tmp_path, cache):
    texts = default_corpus()[:30]
    for i in range(3):
        (tmp_path / f"part{i}.txt").write_text("\n\n".join(texts[i * 10:(i + 1) * 10]), encoding="utf-8")
    (tmp_path / "ignored.md").write_text("not matched")
    d = build_data(DataConfig(text_files=str(tmp_path / "*.txt"), vocab_size=VOCAB, seq_len=64), cache_dir=cache)
    info = d.corpus_info()
    assert info["source"] == "text-files" and info["n_files"] == 3
    assert info["n_texts"] == sum(len([p for p in t.split("\n\n") if p.strip()]) for t in texts)
    assert d.train_batch(0, 4)["input_ids"].shape == (4, 64)


def test_text_files_errors(tmp_path, cache):
    with pytest.raises(UserError, match="text_files.*no files match"):
        build_data(DataConfig(text_files=str(tmp_path / "*.nothing")), cache_dir=cache)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 \xff\xfe binary")
    with pytest.raises(UserError, match="UTF-8") as err:
        build_data(DataConfig(text_files=str(bad), vocab_size=VOCAB), cache_dir=cache)
    assert str(bad) in str(err.value)
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("just a few words here")
    with pytest.raises(UserError, match="corpus too small"):
        build_data(DataConfig(text_files=str(tiny), vocab_size=VOCAB), cache_dir=cache)


def test_batch_larger_than_corpus_is_user_error(data):
    with pytest.raises(UserError, match="batch_size.*too small"):
        data.train_batch(0, data.train_size + 1)


@pytest.mark.parametrize("field,value", [("seq_len", 4), ("eval_fraction", 1.0), ("mlm_probability", 0.0),
                                         ("max_texts", 0), ("vocab_size", 3)])
def test_bad_config_fields_are_user_errors(field, value, cache):
    with pytest.raises(UserError, match=field):
        build_data(DataConfig(**{**SMALL, field: value}), cache_dir=cache)


def test_two_sources_is_user_error(cache):
    with pytest.raises(UserError, match="only one"):
        build_data(DataConfig(text_files="*.txt", dataset="x"), cache_dir=cache)


def test_unknown_dataset_offline_is_user_error(cache, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    # The libraries read these at import time, so patch the constants as well as the environment.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="could not load dataset 'accelsim-no-such-dataset'") as err:
        build_data(DataConfig(dataset="accelsim-no-such-dataset:cfg", vocab_size=VOCAB), cache_dir=cache)
    assert "dataset" in str(err.value) and "\n" not in str(err.value)
