"""One profile in any precision it has a peak for (with_dtype; simulate/compare --dtype)."""
import pytest
from typer.testing import CliRunner

from accelsim.app.cli import app
from accelsim.errors import UserError
from accelsim.hardware import kernel_time, load_profile
from accelsim.hardware.dtype import with_dtype


def test_with_dtype_switches_peak_and_keeps_the_rest():
    a100 = load_profile("gpu-a100")
    fp32 = with_dtype(a100, "fp32")
    assert fp32.dtype == "fp32" and fp32.name == "gpu-a100@fp32" and fp32.paths == a100.paths
    assert with_dtype(a100, a100.dtype) is a100 and with_dtype(a100, None) is a100
    tf32 = with_dtype(a100, "tf32")  # elementwise work of a tf32 run runs at the fp32 vector rate
    assert tf32.compute.vector_flops["tf32"] == a100.compute.vector_flops["fp32"]
    # the default dtype of kernel_time follows the profile
    assert kernel_time(fp32, "matmul", 512, 1024, 1024) == kernel_time(a100, "matmul", 512, 1024, 1024, dtype="fp32")


def test_with_dtype_refuses_what_the_profile_lacks():
    with pytest.raises(UserError, match="no compute.peak entry for 'bf16'"):
        with_dtype("ipu-gc200", "bf16")
    with pytest.raises(UserError, match="unknown dtype"):
        with_dtype("gpu-a100", "fp64")


def test_simulate_and_compare_take_dtype(tmp_path):
    run = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["trace", "synth", "--model", "bert-tiny", "--steps", "10", "--update-every", "5",
                              "--batch-size", "4", "--seq-len", "16", "--out", str(run)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["simulate", str(run), "--hw", "gpu-a100", "--dtype", "fp32", "--json", "--no-save"])
    assert res.exit_code == 0, res.output
    assert '"gpu-a100@fp32"' in res.output
    res = runner.invoke(app, ["compare", str(run), "--hw", "gpu-a100", "--dtype", "fp16", "--json"])
    assert res.exit_code == 0, res.output
    assert "gpu-a100@fp16" in res.output and (run / "sim" / "gpu-a100@fp16.json").is_file()
    # the table says what each profile rests on; a precision variant keeps its profile's basis and dtype
    res = runner.invoke(app, ["compare", str(run), "--hw", "gpu-a100", "--dtype", "fp16"])
    assert res.exit_code == 0, res.output
    assert "fitted to published benchmarks (nothing timed here): gpu-a100@fp16." in " ".join(res.output.split())
    from accelsim.report import load_run
    from accelsim.report.verdict import profile_info

    info = profile_info([load_run(run)], ["gpu-a100@fp16"])["gpu-a100@fp16"]
    assert (info.basis, info.dtype) == ("published", "fp16")
    from accelsim.report.data import simulated_profiles  # the assumptions section and path checks use it too

    assert simulated_profiles([load_run(run)], ["gpu-a100@fp16"])["gpu-a100@fp16"].dtype == "fp16"
    res = runner.invoke(app, ["simulate", str(run), "--hw", "ipu-gc200", "--dtype", "bf16", "--no-save"])
    assert isinstance(res.exception, UserError) and "bf16" in str(res.exception)  # main() prints it, exit 2
