"""Deep Graph Infomax (Velickovic et al. 2019): tell real node embeddings from ones computed on
row-shuffled features, against a graph summary. Spreads the embedding, so the GMM term cannot
collapse it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gnngmm.objectives.base import Guidance, Objective, ObjectiveOutput, seed_count


class DGI(Objective):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, encoder, batch, guidance: Guidance | None = None) -> ObjectiveOutput:
        pos = encoder(batch.x, batch.edge_index)
        perm = torch.randperm(batch.num_nodes, device=batch.x.device)
        neg = encoder(batch.x[perm], batch.edge_index)
        n = seed_count(batch)
        pos, neg = pos[:n], neg[:n]
        summary = torch.sigmoid(pos.mean(0))
        w_s = self.weight @ summary
        logits_pos, logits_neg = pos @ w_s, neg @ w_s
        loss = F.binary_cross_entropy_with_logits(
            logits_pos, torch.ones_like(logits_pos)
        ) + F.binary_cross_entropy_with_logits(logits_neg, torch.zeros_like(logits_neg))
        return ObjectiveOutput(loss, pos)
