"""Importing this package registers every method (one module per family)."""
from accelsim.trainer.sparsity.methods import dense, dropgrow, gmp, movement, nm, snfs  # noqa: F401
