"""The application layer: the ``accelsim`` command and experiments, the only code that ties the trainer,
the kernels and the simulator together (import order checked by import-linter, see pyproject)."""
