"""``safeguard.modularity``: keep the best refit by the partition's modularity on the input graph.

Every refit's partition is scored by modularity (label-free, and comparable across epochs because
the graph never changes). The safeguard keeps the encoder and head of the best-scoring refit; when
training ends more than ``tolerance`` (relative) below that best, the run goes on from the best
refit's state instead of the last one, with a logged line. It stands aside when even the best
refit scores under ``min_modularity``: such partitions barely follow the graph, and a relative
fall between two numbers near zero is noise.
"""

from __future__ import annotations

import logging

from gnngmm.head import HeadResult
from gnngmm.safeguards.base import Safeguard, encoder_copy

log = logging.getLogger("gnngmm")


class KeepBestModularity(Safeguard):
    """Args:
    tolerance (float): the relative drop below the best refit that restores it. (default: ``0.05``)
    min_modularity (float): the best modularity under which the safeguard stands aside.
        (default: ``0.1``)
    """

    def __init__(self, tolerance: float = 0.05, min_modularity: float = 0.1):
        super().__init__(tolerance)
        self.min_modularity = float(min_modularity)
        self._best: dict | None = None  # modularity, epoch, encoder and head snapshot of the best refit
        self._last: tuple[int, float] | None = None  # (epoch, modularity) of the last refit

    def observe(self, trainer, module, result: HeadResult, row: dict) -> None:
        if result.restored_from is not None:  # another safeguard went back: judge the run from here on
            self._best = None
        score = row["gmm/modularity"]
        self._last = (row["epoch"], score)
        if self._best is None or score > self._best["modularity"]:
            self._best = {
                "modularity": score,
                "epoch": row["epoch"],
                "encoder": encoder_copy(module),
                "head": module.head.snapshot(),
            }

    def at_end(self, trainer, module) -> None:
        """At the end of a finished run: restore the best refit when the last one fell too far."""
        if self._best is None or self._last is None:
            return
        epoch, score = self._last
        best = self._best
        if epoch + 1 < (trainer.max_epochs or 0) or best["modularity"] < self.min_modularity:
            return
        if score >= best["modularity"] * (1 - self.tolerance):
            return
        log.warning(
            "safeguard: the partition's modularity fell from %.4f (epoch %d) to %.4f (epoch %d), more than %.0f%%: "
            "continuing from epoch %d's encoder and mixture (~safeguard.modularity turns this off)",
            best["modularity"],
            best["epoch"],
            score,
            epoch,
            100 * self.tolerance,
            best["epoch"],
        )
        module.encoder.load_state_dict(best["encoder"])
        module.head.restore(best["head"], module.embed(trainer.datamodule.data), best["epoch"])

    def state_dict(self) -> dict:
        return {"best": self._best, "last": self._last}

    def load_state_dict(self, state: dict) -> None:
        self._best, self._last = state.get("best"), state.get("last")
