"""``steer=self_training``: DEC's sharpened targets (Xie et al., ICML 2016), ``KL(P || Q)`` with
``Q`` the two views' mean responsibilities and ``P = Q^2 / f`` renormalised, held fixed."""

from __future__ import annotations

import torch
from torch import Tensor

from gnngmm.steering.base import Steering


def self_training(r1: Tensor, r2: Tensor) -> Tensor:
    """``KL(P || Q)`` for two views' responsibilities ``r1``, ``r2`` ``(n, K)``: ``Q`` their mean,
    ``P`` DEC's target ``q_ik^2 / f_k`` (``f_k`` the soft component size), renormalised per node
    and held fixed. Returns a scalar."""
    q = (r1 + r2) / 2
    with torch.no_grad():
        p = q**2 / q.sum(0).clamp_min(1e-12)
        p = p / p.sum(1, keepdim=True)
    return (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(1).mean()


class SelfTraining(Steering):
    """Adds ``weight * self_training`` of the first two views' responsibilities."""

    def term(self, module, batch, output) -> Tensor | None:
        if len(output.views) < 2:
            return None
        r1, r2 = (module.head.responsibilities(v) for v in output.views[:2])
        return self.weight * self_training(r1, r2).to(output.loss.dtype)
