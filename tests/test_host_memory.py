"""accelsim.kernels.host_memory: with freed memory retained, a step's fresh buffers are not page-faulted in again."""
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import resource, sys, torch
    from accelsim.kernels.host_memory import retain_freed_memory, retain_state
    if sys.argv[1] == "retain":
        print(retain_freed_memory(), file=sys.stderr)
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for size in (8 << 20, 24 << 20, 8 << 20, 40 << 20):  # mixed sizes, as a training step allocates
        torch.ones(size // 4)
    before = faults()
    for _ in range(12):
        for size in (8 << 20, 24 << 20, 8 << 20, 40 << 20):
            torch.ones(size // 4)
    print(faults() - before)
""")


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-P", "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator thresholds (Linux)")
def test_retained_memory_is_not_faulted_in_again():
    pages = (12 * (8 + 24 + 8 + 40) << 20) // 4096  # every page of the 48 buffers, if each were fresh
    default, retained = _faults("default"), _faults("retain")
    assert default > pages // 4  # the default policy returns these blocks to the kernel (the cost removed)
    # retained: a buffer or two faulted in once while the heap settles (10,240-20,480 measured), not per round
    assert retained * 3 < default


def test_trainer_records_the_policy():
    from accelsim.kernels import host_memory
    from accelsim.trainer.tracer import host_info
    assert host_info()["host_memory"] == host_memory.retain_state()
