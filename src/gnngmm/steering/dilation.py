"""``steer=dilation``: the components' centres, recomputed from each step's embeddings with the
mixture's responsibilities held fixed, are pushed apart (mean squared distance between centres,
Dink-Net's dilation loss, Liu et al., ICML 2023)."""

from __future__ import annotations

import torch
from torch import Tensor

from gnngmm.steering.base import Steering


def component_dilation(t: Tensor, r: Tensor) -> Tensor:
    """Minus the mean squared distance between the ``K`` component centres ``c_k = sum_i r_ik t_i /
    sum_i r_ik`` of the embeddings ``t`` ``(n, D)`` (as the mixture sees them); ``r`` ``(n, K)`` is
    treated as fixed. Empty components are left out. Returns a scalar."""
    r = r.detach().to(t.dtype)
    mass = r.sum(0)
    keep = mass > 1e-6
    centres = (r[:, keep].T @ t) / mass[keep, None]  # (K', D)
    k = centres.shape[0]
    if k < 2:
        return t.sum() * 0.0
    sq = (centres * centres).sum(1)
    pairwise = sq[:, None] + sq[None, :] - 2.0 * centres @ centres.T  # zero diagonal
    return -pairwise.sum() / (k * (k - 1))


class ComponentDilation(Steering):
    """Adds ``weight * component_dilation`` averaged over the step's views (or the clean
    embedding when the objective has no views)."""

    def term(self, module, batch, output) -> Tensor:
        views = output.views or (module.clean_embedding(output, batch),)
        with torch.no_grad():  # the responsibilities are held fixed
            resp = [module.head.responsibilities(v) for v in views]
        head = module.head
        term = sum(component_dilation(head.transform(v), r) for v, r in zip(views, resp)) / len(views)
        return self.weight * term.to(output.loss.dtype)
