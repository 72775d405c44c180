"""The trace schema: append-only tables, resume truncation, masks, manifest validation, docs."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accelsim import trace as tr
from accelsim.errors import UserError
from accelsim.patterns import pattern_stats


def _manifest(**over):
    m = tr.Manifest(model=dict(layers=1, hidden=8, heads=2, intermediate=32, vocab=50, seq_len=16, params=1000),
                    batch_size=2, dtype="fp32", method={"name": "rigl", "sparsity": 0.5},
                    layers=[tr.LayerInfo("bert.encoder.layer.0.intermediate.dense", "ffn_in", [32, 8], 0.5)])
    for k, v in over.items():
        setattr(m, k, v)
    return m


def _step_row(step):
    row = {c: 0.0 for c in tr.STEP_COLUMNS}
    row.update(step=step, tokens=32, mask_changed=False)
    return row


def test_manifest_roundtrip(tmp_path):
    tr.write_manifest(tmp_path, _manifest())
    back = tr.read_manifest(tmp_path)
    assert back.layers[0].shape == [32, 8] and back.method["name"] == "rigl"
    assert back.schema_version == tr.SCHEMA_VERSION


def test_unknown_schema_version_is_refused(tmp_path):
    tr.write_manifest(tmp_path, _manifest(schema_version=99))
    with pytest.raises(UserError, match=r"manifest.json: field 'schema_version': unknown trace schema version 99"):
        tr.read_manifest(tmp_path)


def test_append_read_and_truncate(tmp_path):
    tr.append_rows(tmp_path, "steps", [_step_row(s) for s in range(0, 5)])
    tr.append_rows(tmp_path, "steps", [_step_row(s) for s in range(5, 10)])
    assert tr.read_table(tmp_path, "steps")["step"].to_pylist() == list(range(10))
    tr.truncate_after(tmp_path, "steps", 6)
    assert tr.read_table(tmp_path, "steps")["step"].to_pylist() == list(range(7))
    tr.truncate_after(tmp_path, "steps", 2)
    assert tr.read_table(tmp_path, "steps")["step"].to_pylist() == [0, 1, 2]
    # no temporary files are left behind
    assert not [p for p in tr.table_dir(tmp_path, "steps").iterdir() if p.name.startswith(".")]


def test_masks_roundtrip_and_truncate(tmp_path):
    rng = np.random.default_rng(0)
    masks = {"a": rng.random((7, 13)) < 0.3, "b": rng.random((16, 4)) < 0.9}
    p = tr.write_masks(tmp_path, 5, masks)
    back = tr.read_masks(p)
    assert all(np.array_equal(back[k], masks[k]) for k in masks)
    tr.truncate_after(tmp_path, "steps", 4)
    assert not p.exists()


def test_pattern_stats_hand_made():
    m = np.zeros((8, 8), dtype=bool)
    m[0, :4] = True  # one dense 2-row... first row, 4 nonzeros in one 4x4 block
    m[5, 7] = True
    s = pattern_stats(m)
    assert s["nnz"] == 5 and s["density"] == 5 / 64
    assert s["row_nnz_max"] == 4 and s["row_nnz_min"] == 0
    assert s["block4_frac"] == 2 / 4 and s["block8_frac"] == 1.0
    assert s["nm_2_4_frac"] == 15 / 16  # only row 0's first group of 4 has more than 2
    assert sum(s["row_nnz_hist"]) == 8 and s["row_nnz_hist"][0] == 6


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 70), cols=st.integers(1, 70), density=st.sampled_from([0.0, 0.03, 0.3, 0.7, 1.0]),
       seed=st.integers(0, 2**16))
def test_pattern_stats_word_tricks_match_plain_counts(rows, cols, density, seed):
    """The word-at-a-time block and N:M statistics against their plain definitions, at shapes that are not
    multiples of any block or group size."""
    m = np.random.default_rng(seed).random((rows, cols)) < density
    s = pattern_stats(m)
    for b in tr.BLOCK_SIZES:
        tiles = [m[i:i + b, j:j + b].any() for i in range(0, rows, b) for j in range(0, cols, b)]
        assert s[f"block{b}_frac"] == pytest.approx(np.mean(tiles), abs=1e-12)
    for n, g in ((2, 4), (4, 8)):
        groups = [m[i, j:j + g].sum() <= n for i in range(rows) for j in range(0, cols - cols % g, g)]
        assert s[f"nm_{n}_{g}_frac"] == pytest.approx(np.mean(groups) if groups else 0.0, abs=1e-12)


def test_docs_describe_every_column():
    doc = (Path(__file__).parents[1] / "docs" / "trace-format.md").read_text()
    for table, cols in tr.TABLES.items():
        for name in cols:
            assert f"`{name}`" in doc, f"{table}.{name} missing from docs/trace-format.md"
    assert f"schema version {tr.SCHEMA_VERSION}" in doc


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                           lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=8), ch, max_size=4),
                           max_leaves=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(st.sampled_from(["schema_version", "model", "batch_size", "dtype", "method", "layers",
                                             "seed", "steps"]), json_values, max_size=8),
       base=st.booleans())
def test_manifest_loader_fuzz_only_raises_user_errors(tmp_path, data, base):
    doc = json.loads(_manifest().to_json()) if base else {}
    doc.update(data)
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    try:
        tr.read_manifest(tmp_path)
    except UserError as err:
        assert "\n" not in str(err) and re.search(r"manifest\.json", str(err))


def test_corrupt_manifest_is_one_line_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        tr.read_manifest(tmp_path)
