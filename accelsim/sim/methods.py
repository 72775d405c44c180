"""How a sparse-training method behaves, as far as cost is concerned: its :class:`MethodRule`.

Each trainer method declares its rule (``SparsityMethod.sim_rule``, trainer/sparsity/methods/) and the
trainer writes it into the manifest as ``method.sim_rule``, so a new method is one file and the simulator
reads how to cost it from the trace itself. Traces written before the rule was recorded carry only the
method's name: :data:`LEGACY_RULES` keeps the rules of the methods that existed then, so those traces
simulate as they always did. The synthetic-trace generator reads the same table to decide which mask
structure to draw and when masks change. A manifest may still override the dense-gradient rule with
``method.dense_grad`` (``never``, ``on_update`` or ``always``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from accelsim.errors import UserError

DENSE_GRAD_RULES = ("never", "on_update", "always")
STRUCTURES = ("random", "nm", "block")
SCHEDULES = ("none", "regrow", "prune", "recompute")


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

    @property
    def mask_select(self) -> str:
        """How its mask updates select (StepKind.mask_select): N:M masks by a ranking inside each group, the rest by
        a top-k over each layer."""
        return "group" if self.structure == "nm" else "topk"

    def to_manifest(self) -> dict:
        """The manifest's ``method.sim_rule`` object."""
        return dataclasses.asdict(self)

    @classmethod
    def from_manifest(cls, value: object, source: str = "manifest.json") -> "MethodRule":
        """A rule read back from ``method.sim_rule``; every field must be present and valid."""
        where = "method.sim_rule"
        if not isinstance(value, dict):
            raise UserError(f"expected an object with {', '.join(f.name for f in dataclasses.fields(cls))}",
                            source=source, field=where)
        unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise UserError(f"unknown key {unknown[0]!r}", source=source, field=where)
        for name, choices in (("dense_grad", DENSE_GRAD_RULES), ("structure", STRUCTURES),
                              ("schedule", SCHEDULES)):
            if value.get(name) not in choices:
                raise UserError(f"expected one of {', '.join(choices)}, got {value.get(name)!r}", source=source,
                                field=f"{where}.{name}")
        if not isinstance(value.get("sparse_compute"), bool):
            raise UserError(f"expected true or false, got {value.get('sparse_compute')!r}", source=source,
                            field=f"{where}.sparse_compute")
        return cls(**value)


#: Rules of the methods that existed before the trainer recorded ``method.sim_rule`` (traces written then
#: carry only the name); also the methods ``accelsim trace synth`` can generate. Kept equal to the rules
#: the trainer's methods declare (tests/test_method_rules.py checks); a method added since needs no entry.
LEGACY_RULES: dict[str, MethodRule] = {
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
    """The rule of a manifest's ``method`` object (or a bare name): its ``sim_rule`` when recorded,
    else the legacy rule of its name."""
    spec = {"name": method} if isinstance(method, str) else dict(method)
    if spec.get("sim_rule") is not None:
        rule = MethodRule.from_manifest(spec["sim_rule"], source)
    else:
        rule = _legacy_rule(spec, source)
    override = spec.get("dense_grad")
    if override is not None:
        if override not in DENSE_GRAD_RULES:
            raise UserError(f"expected one of {DENSE_GRAD_RULES}", source=source, field="method.dense_grad")
        rule = dataclasses.replace(rule, dense_grad=override)
    return rule


def _legacy_rule(spec: dict, source: str) -> MethodRule:
    name = str(spec.get("name", ""))
    base = name[len(BLOCK_PREFIX):] if name.startswith(BLOCK_PREFIX) else name
    rule = LEGACY_RULES.get(base)
    if rule is None:
        if spec.get("dense_grad") is None:
            raise UserError(f"unknown method {name!r} and no method.sim_rule; known: {sorted(LEGACY_RULES)} (or "
                            f"block-<name>), or give method.dense_grad as one of {DENSE_GRAD_RULES}",
                            source=source, field="method.name")
        rule = MethodRule()
    if base != name:
        rule = dataclasses.replace(rule, structure="block")
    return rule


def known_methods() -> list[str]:
    """Methods whose rule is known by name (synthetic traces can be generated for these)."""
    return sorted(LEGACY_RULES) + [f"{BLOCK_PREFIX}{m}" for m in sorted(LEGACY_RULES)
                                   if LEGACY_RULES[m].sparse_compute]
