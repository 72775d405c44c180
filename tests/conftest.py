import os

import pytest

# Tests never reach a hub; a cached tokenizer is shared by the whole session (trained once).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# CI has no GPU: Triton kernels run in the interpreter (set before anything imports triton)
os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session", autouse=True)
def _accelsim_cache(tmp_path_factory):
    if "ACCELSIM_TEST_CACHE" not in os.environ:
        os.environ["ACCELSIM_CACHE"] = str(tmp_path_factory.mktemp("accelsim-cache"))
    else:  # let a developer reuse a cache between runs
        os.environ["ACCELSIM_CACHE"] = os.environ["ACCELSIM_TEST_CACHE"]
    yield


@pytest.fixture(scope="session")
def isa_vector_floats() -> int:
    """Floats per vector register of this CPU as -march=native sees it (from /proc/cpuinfo)."""
    try:
        flags = next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo") if ln.startswith("flags")), [])
    except OSError:
        flags = []
    return 16 if "avx512f" in flags else 8 if "avx" in flags else 4
