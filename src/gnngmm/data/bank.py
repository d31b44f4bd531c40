"""A bank of planted attributed graphs whose partitions are known: the ways training can hurt.

Every graph is a degree-corrected block model over **communities** nested in **classes** (the
labels): a class is the union of one or more communities, the way a field is the union of
research groups. Edges: each one picks an end ``u`` by its degree propensity (log-normal); with
``u``'s own probability ``h_u`` (Beta, mean ``community_homophily``) the other end is drawn in
``u``'s community, else with probability ``class_affinity`` in ``u``'s class, else anywhere (all
by degree propensity). Features are a sparse binary bag of words: each node writes a document of
about ``doc_length`` tokens, a token coming from its class's words with probability
``class_signal``, from its community's words with probability ``community_signal``, and otherwise
from a shared background vocabulary with Zipf frequencies; ``x[i, w] = 1`` when word ``w``
occurs in node ``i``'s document.

``BANK`` names the graphs (each with its own generator seed; ``conf/data/bank_<name>.yaml`` loads
one: ``python train.py data=bank_<name>``). :func:`load_bank` generates a graph once and caches it
under ``<data_dir>/bank/<name>.pt`` (regenerated when its parameters change). The communities
are kept in the cache for analysis (:func:`bank_communities`); a run sees ``x``, ``edge_index``
and, for reporting only, ``y``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from gnngmm.data.synthetic import _degree_weights, _Sampler, draw_edges
from gnngmm.errors import InputError

log = logging.getLogger(__name__)

CLASS_SIZES = ("equal", "zipf", "half")


@dataclass(frozen=True)
class BankSpec:
    """The parameters of one bank graph (see the module's text).

    Args:
        num_nodes: N.
        num_classes: K, the label classes.
        num_features: vocabulary size (feature columns).
        communities_per_class: communities in an average-sized class; above 1 a class gets
            ``max(1, round(communities_per_class * size / mean size))`` of them (a class holding
            half the nodes gets more), of Dirichlet(2) sizes; 1: every class is one community.
        class_sizes: ``equal`` | ``zipf`` (proportional to ``rank ** -1``) | ``half`` (one class
            holds half the nodes, the others share the rest equally).
        avg_degree: mean degree (directed edges / N).
        degree_sigma: the log-normal degree propensities' sigma.
        community_homophily: mean probability that an edge stays in its first end's community.
        class_affinity: probability that an edge leaving the community stays in the class.
        homophily_concentration: the Beta's concentration (per-node homophily spread).
        doc_length: mean tokens per node document (Poisson, at least one).
        class_signal: share of tokens drawn from the class's own words.
        community_signal: share of tokens drawn from the community's own words.
        class_words: words owned by each class.
        community_words: words owned by each community.
        seed: the generator's seed (the graph is a function of the spec).
        description: what the graph is for (reports).
    """

    num_nodes: int
    num_classes: int
    num_features: int
    communities_per_class: float = 1.0
    class_sizes: str = "equal"
    avg_degree: float = 12.0
    degree_sigma: float = 1.0
    community_homophily: float = 0.7
    class_affinity: float = 0.0
    homophily_concentration: float = 8.0
    doc_length: float = 30.0
    class_signal: float = 0.2
    community_signal: float = 0.0
    class_words: int = 40
    community_words: int = 20
    seed: int = 0
    description: str = ""


BANK: dict[str, BankSpec] = {}


def class_counts(n: int, k: int, kind: str) -> list[int]:
    """Class sizes summing to ``n`` (largest remainders), each at least 2."""
    if kind not in CLASS_SIZES:
        raise InputError(f"class_sizes={kind!r} is not one of {', '.join(CLASS_SIZES)}")
    if kind == "equal":
        share = np.full(k, 1.0 / k)
    elif kind == "zipf":
        share = 1.0 / np.arange(1, k + 1)
    else:
        share = np.array([0.5] + [0.5 / max(1, k - 1)] * (k - 1)) if k > 1 else np.ones(1)
    share = share / share.sum()
    raw = share * n
    counts = np.maximum(2, np.floor(raw).astype(int))
    for i in np.argsort(-(raw - np.floor(raw)))[: max(0, n - int(counts.sum()))]:
        counts[i] += 1
    while counts.sum() > n:  # the floor of 2 overshot: take from the largest
        counts[int(np.argmax(counts))] -= 1
    return counts.tolist()


def community_layout(spec: BankSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(community of every node, class of every community)``, nodes in a random order."""
    sizes = class_counts(spec.num_nodes, spec.num_classes, spec.class_sizes)
    mean = spec.num_nodes / spec.num_classes
    community_sizes, community_class = [], []
    for c, size in enumerate(sizes):
        m = 1 if spec.communities_per_class <= 1 else round(spec.communities_per_class * size / mean)
        m = int(max(1, min(size // 5, m)))
        share = rng.dirichlet(np.full(m, 2.0)) if m > 1 else np.ones(1)
        counts = np.maximum(5, np.floor(share * size).astype(int)) if m > 1 else np.array([size])
        counts[-1] = size - counts[:-1].sum()
        while counts[-1] < 1:  # the floors of 5 overshot: give back from the largest
            j = int(np.argmax(counts[:-1]))
            counts[j] -= 1
            counts[-1] += 1
        community_sizes += counts.tolist()
        community_class += [c] * m
    community = np.repeat(np.arange(len(community_sizes)), community_sizes)
    return community[rng.permutation(spec.num_nodes)], np.asarray(community_class)


def bag_of_words(
    spec: BankSpec, community: np.ndarray, community_class: np.ndarray, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """The binary document-word matrix as CSR ``(crow, col)`` (int64), rows sorted."""
    n, v = spec.num_nodes, spec.num_features
    k, c = spec.num_classes, community_class.shape[0]
    owned = k * spec.class_words + c * spec.community_words
    if owned + 50 > v:
        raise InputError(
            f"num_features={v} leaves fewer than 50 background words ({owned} owned by classes/communities)"
        )
    lengths = np.maximum(1, rng.poisson(spec.doc_length, n))
    node = np.repeat(np.arange(n), lengths)
    t = node.shape[0]
    u = rng.random(t)
    word = np.empty(t, dtype=np.int64)
    cls = u < spec.class_signal
    com = (~cls) & (u < spec.class_signal + spec.community_signal)
    bg = ~(cls | com)
    word[cls] = community_class[community[node[cls]]] * spec.class_words + rng.integers(
        spec.class_words, size=int(cls.sum())
    )
    word[com] = (
        k * spec.class_words
        + community[node[com]] * spec.community_words
        + rng.integers(spec.community_words, size=int(com.sum()))
    )
    frequency = 1.0 / np.arange(1, v - owned + 1)
    cumulative = np.cumsum(frequency / frequency.sum())
    background = np.searchsorted(cumulative, rng.random(int(bg.sum())), side="right")
    word[bg] = owned + rng.permutation(v - owned)[np.minimum(background, v - owned - 1)]
    keys = np.unique(node.astype(np.int64) * v + word)
    rows, cols = keys // v, keys % v
    crow = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=crow[1:])
    return torch.from_numpy(crow), torch.from_numpy(cols)


def bank_graph(spec: BankSpec) -> tuple[Data, Tensor]:
    """``(Data(x, edge_index, y), community)``: the graph ``spec`` describes.

    Returns:
        ``x`` ``(N, F)`` float32 0/1, ``edge_index`` ``(2, E)`` both directions sorted, no
        self-loops or duplicates, ``y`` ``(N,)`` int64 classes; ``community`` ``(N,)`` int64.
    """
    rng = np.random.default_rng(spec.seed)
    community, community_class = community_layout(spec, rng)
    n = spec.num_nodes
    g = torch.Generator().manual_seed(spec.seed)
    pairs = round(n * spec.avg_degree / 2)
    if pairs > n * (n - 1) // 4:
        raise InputError(f"avg_degree={spec.avg_degree} is too high for {n} nodes")
    theta = _degree_weights(n, 2 * pairs / n, spec.degree_sigma, g)
    a = spec.community_homophily * spec.homophily_concentration
    b = (1 - spec.community_homophily) * spec.homophily_concentration
    h = torch.from_numpy(rng.beta(max(a, 1e-3), max(b, 1e-3), n))
    block = torch.from_numpy(community)
    sampler = _Sampler(block, torch.from_numpy(community_class), theta, h, spec.class_affinity, g)
    edge_index = draw_edges(sampler, pairs, n, g)
    crow, col = bag_of_words(spec, community, community_class, rng)
    x = torch.zeros(n, spec.num_features)
    rows = torch.repeat_interleave(torch.arange(n), crow[1:] - crow[:-1])
    x[rows, col] = 1.0
    y = torch.from_numpy(community_class[community])
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=n), block


def _spec(name: str) -> BankSpec:
    key = name.lower().removeprefix("bank_")
    if key not in BANK:
        raise InputError(f"unknown bank graph {name!r}; known: {', '.join('bank_' + b for b in BANK)}")
    return BANK[key]


def _cache(name: str, data_dir: str | Path) -> tuple[Path, dict]:
    """The cache file of ``name`` and its content when it matches the current spec, else {}."""
    path = Path(data_dir).expanduser() / "bank" / f"{name.lower().removeprefix('bank_')}.pt"
    if path.exists():
        try:
            stored = torch.load(path, weights_only=True)
        except Exception as err:  # noqa: BLE001 - a truncated file: named, then regenerated
            log.warning("bank: could not read %s (%s); regenerating it", path, err)
            return path, {}
        if stored.get("spec") == _plain(asdict(_spec(name))):
            return path, stored
    return path, {}


def _plain(spec: dict) -> dict:
    return {k: (float(v) if isinstance(v, float) else v) for k, v in spec.items()}


def load_bank(name: str, data_dir: str | Path) -> Data:
    """Bank graph ``name`` (``bank_<key>`` or ``<key>``), generated on first use and cached under
    ``<data_dir>/bank/``. Returns ``Data(x, edge_index, y)`` (see :func:`bank_graph`)."""
    path, stored = _cache(name, data_dir)
    if not stored:
        spec = _spec(name)
        data, community = bank_graph(spec)
        nz = data.x.nonzero().t()
        stored = {
            "spec": _plain(asdict(spec)),
            "edge_index": data.edge_index,
            "x_rows": nz[0].clone(),
            "x_cols": nz[1].clone(),
            "y": data.y,
            "community": community,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(stored, tmp)
        tmp.replace(path)
        log.info("bank: generated %s (%d nodes) into %s", name, spec.num_nodes, path)
    n = int(stored["y"].numel())
    x = torch.zeros(n, int(stored["spec"]["num_features"]))
    x[stored["x_rows"], stored["x_cols"]] = 1.0
    return Data(x=x, edge_index=stored["edge_index"], y=stored["y"], num_nodes=n)


def bank_communities(name: str, data_dir: str | Path) -> Tensor:
    """``(N,)`` community of every node of bank graph ``name`` (generating it if needed)."""
    load_bank(name, data_dir)
    return _cache(name, data_dir)[1]["community"]


def register(name: str, spec: BankSpec) -> None:
    BANK[name] = spec


# --------------------------------------------------------------------------- the bank
# Each graph covers one way training can hurt; the nested ones (classes = unions of denser
# communities, the graph alone not telling which communities belong together) are the decline
# seen on an unseen co-authorship graph.
register(
    "fields",
    BankSpec(
        num_nodes=20_000,
        num_classes=5,
        num_features=2000,
        communities_per_class=4,
        class_sizes="half",
        avg_degree=14,
        community_homophily=0.9,
        class_affinity=0.0,
        class_signal=0.12,
        community_signal=0.25,
        seed=101,
        description="co-authorship-like: 5 classes, each a union of dense communities, one class half the nodes",
    ),
)
register(
    "fields_small",
    BankSpec(
        num_nodes=3000,
        num_classes=3,
        num_features=800,
        communities_per_class=5,
        avg_degree=10,
        degree_sigma=1.2,
        community_homophily=0.8,
        class_affinity=0.0,
        class_signal=0.12,
        community_signal=0.2,
        seed=102,
        description="3 classes, each the union of 5 dense communities",
    ),
)
register(
    "fields_weak",
    BankSpec(
        num_nodes=3000,
        num_classes=3,
        num_features=800,
        communities_per_class=5,
        avg_degree=10,
        community_homophily=0.9,
        class_affinity=0.0,
        class_signal=0.1,
        community_signal=0.3,
        seed=103,
        description="3 classes of 5 dense communities each, community words three times the class words",
    ),
)
register(
    "half",
    BankSpec(
        num_nodes=8000,
        num_classes=6,
        num_features=1000,
        class_sizes="half",
        avg_degree=12,
        community_homophily=0.6,
        class_signal=0.2,
        seed=104,
        description="one class holds half the nodes, no sub-communities",
    ),
)
register(
    "weak",
    BankSpec(
        num_nodes=10_000,
        num_classes=8,
        num_features=1500,
        class_sizes="zipf",
        avg_degree=12,
        community_homophily=0.75,
        class_signal=0.1,
        seed=105,
        description="weak feature signal, Zipf class sizes: the graph carries the classes",
    ),
)
register(
    "strong",
    BankSpec(
        num_nodes=10_000,
        num_classes=8,
        num_features=1500,
        avg_degree=12,
        community_homophily=0.45,
        class_signal=0.25,
        seed=106,
        description="strong feature signal, modest homophily: the words carry the classes",
    ),
)
register(
    "hetero",
    BankSpec(
        num_nodes=10_000,
        num_classes=5,
        num_features=1000,
        avg_degree=12,
        community_homophily=0.2,
        class_signal=0.22,
        seed=107,
        description="low homophily (about a third of the edges inside a class)",
    ),
)
register(
    "many",
    BankSpec(
        num_nodes=30_000,
        num_classes=40,
        num_features=2500,
        class_sizes="zipf",
        avg_degree=12,
        community_homophily=0.65,
        class_signal=0.25,
        class_words=25,
        seed=108,
        description="40 classes of Zipf sizes",
    ),
)
register(
    "large",
    BankSpec(
        num_nodes=50_000,
        num_classes=10,
        num_features=1500,
        communities_per_class=3,
        avg_degree=12,
        community_homophily=0.85,
        class_affinity=0.0,
        class_signal=0.09,
        community_signal=0.25,
        seed=109,
        description="50k nodes, 10 classes, each the union of about 3 dense communities",
    ),
)
