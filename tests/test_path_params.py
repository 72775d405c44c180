"""The path-parameter table (accelsim/hardware/params.py) is the one declaration that the schema, the YAML
writer, the fittable-parameter API and calibration iterate over."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from accelsim.errors import UserError
from accelsim.hardware import (
    PathSpec,
    fittable_params,
    load_profile,
    load_profile_text,
    param_bounds,
    profile_to_dict,
    profile_to_yaml,
)
from accelsim.hardware.params import PATH_PARAMS, fit_kind, fitted_for
from accelsim.kernels.calibrate import _Space

SIMPLE = str(Path(__file__).parent / "data" / "cpu-simple.yaml")
DOCS = Path(__file__).parent.parent / "docs" / "hardware-profiles.md"


def test_table_and_pathspec_agree():
    fields = {f.name: f for f in dataclasses.fields(PathSpec)}
    for row in PATH_PARAMS.values():
        assert row.attr in fields, row.key
        if not row.required:
            assert fields[row.attr].default == row.default, row.key
    # every numeric PathSpec attribute is declared in the table (a new one must not bypass it)
    numeric = {n for n, f in fields.items() if f.type in ("float", "int")}
    assert numeric == {row.attr for row in PATH_PARAMS.values() if row.key != "peak_fraction"}


def test_every_parameter_documented():
    text = DOCS.read_text(encoding="utf-8")
    assert [k for k in PATH_PARAMS if f"`{k}`" not in text and k not in text] == []


def _with_path_value(row, value):
    """cpu-simple's CSR path (or a conditional one for conditional-only rows) carrying ``value``."""
    data = profile_to_dict(load_profile(SIMPLE))
    path = dict(data["paths"]["bsr" if row.patterns == ("block",) else "csr-spmm"])
    if row.patterns == ("conditional",):
        path = {"pattern": "conditional", "peak_fraction": 0.5}
    path[row.key] = value
    data["paths"]["p"] = path
    data.setdefault("assumptions", []).append("paths.p")
    return data


@pytest.mark.parametrize("key", [k for k in PATH_PARAMS if k != "peak_fraction"])
def test_each_row_loads_writes_back_and_is_checked(key):
    row = PATH_PARAMS[key]
    good = {"": 0.5, "count": 3, "time": "2 us", "bytes": "64 KiB", "bandwidth": "3 GB/s"}[row.dimension]
    prof = load_profile_text(yaml.safe_dump(_with_path_value(row, good)), source="t.yaml")
    value = getattr(prof.paths["p"], row.attr)
    assert value != row.default
    again = load_profile_text(profile_to_yaml(prof))
    assert getattr(again.paths["p"], row.attr) == pytest.approx(value, rel=1e-12)
    # a bad value is refused naming the field (a bare number for a quantity, out of range, negative)
    bad = {"": row.hi + 1 if row.hi != float("inf") else -1, "count": 0}.get(row.dimension, 5)
    with pytest.raises(UserError, match=f"paths.p.{key}"):
        load_profile_text(yaml.safe_dump(_with_path_value(row, bad)), source="t.yaml")
    if row.patterns:  # refused on a path of another kind
        data = _with_path_value(row, good)
        data["paths"]["p"] = dict(data["paths"]["csr-spmm"], **{key: good})
        with pytest.raises(UserError, match=f"only valid for pattern '{row.patterns[0]}'"):
            load_profile_text(yaml.safe_dump(data), source="t.yaml")


def test_fittable_keys_and_bounds_come_from_the_table():
    prof = load_profile(SIMPLE)
    keys = fittable_params(prof)
    fittable = {k for k, r in PATH_PARAMS.items() if r.fittable}
    assert {k.split(".")[2] for k in keys} == fittable
    assert "interleave" not in fittable and "index_bytes_per_nnz" not in fittable
    for k in keys:
        assert param_bounds(k) == PATH_PARAMS[k.split(".")[2]].fit_bounds
    with pytest.raises(UserError):
        param_bounds("paths.csr-spmm.interleave")


def test_calibration_order_per_kind():
    # the order calibrate fitted in before the table existed (kernels/calibrate.py FIT_PARAMS), then the
    # partial row tile's penalty of issue 20 last
    assert fitted_for("dense") == ("peak_fraction", "overhead", "output_bandwidth", "unaligned_penalty")
    assert fitted_for("sparse") == ("peak_fraction", "overhead", "output_bandwidth", "input_bandwidth", "d_half",
                                    "exponent", "spill_bytes", "output_free_bytes", "scatter_penalty",
                                    "aliased_penalty", "reread_bandwidth", "tail_penalty")
    assert fitted_for("conditional") == ("peak_fraction", "overhead", "level_latency")
    assert [fit_kind(p) for p in ("dense", "unstructured", "2:4", "block", "conditional")] == \
        ["dense", "sparse", "sparse", "sparse", "conditional"]
    for kind in ("dense", "sparse", "conditional"):
        for key in fitted_for(kind):  # everything calibrate fits has a search space
            row = PATH_PARAMS[key]
            assert row.fittable and row.sample is not None
            if row.absent_end:
                assert row.log_floor is not None and row.default == 0.0


def test_search_space_snaps_absent_terms_to_the_default():
    keys = ["paths.csr-spmm.output_bandwidth", "paths.csr-spmm.overhead", "paths.csr-spmm.exponent"]
    current = fittable_params(load_profile(SIMPLE))
    space = _Space(keys, current)
    at_ends = space.hi.copy()
    at_ends[1] = space.lo[1]  # overhead at its low end
    snapped = space.values(at_ends, snap=True)
    assert snapped["paths.csr-spmm.output_bandwidth"] == 0.0  # "hi" end of a bandwidth: no such term
    assert snapped["paths.csr-spmm.overhead"] == 0.0
    assert snapped["paths.csr-spmm.exponent"] == 1.0  # a linear parameter keeps its bound
