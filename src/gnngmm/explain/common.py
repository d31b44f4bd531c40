"""What every explanation table shares: the block sizes that bound its memory, and the conversion
of its inputs (tensors, arrays, node names) to plain CPU values."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

EDGE_CHUNK = 1 << 22  # edges per block: a few int64 temporaries of this length at a time
ROW_BYTES = 1 << 26  # bytes of float64 feature rows per block (64 MiB)
MAX_OUTLIERS = 1000
FEATURE_COLUMNS = [
    "cluster",
    "rank",
    "feature",
    "column",
    "kind",
    "effect",
    "score",
    "in_cluster",
    "outside",
    "support",
]


def as_tensor(values, dtype=None) -> Tensor:
    """``values`` (tensor, array or sequence) as a detached CPU tensor, cast to ``dtype`` if given."""
    out = values if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values))
    out = out.detach().cpu()
    return out.to(dtype) if dtype is not None else out


def row_names(names, index: np.ndarray) -> list:
    """Names of the rows ``index``: ``names[i]`` when names are given, else ``i`` itself."""
    if names is None:
        return [int(i) for i in index]
    return [names[int(i)] for i in index]


def join(values, limit: int | None = None) -> str:
    """The first ``limit`` values (all by default) as text, separated by commas."""
    values = list(values)[:limit]
    return ", ".join(str(v) for v in values)
