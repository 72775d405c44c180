"""execution.cold_activations: a hot-loop-calibrated profile meets a training step's activations in main memory."""
import dataclasses

import pytest

from accelsim.hardware import load_profile, op_cost, profile_to_yaml
from accelsim.hardware.profile import load_profile_text
from accelsim.workload import Op


def _cold(name="cpu-zen3", on=True):
    p = load_profile(name)
    sources = dict(p.sources, **({"execution.cold_activations": "test"} if on else {}))
    return dataclasses.replace(p, execution=dataclasses.replace(p.execution, cold_activations=on), sources=sources)


def _linear(m=2048, k=512, n=512, density=1.0):
    f = 2.0 * m * k * n
    return Op("lin", "linear", "fwd", m=m, k=k, n=n, density=density, sparse=density < 1, flops_dense=f,
              flops=f * density)


def test_a_sparse_product_pays_its_activations_after_the_overlapped_part():
    prof, plain = _cold(), _cold(on=False)
    main = prof.level("main")
    op = _linear(density=0.1)
    step = op_cost(prof, op)
    assert step.path != "dense-gemm"
    act = (2048 * 512 + 2048 * 512) * 4  # X and Y in fp32
    assert step.stall_s == pytest.approx(act / main.bandwidth_Bps, rel=1e-9)
    assert step.time_s == pytest.approx(op_cost(plain, op, path=step.path).time_s + step.stall_s, rel=1e-9)
    # a kernel benchmark's loop is what the profile measured: unchanged by the flag
    loop = op_cost(prof, op, warm=True)
    assert loop.stall_s == 0.0 and loop.time_s == pytest.approx(op_cost(plain, op, warm=True).time_s)


@pytest.mark.parametrize("op", [_linear(), Op("gelu", "elementwise", "fwd", role="gelu", elements=1 << 22)])
def test_streamed_activations_overlap_with_compute(op):
    """Dense products and elementwise ops stream their activations: read from main memory, overlapped (roofline)."""
    prof, plain = _cold(), _cold(on=False)
    main = prof.level("main")
    step, before = op_cost(prof, op), op_cost(plain, op)
    assert step.stall_s == 0.0
    assert step.bytes.get(main.name, 0.0) > before.bytes.get(main.name, 0.0)
    assert step.time_s >= before.time_s
    assert step.time_s >= step.bytes[main.name] / main.bandwidth_Bps


def test_off_by_default_and_round_trips():
    plain = load_profile("cpu-zen3")
    assert not plain.execution.cold_activations
    assert op_cost(plain, _linear(density=0.1)).stall_s == 0.0
    again = load_profile_text(profile_to_yaml(_cold()), source="cold.yaml")
    assert again.execution.cold_activations
    assert "cold_activations" not in profile_to_yaml(plain)
