"""The experiment description (``accelsim run EXPERIMENT.yaml``): dataclasses, the embedded default and a
strict YAML reader. Every user mistake is one :class:`UserError` line naming the file and the key.

Example (all keys optional; ``examples/experiment.yaml`` lists every one)::

    models: [bert-tiny]
    methods:
      - {name: dense}
      - {name: rigl, sparsities: [0.8, 0.9]}
      - {name: set, sparsities: [0.9], options: {drop_fraction: 0.3}}
    hardware: all            # or a list of profile names / YAML paths
    steps: 200
    target_loss: auto        # a number, auto, or null
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from accelsim.errors import UserError

DEFAULT_SOURCE = "default experiment"


@dataclass
class MethodSpec:
    name: str  # trainer registry name (trainer.sparsity.available_methods())
    # one run per target sparsity; the dense baseline takes none
    sparsities: list[float] = field(default_factory=list)
    # further SparsityConfig fields (update_every, drop_fraction, distribution, n, m, ...)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class QuickSettings:
    # --quick is a smoke test (< 2 min on 2 shared cores): a few mask updates and a visible loss drop,
    # on shapes small enough that training takes seconds; simulation cost does not shrink with them
    steps: int = 30
    batch_size: int = 8
    seq_len: int = 32


@dataclass(frozen=True)
class RunSpec:
    name: str  # directory name under <out>/runs
    model: str
    method: str
    sparsity: float
    options: tuple[tuple[str, Any], ...] = ()


def _default_methods() -> list[MethodSpec]:
    # the comparison: the dense baseline, RigL at two sparsities, and SET, which regrows at random
    # and so never needs the dense gradient RigL computes on update steps (a cheaper step, same sparsity)
    return [MethodSpec("dense"), MethodSpec("rigl", [0.8, 0.9]), MethodSpec("set", [0.9])]


@dataclass
class Experiment:
    name: str = "default"
    models: list[str] = field(default_factory=lambda: ["bert-tiny"])
    methods: list[MethodSpec] = field(default_factory=_default_methods)
    hardware: list[str] = field(default_factory=lambda: ["all"])  # "all": every bundled profile
    # 200 steps of 16 x 64 tokens: four runs train in a few minutes on 2 CPU cores and the loss
    # still falls clearly (the trainer's high default LR is tuned for short runs)
    steps: int = 200
    batch_size: int = 16
    seq_len: int = 64
    devices: int = 1  # data-parallel devices in the simulation (the batch is split over them)
    # "auto": the best loss every run reaches (see experiment.resolve_target_loss); null: none
    target_loss: float | str | None = "auto"
    lr: float = 2e-3
    seed: int = 0
    # None: steps // 5, i.e. three mask updates before RigL's end_fraction of 0.75 stops them (after
    # step s when s + 1 < 0.75 steps); short runs need a short interval, and every update is one more
    # pattern epoch to simulate
    update_every: int | None = None
    eval_every: int | None = None  # None: steps // 8 (eight points on the eval curve)
    # torch threads while training (None: torch's default). One, because bert-tiny's products are too
    # small to gain from a second thread and OpenMP spin-waits collapse under any other load on a
    # 2-core machine: the --quick training measured 3 s with 1 thread, 50 s with 2, at load 3.5.
    threads: int | None = 1
    data: dict[str, Any] = field(default_factory=dict)  # DataConfig fields (corpus, vocab_size, max_texts ...)
    quick: QuickSettings = field(default_factory=QuickSettings)

    def resolved_update_every(self) -> int:
        return self.update_every or max(1, self.steps // 5)

    def resolved_eval_every(self) -> int:
        return self.eval_every or max(1, self.steps // 8)

    def runs(self) -> list[RunSpec]:
        out = []
        for model in self.models:
            stem = Path(model).name
            for m in self.methods:
                opts = tuple(sorted(m.options.items()))
                if not m.sparsities:
                    out.append(RunSpec(f"{stem}-{m.name}", model, m.name, 0.0, opts))
                for s in m.sparsities:
                    out.append(RunSpec(f"{stem}-{m.name}-{s * 100:g}", model, m.name, float(s), opts))
        return out

    def hardware_names(self) -> list[str]:
        from accelsim.hardware import list_profiles

        names: list[str] = []
        for h in self.hardware:
            for n in (list_profiles() if h == "all" else [h]):
                if n not in names:
                    names.append(n)
        return names

    def quick_variant(self) -> "Experiment":
        q = self.quick
        return dataclasses.replace(self, steps=min(self.steps, q.steps), batch_size=min(self.batch_size, q.batch_size),
                                   seq_len=min(self.seq_len, q.seq_len), update_every=None, eval_every=None)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self, source: str = "experiment") -> None:
        """Check the whole experiment (types, names, method options) before anything trains."""
        experiment_from_dict(self.to_dict(), source)


def default_experiment() -> Experiment:
    """The embedded experiment ``accelsim run`` executes without a file."""
    return Experiment()


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    if not path.is_file():
        raise UserError("no such experiment file", source=path)
    try:
        from accelsim.hardware.strict_yaml import load as strict_load  # safe_load, duplicate keys refused

        data = strict_load(path.read_text(encoding="utf-8"), str(path))
    except RecursionError:
        raise UserError("not a loadable YAML document (nested too deeply)", source=path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise UserError("not valid YAML" + (f" at line {mark.line + 1}" if mark else ""), source=path) from None
    except UnicodeDecodeError:
        raise UserError("not UTF-8 text", source=path) from None
    return experiment_from_dict({} if data is None else data, str(path))


# --- strict reading: one parser per key, so an unknown key or a bad value names itself -------------

Parser = Callable[[Any, str, str], Any]


def _fail(source: str, key: str, what: str, value: Any = dataclasses.MISSING):
    got = "" if value is dataclasses.MISSING else f", got {value!r}"
    raise UserError(f"expected {what}{got}", source=source, field=key)


def _number(value: Any) -> float | None:
    # YAML 1.1 reads 2e-3 (no dot) as a string; accept it as the number it obviously is
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _int(lo: int) -> Parser:
    def parse(v, src, key):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            _fail(src, key, f"an integer >= {lo}", v)
        return v
    return parse


def _float(lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False) -> Parser:
    def parse(v, src, key):
        x = _number(v)
        if x is None or x > hi or x < lo or (open_lo and x == lo) or (open_hi and x == hi):
            _fail(src, key, f"a number in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}", v)
        return x
    return parse


def _str(v, src, key):
    if not isinstance(v, str) or not v:
        _fail(src, key, "a non-empty string", v)
    return v


def _optional(p: Parser) -> Parser:
    return lambda v, src, key: None if v is None else p(v, src, key)


def _list(p: Parser, *, allow_scalar: bool = False) -> Parser:
    def parse(v, src, key):
        if allow_scalar and not isinstance(v, list):
            v = [v]
        if not isinstance(v, list) or not v:
            _fail(src, key, "a non-empty list", v)
        return [p(x, src, f"{key}[{i}]") for i, x in enumerate(v)]
    return parse


def _mapping(v, src, key, known: list[str]) -> dict:
    if not isinstance(v, dict):
        _fail(src, key, "a mapping", v)
    for k in v:
        if k not in known:
            where = f"{key}.{k}" if key else str(k)
            raise UserError(f"unknown key; expected one of {', '.join(known)}", source=src, field=where)
    return v


def _model(v, src, key):
    from accelsim.trainer.models import PRESETS

    _str(v, src, key)
    if v not in PRESETS and not Path(v).is_dir():
        _fail(src, key, f"a model preset ({', '.join(PRESETS)}) or a local model directory", v)
    return v


def _hardware(v, src, key):
    from accelsim.hardware import load_profile

    _str(v, src, key)
    if v != "all":
        try:
            load_profile(v)
        except UserError as err:
            raise UserError(f"unusable hardware profile ({err})", source=src, field=key) from None
    return v


def _target(v, src, key):
    if v is None or v == "auto":
        return v
    return _float(0.0, math.inf, open_lo=True)(v, src, key)


def _data(v, src, key):
    from accelsim.trainer.data import DataConfig

    known = [f.name for f in dataclasses.fields(DataConfig) if f.name != "seq_len"]
    return dict(_mapping(v, src, key, known))


def _quick(v, src, key):
    d = _mapping(v, src, key, [f.name for f in dataclasses.fields(QuickSettings)])
    return QuickSettings(**{k: _int(1)(x, src, f"{key}.{k}") for k, x in d.items()})


def _methods(v, src, key):
    from accelsim.trainer.sparsity import SparsityConfig, available_methods

    if not isinstance(v, list) or not v:
        _fail(src, key, "a non-empty list of methods", v)
    option_names = [f.name for f in dataclasses.fields(SparsityConfig) if f.name not in ("method", "sparsity")]
    out = []
    for i, item in enumerate(v):
        where = f"{key}[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        d = _mapping(item, src, where, ["name", "sparsities", "options"])
        if "name" not in d:
            raise UserError("missing key 'name'", source=src, field=where)
        name = _str(d["name"], src, f"{where}.name")
        if name not in available_methods():
            _fail(src, f"{where}.name", f"one of {', '.join(available_methods())}", name)
        sp = _list(_float(0.0, 1.0, open_lo=True, open_hi=True), allow_scalar=True)(d["sparsities"], src, f"{where}.sparsities") \
            if d.get("sparsities") not in (None, []) else []
        if name == "dense" and sp:
            _fail(src, f"{where}.sparsities", "no sparsities for the dense baseline", d["sparsities"])
        if name != "dense" and not sp:
            _fail(src, f"{where}.sparsities", "a list of sparsities in (0, 1)", d.get("sparsities"))
        opts = dict(_mapping(d.get("options") or {}, src, f"{where}.options", option_names))
        for s in sp or [0.0]:
            try:
                SparsityConfig(method=name, sparsity=s, **opts).validate()
            except UserError as err:
                raise UserError(str(err).rsplit(": ", 1)[-1], source=src,
                                field=f"{where}.options.{err.field or ''}".rstrip(".")) from None
        out.append(MethodSpec(name, sp, opts))
    return out


_PARSERS: dict[str, Parser] = {
    "name": _str, "models": _list(_model, allow_scalar=True), "methods": _methods,
    "hardware": _list(_hardware, allow_scalar=True), "steps": _int(1), "batch_size": _int(1), "seq_len": _int(8),
    "devices": _int(1), "target_loss": _target, "lr": _float(0.0, 1.0, open_lo=True), "seed": _int(0),
    "update_every": _optional(_int(1)), "eval_every": _optional(_int(1)), "threads": _optional(_int(1)),
    "data": _data, "quick": _quick,
}
assert set(_PARSERS) == {f.name for f in dataclasses.fields(Experiment)}


def experiment_from_dict(data: Any, source: str = DEFAULT_SOURCE) -> Experiment:
    """An :class:`Experiment` from a YAML mapping; unknown keys and bad values raise one-line UserErrors."""
    d = _mapping(data, source, "", list(_PARSERS))
    values = {k: _PARSERS[k](copy.deepcopy(v), source, k) for k, v in d.items()}
    exp = Experiment(**values)
    names = [r.name for r in exp.runs()]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"runs {dup} appear twice", source=source, field="methods")
    return exp
