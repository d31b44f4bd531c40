"""The objective interface (what a step takes and returns) and the augmentations objectives share.

Objectives know encoders, not Hydra or the GMM. Augmentations are masks the encoder applies
(``edge_mask`` over edges, ``feature_mask`` over input features), so no augmented copy of the
graph or the feature matrix is built per step. What the mixture may pass into a step (a
steering strategy's :class:`Guidance`) is an explicit, optional input; an objective declares the
fields it reads in ``accepts``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class ObjectiveOutput:
    """What one step of an objective returns.

    Attributes:
        loss: the self-supervised loss, a scalar.
        embedding: ``(n, D)`` the clean-view embedding of the batch's seed nodes when the objective
            computed it anyway; None lets the module run the clean forward pass only when needed.
        views: ``(n, D)`` each, the embeddings of the augmented views (seed nodes).
    """

    loss: Tensor
    embedding: Tensor | None = None
    views: tuple[Tensor, ...] = ()


@dataclass
class Guidance:
    """Optional inputs a steering strategy passes into an objective's step.

    Attributes:
        assign: maps encoder outputs ``(n, D)`` to ``(n, K)`` responsibilities of the fixed mixture
            (no gradient is taken through it); an objective with pair terms may weight each pair
            by the probability that its two nodes lie in different components.
        edge_scale: ``(E,)`` factors (mean about 1) on the views' edge-drop rate, one per edge of
            the batch.
    """

    assign: Callable[[Tensor], Tensor] | None = None
    edge_scale: Tensor | None = None

    def fields(self) -> set[str]:
        """The names of the fields that are set."""
        return {name for name in ("assign", "edge_scale") if getattr(self, name) is not None}


class Objective(nn.Module):
    """``forward(encoder, batch, guidance=None) -> ObjectiveOutput``.

    ``batch`` is a PyG ``Data`` (the whole graph or a sampled subgraph); objectives that need
    node-level targets use only its first ``batch.batch_size`` nodes when the loader sets it (the
    seed nodes of a neighbour sampler). ``accepts`` names the :class:`Guidance` fields the
    objective reads; the others are ignored.
    """

    accepts: frozenset[str] = frozenset()

    def forward(self, encoder: nn.Module, batch, guidance: Guidance | None = None) -> ObjectiveOutput:
        raise NotImplementedError  # pragma: no cover - interface


def seed_count(batch) -> int:
    size = getattr(batch, "batch_size", None)
    return int(size) if size is not None else int(batch.num_nodes)


def edge_mask(batch, p: float, scale: Tensor | None = None) -> Tensor | None:
    """Keep each edge with probability ``1 - p`` (None: keep all); with ``scale`` (one per edge,
    mean ~1) edge ``e`` is dropped with probability ``min(0.95, p * scale[e])`` instead. On a
    batch of sampled neighbourhoods (``batch.full_degree`` set) the rate is
    :func:`sampled_drop_rate`'s."""
    if p <= 0 or batch.edge_index.shape[1] == 0:
        return None
    rate = p if getattr(batch, "full_degree", None) is None else sampled_drop_rate(batch, p)
    u = torch.rand(batch.edge_index.shape[1], device=batch.edge_index.device)
    return u >= rate if scale is None else u >= (rate * scale).clamp_max(0.95)


def sampled_drop_rate(batch, p: float) -> Tensor:
    """Per-edge drop rate that makes a view of sampled neighbourhoods look like the view the
    whole graph gets: drop ``p`` of *all* edges, then sample. A target ``v`` with ``d_v`` edges
    in the graph and ``c_v`` sampled ones (``c_v <= fanout``) keeps each sampled edge with
    probability ``min(1, (1 - p) d_v / c_v)``, so about ``min(c_v, (1 - p) d_v)`` survive, as a
    fanout drawn from the thinned graph would. Where the fanout covers the neighbourhood this is
    ``p``; on a hub with far more edges than the fanout it is 0. Induced subgraphs of random
    node sets (``random_nodes``) keep the plain rate: they thin every edge alike. Returns ``(E,)``."""
    dst = batch.edge_index[1]
    sampled = torch.bincount(dst, minlength=batch.num_nodes).clamp_min(1).to(torch.float32)
    keep = ((1.0 - p) * batch.full_degree.to(torch.float32) / sampled).clamp_max(1.0)
    return (1.0 - keep)[dst]


def feature_mask(batch, p: float) -> Tensor | None:
    """Zero each feature column with probability ``p`` (None: keep all)."""
    if p <= 0:
        return None
    return (torch.rand(batch.x.shape[1], device=batch.x.device) >= p).to(batch.x.dtype)


def augmented_view(encoder, batch, drop_edge: float, drop_feature: float, edge_scale: Tensor | None = None) -> Tensor:
    """The encoder's output on one random view (all nodes of the batch); ``edge_scale``: see
    :func:`edge_mask`."""
    return encoder(
        batch.x,
        batch.edge_index,
        edge_mask=edge_mask(batch, drop_edge, edge_scale),
        feature_mask=feature_mask(batch, drop_feature),
    )
