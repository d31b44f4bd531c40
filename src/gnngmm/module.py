"""The LightningModule: encoder + self-supervised objective + the GMM head and its loss term.

A training step's loss is ``objective(z) [+ steering term] + GMM term`` (:class:`gnngmm.loss.GMMTerm`),
the head held fixed; :class:`gnngmm.callbacks.EMRefit` refits the head between epochs. The head's
state (:meth:`GMMHead.state_dict`) and the RNG states go into every checkpoint, so a resumed run
continues exactly where it stopped. Users fit models through :class:`gnngmm.GNNGMM`, which builds
this module (:mod:`gnngmm.pipeline`).
"""

from __future__ import annotations

import random
from functools import partial

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from gnngmm.head import GMMHead
from gnngmm.loss import GMMTerm
from gnngmm.objectives.base import Objective, ObjectiveOutput, seed_count
from gnngmm.steering import Steering


class GNNGMMModule(L.LightningModule):
    """Args:
    encoder (nn.Module): ``(x, edge_index) -> (N, D)`` with ``full_graph_embedding`` (as
        :class:`gnngmm.encoders.GNNEncoder`).
    objective (Objective, optional): the self-supervised objective; None: nothing to train.
    head (GMMHead): the mixture head.
    gmm_term (GMMTerm): the GMM term of the loss.
    steer (Steering, optional): how the head steers the objective. (default: none)
    optimizer (callable, optional): ``params -> torch.optim.Optimizer``. (default: Adam, lr 1e-3)
    seed (int): under DDP each rank's augmentations are drawn from ``(seed, epoch, rank)``.
    inference_chunk_size (int): rows per block of the full-graph embedding.
    origin (dict, optional): what rebuilds this module from a checkpoint (the estimator's
        parameters, the input width, the data's description), saved with it.
    """

    def __init__(
        self,
        encoder: nn.Module,
        objective: Objective | None,
        head: GMMHead,
        gmm_term: GMMTerm,
        steer: Steering | None = None,
        optimizer=None,
        seed: int = 0,
        inference_chunk_size: int = 65536,
        origin: dict | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.objective = objective
        self.head = head
        self.gmm_term = gmm_term
        self.steer = steer if steer is not None else Steering()
        self.optimizer_factory = optimizer or partial(torch.optim.Adam, lr=1e-3)
        self.seed = seed
        self.inference_chunk_size = inference_chunk_size
        self.origin = origin or {}

    @property
    def trainable(self) -> bool:
        return self.objective is not None and any(p.requires_grad for p in self.parameters())

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.encoder(x, edge_index)

    def on_train_epoch_start(self) -> None:
        if self.trainer.world_size > 1:  # one seed on every rank would draw the same augmentations
            torch.manual_seed(self.seed * 1_000_003 + self.current_epoch * 1_009 + self.global_rank)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        step = self.steer.step(self, batch)
        out = step.output
        loss = out.loss
        self.log("train/ssl_loss", out.loss, on_step=False, on_epoch=True, batch_size=1)
        if step.term is not None:
            loss = loss + step.term
            self.log("train/steer", step.term, on_step=False, on_epoch=True, batch_size=1)
        if self.gmm_term.active(self.current_epoch, self.head):
            views = (
                out.views if self.gmm_term.embedding == "views" and out.views else (self.clean_embedding(out, batch),)
            )
            term, nll = self.gmm_term(self.head, views, loss.dtype)
            loss = loss + term
            self.log("train/gmm_nll", nll, on_step=False, on_epoch=True, batch_size=1)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=1)
        return loss

    def clean_embedding(self, out: ObjectiveOutput, batch) -> Tensor:
        """The seed nodes' clean-view embedding: the objective's own when it computed one, else a
        forward pass of the unaugmented batch."""
        if out.embedding is not None:
            return out.embedding
        return self.encoder(batch.x, batch.edge_index)[: seed_count(batch)]

    @torch.no_grad()
    def embed(self, data) -> Tensor:
        """``(N, D)`` every node's encoder output, in eval mode, layer by layer."""
        x = data.x.to(self.device)
        edge_index = data.edge_index.to(self.device)
        return self.encoder.full_graph_embedding(x, edge_index, self.inference_chunk_size)

    @torch.no_grad()
    def gmm_input(self, data) -> Tensor:
        """``(N, d)`` every node's embedding as the fitted mixture sees it (float64)."""
        return self.head.gmm_input(self.embed(data))

    def configure_optimizers(self):
        return self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])

    # ------------------------------------------------------------------ checkpoint state
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gnngmm"] = {"head": self.head.state_dict(), "rng": rng_state(), "origin": self.origin}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming training: the head's state and the RNG states, so the run continues exactly."""
        state = checkpoint.get("gnngmm")
        if state is None:
            return
        self.head.load_state_dict(state["head"])
        set_rng_state(state["rng"])


def rng_state() -> dict:
    """torch / numpy / python RNG states as tensors and plain ints, so that checkpoints load with
    ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss": python_gauss},
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
