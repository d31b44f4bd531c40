"""How the GMM head steers the self-supervised objective (``gmm.steer``).

The NLL pull (``gmm.loss_weight``) moves embeddings toward their components but tells the
objective nothing. A steering term feeds the mixture's responsibilities back into the loss. The
mixture and the embedding transform stay fixed during a step (EM refits them at epoch ends), so
every term is differentiable in the embeddings only.

- ``false_negatives``: NS4GC's sparsity term weights the pair ``(i, j)`` by the probability that
  the two nodes lie in different components, ``1 - <r_i, r_j>``: pairs the mixture confidently puts
  in one component are no longer pushed apart (:func:`different_component_weights`).
- ``contrast``: the two views' responsibility columns, one per component, agree with their own
  component in the other view and differ from the others, with an entropy term on component sizes
  against collapse (the cluster-level head of Li et al., "Contrastive Clustering", AAAI 2021,
  with the GMM as the head) (:func:`component_contrast`).
- ``self_training``: DEC's sharpened targets (Xie et al., ICML 2016): ``KL(P || Q)`` with ``Q`` the
  views' mean responsibilities and ``P = Q^2 / f`` renormalised, held fixed (:func:`self_training`).
- ``augment``: component-aware augmentation: the views drop an edge with a probability that grows
  with the chance that its ends lie in different components (the last refit's responsibilities),
  same mean rate; ``steer_weight`` in [0, 1] mixes uniform (0) and component-driven (1) dropping
  (:func:`edge_drop_scale`).
- ``dilation``: the components' centres, recomputed from the step's embeddings with the
  mixture's responsibilities held fixed, are pushed apart (mean squared distance between centres,
  Dink-Net's dilation loss, Liu et al., ICML 2023): the reward for separating components that
  the NLL pull alone does not give (:func:`component_dilation`).

Shapes: ``r`` is ``(n, K)``, rows summing to one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

STEER = ("none", "false_negatives", "contrast", "self_training", "augment", "dilation")


def responsibilities(gmm, transform, h: Tensor) -> Tensor:
    """``(n, K)`` posterior of each component for the encoder outputs ``h`` ``(n, D)``, through
    the fixed transform and mixture; differentiable in ``h``, in ``h``'s dtype."""
    log_prob = gmm.weighted_log_prob(transform(h.double()))
    return torch.softmax(log_prob, dim=1).to(h.dtype)


def different_component_weights(r1: Tensor, r2: Tensor) -> Tensor:
    """``(n1, n2)``: ``1 - <r1_i, r2_j>``, the probability that two nodes lie in different
    components (independent draws from their responsibilities)."""
    return (1.0 - r1 @ r2.T).clamp_min(0.0)


def edge_drop_scale(resp: Tensor, edge_index: Tensor, weight: float = 1.0) -> Tensor:
    """``(E,)`` factors on the edge-drop rate, mean 1: ``(1 - w) + w d_e / mean(d)`` with ``d_e =
    1 - <r_src, r_dst>`` the probability that edge ``e`` joins two components (``resp`` ``(N, K)``)."""
    src, dst = edge_index
    d = (1.0 - (resp[src] * resp[dst]).sum(1)).clamp_min(0.0).float()
    return (1.0 - weight) + weight * d / d.mean().clamp_min(1e-12)


def component_contrast(r1: Tensor, r2: Tensor, tau: float = 1.0) -> Tensor:
    """Contrast of the ``K`` responsibility columns of two views (InfoNCE over ``2K`` columns, a
    column's positive its own component in the other view) minus the entropy of the component
    sizes (``log K`` at most), so that no component empties."""
    k = r1.shape[1]
    c = torch.nn.functional.normalize(torch.cat([r1.T, r2.T]), dim=1)  # (2K, n)
    sim = c @ c.T / tau
    sim = sim.masked_fill(torch.eye(2 * k, dtype=torch.bool, device=sim.device), float("-inf"))
    target = torch.cat([torch.arange(k, 2 * k), torch.arange(0, k)]).to(sim.device)
    nce = torch.nn.functional.cross_entropy(sim, target)
    entropy = sum(_entropy(r.mean(0)) for r in (r1, r2)) / 2
    return nce + (math.log(k) - entropy)


def self_training(r1: Tensor, r2: Tensor) -> Tensor:
    """``KL(P || Q)`` with ``Q`` the views' mean responsibilities and ``P`` DEC's sharpened target
    ``q_ik^2 / f_k`` (``f_k`` the soft component size), renormalised per node and held fixed."""
    q = (r1 + r2) / 2
    with torch.no_grad():
        p = q**2 / q.sum(0).clamp_min(1e-12)
        p = p / p.sum(1, keepdim=True)
    return (p * (p.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(1).mean()


def component_dilation(t: Tensor, r: Tensor) -> Tensor:
    """Minus the mean squared distance between the ``K`` component centres ``c_k = sum_i r_ik t_i /
    sum_i r_ik`` of the embeddings ``t`` ``(n, D)`` (as the mixture sees them); ``r`` ``(n, K)`` is
    treated as fixed. Empty components are left out."""
    r = r.detach().to(t.dtype)
    mass = r.sum(0)
    keep = mass > 1e-6
    centres = (r[:, keep].T @ t) / mass[keep, None]  # (K', D)
    k = centres.shape[0]
    if k < 2:
        return t.sum() * 0.0
    sq = (centres * centres).sum(1)
    pairwise = sq[:, None] + sq[None, :] - 2.0 * centres @ centres.T  # zero diagonal
    return -pairwise.sum() / (k * (k - 1))


def _entropy(p: Tensor) -> Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum()
