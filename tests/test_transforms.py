"""Feature normalisations (gnngmm.data.transforms) on a case with known answers."""

from __future__ import annotations

import pytest
import torch

from gnngmm.data.transforms import normalize_features
from gnngmm.errors import InputError


def test_feature_normalisations():
    x = torch.tensor([[1.0, 3.0], [0.0, 0.0], [2.0, 2.0]])
    torch.testing.assert_close(normalize_features(x, "row"), torch.tensor([[0.25, 0.75], [0.0, 0.0], [0.5, 0.5]]))
    standard = normalize_features(x, "standard")
    torch.testing.assert_close(standard.mean(0), torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(normalize_features(x, "l2").norm(dim=1), torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(InputError, match="'cube'"):
        normalize_features(x, "cube")
