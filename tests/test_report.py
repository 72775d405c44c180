"""Reports, compare and plots on a small trained pair (dense + RigL) simulated on three profiles."""
import base64
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from accelsim import trace as tr
from accelsim.app.cli import main
from accelsim.errors import UserError
from accelsim.hardware import load_profile
from accelsim.report import build_report, load_validation
from accelsim.report.units import fmt_energy, fmt_ratio, fmt_time, parse_quantity
from accelsim.sim.api import simulate_many

HW = ["ideal", "cpu-zen3", "gpu-a100"]
TARGET = 5.95  # reached by both tiny runs (their losses start near ln(400) ~ 6.0)


def _tiny_cfg(out, method, sparsity):
    from accelsim.trainer.data import DataConfig
    from accelsim.trainer.sparsity import SparsityConfig
    from accelsim.trainer.train import TrainConfig

    return TrainConfig(model="bert-tiny", out=str(out), steps=8, batch_size=4, lr=1e-3, seed=3, eval_every=4,
                       eval_batches=1, checkpoint_every=4, threads=1,
                       data=DataConfig(vocab_size=400, seq_len=32, max_texts=400),
                       sparsity=SparsityConfig(method=method, sparsity=sparsity, update_every=3))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from accelsim.trainer.train import train

    root = tmp_path_factory.mktemp("report")
    paths = [train(_tiny_cfg(root / "dense", "dense", 0.0), progress=False),
             train(_tiny_cfg(root / "rigl", "rigl", 0.8), progress=False)]
    for p in paths:
        for r in simulate_many(p, HW, target_loss=TARGET):
            r.save(p)
    return paths


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    return build_report(runs, out), out


def _sim(run: Path, hw: str) -> dict:
    return json.loads((run / "sim" / f"{hw}.json").read_text())


def _md_table(md: str, caption: str) -> list[dict]:
    """Rows of the Markdown table under ``**caption**``."""
    lines = md.split(f"**{caption}**", 1)[1].splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    table = []
    for ln in lines[first:]:
        if not ln.startswith("|"):
            break
        table.append([c.strip() for c in ln.strip("|").split("|")])
    return [dict(zip(table[0], row)) for row in table[2:]]


def _md_summary(md: str) -> list[dict]:
    """(hardware, run, time, speedup, energy, energy ratio) from the two pivoted tables of the summary."""
    times = _md_table(md, "training time (speedup vs dense)")
    energies = {r["hardware"]: r for r in _md_table(md, "training energy (energy vs dense)")}
    out = []
    for row in times:
        for run in (k for k in row if k not in ("hardware", "dtype")):
            t, s = re.fullmatch(r"(.+) \((.+)\)", row[run]).groups()
            e, er = re.fullmatch(r"(.+) \((.+)\)", energies[row["hardware"]][run]).groups()
            out.append({"hardware": row["hardware"].removesuffix(" (bound, not hardware)"), "run": run,
                        "dtype": row["dtype"], "time": parse_quantity(t), "speedup": parse_quantity(s),
                        "energy": parse_quantity(e), "energy_ratio": parse_quantity(er)})
    return out


def test_summary_table_matches_the_simulator_json(report, runs):
    files, _ = report
    md = files["md"].read_text()
    rows = _md_summary(md)
    assert len(rows) == len(HW) * len(runs)
    # pivoted: hardware down (real hardware fastest dense run first, the ideal bound last), runs across
    hw_order = list(dict.fromkeys(r["hardware"] for r in rows))
    real = sorted((h for h in HW if h != "ideal"), key=lambda h: _sim(runs[0], h)["time_s"])
    assert hw_order == real + ["ideal"]
    assert "| ideal (bound, not hardware) |" in md
    for row in rows:
        sim = _sim(next(p for p in runs if p.name == row["run"]), row["hardware"])
        assert row["dtype"] == load_profile(sim["hardware"]).dtype
        for col, key in (("time", "time_s"), ("energy", "energy_j"), ("speedup", "speedup"),
                         ("energy_ratio", "energy_ratio")):
            assert row[col] == pytest.approx(sim[key], rel=5e-3), (row, col)  # 3 significant figures
    doc = json.loads(files["json"].read_text())
    for r in doc["summary"]:  # the machine-readable copy is exact
        sim = _sim(next(p for p in runs if p.name == r["run"]), r["hardware"])
        assert (r["time_s"], r["energy_j"], r["speedup"], r["time_to_target_s"]) == \
            (sim["time_s"], sim["energy_j"], sim["speedup"], sim["time_to_target_s"])
    dense_rows = [r for r in doc["summary"] if r["run"] == "dense"]
    assert all(r["speedup"] == pytest.approx(1.0) and r["target_speedup"] == pytest.approx(1.0) for r in dense_rows)
    rigl = {r["hardware"]: r for r in doc["summary"] if r["run"] == "rigl"}
    dense = {r["hardware"]: r for r in dense_rows}
    for hw in HW:
        assert rigl[hw]["target_speedup"] == pytest.approx(dense[hw]["time_to_target_s"] / rigl[hw]["time_to_target_s"])


def test_verdict_comes_first_and_names_the_winners(report, runs):
    files, _ = report
    md = files["md"].read_text()
    assert md.index("## Verdict") < md.index("## Time and energy per hardware") < md.index("## Run configuration")
    verdict = dict(json.loads(files["json"].read_text())["verdict"])
    real = [h for h in HW if h != "ideal"]
    dense = {h: _sim(runs[0], h) for h in real}
    fastest = min(real, key=lambda h: dense[h]["time_s"])
    cheapest = min(real, key=lambda h: dense[h]["energy_j"])
    line = verdict["dense (dense)"]
    assert f"fastest on {fastest} ({fmt_time(dense[fastest]['time_s'])}" in line
    assert f"lowest energy on {cheapest} ({fmt_energy(dense[cheapest]['energy_j'])})" in line
    rigl = {h: _sim(runs[1], h) for h in real}
    best = max(real, key=lambda h: rigl[h]["speedup"])
    steps = tr.read_table(runs[1], "steps")
    need = sum(float(np.sum(steps[f"flops_{p}"].to_numpy())) for p in tr.PHASES)
    full = sum(float(np.sum(steps[f"flops_{p}_dense"].to_numpy())) for p in tr.PHASES)
    buys = verdict["what sparsity buys"]
    assert buys.startswith(f"{fmt_ratio(rigl[best]['speedup'])} faster than dense (rigl on {best})")
    assert f"Amdahl limit is {fmt_ratio(full / need)}" in buys
    assert "ideal bound (time = FLOPs / peak) reaches" in buys
    assert all("ideal" not in line.split(";")[0] for key, line in verdict.items() if key.startswith(("dense", "best")))
    assert verdict["number formats"].startswith(" · ".join(f"{h} {load_profile(h).dtype}" for h in
                                                           real_order(runs[0]) + ["ideal"]))


def test_verdict_never_rests_a_sparse_speedup_on_assumptions_alone(monkeypatch):
    """The best speedup on a profile whose sparse paths are assumptions is called so, and the best on profiles
    fitted to measured or published kernels follows it; a fitted winner gets no such remark."""
    from types import SimpleNamespace

    from accelsim.report import verdict as V
    from accelsim.report.tables import HwRow

    monkeypatch.setattr(V, "amdahl_limit", lambda run: None)
    runs = [SimpleNamespace(name="dense", is_dense=True), SimpleNamespace(name="rigl", is_dense=False)]

    def row(hw, run, t, speedup):
        return HwRow(hw, run, run, 0.0, t, t, speedup, 1.0, t * t, None, None, None)

    rows = [row("wafer", "dense", 1.0, 1.0), row("wafer", "rigl", 0.5, 2.0),
            row("gpu", "dense", 3.0, 1.0), row("gpu", "rigl", 2.5, 1.2)]
    info = {"wafer": V.ProfileInfo("wafer", "wafer", "fp16", "assumed"),
            "gpu": V.ProfileInfo("gpu", "gpu", "bf16", "published")}
    buys = dict(V.verdict_lines(rows, runs, info))["what sparsity buys"]
    assert buys.startswith(f"{fmt_ratio(2.0)} faster than dense (rigl on wafer)")
    assert f"wafer's sparse figures are {V.ASSUMED}" in buys
    assert f"fitted to measured or published kernels the best is {fmt_ratio(1.2)} (rigl on gpu)" in buys
    info["wafer"] = V.ProfileInfo("wafer", "wafer", "fp16", "measured")
    buys = dict(V.verdict_lines(rows, runs, info))["what sparsity buys"]
    assert "assumptions" not in buys and "fitted to measured" not in buys


def test_verdict_gives_the_flop_explained_speedup_beside_a_memory_cliff(monkeypatch):
    """A best speedup above its run's Amdahl limit (the dense run held back by memory) is followed by the best
    speedup within its limit, marked where that one's profile has only assumed sparse paths."""
    from types import SimpleNamespace

    from accelsim.report import verdict as V
    from accelsim.report.tables import HwRow

    monkeypatch.setattr(V, "amdahl_limit", lambda run: {"rigl": 3.0, "set": 2.0}.get(run.name))
    runs = [SimpleNamespace(name=n, is_dense=n == "dense") for n in ("dense", "rigl", "set")]

    def row(hw, run, speedup):
        return HwRow(hw, run, run, 0.0, 1.0, 1.0, speedup, 1.0, 1.0, None, None, None)

    rows = [row("ipu", "rigl", 147.0), row("ipu", "set", 1.5), row("wafer", "rigl", 2.9), row("wafer", "set", 2.5)]
    info = {"ipu": V.ProfileInfo("ipu", "ipu", "fp16", "published"),
            "wafer": V.ProfileInfo("wafer", "wafer", "fp16", "assumed")}
    buys = dict(V.verdict_lines(rows, runs, info))["what sparsity buys"]
    assert buys.startswith(f"{fmt_ratio(147.0)} faster than dense (rigl on ipu)") and "held back by memory" in buys
    # wafer/set's 2.5x is above set's limit of 2.0, so the best within a limit is wafer/rigl's 2.9x
    assert (f"the best within its Amdahl limit is {fmt_ratio(2.9)} (rigl on wafer, whose sparse figures are "
            "assumptions)") in buys
    rows[0] = row("ipu", "rigl", 2.95)  # within the limit: nothing to add
    assert "within its Amdahl limit" not in dict(V.verdict_lines(rows, runs, info))["what sparsity buys"]


def test_verdict_says_which_profiles_are_measured(report):
    files, _ = report
    para = files["md"].read_text().split("## Verdict", 1)[1].split("Real hardware excludes", 1)[1].split("\n", 1)[0]
    assert "Fitted to kernels timed on the machine they describe: cpu-zen3." in para
    for hw in HW:
        if hw != "ideal" and load_profile(hw).fitted is None:  # no fit recorded: never called fitted or measured
            assert "Datasheets and stated assumptions only: " in para and hw in para.split("assumptions only:")[1]


def test_published_basis_names_both_held_out_figures():
    """A profile fitted to published rows reports its leave-one-author-group-out share beside the per-source one:
    when every source is one group's (ipu-gc200, all Graphcore), only the stricter figure says so."""
    from types import SimpleNamespace

    from accelsim.report.verdict import basis_text

    fitted = {"data": "points.csv", "held_out": {"n": 50, "within_1.35x": 0.74},
              "held_out_by_group": {"n": 50, "within_1.35x": 0.22, "groups": 1}}
    text = basis_text(SimpleNamespace(fitted=fitted))
    text = text.replace("\xa0", " ")  # fmt_share keeps the number and its % together
    assert "leave-one-source-out: 74.0 % of 50" in text and "leave-one-author-group-out: 22.0 % (1 group)" in text
    del fitted["held_out_by_group"]  # a profile fitted before groups were recorded keeps the old sentence
    assert "author-group" not in basis_text(SimpleNamespace(fitted=fitted))
    assert "author-group-out: " in basis_text(load_profile("ipu-gc200"))  # the bundled fit records both


def test_sparse_paths_a_run_used_carry_their_own_published_error():
    """The report names each published-fit sparse path a sparse run ran on with that path's held-out error,
    flagged where under half its predictions fall within 1.35x; dense runs and dense paths say nothing."""
    from types import SimpleNamespace

    from accelsim.report.summary import path_checks

    def run(name, dense, *paths):
        doc = {"paths": {f"op{i}": [p, "vector"] for i, p in enumerate(paths)}}
        return SimpleNamespace(name=name, is_dense=dense, sims={h: SimpleNamespace(doc=doc) for h in ("gpu-a100",
                                                                                                    "cpu-zen3")})

    prof = load_profile("gpu-a100")
    runs = [run("dense", True, "dense-gemm", "bsr-b16"), run("b16", False, "dense-gemm", "bsr-b16"),
            run("nm", False, "2:4-sparse-tc")]
    notes = {p.text.split(" path.")[0].rsplit(" ", 1)[-1]: p for p in path_checks(runs, {"gpu-a100": prof})}
    assert set(notes) == {"bsr-b16", "2:4-sparse-tc"}  # not dense-gemm or vector, and the dense run is not named
    rec = prof.fitted["paths"]
    assert notes["bsr-b16"].warn and rec["bsr-b16"]["held_out_within_1.35x"] < 0.5
    assert not notes["2:4-sparse-tc"].warn and "ran nm partly" in notes["2:4-sparse-tc"].text
    assert f"of {rec['2:4-sparse-tc']['held_out_n']} published speedups" in notes["2:4-sparse-tc"].text
    cpu = run("b16", False, "bsr16-fwd", "csr-spmm-fwd")  # paths of a profile fitted to its own kernels instead
    assert path_checks([cpu], {"cpu-zen3": load_profile("cpu-zen3")}) == []


def test_verdict_says_which_cpu_a_cpu_profile_describes(report):
    """The bundled CPU profile is a Zen 3's figures: the verdict says so, and warns when this is another CPU."""
    from accelsim.kernels.machine import cpu_profile_note

    files, _ = report
    verdict = files["md"].read_text().split("## Verdict", 1)[1].split("\n## ", 1)[0]
    text, other = cpu_profile_note(load_profile("cpu-zen3"))
    assert text in verdict and "cpu-zen3" in text
    assert ("calibrate-local" in text) == other


def real_order(run: Path) -> list[str]:
    return sorted((h for h in HW if h != "ideal"), key=lambda h: _sim(run, h)["time_s"])


def test_projection_replays_each_trained_run_as_bert_base(report, runs):
    files, out = report
    md = files["md"].read_text()
    assert "## Projected to bert-base" in md and "as trained → projected to bert-base" in md
    for run in runs:
        proj = out / "projection" / f"{run.name}-bert-base"
        m, src = tr.read_manifest(proj), tr.read_manifest(run)
        assert m.synthetic and m.model["hidden"] == 768 and m.model["layers"] == 12
        assert (m.steps, m.batch_size, m.model["seq_len"]) == (src.steps, src.batch_size, src.model["seq_len"])
        assert m.method["name"] == src.method["name"] and m.extra["projected_from"] == run.name
        # the same mask schedule: masks change after the same steps
        changed = lambda d: tr.read_table(d, "steps")["mask_changed"].to_numpy(zero_copy_only=False).nonzero()[0]
        assert changed(proj).tolist() == changed(run).tolist()
        for hw in HW:
            assert (proj / "sim" / f"{hw}.json").is_file()
    doc = json.loads(files["json"].read_text())
    assert {(r["hardware"], r["run"]) for r in doc["projection"]} == \
        {(h, f"{r.name}-bert-base") for h in HW for r in runs}
    # the ideal bound of a projection is its own FLOP ratio (time follows FLOPs there), as on the trained run
    proj = out / "projection" / "rigl-bert-base"
    steps = tr.read_table(proj, "steps")
    need = sum(float(np.sum(steps[f"flops_{p}"].to_numpy())) for p in tr.PHASES)
    full = sum(float(np.sum(steps[f"flops_{p}_dense"].to_numpy())) for p in tr.PHASES)
    base = next(r for r in doc["projection"] if r["hardware"] == "ideal" and r["run"] == "rigl-bert-base")
    assert base["speedup"] == pytest.approx(full / need, rel=0.01)
    assert f"Amdahl limits at bert-base: rigl {fmt_ratio(full / need)}" in md
    # a rebuilt report reuses the stored projections (key unchanged)
    stamp = (out / "projection" / "rigl-bert-base" / "sim" / "ideal.json").stat().st_mtime_ns
    build_report(runs, out)
    assert (out / "projection" / "rigl-bert-base" / "sim" / "ideal.json").stat().st_mtime_ns == stamp


def test_projection_carries_the_measured_tile_clustering(tmp_path):
    from accelsim.report.projection import project_trace
    from accelsim.synth import synth_trace

    run = synth_trace("bert-tiny", "rigl", 0.9, steps=20, update_every=5, batch_size=2, seq_len=16, out=tmp_path / "r")
    # pretend the run's masks clustered: half as many non-empty 16x16 tiles as a random mask has
    pat = tr.read_table(run, "patterns")
    cols = {c: pat[c].to_pylist() for c in pat.column_names}
    cols["block16_frac"] = [f / 2 for f in cols["block16_frac"]]
    import shutil

    shutil.rmtree(tr.table_dir(run, "patterns"))
    tr.append_columns(run, "patterns", cols)
    plain = project_trace(synth_trace("bert-tiny", "rigl", 0.9, steps=20, update_every=5, batch_size=2, seq_len=16,
                                      out=tmp_path / "p"), tmp_path / "plain")
    carried = project_trace(run, tmp_path / "carried")
    a = tr.read_table(plain, "patterns")["block16_frac"].to_numpy(zero_copy_only=False)
    b = tr.read_table(carried, "patterns")["block16_frac"].to_numpy(zero_copy_only=False)
    d = tr.read_table(carried, "patterns")["density"].to_numpy(zero_copy_only=False)
    assert np.allclose(b, np.maximum(d, a / 2), rtol=0.05)
    assert np.array_equal(tr.read_table(plain, "patterns")["block32_frac"].to_numpy(zero_copy_only=False),
                          tr.read_table(carried, "patterns")["block32_frac"].to_numpy(zero_copy_only=False))


def test_report_has_every_section_and_flags_every_assumption(report):
    files, _ = report
    md = files["md"].read_text()
    for heading in ("## Verdict", "## Time and energy per hardware", "## Projected to bert-base",
                    "## Run configuration", "## Training: loss, eval and per-layer density", "## FLOPs breakdown",
                    "## Speedup and energy relative to dense", "## Where the time goes", "## Time to target loss",
                    "## Cost-model validation", "## Hardware profiles and their assumptions"):
        assert heading in md
    # every assumption is listed, collapsed, once per distinct reason, naming its fields and profiles
    section = md.split("## Hardware profiles and their assumptions", 1)[1]
    assert "<details><summary>All assumptions" in section
    rows = _md_table(section.split("<details>", 1)[1].replace("</summary>", "</summary>\n\n**x**", 1), "x")
    reasons = {}
    for hw in HW:
        for field, reason in load_profile(hw).assumptions.items():
            reasons.setdefault(" ".join((reason or "(no reason given)").split()), set()).add((hw, field))
    assert len(rows) == len(reasons)
    for row in rows:
        fields, profiles = row["fields (ASSUMPTION)"].removeprefix("⚠ ").split(", "), row["profiles"].split(", ")
        pairs = reasons[row["reason"]]
        assert set(fields) == {f for _, f in pairs} and set(profiles) == {h for h, _ in pairs}
    # no validation.json given or found: the fitted cpu-zen3 profile's own held-out error is shown
    fitted = load_profile("cpu-zen3").fitted["heldout"]
    section = md.split("## Cost-model validation", 1)[1].split("\n## ", 1)[0]
    assert f"| cpu-zen3 | {fitted['n']} | {100 * fitted['mape']:.1f} |" in section
    assert "recorded in the profile by `accelsim calibrate`" in section and "| conditional |" in section
    html = files["html"].read_text()
    assert html.count("<table") >= 6 and 'class=warn' in html


def test_flops_table_sums_the_trace(report, runs):
    files, _ = report
    md = files["md"].read_text()
    section = md.split("## FLOPs breakdown", 1)[1]
    for run in runs:
        steps = tr.read_table(run, "steps")
        need = sum(float(np.sum(steps[f"flops_{p}"].to_numpy())) for p in tr.PHASES)
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {run.name} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert parse_quantity(cells[-3]) == pytest.approx(need, rel=5e-3)


def test_html_is_self_contained_and_its_images_decode(report):
    files, out = report
    html = files["html"].read_text()
    assert not re.search(r"(?i)\b(?:https?|ftp)://", html)
    assert not re.search(r"(?i)<link|<script[^>]*\bsrc=|@import|url\(|<iframe|<object|<embed", html)
    srcs = re.findall(r'\bsrc="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:
        img = PILImage.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1])))
        img.verify()
        assert img.format == "PNG" and img.size[0] > 200
    import matplotlib.image as mpimg

    linked = re.findall(r"\]\((figures/[^)]+\.png)\)", files["md"].read_text())
    assert len(linked) == len(srcs)
    for rel in linked:
        assert mpimg.imread(out / rel).ndim == 3
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1))
    assert data["target_loss"] == TARGET and len(data["summary"]) == len(HW) * 2


VALIDATION = {  # the shape kernels.calibrate.validate writes (its summary fields)
    "profile": "cpu-local", "profile_file": "fit.yaml", "measurements": "m.json",
    "mode": "held-out points of the file the profile was fitted to", "n_points": 12,
    "overall_mape": {"n": 12, "mape": 0.1234, "median_ratio": 0.97},
    "mape_by_pattern": {"dense": {"n": 6, "mape": 0.05, "median_ratio": 1.01},
                        "unstructured": {"n": 6, "mape": 0.2, "median_ratio": 0.9}},
    "mape_by_kernel": {}, "points": []}


def test_validation_is_found_next_to_a_run_or_given_explicitly(runs, tmp_path):
    (runs[1] / "validation.json").write_text(json.dumps(VALIDATION))
    PILImage.new("RGB", (300, 200), "white").save(runs[1] / "validation.png")  # its scatter plot
    try:
        files = build_report(runs, tmp_path / "auto")
    finally:
        (runs[1] / "validation.json").unlink()
        (runs[1] / "validation.png").unlink()
    md = files["md"].read_text()
    assert "| cpu-local | 12 | 12.3 | 0.97 |" in md and "| unstructured | 6 | 20.0 | 0.9 |" in md
    assert "(figures/validation-cpu-local.png)" in md
    assert PILImage.open(tmp_path / "auto" / "figures" / "validation-cpu-local.png").size == (300, 200)
    other = dict(VALIDATION, profile="fpga-u280")
    path = tmp_path / "v.json"
    path.write_text(json.dumps(other))
    md = build_report(runs, tmp_path / "given", validation=[path])["md"].read_text()
    assert "validates profile 'fpga-u280', which this report did not simulate" in md
    # a file whose sparse times are paired with the dense baseline also states the unpaired error
    path.write_text(json.dumps(dict(VALIDATION, raw={"overall": {"n": 12, "mape": 0.141}})))
    assert load_validation(path).mode.endswith("; against unpaired medians 14.1 %")
    path.write_text(json.dumps({"profile": "x"}))
    with pytest.raises(UserError, match="overall_mape"):
        load_validation(path)


def test_report_cli_and_errors(runs, tmp_path, capsys):
    main(["report", str(runs[0]), str(runs[1]), "--out", str(tmp_path / "r"), "--hw", "ideal", "--json"])
    files = json.loads(capsys.readouterr().out)
    rows = _md_summary(Path(files["md"]).read_text())
    assert {r["hardware"] for r in rows} == {"ideal"}
    assert json.loads(Path(files["json"]).read_text())["verdict"][-1][0] == "number formats"  # no real hardware
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "not a run directory" in err


def test_report_of_a_run_without_simulations_says_so(tmp_path):
    from accelsim.synth import synth_trace

    run = synth_trace("bert-tiny", "rigl", 0.9, steps=20, update_every=5, batch_size=2, seq_len=16, out=tmp_path / "s")
    md = build_report([run], tmp_path / "out")["md"].read_text()
    assert "No stored simulations" in md and "Synthetic traces" in md


def test_compare_formats_agree_with_the_json(runs, capsys):
    main(["compare", str(runs[0]), str(runs[1]), "--hw", "cpu-zen3,ideal", "--format", "json"])
    rows = json.loads(capsys.readouterr().out)
    assert [(r["hardware"], r["run"]) for r in rows] == [("cpu-zen3", "dense"), ("cpu-zen3", "rigl"),
                                                         ("ideal", "dense"), ("ideal", "rigl")]
    for r in rows:
        sim = _sim(next(p for p in runs if p.name == r["run"]), r["hardware"])
        assert r["time_s"] == sim["time_s"] and r["energy_ratio"] == sim["energy_ratio"]
        assert r["edp_js"] == pytest.approx(sim["time_s"] * sim["energy_j"])
    main(["compare", str(runs[0]), str(runs[1]), "--hw", "ideal", "--format", "csv"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("hardware,run,method,sparsity,time_s,energy_j,speedup") and len(lines) == 3
    main(["compare", str(runs[1]), "--hw", "ideal,fpga-u280,cpu-zen3"])
    out = " ".join(capsys.readouterr().out.split())
    assert "speedup vs dense" in out and "rigl" in out
    # what each compared profile rests on, the ideal bound left out
    assert "Fitted to kernels timed on the machine they describe: cpu-zen3." in out
    assert "Datasheets and stated assumptions only: fpga-u280." in out and "ideal." not in out
    for f in (runs[1] / "sim").glob("fpga-u280*"):
        f.unlink()
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(runs[1]), "--format", "xml"])
    assert exc.value.code == 2


def test_compare_simulates_missing_hardware_and_stores_it(runs, capsys):
    target = runs[1] / "sim" / "fpga-u280.json"
    assert not target.exists()
    main(["compare", str(runs[1]), "--hw", "fpga-u280", "--format", "json"])
    assert json.loads(capsys.readouterr().out)[0]["time_s"] == json.loads(target.read_text())["time_s"]
    for f in (runs[1] / "sim").glob("fpga-u280*"):
        f.unlink()


def test_compare_names_the_published_error_of_a_sparse_path_it_used(tmp_path, capsys):
    """A 2:4 bert-base trace on gpu-a100 runs its forward products on the 2:4 path: compare's table is
    followed by that path's own held-out error (the same sentence the report gives)."""
    run = tmp_path / "nm"
    main(["trace", "synth", "--method", "nm", "--sparsity", "0.5", "--steps", "50", "--update-every", "10",
          "--out", str(run)])
    capsys.readouterr()
    main(["compare", str(run), "--hw", "gpu-a100"])
    out = " ".join(capsys.readouterr().out.split())
    rec = load_profile("gpu-a100").fitted["paths"]["2:4-sparse-tc"]
    assert "gpu-a100 ran nm partly on its 2:4-sparse-tc path" in out
    assert f"of {rec['held_out_n']} published speedups within 1.35×" in out


def _check_plots(files: list[str], stems=("speedup-vs-sparsity", "energy-vs-sparsity", "loss-vs-time")):
    import matplotlib.image as mpimg

    names = {Path(f).name for f in files}
    for stem in stems:
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    for f in files:
        if f.endswith(".png"):
            assert mpimg.imread(f).shape[0] > 100
        else:
            assert ET.parse(f).getroot().tag.endswith("svg")


def test_plot_speedup_from_runs(runs, tmp_path, capsys):
    main(["plot", "speedup", str(runs[0]), str(runs[1]), "--hw", "ideal,cpu-zen3", "--out", str(tmp_path), "--json"])
    _check_plots(json.loads(capsys.readouterr().out))


def test_speedup_curves_mark_assumption_only_profiles(runs):
    """A profile whose sparse paths are assumptions only is drawn dotted and labelled so; measured ones solid."""
    from accelsim.report import load_run
    from accelsim.report.curves import speedup_figure

    for r in runs[:2]:
        main(["simulate", str(r), "--hw", "fpga-u280", "--json"])
    try:
        fig = speedup_figure([load_run(r) for r in runs[:2]], ["cpu-zen3", "fpga-u280"])
        lines = {ln.get_label(): ln.get_linestyle() for ln in fig.axes[0].get_lines()}
        assert lines["fpga-u280 (assumed)"] == ":" and lines["cpu-zen3"] == "-"
    finally:
        for r in runs[:2]:
            for f in (r / "sim").glob("fpga-u280*"):
                f.unlink()


def test_plot_speedup_synthetic_sweep(tmp_path, capsys):
    main(["plot", "speedup", "--synthetic", "bert-tiny", "--sparsities", "0.5,0.9", "--steps", "200", "--hw",
          "ideal,cpu-zen3", "--out", str(tmp_path), "--json"])
    _check_plots(json.loads(capsys.readouterr().out))
    # on the ideal profile, time is proportional to executed FLOPs: speedup must rise with sparsity
    s = [json.loads((tmp_path / "traces" / f"bert-tiny-rigl-s{x}" / "sim" / "ideal.json").read_text())["speedup"]
         for x in ("0.5", "0.9")]
    assert 1.0 < s[0] < s[1]
    with pytest.raises(SystemExit) as exc:
        main(["plot", "speedup", "--synthetic", "bert-tiny", "--sparsities", "0.5,1.5", "--out", str(tmp_path)])
    assert exc.value.code == 2
