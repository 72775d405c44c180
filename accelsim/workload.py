"""The work of one training step as a list of ops, built from a manifest and the current densities.

This is the single place where FLOPs are defined: the trainer sums these ops into the ``flops_*``
columns of ``steps.parquet`` and the simulator schedules the very same ops on hardware, so the two
can never count differently. Conventions (RigL paper, Evci et al. 2020, appendix H):

* a matmul of (m x k) by (k x n) costs 2*m*k*n FLOPs; with a weight of density d, 2*m*k*n*d;
* backward = 2 x forward: one product for the input gradient, one for the weight gradient;
* the weight gradient is computed for nonzeros only, except when the method needs the dense
  gradient on this step (RigL on mask-update steps, sparse momentum on every step);
* only matrix products count as FLOPs in the trace (as torch.utils.flop_counter does); elementwise
  ops (softmax, LayerNorm, GELU, residual adds), embeddings, the optimizer and mask updates are listed
  with their element counts so the simulator can charge their memory traffic and vector work.
  Optimizer and mask-update FLOPs use the per-element constants below (documented assumptions).

Fast feedforward (FFF, UltraSparseBERT) models (``manifest.model["ffn"]["type"] == "fff"``) have no
ffn_in/ffn_out linear layers; each block gets ``cond_matmul`` ops instead (:func:`fff_layer_ops`): a token
multiplies only the K*(D+1) weight rows on its tree paths. m/k/n are those of the dense FF of equal
width, ``density`` is the fraction of rows a token uses, and ``sparse`` says whether the trainer
computed only those (train_mode "gather") or all neurons before masking (train_mode "masked").
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from accelsim import bert
from accelsim.trace import PHASES, LayerInfo, Manifest

#: AdamW per updated parameter: two moment updates, bias corrections, sqrt, divide, decay, update.
ADAM_FLOPS_PER_PARAM = 10.0
#: Mask update per candidate weight: magnitude/score plus a top-k selection of ~log2(n) compares.
MASK_SCORE_FLOPS_PER_ELEMENT = 2.0

#: role of a linear layer's bias-gradient reduction (:func:`_bias_grad`)
BIAS_GRAD = "bias_grad"
#: Roles of the work accelsim's own sparse execution (``manifest.execution == "sparse"``,
#: accelsim.kernels.cpu.autograd) does around its kernels (:func:`sparse_execution_ops`); a CPU profile's vector
#: path times the first three per element (kernels.vector_ops.execution_rows, by ``accelsim hw calibrate-local``)
GATHER, SCATTER, FORMAT_BUILD, MASK_APPLY = "gather", "scatter", "format_build", "mask_apply"
#: role of the gather into block formats (whole b x b tiles, contiguous rows) where a profile times it apart from
#: GATHER's scattered CSR values; the cost model splits a GATHER op between the two (accelsim.hardware.cost)
GATHER_TILES = "gather_tiles"
#: Roles of a mask update (:func:`_mask_update_ops`): MASK_SELECT, per unit of the method's grid (weights, or
#: b x b blocks), the drop and grow top-k selections with their scores and the new mask; MASK_SCORE, per weight of
#: a block method, pooling the weights and the dense gradient into block scores and expanding the new block mask
#: (kernels.vector_ops.execution_rows times both as RigL / block-RigL run them)
MASK_SELECT, MASK_SCORE = "mask_select", "mask_score"
#: role of an N:M method's mask update (StepKind.mask_select == "group"), per weight: the top n of every m
#: consecutive inputs, ranked inside each group (kernels.cpu.nm.NMSelector), not a top-k over the layer (Zen 5,
#: 2 threads: 1.8 ns per weight against 15-18 ns for RigL's; benchmarks/results/zen5-f26m2/mask-update.json)
MASK_GROUP_SELECT = "mask_group_select"
#: role of multi-head attention's layout copies (:func:`step_ops`)
HEAD_LAYOUT = "head_layout"
#: role of the optimizer step (AdamW after global-norm clipping); a CPU profile may time it per parameter
OPTIMIZER = "optimizer"
#: roles a CPU profile times per element over working sets at least twice its last-level cache (kernels/vector_ops.py:
#: optimizer_rows, mask_apply_row), as a training step streams them from memory: the measured time already holds
#: that traffic, so the cost model does not also bound it by its main-memory bandwidth. Why: the Zen 5 updates
#: bert-small streaming 40 B per parameter at 59 GB/s (0.675 ns, benchmarks/results/zen5-f26m2/optimizer.json),
#: while its copy-measured DRAM bandwidth (42.5 GB/s) put that update at 16.3 ms against 12.1 ms measured
STREAMED_ROLES = frozenset({OPTIMIZER, MASK_APPLY})

#: Elementwise work per element (vector ops), used by the simulator's vector units.
ELEMENTWISE_OPS = {"softmax": 5.0, "layernorm": 8.0, "gelu": 8.0, "residual": 1.0, "dropout": 2.0, "loss": 5.0,
                   BIAS_GRAD: 1.0,  # one add per element of dY (a reduction over the tokens)
                   HEAD_LAYOUT: 1.0,  # a strided copy
                   OPTIMIZER: ADAM_FLOPS_PER_PARAM,  # per updated parameter
                   # index arithmetic per element; a profile without measured element times prices these by it
                   # and by their memory traffic
                   GATHER: 1.0, GATHER_TILES: 1.0, SCATTER: 1.0, FORMAT_BUILD: 4.0, MASK_APPLY: 1.0,
                   # mask-update ops carry their own FLOPs (the trace's); listed so a profile may time the roles
                   MASK_SELECT: 0.0, MASK_SCORE: 0.0, MASK_GROUP_SELECT: 0.0}

LINEAR_ROLES = bert.LINEAR_ROLES  # the encoder Linears (accelsim.bert)

#: Op kind of an FFF layer's products: weight rows chosen per token by the routing.
COND_MATMUL = "cond_matmul"


@dataclass(frozen=True)
class Op:
    """One unit of work. For matmuls the product is (m x k) @ (k x n)."""

    name: str
    kind: str  # linear | attn_matmul | cond_matmul | elementwise | embedding | optimizer | mask_update
    phase: str  # one of PHASES
    block: int = -1  # encoder layer index, -1 outside the encoder
    layer: str = ""  # manifest layer name for linear ops
    role: str = ""
    m: int = 0
    k: int = 0
    n: int = 0
    density: float = 1.0  # density of the sparse operand (the weight, or the sampled dW output)
    sparse: bool = False  # the method computes only the nonzeros of this op
    flops_dense: float = 0.0
    flops: float = 0.0
    elements: int = 0  # elements touched, for non-matmul ops
    batch: int = 1  # independent products (attention heads x batch)
    trees: int = 0  # cond_matmul: parallel FFF trees K (0 for other kinds)
    levels: int = 0  # cond_matmul: rows per token and tree, D + 1 (0 for other kinds)


@dataclass(frozen=True)
class StepKind:
    """What the method needs on one step."""

    dense_grad: bool = False  # the full dense weight gradient is computed
    mask_update: bool = False  # masks are changed after this step
    sparse_compute: bool = True  # nonzero-only products (False for the dense baseline)
    # FFF layers run as their cond_matmul ops; False gives the dense FF of equal width instead (the
    # baseline an FFF run is compared with: an FFF run itself uses sparse_compute=False, method "dense")
    conditional: bool = True
    # how a mask update selects: "topk" over each layer's units (RigL, SET, GMP, sparse momentum) or "group", the
    # top n of every m inputs (N:M): a different cost per weight (MASK_SELECT vs MASK_GROUP_SELECT)
    mask_select: str = "topk"


def _mm(name, kind, phase, m, k, n, *, density=1.0, sparse=False, batch=1, **kw) -> Op:
    dense = 2.0 * m * k * n * batch
    return Op(name=name, kind=kind, phase=phase, m=m, k=k, n=n, density=density, sparse=sparse,
              flops_dense=dense, flops=dense * (density if sparse else 1.0), batch=batch, **kw)


#: products of a linear layer -> (phase, op dims from the forward layer's m, k, n)
_PRODUCTS = {"matmul": ("fwd", lambda m, k, n: (m, k, n)),
             "matmul_dx": ("bwd_input", lambda m, k, n: (m, n, k)),
             "matmul_dw": ("bwd_weight", lambda m, k, n: (n, m, k))}
#: the linear-layer product kinds (accelsim.hardware.kernel_time's other kinds are FFF layers)
PRODUCT_KINDS = tuple(_PRODUCTS)


def product_op(kind: str, m: int, k: int, n: int, density: float = 1.0) -> Op:
    """The op of one product (``kind`` in PRODUCT_KINDS) of a linear layer with forward sizes m, k, n."""
    phase, dims = _PRODUCTS[kind]
    return _mm(f"kernel.{kind}", "linear", phase, *dims(m, k, n), density=density, sparse=density < 1.0)


def step_ops(manifest: Manifest, densities: dict[str, float], kind: StepKind = StepKind()) -> list[Op]:
    """All ops of one training step. ``densities`` maps sparse layer name -> current density."""
    md = manifest.model
    B, S, H = manifest.batch_size, md["seq_len"], md["hidden"]
    V, heads = md["vocab"], md["heads"]
    T = B * S
    ops: list[Op] = [Op("embeddings", "embedding", "fwd", elements=T * H)]
    # embedding sum, LayerNorm and dropout
    ops.extend(_elementwise_pair("embeddings.layernorm", "layernorm", 2 * T * H))
    ops.extend(_elementwise_pair("embeddings.dropout", "dropout", T * H))
    by_block: dict[int, list] = {}
    for info in manifest.layers:
        by_block.setdefault(_block_index(info.name), []).append(info)
    ffn = md.get("ffn") or {"type": "dense"}
    gathered = ffn["type"] == "fff" and _fff_gathers(ffn) and kind.conditional
    ffn_act = T * (fff_path_neurons(ffn) if gathered else md["intermediate"])
    for blk in range(md["layers"]):
        if ffn["type"] == "fff":
            ops.extend(fff_layer_ops(ffn, blk, T, H, kind.conditional))
        for info in by_block.get(blk, []):
            if info.role not in LINEAR_ROLES:
                continue
            out_f, in_f = info.shape
            d = densities.get(info.name, info.target_density) if info.sparse else 1.0
            sp = info.sparse and kind.sparse_compute and d < 1.0
            common = dict(block=blk, layer=info.name, role=info.role, density=d, sparse=sp)
            ops.append(_mm(f"{info.name}.fwd", "linear", "fwd", T, in_f, out_f, **common))
            ops.append(_mm(f"{info.name}.dx", "linear", "bwd_input", T, out_f, in_f, **common))
            dw = dict(common, sparse=sp and not kind.dense_grad)
            ops.append(_mm(f"{info.name}.dw", "linear", "bwd_weight", out_f, T, in_f, **dw))
            ops.append(_bias_grad(f"{info.name}.db", T, out_f, block=blk, layer=info.name))
        dh = H // heads
        for nm in ("scores", "context"):
            fwd = _mm(f"block{blk}.attn_{nm}.fwd", "attn_matmul", "fwd", S, dh, S, batch=B * heads, block=blk)
            ops.append(fwd)
            # two products (one per operand) in backward, both activation gradients
            ops.append(_mm(f"block{blk}.attn_{nm}.bwd", "attn_matmul", "bwd_input", S, dh, 2 * S,
                           batch=B * heads, block=blk))
        # dropout acts on the attention probabilities and on both sublayer outputs (BERT's three sites).
        # head_layout: Q, K and V are split into (batch, heads, seq, head_dim) order for the batched products
        # and the context merged back, four T x H copies forward and four in backward (transformers' BERT on
        # torch's SDPA: torch.profiler lists 32 such aten::copy_ calls in a 4-layer step)
        for nm, elems in (("softmax", B * heads * S * S), ("layernorm", 2 * T * H),
                          ("gelu", ffn_act), ("residual", 2 * T * H), ("dropout", B * heads * S * S + 2 * T * H),
                          (HEAD_LAYOUT, 4 * T * H)):
            ops.extend(_elementwise_pair(f"block{blk}.{nm}", nm, elems, block=blk))
    head = md.get("head") or {"type": "mlm"}
    ops.append(_embedding_grad(V, H, tied=head["type"] != "classifier"))
    if head["type"] == "classifier":
        ops.extend(classifier_head_ops(B, H, int(head["labels"])))
        if md.get("teacher"):
            ops.extend(teacher_ops(manifest, md["teacher"]))
        ops.extend(sparse_execution_ops(manifest, densities, kind))
        ops.append(_optimizer(manifest, densities, kind))
        if kind.mask_update:
            ops.extend(_mask_update_ops(manifest, densities, kind.mask_select))
        return ops
    # MLM head: dense transform (H->H) + GELU + LayerNorm, then the decoder tied to the word embeddings.
    for nm, k_, n_ in (("mlm_transform", H, H), ("mlm_decoder", H, V)):
        ops.append(_mm(f"{nm}.fwd", "linear", "fwd", T, k_, n_, role=nm))
        ops.append(_mm(f"{nm}.dx", "linear", "bwd_input", T, n_, k_, role=nm))
        ops.append(_mm(f"{nm}.dw", "linear", "bwd_weight", n_, T, k_, role=nm))
        ops.append(_bias_grad(f"{nm}.db", T, n_))
    ops.extend(_elementwise_pair("mlm_head.gelu_layernorm", "layernorm", 2 * T * H))
    # cross-entropy over the vocabulary: log-softmax reads the T x V logits and writes log-probs; its
    # backward reads both and writes the logits' gradient into a zero-filled buffer. At small hidden
    # sizes this vocabulary-sized work is a large share of the step (benchmarks/bench_step_breakdown.py: ~30 %
    # of a bert-tiny step on the Zen 3, with the fill and copy of its fresh T x V buffers). Its own role, so a
    # profile can give it a measured time per element (vector path element_time).
    ops.append(Op("mlm_loss.fwd", "elementwise", "fwd", role="loss", elements=T * V))
    ops.append(Op("mlm_loss.bwd", "elementwise", "bwd_input", role="loss", elements=2 * T * V))
    ops.extend(sparse_execution_ops(manifest, densities, kind))
    ops.append(_optimizer(manifest, densities, kind))
    if kind.mask_update:
        ops.extend(_mask_update_ops(manifest, densities, kind.mask_select))
    return ops


def sparse_execution_ops(manifest: Manifest, densities: dict[str, float], kind: StepKind) -> list[Op]:
    """What a sparse-executed run (the trainer's ``--execute sparse``) does besides the products, per sparse layer:

    * every step, the current values gathered into the forward and input-gradient formats (2 x nnz
      elements: the execution keeps no values between optimizer steps, the dense weight is the master copy;
      the op carries the layer's products, m = tokens, k x n = the weight's columns x rows, so the cost model
      counts the values of the formats its paths store: every value of each kept tile on a block path);
    * on steps without a dense gradient, the masked weight gradient scattered into a zero-filled
      dense-shaped buffer (2 x rows x cols elements: the optimizer and the method read a dense gradient);
    * on mask-update steps, the formats rebuilt from the new mask (rows x cols elements scanned);
    * the gradient masked before the update and the weight after it (2 x rows x cols elements);

    and its optimizer is dense AdamW over every weight (see :func:`_optimizer`). A masked run (the default
    execution) gets none of these: the simulator prices the sparse implementation it would have, not the
    trainer's masked emulation. The layer's products are assumed to run on sparse formats (at the densities
    where that execution is faster than dense, the profile's cost model picks sparse paths for them)."""
    if manifest.execution != "sparse" or not kind.sparse_compute:
        return []
    ops = []
    tokens = manifest.batch_size * manifest.model["seq_len"]
    for info in manifest.layers:
        d = densities.get(info.name, info.target_density) if info.sparse else 1.0
        if not info.sparse or d >= 1.0:
            continue
        numel = info.shape[0] * info.shape[1]
        ops.append(Op(f"{info.name}.{GATHER}", "elementwise", "fwd", block=_block_index(info.name), layer=info.name,
                      role=GATHER, density=d, elements=2 * round(numel * d), m=tokens, k=info.shape[1],
                      n=info.shape[0]))
        work = []
        if not kind.dense_grad:  # a backward op counts two elements per weight, as _elementwise_pair's do
            work.append((SCATTER, "bwd_weight", 2 * numel))
        if kind.mask_update:
            work.append((FORMAT_BUILD, "mask_update", numel))
        work.append((MASK_APPLY, "optimizer", 2 * numel))  # the gradient before the update, the weight after
        ops.extend(Op(f"{info.name}.{role}", "elementwise", phase, block=_block_index(info.name), layer=info.name,
                      role=role, density=d, elements=n) for role, phase, n in work)
    return ops


def classifier_head_ops(B: int, H: int, labels: int) -> list[Op]:
    """BertForSequenceClassification's head (fine-tuning, ``model.head.type == "classifier"``): the pooler
    (H->H dense + tanh on the [CLS] token of each sequence), dropout, the H->labels classifier and the
    cross-entropy over the labels. It sees B tokens, not B x S: tiny next to the encoder."""
    ops = []
    for nm, k_, n_ in (("pooler", H, H), ("classifier", H, labels)):
        ops.append(_mm(f"{nm}.fwd", "linear", "fwd", B, k_, n_, role=nm))
        ops.append(_mm(f"{nm}.dx", "linear", "bwd_input", B, n_, k_, role=nm))
        ops.append(_mm(f"{nm}.dw", "linear", "bwd_weight", n_, B, k_, role=nm))
    ops.extend(_elementwise_pair("pooler.tanh", "gelu", B * H))
    ops.extend(_elementwise_pair("pooler.dropout", "dropout", B * H))
    ops.append(Op("cls_loss.fwd", "elementwise", "fwd", role="loss", elements=B * labels))
    ops.append(Op("cls_loss.bwd", "elementwise", "bwd_input", role="loss", elements=2 * B * labels))
    return ops


#: Teacher LayerInfo names: module names under this prefix, so block indices parse as for the student.
TEACHER_PREFIX = "teacher.bert.encoder.layer"


def teacher_ops(manifest: Manifest, teacher: dict) -> list[Op]:
    """Knowledge distillation (``model.teacher``): the dense teacher's forward pass over the same batch, in
    eval mode (no dropout), then the distillation loss. Only forward products: the teacher is not trained.
    ``teacher["kd"]``: "logits" (softened-softmax KL over the labels) or "hidden" (also an MSE between
    every hidden state of student and teacher, SPD-style; needs equal hidden sizes)."""
    md = manifest.model
    H, inter = int(teacher["hidden"]), int(teacher["intermediate"])
    dims = {"H": H, "I": inter}
    layers = [LayerInfo(f"{TEACHER_PREFIX}.{b}.{role}", role, [dims[out], dims[inp]], 1.0, False)
              for b in range(int(teacher["layers"])) for role, _, out, inp in bert.ENCODER_LINEARS]
    model = {**{k: md[k] for k in ("vocab", "seq_len", "head")}, "layers": int(teacher["layers"]), "hidden": H,
             "heads": int(teacher["heads"]), "intermediate": inter}
    tman = dataclasses.replace(manifest, model=model, layers=layers)
    ops = [dataclasses.replace(op, name=f"teacher.{op.name}", layer="")
           for op in step_ops(tman, {}, StepKind(sparse_compute=False))
           if op.phase == "fwd" and op.role not in ("dropout", "loss")]
    B, T, labels = manifest.batch_size, manifest.batch_size * md["seq_len"], int(md["head"]["labels"])
    # softmax of teacher and student logits, the KL and its gradient
    ops.extend(_elementwise_pair("kd_logits", "loss", 2 * B * labels))
    if teacher.get("kd") == "hidden":
        ops.extend(_elementwise_pair("kd_hidden", "loss", (int(md["layers"]) + 1) * T * int(md["hidden"])))
    return ops


def fff_neurons(ffn: dict) -> int:
    return int(ffn["trees"]) * ((1 << (int(ffn["depth"]) + 1)) - 1)


def fff_path_neurons(ffn: dict) -> int:
    return int(ffn["trees"]) * (int(ffn["depth"]) + 1)


def _fff_gathers(ffn: dict) -> bool:
    return ffn.get("train_mode", "gather") == "gather"


def fff_forward_flops(tokens: float, hidden: int, neurons_per_token: float) -> float:
    """Forward matmul FLOPs of one FFF layer: per token and visited neuron, a dot product with its input
    row and a scaled add of its output row, 2*hidden FLOPs each. With every neuron (neurons_per_token =
    K*(2^(D+1)-1)) this is the dense FF of equal width; with the hard-routed path (K*(D+1)) it is the
    conditional (inference) cost the fff table records."""
    return 4.0 * tokens * hidden * neurons_per_token


def fff_layer_ops(ffn: dict, blk: int, T: int, H: int, conditional: bool = True) -> list[Op]:
    """One FFF layer's products in a training step. fff_in: logits of the visited nodes (x . w_in rows);
    fff_out: the GELU-weighted sum of their w_out rows. Each has a forward, an input gradient and a
    weight gradient product, like a linear layer; in "gather" mode all of them touch path rows only
    (the trainer's backward gathers the same rows and scatters their gradients).
    ``conditional=False``: the dense FF of equal width instead (two linear layers, no manifest layer)."""
    W, K, L = fff_neurons(ffn), int(ffn["trees"]), int(ffn["depth"]) + 1
    if not conditional:
        ops = []
        for role, n_in, n_out in (("ffn_in", H, W), ("ffn_out", W, H)):
            name = f"block{blk}.dense_{role}"
            ops.append(_mm(f"{name}.fwd", "linear", "fwd", T, n_in, n_out, role=role, block=blk))
            ops.append(_mm(f"{name}.dx", "linear", "bwd_input", T, n_out, n_in, role=role, block=blk))
            ops.append(_mm(f"{name}.dw", "linear", "bwd_weight", n_out, T, n_in, role=role, block=blk))
        return ops
    cond = _fff_gathers(ffn)
    common = dict(kind=COND_MATMUL, block=blk, density=fff_path_neurons(ffn) / W if cond else 1.0, sparse=cond,
                  trees=K, levels=L)
    ops = []
    for nm, role in (("fff_in", "ffn_in"), ("fff_out", "ffn_out")):
        name = f"block{blk}.{nm}"
        ops.append(_mm(f"{name}.fwd", phase="fwd", m=T, k=H, n=W, role=role, **common))
        ops.append(_mm(f"{name}.dx", phase="bwd_input", m=T, k=W, n=H, role=role, **common))
        ops.append(_mm(f"{name}.dw", phase="bwd_weight", m=W, k=T, n=H, role=role, **common))
    return ops


def _bias_grad(name: str, tokens: int, out_features: int, **kw) -> Op:
    """A linear layer's bias gradient: dY summed over the tokens (tokens x out elements read). Every BERT
    linear has a bias; at the vocabulary-wide decoder this reduction is a few milliseconds a step on a CPU
    (benchmarks/bench_step_breakdown.py: aten::sum)."""
    return Op(name, "elementwise", "bwd_weight", role=BIAS_GRAD, elements=tokens * out_features, **kw)


def _embedding_grad(vocab: int, hidden: int, tied: bool) -> Op:
    """The word embeddings' dense gradient: torch's embedding backward zero-fills a vocab x hidden buffer before it
    adds the tokens' rows, and with the MLM decoder tied to the embeddings autograd then sums that buffer into the
    decoder's weight gradient: one or two streaming passes over V x H, costed as the residual role's (torch.profiler,
    bert-small with the offline 8192-word vocabulary, Zen 5, 2 threads: fill_ 0.36 ms and add 1.09 ms a step)."""
    return Op("embeddings.grad", "elementwise", "bwd_weight", role="residual",
              elements=(2 if tied else 1) * vocab * hidden)


def _elementwise_pair(name: str, role: str, elements: int, block: int = -1) -> list[Op]:
    """Forward and backward of an elementwise op; backward reads the saved input and the gradient."""
    return [Op(f"{name}.fwd", "elementwise", "fwd", block=block, role=role, elements=elements),
            Op(f"{name}.bwd", "elementwise", "bwd_input", block=block, role=role, elements=2 * elements)]


def _block_index(name: str) -> int:
    """Encoder block of a module name such as 'bert.encoder.layer.3.attention.self.query'."""
    parts = name.split(".")
    for i, p in enumerate(parts[:-1]):
        if p in ("layer", "layers", "block", "blocks") and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return -1


def dense_params(manifest: Manifest) -> int:
    """Parameters outside the listed layers (embeddings, LayerNorms, biases, head)."""
    md = manifest.model
    listed = sum(i.shape[0] * i.shape[1] for i in manifest.layers)
    return max(int(md.get("params", 0)) - listed, 0)


def _optimizer(manifest: Manifest, densities: dict[str, float], kind: StepKind) -> Op:
    rest = dense_params(manifest)
    total_dense = rest + sum(i.shape[0] * i.shape[1] for i in manifest.layers)
    updated = rest
    # a sparse-executed run keeps torch's dense AdamW (the methods read dense weights and moments)
    nnz_only = kind.sparse_compute and manifest.execution != "sparse"
    for i in manifest.layers:
        d = densities.get(i.name, i.target_density) if (i.sparse and nnz_only) else 1.0
        updated += round(i.shape[0] * i.shape[1] * d)
    return Op("optimizer", "optimizer", "optimizer", role=OPTIMIZER, elements=updated,
              flops_dense=ADAM_FLOPS_PER_PARAM * total_dense, flops=ADAM_FLOPS_PER_PARAM * updated,
              density=updated / max(total_dense, 1), sparse=updated < total_dense)


def _mask_update_ops(manifest: Manifest, densities: dict[str, float], select: str = "topk") -> list[Op]:
    """Per sparse layer, the selection over the units of the method's grid (``method.block_size``, 1: weights)
    and, for a block grid, the pass over every weight that pools scores and expands the mask. The FLOPs (the
    trace's flops_mask_update) stay the score-plus-top-k count over the weights; a profile that times the roles
    (MASK_SELECT, MASK_SCORE; MASK_GROUP_SELECT, per weight, for an N:M method's ``select == "group"``) prices them
    by time per element instead: a top-k is memory- and branch-bound, not
    FLOP-bound (Zen 5: RigL's drop and grow 15-18 ns per weight, benchmarks/results/zen5-f26m2/mask-update.json,
    against 0.15 ns from its FLOPs at the vector peak; a masked
    bert-small RigL-90 update step takes 0.18-0.22 s longer than a plain one, sparse-training*.json)."""
    b = int((manifest.method or {}).get("block_size") or 1)
    ops = []
    for i in manifest.layers:
        if not i.sparse:
            continue
        numel = i.shape[0] * i.shape[1]
        flops = MASK_SCORE_FLOPS_PER_ELEMENT * numel * max(math.log2(numel), 1.0)
        common = dict(block=_block_index(i.name), layer=i.name, density=densities.get(i.name, i.target_density))
        if select == "group":  # N:M: a ranking inside each group of m inputs, per weight
            ops.append(Op(f"{i.name}.mask_update", "mask_update", "mask_update", role=MASK_GROUP_SELECT,
                          elements=numel, flops_dense=0.0, flops=flops, **common))
            continue
        ops.append(Op(f"{i.name}.mask_update", "mask_update", "mask_update", role=MASK_SELECT,
                      elements=max(numel // (b * b), 1), flops_dense=0.0, flops=flops, **common))
        if b > 1:
            ops.append(Op(f"{i.name}.mask_score", "mask_update", "mask_update", role=MASK_SCORE, elements=numel,
                          flops_dense=0.0, flops=0.0, **common))
    return ops


def phase_flops(ops: list[Op]) -> dict[str, float]:
    """``flops_<phase>_dense`` and ``flops_<phase>`` columns for one step."""
    out = {}
    for ph in PHASES:
        out[f"flops_{ph}_dense"] = 0.0
        out[f"flops_{ph}"] = 0.0
    for op in ops:
        out[f"flops_{op.phase}_dense"] += op.flops_dense
        out[f"flops_{op.phase}"] += op.flops
    return out
