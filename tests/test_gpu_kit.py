"""The GPU measurement kit's pipeline (sweep -> one measurements file with the stack -> fitted profile),
run on the CPU with tiny shapes; on a machine without a GPU the real kit refuses instead of measuring."""
import json

import pytest
import torch

from accelsim.errors import UserError
from accelsim.hardware import load_profile
from accelsim.kernels.gpu_kit import KitConfig, run_kit


def test_pipeline_on_cpu_with_tiny_shapes_and_a_spent_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    cfg = KitConfig(device="cpu", dtype="float32", tokens=(32, 16), hidden=(32,), densities=(1.0, 0.5, 0.25),
                    patterns=("unstructured",), ops=("matmul",), repeats=1, rounds=1, budget_s=0.0)
    summary = run_kit(cfg, tmp_path)
    # the budget is spent after the first group: the second is recorded as skipped, not measured
    assert summary["token_groups_measured"] == [32] and summary["token_groups_skipped_for_budget"] == [16]
    doc = json.loads((tmp_path / "measurements.json").read_text())
    assert {"gpu", "driver", "cuda", "torch", "triton"} <= set(doc["machine"]) and doc["records"]
    fitted = load_profile(str(tmp_path / "gpu-h100-fitted.yaml"))
    assert fitted.fitted and fitted.fitted["n_points"] >= 2
    kit = json.loads((tmp_path / "kit.json").read_text())
    assert kit["fitted_profile"].endswith("gpu-h100-fitted.yaml")
    # the bundled profile is scored on every sparse point (FFN in and out x two densities), the kit's fit on
    # its held-out ones only
    bundled, own = kit["speedup_error"]["bundled gpu-h100 (all points)"], kit["speedup_error"]["fitted profile (held-out points)"]
    assert bundled["n"] == 2 * 2 and bundled["by_path"].keys() == {"csr-spmm"} and own["n"] <= bundled["n"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_kit_refuses_without_a_gpu(tmp_path):
    with pytest.raises(UserError, match="no CUDA device"):
        run_kit(KitConfig(), tmp_path)
