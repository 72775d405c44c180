"""Knowledge distillation from a dense fine-tuned teacher while a student is pruned during fine-tuning.

Logit KD (Hinton et al. 2015): KL(softmax(t / T) || softmax(s / T)) * T^2 mixed with the task loss.
Hidden-state KD (the SPD-style option, as in TinyBERT/SparseBERT-style distillation of intermediate
representations): an MSE between every hidden state of student and teacher (embeddings output and each
block's output), which needs equal depth and width.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from accelsim.errors import expect

KD_MODES = ("logits", "hidden")


@dataclass
class KDConfig:
    # "logits" distills the output distribution only; "hidden" adds the per-layer hidden-state MSE
    mode: str = "logits"
    # weight of the distillation terms against the task cross-entropy (0: no KD, 1: KD only); 0.5 is the
    # even mix common in BERT distillation recipes
    alpha: float = 0.5
    # softmax temperature: > 1 exposes the teacher's relative confidence in the wrong classes (Hinton's
    # "dark knowledge"); 2 is a usual choice for few-label tasks
    temperature: float = 2.0
    # weight of the hidden-state MSE (mode "hidden"); hidden states of small BERTs have unit-scale
    # entries after LayerNorm, so 1 puts it on the scale of the KL term
    hidden_weight: float = 1.0

    def validate(self) -> None:
        expect(self.mode in KD_MODES, f"expected one of {KD_MODES}, got {self.mode!r}", field="--kd")
        expect(0.0 <= self.alpha <= 1.0, f"expected a weight in [0, 1], got {self.alpha}", field="--kd-alpha")
        expect(self.temperature > 0, f"expected a positive temperature, got {self.temperature}",
               field="--kd-temperature")
        expect(self.hidden_weight >= 0, f"expected a weight >= 0, got {self.hidden_weight}", field="--kd-hidden-weight")


def logit_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence of the softened distributions, scaled by T^2 so its gradients keep the size of the
    hard-label loss's as T changes (Hinton et al. 2015)."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=-1), F.log_softmax(teacher_logits / t, dim=-1),
                    reduction="batchmean", log_target=True) * (t * t)


def hidden_kd(student_hidden: tuple[torch.Tensor, ...], teacher_hidden: tuple[torch.Tensor, ...],
              attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over layers of the MSE between hidden states at real (non-padding) tokens."""
    expect(len(student_hidden) == len(teacher_hidden), f"hidden-state KD needs equal depth: student has "
           f"{len(student_hidden) - 1} blocks, teacher {len(teacher_hidden) - 1}", field="--kd")
    keep = attention_mask.unsqueeze(-1).to(student_hidden[0].dtype)
    n = keep.sum() * student_hidden[0].shape[-1]
    losses = [(((s - t) ** 2) * keep).sum() / n for s, t in zip(student_hidden, teacher_hidden)]
    return torch.stack(losses).mean()


def distill_loss(task_loss: torch.Tensor, student_out, teacher_out, attention_mask: torch.Tensor,
                 cfg: KDConfig) -> torch.Tensor:
    """(1 - alpha) * task loss + alpha * (logit KD [+ hidden_weight * hidden KD])."""
    kd = logit_kd(student_out.logits, teacher_out.logits, cfg.temperature)
    if cfg.mode == "hidden":
        kd = kd + cfg.hidden_weight * hidden_kd(student_out.hidden_states, teacher_out.hidden_states, attention_mask)
    return (1.0 - cfg.alpha) * task_loss + cfg.alpha * kd
