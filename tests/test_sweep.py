"""accelsim sweep: a 4-trial local sweep (one failing trial, resume), a 2-trial Ray sweep, objective, Pareto."""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from accelsim.app.cli import main
from accelsim.app.sweep import Objective, SweepConfig, plan, run_sweep
from accelsim.app.sweep_report import SCHEMA, best_per_hw, pareto
from accelsim.errors import UserError

pytestmark = pytest.mark.slow

TINY = {"model": "bert-tiny", "steps": 4, "batch_size": 4, "seq_len": 32, "vocab_size": 400, "max_texts": 400,
        "eval_every": 2, "eval_batches": 1, "checkpoint_every": 4, "threads": 1, "update_every": 2}


def _file(tmp_path, **cfg) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_local_sweep_reports_a_failed_trial_and_resumes(tmp_path, capsys):
    # block-rigl with block 7 cannot tile 128-wide layers: one of the four trials fails, the sweep goes on
    f = _file(tmp_path, profiles=["cpu-zen3", "gpu-a100"], fixed=TINY, out=str(tmp_path / "out"),
              space={"method": ["rigl", "block-rigl"], "block_size": [16, 7], "sparsity": [0.5]})
    main(["sweep", str(f)])
    assert "ran 4 trial(s); 1 did not finish" in capsys.readouterr().out
    table = pq.read_table(tmp_path / "out" / "results.parquet")
    assert table.schema.equals(SCHEMA)
    rows = table.to_pylist()
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "block size 7" in failed[0]["error"] and failed[0]["hw"] is None
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 6 and {r["hw"] for r in ok} == {"cpu-zen3", "gpu-a100"}
    assert all(r["loss_source"] == "eval" and np.isfinite(r["final_loss"]) and r["sim_time_s"] > 0 for r in ok)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "pareto.png" in report and "block size 7" in report
    assert (tmp_path / "out" / "pareto.png").stat().st_size > 10_000
    # rerun: the three finished trials are skipped, the failed one is tried again
    res = run_sweep(SweepConfig.load(f))
    assert res.ran == [failed[0]["trial"]] and res.failed == [failed[0]["trial"]]


def test_ray_sweep_has_the_same_schema_and_ranks_by_the_objective(tmp_path):
    pytest.importorskip("ray", reason="CI installs the ray extra; skipped only where Ray is absent")
    synth = {"model": "bert-tiny", "steps": 60, "batch_size": 8, "seq_len": 32, "update_every": 10}
    f = _file(tmp_path, profiles=["gpu-a100", "cpu-zen3"], mode="synth", fixed=synth, out=str(tmp_path / "out"),
              space={"method": ["rigl", "static"], "sparsity": [0.8]},
              objective={"profile": "gpu-a100", "target_loss": 10.3, "minimise": "time"})
    main(["sweep", str(f), "--engine", "ray", "--cpus", "2"])
    table = pq.read_table(tmp_path / "out" / "results.parquet")
    assert table.schema.equals(SCHEMA)
    rows = [r for r in table.to_pylist() if r["hw"] == "gpu-a100"]
    assert len(rows) == 2 and all(r["status"] == "ok" and r["loss_source"] == "synthetic" for r in rows)
    # time to target = simulated time summed up to the first step whose (synthetic) loss reaches 10.3
    from accelsim.trace import load_trace

    for r in rows:
        loss = load_trace(r["run"]).steps["loss"].to_numpy()
        hit = int(np.nonzero(loss <= 10.3)[0][0])
        step_t = pq.read_table(Path(r["run"]) / "sim" / "gpu-a100-timeline.parquet")["time_s"].to_numpy()
        assert r["time_to_target_s"] == pytest.approx(float(np.sum(step_t[:hit + 1])), rel=1e-9)
        assert 0 < r["time_to_target_s"] < r["sim_time_s"]
    best = best_per_hw(table.to_pylist(), Objective("gpu-a100", 10.3))
    assert best["gpu-a100"]["time_to_target_s"] == min(r["time_to_target_s"] for r in rows)
    assert "(objective)" in (tmp_path / "out" / "report.md").read_text()


def test_pareto_front_and_best_without_objective():
    assert pareto([(3.0, 1.0), (1.0, 5.0), (2.0, 2.0), (2.5, 3.0), (1.0, 6.0)]) == [1, 2, 0]
    mk = lambda t, loss, time: {"trial": t, "status": "ok", "hw": "x", "final_loss": loss, "sim_time_s": time,
                                "params": "{}", "method": "m"}
    rows = [mk("a", 5.0, 9.0), mk("b", 5.04, 1.0), mk("c", 5.2, 0.5)]
    assert best_per_hw(rows, None)["x"]["trial"] == "b"  # c is faster but its loss is 4 % worse


def test_random_search_is_reproducible_and_ids_follow_settings(tmp_path):
    f = _file(tmp_path, profiles=["gpu-a100"], search="random", samples=3, seed=5, fixed=TINY,
              space={"sparsity": {"low": 0.5, "high": 0.9}, "method": ["rigl", "set"]})
    a, b = plan(SweepConfig.load(f)), plan(SweepConfig.load(f))
    assert [s["trial"] for s in a] == [s["trial"] for s in b] and len({s["trial"] for s in a}) == 3
    assert all(0.5 <= s["params"]["sparsity"] <= 0.9 for s in a)


@pytest.mark.parametrize("bad, field", [
    ({"profiles": ["nope"], "space": {"method": ["rigl"]}}, "profiles"),
    ({"profiles": ["gpu-a100"], "space": {"methd": ["rigl"]}}, "space"),
    ({"profiles": ["gpu-a100"], "space": {"method": []}}, "space.method"),
    ({"profiles": ["gpu-a100"], "space": {"method": ["rigl"]}, "objective": {"profile": "ipu-gc200",
                                                                                "target_loss": 5}}, "objective"),
    ({"profiles": ["gpu-a100"], "space": {"method": ["rigl"]}, "engine": "ray"}, "engine"),
])
def test_bad_sweep_file_is_one_line_error(tmp_path, capsys, bad, field):
    f = _file(tmp_path, **bad)
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(f)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and str(f) in err and field.split(".")[0] in err, err
    with pytest.raises(UserError):
        SweepConfig.load(f)
