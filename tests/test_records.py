"""kernels.records: the typed measurement format that bench, merge, calibrate and validate share."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from accelsim.errors import UserError
from accelsim.kernels.records import (
    DENSE_PATH,
    SCHEMA,
    SCHEMA_VERSION,
    Measurements,
    Record,
    read_measurements,
    record_ratios,
)

ROOT = Path(__file__).parent.parent
COMMITTED = sorted((ROOT / "benchmarks" / "results").glob("*/kernels-sweep.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.parent.name)
def test_committed_measurement_files_load_and_write_back_unchanged(path):
    raw = json.loads(path.read_text())
    doc = read_measurements(path)
    assert doc.schema == SCHEMA and SCHEMA.endswith(f"/{SCHEMA_VERSION}") and len(doc.records) == len(raw["records"])
    assert doc.to_dict() == raw  # nothing lost, nothing added
    fff = [r for r in doc.records if r.op == "fff"]
    mm = [r for r in doc.records if r.op != "fff"]
    assert mm and all(r.trees == 0 and "trees" not in r for r in mm)
    assert all(r.trees >= 1 for r in fff)
    rec = mm[0]
    assert rec["op"] == rec.op and rec.get("trees") is None and rec.get("speedup_vs_dense") == rec.extra[
        "speedup_vs_dense"]
    first = raw["records"][doc.records.index(rec)]
    if "ratios_rounds" in first:  # zen3; the zen5 sweep predates them: derived from the rounds
        assert rec.ratios() == rec.ratios_rounds == first["ratios_rounds"]
    else:
        assert rec.ratios_rounds is None and rec.ratios() == record_ratios(first) and rec.ratios()


def test_committed_files_exist():
    assert len(COMMITTED) >= 2  # zen3 and zen5 sweeps: the test above must not pass on nothing


def test_a_record_written_before_ratios_families_and_devices():
    """The oldest committed sweeps (before 2026-12) had no ratios_rounds, families or device: defaults apply."""
    new = read_measurements(COMMITTED[0]).records[0]
    old = {k: v for k, v in new.to_dict().items() if k not in ("ratios_rounds", "families", "device")}
    rec = Record.from_dict(old)
    assert rec.device == "cpu" and rec.ratios_rounds is None and rec.families is None
    assert rec.to_dict() == dict(old, device="cpu")  # absent fields stay absent; the device default is written
    assert rec.ratios() == record_ratios(old)  # derived from the per-round times, paired by round
    dense = rec.times_rounds[DENSE_PATH]
    for path, ratios in rec.ratios().items():
        assert ratios == pytest.approx([t / d for t, d in zip(rec.times_rounds[path], dense)])
    fams = rec.kernel_families()  # from the kernel registry
    assert fams[DENSE_PATH] == "dense" and set(rec.times) <= set(fams)


def _doc(**changes):
    rec = {"op": "matmul", "tokens": 8, "d_in": 16, "d_out": 64, "m": 8, "k": 16, "n": 64, "pattern": "unstructured",
           "density": 0.5, "density_actual": 0.5, "dtype": "float32", "threads": 1, "path": "csr_torch",
           "median_s": 1.0, "dense_s": 2.0, "times": {"csr_torch": 1.0, DENSE_PATH: 2.0}}
    doc = {"schema": SCHEMA, "machine": {"cpu_model": "x"}, "records": [rec]}
    for key, value in changes.items():
        if key in doc:
            doc[key] = value
        else:
            rec[key] = value
    return doc


@pytest.mark.parametrize("changes, field", [
    (dict(schema="accelsim.kernel-measurements/2"), "schema"),
    (dict(machine=None), "machine"),
    (dict(records=[]), "records"),
    (dict(threads=0), r"records\[0\]\.threads"),
    (dict(threads=True), r"records\[0\]\.threads"),
    (dict(density_actual=1.5), r"records\[0\]\.density_actual"),
    (dict(op="conv"), r"records\[0\]\.op"),
    (dict(path="mkl"), r"records\[0\]\.path"),
    (dict(op="fff"), r"records\[0\]\.trees"),
    (dict(ratios_rounds={"csr_torch": [0.5, float("nan")]}), r"records\[0\]\.ratios_rounds"),
])
def test_defects_are_one_line_errors_naming_the_field(changes, field, tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(_doc(**changes)))
    with pytest.raises(UserError, match=field):
        read_measurements(p)


def test_keys_and_dict_access():
    doc = Measurements.coerce(_doc())
    rec = doc.records[0]
    assert rec.shape_key == ("matmul", 8, 16, 64, "fp32", (0, 0))
    assert rec.case_key == ("matmul", 8, 16, 64, "unstructured", 0.5, "float32", 1, None, None)
    assert doc["records"] is doc.records and doc.seed == 0 and doc.rounds == 1
    assert rec.ratios() == {"csr_torch": [0.5]}  # a one-round file pairs the one round
    with pytest.raises(KeyError):
        rec["trees"]


def test_calibrate_and_validation_no_longer_import_each_others_internals():
    """validation and the shared points import nothing of calibrate (the former private-import cycle)."""
    for name in ("validation.py", "points.py", "records.py"):
        tree = ast.parse((ROOT / "kernels" / name).read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "accelsim.kernels.calibrate" not in mods, name
