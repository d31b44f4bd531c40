"""``steer=contrast``: the two views' responsibility columns, one per component, agree with their
own component in the other view and differ from the others, with an entropy term on component
sizes against collapse (the cluster-level head of Li et al., "Contrastive Clustering", AAAI 2021,
with the mixture as the head)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gnngmm.steering.base import Steering


def component_contrast(r1: Tensor, r2: Tensor, tau: float = 1.0) -> Tensor:
    """InfoNCE over the ``2K`` responsibility columns of two views ``r1``, ``r2`` ``(n, K)`` (a
    column's positive: its own component in the other view) plus ``log K`` minus the entropy of
    the component sizes, so that no component empties. Returns a scalar."""
    k = r1.shape[1]
    c = torch.nn.functional.normalize(torch.cat([r1.T, r2.T]), dim=1)  # (2K, n)
    sim = c @ c.T / tau
    sim = sim.masked_fill(torch.eye(2 * k, dtype=torch.bool, device=sim.device), float("-inf"))
    target = torch.cat([torch.arange(k, 2 * k), torch.arange(0, k)]).to(sim.device)
    nce = torch.nn.functional.cross_entropy(sim, target)
    entropy = sum(size_entropy(r.mean(0)) for r in (r1, r2)) / 2
    return nce + (math.log(k) - entropy)


def size_entropy(p: Tensor) -> Tensor:
    """Entropy of the component sizes ``p`` ``(K,)``."""
    return -(p * p.clamp_min(1e-12).log()).sum()


class ComponentContrast(Steering):
    """Adds ``weight * component_contrast`` of the first two views' responsibilities."""

    def term(self, module, batch, output) -> Tensor | None:
        if len(output.views) < 2:
            return None
        r1, r2 = (module.head.responsibilities(v) for v in output.views[:2])
        return self.weight * component_contrast(r1, r2).to(output.loss.dtype)
