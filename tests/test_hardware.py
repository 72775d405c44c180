"""Hardware profiles: units, validation (every user mistake is a one-line UserError), provenance, CLI."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim.app.cli import main
from accelsim.errors import UserError
from accelsim.hardware import (
    fittable_params,
    list_profiles,
    load_profile,
    load_profile_text,
    parse_quantity,
    profile_to_dict,
    profile_to_yaml,
    with_params,
)
from accelsim.hardware.describe import field_rows, summary
from accelsim.hardware.quantities import format_quantity

BUNDLED = ["cpu-xeon-8380", "cpu-zen3", "fpga-u280", "gpu-a100", "gpu-h100", "ideal", "ipu-gc200", "wafer-wse2"]
SIMPLE = str(Path(__file__).parent / "data" / "cpu-simple.yaml")  # a hand-written profile with one CSR path


def _raw(name: str) -> dict:
    """A bundled profile's YAML mapping, to mutate in tests."""
    return profile_to_dict(load_profile(name))


def _load(data, source="t.yaml"):
    return load_profile_text(yaml.safe_dump(data, sort_keys=False), source=source)


# ------------------------------------------------------------------------------------------ units

@pytest.mark.parametrize("text,dim,value", [
    ("312 TFLOP/s", "flop_rate", 312e12), ("19.5TFLOPS", "flop_rate", 19.5e12),
    ("2039 GB/s", "bandwidth", 2039e9), ("1.2 Tb/s", "bandwidth", 1.2e12 / 8),
    ("40 MiB", "bytes", 40 * 2**20), ("2 b", "bytes", 0.25), ("80 GB", "bytes", 80e9),
    ("5 us", "time", 5e-6), ("5 µs", "time", 5e-6), ("0.88 ms", "time", 0.88e-3),
    ("400 W", "power", 400.0), ("1.41 GHz", "frequency", 1.41e9),
    ("1.3 pJ/B", "energy_per_byte", 1.3e-12), ("3.9 pJ/b", "energy_per_byte", 8 * 3.9e-12),
    ("0.5 pJ/FLOP", "energy_per_flop", 0.5e-12), ("1e3 W", "power", 1000.0),
])
def test_parse_quantity(text, dim, value):
    assert parse_quantity(text, dim) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("value,dim,fragment", [
    (2039, "bandwidth", "bare number"), (1.5, "time", "bare number"), (True, "power", "bare number"),
    ("2039", "bandwidth", "<number> <unit>"), ("fast", "bandwidth", "<number> <unit>"),
    ("2039 GB", "bandwidth", "unknown unit"), ("40 MiB/s", "bytes", "unknown unit"),
    ("5 KiW", "power", "unknown unit"), (["5 W"], "power", "quantity string"), ("1e400 W", "power", "finite"),
])
def test_parse_quantity_refuses(value, dim, fragment):
    with pytest.raises(UserError, match=fragment) as err:
        parse_quantity(value, dim, source="p.yaml", field="x.y")
    assert "p.yaml" in str(err.value) and "x.y" in str(err.value)


@given(st.floats(min_value=1e-15, max_value=1e18, allow_nan=False),
       st.sampled_from(["flop_rate", "bandwidth", "bytes", "time", "power", "energy_per_byte"]))
def test_format_quantity_round_trips(value, dim):
    assert parse_quantity(format_quantity(value, dim), dim) == pytest.approx(value, rel=1e-11)


# ------------------------------------------------------------------------------------------ bundled

def test_list_profiles_has_every_bundled_profile():
    assert list_profiles() == sorted(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_profile_loads_and_round_trips(name):
    prof = load_profile(name)
    assert prof.name == name and prof.dtype in prof.compute.peak_flops
    again = load_profile_text(profile_to_yaml(prof), source="roundtrip.yaml")
    assert profile_to_dict(again) == profile_to_dict(prof)
    # every field shown by `hw show` is covered by a citation or an assumption
    rows = field_rows(prof)
    numeric = [r for r in rows if r.value and r.field not in ("name", "kind", "description", "dtype")
               and not r.field.endswith((".unit_name", ".pattern", ".description", ".role"))]
    assert numeric and all(r.covered_by for r in numeric), [r.field for r in numeric if not r.covered_by]


def test_profile_paths_and_sources_are_specific():
    a100 = load_profile("gpu-a100")
    assert a100.compute.peak_flops["bf16"] == 312e12
    assert a100.memory[-1].bandwidth_Bps == 2039e9 and a100.memory[-1].role == "main"
    assert a100.paths["2:4-sparse-tc"].phases == ("fwd",)
    assert "tutorial" in a100.sources["paths.2:4-sparse-tc.peak_fraction"]
    local = load_profile("cpu-zen3")
    assert "accelsim calibrate" in local.sources["paths.csr-spmm-fwd.peak_fraction"]
    assert "vector-ops.json" in local.sources["paths.vector.element_time"]
    assert set(local.paths["vector"].element_time_s) == {"softmax", "layernorm", "gelu", "residual", "dropout", "loss",
                                                         "mask_select", "mask_group_select"}
    # the Zen 3 guest never timed a top-k: its mask_select is borrowed, shown as an assumption, not as measured
    row = next(r for r in field_rows(local) if r.field == "paths.vector.element_time.mask_select.fwd")
    assert row.assumption and "zen5-f26m2/mask-update.json" in row.provenance
    assert "32-bit" in local.sources["paths.csr-spmm-fwd.index_bytes_per_nnz"]
    assert local.fitted and local.fitted["heldout"]["n"] > 0
    ipu = load_profile("ipu-gc200")
    assert ipu.execution.bsp is not None and not ipu.execution.overlap
    assert ipu.level("sram").capacity_bytes == 897 * 2**20


def test_load_profile_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(profile_to_yaml(load_profile("gpu-a100")))
    assert load_profile(path).name == "gpu-a100"
    assert load_profile(str(path)).source_file == str(path)


# ------------------------------------------------------------------------------------------ refusals

def _mutate(path: str, value):
    data = _raw("gpu-a100")
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize("path,value,field,expect", [
    ("compute.peak.bf16", _DELETE, "compute.peak", "profile dtype 'bf16'"),
    ("memory.1.bandwidth", _DELETE, "memory.hbm.bandwidth", "missing required field"),
    ("memory.1.bandwidth", "-2039 GB/s", "memory.hbm.bandwidth", "positive quantity"),
    ("memory.1.bandwidth", 2039, "memory.hbm.bandwidth", "bare number"),
    ("memory.1.bandwidth", "2039 GB", "memory.hbm.bandwidth", "unknown unit"),
    ("memory.0.capacity", "40", "memory.l2.capacity", "<number> <unit>"),
    ("compute.units", -3, "compute.units", "integer count"),
    ("compute.units", "108 SMs", "compute.units", "integer count"),
    ("execution.overlap", "yes", "execution.overlap", "true or false"),
    ("paths.csr-spmm.exponent", 1.5, "paths.csr-spmm.exponent", r"\(0, 1\]"),
    ("paths.csr-spmm.peak_fraction", 0, "paths.csr-spmm.peak_fraction", r"\(0, 1\]"),
    ("paths.bsr.block_sizes", [12], "paths.bsr.block_sizes", "drawn from"),
    ("paths.bsr.pattern", "diagonal", "paths.bsr.pattern", "expected one of"),
    ("energy.static_power", "-60 W", "energy.static_power", "non-negative"),
    ("kind", "tpu", "kind", "expected one of"),
    ("format", 2, "format", "format version"),
    ("execution.bandwith", "1 GB/s", "execution.bandwith", "unknown key"),
    ("paths.vector.element_time", {"rng": {"fwd": "1 ns"}}, "paths.vector.element_time.rng", "unknown key"),
    ("paths.vector.element_time", {"gelu": {"bwd_input": "1 ns"}}, "paths.vector.element_time.gelu.bwd_input",
     "unknown key; expected one of fwd, bwd"),
    ("paths.vector.element_time", {"gelu": {"fwd": "-1 ns"}}, "paths.vector.element_time.gelu.fwd", "positive"),
    ("paths.csr-spmm.element_time", {"gelu": {"fwd": "1 ns"}}, "paths.csr-spmm.element_time",
     "only valid for pattern 'vector'"),
])
def test_malformed_profile_names_file_field_and_expectation(path, value, field, expect):
    with pytest.raises(UserError, match=expect) as err:
        _load(_mutate(path, value), source="broken.yaml")
    message = str(err.value)
    assert message.startswith("broken.yaml: ") and f"field '{field}'" in message and "\n" not in message


def test_memory_levels_must_be_fastest_first():
    data = _raw("gpu-a100")
    data["memory"].reverse()
    with pytest.raises(UserError, match="fastest first"):
        _load(data)


def test_every_figure_needs_a_source_or_an_assumption():
    data = _raw("gpu-a100")
    del data["sources"]["memory.hbm.bandwidth"]
    with pytest.raises(UserError, match="no 'sources' entry") as err:
        _load(data)
    assert "memory.hbm.bandwidth" in str(err.value)
    data = _raw("gpu-a100")
    data["sources"]["memory.hbm.latency"] = "made up"
    with pytest.raises(UserError, match="names no field"):
        _load(data)
    data = _raw("gpu-a100")
    data["assumptions"].append({"memory.hbm.bandwidth": "a figure may be both cited and flagged"})
    assert _load(data).assumptions["memory.hbm.bandwidth"]


def test_bad_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such hardware profile.*bundled profiles"):
        load_profile("gpu-z9000")
    with pytest.raises(UserError, match="not a file"):
        load_profile(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        load_profile(bad)
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="cannot read"):
        load_profile(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(UserError, match="expected a mapping"):
        load_profile(bad)
    bad.write_text("!!python/object:os.system {}\n")  # safe_load refuses arbitrary objects
    with pytest.raises(UserError, match="not valid YAML"):
        load_profile(bad)


# ------------------------------------------------------------------------------------------ fuzzing

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                     st.sampled_from(["1 GB/s", "-1 W", "0 s", "2:4", "fwd", "bf16", "main", "5", "%", "50 %"]))
_values = st.recursive(_scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), kids, max_size=4)),
    max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_loader_fuzz_random_documents_only_raise_user_error(doc):
    try:
        load_profile_text(yaml.safe_dump(doc), source="fuzz.yaml")
    except UserError as err:
        assert "\n" not in str(err)


def _leaf_paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaf_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaf_paths(v, prefix + (i,))
    yield prefix


_RAW = {name: _raw(name) for name in BUNDLED}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BUNDLED), st.data(), _values)
def test_loader_fuzz_mutated_profiles_only_raise_user_error(name, data, value):
    doc = copy.deepcopy(_RAW[name])
    paths = [p for p in _leaf_paths(doc) if p]
    target = data.draw(st.sampled_from(paths))
    node = doc
    for key in target[:-1]:
        node = node[key]
    if data.draw(st.booleans()):
        node[target[-1]] = value
    elif isinstance(node, dict):
        del node[target[-1]]
    else:
        node.pop(target[-1])
    try:
        load_profile_text(yaml.safe_dump(doc), source="mutant.yaml")
    except UserError as err:
        assert str(err).startswith("mutant.yaml")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_loader_fuzz_random_text_only_raises_user_error(text):
    try:
        load_profile_text(text, source="text.yaml")
    except UserError:
        pass


# ------------------------------------------------------------------------------------------ parameters

def test_fittable_params_round_trip_and_validation():
    prof = load_profile(SIMPLE)
    params = fittable_params(prof)
    assert params["paths.csr-spmm.d_half"] == pytest.approx(0.01952)
    assert params["paths.csr-spmm.overhead"] == pytest.approx(0.88e-3)
    new = with_params(prof, {"paths.csr-spmm.d_half": 0.05, "paths.csr-spmm.peak_fraction": 0.2})
    assert new.paths["csr-spmm"].d_half == 0.05 and new.paths["csr-spmm"].fraction("fp32") == 0.2
    assert prof.paths["csr-spmm"].d_half == pytest.approx(0.01952)  # the original is untouched
    a100 = with_params(load_profile("gpu-a100"), {"paths.dense-gemm.peak_fraction.fp16": 0.5})
    assert a100.paths["dense-gemm"].fraction("fp16") == 0.5
    for bad in ({"paths.csr-spmm.exponent": 1.5}, {"paths.nope.d_half": 0.1}, {"paths.csr-spmm.speed": 1},
                {"paths.dense-gemm.peak_fraction.fp8": 0.5}):
        with pytest.raises(UserError):
            with_params(load_profile("gpu-a100") if "fp8" in str(bad) else prof, bad)
    text = profile_to_yaml(new, extra={"fitted": {"method": "least_squares", "points": 5}})
    again = load_profile_text(text)
    assert again.fitted == {"method": "least_squares", "points": 5}
    assert again.paths["csr-spmm"].d_half == 0.05


# ------------------------------------------------------------------------------------------ CLI

def test_cli_list_show_check(tmp_path, capsys):
    main(["hw", "list"])
    out = capsys.readouterr().out
    for name in BUNDLED:
        assert name in out
    assert "2:4" in out
    main(["hw", "show", "ipu-gc200"])
    out = capsys.readouterr().out
    assert "ASSUMPTION" in out and "47.5 TB/s" in out and "Graphcore" in out
    good = tmp_path / "good.yaml"
    good.write_text(profile_to_yaml(load_profile("fpga-u280")))
    main(["hw", "check", str(good)])
    assert capsys.readouterr().out.strip().startswith("ok: ")
    main(["hw", "check", "gpu-a100"])  # a bundled name, as --hw takes everywhere
    assert capsys.readouterr().out.strip() == "ok: gpu-a100 (hwconfigs/gpu-a100.yaml)"
    bad = tmp_path / "bad.yaml"
    bad.write_text(profile_to_yaml(load_profile("fpga-u280")).replace("460 GB/s", "460"))
    with pytest.raises(SystemExit) as exit_info:
        main(["hw", "check", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.yaml" in err and "memory.hbm.bandwidth" in err and "bare number" in err


def test_summary_mentions_exploited_patterns():
    s = summary(load_profile("gpu-a100"))
    assert s["dtype"] == "bf16" and "2:4" in s["exploits"] and "312 TFLOP/s" in s["peak"]
    assert summary(load_profile("ideal"))["memory"] == "none"


def test_summary_says_what_each_profile_rests_on():
    """`hw list`'s basis: the held-out figure each fit recorded, read from the profile's own fitted: record."""
    a100 = load_profile("gpu-a100")
    held, group = a100.fitted["held_out"], a100.fitted["held_out_by_group"]
    assert summary(a100)["basis"] == (f"published: {held['within_1.35x']:.0%} of {held['n']} held-out points within "
                                      f"1.35x ({group['within_1.35x']:.0%} holding out author groups)")
    assert summary(load_profile("cpu-zen3"))["basis"].startswith("measured on the CPU it describes: held-out error ")
    assert summary(load_profile("wafer-wse2"))["basis"] == "assumed"
    assert summary(load_profile("ideal"))["basis"].startswith("bound")
