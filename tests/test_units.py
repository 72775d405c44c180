"""The report's human units: one formatter per quantity, 3 significant figures, parseable back."""
import math

import pytest

from accelsim.report.units import SP, fmt_energy, fmt_flops, fmt_ratio, fmt_share, fmt_time, parse_quantity


@pytest.mark.parametrize("seconds, text", [(0.0005165, "516 µs"), (0.07519, "75.2 ms"), (32.47, "32.5 s"),
                                           (150.0, "2.50 min"), (7200.0, "2.00 h"), (0.9997, "1.00 s"),
                                           (0.0009996, "1.00 ms"), (2.5e-9, "2.50 ns")])
def test_time_picks_the_unit_that_keeps_three_figures(seconds, text):
    assert fmt_time(seconds) == text.replace(" ", SP)
    assert parse_quantity(fmt_time(seconds)) == pytest.approx(seconds, rel=5e-3)


@pytest.mark.parametrize("joules, text", [(13.7, "13.7 J"), (4675.0, "4.67 kJ"), (0.8945, "894 mJ"),
                                          (1.75e8, "175 MJ"), (1.2e-4, "120 µJ")])
def test_energy_uses_si_prefixes(joules, text):
    assert fmt_energy(joules) == text.replace(" ", SP)
    assert parse_quantity(fmt_energy(joules)) == pytest.approx(joules, rel=5e-3)


def test_ratios_shares_flops_and_missing_values():
    assert fmt_ratio(1.0386) == "1.04×" and fmt_ratio(118.4) == "118×" and fmt_ratio(0.99781) == "0.998×"
    assert fmt_share(0.7639) == f"76.4{SP}%" and parse_quantity(fmt_share(0.7639)) == pytest.approx(0.764)
    assert fmt_flops(3.2e12) == f"3.20{SP}TFLOP" and parse_quantity(fmt_flops(3.2e12)) == pytest.approx(3.2e12)
    for f in (fmt_time, fmt_energy, fmt_ratio, fmt_share):
        assert f(None) == f(math.nan) == "–"
