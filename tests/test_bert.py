"""accelsim.bert: the BERT facts the trainer and the synthetic traces share (one place, torch-free)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from accelsim import bert
from accelsim.trainer.models import PRESETS, build_model, linear_layers


def test_importing_bert_facts_does_not_import_torch():
    code = "import sys, accelsim.bert, accelsim.synth; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["bert-tiny", "bert-large"])
def test_trainer_model_has_the_layers_synth_describes(name):
    with torch.device("meta"):  # shapes only: bert-large costs nothing
        model = build_model(name, 30522, 128)
    real = [(n, role, [m.out_features, m.in_features]) for n, m, role in linear_layers(model)]
    assert real == bert.bert_linears(bert.PRESETS[name])
    assert model.num_parameters() == bert.bert_params(bert.PRESETS[name])
    assert set(PRESETS) == set(bert.PRESETS)


def test_distributions_are_the_trainers_and_synths():
    from accelsim.synth import erk_densities
    from accelsim.trainer.sparsity.distribution import erk, layer_densities

    assert erk is bert.erk and layer_densities is bert.layer_densities
    shapes = {n: s for n, _, s in bert.bert_linears(bert.PRESETS["bert-mini"])}
    assert erk_densities(shapes, 0.8) == pytest.approx(bert.erk(shapes, 0.2), rel=1e-12)


def test_cosine_drop_on_arrays_equals_the_scalar_form():
    t = np.array([0.0, 1.0, 25.0, 74.0, 75.0, 200.0])
    arr = bert.cosine_drop_fraction(t, 0.3, 75.0)
    assert arr.tolist() == pytest.approx([bert.cosine_drop_fraction(float(x), 0.3, 75.0) for x in t], rel=1e-15)
    assert arr[0] == pytest.approx(0.3) and arr[-2] == arr[-1] == 0.0
    assert bert.cosine_drop_fraction(t, 0.3, 0.0).tolist() == [0.0] * len(t)
