"""``steer=augment``: component-aware augmentation. The views drop an edge with a probability that
grows with the chance that its two ends lie in different components (the last refit's
responsibilities), at the same mean rate; ``weight`` in [0, 1] mixes uniform (0) and
component-driven (1) dropping. Whole-graph batches only."""

from __future__ import annotations

from torch import Tensor

from gnngmm.errors import InputError
from gnngmm.objectives.base import Guidance
from gnngmm.steering.base import Steering


def edge_drop_scale(resp: Tensor, edge_index: Tensor, weight: float = 1.0) -> Tensor:
    """``(E,)`` factors on the edge-drop rate, mean 1: ``(1 - w) + w d_e / mean(d)`` with ``d_e =
    1 - <r_src, r_dst>`` the probability that edge ``e`` joins two components (``resp`` ``(N, K)``,
    ``edge_index`` ``(2, E)``)."""
    src, dst = edge_index
    d = (1.0 - (resp[src] * resp[dst]).sum(1)).clamp_min(0.0).float()
    return (1.0 - weight) + weight * d / d.mean().clamp_min(1e-12)


class ComponentAugment(Steering):
    """Passes per-edge drop-rate factors to the objective (``Guidance.edge_scale``), recomputed
    when the head's responsibilities change (at each refit)."""

    needs = "edge_scale"
    needs_full_batch = True

    def __init__(self, weight: float = 1.0, start_epoch: int | None = None):
        super().__init__(weight, start_epoch)
        if not 0 <= self.weight <= 1:
            raise InputError(
                f"steer.weight={weight!r} is not a share in [0, 1] (steer=augment mixes uniform and "
                "component-driven edge dropping)"
            )
        self._cache: tuple | None = None  # (responsibilities, edge_index, factors)

    def guidance(self, module, batch) -> Guidance:
        resp = module.head.resp
        if resp is None or resp.shape[0] != batch.num_nodes:
            raise InputError("steer=augment needs every node's responsibilities in each step: use data.loader=full")
        cached = self._cache
        if cached is None or cached[0] is not resp or cached[1] is not batch.edge_index:
            scale = edge_drop_scale(resp.to(batch.edge_index.device), batch.edge_index, self.weight)
            self._cache = cached = (resp, batch.edge_index, scale)
        return Guidance(edge_scale=cached[2])
