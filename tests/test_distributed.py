"""Data-parallel training (trainer/distributed.py): 2 gloo processes against one, masks, one trace, resume."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accelsim import trace as tr
from accelsim.trace_check import check_trace
from accelsim.trainer.data import DataConfig
from accelsim.trainer.distributed import launch
from accelsim.trainer.sparsity import SparsityConfig
from accelsim.trainer.train import TrainConfig, train

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def cfg_for(out) -> TrainConfig:
    # dropout off: with it, one process and two draw different dropout masks, and the losses could not be
    # compared; everything else (MLM masking, batch order) is a function of (seed, step) on every rank
    return TrainConfig(model="bert-tiny", out=str(out), steps=8, batch_size=4, lr=1e-3, seed=3, eval_every=4,
                       eval_batches=1, checkpoint_every=2, threads=1, dropout=0.0,
                       data=DataConfig(vocab_size=400, seq_len=32, max_texts=400),
                       sparsity=SparsityConfig(method="rigl", sparsity=0.5, update_every=3, end_fraction=0.75))


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    single = train(cfg_for(base / "single"), progress=False)
    launch(cfg_for(base / "ddp"), 2, resume=False)  # what `accelsim train --nproc 2` runs
    return single, base / "ddp"


def test_two_processes_write_one_trace_equal_to_one_process(runs):
    single, ddp = runs
    summary = check_trace(ddp)
    assert summary.steps == 8 and summary.mask_changes >= 1
    t1, t2 = tr.load_trace(single), tr.load_trace(ddp)
    assert t1.manifest.world_size == 1 and t2.manifest.world_size == 2
    assert t2.manifest.batch_size == 4 and t2.manifest.extra["distributed"]["per_rank_batch"] == 2
    # same global batch, loss weighted by scored tokens: the same optimisation up to float summation order
    # (measured 8e-8 relative on the 2026-12-06 host)
    np.testing.assert_allclose(t2.steps["loss"].to_numpy(), t1.steps["loss"].to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(t2.eval["eval_loss"].to_numpy(), t1.eval["eval_loss"].to_numpy(), rtol=1e-5)
    # one trace: rank 0 alone writes; no rank state of rank 0, none of the single run
    assert sorted(p.name for p in (ddp / "rank-state").iterdir()) == ["rank-00001.pt"]
    assert not (single / "ranks.parquet").exists()


def test_ranks_agree_on_masks_and_report_their_times(runs):
    _, ddp = runs
    ranks = tr.load_trace(ddp).ranks.to_pylist()
    assert sorted({(r["step"], r["rank"]) for r in ranks}) == [(s, k) for s in range(8) for k in (0, 1)]
    changes = tr.load_trace(ddp).steps.filter(tr.load_trace(ddp).steps["mask_changed"])["step"].to_pylist()
    assert changes
    for step in changes:
        digests = {r["mask_digest"] for r in ranks if r["step"] == step}
        assert len(digests) == 1 and "" not in digests, (step, digests)
    assert all(r["wall_s"] > 0 and r["allreduce_s"] > 0 for r in ranks)
    steps = tr.load_trace(ddp).steps
    for s, loss, wall in zip(steps["step"].to_pylist(), steps["loss"].to_pylist(), steps["wall_s"].to_pylist()):
        rows = [r for r in ranks if r["step"] == s]
        assert loss == pytest.approx(sum(r["loss"] for r in rows))
        assert wall == pytest.approx(max(r["wall_s"] for r in rows))


def test_kill_every_rank_then_resume_matches_the_uninterrupted_run(runs, tmp_path):
    _, ddp = runs
    out = tmp_path / "killed"
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(cfg_for(out).to_dict()))
    # torchrun's own command line; every rank dies by SIGKILL after step 4 (last full checkpoint: step 3)
    killed = subprocess.run([sys.executable, "-P", "-m", "torch.distributed.run", "--standalone",
                             "--nproc-per-node", "2", str(ROOT / "tests" / "ddp_worker.py"), str(config), "4"],
                            env=_env(), capture_output=True, text=True, timeout=600)
    assert killed.returncode != 0
    assert not (out / "train_summary.json").exists()
    resumed = subprocess.run([sys.executable, "-P", "-m", "accelsim", "train", "--nproc", "2", "--resume",
                              "--out", str(out), "--quiet"], env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = tr.load_trace(ddp), tr.load_trace(out)
    assert b.steps["step"].to_pylist() == list(range(8))
    np.testing.assert_allclose(b.steps["loss"].to_numpy(), a.steps["loss"].to_numpy(), rtol=1e-6)
    assert b.ranks.num_rows == 16
    assert [r["mask_digest"] for r in b.ranks.to_pylist()] == [r["mask_digest"] for r in a.ranks.to_pylist()]


def test_resume_with_another_process_count_is_one_line_error(runs, tmp_path, capsys):
    import shutil

    from accelsim.app.cli import main

    _, ddp = runs
    copy = tmp_path / "copy"
    shutil.copytree(ddp, copy)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--resume", "--out", str(copy), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.strip().count("\n") == 0 and "--nproc 2" in err, err


def test_indivisible_global_batch_is_refused_before_any_process_starts(tmp_path, capsys):
    from accelsim.app.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--nproc", "2", "--batch-size", "5", "--out", str(tmp_path / "x"), "--steps", "2"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--nproc 2" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_simulate_defaults_devices_to_the_world_size(runs, capsys):
    from accelsim.app.cli import main

    single, ddp = runs
    main(["simulate", str(ddp), "--hw", "gpu-a100", "--json", "--no-save"])
    (res,) = json.loads(capsys.readouterr().out)
    assert res["devices"] == 2 and res["by_kind"]["allreduce"]["time_s"] > 0
    main(["simulate", str(single), "--hw", "gpu-a100", "--json", "--no-save"])
    (res,) = json.loads(capsys.readouterr().out)
    assert res["devices"] == 1
    with pytest.raises(SystemExit) as exc:  # a profile without a link cannot take the default
        main(["simulate", str(ddp), "--hw", "cpu-zen3", "--no-save"])
    assert exc.value.code == 2 and "pass --devices 1" in capsys.readouterr().err
