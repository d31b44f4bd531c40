"""What every self-supervised objective returns; objectives know encoders, not Hydra or the GMM."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass
class ObjectiveOutput:
    loss: Tensor  # the self-supervised loss (scalar)
    # The clean-view embedding of the batch's seed nodes when the objective computed it anyway;
    # None lets the module run the clean forward pass only when the GMM term needs it.
    embedding: Tensor | None


class Objective(nn.Module):
    """``forward(encoder, batch) -> ObjectiveOutput``. ``batch`` is a PyG ``Data`` (whole graph
    or sampled subgraph); objectives that need node-level targets use only its first
    ``batch.batch_size`` nodes when the loader sets it (seed nodes of a NeighborLoader)."""

    def forward(self, encoder: nn.Module, batch) -> ObjectiveOutput:  # pragma: no cover - interface
        raise NotImplementedError


def seed_count(batch) -> int:
    size = getattr(batch, "batch_size", None)
    return int(size) if size is not None else int(batch.num_nodes)
