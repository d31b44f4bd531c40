"""``safeguard.silhouette``: start the GMM phase from the best pretraining encoder when the
partition's silhouette in the embedding fell.

Modularity does not see every decline: clusters can blur in the embedding while their agreement
with the graph still improves. Each refit before the GMM term starts scores its partition's
silhouette in the embedding (cosine, a fixed sample of nodes). When the refit that opens the GMM
phase is more than ``tolerance`` (relative) below the best of them, the phase starts from the best
one's encoder instead (the mixture refit fresh on it), with a logged line. It does nothing in a run
without a GMM term.
"""

from __future__ import annotations

import logging

from gnngmm.head import HeadResult
from gnngmm.quality import silhouette
from gnngmm.safeguards.base import Safeguard, encoder_copy

log = logging.getLogger("gnngmm")


class KeepBestSilhouette(Safeguard):
    """Args:
    tolerance (float): the relative drop below the best pretraining refit that goes back to it.
        (default: ``0.25``)
    sample (int): nodes the silhouette is computed on (the same ones at every refit).
        (default: ``2000``)
    """

    def __init__(self, tolerance: float = 0.25, sample: int = 2000):
        super().__init__(tolerance)
        self.sample = int(sample)
        self._best: dict | None = None  # silhouette, epoch and encoder of the best pretraining refit, until judged

    def review(self, trainer, module, result: HeadResult) -> HeadResult:
        start = module.gmm_term.starts_at
        epoch = trainer.current_epoch
        if start is None or epoch + 1 > start:
            return result
        score = silhouette(result.z, result.pred, self.sample)
        if epoch + 1 < start:
            if self._best is None or score > self._best["silhouette"]:
                self._best = {"silhouette": score, "epoch": epoch, "encoder": encoder_copy(module)}
        else:  # the refit that opens the GMM phase
            if self._fell(score, epoch):
                best = self._best
                module.encoder.load_state_dict(best["encoder"])
                result = module.head.refit(module.embed(trainer.datamodule.data), fresh=True)
                result.restored_from = epoch
                score = silhouette(result.z, result.pred, self.sample)
                module.head.note_restored(best["epoch"])
            self._best = None  # judged: no encoder copy kept in memory and checkpoints from here on
        result.metrics["gmm/silhouette"] = score
        return result

    def _fell(self, score: float, epoch: int) -> bool:
        best = self._best
        if best is None or score >= best["silhouette"] - self.tolerance * abs(best["silhouette"]):
            return False
        log.warning(
            "safeguard: the partition's silhouette fell from %.4f (epoch %d) to %.4f (epoch %d) before the GMM "
            "phase, more than %.0f%%: the phase starts from epoch %d's encoder (~safeguard.silhouette turns this "
            "off)",
            best["silhouette"],
            best["epoch"],
            score,
            epoch,
            100 * self.tolerance,
            best["epoch"],
        )
        return True

    def state_dict(self) -> dict:
        return {"best": self._best}

    def load_state_dict(self, state: dict) -> None:
        self._best = state.get("best")
