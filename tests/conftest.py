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
