"""WordPiece tokenizers: trained on the run's own corpus (and cached), or loaded from a local dir.

A corpus-specific vocabulary keeps the toy models honest: a tiny BERT with a 30k general-purpose
vocabulary would spend most of its parameters on embeddings it never sees.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from accelsim.errors import UserError, expect

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                  "mask_token": "[MASK]"}
#: Bump when the training pipeline changes so stale cached tokenizers are not reused.
PIPELINE_VERSION = 1


def default_cache_dir() -> Path:
    env = os.environ.get("ACCELSIM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "accelsim"


def get_tokenizer(texts_fn: Callable[[], Iterable[str]], corpus_key: str, vocab_size: int,
                  tokenizer_dir: str | Path | None, cache_dir: Path | None) -> PreTrainedTokenizerBase:
    """Load ``tokenizer_dir`` if given; else load the cached tokenizer trained on this corpus with
    this vocabulary size, training (calling ``texts_fn``) and caching it on a miss."""
    if tokenizer_dir is not None:
        return load_local_tokenizer(tokenizer_dir)
    expect(vocab_size >= 32, f"expected a vocabulary size of at least 32, got {vocab_size}", field="vocab_size")
    path = tokenizer_cache_path(corpus_key, vocab_size, cache_dir)
    if (path / "tokenizer.json").is_file():
        try:
            return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, json.JSONDecodeError):
            pass  # a damaged cache entry is rebuilt below, never trusted
    tokenizer = train_wordpiece(texts_fn(), vocab_size)
    _save_atomically(tokenizer, path)
    return tokenizer


def tokenizer_cache_path(corpus_key: str, vocab_size: int, cache_dir: Path | None) -> Path:
    key = json.dumps({"corpus": corpus_key, "vocab_size": vocab_size, "pipeline": PIPELINE_VERSION},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return Path(cache_dir or default_cache_dir()) / "tokenizers" / f"wordpiece-{digest}"


def train_wordpiece(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """The BertWordPieceTokenizer pipeline (lower-casing BERT normaliser, BERT pre-tokeniser,
    ``##`` continuation pieces, ``[CLS] A [SEP]`` template), trained on ``texts``.

    The trainer stops early when the corpus has fewer distinct pieces than ``vocab_size``, so a
    small corpus gets a smaller vocabulary; use ``len(tokenizer)`` as the model's vocabulary size.
    """
    tok = Tokenizer(models.WordPiece(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()),
                                        min_frequency=2, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def _save_atomically(tokenizer: PreTrainedTokenizerBase, path: Path) -> None:
    # Several runs may share the cache: write a private temp dir and rename it into place, so a
    # reader never sees a half-written tokenizer; if another run won the race, keep theirs.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, path)
        except OSError:
            if not (path / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_local_tokenizer(tokenizer_dir: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer saved with ``save_pretrained`` (any BERT-style one with the MLM special tokens)."""
    path = Path(tokenizer_dir).expanduser()
    expect(path.is_dir(), "tokenizer directory does not exist", source=path, field="tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"not a loadable tokenizer directory ({msg})", source=path, field="tokenizer") from None
    missing = [name for name in SPECIAL_TOKENS if getattr(tokenizer, name, None) is None]
    expect(not missing, f"tokenizer lacks the special tokens MLM packing needs: {missing}",
           source=path, field="tokenizer")
    return tokenizer


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Content hash of a tokenizer (vocabulary, normaliser, special tokens) for data-cache keys."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    specials = json.dumps({name: getattr(tokenizer, name, None) for name in SPECIAL_TOKENS}, sort_keys=True)
    return hashlib.sha256((body + specials).encode()).hexdigest()[:20]
