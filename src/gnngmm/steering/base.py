"""The steering interface: how the mixture's responsibilities enter the training step.

The GMM term (``loss``) pulls embeddings toward their components but tells the self-supervised
objective nothing. A steering strategy feeds the mixture back into the step, either as
:class:`~gnngmm.objectives.base.Guidance` the objective reads (pair weights, per-edge drop rates)
or as an extra loss term. The mixture and the embedding transform stay fixed during a step (EM
refits them at epoch ends), so every term is differentiable in the embeddings only.

The module calls one hook per step, :meth:`Steering.step`; a new strategy subclasses
:class:`Steering`, overrides :meth:`guidance` and/or :meth:`term`, and is chosen by a YAML file
in ``conf/steer/`` whose ``_target_`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from gnngmm.errors import InputError
from gnngmm.objectives.base import Guidance, ObjectiveOutput


@dataclass
class SteerStep:
    """One step's objective output and the strategy's extra loss term (None: no term)."""

    output: ObjectiveOutput
    term: Tensor | None = None


class Steering:
    """No steering; the base class of every strategy.

    Args:
        weight (float): weight of the strategy's term in the loss. (default: ``1.0``)
        start_epoch (int, optional): first epoch the strategy acts; None: while the GMM term is
            on. (default: ``None``)
    """

    #: the :class:`Guidance` field the strategy passes to the objective (checked at build time)
    needs: str | None = None
    #: the strategy needs every node's responsibilities in each step (whole-graph batches)
    needs_full_batch: bool = False

    def __init__(self, weight: float = 1.0, start_epoch: int | None = None):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise InputError(f"steer.weight={weight!r} is not a number >= 0")
        if start_epoch is not None and (isinstance(start_epoch, bool) or not isinstance(start_epoch, int)):
            raise InputError(f"steer.start_epoch={start_epoch!r} is not null or an epoch (an integer)")
        self.weight = float(weight)
        self.start_epoch = start_epoch

    @property
    def name(self) -> str:
        return type(self).__name__

    def check(self, objective, loader: str) -> None:
        """Raise :class:`~gnngmm.errors.InputError` when the strategy cannot steer ``objective``
        on batches of ``loader`` (called once, before training)."""
        if self.needs is not None and objective is not None and self.needs not in getattr(objective, "accepts", ()):
            raise InputError(
                f"steer={self.name} passes `{self.needs}` to the objective: {type(objective).__name__} does not "
                "read it; use objective=ns4gc, or steer=contrast|self_training|dilation"
            )
        if self.needs_full_batch and loader != "full":
            raise InputError(
                f"steer={self.name} needs every node's responsibilities in each step: data.loader={loader} is not "
                "full; use data.loader=full or another steer"
            )

    def active(self, module) -> bool:
        """Whether the strategy acts in the module's current epoch."""
        if type(self) is Steering:  # steer=none
            return False
        if self.start_epoch is None:
            return module.gmm_term.active(module.current_epoch, module.head)
        return module.head.is_fitted and module.current_epoch >= self.start_epoch

    def step(self, module, batch) -> SteerStep:
        """The module's hook: run the objective on ``batch`` (with this strategy's guidance while
        it is active) and return its output with the strategy's term."""
        active = self.active(module)
        guidance = self.guidance(module, batch) if active else None
        output = module.objective(module.encoder, batch, guidance)
        return SteerStep(output, self.term(module, batch, output) if active else None)

    def guidance(self, module, batch) -> Guidance | None:
        """What the objective is given while the strategy is active (None: nothing)."""
        return None

    def term(self, module, batch, output: ObjectiveOutput) -> Tensor | None:
        """The strategy's loss term, already weighted (None: no term)."""
        return None

    def __repr__(self) -> str:
        return f"{self.name}(weight={self.weight}, start_epoch={self.start_epoch})"
