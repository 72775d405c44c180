"""Issue 20: shapes held out whole (kernels.points.ShapeSplit) and the on-grid / off-shape validation report,
on measurements synthesised from a known profile (no timing)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.hardware import kernel_time, load_profile, with_params
from accelsim.kernels.bench import SCHEMA
from accelsim.kernels.calibrate import fit_profile, validate
from accelsim.kernels.points import ShapeSplit, measurement_points, shape_of

SIMPLE = str(Path(__file__).parent / "data" / "cpu-simple.yaml")
TRUTH = {"paths.dense-gemm.peak_fraction": 0.55, "paths.csr-spmm.peak_fraction": 0.3,
         "paths.csr-spmm.d_half": 0.04, "paths.csr-spmm.overhead": 2e-4,
         "paths.bsr.peak_fraction": 0.7, "paths.bsr.d_half": 0.02, "paths.bsr.overhead": 5e-5}
FAMILY_PATH = {"dense_torch": "dense-gemm", "csr_torch": "csr-spmm", "blocksparse_c": "bsr"}
FAMILIES = {"dense_torch": "dense", "csr_torch": "unstructured", "blocksparse_c": "block"}
LAYERS = {"ffn_in": lambda h: (h, 4 * h), "ffn_out": lambda h: (4 * h, h), "attn": lambda h: (h, h)}
#: on-grid shapes and irregular ones (non-powers of two, up to width 4096 as the issue asks)
GRID = [(128, 256), (512, 256), (128, 768), (512, 768)]
IRREGULAR = [(96, 320), (200, 1008), (640, 2560), (96, 4096)]


def _record(truth, op, tokens, layer, h, pattern, density):
    d_in, d_out = LAYERS[layer](h)
    kernels = ["dense_torch", "blocksparse_c" if pattern.startswith("block") else "csr_torch"]
    times = {k: kernel_time(truth, op, tokens, d_in, d_out, density if k != "dense_torch" else 1.0,
                            pattern, "fp32", path=FAMILY_PATH[k]) for k in kernels}
    best = min(times, key=times.get)
    return {"op": op, "layer": layer, "tokens": tokens, "d_in": d_in, "d_out": d_out, "m": tokens, "k": d_in,
            "n": d_out, "pattern": pattern, "density": density, "density_actual": density, "dtype": "float32",
            "device": "cpu", "threads": 2, "path": best, "median_s": times[best], "dense_s": times["dense_torch"],
            "times": times, "families": {k: FAMILIES[k] for k in kernels}}


def _doc(shapes, heldout=None, layers=("ffn_in", "attn"), densities=(0.5, 0.2, 0.05), ops=("matmul",)):
    truth = with_params(load_profile(SIMPLE), TRUTH)
    recs = [_record(truth, op, t, layer, h, pat, d) for op in ops for t, h in shapes
            for layer in layers for pat in ("unstructured", "block16") for d in densities]
    doc = {"schema": SCHEMA, "machine": {"cpu_model": "synthetic", "logical_cores": 2, "isa_flags": [],
                                         "torch": "x", "date": "2026-01-01T00:00:00+00:00"},
           "config": {}, "records": recs}
    if heldout is not None:
        doc["config"]["heldout_shapes"] = [list(s) for s in heldout]
    return doc


def test_shape_of_is_the_layer_width_for_every_layer_kind():
    assert shape_of("matmul", 96, 320, 1280) == shape_of("matmul_dw", 96, 1280, 320) == (96, 320)
    assert shape_of("matmul_dx", 96, 320, 320) == (96, 320)
    assert shape_of("fff", 96, 320, 255) == (96, 320)  # an FFF layer's d_out is its neuron count


@settings(max_examples=15, deadline=None)
@given(st.sets(st.sampled_from(GRID + IRREGULAR), min_size=1, max_size=len(GRID + IRREGULAR) - 1))
def test_a_held_out_shape_never_reaches_the_training_set(held):
    """Every point (dense baselines, every layer, op, pattern) of a held-out shape is held out and flagged
    off-shape; no training point has a held-out shape; the other shapes keep the 1-in-5 case split."""
    doc = _doc(GRID + IRREGULAR, densities=(0.2,), ops=("matmul", "matmul_dx"))
    split = ShapeSplit.of([list(s) for s in held])
    points, _ = measurement_points(doc, load_profile(SIMPLE), split=split)
    for p in points:
        shape = shape_of(p.kind, p.tokens, p.d_in, p.d_out)
        assert p.off_shape == (shape in held)
        if shape in held:
            assert p.heldout
    train = {shape_of(p.kind, p.tokens, p.d_in, p.d_out) for p in points if not p.heldout}
    assert not train & set(held)
    plain, _ = measurement_points(doc, load_profile(SIMPLE))
    on_grid = [(a.heldout, b.heldout) for a, b in zip(plain, points) if not b.off_shape]
    assert all(x == y for x, y in on_grid)  # shapes not held out: the same case split as before


def test_fit_never_sees_held_out_shapes_and_validate_reports_them_apart(tmp_path):
    doc = _doc(GRID + IRREGULAR, heldout=IRREGULAR, layers=("ffn_in",), densities=(0.5, 0.2, 0.1, 0.05, 0.02))
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    from accelsim.kernels.calibrate import calibrate

    cal = calibrate(path, SIMPLE, tmp_path / "fit.yaml")
    assert {tuple(s) for s in cal.fitted["heldout_shapes"]} == set(IRREGULAR)
    assert not {tuple(s) for s in cal.fitted["train_shapes"]} & set(IRREGULAR)
    assert all(shape_of(p.kind, p.tokens, p.d_in, p.d_out) not in IRREGULAR for p in cal.train)
    assert cal.fitted["off_shape"]["n"] == sum(p.off_shape for p in cal.heldout) > 0
    # the generating model holds off its grid: the fit recovers it from the grid alone
    assert cal.fitted["off_shape"]["mape"] < 0.02
    report = validate(path, tmp_path / "fit.yaml", tmp_path / "val")
    off, on = report["off_shape"], report["on_grid"]
    assert off["overall"]["n"] + on["overall"]["n"] == report["n_points"]
    assert {r["off_shape"] for r in report["points"]} == {True, False}
    assert all(shape_of(r["kind"], r["tokens"], r["d_in"], r["d_out"]) in IRREGULAR
               for r in report["points"] if r["off_shape"])
    assert set(off["by_pattern"]) == {"dense", "unstructured", "block16"}
    # another file: shapes outside the profile's train_shapes are off-shape
    other = tmp_path / "other.json"
    other.write_text(json.dumps(_doc([(128, 256), (200, 1008)], layers=("ffn_in",), densities=(0.2,))))
    rep = validate(other, tmp_path / "fit.yaml")
    assert rep["mode"].startswith("all points")
    assert {shape_of(r["kind"], r["tokens"], r["d_in"], r["d_out"]) for r in rep["points"] if r["off_shape"]} \
        == {(200, 1008)}


def test_old_sweeps_without_held_out_shapes_validate_as_before(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_doc(GRID[:2], layers=("ffn_in",), densities=(0.5, 0.05))))
    cal = fit_profile(json.loads(path.read_text()), SIMPLE)
    assert cal.fitted["heldout_shapes"] == [] and cal.fitted["off_shape"] is None
    report = validate(path, SIMPLE)
    assert report["off_shape"] is None and report["on_grid"]["overall"]["n"] == report["n_points"]
    for key in ("overall_mape", "mape_by_pattern", "mape_by_op", "mape_by_kernel", "raw", "winner", "fastest"):
        assert key in report


@pytest.mark.parametrize("name", ["zen3/kernels-sweep.json"])
def test_committed_sweep_still_validates(name):
    """The committed Zen 3 sweep and its bundled profile: the old report, no off-shape part."""
    path = Path(__file__).parent.parent / "benchmarks" / "results" / name
    report = validate(path, "cpu-zen3")
    assert report["mode"].startswith("held-out") and report["off_shape"] is None
    assert report["overall_mape"]["n"] == report["n_points"] > 100


def test_chunk_bytes_caps_the_re_read_operand_of_the_spill_term():
    """A chunked kernel (csr_c: X^T slices of <= 192 KiB) re-reads one chunk per nonzero: past the chunk size
    the per-FLOP cost no longer grows with the token count, as it does without chunk_bytes."""
    base = with_params(load_profile(SIMPLE), {"paths.csr-spmm.spill_bytes": 1e6, "paths.csr-spmm.overhead": 0.0})
    import dataclasses
    chunked = dataclasses.replace(base, paths=dict(base.paths, **{"csr-spmm": dataclasses.replace(
        base.paths["csr-spmm"], chunk_bytes=192 * 1024)}))

    def per_token(prof, t):
        return kernel_time(prof, "matmul", t, 768, 3072, 0.2, path="csr-spmm") / t

    assert per_token(base, 4096) > 1.5 * per_token(base, 512)  # 12.6 MB of X vs 1.6 MB: spills further
    assert per_token(chunked, 4096) == pytest.approx(per_token(chunked, 512), rel=0.02)
    small = kernel_time(chunked, "matmul", 16, 768, 3072, 0.2, path="csr-spmm")  # 48 KiB of X: below a chunk
    assert small == pytest.approx(kernel_time(base, "matmul", 16, 768, 3072, 0.2, path="csr-spmm"), rel=1e-9)


def test_fit_recovers_spill_and_efficiency_with_token_chunks_and_chunk_bytes(tmp_path):
    """Synthetic csr timings from a profile whose CSR path pads tokens to chunks of 128 (row_multiple) and
    re-reads 192 KiB pieces (chunk_bytes): fitted on the power-of-two grid, the fit recovers the generating
    peak_fraction and spill_bytes and predicts irregular shapes (96, 200, 1500 tokens) off-shape."""
    import dataclasses
    truth = with_params(load_profile(SIMPLE), {"paths.csr-spmm.peak_fraction": 0.2, "paths.csr-spmm.spill_bytes": 4e5,
                                               "paths.csr-spmm.overhead": 0.0, "paths.csr-spmm.d_half": 0.0})

    def chunked(prof):
        return dataclasses.replace(prof, paths=dict(prof.paths, **{"csr-spmm": dataclasses.replace(
            prof.paths["csr-spmm"], row_multiple=128, chunk_bytes=192 * 1024)}))

    truth = chunked(truth)
    # token counts below a chunk's 192 KiB of X as well as above it: the spill term's size is identifiable
    shapes = [(32, 256), (128, 256), (512, 256), (64, 768), (128, 768), (512, 768), (96, 320), (200, 1008), (1500, 640)]
    recs = [_record(truth, "matmul", t, "ffn_in", h, "unstructured", d) for t, h in shapes
            for d in (0.5, 0.3, 0.2, 0.1, 0.05, 0.02)]  # enough points that spill_bytes is fitted too
    start = chunked(with_params(load_profile(SIMPLE), {"paths.csr-spmm.peak_fraction": 0.5}))
    p, worst_off = _fit_synthetic(recs, [[96, 320], [200, 1008], [1500, 640]], start, "csr-spmm")
    assert p["paths.csr-spmm.peak_fraction"] == pytest.approx(0.2, rel=0.03)
    assert p["paths.csr-spmm.spill_bytes"] == pytest.approx(4e5, rel=0.05)
    assert worst_off < 0.02


def _fit_synthetic(recs, heldout, start, path, frozen=()):
    """Fit synthetic records from ``start`` with ``heldout`` shapes held out whole: (fitted params, the worst
    relative error on the held-out shapes' points of ``path``)."""
    doc = {"schema": SCHEMA, "machine": {"cpu_model": "synthetic"}, "records": recs,
           "config": {"heldout_shapes": heldout}}
    cal = fit_profile(doc, start, frozen=frozen)
    off = [q for q in cal.heldout if q.off_shape and q.hw_path == path]
    assert off
    return cal.fitted["params"], max(abs(q.predict(cal.profile) / q.measured_s - 1) for q in off)


def test_aliased_penalty_charges_operand_rows_a_multiple_of_4_kib_apart():
    """k * 4 B a multiple of 4 KiB (k = 1024, 2048, 3072 in fp32): the forward and input-gradient products pay
    1 + aliased_penalty; k = 1000 or 1536 and the weight gradient do not."""
    base = with_params(load_profile(SIMPLE), {"paths.bsr.overhead": 0.0})
    pen = with_params(base, {"paths.bsr.aliased_penalty": 0.5})

    def t(prof, kind, k, n=512):
        return kernel_time(prof, kind, 512, k, n, 0.2, "block16", path="bsr")

    for k in (1024, 2048, 3072):
        assert t(pen, "matmul", k) > 1.3 * t(base, "matmul", k)
    # the input gradient reads dY, whose rows are the layer's n outputs
    assert t(pen, "matmul_dx", 1008, n=1024) > 1.3 * t(base, "matmul_dx", 1008, n=1024)
    assert t(pen, "matmul_dx", 1024, n=1008) == pytest.approx(t(base, "matmul_dx", 1024, n=1008), rel=1e-12)
    for k in (1000, 1536):
        assert t(pen, "matmul", k) == pytest.approx(t(base, "matmul", k), rel=1e-12)
    assert t(pen, "matmul_dw", 1024) == pytest.approx(t(base, "matmul_dw", 1024), rel=1e-12)


def test_fit_recovers_the_aliased_penalty(tmp_path):
    """Synthetic block-16 timings with a known aliased_penalty, on shapes with and without aliased rows: the
    fit recovers it (and the efficiency) and predicts held-out irregular shapes."""
    truth = with_params(load_profile(SIMPLE), {"paths.bsr.peak_fraction": 0.6, "paths.bsr.aliased_penalty": 0.3,
                                               "paths.bsr.overhead": 0.0, "paths.bsr.d_half": 0.0})
    shapes = [(128, 256), (512, 256), (128, 768), (512, 768), (256, 384), (256, 640), (96, 320), (200, 1008)]
    recs = [_record(truth, op, t, layer, h, "block16", d) for op in ("matmul", "matmul_dx") for t, h in shapes
            for layer in ("ffn_in", "ffn_out") for d in (0.5, 0.3, 0.2, 0.1, 0.05)]
    start = with_params(load_profile(SIMPLE), {"paths.bsr.peak_fraction": 0.3})
    p, worst_off = _fit_synthetic(recs, [[96, 320], [200, 1008]], start, "bsr")
    assert p["paths.bsr.aliased_penalty"] == pytest.approx(0.3, rel=0.05)
    assert p["paths.bsr.peak_fraction"] == pytest.approx(0.6, rel=0.05)
    assert worst_off < 0.02


def _grouped(prof, group_bytes):
    """``prof`` with its block path passing the weights in groups of ``group_bytes`` (a structure term, not fitted)."""
    import dataclasses
    return dataclasses.replace(prof, paths=dict(prof.paths, bsr=dataclasses.replace(prof.paths["bsr"],
                                                                                     group_bytes=group_bytes)))


def test_group_rereads_charge_the_dense_operand_once_per_weight_group():
    """group_bytes set: a forward or input-gradient product re-reads its dense operand (T x k floats) once per
    group of stored weights, ceil(stored bytes / group_bytes) times, at reread_bandwidth; the weight gradient
    does not, and a path without group_bytes never pays it."""
    base = _grouped(with_params(load_profile(SIMPLE), {"paths.bsr.overhead": 0.0}), 256 * 1024)
    bw = 50e9
    grouped = with_params(base, {"paths.bsr.reread_bandwidth": bw})

    def t(prof, kind, k=1536, n=1536):
        return kernel_time(prof, kind, 512, k, n, 0.25, "block16", path="bsr")

    # 1536 x 1536 x 0.25 x 4 B = 2.25 MiB of stored weights: 9 groups of 256 KiB, each reading X (512 x 1536 x 4 B)
    assert t(grouped, "matmul") - t(base, "matmul") == pytest.approx(9 * 512 * 1536 * 4 / bw, rel=1e-9)
    assert t(grouped, "matmul_dx") > t(base, "matmul_dx")
    assert t(grouped, "matmul_dw") == pytest.approx(t(base, "matmul_dw"), rel=1e-12)
    ungrouped = _grouped(grouped, 0.0)
    assert t(ungrouped, "matmul") == pytest.approx(t(base, "matmul"), rel=1e-12)


def test_fit_recovers_the_reread_bandwidth(tmp_path):
    """Synthetic block-16 timings with a known per-group re-read rate: the fit recovers it (with the efficiency)
    and predicts held-out wide shapes, where the re-reads are the largest share."""
    common = {"paths.bsr.overhead": 0.0, "paths.bsr.d_half": 0.0}
    truth = _grouped(with_params(load_profile(SIMPLE), {**common, "paths.bsr.peak_fraction": 0.6,
                                                        "paths.bsr.reread_bandwidth": 40e9}), 256 * 1024)
    shapes = [(128, 256), (512, 256), (128, 768), (512, 768), (256, 1536), (256, 640), (96, 320), (96, 2560)]
    recs = [_record(truth, op, t, layer, h, "block16", d) for op in ("matmul", "matmul_dx") for t, h in shapes
            for layer in ("ffn_in", "ffn_out") for d in (0.5, 0.3, 0.2, 0.1, 0.05)]
    start = _grouped(with_params(load_profile(SIMPLE), {**common, "paths.bsr.peak_fraction": 0.3}), 256 * 1024)
    p, worst_off = _fit_synthetic(recs, [[96, 320], [96, 2560]], start, "bsr")
    assert p["paths.bsr.reread_bandwidth"] == pytest.approx(40e9, rel=0.05)
    assert p["paths.bsr.peak_fraction"] == pytest.approx(0.6, rel=0.05)
    assert worst_off < 0.02


def _tiled(prof, tail_penalty=0.0):
    """``prof`` with its CSR path computing tokens in tiles of 128 (a structure term) and a tail penalty."""
    import dataclasses
    return dataclasses.replace(prof, paths=dict(prof.paths, **{"csr-spmm": dataclasses.replace(
        prof.paths["csr-spmm"], row_multiple=128, tail_penalty=tail_penalty)}))


def test_a_partial_row_tile_costs_a_full_tile_plus_its_tail_penalty_share():
    """row_multiple 128: 96 tokens cost one tile (128 rows) plus tail_penalty * 96 rows; 200 tokens one full tile and
    a partial one of 72; a whole number of tiles, and the weight gradient (no row tiles), pay nothing extra."""
    base = _tiled(with_params(load_profile(SIMPLE), {"paths.csr-spmm.overhead": 0.0, "paths.csr-spmm.d_half": 0.0}))
    tail = _tiled(base, 0.5)

    def t(prof, tokens, kind="matmul"):
        return kernel_time(prof, kind, tokens, 1024, 1024, 0.2, path="csr-spmm")

    assert t(tail, 96) / t(base, 96) == pytest.approx((128 + 0.5 * 96) / 128, rel=5e-3)  # launch overhead apart
    assert t(tail, 200, "matmul_dx") / t(base, 200, "matmul_dx") == pytest.approx((256 + 0.5 * 72) / 256, rel=5e-3)
    for tokens in (128, 512):
        assert t(tail, tokens) == pytest.approx(t(base, tokens), rel=1e-12)
    assert t(tail, 96, "matmul_dw") == pytest.approx(t(base, 96, "matmul_dw"), rel=1e-12)


def test_fit_recovers_the_tail_penalty(tmp_path):
    """Synthetic csr timings with a known tail penalty, on token counts with and without a partial tile: the fit
    recovers it (with the efficiency) and predicts held-out shapes whose tiles are partial."""
    common = {"paths.csr-spmm.overhead": 0.0, "paths.csr-spmm.d_half": 0.0}
    truth = _tiled(with_params(load_profile(SIMPLE), {**common, "paths.csr-spmm.peak_fraction": 0.2}), 0.7)
    shapes = [(128, 256), (512, 256), (48, 768), (160, 768), (256, 640), (320, 512), (96, 320), (200, 1008)]
    recs = [_record(truth, "matmul", t, layer, h, "unstructured", d) for t, h in shapes
            for layer in ("ffn_in", "ffn_out") for d in (0.5, 0.3, 0.2, 0.1, 0.05)]
    start = _tiled(with_params(load_profile(SIMPLE), {**common, "paths.csr-spmm.peak_fraction": 0.4}))
    p, worst_off = _fit_synthetic(recs, [[96, 320], [200, 1008]], start, "csr-spmm")
    assert p["paths.csr-spmm.tail_penalty"] == pytest.approx(0.7, rel=0.05)
    assert p["paths.csr-spmm.peak_fraction"] == pytest.approx(0.2, rel=0.05)
    assert worst_off < 0.02
    # the ablation (benchmarks/offshape_fit.py with_no_tail): a frozen term keeps the base's value, and the held-out
    # partial tiles are then mispredicted
    p, worst_off = _fit_synthetic(recs, [[96, 320], [200, 1008]], start, "csr-spmm", frozen=("tail_penalty",))
    assert "paths.csr-spmm.tail_penalty" not in p and worst_off > 0.05
