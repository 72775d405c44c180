"""When masks change and by how much: schedules are kept apart from the methods that use them.

Convention: the trainer's ``step`` is the 0-based index of the optimizer step just taken, so
``t = step + 1`` steps have completed when a mask update runs. All formulas below use that ``t``,
which puts the first drop/grow update after exactly ``update_every`` steps of training.
"""
from __future__ import annotations

from dataclasses import dataclass

from accelsim.bert import cosine_drop_fraction  # RigL's schedule, shared with synthetic traces
from accelsim.errors import expect


@dataclass(frozen=True)
class DropGrowSchedule:
    """Updates every ``update_every`` steps while t < end_fraction * total_steps; cosine drop fraction."""

    update_every: int
    drop_fraction: float
    t_end: float  # end_fraction * total_steps

    @classmethod
    def from_config(cls, cfg, total_steps: int) -> "DropGrowSchedule":
        return cls(cfg.update_every, cfg.drop_fraction, cfg.end_fraction * total_steps)

    def is_update(self, step: int) -> bool:
        t = step + 1
        return t % self.update_every == 0 and t < self.t_end

    def fraction(self, step: int) -> float:
        return cosine_drop_fraction(step + 1, self.drop_fraction, self.t_end)


@dataclass(frozen=True)
class CubicSchedule:
    """Zhu & Gupta (2017) gradual pruning: s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dT))^3.

    Updates happen at t = t0 + k dT for k = 1..n, with n = floor((t_end - t0) / dT) so that the last
    update lands inside the window and reaches s_f exactly.
    """

    t0: int
    update_every: int
    n: int

    @classmethod
    def from_config(cls, cfg, total_steps: int) -> "CubicSchedule":
        t0 = round(cfg.gmp_start_fraction * total_steps)
        t_end = round(cfg.gmp_end_fraction * total_steps)
        n = (t_end - t0) // cfg.update_every
        expect(n >= 1, f"the GMP pruning window [{t0}, {t_end}] steps (gmp_start_fraction.."
               f"gmp_end_fraction of {total_steps} steps) is shorter than update_every={cfg.update_every}; "
               "lower update_every or train longer", source="sparsity config", field="update_every")
        return cls(t0, cfg.update_every, n)

    @property
    def t_final(self) -> int:
        return self.t0 + self.n * self.update_every

    def is_update(self, step: int) -> bool:
        t = step + 1
        return self.t0 < t <= self.t_final and (t - self.t0) % self.update_every == 0

    def progress(self, t: float) -> float:
        """1 - (1 - (t - t0)/(n dT))^3 clipped to [0, 1]: the share of (s_f - s_i) reached at t."""
        x = min(max((t - self.t0) / (self.n * self.update_every), 0.0), 1.0)
        return 1.0 - (1.0 - x) ** 3

    def sparsity(self, t: float, s_final: float, s_init: float = 0.0) -> float:
        return s_final + (s_init - s_final) * (1.0 - self.progress(t))
