"""``steer=false_negatives``: the objective weights each pair of its sparsity term by the
probability that the two nodes lie in different components (``1 - <r_i, r_j>``): pairs the
mixture confidently puts in one component are no longer pushed apart."""

from __future__ import annotations

from gnngmm.objectives.base import Guidance
from gnngmm.steering.base import Steering


class FalseNegatives(Steering):
    """Passes the head's responsibility map to the objective (``Guidance.assign``)."""

    needs = "assign"

    def guidance(self, module, batch) -> Guidance:
        return Guidance(assign=module.head.responsibilities)
