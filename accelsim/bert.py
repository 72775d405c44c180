"""BERT facts shared by the trainer and the synthetic traces, torch-free (numpy only).

One place for: the model size presets, the Hugging Face module name of each encoder Linear and the trace
role it gets (``accelsim.trace.ROLES``), the parameter count, how an overall sparsity is spread over the
layers (uniform, ERK) and RigL's cosine drop schedule. ``trainer/`` builds real models from these;
``accelsim/synth.py`` writes synthetic traces from them, so both describe the same network and schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from accelsim.errors import UserError


@dataclass(frozen=True)
class BertDims:
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int = 30522  # bert-base-uncased WordPiece vocabulary
    max_position: int = 512  # BERT's own default; the trainer widens it when a run's sequences are longer
    type_vocab: int = 2

    def hf_config(self) -> dict:
        """The size keywords of ``transformers.BertConfig`` (vocabulary and positions are the run's)."""
        return {"num_hidden_layers": self.layers, "hidden_size": self.hidden, "num_attention_heads": self.heads,
                "intermediate_size": self.intermediate}


#: Compact BERT sizes of Turc et al., "Well-Read Students Learn Better: On the Importance of Pre-training
#: Compact Models" (arXiv:1908.08962, 2019), the "BERT miniatures" released by Google; bert-base and
#: bert-large are Devlin et al. (2019). L / H / A / I; heads = hidden / 64 and intermediate = 4 x hidden.
PRESETS: dict[str, BertDims] = {
    "bert-tiny": BertDims(2, 128, 2, 512),
    "bert-mini": BertDims(4, 256, 4, 1024),
    "bert-small": BertDims(4, 512, 8, 2048),
    "bert-medium": BertDims(8, 512, 8, 2048),
    "bert-base": BertDims(12, 768, 12, 3072),
    "bert-large": BertDims(24, 1024, 16, 4096),
}

#: (role, HF module suffix, output dim, input dim) of an encoder block's Linears, in forward order;
#: H = hidden, I = intermediate. The sparse-training methods sparsify these (the MLM head stays dense).
ENCODER_LINEARS: tuple[tuple[str, str, str, str], ...] = (
    ("q", "attention.self.query", "H", "H"), ("k", "attention.self.key", "H", "H"),
    ("v", "attention.self.value", "H", "H"), ("attn_out", "attention.output.dense", "H", "H"),
    ("ffn_in", "intermediate.dense", "I", "H"), ("ffn_out", "output.dense", "H", "I"))
#: HF module-name suffix of an encoder Linear -> its trace role
ROLE_BY_SUFFIX: dict[str, str] = {suffix: role for role, suffix, _, _ in ENCODER_LINEARS}
#: the encoder Linears' roles, in forward order
LINEAR_ROLES: tuple[str, ...] = tuple(role for role, _, _, _ in ENCODER_LINEARS)


def bert_param_shapes(d: BertDims) -> list[tuple[int, ...]]:
    """Shapes of the parameter tensors of ``BertForMaskedLM`` (decoder tied to the word embeddings, no pooler):
    embeddings and their LayerNorm, every block's Linears and LayerNorms, the MLM head's transform, LayerNorm and
    decoder bias."""
    H, I = d.hidden, d.intermediate
    emb = [(d.vocab, H), (d.max_position, H), (d.type_vocab, H), (H,), (H,)]
    block = [(H, H), (H,)] * 4 + [(H,), (H,)] + [(I, H), (I,), (H, I), (H,), (H,), (H,)]
    head = [(H, H), (H,), (H,), (H,), (d.vocab,)]
    return emb + block * d.layers + head


def bert_params(d: BertDims) -> int:
    """Parameters of ``BertForMaskedLM`` (decoder tied to the word embeddings, no pooler)."""
    return sum(math.prod(s) for s in bert_param_shapes(d))


def bert_linears(d: BertDims) -> list[tuple[str, str, list[int]]]:
    """(HF module name, role, [out, in]) of every encoder Linear, in forward order."""
    dims = {"H": d.hidden, "I": d.intermediate}
    return [(f"bert.encoder.layer.{b}.{suffix}", role, [dims[o], dims[i]])
            for b in range(d.layers) for role, suffix, o, i in ENCODER_LINEARS]


# --- how an overall density is spread over the layers ------------------------------------------

Shapes = Mapping[str, Sequence[int]]  # layer name -> (out_features, in_features)


def uniform(shapes: Shapes, density: float) -> dict[str, float]:
    return {name: density for name in shapes}


def erk(shapes: Shapes, density: float) -> dict[str, float]:
    """Erdos-Renyi-Kernel (Evci et al. 2020): density_l = eps * (n_in + n_out) / (n_in * n_out).

    eps is solved so that the layers' nnz sum to density * total. A layer whose density would exceed 1
    is made dense and eps is re-solved for the rest, one layer at a time (the largest raw density first,
    since making it dense lowers eps and may bring the next one back under 1), as in RigL's code.
    Hand-written because no installed library exposes it; it is the formula of the RigL paper.
    """
    raw = {n: (r + c) / (r * c) for n, (r, c) in shapes.items()}
    numel = {n: r * c for n, (r, c) in shapes.items()}
    budget_total = density * sum(numel.values())
    dense: set[str] = set()
    eps = 0.0
    while len(dense) < len(shapes):
        rest = [n for n in shapes if n not in dense]
        budget = budget_total - sum(numel[n] for n in dense)
        eps = budget / sum(raw[n] * numel[n] for n in rest)  # raw * numel = n_in + n_out > 0
        worst = max(rest, key=lambda n: raw[n])
        if eps * raw[worst] <= 1.0:
            break
        dense.add(worst)
    return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}


DISTRIBUTIONS: dict[str, Callable[[Shapes, float], dict[str, float]]] = {"uniform": uniform, "erk": erk}


def layer_densities(distribution: str, shapes: Shapes, density: float) -> dict[str, float]:
    if distribution not in DISTRIBUTIONS:
        raise UserError(f"unknown distribution {distribution!r}; expected one of {sorted(DISTRIBUTIONS)}",
                        source="sparsity config", field="distribution")
    return DISTRIBUTIONS[distribution](shapes, density)


# --- RigL's drop schedule -----------------------------------------------------------------------

def cosine_drop_fraction(t, f0: float, t_end: float):
    """RigL's drop fraction f(t) = f0/2 * (1 + cos(pi t / T_end)), 0 from T_end on; ``t`` = completed
    steps (trainer/sparsity/schedules.py), a number or a numpy array (synthetic traces)."""
    if isinstance(t, np.ndarray):
        if t_end <= 0:
            return np.zeros(t.shape)
        return np.where(t >= t_end, 0.0, 0.5 * f0 * (1.0 + np.cos(math.pi * np.minimum(t, t_end) / t_end)))
    if t_end <= 0 or t >= t_end:
        return 0.0
    return 0.5 * f0 * (1.0 + math.cos(math.pi * t / t_end))
