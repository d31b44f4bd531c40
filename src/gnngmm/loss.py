"""The GMM term of the training loss (``conf/loss``): ``weight * [sigma^2] * NLL`` of the step's
embeddings under the fixed mixture, during the last epochs of training.

The mixture and the transform are constants during a step (EM refits them at epoch ends), so
the term can only move embeddings toward the current components, never shrink a covariance:
maximising the likelihood by gradient would collapse the embedding (det Sigma -> 0).
"""

from __future__ import annotations

from torch import Tensor

from gnngmm.errors import InputError

LOSS_EMBEDDINGS = ("views", "clean")


class GMMTerm:
    """The GMM term.

    Args:
        weight (float): its weight; 0 turns it off. (default: ``3.0``)
        start_epoch (int): the first epoch it is on. (default: ``0``)
        scale_free (bool): multiply by the mixture's mean variance ``sigma^2`` (in the encoder's
            units), so the pull does not depend on the embedding's scale
            (``NLL ~ d^2 / (2 sigma^2)``). (default: ``True``)
        embedding (str): ``"views"`` (the mean NLL of the objective's augmented views, or the clean
            embedding when it has none) or ``"clean"`` (the clean embedding). (default: ``"views"``)
    """

    def __init__(self, weight: float = 3.0, start_epoch: int = 0, scale_free: bool = True, embedding: str = "views"):
        if embedding not in LOSS_EMBEDDINGS:
            raise InputError(f"loss.embedding={embedding!r} is not one of {', '.join(LOSS_EMBEDDINGS)}")
        self.weight = float(weight)
        self.start_epoch = int(start_epoch)
        self.scale_free = bool(scale_free)
        self.embedding = embedding

    @classmethod
    def from_settings(cls, settings: dict, max_epochs: int) -> GMMTerm:
        """The term ``conf/loss``'s settings describe (``weight``, ``finetune_epochs``,
        ``start_epoch``, ``scale_free``, ``embedding``): it starts at ``start_epoch``, or
        ``finetune_epochs`` before the end of ``max_epochs`` (at least epoch 1)."""
        start = settings.get("start_epoch")
        if start is None:
            start = max(1, int(max_epochs) - int(settings["finetune_epochs"]))
        return cls(settings["weight"], int(start), settings["scale_free"], settings["embedding"])

    @property
    def starts_at(self) -> int | None:
        """The first epoch the term is on; None when it never is (``weight=0``)."""
        return self.start_epoch if self.weight > 0 else None

    def active(self, epoch: int, head) -> bool:
        """Whether the term is on in ``epoch`` (a fitted head is needed)."""
        return self.weight > 0 and head.is_fitted and epoch >= self.start_epoch

    def __call__(self, head, embeddings: tuple[Tensor, ...], dtype) -> tuple[Tensor, Tensor]:
        """``(term, nll)``: the weighted term (in ``dtype``) and the mean NLL of ``embeddings``
        (encoder outputs ``(n, D)`` each) under ``head``."""
        nll = sum(head.nll(e) for e in embeddings) / len(embeddings)
        scale = head.variance_scale() if self.scale_free else 1.0
        return self.weight * scale * nll.to(dtype), nll

    def __repr__(self) -> str:
        return (
            f"GMMTerm(weight={self.weight}, start_epoch={self.start_epoch}, scale_free={self.scale_free}, "
            f"embedding={self.embedding!r})"
        )
