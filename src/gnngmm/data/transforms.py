"""Feature preprocessing chosen in the config (``data.normalize_features``)."""

from __future__ import annotations

import torch
from torch import Tensor

from gnngmm.errors import InputError

FEATURE_NORMS = ("row", "standard", "l2", "none")


def normalize_features(x: Tensor, mode: str) -> Tensor:
    """``row``: each row divided by the sum of its absolute values (for non-negative features such
    as bag-of-words this is PyG's ``NormalizeFeatures``, which first shifts rows to be non-negative
    and so differs on signed features); ``standard``: zero-mean unit-variance
    columns; ``l2``: unit-norm rows; ``none``: unchanged. All-zero rows stay zero."""
    x = x.float()
    if mode == "none" or mode is None:
        return x
    if mode == "row":
        return x / x.abs().sum(1, keepdim=True).clamp_min(1e-12)
    if mode == "l2":
        return torch.nn.functional.normalize(x, dim=1)
    if mode == "standard":
        std = x.std(0, keepdim=True)
        return (x - x.mean(0, keepdim=True)) / torch.where(std > 0, std, torch.ones_like(std))
    raise InputError(f"data.normalize_features={mode!r} is not one of {', '.join(FEATURE_NORMS)}")
