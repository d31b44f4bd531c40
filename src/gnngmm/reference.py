"""The training-free reference a run is judged against (``conf/reference``).

A trained encoder can end below a method that trains nothing: on graphs whose classes are unions
of denser communities it learns the communities, and every label-free number computed in its own
embedding (silhouette, the mixture's likelihood, the input graph's modularity) rises or holds while
the clusters drift away from the classes (docs/experiments.md, "Clusters that travel"). So after
the final refit the run computes a training-free partition of the same graph, MS2CAG
(:mod:`gnngmm.baselines.ms2cag`, seconds on graphs up to ~10^5 nodes), and compares the two on two
yardsticks that training cannot move:

* **attributed modularity**: MS2CAG's own objective, the modularity of the cosine affinity of the
  multi-scale propagated features (fixed by the graph and its features alone);
* **graph modularity**: Newman's modularity on the input graph.

The trained partition is kept when it scores at least the reference's attributed modularity and
no more than ``margin`` under its graph modularity; otherwise the run adopts the reference's
partition (the mixture is refit to it: component ``j`` is the Gaussian, in the trained embedding,
of the nodes MS2CAG put in cluster ``j``). Both rules, the yardsticks and ``margin`` were chosen on
the planted bank and the four development graphs (docs/experiments.md). The decision, both
partitions' scores and their agreement go to ``metrics.json`` (``reference``) and a logged line;
``reference=none`` turns it off, ``reference.adopt=false`` reports without changing anything.
Labels are never read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from gnngmm.errors import InputError
from gnngmm.quality import modularity

log = logging.getLogger("gnngmm")


@dataclass
class ReferenceCheck:
    """What the comparison found.

    Attributes:
        decision: ``"trained"`` (kept), ``"reference"`` (adopted), ``"reported"`` (the reference
            won but ``adopt=False``) or ``"skipped"`` (the graph is over ``max_edges``).
        reason: one line saying why.
        scores: ``attributed_modularity`` and ``modularity`` of each partition (``trained_*``,
            ``reference_*``), ``agreement_nmi`` between them, ``seconds``.
        labels: the reference's ``(N,)`` partition (``None`` when skipped).
    """

    decision: str
    reason: str
    scores: dict = field(default_factory=dict)
    labels: Tensor | None = None

    def summary(self) -> dict:
        """The JSON-ready record (no labels)."""
        out = asdict(self)
        out.pop("labels")
        return out


class TrainingFreeReference:
    """MS2CAG as the yardstick of a trained partition.

    Args:
        hops (int): MS2CAG's propagation depth ``T``. (default: ``10``)
        alpha (float): its hop-weight ratio. (default: ``0.9``)
        gamma (float): its modularity resolution, in ``[0, 1]``. (default: ``0.9``)
        margin (float): how far under the reference's graph modularity the trained partition may
            be and still be kept. (default: ``0.02``)
        adopt (bool): adopt the reference's partition when it wins (else only report). (default: ``True``)
        max_edges (int): graphs with more undirected edges are skipped, with a logged line (MS2CAG's
            cost grows with edges x features). (default: ``5_000_000``)
    """

    def __init__(
        self,
        hops: int = 10,
        alpha: float = 0.9,
        gamma: float = 0.9,
        margin: float = 0.02,
        adopt: bool = True,
        max_edges: int = 5_000_000,
    ):
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
            raise InputError(f"reference.margin={margin!r} is not a modularity difference in [0, 1)")
        if not 0 <= gamma <= 1:
            raise InputError(f"reference.gamma={gamma!r} is not in [0, 1]")
        self.hops, self.alpha, self.gamma = int(hops), float(alpha), float(gamma)
        self.margin, self.adopt, self.max_edges = float(margin), bool(adopt), int(max_edges)

    def check(self, x: Tensor, edge_index: Tensor, trained: Tensor, seed: int = 0) -> ReferenceCheck:
        """Compare the trained partition ``trained`` ``(N,)`` of the graph ``(x, edge_index)``
        with MS2CAG's partition into as many clusters (seeded by ``seed``)."""
        from gnngmm.baselines.ms2cag import SmoothedGram, ms2cag_labels
        from gnngmm.metrics import nmi_ari

        edges = int(edge_index.shape[1] // 2)
        if edges > self.max_edges:
            return ReferenceCheck(
                "skipped", f"{edges:,} edges > reference.max_edges={self.max_edges:,}: no reference computed"
            )
        start = time.perf_counter()
        trained = torch.as_tensor(trained).long().cpu()
        k = int(trained.max()) + 1
        n = trained.numel()
        if k >= n:
            return ReferenceCheck("skipped", f"k={k} is not under the {n} nodes MS2CAG needs")
        gram = SmoothedGram(x, edge_index, self.hops, self.alpha)
        reference = ms2cag_labels(
            x, edge_index, k, seed=seed, hops=self.hops, alpha=self.alpha, gamma=self.gamma, gram=gram
        )
        scores = {
            "trained_attributed_modularity": gram.modularity(trained, self.gamma),
            "reference_attributed_modularity": gram.modularity(reference, self.gamma),
            "trained_modularity": modularity(edge_index, trained, n),
            "reference_modularity": modularity(edge_index, reference, n),
            "agreement_nmi": nmi_ari(trained, reference)[0],
        }
        scores = {key: round(value, 6) for key, value in scores.items()}
        scores["seconds"] = round(time.perf_counter() - start, 3)
        loses = []
        if scores["trained_attributed_modularity"] < scores["reference_attributed_modularity"]:
            loses.append(
                "attributed modularity {trained_attributed_modularity:.4f} < {reference_attributed_modularity:.4f}"
            )
        if scores["trained_modularity"] < scores["reference_modularity"] - self.margin:
            loses.append("graph modularity {trained_modularity:.4f} < {reference_modularity:.4f} - margin")
        if not loses:
            return ReferenceCheck("trained", "the trained partition holds both yardsticks", scores, reference)
        reason = "the trained partition loses on " + " and ".join(loses).format(**scores)
        return ReferenceCheck("reference" if self.adopt else "reported", reason, scores, reference)

    def __repr__(self) -> str:
        return (
            f"TrainingFreeReference(hops={self.hops}, alpha={self.alpha}, gamma={self.gamma}, "
            f"margin={self.margin}, adopt={self.adopt}, max_edges={self.max_edges})"
        )


def log_check(check: ReferenceCheck) -> None:
    """One logged line for the decision."""
    s = check.scores
    if check.decision == "skipped":
        log.info("reference: skipped (%s)", check.reason)
        return
    agreement = f"NMI with the reference {s['agreement_nmi']:.3f}; {s['seconds']:.1f} s"
    if check.decision == "trained":
        log.info("reference: kept the trained partition (%s; %s)", check.reason, agreement)
    elif check.decision == "reference":
        log.warning(
            "reference: adopted MS2CAG's training-free partition: %s (%s; reference=none turns this off)",
            check.reason,
            agreement,
        )
    else:
        log.warning("reference: %s; kept it as reference.adopt=false asks (%s)", check.reason, agreement)
