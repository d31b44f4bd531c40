"""NS4GC (Liu et al., "Reliable node similarity matrix guided contrastive graph clustering",
TKDE 2024): the cosine-similarity matrix between two augmented views should be 1 on the diagonal
(a node and its other view), high between neighbours, and sparse elsewhere.

``loss = -mean_i <z1_i, z2_i> - lam * mean_(i,j) in E <z1_i, z2_j>
        + gam * mean_(i,j) not in E sigmoid((<z1_i, z2_j> - s) / tau)``

with ``z`` the L2-normalised encoder outputs. The last term is estimated on a random ``neg x neg``
block of pairs per step, or runs over all node pairs in chunks (``neg`` at least the node count).
``neg=None`` scales with the graph: all pairs up to ``all_pairs_max_nodes`` nodes in a step (all
pairs keep ``N x N`` similarities for the backward pass), a ``4096 x 4096`` block above.

Guidance (:class:`~gnngmm.objectives.base.Guidance`): ``assign`` weights each pair of the last
term by the probability that its two nodes lie in different components; ``edge_scale`` scales the
views' edge-drop rate per edge (whole-graph batches only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gnngmm.objectives.base import Guidance, Objective, ObjectiveOutput, augmented_view, seed_count

ALL_PAIRS_MAX_NODES = 10_000
AUTO_NEGATIVES = 4096


def negatives(num_nodes: int, neg: int | None, all_pairs_max_nodes: int = ALL_PAIRS_MAX_NODES) -> int | None:
    """Side of the sampled block of node pairs for ``num_nodes`` nodes in a step (None: all pairs).
    The one rule, shared by the objective and the full-batch memory estimate (gnngmm.memory)."""
    if neg is not None:
        return int(neg) if int(neg) < num_nodes else None
    return AUTO_NEGATIVES if num_nodes > all_pairs_max_nodes else None


def different_component_weights(r1: Tensor, r2: Tensor) -> Tensor:
    """``(n1, n2)``: ``1 - <r1_i, r2_j>``, the probability that two nodes lie in different
    components (independent draws from their responsibilities ``r1`` ``(n1, K)``, ``r2`` ``(n2, K)``)."""
    return (1.0 - r1 @ r2.T).clamp_min(0.0)


class NS4GC(Objective):
    """NS4GC's loss (see the module docstring).

    Args:
        s (float): similarity threshold of the sparsity term's sigmoid. (default: ``0.6``)
        tau (float): the sigmoid's temperature. (default: ``0.1``)
        lam (float): weight of the neighbour term. (default: ``1.0``)
        gam (float): weight of the sparsity term. (default: ``1.0``)
        drop_edge (tuple[float, float]): each view's edge-drop rate. (default: ``(0.8, 0.8)``)
        drop_feature (tuple[float, float]): each view's feature-drop rate. (default: ``(0.0, 0.0)``)
        neg (int, optional): side of the sampled block of node pairs; None: by the graph's size
            (:func:`negatives`). (default: ``2048``)
        chunk (int): rows per block when all pairs are summed. (default: ``4096``)
        all_pairs_max_nodes (int): with ``neg=None``, all pairs up to this many nodes.
        sampled_neighbours (bool): on a sampled batch, the neighbour term runs over every sampled
            edge into a seed (not only edges between seeds). (default: ``True``)
    """

    accepts = frozenset({"assign", "edge_scale"})

    def __init__(
        self,
        s: float = 0.6,
        tau: float = 0.1,
        lam: float = 1.0,
        gam: float = 1.0,
        drop_edge: tuple[float, float] = (0.8, 0.8),
        drop_feature: tuple[float, float] = (0.0, 0.0),
        neg: int | None = 2048,
        chunk: int = 4096,
        all_pairs_max_nodes: int = ALL_PAIRS_MAX_NODES,
        sampled_neighbours: bool = True,
    ):
        super().__init__()
        self.s, self.tau, self.lam, self.gam = s, tau, lam, gam
        self.drop_edge, self.drop_feature = tuple(drop_edge), tuple(drop_feature)
        self.neg, self.chunk = neg, chunk
        self.all_pairs_max_nodes = all_pairs_max_nodes
        self.sampled_neighbours = sampled_neighbours  # neighbour term over all sampled edges into seeds

        self._adjacency_source = None
        self._adjacency = None

    def forward(self, encoder, batch, guidance: Guidance | None = None) -> ObjectiveOutput:
        """One step on ``batch``; ``guidance`` (optional) as the module docstring says."""
        assign = guidance.assign if guidance is not None else None
        edge_scale = guidance.edge_scale if guidance is not None else None
        n = seed_count(batch)
        if n < batch.num_nodes and self.sampled_neighbours:
            return self._sampled(encoder, batch, n, assign)
        views = [
            augmented_view(encoder, batch, pe, pf, edge_scale)[:n] for pe, pf in zip(self.drop_edge, self.drop_feature)
        ]
        z1, z2 = (F.normalize(v, dim=1) for v in views)
        adjacency, num_edges = self._binary_adjacency(batch.edge_index, n)
        align = -(z1 * z2).sum(1).mean()
        # sum over edges of <z1_i, z2_j> as one sparse product: no per-edge (E x d) gather
        neighbour = -(z1 * (adjacency @ z2)).sum() / max(1, num_edges)
        resp = _assignments(assign, views)
        loss = align + self.lam * neighbour + self.gam * self._sparsity(z1, z2, batch.edge_index, n, resp)
        return ObjectiveOutput(loss, views=tuple(views))

    def _sampled(self, encoder, batch, n: int, assign=None) -> ObjectiveOutput:
        """A sampled batch (seed nodes first, then their sampled neighbourhoods): the neighbour
        term runs over every sampled edge into a seed -- a seed's view against its neighbour's
        other view, the neighbour embedded from its own sampled neighbourhood -- not only over
        edges between two seeds (1,024 random seeds of an 18k-node graph share ~3% of their
        edges). The view agreement stays on the seeds. The sparsity term pairs the seeds with
        nodes drawn from the whole batch, so it pushes on the same nodes the neighbour term
        pulls (with seeds alone on both sides, the embedding can collapse into a small cap of the
        sphere)."""
        full = [augmented_view(encoder, batch, pe, pf) for pe, pf in zip(self.drop_edge, self.drop_feature)]
        z1_all, z2_all = (F.normalize(v, dim=1) for v in full)
        z1, z2 = z1_all[:n], z2_all[:n]
        src, dst = batch.edge_index
        into = dst < n
        ones = torch.ones(int(into.sum()), device=src.device)
        adjacency = torch.sparse_coo_tensor(
            torch.stack([dst[into], src[into]]), ones, (n, batch.num_nodes), check_invariants=False
        ).coalesce()
        num_edges = adjacency._nnz()
        align = -(z1 * z2).sum(1).mean()
        neighbour = -(z1 * torch.sparse.mm(adjacency, z2_all)).sum() / max(1, num_edges)
        seeds = (full[0][:n], full[1][:n])
        loss = align + self.lam * neighbour + self.gam * self._sampled_sparsity(z1, z2_all, full, n, assign)
        return ObjectiveOutput(loss, views=seeds)

    def _sampled_sparsity(self, z1, z2_all, views, n: int, assign=None):
        """Mean soft similarity between a block of seeds (rows, first view) and as many nodes
        drawn from the whole sampled batch (columns, second view): ``neg`` of each, or every seed
        against ``n`` nodes. A seed against its own other view is no negative; an edge inside the
        block counts as one (the block path's convention: on graphs that need sampling, a random
        pair is an edge with probability ``degree / N``). With ``assign``, each pair is weighted
        by the probability that its nodes lie in different components (``views``: the two
        views' raw outputs, what ``assign`` reads)."""
        side = negatives(n, self.neg, self.all_pairs_max_nodes) or n
        rows = torch.randperm(n, device=z1.device)[:side] if side < n else torch.arange(n, device=z1.device)
        cols = torch.randperm(z2_all.shape[0], device=z1.device)[:side]
        resp = _assignments(assign, (views[0][rows], views[1][cols])) if assign is not None else (None, None)
        return self._block(z1, z2_all, rows, cols, *resp)

    def _block(self, z1, z2, rows, cols, r1=None, r2=None):
        """Mean soft similarity over the pairs ``(rows[i], cols[j])`` of ``z1 x z2`` (both indexed
        by the batch's node ids), a node against its own other view left out; with ``r1``, ``r2``
        (the rows' and columns' responsibilities) each pair weighted by ``1 - <r1_i, r2_j>``."""
        weight = (rows[:, None] != cols[None, :]).to(z1.dtype)
        if r1 is not None:
            weight = weight * different_component_weights(r1, r2)
        return self._soft_sum(z1[rows], z2[cols], weight) / weight.sum().clamp_min(1.0)

    def _binary_adjacency(self, edge_index, n):
        """0/1 adjacency among the seed nodes as CSR, cached while the same edge tensor returns."""
        if self._adjacency_source is not edge_index or self._adjacency.shape[0] != n:
            src, dst = edge_index
            inside = (src < n) & (dst < n)
            ones = torch.ones(int(inside.sum()), device=edge_index.device)
            coo = torch.sparse_coo_tensor(edge_index[:, inside], ones, (n, n), check_invariants=False)
            self._adjacency = coo.coalesce().to_sparse_csr()
            self._adjacency_source = edge_index
        return self._adjacency, self._adjacency._nnz()

    def _soft(self, sim):
        return torch.sigmoid((sim - self.s) / self.tau)

    def _soft_sum(self, a, b, weight=None):
        """``sum_ij [w_ij] sigmoid((<a_i, b_j> - s) / tau)`` without autograd's elementwise copies."""
        return SoftSimilaritySum.apply(a, b, self.s, self.tau, weight)

    def _sparsity(self, z1, z2, edge_index, n, resp=None):
        """Mean soft similarity over non-edge pairs; with ``resp`` (the views' responsibilities,
        held fixed) a weighted mean, each pair weighted by ``1 - <r1_i, r2_j>``."""
        neg = negatives(n, self.neg, self.all_pairs_max_nodes)
        if neg is not None:
            rows = torch.randperm(n, device=z1.device)[:neg]
            cols = torch.randperm(n, device=z1.device)[:neg]
            return self._block(z1, z2, rows, cols, *((resp[0][rows], resp[1][cols]) if resp is not None else ()))
        src, dst = edge_index
        inside = (src < n) & (dst < n)
        src, dst = src[inside], dst[inside]
        edge_sim = (z1[src] * z2[dst]).sum(1)
        diag_sim = (z1 * z2).sum(1)
        if resp is None:
            total = sum(self._soft_sum(z1[i : i + self.chunk], z2) for i in range(0, n, self.chunk))
            removed = self._soft(diag_sim).sum() + self._soft(edge_sim).sum()
            return (total - removed) / max(1, n * n - n - edge_sim.numel())
        r1, r2 = resp
        total = weights = 0.0
        for i in range(0, n, self.chunk):
            w = different_component_weights(r1[i : i + self.chunk], r2)
            total = total + self._soft_sum(z1[i : i + self.chunk], z2, w)
            weights = weights + w.sum()
        w_diag = (1.0 - (r1 * r2).sum(1)).clamp_min(0.0)
        w_edge = (1.0 - (r1[src] * r2[dst]).sum(1)).clamp_min(0.0)
        total = total - (self._soft(diag_sim) * w_diag).sum() - (self._soft(edge_sim) * w_edge).sum()
        return total / (weights - w_diag.sum() - w_edge.sum()).clamp_min(1.0)


class SoftSimilaritySum(torch.autograd.Function):
    """``sum_ij w_ij sigmoid((<a_i, b_j> - s) / tau)`` for ``a`` ``(n, d)``, ``b`` ``(m, d)`` and an
    optional constant weight ``w`` ``(n, m)``: the sparsity term's cost at all pairs. Autograd's
    version allocates an ``(n, m)`` tensor per elementwise op, forward and backward; this one
    works in place on one (the sigmoid, kept for the gradient ``w sig (1 - sig) / tau`` and
    overwritten by it: backward runs once). Same forward digits as the composed ops."""

    @staticmethod
    def forward(ctx, a, b, s: float, tau: float, weight=None):
        sig = (a @ b.T).sub_(s).div_(tau).sigmoid_()
        total = sig.sum() if weight is None else torch.mul(sig, weight).sum()
        ctx.save_for_backward(a, b, sig, weight)
        ctx.tau = tau
        return total

    @staticmethod
    def backward(ctx, grad):
        a, b, sig, weight = ctx.saved_tensors
        # sig (1 - sig) in sig's own storage: a fresh (n, m) tensor per step costs as much as a GEMM
        g = torch.addcmul(sig, sig, sig, value=-1.0, out=sig).mul_(grad / ctx.tau)
        if weight is not None:
            g.mul_(weight)
        grad_a = g @ b if ctx.needs_input_grad[0] else None
        grad_b = g.T @ a if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, None, None, None


def _assignments(assign, views) -> tuple | None:
    """The views' responsibilities, held fixed (no gradient through the weights)."""
    if assign is None:
        return None
    with torch.no_grad():
        return tuple(assign(v.detach()) for v in views)
