"""The only collective EM needs: a sum over processes, injected so ``mixture`` stays framework-free.

``LOCAL`` is the identity (one process). ``TorchDistributed`` sums with
``torch.distributed.all_reduce``; a DDP job passes it to ``GaussianMixture(comm=...)`` and each rank
fits on its own shard. Gathers (for the k-means seeding sample and re-seeding candidates) are built
from the same sum: each rank writes into its own slot of a zero tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Communicator:
    """One process: every collective is the identity. Subclasses sum across processes.

    A communicator is a handle, not state: copies (``copy.deepcopy``, ``sklearn.base.clone``) return
    the same object, and calling it is :meth:`all_reduce_sum` (it is the injected reduction).
    """

    rank: int = 0
    world_size: int = 1

    def __call__(self, tensor: Tensor) -> Tensor:
        return self.all_reduce_sum(tensor)

    def __copy__(self) -> Communicator:
        return self

    def __deepcopy__(self, memo) -> Communicator:
        return self

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        return tensor

    def broadcast_from_zero(self, tensor: Tensor) -> Tensor:
        """Rank 0's value on every rank (a sum where the other ranks contribute zeros)."""
        if self.world_size == 1:
            return tensor
        return self.all_reduce_sum(tensor if self.rank == 0 else torch.zeros_like(tensor))

    def all_gather_rows(self, tensor: Tensor) -> Tensor:
        """Concatenate every rank's rows (rank order); ranks may hold different row counts."""
        if self.world_size == 1:
            return tensor
        sizes = torch.zeros(self.world_size, dtype=torch.float64, device=tensor.device)
        sizes[self.rank] = tensor.shape[0]
        sizes = self.all_reduce_sum(sizes).long().tolist()
        slots = tensor.new_zeros((self.world_size, max(sizes)) + tuple(tensor.shape[1:]))
        slots[self.rank, : tensor.shape[0]] = tensor
        slots = self.all_reduce_sum(slots)
        return torch.cat([slots[r, : sizes[r]] for r in range(self.world_size)])


LOCAL = Communicator()


class TorchDistributed(Communicator):
    """Sum across the default ``torch.distributed`` process group (gloo or nccl)."""

    def __init__(self, group=None):
        import torch.distributed as dist

        object.__setattr__(self, "rank", dist.get_rank(group))
        object.__setattr__(self, "world_size", dist.get_world_size(group))
        object.__setattr__(self, "_group", group)

    def all_reduce_sum(self, tensor: Tensor) -> Tensor:
        import torch.distributed as dist

        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self._group)
        return tensor


def default_communicator() -> Communicator:
    """``TorchDistributed`` inside an initialised process group with several ranks, else ``LOCAL``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return TorchDistributed()
    return LOCAL
