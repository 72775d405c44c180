"""GPU kernel paths written in Triton (block-sparse and N:M), registered for device "cuda".

Importing this package needs ``triton``; :func:`kernels.registry.load_paths` treats its absence as
"no Triton paths". The kernels run on the CPU under ``TRITON_INTERPRET=1`` for testing.
"""
from accelsim.kernels.triton import paths  # noqa: F401  (registration side effects)
