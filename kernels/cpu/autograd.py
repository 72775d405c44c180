"""A masked ``nn.Linear`` whose products run on the project's own CPU kernels, as a torch.autograd.Function.

Triton-tutorial layout: the formats (:class:`SparseWeight`), the Function (:class:`SparseLinearFunction`),
a thin wrapper (:func:`sparse_linear`); ``tests/test_sparse_execution.py`` checks all three products
against dense torch with allclose.

Each of the three products of the layer picks its own kernel family (:class:`Paths`), because the
simulator's cost model does too (one op per phase, the fastest profile path wins):

* ``dense``: torch/MKL on the masked weight (the weight gradient dense, masked afterwards by the method);
* ``unstructured``: the C CSR kernel (``csr_c``) for Y = X Wᵀ and dX = dY W (the latter on the CSR of Wᵀ,
  CSR+CSC storage), torch's SDDMM (``sampled_addmm``) for the masked dW;
* ``block16`` / ``block32``: the C block kernels (``blocksparse_c``) for all three (a block is kept when any
  of its weights is, so a block size other than the mask's unit is still exact).

The structure (row pointers, block lists, gather indices) comes from the *mask*, never from the weight's
zeros: a freshly grown weight is zero yet trains. It is rebuilt only when the mask changes; the values
are gathered from the weight after every optimizer step (detected by the weight's version counter), a
gather of nnz elements per format. The weight gradient is returned dense-shaped (zeros off the mask) so
the optimizer and the sparsity method see what the masked path gives them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch.profiler import record_function

from accelsim.kernels.cpu.blocksparse import block_layout, native_linear, native_sddmm
from accelsim.kernels.cpu.csr import to_csr
from accelsim.kernels.cpu.csr_c import CSRArrays, native_csr_matmul

FAMILIES = ("dense", "unstructured", "block16", "block32")

#: torch.profiler labels of the parts of a sparse layer's step (benchmarks/bench_step_breakdown.py reads them;
#: the C kernels are not aten ops, so without a label their time is nobody's)
GATHER, FWD, DX, DW, SCATTER = ("accelsim::gather_values", "accelsim::sparse_fwd", "accelsim::sparse_dx",
                                "accelsim::sparse_dw", "accelsim::scatter_dw")


@dataclass(frozen=True)
class Paths:
    """Kernel family per product of one layer (each one of FAMILIES)."""

    fwd: str = "dense"
    dx: str = "dense"
    dw: str = "dense"

    def __post_init__(self):
        for f in (self.fwd, self.dx, self.dw):
            if f not in FAMILIES:
                raise ValueError(f"unknown kernel family {f!r}; expected one of {FAMILIES}")

    @property
    def any_sparse(self) -> bool:
        return (self.fwd, self.dx, self.dw) != ("dense",) * 3


def _block(family: str) -> int:
    return int(family[len("block"):])


class _CSR:
    """CSR of W (or of Wᵀ when ``transpose``) as the C kernel reads it, values gathered from W."""

    def __init__(self, mask: torch.Tensor, transpose: bool):
        cols_w = mask.shape[1]
        m = mask.T if transpose else mask
        r, c = m.nonzero(as_tuple=True)  # row-major: ascending columns within each row, as csr_c needs
        self.index = (c * cols_w + r) if transpose else (r * cols_w + c)  # flat positions in W
        row_ptr = torch.zeros(m.shape[0] + 1, dtype=torch.int32)
        row_ptr[1:] = torch.cumsum(torch.bincount(r, minlength=m.shape[0]), 0)
        self.rows, self.cols, self.row_ptr, self.col = m.shape[0], m.shape[1], row_ptr, c.to(torch.int32)

    def arrays(self, W: torch.Tensor) -> CSRArrays:
        return self.with_values(W.reshape(-1).index_select(0, self.index))

    def with_values(self, values: torch.Tensor) -> CSRArrays:
        return CSRArrays(self.rows, self.cols, self.row_ptr, self.col, values)


class _Blocks:
    """Block list of W (or of Wᵀ) for the C kernels, with the gather index of the transposed blocks they read."""

    def __init__(self, mask: torch.Tensor, b: int, transpose: bool):
        cols_w = mask.shape[1]
        m = mask.T.contiguous() if transpose else mask
        # the structure of kernels.cpu.blocksparse.block_layout (a block is kept when any of its weights is);
        # no values kept: ours are gathered from W every step
        self.layout = dataclasses.replace(block_layout(m, m, b), blocks=torch.empty(0, b, b))
        rr, cc = self.layout.row.long()[:, None, None], self.layout.col.long()[:, None, None]
        p = torch.arange(b)[None, :, None]
        q = torch.arange(b)[None, None, :]
        # BT[i, p, q] = block_i[q, p] of the matrix m; in W's coordinates (m = Wᵀ swaps row and column)
        mrow, mcol = rr * b + q, cc * b + p
        self.bt_index = ((mcol * cols_w + mrow) if transpose else (mrow * cols_w + mcol)).reshape(-1)
        # G[i, p, q] = dW[rr b + p, cc b + q] (the SDDMM's output order; only used on W's own layout)
        self.g_index = ((rr * b + p) * cols_w + cc * b + q).reshape(-1)

    def bt(self, W: torch.Tensor) -> torch.Tensor:
        lay = self.layout
        return W.reshape(-1).index_select(0, self.bt_index).view(lay.nnzb, lay.b, lay.b)


class SparseWeight:
    """The formats one masked weight needs for its chosen ``paths``; ``refresh(W)`` before each use."""

    def __init__(self, mask: torch.Tensor, paths: Paths):
        self.mask = mask.detach().to(torch.bool).contiguous()
        self.paths = paths
        self.shape = tuple(mask.shape)
        self._fwd = self._dx = self._dw = None
        if paths.fwd == "unstructured":
            self._fwd = _CSR(self.mask, transpose=False)
        elif paths.fwd.startswith("block"):
            self._fwd = _Blocks(self.mask, _block(paths.fwd), transpose=False)
        if paths.dx == "unstructured":
            self._dx = _CSR(self.mask, transpose=True)
        elif paths.dx.startswith("block"):
            self._dx = _Blocks(self.mask, _block(paths.dx), transpose=True)
        if paths.dw == "unstructured":
            self._mask_csr = to_csr(self.mask.to(torch.float32))
            self._dw_index = self.mask.reshape(-1).nonzero().squeeze(1)  # CSR (row-major) order
        elif paths.dw.startswith("block"):
            self._dw = _Blocks(self.mask, _block(paths.dw), transpose=False)
        # Wᵀ's CSR walks W column by column, one scattered element per cache line of a weight that is no longer in
        # cache after the optimizer step (bert-small RigL-90: 15.7 ms of gathers a step, 2x the block formats'):
        # its values are permuted from the forward's, gathered in W's memory order, which fit the L2 (Wᵀ's
        # row-major order is W's entries sorted by column, rows ascending: a stable sort of the forward's columns)
        self._dx_from_fwd = (torch.argsort(self._fwd.col, stable=True)
                             if isinstance(self._fwd, _CSR) and isinstance(self._dx, _CSR) else None)
        self._version: tuple[int, int] | None = None
        self._vals: dict[str, object] = {}

    def refresh(self, W: torch.Tensor, force: bool = False) -> None:
        """Gather the current values of W into the sparse formats (only when W changed since the last call,
        unless ``force``)."""
        key = (id(W), W._version)
        if key == self._version and not force:
            return
        with torch.no_grad():
            Wc = W.detach().contiguous()
            self._vals = {}
            for name, fmt in (("fwd", self._fwd), ("dx", self._dx)):
                if name == "dx" and self._dx_from_fwd is not None:
                    self._vals[name] = fmt.with_values(self._vals["fwd"].val.index_select(0, self._dx_from_fwd))
                elif isinstance(fmt, _CSR):
                    self._vals[name] = fmt.arrays(Wc)
                elif isinstance(fmt, _Blocks):
                    self._vals[name] = fmt.bt(Wc)
        self._version = key

    # the three products; X: T x d_in, dY: T x d_out, both contiguous float32
    def forward(self, X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        if isinstance(self._fwd, _CSR):
            return native_csr_matmul(X, self._vals["fwd"])
        if isinstance(self._fwd, _Blocks):
            return native_linear(X, self._fwd.layout, self._vals["fwd"])
        return X @ W.T

    def input_grad(self, dY: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        if isinstance(self._dx, _CSR):
            return native_csr_matmul(dY, self._vals["dx"])
        if isinstance(self._dx, _Blocks):
            return native_linear(dY, self._dx.layout, self._vals["dx"])
        return dY @ W

    def weight_grad(self, dY: torch.Tensor, X: torch.Tensor, dense: bool) -> torch.Tensor:
        """dW, dense-shaped. ``dense``: the full product (a method reads the gradient of pruned weights);
        otherwise the masked gradient, exact on the mask and zero elsewhere (the dense family computes
        the full product here too and leaves the masking to the method, as the masked path does)."""
        if dense or self.paths.dw == "dense":
            return dY.T @ X
        if self._dw is not None:
            vals, index = native_sddmm(dY, X, self._dw.layout).reshape(-1), self._dw.g_index
        else:
            vals = torch.sparse.sampled_addmm(self._mask_csr, dY.T.contiguous(), X, beta=0.0).values()
            index = self._dw_index
        with record_function(SCATTER):
            return scatter_to_dense(self.shape, index, vals)


def scatter_to_dense(shape: tuple, index: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    """A zero-filled dense tensor of ``shape`` with ``vals`` at the flat positions ``index`` (the dense-shaped
    weight gradient the optimizer and the sparsity method read)."""
    out = torch.zeros(shape, dtype=vals.dtype)
    out.view(-1).index_copy_(0, index, vals)
    return out


class SparseLinearFunction(torch.autograd.Function):
    """Y = X Wᵀ + b with X: T x d_in (contiguous); the products run as ``fmt`` says.

    ``dense_grad``: this step's weight gradient must be the full dense product (RigL on update steps,
    sparse momentum, SR-STE); on other steps only its nonzeros are computed.
    """

    @staticmethod
    def forward(ctx, X, W, b, fmt: SparseWeight, dense_grad: bool):
        with record_function(GATHER):
            fmt.refresh(W)
        with record_function(FWD):
            Y = fmt.forward(X, W)
            # the CSR kernel returns the transposed view of a contiguous Yᵀ; downstream dropout draws its mask in
            # memory order, so a transposed layout would drop other elements than the masked path does
            Y = Y.contiguous()
        if b is not None:
            Y.add_(b)
        ctx.fmt, ctx.dense_grad, ctx.has_bias = fmt, dense_grad, b is not None
        ctx.save_for_backward(X, W)
        return Y

    @staticmethod
    def backward(ctx, dY):
        X, W = ctx.saved_tensors
        dY = dY.contiguous()
        fmt = ctx.fmt
        with record_function(DX):
            # the CSR kernel's dX is the transposed view of a contiguous dXᵀ: copied once here, as the kernel
            # sweep times it (kernels.registry.row_major), instead of leaving every elementwise backward op
            # upstream to run strided (bert-small RigL-90: gelu_backward 66 ms a step on the view, 13 ms row-major)
            dX = fmt.input_grad(dY, W).contiguous() if ctx.needs_input_grad[0] else None
        with record_function(DW):
            dW = fmt.weight_grad(dY, X, ctx.dense_grad) if ctx.needs_input_grad[1] else None
        db = dY.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dX, dW, db, None, None


def sparse_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, fmt: SparseWeight,
                  dense_grad: bool = False) -> torch.Tensor:
    """``F.linear`` for any leading dims of ``x``, with the products of ``fmt`` (weight already masked)."""
    lead = x.shape[:-1]
    y = SparseLinearFunction.apply(x.reshape(-1, x.shape[-1]).contiguous(), weight, bias, fmt, dense_grad)
    return y.reshape(*lead, y.shape[-1])
