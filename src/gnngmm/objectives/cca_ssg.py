"""CCA-SSG (Zhang et al. 2021): two augmented views must agree feature by feature (invariance)
while each view's standardised features stay decorrelated (``lam * ||Z^T Z - I||^2``). The
decorrelation term is what keeps the embedding from collapsing under the GMM term."""

from __future__ import annotations

import torch

from gnngmm.objectives.base import Guidance, Objective, ObjectiveOutput, augmented_view, seed_count


def standardize(z: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-variance columns, scaled by 1/sqrt(n) so that Z^T Z is a correlation."""
    std = z.std(0).clamp_min(1e-6)
    return (z - z.mean(0)) / std / z.shape[0] ** 0.5


class CCASSG(Objective):
    def __init__(
        self,
        lam: float = 1e-3,
        drop_edge: tuple[float, float] = (0.2, 0.2),
        drop_feature: tuple[float, float] = (0.2, 0.2),
    ):
        super().__init__()
        self.lam = lam
        self.drop_edge, self.drop_feature = tuple(drop_edge), tuple(drop_feature)

    def forward(self, encoder, batch, guidance: Guidance | None = None) -> ObjectiveOutput:
        n = seed_count(batch)
        views = [augmented_view(encoder, batch, pe, pf)[:n] for pe, pf in zip(self.drop_edge, self.drop_feature)]
        z1, z2 = (standardize(v) for v in views)
        eye = torch.eye(z1.shape[1], device=z1.device, dtype=z1.dtype)
        invariance = (z1 - z2).square().sum()
        decorrelation = (z1.T @ z1 - eye).square().sum() + (z2.T @ z2 - eye).square().sum()
        return ObjectiveOutput(invariance + self.lam * decorrelation, views=tuple(views))
