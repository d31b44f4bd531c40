"""Will a full-batch training step fit? An estimate made before the model is built, and the decision.

A full-batch step of GAT on a graph with 10^8 edges keeps, per layer and augmented view, an
``edges x heads x channels`` message tensor for the backward pass, far beyond one GPU. The
estimator (``GNNGMM.fit``) therefore calls :func:`guard_full_batch` right after the data module's
``setup``, before the model is built: with ``data.loader=full`` it
estimates the step's peak memory (:func:`estimate_full_batch_bytes`) and compares it with the
memory free on the device the trainer will use. When it does not fit, ``data.full_batch_guard``
decides: ``auto`` (default) switches to ``data.loader=neighbor`` and logs the numbers, ``error``
stops with an :class:`~gnngmm.errors.InputError` naming the override, ``off`` trusts the user.

The estimate counts the tensors that scale with the graph (per-edge and per-node, per view and
layer, plus the objective's pairwise terms) from the shapes the code builds; it ignores
allocator slack and anything of constant size, so it is a lower bound of the order of magnitude
(its accuracy on planted graphs: docs/scaling.md). Pure functions of plain numbers: no config
object, no model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from gnngmm.errors import InputError

log = logging.getLogger(__name__)

GUARDS = ("auto", "error", "off")
FLOAT = 4  # bytes of a float32
INDEX = 8  # bytes of an int64 index


@dataclass
class MemoryEstimate:
    """Bytes of a full-batch training step, by part."""

    parts: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return float(sum(self.parts.values()))

    def describe(self) -> str:
        top = sorted(self.parts.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{name} {gib(value)}" for name, value in top if value >= 0.01 * self.total)


def gib(value: float) -> str:
    return f"{value / 2**30:.1f} GiB" if value >= 2**30 / 10 else f"{value / 2**20:.0f} MiB"


def objective_kind(target: str | None) -> str:
    """``gnngmm.objectives.NS4GC`` -> ``ns4gc`` (None: no objective)."""
    return (target or "none").rsplit(".", 1)[-1].lower()


def estimate_full_batch_bytes(
    num_nodes: int,
    num_edges: int,
    num_features: int,
    *,
    arch: str = "gcn",
    hidden_channels: int = 256,
    out_channels: int = 64,
    num_layers: int = 2,
    heads: int = 1,
    objective: str = "ns4gc",
    negatives: int | None = None,
    max_nodes: int | None = None,
    views: int = 2,
    on_device: bool = False,
) -> MemoryEstimate:
    """Peak bytes of one full-batch step (forward and backward) of ``arch`` under ``objective``.

    ``num_edges`` is the directed count (``edge_index.shape[1]``). ``negatives``: NS4GC's block
    side (None: all ``N x N`` pairs; resolve it with :func:`gnngmm.objectives.ns4gc.negatives`).
    ``max_nodes``: GRACE's node sample. ``on_device``: the graph must also be copied to the
    device (GPU); on the CPU it is already resident. Per part:

    * ``graph``: ``x`` and ``edge_index`` (only when ``on_device``);
    * ``structure``: what the encoder builds from the edges once per step or per view (GCN: the
      CSR structure with self-loops and its per-view weights; SAGE: the masked edge list and its
      CSR; GAT: the masked edge list with self-loops);
    * ``messages``: GAT's per-edge tensors per layer and view (``edges x heads x channels`` for
      the gathered inputs and the weighted messages, ``edges x heads`` for the attention scores);
    * ``activations``: per-node hidden states kept for the backward pass;
    * ``pairwise``: the objective's pair terms (NS4GC's ``N x N`` or ``neg x neg`` similarities and
      its per-edge similarities, GRACE's ``n x n`` blocks, GAE's per-edge gathers).
    """
    n, e, f = int(num_nodes), int(num_edges), int(num_features)
    arch = arch.lower()
    width = [hidden_channels] * (num_layers - 1) + [out_channels]
    parts: dict[str, float] = {}
    if on_device:
        parts["graph"] = n * f * FLOAT + e * 2 * INDEX
    parts.update(_encoder_bytes(arch, n, e, hidden_channels, out_channels, num_layers, heads, views))
    if arch != "gcn":
        parts["input"] = views * n * f * FLOAT  # the feature-masked copy of x per view
    parts["activations"] = views * n * sum(width) * 3 * FLOAT
    parts["pairwise"] = _pairwise_bytes(objective_kind(objective), n, e, out_channels, negatives, max_nodes)
    return MemoryEstimate({k: float(v) for k, v in parts.items() if v})


def _encoder_bytes(arch: str, n: int, e: int, hidden: int, out: int, layers: int, heads: int, views: int) -> dict:
    """``structure`` (and GAT's ``messages``) bytes of :func:`estimate_full_batch_bytes`."""
    loops = e + n  # edges with one self-loop per node
    if arch == "gcn":
        # src, dst, position (int64) and crow, kept; per view: keep mask, degree, weights
        return {"structure": loops * 3 * INDEX + views * loops * 3 * FLOAT}
    if arch == "sage":
        # per view: the masked edge list (int64 pairs) and its CSR (int64 columns, float values)
        return {"structure": views * e * (2 * INDEX + INDEX + FLOAT)}
    if arch == "gat":
        # hidden layers: heads x (hidden / heads) channels per edge; the last: heads x out (averaged)
        channels = [hidden] * (layers - 1) + [heads * out]
        return {
            "structure": views * loops * 2 * INDEX,
            "messages": views * sum(loops * (2 * c + 5 * heads) * FLOAT for c in channels),
        }
    if arch in ("mlp", "sgc"):
        return {"structure": 0.0}
    raise InputError(f"memory estimate: unknown encoder arch {arch!r}")


def _pairwise_bytes(kind: str, n: int, e: int, out: int, negatives: int | None, max_nodes: int | None) -> float:
    """The objective's ``pairwise`` bytes of :func:`estimate_full_batch_bytes`."""
    if kind == "ns4gc":
        adjacency = e * (INDEX + FLOAT) + e * 3 * INDEX  # 0/1 adjacency as CSR, and its coalesce
        if negatives is None:  # all pairs: N x N similarities and sigmoids kept, per-edge gathers
            return adjacency + n * n * 2 * FLOAT + e * out * 2 * FLOAT
        return adjacency + negatives * negatives * 3 * FLOAT
    if kind == "grace":
        m = min(n, max_nodes or n)
        return m * m * 4 * FLOAT
    if kind == "gae":
        return e * out * 4 * FLOAT + e * 4 * INDEX
    return 0.0


def available_bytes(device: str = "cpu") -> float:
    """Free memory of ``device``: CUDA's free bytes, or the kernel's MemAvailable on the CPU."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return float(torch.cuda.mem_get_info(index)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def training_device(accelerator: str | None) -> str:
    """The device a ``lightning.Trainer(accelerator=...)`` will train on: cuda or cpu."""
    import torch

    accelerator = (accelerator or "auto").lower()
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


def check_full_batch(
    estimate: MemoryEstimate,
    available: float,
    *,
    policy: str = "auto",
    fraction: float = 0.8,
    what: str = "",
    device: str = "cpu",
) -> str:
    """``full`` when ``estimate`` fits in ``fraction`` of ``available`` bytes; otherwise, by
    ``policy``: ``auto`` -> ``neighbor`` (logged with the numbers), ``error`` -> InputError
    naming the override, ``off`` -> ``full`` regardless."""
    if policy not in GUARDS:
        raise InputError(f"data.full_batch_guard={policy!r} is not one of {', '.join(GUARDS)}")
    budget = fraction * available
    if policy == "off" or estimate.total <= budget:
        return "full"
    numbers = (
        f"a full-batch step of {what} needs about {gib(estimate.total)} ({estimate.describe()}), "
        f"more than {fraction:.0%} of the {gib(available)} free on {device}"
    )
    if policy == "error":
        raise InputError(
            f"{numbers}. Use data.loader=neighbor (sampled neighbourhoods; data.batch_size and "
            "data.num_neighbors size a step), or data.full_batch_guard=off to try anyway"
        )
    log.warning(
        "%s: switching to data.loader=neighbor (data.full_batch_guard=error stops instead, off keeps full batch)",
        numbers,
    )
    return "neighbor"


def guard_full_batch(
    datamodule, encoder: dict, objective: dict | None, accelerator: str | None = "auto"
) -> MemoryEstimate | None:
    """``train``'s hook: with ``data.loader=full``, estimate the step on ``datamodule.data`` and set
    ``datamodule.loader`` to what :func:`check_full_batch` decides. ``encoder`` and ``objective``
    are the plain config dicts (``arch``, ``hidden_channels``, ..., ``_target_``, ``neg``).
    Returns the estimate (None when the loader is not full batch)."""
    if datamodule.loader != "full":
        return None
    from gnngmm.objectives.ns4gc import ALL_PAIRS_MAX_NODES
    from gnngmm.objectives.ns4gc import negatives as ns4gc_negatives

    data = datamodule.data
    objective = dict(objective or {})
    kind = objective_kind(objective.get("_target_"))
    n, e = int(data.num_nodes), int(data.edge_index.shape[1])
    arch = str(encoder.get("arch", "gcn"))
    device = training_device(accelerator)
    estimate = estimate_full_batch_bytes(
        n,
        e,
        int(data.num_features),
        arch=arch,
        hidden_channels=int(encoder.get("hidden_channels", 256)),
        out_channels=int(encoder.get("out_channels", 64)),
        num_layers=int(encoder.get("num_layers", 2)),
        heads=int(encoder.get("heads", 1) or 1),
        objective=kind,
        negatives=ns4gc_negatives(
            n, objective.get("neg"), int(objective.get("all_pairs_max_nodes", ALL_PAIRS_MAX_NODES))
        )
        if kind == "ns4gc"
        else None,
        max_nodes=objective.get("max_nodes"),
        on_device=device != "cpu",
    )
    limit = getattr(datamodule, "memory_limit_gb", None)
    available = float(limit) * 2**30 if limit is not None else available_bytes(device)
    what = f"{arch} + {kind} on {n:,} nodes / {e:,} edges"
    log.info("full-batch memory estimate: %s: %s (%s)", what, gib(estimate.total), estimate.describe())
    datamodule.loader = check_full_batch(
        estimate,
        available,
        policy=getattr(datamodule, "full_batch_guard", "auto"),
        what=what,
        device=device,
        fraction=1.0 if limit is not None else 0.8,
    )
    return estimate
