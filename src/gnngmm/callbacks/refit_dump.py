"""``RefitDump``: every EM refit's partition and a few label-free scores of it, saved for analysis.

Added to any run by config (it changes nothing in the run: its random draws are made in a forked
RNG state with their own seed):

    python train.py data=cora +callbacks.dump._target_=gnngmm.callbacks.refit_dump.RefitDump \\
        "+callbacks.dump.path=\\${paths.output_dir}/refits.pt"

After each epoch that refit the mixture (a new row in ``module.head.history``; ``EMRefit`` runs
first), it records the refit's partition (``argmax`` of the module's responsibilities, int16)
and scores the encoder as it is at that moment:

* ``silhouette``: the partition's cosine silhouette in the mixture's input (every refit, not only
  before the GMM phase as ``gmm/silhouette`` in ``history.csv``);
* ``views_nmi``: NMI between the partitions the mixture gives two augmented views of the whole
  graph (the objective's own drop rates; the same two masks at every refit);
* ``view_nmi``: NMI between the first view's partition and the refit's own;
* ``ssl_loss``: the objective's loss on the whole graph with the same fixed random draws at every
  refit (comparable across epochs).

``path`` receives ``{"epochs": [...], "labels": (R, N) int16, "scores": [dict per refit]}``,
rewritten after every refit. With ``embeddings``, the mixture's input at the refit that opens the
GMM phase (the end of pretraining) and at the last epoch's refit goes to ``<path stem>_z.pt``
(``{epoch: (N, d) float16}``), for readouts tried afterwards. Labels are never read here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

from gnngmm.metrics import nmi_ari
from gnngmm.objectives.base import augmented_view
from gnngmm.quality import silhouette


class RefitDump(Callback):
    """Save every refit's partition and its label-free scores to ``path`` (relative paths: under
    the trainer's ``default_root_dir``). ``views``: also score two augmented views and the
    objective's loss (two and about two more forward passes per refit). ``seed``: the fixed
    seed of those random draws. ``embeddings``: also save the mixture's input at the end of
    pretraining and at the last epoch."""

    def __init__(self, path: str = "refits.pt", views: bool = True, seed: int = 12345, embeddings: bool = True):
        self.path, self.views, self.seed, self.embeddings = path, views, seed, embeddings
        self.saved_z: dict[int, torch.Tensor] = {}
        self._seen = 0
        self.epochs: list[int] = []
        self.labels: list[torch.Tensor] = []
        self.scores: list[dict] = []

    def _file(self, trainer) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else Path(trainer.default_root_dir) / path

    @torch.no_grad()
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        head = pl_module.head
        if len(head.history) == self._seen or head.resp is None:
            return
        self._seen = len(head.history)
        data = trainer.datamodule.data
        pred = head.resp.argmax(1).cpu()
        scores = {"epoch": int(head.history[-1]["epoch"])}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            z = pl_module.gmm_input(data)
            scores["silhouette"] = silhouette(z, pred)
            if self.views:
                scores.update(self._view_scores(pl_module, data, pred))
        epoch = scores["epoch"]
        loss_start = pl_module.gmm_term.start_epoch
        keep_z = self.embeddings and (epoch + 1 == loss_start or epoch + 1 >= (trainer.max_epochs or 0))
        self.epochs.append(scores["epoch"])
        self.labels.append(pred.to(torch.int16))
        self.scores.append(scores)
        if trainer.is_global_zero:
            file = self._file(trainer)
            file.parent.mkdir(parents=True, exist_ok=True)
            record = {"epochs": self.epochs, "labels": torch.stack(self.labels), "scores": self.scores}
            torch.save(record, file.with_suffix(".tmp"))
            file.with_suffix(".tmp").replace(file)
            if keep_z:
                self.saved_z[epoch] = z.to(torch.float16).cpu()
                z_file = file.with_name(file.stem + "_z.pt")
                torch.save(self.saved_z, z_file.with_suffix(".tmp"))
                z_file.with_suffix(".tmp").replace(z_file)

    def _view_scores(self, pl_module, data, pred: torch.Tensor) -> dict:
        """Two augmented views' partitions under the mixture, and the objective's loss."""
        objective, encoder = pl_module.objective, pl_module.encoder
        out = {}
        drop_edge = getattr(objective, "drop_edge", None)
        if drop_edge is not None:
            drop_feature = getattr(objective, "drop_feature", (0.0, 0.0))
            batch = data.to(pl_module.device)
            parts = [
                pl_module.head.responsibilities(augmented_view(encoder, batch, pe, pf)).argmax(1).cpu()
                for pe, pf in zip(drop_edge[:2], drop_feature[:2])
            ]
            out["views_nmi"] = nmi_ari(parts[0], parts[1])[0]
            out["view_nmi"] = nmi_ari(parts[0], pred)[0]
        if objective is not None:
            out["ssl_loss"] = float(objective(encoder, data.to(pl_module.device)).loss)
        return out
