"""Graph auto-encoder (Kipf & Welling 2016): inner products of embeddings reconstruct edges
against uniformly sampled non-edges. Its per-node reconstruction error also scores anomalies."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_geometric.utils import negative_sampling

from gnngmm.objectives.base import Guidance, Objective, ObjectiveOutput, seed_count


class GAE(Objective):
    """Needs no settings: the decoder is the inner product of the encoder's outputs."""

    def __init__(self):
        super().__init__()

    def forward(self, encoder, batch, guidance: Guidance | None = None) -> ObjectiveOutput:
        z = encoder(batch.x, batch.edge_index)
        pos = batch.edge_index
        neg = negative_sampling(pos, num_nodes=batch.num_nodes, num_neg_samples=pos.shape[1])
        logit_pos = (z[pos[0]] * z[pos[1]]).sum(1)
        logit_neg = (z[neg[0]] * z[neg[1]]).sum(1)
        loss = F.binary_cross_entropy_with_logits(
            logit_pos, torch.ones_like(logit_pos)
        ) + F.binary_cross_entropy_with_logits(logit_neg, torch.zeros_like(logit_neg))
        # the contract: the clean embedding of the batch's seed nodes (a sampled batch puts its
        # seeds first; its other nodes are only context)
        return ObjectiveOutput(loss, z[: seed_count(batch)])
