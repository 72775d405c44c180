"""BERT masked-language models for the trainer: size presets, construction, and layer roles.

The trace manifest names every encoder Linear layer with a *role* (``accelsim.trace.ROLES``) so the
simulator can place it in the op graph; :func:`linear_layers` finds them by the Hugging Face module
names of :data:`accelsim.bert.ROLE_BY_SUFFIX`.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM

from accelsim.bert import PRESETS as BERT_PRESETS
from accelsim.bert import ROLE_BY_SUFFIX
from accelsim.errors import UserError, expect

#: transformers.BertConfig size keywords of each preset (the presets and their sources: accelsim.bert)
PRESETS: dict[str, dict] = {name: dims.hf_config() for name, dims in BERT_PRESETS.items()}

#: BERT's own default; larger only when the run's sequence length needs it.
_DEFAULT_MAX_POSITIONS = 512

#: suffix of an encoder Linear's module name -> manifest role: accelsim.bert.ROLE_BY_SUFFIX
_ENCODER_LINEAR = re.compile(r"(?:^|\.)encoder\.layer\.\d+\.(" + "|".join(map(re.escape, ROLE_BY_SUFFIX)) + r")$")

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


def build_model(name_or_path: str, vocab_size: int, seq_len: int, *, dropout: float = 0.1,
                seed: int = 0) -> BertForMaskedLM:
    """A preset name gives a freshly initialised model; a local directory holding ``config.json``
    gives ``from_pretrained`` when weights are there, else a fresh model of that config.

    Initialisation runs under a forked torch RNG seeded with ``seed``: the weights are a function of
    ``seed`` alone, and the caller's global RNG (which drives dropout) is left untouched.
    """
    expect(vocab_size > 0, f"expected a positive vocabulary size, got {vocab_size}", field="vocab_size")
    expect(seq_len > 0, f"expected a positive sequence length, got {seq_len}", field="seq_len")
    expect(0.0 <= dropout < 1.0, f"expected a dropout probability in [0, 1), got {dropout}", field="dropout")
    path = Path(name_or_path).expanduser()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name_or_path in PRESETS:
            return _from_preset(name_or_path, vocab_size, seq_len, dropout)
        if path.is_dir() and (path / "config.json").is_file():
            return _from_dir(path, vocab_size, seq_len, dropout)
    raise UserError(f"unknown model '{name_or_path}'; expected a preset ({', '.join(PRESETS)}) "
                    "or a local directory with config.json", field="model")


def _dropout_kwargs(dropout: float) -> dict:
    return {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}


def _from_preset(name: str, vocab_size: int, seq_len: int, dropout: float) -> BertForMaskedLM:
    # sdpa: torch.utils.flop_counter counts scaled_dot_product_attention, so FLOPs are measurable.
    config = BertConfig(vocab_size=vocab_size, max_position_embeddings=max(_DEFAULT_MAX_POSITIONS, seq_len),
                        attn_implementation="sdpa", **PRESETS[name], **_dropout_kwargs(dropout))
    return BertForMaskedLM(config)


def _from_dir(path: Path, vocab_size: int, seq_len: int, dropout: float) -> BertForMaskedLM:
    try:
        config = BertConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserError(f"unreadable model config ({_first_line(err)})", source=path / "config.json") from None
    expect(config.model_type == "bert", f"expected a BERT config, got model_type '{config.model_type}'",
           source=path / "config.json", field="model_type")
    if not any((path / f).is_file() for f in _WEIGHT_FILES):
        config.vocab_size = vocab_size
        config.max_position_embeddings = max(config.max_position_embeddings, seq_len)
        config.update(_dropout_kwargs(dropout))
        config._attn_implementation = "sdpa"  # noqa: SLF001 -- the documented way for a config-built model
        return BertForMaskedLM(config)
    # Pretrained weights fix the table sizes: a tokenizer with more ids or longer sequences would
    # index past them at run time, so refuse here with a readable message instead.
    expect(config.vocab_size >= vocab_size,
           f"pretrained vocabulary has {config.vocab_size} entries but the tokenizer needs {vocab_size}",
           source=path / "config.json", field="vocab_size")
    expect(config.max_position_embeddings >= seq_len,
           f"pretrained model supports sequences up to {config.max_position_embeddings}, not {seq_len}",
           source=path / "config.json", field="max_position_embeddings")
    try:
        return BertForMaskedLM.from_pretrained(path, local_files_only=True, attn_implementation="sdpa",
                                               **_dropout_kwargs(dropout))
    except (OSError, ValueError, RuntimeError) as err:
        raise UserError(f"could not load model weights ({_first_line(err)})", source=path) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def linear_layers(model: torch.nn.Module) -> list[tuple[str, torch.nn.Linear, str]]:
    """(module name, module, role) of every encoder Linear, in model (forward) order.

    The MLM head's Linears are left out on purpose: the sparse-training methods sparsify the
    encoder only, and the simulator accounts for the head as dense.
    """
    out = []
    for name, module in model.named_modules():
        match = _ENCODER_LINEAR.search(name)
        if match and isinstance(module, torch.nn.Linear):
            out.append((name, module, ROLE_BY_SUFFIX[match.group(1)]))
    return out


def model_dims(model: BertForMaskedLM, seq_len: int) -> dict:
    """The trace manifest's ``model`` field."""
    cfg = model.config
    return {
        "layers": int(cfg.num_hidden_layers),
        "hidden": int(cfg.hidden_size),
        "heads": int(cfg.num_attention_heads),
        "intermediate": int(cfg.intermediate_size),
        "vocab": int(cfg.vocab_size),
        "seq_len": int(seq_len),
        "params": int(model.num_parameters()),
    }
