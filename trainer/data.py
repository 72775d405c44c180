"""Masked-language-model data: packed BERT pretraining sequences with reproducible batches.

Every batch is a pure function of ``(seed, step)``: the sequence order is a per-epoch permutation
seeded by ``(seed, epoch)`` and the 80/10/10 masking draws from a private ``torch.Generator`` seeded
by ``(seed, step)``. Nothing touches the global torch RNG (dropout owns it), so a resumed run sees
exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase

from accelsim.errors import expect
from accelsim.trainer.corpus import CorpusSource, default_corpus, resolve_corpus
from accelsim.trainer.tokenizer import default_cache_dir, get_tokenizer, tokenizer_fingerprint

__all__ = ["DataConfig", "MLMData", "build_data", "default_corpus"]

#: Bump when the packing recipe changes so cached sequence arrays are rebuilt.
PACKING_VERSION = 1
#: Texts tokenised per call: bounds peak memory of the Python id lists on large corpora.
_TOKENIZE_CHUNK = 2048
# Distinct stream tags so the train-masking, eval-masking and split generators never coincide.
_TAG_TRAIN_MASK, _TAG_EPOCH, _TAG_SPLIT, _TAG_EVAL_MASK = 1, 2, 3, 4


@dataclass
class DataConfig:
    text_files: str | None = None     # glob of UTF-8 files; blank-line separated paragraphs are documents
    dataset: str | None = None        # "NAME[:CONFIG]" for datasets.load_dataset (train split)
    tokenizer: str | None = None      # local tokenizer dir; None trains (and caches) one on the corpus
    vocab_size: int = 8192            # small models: a 30k vocab would dominate their parameter count
    seq_len: int = 128                # BERT phase-1 pretraining length (Devlin et al. 2019)
    eval_fraction: float = 0.05       # held-out sequences; enough for a stable loss, little lost to training
    mlm_probability: float = 0.15     # BERT's masking rate
    max_texts: int | None = None      # first N texts only: fast tests and quick looks
    split_seed: int = 0               # fixed apart from the run seed so runs with different seeds share one eval set


def _hash_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers; SeedSequence mixes them so nearby steps get unrelated streams."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _validate(cfg: DataConfig) -> None:
    expect(cfg.seq_len >= 8, f"expected a sequence length of at least 8, got {cfg.seq_len}", field="seq_len")
    expect(0.0 <= cfg.eval_fraction < 1.0, f"expected a fraction in [0, 1), got {cfg.eval_fraction}",
           field="eval_fraction")
    expect(0.0 < cfg.mlm_probability < 1.0, f"expected a probability in (0, 1), got {cfg.mlm_probability}",
           field="mlm_probability")
    expect(cfg.max_texts is None or cfg.max_texts > 0, f"expected a positive count, got {cfg.max_texts}",
           field="max_texts")


def build_data(cfg: DataConfig, seed: int = 0, *, cache_dir: Path | None = None) -> "MLMData":
    """Resolve the corpus, get its tokenizer, pack (or load cached) sequences, split train/eval."""
    _validate(cfg)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    source = resolve_corpus(cfg)
    tokenizer = get_tokenizer(lambda: source.texts, source.key, cfg.vocab_size, cfg.tokenizer, cache_dir)
    sequences, stats = _packed_sequences(source, tokenizer, cfg.seq_len, cache_dir)
    info = {**source.info, **stats, "max_texts": cfg.max_texts,
            "tokenizer": str(cfg.tokenizer) if cfg.tokenizer else "wordpiece-trained-on-corpus"}
    return MLMData(tokenizer, sequences, cfg, seed, info)


def _packed_sequences(source: CorpusSource, tokenizer: PreTrainedTokenizerBase, seq_len: int,
                      cache_dir: Path) -> tuple[np.ndarray, dict]:
    key = _hash_key(source.key, tokenizer_fingerprint(tokenizer), seq_len, PACKING_VERSION)
    array_path = cache_dir / "data" / f"seqs-{key}.npy"
    meta_path = array_path.with_suffix(".json")
    if array_path.is_file() and meta_path.is_file():
        try:
            return np.load(array_path, allow_pickle=False), json.loads(meta_path.read_text())
        except (OSError, ValueError):
            pass  # damaged cache entry: rebuild it
    texts = source.texts
    sequences = pack_sequences(texts, tokenizer, seq_len)
    expect(len(sequences) >= 2,
           f"corpus too small: {sum(map(len, texts))} characters give {len(sequences)} sequences of "
           f"{seq_len} tokens, need at least 2 (one to train, one to evaluate)", field=_source_field(source))
    stats = {"n_texts": len(texts), "n_chars": sum(map(len, texts)), "n_seqs": len(sequences)}
    array_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(array_path, lambda f: np.save(f, sequences, allow_pickle=False))
    _atomic_write(meta_path, lambda f: f.write(json.dumps(stats).encode()))
    return sequences, stats


def _source_field(source: CorpusSource) -> str:
    return {"text-files": "text_files", "dataset": "dataset"}.get(source.info.get("source"), "max_texts")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def pack_sequences(texts: list[str], tokenizer: PreTrainedTokenizerBase, seq_len: int) -> np.ndarray:
    """BERT pretraining packing: the texts' tokens joined by [SEP] into one stream, cut into
    ``seq_len - 2`` token pieces, each framed as ``[CLS] piece [SEP]``; the ragged tail is dropped."""
    sep, cls = tokenizer.sep_token_id, tokenizer.cls_token_id
    parts = []
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        # verbose=False: long documents exceed model_max_length by design; they are cut below.
        ids = tokenizer(texts[start:start + _TOKENIZE_CHUNK], add_special_tokens=False, verbose=False)["input_ids"]
        for doc in ids:
            parts.append(np.asarray(doc, dtype=np.int32))
            parts.append(np.asarray([sep], dtype=np.int32))
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    body = seq_len - 2
    n = len(stream) // body
    out = np.empty((n, seq_len), dtype=np.int32)
    out[:, 0] = cls
    out[:, 1:-1] = stream[: n * body].reshape(n, body)
    out[:, -1] = sep
    return out


class MLMData:
    """Train/eval split of packed sequences plus deterministic MLM batches."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, sequences: np.ndarray, cfg: DataConfig, seed: int,
                 info: dict):
        self.tokenizer = tokenizer
        self.seq_len = cfg.seq_len
        self.seed = int(seed)
        self._split_seed = int(cfg.split_seed)
        n = len(sequences)
        n_eval = min(n - 1, int(np.ceil(n * cfg.eval_fraction))) if cfg.eval_fraction > 0 else 0
        order = np.random.default_rng([self._split_seed, _TAG_SPLIT]).permutation(n)
        self._eval = sequences[np.sort(order[:n_eval])]
        self._train = sequences[np.sort(order[n_eval:])]
        self.train_size, self.eval_size = len(self._train), len(self._eval)
        self._special_ids = np.asarray(sorted(set(tokenizer.all_special_ids)), dtype=np.int32)
        self._collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.mlm_probability)
        self._perms: dict[int, np.ndarray] = {}
        self._eval_masked: dict[str, torch.Tensor] | None = None
        self._info = {**info, "seq_len": cfg.seq_len, "n_train_seqs": self.train_size,
                      "n_eval_seqs": self.eval_size, "eval_fraction": cfg.eval_fraction,
                      "split_seed": self._split_seed, "mlm_probability": cfg.mlm_probability,
                      "tokenizer_vocab": len(tokenizer)}

    @property
    def vocab_size(self) -> int:
        """Ids the model must embed (may be below the requested size on a small corpus)."""
        return len(self.tokenizer)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            if len(self._perms) >= 2:  # a batch spans at most two epochs; older ones are done
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, epoch, _TAG_EPOCH]).permutation(self.train_size)
        return self._perms[epoch]

    def _mask(self, rows: np.ndarray, generator_seed: int) -> dict[str, torch.Tensor]:
        # The collator draws from ``self.generator`` when set (transformers >= 4.46); giving it a
        # fresh generator per call makes masking a function of the seed alone, and keeps the
        # global RNG untouched.
        self._collator.generator = torch.Generator().manual_seed(generator_seed)
        special = np.isin(rows, self._special_ids)
        examples = [{"input_ids": torch.from_numpy(r.astype(np.int64)),
                     "special_tokens_mask": torch.from_numpy(s.astype(np.int64))} for r, s in zip(rows, special)]
        return dict(self._collator(examples))

    def train_batch(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        """Batch ``step`` of size ``batch_size``: ``input_ids``, ``attention_mask``, ``labels``
        (-100 where no prediction is scored); a pure function of (seed, step, batch_size)."""
        expect(step >= 0, f"expected a non-negative step, got {step}", field="step")
        expect(0 < batch_size <= self.train_size,
               f"corpus too small for one batch: {self.train_size} training sequences of {self.seq_len} "
               f"tokens, batch size {batch_size}", field="batch_size")
        flat = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
        epochs, positions = np.divmod(flat, self.train_size)
        index = np.empty(batch_size, dtype=np.int64)
        for epoch in np.unique(epochs):
            sel = epochs == epoch
            index[sel] = self._epoch_order(int(epoch))[positions[sel]]
        return self._mask(self._train[index], _derived_seed(self.seed, step, _TAG_TRAIN_MASK))

    def eval_batches(self, batch_size: int, max_batches: int | None = None) -> Iterator[dict[str, torch.Tensor]]:
        """The held-out set in fixed order with fixed masking (masked once, seeded by the split
        seed, so every evaluation of every run scores the same tokens whatever the batch size)."""
        expect(batch_size > 0, f"expected a positive batch size, got {batch_size}", field="batch_size")
        if self._eval_masked is None and self.eval_size:
            self._eval_masked = self._mask(self._eval, _derived_seed(self._split_seed, _TAG_EVAL_MASK))
        starts = range(0, self.eval_size, batch_size)[:max_batches]
        masked = self._eval_masked or {}
        return ({k: v[start:start + batch_size] for k, v in masked.items()} for start in starts)

    def corpus_info(self) -> dict:
        """JSON-serialisable description of the data for the trace manifest."""
        return dict(self._info)

