"""How each sparse-training method behaves, as far as cost is concerned (one registry, two readers).

The simulator reads it to turn a trace's steps into :class:`accelsim.workload.StepKind` values; the
synthetic-trace generator reads it to decide which mask structure to draw and when masks change.
A manifest may override the dense-gradient rule with ``method.dense_grad`` (``never``, ``on_update``
or ``always``) so a new method needs no code change to be simulated.
"""
from __future__ import annotations

from dataclasses import dataclass

from accelsim.errors import UserError

DENSE_GRAD_RULES = ("never", "on_update", "always")


@dataclass(frozen=True)
class MethodRule:
    # when the full dense weight gradient is computed: RigL needs it to score growth on update steps,
    # sparse momentum (SNFS) needs dense momentum on every step (Dettmers & Zettlemoyer 2019)
    dense_grad: str = "never"
    # False only for the dense baseline: every product runs dense
    sparse_compute: bool = True
    # mask structure drawn by the synthetic generator: random | nm | block
    structure: str = "random"
    # how masks change: none | regrow (prune+grow, constant nnz, until end_fraction) | prune (GMP) |
    # recompute (N:M masks recomputed from magnitudes all through training)
    schedule: str = "regrow"


METHODS: dict[str, MethodRule] = {
    "dense": MethodRule(sparse_compute=False, schedule="none"),
    "static": MethodRule(schedule="none"),
    "set": MethodRule(),  # Mocanu et al. 2018: random regrowth, sparse gradients only
    "rigl": MethodRule(dense_grad="on_update"),  # Evci et al. 2020
    "snfs": MethodRule(dense_grad="always"),  # sparse momentum
    "gmp": MethodRule(schedule="prune"),  # Zhu & Gupta 2017 gradual magnitude pruning
    # SR-STE N:M (Zhou et al. 2021): straight-through, so every weight gets its gradient every step
    "nm": MethodRule(dense_grad="always", structure="nm", schedule="recompute"),
}

#: ``block-<method>``: the base method's behaviour with block-structured masks.
BLOCK_PREFIX = "block-"


def method_rule(method: dict | str, *, source: str = "manifest.json") -> MethodRule:
    """The rule of a manifest's ``method`` object (or a bare name)."""
    spec = {"name": method} if isinstance(method, str) else dict(method)
    name = str(spec.get("name", ""))
    base = name[len(BLOCK_PREFIX):] if name.startswith(BLOCK_PREFIX) else name
    rule = METHODS.get(base)
    override = spec.get("dense_grad")
    if rule is None:
        if override is None:
            raise UserError(f"unknown method {name!r}; known: {sorted(METHODS)} (or block-<name>), or give "
                            f"method.dense_grad as one of {DENSE_GRAD_RULES}", source=source, field="method.name")
        rule = MethodRule()
    if base != name:
        rule = MethodRule(rule.dense_grad, rule.sparse_compute, "block", rule.schedule)
    if override is not None:
        if override not in DENSE_GRAD_RULES:
            raise UserError(f"expected one of {DENSE_GRAD_RULES}", source=source, field="method.dense_grad")
        rule = MethodRule(override, rule.sparse_compute, rule.structure, rule.schedule)
    return rule


def known_methods() -> list[str]:
    return sorted(METHODS) + [f"{BLOCK_PREFIX}{m}" for m in sorted(METHODS) if METHODS[m].sparse_compute]
