"""Whole-model rows of the published dataset: a BERT or ViT forward pass (inference) costed op by op.

The simulator replays training traces; a published inference timing (PyTorch's 2:4 tutorial: BERT-base
question answering at batch 4..256, sequence 384) is one forward pass. This builds that pass from the same
:class:`~accelsim.workload.Op` vocabulary and BERT sizes (accelsim.bert.PRESETS) the training workload
uses — embeddings, per encoder layer the four attention projections and two FFN products, the two
attention matmuls, softmax / LayerNorm / GELU / residual, the QA head — and costs it with
``op_cost`` (the simulator's per-op model). The sparse run differs only in the encoder linears, which run
on the row's own path (the dense path where that path cannot run them), so the result shows how much of
a kernel speedup survives the rest of the model.

ViT rows (torchao's SuperBlock benchmark: ViT-B/16 and ViT-H/14 at batch 256) are the same encoder with
torchvision's layout: a patch-embedding product, a fused QKV projection, and only the MLP linears sparse
(the benchmark's filter sparsifies modules named ``mlp``).

``<preset>-encoder`` (e.g. ``bert-base-encoder``) is the encoder stack alone, as FasterTransformer's BERT
op runs it: hidden states in, hidden states out, no embeddings and no head.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from accelsim.bert import PRESETS
from accelsim.errors import UserError
from accelsim.hardware import HardwareProfile, op_cost, synthetic_pattern
from accelsim.workload import Op


def _mm(name: str, kind: str, m: int, k: int, n: int, *, batch: int = 1, density: float = 1.0,
        role: str = "") -> Op:
    dense = 2.0 * m * k * n * batch
    sparse = density < 1.0
    return Op(name=name, kind=kind, phase="fwd", role=role, m=m, k=k, n=n, density=density, sparse=sparse,
              flops_dense=dense, flops=dense * density, batch=batch)


def bert_forward_ops(model: str, batch: int, seq: int, density: float = 1.0, labels: int = 2) -> list[Op]:
    """The ops of one BERT forward pass; encoder linears at ``density`` (the QA head stays dense, as in
    the tutorial, whose sparsifier takes only the encoder's nn.Linear layers). ``<preset>-encoder`` is the
    encoder stack alone, hidden states in and out (FasterTransformer's BERT op: no embeddings, no head)."""
    encoder_only = model.endswith(ENCODER) and model[: -len(ENCODER)] in PRESETS
    preset = model[: -len(ENCODER)] if encoder_only else model
    if preset not in PRESETS:
        raise UserError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}", field="model")
    d = PRESETS[preset]
    T, H, I, heads = batch * seq, d.hidden, d.intermediate, d.heads
    ops = [] if encoder_only else [
        Op("embeddings", "embedding", "fwd", elements=T * H),
        Op("embeddings.layernorm", "elementwise", "fwd", role="layernorm", elements=2 * T * H)]
    for blk in range(d.layers):
        for nm, k, n in (("q", H, H), ("k", H, H), ("v", H, H), ("o", H, H), ("ffn_in", H, I), ("ffn_out", I, H)):
            ops.append(_mm(f"block{blk}.{nm}", "linear", T, k, n, density=density))
        for nm in ("scores", "context"):
            ops.append(_mm(f"block{blk}.attn_{nm}", "attn_matmul", seq, H // heads, seq, batch=batch * heads))
        for nm, elems in (("softmax", batch * heads * seq * seq), ("layernorm", 2 * T * H), ("gelu", T * I),
                          ("residual", 2 * T * H)):
            ops.append(Op(f"block{blk}.{nm}", "elementwise", "fwd", role=nm, elements=elems))
    if not encoder_only:
        ops.append(_mm("qa_head", "linear", T, H, labels))
    return ops


@dataclass(frozen=True)
class VitDims:
    layers: int
    hidden: int
    heads: int
    intermediate: int
    patch: int
    image: int = 224  # torchvision's evaluation crop (the benchmark's default val_crop_size)
    classes: int = 1000

    @property
    def seq(self) -> int:
        return (self.image // self.patch) ** 2 + 1  # patches + the class token


#: torchvision vit_b_16 / vit_h_14 (Dosovitskiy et al. 2021, table 1: L / H / MLP / heads)
VIT_PRESETS: dict[str, VitDims] = {
    "vit-b-16": VitDims(12, 768, 12, 3072, 16),
    "vit-h-14": VitDims(32, 1280, 16, 5120, 14),
}
#: suffix of a BERT preset's encoder stack alone (no embeddings, no head)
ENCODER = "-encoder"
#: every model a whole-model row may name
MODELS = (*PRESETS, *(p + ENCODER for p in PRESETS), *VIT_PRESETS)


def vit_forward_ops(model: str, batch: int, seq: int, density: float = 1.0) -> list[Op]:
    """The ops of one torchvision ViT forward pass; the MLP linears at ``density`` (attention and the
    patch embedding stay dense, as SuperBlock's ``mlp`` filter leaves them)."""
    d = VIT_PRESETS[model]
    if seq != d.seq:
        raise UserError(f"{model} at {d.image}px has {d.seq} tokens per image, not {seq}", field="seq_len")
    T, H, I, heads = batch * seq, d.hidden, d.intermediate, d.heads
    ops = [_mm("conv_proj", "linear", batch * (seq - 1), 3 * d.patch ** 2, H),
           Op("pos_embedding", "elementwise", "fwd", role="residual", elements=T * H)]
    for blk in range(d.layers):
        ops += [_mm(f"block{blk}.in_proj", "linear", T, H, 3 * H), _mm(f"block{blk}.out_proj", "linear", T, H, H),
                _mm(f"block{blk}.mlp0", "linear", T, H, I, density=density),
                _mm(f"block{blk}.mlp3", "linear", T, I, H, density=density)]
        for nm in ("scores", "context"):
            ops.append(_mm(f"block{blk}.attn_{nm}", "attn_matmul", seq, H // heads, seq, batch=batch * heads))
        for nm, elems in (("softmax", batch * heads * seq * seq), ("layernorm", 2 * T * H), ("gelu", T * I),
                          ("residual", 2 * T * H)):
            ops.append(Op(f"block{blk}.{nm}", "elementwise", "fwd", role=nm, elements=elems))
    ops += [Op("ln", "elementwise", "fwd", role="layernorm", elements=T * H),
            _mm("head", "linear", batch, H, d.classes)]
    return ops


def forward_ops(model: str, batch: int, seq: int, density: float = 1.0) -> list[Op]:
    """The forward pass of a whole-model row's ``model`` (a BERT preset or a ViT)."""
    if model in VIT_PRESETS:
        return vit_forward_ops(model, batch, seq, density)
    return bert_forward_ops(model, batch, seq, density)


def forward_time(profile: HardwareProfile, ops: list[Op], dtype: str, pattern_kind: str, path: str | None,
                 eager: bool = False, fastest: bool = False) -> float:
    """Seconds of the pass; sparse linears on ``path`` when it can run them, else the fastest path.
    ``eager``: every op is dispatched from eager PyTorch (a path's ``dispatch_overhead`` bounds its calls).
    ``fastest``: the library timed both and runs each product on the faster of ``path`` and dense
    (FasterTransformer's gemm test keeps a sparse GEMM only where it beat the dense one)."""
    # every encoder layer repeats the same ops: cost each distinct op once (the fit calls this often)
    counts: dict[tuple, tuple[Op, int]] = {}
    for op in ops:
        key = (op.kind, op.role, op.m, op.k, op.n, op.batch, op.density, op.elements)
        counts[key] = (op, counts[key][1] + 1 if key in counts else 1)
    total = 0.0
    for op, count in counts.values():
        pat = synthetic_pattern(op.n, op.k, op.density, pattern_kind) if op.sparse else None
        try:
            t = op_cost(profile, op, pat, dtype=dtype, path=path if op.sparse else None, eager=eager).time_s
        except UserError:
            t = op_cost(profile, op, pat, dtype=dtype, eager=eager).time_s
        if fastest and op.sparse:
            t = min(t, op_cost(profile, replace(op, density=1.0, sparse=False, flops=op.flops_dense), None,
                               dtype=dtype, eager=eager).time_s)
        total += count * t
    return total
