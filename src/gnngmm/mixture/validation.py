"""Checks of inputs and initial parameters, with scikit-learn's messages and exception types.

NumPy-like inputs go through scikit-learn's own ``validate_data``; torch tensors are checked here
with the same wording, on their device (nothing is copied to the CPU). Either way the result is a
list of 2-D tensors in the compute dtype, and an :class:`ArrayKind` that says how results go back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data
from torch import Tensor


@dataclass(frozen=True)
class ArrayKind:
    """How results leave the estimator: NumPy arrays, or torch tensors on ``device``.

    Args:
        torch (bool): ``True`` for torch tensors, ``False`` for NumPy arrays.
        device (torch.device, optional): where torch results go (the input's device).
            (default: :obj:`None`)
    """

    torch: bool
    device: torch.device | None = None

    def wrap(self, value: Tensor):
        """``value`` as this kind: a detached NumPy array, or a tensor on ``device`` (autograd kept)."""
        if self.torch:
            return value.to(self.device)
        return value.detach().cpu().numpy()


NUMPY = ArrayKind(torch=False)


def is_tensor_input(X) -> bool:
    """``True`` for a tensor or a non-empty list/tuple of tensors (one shard per DDP rank, or chunks)."""
    if isinstance(X, Tensor):
        return True
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(isinstance(p, Tensor) for p in X)


def check_tensor(x: Tensor, name: str = "X") -> None:
    """Reject what scikit-learn's ``check_array`` rejects, for a torch tensor.

    Args:
        x (torch.Tensor): the input, any device.
        name (str, optional): the estimator's name for the messages. (default: ``"X"``)

    Raises:
        TypeError: sparse input.
        ValueError: complex input, or not two-dimensional.
    """
    if x.layout != torch.strided:
        raise TypeError(
            "Sparse data was passed for X, but dense data is required. Use '.to_dense()' to convert to a dense tensor."
        )
    if x.is_complex():
        raise ValueError("Complex data not supported")
    if x.dim() in (0, 1):
        what = "scalar" if x.dim() == 0 else "1D"
        raise ValueError(
            f"Expected 2D array, got {what} array instead (shape={tuple(x.shape)}). Reshape your data either using "
            "X.reshape(-1, 1) if your data has a single feature or X.reshape(1, -1) if it contains a single sample."
        )
    if x.dim() > 2:
        raise ValueError(f"Found array with dim {x.dim()}, while dim <= 2 is required by {name}.")


def check_finite(x: Tensor, part: int | None = None) -> None:
    """Raise a ``ValueError`` that names the first non-finite row of ``x`` (n, d).

    Args:
        x (torch.Tensor): a 2-D block of the input.
        part (int, optional): the block's index in a list input, for the message. (default: :obj:`None`)

    Raises:
        ValueError: ``x`` holds NaN or inf (the message starts as scikit-learn's).
    """
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(1)).flatten()
        what = "NaN" if bool(torch.isnan(x).any()) else "infinity"
        where = f" (part {part})" if part is not None else ""
        raise ValueError(
            f"Input X contains {what}: {int(bad.sum())} non-finite values (NaN or inf) in {rows.numel()} rows{where}, "
            f"first at row {int(rows[0])}"
        )


def check_input(
    estimator, X, *, reset: bool, dtype: torch.dtype, device: torch.device | None, min_samples: int = 1
) -> tuple[list[Tensor], ArrayKind]:
    """Validate ``X`` and return it as 2-D tensors in ``dtype``, with the kind results must take.

    NumPy-like input (arrays, lists, DataFrames) is checked by scikit-learn's ``validate_data``
    (which also sets or checks ``n_features_in_`` and ``feature_names_in_``); tensors, or a list of
    tensors (row blocks: one per DDP rank), are checked here with the same messages.

    Args:
        estimator: the estimator (for ``n_features_in_`` and the messages).
        X (array-like or torch.Tensor or list of torch.Tensor): the input, ``(n_samples, n_features)``.
        reset (bool): set ``n_features_in_`` (``fit``) rather than check against it.
        dtype (torch.dtype): the compute dtype.
        device (torch.device, optional): compute device; :obj:`None` keeps a tensor's own device
            (NumPy input: the CPU).
        min_samples (int, optional): fewest rows accepted in one NumPy array or tensor; row blocks are
            counted by the caller. (default: ``1``)

    Returns:
        (list of torch.Tensor, ArrayKind): the row blocks ``(n_i, n_features)`` and the output kind.

    Raises:
        TypeError: sparse input, or objects that are not numbers.
        ValueError: complex, empty, non-finite or wrongly shaped input, or a feature count that differs
            from the fitted one.
    """
    if is_tensor_input(X):
        return check_tensor_input(estimator, X, reset=reset, dtype=dtype, device=device, min_samples=min_samples)
    x = check_array_input(estimator, X, reset=reset, dtype=dtype, device=device, min_samples=min_samples)
    return [x], NUMPY


def check_array_input(
    estimator, X, *, reset: bool, dtype: torch.dtype, device: torch.device | None, min_samples: int
) -> Tensor:
    """NumPy-like ``X`` checked by scikit-learn's ``validate_data``, as one ``(n, d)`` ``dtype`` tensor
    on ``device`` (the CPU when :obj:`None`); arguments and exceptions as :func:`check_input`'s."""
    array = validate_data(
        estimator, X, reset=reset, dtype=[np.float64, np.float32], ensure_all_finite=False,
        ensure_min_samples=min_samples,
    )  # fmt: skip
    if not array.flags.writeable:  # torch warns on read-only memory (memory maps)
        array = array.copy()
    x = torch.from_numpy(array).to(device=device or torch.device("cpu"), dtype=dtype)
    check_finite(x)
    return x


def check_tensor_input(
    estimator, X, *, reset: bool, dtype: torch.dtype, device: torch.device | None, min_samples: int
) -> tuple[list[Tensor], ArrayKind]:
    """A tensor or a list of tensors (row blocks) checked with scikit-learn's messages, as ``dtype``
    blocks on ``device`` (each block's own when :obj:`None`), and the kind of the first block;
    arguments and exceptions as :func:`check_input`'s."""
    name = type(estimator).__name__
    parts = list(X) if isinstance(X, (list, tuple)) else [X]
    for p in parts:
        check_tensor(p, name)
    width = parts[0].shape[1]
    if any(p.shape[1] != width for p in parts):
        raise ValueError(f"the row blocks of X have different feature counts: {[p.shape[1] for p in parts]}")
    rows = sum(p.shape[0] for p in parts)
    if len(parts) == 1 and rows < min_samples:
        raise ValueError(
            f"Found array with {rows} sample(s) (shape={tuple(parts[0].shape)}) while a minimum of {min_samples} "
            f"is required by {name}."
        )
    if width < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape=({rows}, 0)) while a minimum of 1 is required by {name}."
        )
    check_n_features(estimator, width, reset)
    kind = ArrayKind(torch=True, device=parts[0].device)
    out = [p.to(device=device or p.device, dtype=dtype) for p in parts]
    for i, p in enumerate(out):
        check_finite(p, i if len(out) > 1 else None)
    return out, kind


def check_n_features(estimator, width: int, reset: bool) -> None:
    """As scikit-learn's ``validate_data`` for tensors: set ``n_features_in_`` (and drop
    ``feature_names_in_``) when ``reset``, else check ``width`` against it.

    Raises:
        ValueError: ``width`` differs from the fitted feature count.
    """
    if reset:
        estimator.n_features_in_ = width
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif hasattr(estimator, "n_features_in_") and width != estimator.n_features_in_:
        raise ValueError(
            f"X has {width} features, but {type(estimator).__name__} is expecting {estimator.n_features_in_} "
            "features as input."
        )


def to_numpy(value) -> np.ndarray:
    """An array-like (tensors on any device included) as a NumPy array, without copying when it can."""
    if isinstance(value, Tensor):
        value = value.detach().cpu()
        if value.is_complex():
            raise ValueError("Complex data not supported")
        return value.numpy()
    return value


def check_shape(value: np.ndarray, shape: tuple, name: str) -> None:
    """Raise scikit-learn's ``ValueError`` when the parameter ``name`` does not have ``shape``."""
    if value.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got {value.shape}")


def check_weights(weights, n_components: int) -> np.ndarray:
    """``weights_init`` checked as scikit-learn checks it.

    Args:
        weights (array-like): ``(n_components,)`` mixture weights.
        n_components (int): the number of components.

    Returns:
        numpy.ndarray: the weights, float64 or float32 as given.

    Raises:
        ValueError: wrong shape, a weight outside ``[0, 1]``, or a sum that is not 1 within 1e-8
            (1e-6 for float32).
    """
    weights = check_array(to_numpy(weights), dtype=[np.float64, np.float32], ensure_2d=False)
    check_shape(weights, (n_components,), "weights")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        # scikit-learn's wording, which names the minimum "max value" and the maximum "min value"
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got max value "
            f"{np.min(weights):.5f}, min value {np.max(weights):.5f}"
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if not np.allclose(float(np.abs(1.0 - np.sum(weights))), 0.0, atol=atol):
        raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {np.sum(weights):.5f}")
    return weights


def check_means(means, n_components: int, n_features: int) -> np.ndarray:
    """``means_init`` checked as scikit-learn checks it: shape ``(n_components, n_features)``.

    Raises:
        ValueError: wrong shape, or values that are not finite numbers.
    """
    means = check_array(to_numpy(means), dtype=[np.float64, np.float32], ensure_2d=False)
    check_shape(means, (n_components, n_features), "means")
    return means


PRECISION_SHAPES = {
    "full": lambda k, d: (k, d, d),
    "tied": lambda k, d: (d, d),
    "diag": lambda k, d: (k, d),
    "spherical": lambda k, d: (k,),
    "isotropic": lambda k, d: (k,),
}


def check_precisions(precisions, covariance_type: str, n_components: int, n_features: int) -> np.ndarray:
    """``precisions_init`` checked as scikit-learn checks it.

    Args:
        precisions (array-like): ``(K, d, d)`` for full, ``(d, d)`` for tied, ``(K, d)`` for diag,
            ``(K,)`` for spherical and isotropic.
        covariance_type (str): the mixture's covariance type.
        n_components (int): K.
        n_features (int): d.

    Returns:
        numpy.ndarray: the precisions.

    Raises:
        ValueError: wrong shape; a matrix that is not symmetric positive-definite (full, tied); a
            value that is not positive (diag, spherical, isotropic).
    """
    precisions = check_array(
        to_numpy(precisions), dtype=[np.float64, np.float32], ensure_2d=False, allow_nd=covariance_type == "full"
    )
    check_shape(precisions, PRECISION_SHAPES[covariance_type](n_components, n_features), f"{covariance_type} precision")
    if covariance_type in ("full", "tied"):
        for matrix in precisions if covariance_type == "full" else precisions[None]:
            if not (np.all(np.isclose(matrix, matrix.T)) and np.all(np.linalg.eigvalsh(matrix) > 0.0)):
                raise ValueError(f"'{covariance_type} precision' should be symmetric, positive-definite")
    elif np.any(precisions <= 0.0):
        raise ValueError(f"'{covariance_type} precision' should be positive")
    return precisions
