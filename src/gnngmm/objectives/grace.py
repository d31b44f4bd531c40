"""GRACE (Zhu et al. 2020): two views by edge dropping and feature masking; each node's views
must find each other among all nodes of both views (InfoNCE with temperature ``tau``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gnngmm.objectives.base import Guidance, Objective, ObjectiveOutput, augmented_view, seed_count


def info_nce(h1, h2, tau: float, max_nodes: int | None = None):
    """Symmetric GRACE loss; ``max_nodes`` caps the N x N similarity by subsampling nodes."""
    if max_nodes is not None and h1.shape[0] > max_nodes:
        idx = torch.randperm(h1.shape[0], device=h1.device)[:max_nodes]
        h1, h2 = h1[idx], h2[idx]
    h1, h2 = F.normalize(h1, dim=1), F.normalize(h2, dim=1)

    def one_side(a, b):
        refl = torch.exp(a @ a.T / tau)
        between = torch.exp(a @ b.T / tau)
        return -torch.log(between.diag() / (refl.sum(1) - refl.diag() + between.sum(1)))

    return 0.5 * (one_side(h1, h2) + one_side(h2, h1)).mean()


class GRACE(Objective):
    def __init__(
        self,
        dim: int,
        proj_dim: int = 128,
        tau: float = 0.5,
        drop_edge: tuple[float, float] = (0.2, 0.4),
        drop_feature: tuple[float, float] = (0.3, 0.4),
        max_nodes: int = 4096,
    ):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(dim, proj_dim), nn.ELU(), nn.Linear(proj_dim, dim))
        self.tau, self.drop_edge, self.drop_feature, self.max_nodes = (
            tau,
            tuple(drop_edge),
            tuple(drop_feature),
            max_nodes,
        )

    def forward(self, encoder, batch, guidance: Guidance | None = None) -> ObjectiveOutput:
        n = seed_count(batch)
        views = [augmented_view(encoder, batch, pe, pf)[:n] for pe, pf in zip(self.drop_edge, self.drop_feature)]
        loss = info_nce(self.proj(views[0]), self.proj(views[1]), self.tau, self.max_nodes)
        return ObjectiveOutput(loss, views=tuple(views))
