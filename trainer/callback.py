"""Use accelsim from an existing Hugging Face ``Trainer`` script.

    trainer = Trainer(model=model, args=args, train_dataset=..., data_collator=...,
                      callbacks=[AccelsimCallback("runs/hf-rigl", SparsityConfig("rigl", 0.9))])

The callback applies the sparsity method around each optimizer step and writes the same trace as
``accelsim train``. Per-step loss and tokens come from a forward hook on the model, because the
Trainer only reports loss at logging intervals.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from accelsim import trace as tr
from accelsim.trainer.models import linear_layers, model_dims
from accelsim.trainer.sparsity import SparsityConfig, build_method
from accelsim.trainer.tracer import InputZeroProbe, TraceWriter, host_info, library_versions
from accelsim.trainer.train import DEFAULT_SPARSE_ROLES, _masks


class AccelsimCallback(TrainerCallback):
    def __init__(self, out: str | Path, sparsity: SparsityConfig | None = None,
                 sparse_roles: tuple[str, ...] = DEFAULT_SPARSE_ROLES, save_masks: str = "auto"):
        self.out = Path(out)
        self.cfg = sparsity or SparsityConfig()
        self.sparse_roles = sparse_roles
        self.save_masks = save_masks
        self.method = None
        self.writer: TraceWriter | None = None

    # -- forward hook: per-step loss and token counts (gradient accumulation sums micro-batches) --
    def _on_forward(self, module, args, kwargs, output):
        if module.training and getattr(output, "loss", None) is not None:
            self._losses.append(float(output.loss.detach()))
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None:
                self._tokens += int(ids.numel())
                self._seq_len = int(ids.shape[-1])

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        layers = linear_layers(model)
        sparse = [(n, m) for n, m, role in layers if role in self.sparse_roles]
        self.method = build_method(self.cfg, sparse, int(state.max_steps))
        self.method.attach(getattr(optimizer, "optimizer", optimizer))  # unwrap accelerate's wrapper
        self._sparse = sparse
        self._losses: list[float] = []
        self._tokens = 0
        self._seq_len = int(getattr(model.config, "max_position_embeddings", 512))
        self._hook = model.register_forward_hook(self._on_forward, with_kwargs=True)
        self._probe = InputZeroProbe(sparse)
        self._probe.armed = True  # the first forward records step-0 input statistics
        dens = self.method.target_densities()
        names = {n for n, _ in sparse}
        infos = [tr.LayerInfo(n, role, list(m.weight.shape),
                              float(dens.get(n, 1.0)) if n in names and self.cfg.method != "dense" else 1.0,
                              sparse=n in names and self.cfg.method != "dense") for n, m, role in layers]
        batch = args.per_device_train_batch_size * max(1, args.gradient_accumulation_steps)
        self._manifest_args = dict(batch=batch, infos=infos, model=model)
        self._t0 = time.perf_counter()
        self._step_kind = self.method.step_kind(0)

    def _ensure_writer(self) -> TraceWriter:
        if self.writer is None:
            a = self._manifest_args
            seq = self._seq_len
            manifest = tr.Manifest(
                model=model_dims(a["model"], seq), batch_size=a["batch"], dtype="fp32",
                method={"name": self.cfg.method, **self.method.hyperparameters()}, layers=a["infos"],
                steps=0, versions=library_versions(), host=host_info(), extra={"source": "hf-trainer-callback"})
            self.writer = TraceWriter(self.out, manifest, self.save_masks)
            self.writer.start()
            self.writer.patterns(0, _masks(self.method, self._sparse), input_zero=dict(self._probe.values))
        return self.writer

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_kind = self.method.step_kind(state.global_step)
        self._probe.armed = self._probe.armed or self._step_kind.mask_update
        self._t0 = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self._ensure_writer()
        self.method.before_optimizer_step(state.global_step)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self._change = self.method.after_optimizer_step(state.global_step)

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        step = state.global_step - 1  # the Trainer has already counted this step
        writer = self._ensure_writer()
        loss = sum(self._losses) / max(len(self._losses), 1)
        lr = float(getattr(optimizer, "param_groups", [{"lr": 0.0}])[0]["lr"])
        change = self._change
        writer.step(step, loss, lr, self._tokens, time.perf_counter() - self._t0, self._step_kind,
                    self.method.densities(), change is not None)
        if change is not None:
            writer.patterns(step, _masks(self.method, self._sparse), change.pruned, change.grown,
                            dict(self._probe.values))
        self._probe.armed = False
        self._losses.clear()
        self._tokens = 0
        writer.manifest.steps = step + 1

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.writer is not None and metrics and "eval_loss" in metrics:
            self.writer.eval(max(state.global_step - 1, 0), float(metrics["eval_loss"]),
                             float(metrics.get("eval_accuracy", float("nan"))))

    def on_save(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.flush()
            self.writer.start()  # rewrite the manifest with the final step count
        self._hook.remove()
        self._probe.remove()
