"""Real sparse kernels, their measurement, and the calibration of hardware profiles against them.

* :mod:`kernels.cases`     — a product to measure (op, layer shape, pattern, density) and its operands
* :mod:`kernels.registry`  — every way ("path") to compute an (op, pattern); ``pick_fastest``
* :mod:`kernels.cpu`       — dense MKL, torch CSR/BSR, sparse_dot_mkl, hand-written C block kernels, N:M
* :mod:`kernels.triton`    — Triton block-sparse and N:M GPU kernels (testable with TRITON_INTERPRET=1)
* :mod:`kernels.bench`     — ``run_bench(config)`` sweeps; :mod:`kernels.merge` pools sweeps' rounds
* :mod:`kernels.records`   — the measurement file format: typed, versioned records (``read_measurements``)
* :mod:`kernels.points`    — records -> points (paired times, held-out split) for calibration and validation
* :mod:`kernels.calibrate` — ``calibrate`` a profile with accelsim.hardware.kernel_time;
  :mod:`kernels.validation` — ``validate`` it; :mod:`kernels.console` prints them (rich tables)

Semantics everywhere follow nn.Linear: Y = X·Wᵀ, dX = dY·W, dW = (dYᵀ·X) ⊙ mask (see kernels.cases).
"""
