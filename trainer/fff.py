"""Fast feedforward (FFF) layers for BERT: UltraSparseBERT-KxD (Belcak & Wattenhofer, 2023).

``--ffn fff:KxD`` replaces every encoder block's feedforward pair (``BertIntermediate`` and the dense of
``BertOutput``) by K parallel binary trees of depth D (D+1 levels, leaf size 1, GELU on every node,
tree outputs summed). ``BertOutput``'s dropout, residual add and LayerNorm stay as they are. ``3072x0``
is a dense FFN of width 3072 (without the output bias, as in the paper's training code).

Training follows the paper's training code (UltraFastBERT ``training/cramming/architectures/fff.py``):
hard routing by the sign of each node's logit also during training, the routing has no gradient, and
the gradient flows through GELU(logit) of the visited nodes only. The paper computes every node's
logit and masks; here the same function and the same gradients are computed on the path only (node
rows gathered per token, :class:`_FFFPath`), so training costs O(K*(D+1)) rather than O(K*2^(D+1)) per
token. For shallow trees, where most neurons are on the path anyway, the masked dense formulation is
used instead (``GATHER_MAX_PATH_FRACTION``). The manifest records which one ran (``train_mode``), and
accelsim.workload counts FLOPs accordingly. Inference uses the same hard routing.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from accelsim import trace as tr
from accelsim.errors import UserError
from accelsim.workload import fff_forward_flops
from accelsim.kernels.fff_cpu import fff_forward, fff_masked_dense, nodes_per_tree

#: Path fraction K(D+1)/(K(2^(D+1)-1)) up to which the path-only (gather) formulation trains; above it
#: (depth <= 3) gathering rows per token moves more memory than one dense GEMM over all neurons, which
#: runs at several times the FLOP rate of memory-bound gathers on CPUs. An engineering choice, not a
#: measured crossover; outputs and gradients are identical either way.
GATHER_MAX_PATH_FRACTION = 0.25
#: 2^25 neurons per tree is far beyond any sensible FFN and keeps parameter counts from overflowing.
MAX_DEPTH = 24
_SPEC = re.compile(r"^fff:(\d+)x(\d+)$")


@dataclass(frozen=True)
class FFFSpec:
    trees: int  # K
    depth: int  # D: edges from root to leaf, so D+1 levels and 2^(D+1)-1 neurons per tree

    @property
    def levels(self) -> int:
        return self.depth + 1

    @property
    def neurons(self) -> int:
        return self.trees * nodes_per_tree(self.depth)

    @property
    def path_neurons(self) -> int:
        return self.trees * self.levels

    @property
    def name(self) -> str:
        return f"UltraSparseBERT-{self.trees}x{self.depth}"

    def train_mode(self) -> str:
        return "gather" if self.path_neurons / self.neurons <= GATHER_MAX_PATH_FRACTION else "masked"

    def manifest_entry(self) -> dict:
        """``manifest.model["ffn"]`` (docs/trace-format.md)."""
        return {"type": "fff", "trees": self.trees, "depth": self.depth, "train_mode": self.train_mode()}


def parse_ffn(spec: str) -> FFFSpec | None:
    """``dense`` -> None; ``fff:KxD`` -> FFFSpec(K, D). Anything else is a UserError."""
    if spec == "dense":
        return None
    m = _SPEC.match(str(spec).strip())
    if m and int(m.group(1)) >= 1 and int(m.group(2)) <= MAX_DEPTH:
        return FFFSpec(int(m.group(1)), int(m.group(2)))
    raise UserError(f"expected 'dense' or 'fff:KxD' with K >= 1 trees and depth 0 <= D <= {MAX_DEPTH} "
                    f"(e.g. fff:1x11), got {spec!r}", field="ffn")


def _gelu_grad(lam: torch.Tensor) -> torch.Tensor:
    """d/dx of the exact GELU x*Phi(x): Phi(x) + x*phi(x)."""
    cdf = 0.5 * (1.0 + torch.erf(lam * (1.0 / math.sqrt(2.0))))
    return cdf + lam * torch.exp(-0.5 * lam * lam) * (1.0 / math.sqrt(2.0 * math.pi))


class _FFFPath(torch.autograd.Function):
    """FFF forward/backward over the visited nodes only. Forward: the CPU/GPU CMM kernels. Backward,
    one level at a time (temporaries stay [T, K, H]): gathered rows and ``index_add_`` scatters."""

    @staticmethod
    def forward(ctx, x, w_in, b_in, w_out, trees: int, depth: int):
        if x.is_cuda:
            from accelsim.kernels.triton.fff import fff_triton
            y, nodes, logits = fff_triton(x, w_in, b_in, w_out, trees, depth, return_paths=True)
        else:
            y, nodes, logits = fff_forward(x, w_in, b_in, w_out, trees, depth, return_paths=True)
        ctx.save_for_backward(x, w_in, w_out, nodes, logits)
        ctx.mark_non_differentiable(nodes)
        return y, nodes

    @staticmethod
    def backward(ctx, dy, _dnodes):
        x, w_in, w_out, nodes, logits = ctx.saved_tensors
        T, H = x.shape
        trees = nodes.shape[1]
        need_x, need_win, need_b, need_wout = ctx.needs_input_grad[:4]
        dx = torch.zeros_like(x) if need_x else None
        dw_in = torch.zeros_like(w_in) if need_win else None
        db = torch.zeros(w_in.shape[0], dtype=x.dtype, device=x.device) if need_b else None
        dw_out = torch.zeros_like(w_out) if need_wout else None
        dy = dy.contiguous()
        for level in range(nodes.shape[2]):
            idx = nodes[:, :, level].reshape(-1)
            lam = logits[:, :, level]
            if need_wout:
                dw_out.index_add_(0, idx, (F.gelu(lam).unsqueeze(-1) * dy.unsqueeze(1)).reshape(-1, H))
            g_act = torch.linalg.vecdot(w_out.index_select(0, idx).view(T, trees, H), dy.unsqueeze(1))
            g_lam = g_act * _gelu_grad(lam)
            if need_b:
                db.index_add_(0, idx, g_lam.reshape(-1))
            if need_win:
                dw_in.index_add_(0, idx, (g_lam.unsqueeze(-1) * x.unsqueeze(1)).reshape(-1, H))
            if need_x:
                dx += torch.einsum("tk,tkh->th", g_lam, w_in.index_select(0, idx).view(T, trees, H))
        return dx, dw_in, db, dw_out, None, None


class FFFLayer(nn.Module):
    """Drop-in for ``BertIntermediate``: hidden [.., H] -> FFF output [.., H]. ``last_nodes`` keeps the
    visited rows [T, K, D+1] of the latest forward for the trace's load statistics."""

    def __init__(self, hidden: int, spec: FFFSpec, mode: str | None = None):
        super().__init__()
        self.hidden, self.spec = hidden, spec
        self.mode = mode or spec.train_mode()
        if self.mode not in ("gather", "masked"):
            raise ValueError(f"unknown FFF mode {self.mode!r}")
        self.weight_in = nn.Parameter(torch.empty(spec.neurons, hidden))
        self.bias_in = nn.Parameter(torch.empty(spec.neurons))
        self.weight_out = nn.Parameter(torch.empty(spec.neurons, hidden))
        self.last_nodes: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the paper's training code: U(+-1/sqrt(H)) in, U(+-1/sqrt(K(D+1))) out (a token sums K(D+1) rows)
        k_in = 1.0 / math.sqrt(self.hidden)
        k_out = 1.0 / math.sqrt(self.spec.path_neurons)
        with torch.no_grad():
            self.weight_in.uniform_(-k_in, k_in)
            self.bias_in.uniform_(-k_in, k_in)
            self.weight_out.uniform_(-k_out, k_out)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = hidden_states.reshape(-1, self.hidden)
        args = (x, self.weight_in, self.bias_in, self.weight_out, self.spec.trees, self.spec.depth)
        if self.mode == "gather":
            y, nodes = _FFFPath.apply(*args)
        else:
            y, nodes, _ = fff_masked_dense(*args, return_paths=True)
        self.last_nodes = nodes.detach()
        return y.view_as(hidden_states)

    def extra_repr(self) -> str:
        return f"{self.spec.name}, hidden={self.hidden}, neurons={self.spec.neurons}, mode={self.mode}"


def apply_fff(model: nn.Module, spec: str | FFFSpec | None, seed: int = 0) -> list[tuple[str, FFFLayer]]:
    """Replace the FFN of every BERT encoder block by an FFF layer, in place; returns (module name,
    layer) in block order. ``spec`` "dense"/None changes nothing. Initialisation runs under a forked RNG
    seeded with ``seed`` so the caller's RNG stream (dropout) is the same as for a dense model."""
    spec = parse_ffn(spec) if isinstance(spec, str) else spec
    if spec is None:
        return []
    out = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, module in list(model.named_modules()):
            if hasattr(module, "intermediate") and hasattr(getattr(module, "output", None), "LayerNorm"):
                layer = FFFLayer(module.output.LayerNorm.normalized_shape[0], spec)
                module.intermediate = layer
                module.output.dense = nn.Identity()  # keeps BertOutput's dropout, residual and LayerNorm
                out.append((f"{name}.intermediate" if name else "intermediate", layer))
    if not out:
        raise UserError("the model has no BERT encoder blocks (intermediate + output) to turn into FFF layers",
                        field="ffn")
    config = getattr(model, "config", None)
    if config is not None:  # the manifest reports the dense-equivalent width of the FFF
        config.intermediate_size = spec.neurons
    return out


def layer_stats(nodes: torch.Tensor, spec: FFFSpec, hidden: int) -> dict:
    """One fff-table row's statistics (docs/trace-format.md) from the visited rows [T, K, D+1]."""
    T = nodes.shape[0]
    n_tree = nodes_per_tree(spec.depth)
    counts = torch.bincount(nodes.reshape(-1).cpu(), minlength=spec.neurons).view(spec.trees, n_tree).double()
    flat = nodes.reshape(T, -1).sort(dim=1).values
    distinct = (flat.diff(dim=1) != 0).sum(dim=1) + 1 if T else torch.zeros(0)
    per_token = float(distinct.double().mean()) if T else 0.0
    used, max_visits, cv = [], [], []
    for level in range(spec.levels):
        c = counts[:, (1 << level) - 1:(1 << (level + 1)) - 1]
        mean = float(c.mean())
        used.append(int((c > 0).sum()))
        max_visits.append(int(c.max()))
        cv.append(float(c.std(unbiased=False)) / mean if mean > 0 else 0.0)
    return {"tokens": T, "trees": spec.trees, "depth": spec.depth, "neurons": spec.neurons,
            "neurons_per_token": per_token, "nodes_used": int((counts > 0).sum()),
            "level_nodes_used": used, "level_max_visits": max_visits, "level_cv": cv,
            "flops_cond": fff_forward_flops(T, hidden, per_token),
            "flops_dense_equiv": fff_forward_flops(T, hidden, spec.neurons)}


class FFFRecorder:
    """Buffers fff-table rows and appends them at each trace flush (like the TraceWriter's tables).
    With no FFF layers every method is a no-op, so the training loop calls it unconditionally."""

    def __init__(self, run, layers: list[tuple[str, FFFLayer]]):
        self.run = run
        self.layers = layers
        self._rows: list[dict] = []

    def record(self, step: int) -> None:
        for name, layer in self.layers:
            if layer.last_nodes is not None:
                self._rows.append({"step": step, "layer": name,
                                   **layer_stats(layer.last_nodes, layer.spec, layer.hidden)})

    def flush(self) -> None:
        tr.append_rows(self.run, "fff", self._rows)
        self._rows.clear()

    def discard_after(self, step: int) -> None:
        self._rows = [r for r in self._rows if r["step"] <= step]
