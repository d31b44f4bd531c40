"""The LightningModule: encoder + self-supervised objective + GMM head (refit by EM, not by SGD).

Loss of a training step: ``objective(z) + gmm_loss_weight * [sigma^2] * NLL_gmm(transform(z))``
where the GMM and the transform are constants (refit at the previous epoch end by
:func:`gnngmm.head.refit`). Their state, the warm-start responsibilities and the RNG states go
into every checkpoint, so a resumed run continues exactly where it stopped. Users fit models
through :class:`gnngmm.GNNGMM`, which builds this module.
"""

from __future__ import annotations

import inspect
import random
from functools import partial

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from gnngmm.embedding import EmbeddingTransform
from gnngmm.mixture import GaussianMixture
from gnngmm.objectives.base import Objective, seed_count
from gnngmm.steering import component_contrast, component_dilation, edge_drop_scale, responsibilities, self_training


class GNNGMMModule(L.LightningModule):
    """Encoder + objective + fixed-GMM loss term. Defaults are the default experiment's
    (``conf/gmm/default.yaml``: weight 3, scale-free, on the augmented views)."""

    def __init__(
        self,
        encoder: nn.Module,
        objective: Objective | None,
        gmm: GaussianMixture,
        transform: EmbeddingTransform,
        optimizer=None,
        gmm_loss_weight: float = 3.0,
        gmm_loss_start_epoch: int = 0,
        gmm_loss_scale_free: bool = True,
        gmm_loss_on: str = "views",
        inference_chunk_size: int = 65536,
        num_features: int | None = None,
        seed: int = 0,
        steer: str = "none",
        steer_weight: float = 1.0,
        steer_start_epoch: int | None = None,
    ):
        super().__init__()
        self.encoder = encoder
        self.objective = objective
        self.gmm = gmm
        self.transform = transform
        self.optimizer_factory = optimizer or partial(torch.optim.Adam, lr=1e-3)
        self.gmm_loss_weight = gmm_loss_weight
        self.gmm_loss_start_epoch = gmm_loss_start_epoch
        # scale_free: weight * sigma^2 * NLL, sigma^2 the mixture's mean variance, so the pull toward
        # the components does not depend on the embedding's scale (NLL ~ d^2 / (2 sigma^2)).
        self.gmm_loss_scale_free = gmm_loss_scale_free
        if gmm_loss_on not in ("clean", "views"):
            from gnngmm.errors import InputError

            raise InputError(f"gmm.loss_on={gmm_loss_on!r} is not one of clean, views")
        self.gmm_loss_on = gmm_loss_on  # the clean embedding, or the mean over the augmented views
        # gmm.steer's value is checked with the other settings (GNNGMM._check_params); this
        # check needs the built objective
        needs = {"false_negatives": ("assign", "reweights NS4GC's negatives"),
                 "augment": ("edge_scale", "scales NS4GC's edge dropping")}.get(steer)
        if needs and objective is not None and needs[0] not in inspect.signature(objective.forward).parameters:
            from gnngmm.errors import InputError

            raise InputError(
                f"gmm.steer={steer} {needs[1]}: {type(objective).__name__} does not take it; "
                "use objective=ns4gc, or gmm.steer=contrast|self_training"
            )
        self._edge_scale: tuple | None = None  # (resp, edge_index, factors) for gmm.steer=augment
        self.steer, self.steer_weight = steer, steer_weight  # how the head steers the objective (gnngmm.steering)
        self.steer_start_epoch = steer_start_epoch  # None: with the GMM term
        self.inference_chunk_size = inference_chunk_size
        self.num_features = num_features  # input width, saved so that a checkpoint rebuilds the encoder
        self.seed = seed  # under DDP, each rank's augmentations are drawn from (seed, epoch, rank)
        self.resp: Tensor | None = None  # this rank's responsibilities at the last refit
        self.history: list[dict] = []  # one row per refit: epoch, log-likelihood, BIC, (metrics)
        self.run_config: dict | None = None  # the resolved run config, saved for predict.py
        self.bic_table: list[dict] | None = None  # the last K selection by BIC (gmm.k=auto)
        self.restored_epoch: int | None = None  # the refit the safeguard went back to (gmm.keep_best)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.encoder(x, edge_index)

    def gmm_term_active(self) -> bool:
        return (
            self.gmm_loss_weight > 0
            and self.gmm.is_fitted
            and self.transform.is_fitted
            and self.current_epoch >= self.gmm_loss_start_epoch
        )

    def on_train_epoch_start(self) -> None:
        if self.trainer.world_size > 1:  # one seed on every rank would draw the same augmentations
            torch.manual_seed(self.seed * 1_000_003 + self.current_epoch * 1_009 + self.global_rank)

    def assign(self, h: Tensor) -> Tensor:
        """``(n, K)`` responsibilities of the fixed mixture for encoder outputs ``h``."""
        self.gmm.to(self.device)
        return responsibilities(self.gmm, self.transform, h)

    def edge_scale(self, batch) -> Tensor:
        """Per-edge factors on the views' drop rate from the last refit's responsibilities (held
        fixed until the next refit)."""
        if self.resp is None or self.resp.shape[0] != batch.num_nodes:
            from gnngmm.errors import InputError

            raise InputError("gmm.steer=augment needs every node's responsibilities in each step: use data.loader=full")
        cached = self._edge_scale
        if cached is None or cached[0] is not self.resp or cached[1] is not batch.edge_index:
            scale = edge_drop_scale(self.resp.to(batch.edge_index.device), batch.edge_index, self.steer_weight)
            self._edge_scale = cached = (self.resp, batch.edge_index, scale)
        return cached[2]

    def steer_active(self) -> bool:
        if self.steer == "none":
            return False
        if self.steer_start_epoch is None:
            return self.gmm_term_active()
        return self.gmm.is_fitted and self.transform.is_fitted and self.current_epoch >= self.steer_start_epoch

    def training_step(self, batch, batch_idx: int) -> Tensor:
        active, steering = self.gmm_term_active(), self.steer_active()
        if steering and self.steer == "false_negatives":
            out = self.objective(self.encoder, batch, assign=self.assign)
        elif steering and self.steer == "augment":
            out = self.objective(self.encoder, batch, edge_scale=self.edge_scale(batch))
        else:
            out = self.objective(self.encoder, batch)
        loss = out.loss
        self.log("train/ssl_loss", out.loss, on_step=False, on_epoch=True, batch_size=1)
        if steering and self.steer in ("contrast", "self_training") and len(out.views) >= 2:
            r1, r2 = (self.assign(v) for v in out.views[:2])
            term = component_contrast(r1, r2) if self.steer == "contrast" else self_training(r1, r2)
            loss = loss + self.steer_weight * term.to(loss.dtype)
            self.log("train/steer", term, on_step=False, on_epoch=True, batch_size=1)
        if steering and self.steer == "dilation":
            views = out.views or (self.clean_embedding(out, batch),)
            with torch.no_grad():  # the responsibilities are held fixed
                resp = [self.assign(v) for v in views]
            term = sum(component_dilation(self.transform(v), r) for v, r in zip(views, resp)) / len(views)
            loss = loss + self.steer_weight * term.to(loss.dtype)
            self.log("train/steer", term, on_step=False, on_epoch=True, batch_size=1)
        if active:
            self.gmm.to(self.device)
            if self.gmm_loss_on == "views" and out.views:
                embeddings = out.views
            else:
                embeddings = (self.clean_embedding(out, batch),)
            nll = sum(-self.gmm.score_samples(self.transform(e)).mean() for e in embeddings) / len(embeddings)
            # sigma^2 in the encoder's units: the transform's division by the spread leaves the pull as it was
            scale = self.gmm.mean_variance() * self.transform.variance_factor if self.gmm_loss_scale_free else 1.0
            loss = loss + self.gmm_loss_weight * scale * nll.to(loss.dtype)
            self.log("train/gmm_nll", nll, on_step=False, on_epoch=True, batch_size=1)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=1)
        return loss

    def clean_embedding(self, out, batch) -> Tensor:
        """The seed nodes' clean-view embedding: the objective's own when it computed one, else a
        forward pass of the unaugmented batch."""
        if out.embedding is not None:
            return out.embedding
        return self.encoder(batch.x, batch.edge_index)[: seed_count(batch)]

    @torch.no_grad()
    def embed(self, data) -> Tensor:
        """Every node's encoder output, in eval mode, layer by layer (no per-edge tensors)."""
        x = data.x.to(self.device)
        edge_index = data.edge_index.to(self.device)
        return self.encoder.full_graph_embedding(x, edge_index, self.inference_chunk_size)

    @torch.no_grad()
    def gmm_input(self, data) -> Tensor:
        """Every node's embedding as the fitted GMM sees it (float64, after the transform)."""
        return self.transform.transform_rows(self.embed(data))

    def configure_optimizers(self):
        return self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])

    # ------------------------------------------------------------------ checkpoint state
    def head_state(self) -> dict:
        """The GMM head's state (mixture, transform, warm-start responsibilities, history, the
        run's config and input width): what a checkpoint adds to the encoder's weights."""
        return {
            "gmm": self.gmm.state_dict() if self.gmm.is_fitted else None,
            "transform": self.transform.state_dict() if self.transform.is_fitted else None,
            "resp": None if self.resp is None else self.resp.cpu(),
            "history": self.history,
            "bic_table": self.bic_table,
            "config": self.run_config,
            "num_features": self.num_features,
        }

    def load_head_state(self, state: dict) -> None:
        if state["gmm"] is not None:
            self.gmm.load_state_dict(state["gmm"])
        if state["transform"] is not None:
            self.transform.load_state_dict(state["transform"])
        self.resp = state["resp"]
        self.history = list(state["history"])
        self.bic_table = state.get("bic_table")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gnngmm"] = {**self.head_state(), "rng": rng_state()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resuming training: the head's state, and the RNG states, so the run continues exactly."""
        state = checkpoint.get("gnngmm")
        if state is None:
            return
        self.load_head_state(state)
        set_rng_state(state["rng"])


def rng_state() -> dict:
    """torch / numpy / python RNG states as tensors and plain ints, so that checkpoints load with
    ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
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
