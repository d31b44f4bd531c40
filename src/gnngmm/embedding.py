"""Encoder output -> GMM input: centre, optional PCA, optional standardise, optional L2, then
divide by the spread.

A Gaussian mixture on raw embeddings does badly, so this step is part of the model. Its statistics
are refit on the full-graph embedding at every EM refit and held fixed in between, so the GMM
term's gradient flows through a fixed map.

The last step (``rescale``) divides by the embedding's spread (root mean squared distance to its
mean), so the mixture sees data of unit spread however tightly the encoder packs its nodes: the
mixture's ``reg_covar`` is absolute, and on an embedding packed into a small cap of the sphere it
would otherwise exceed the clusters' own variance. A scale changes nothing else: the GMM is
translation-equivariant, the cosine-based readers of this output (silhouette, neighbour
inconsistency) do not see a scale, and the GMM term takes ``variance_factor`` back to the
encoder's units, so its pull is unchanged. Why each step is there: docs/experiments.md.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import Tensor

# Above this many input dimensions (bag-of-words features, e.g. the training-free baselines' PCA),
# the leading directions come from a randomised SVD (Halko et al. 2011), as scikit-learn's
# PCA(svd_solver="auto") does; encoder outputs stay exact.
RANDOMIZED_MIN_DIM = 1024


def symmetric_eigh(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.linalg.eigh``, for small CPU matrices on one thread: multi-threaded LAPACK is 20-200x
    slower on a busy 2-core machine (OpenMP spin-waits) and gains nothing at this size. The call
    runs in a worker thread whose own OpenMP/MKL thread count is set to one, so the caller's
    setting (``torch.get_num_threads()``) is never touched."""
    if matrix.shape[-1] > 2048 or matrix.device.type != "cpu":
        return torch.linalg.eigh(matrix)
    out: dict = {}

    def work() -> None:
        torch.set_num_threads(1)  # OpenMP and MKL thread counts are per calling thread
        try:
            out["value"] = torch.linalg.eigh(matrix)
        except Exception as err:  # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = err

    worker = threading.Thread(target=work, name="gnngmm-eigh")
    worker.start()
    worker.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def leading_directions(h: Tensor, mean: Tensor, p: int, oversample: int = 10, n_iter: int = 7) -> Tensor:
    """``(D, p)`` leading right singular vectors of ``h - mean`` (``h`` ``(N, D)``) by a randomised
    SVD with a fixed seed (the caller's random stream is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _, _, v = torch.svd_lowrank(h.double(), q=min(p + oversample, min(h.shape)), niter=n_iter, M=mean[None])
    return v[:, :p]


class EmbeddingTransform:
    def __init__(
        self,
        pca_dim: int | None = None,
        standardize: bool = False,
        l2: bool = True,
        center: bool = False,
        rescale: bool = True,
    ):
        self.pca_dim = pca_dim
        self.center = center  # False (no PCA): L2-normalise the raw output, as cosine losses see it
        self.standardize = standardize
        self.l2 = l2
        self.rescale = rescale
        self.mean_: Tensor | None = None
        self.components_: Tensor | None = None  # (D, p)
        self.scale_: Tensor | None = None
        self.spread_: Tensor | None = None  # () float64: the output's RMS distance to its mean, before division

    @property
    def is_fitted(self) -> bool:
        return self.mean_ is not None

    @torch.no_grad()
    def fit(self, h: Tensor, chunk_rows: int = 65536) -> EmbeddingTransform:
        """Statistics in float64, read ``chunk_rows`` rows at a time: no full-size float64 copy
        of ``h`` (at ogbn-products' size each copy is 1.25 GB; only the randomised PCA of inputs
        wider than ``RANDOMIZED_MIN_DIM`` takes one)."""
        n, dim = h.shape
        if self.center or self.pca_dim:
            total = torch.zeros(dim, dtype=torch.float64, device=h.device)
            for i in range(0, n, chunk_rows):
                total += h[i : i + chunk_rows].double().sum(0)
            self.mean_ = total / max(1, n)
        else:
            self.mean_ = torch.zeros(dim, dtype=torch.float64, device=h.device)
        self.components_ = None
        if self.pca_dim and self.pca_dim < dim and dim > RANDOMIZED_MIN_DIM and 4 * self.pca_dim < dim:
            comps = leading_directions(h, self.mean_, self.pca_dim)
        elif self.pca_dim and self.pca_dim < dim:
            cov = torch.zeros(dim, dim, dtype=torch.float64, device=h.device)
            for i in range(0, n, chunk_rows):
                centred = h[i : i + chunk_rows].double() - self.mean_
                cov += centred.T @ centred
            _, vectors = symmetric_eigh(cov / max(1, n - 1))
            comps = vectors[:, -self.pca_dim :].flip(1)
        if self.pca_dim and self.pca_dim < dim:
            # the signs are arbitrary: make each component's largest loading positive
            signs = torch.sign(comps.gather(0, comps.abs().argmax(0, keepdim=True)))
            self.components_ = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
        self.scale_ = None
        if self.standardize:
            std = (self._squared_deviations(h, self._project, chunk_rows) / max(1, n - 1)).sqrt()
            self.scale_ = torch.where(std > 0, std, torch.ones_like(std))
        self.spread_ = None
        if self.rescale:
            # root mean squared distance of the unscaled output's rows to their mean; 1 when all are equal
            spread = (self._squared_deviations(h, self._unscaled, chunk_rows).sum() / max(1, n)).sqrt()
            self.spread_ = spread if spread > 0 else torch.ones_like(spread)
        return self

    def _squared_deviations(self, h: Tensor, part, chunk_rows: int) -> Tensor:
        """Per column of ``part(h)``, the sum of squared deviations from its mean ``(width,)``
        float64: two passes (mean, then deviations) as torch.std does, ``chunk_rows`` at a time."""
        total = torch.zeros(self._width(h.shape[1]), dtype=torch.float64, device=h.device)
        for i in range(0, h.shape[0], chunk_rows):
            total += part(h[i : i + chunk_rows].double()).sum(0)
        mean = total / max(1, h.shape[0])
        sq = torch.zeros_like(total)
        for i in range(0, h.shape[0], chunk_rows):
            sq += (part(h[i : i + chunk_rows].double()) - mean).pow(2).sum(0)
        return sq

    @property
    def variance_factor(self) -> float:
        """Squared length of one output unit in the unscaled output's units: turns the mixture's
        variances back into the encoder's scale (the scale-free GMM term's weight)."""
        return float(self.spread_) ** 2 if self.spread_ is not None else 1.0

    def _project(self, h: Tensor) -> Tensor:
        """Centred and, with PCA, projected: the part of the map before scaling and L2."""
        z = h - self.mean_.to(h)
        return z @ self.components_.to(h) if self.components_ is not None else z

    def _width(self, dim: int) -> int:
        return self.components_.shape[1] if self.components_ is not None else dim

    @torch.no_grad()
    def transform_rows(self, h: Tensor, chunk_rows: int = 65536) -> Tensor:
        """``self(h)`` in float64 for every row, without gradient, ``chunk_rows`` rows at a time
        (one float64 output and no full-size temporaries: the full-graph refit's input)."""
        if not self.is_fitted:
            raise RuntimeError("EmbeddingTransform is not fitted")
        out = torch.empty(h.shape[0], self._width(h.shape[1]), dtype=torch.float64, device=h.device)
        for i in range(0, h.shape[0], chunk_rows):
            out[i : i + chunk_rows] = self(h[i : i + chunk_rows].double())
        return out

    def __call__(self, h: Tensor) -> Tensor:
        """Differentiable in ``h``; returns ``h``'s dtype."""
        if not self.is_fitted:
            raise RuntimeError("EmbeddingTransform is not fitted")
        z = self._unscaled(h)
        return z / self.spread_.to(z) if self.spread_ is not None else z

    def _unscaled(self, h: Tensor) -> Tensor:
        """The map up to the division by the spread."""
        z = self._project(h)
        if self.scale_ is not None:
            z = z / self.scale_.to(h)
        if self.l2:
            z = F.normalize(z, dim=1)
        return z

    def state_dict(self) -> dict:
        return {"mean": self.mean_, "components": self.components_, "scale": self.scale_, "spread": self.spread_}

    def load_state_dict(self, state: dict) -> EmbeddingTransform:
        """``state`` without ``spread`` (checkpoints from before the division) keeps the output
        unscaled, as those models were fitted."""
        self.mean_, self.components_, self.scale_ = state["mean"], state["components"], state["scale"]
        self.spread_ = state.get("spread")
        return self
