"""What the tables read of every node, from a fitted model: the embedding, the responsibilities'
summaries, the log-density, the anomaly score and its channels, and the node ids.

The model's stored results of its training graph are used when they describe the explained graph
(same number of nodes); otherwise the graph is scored through the public API (one encoder pass).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gnngmm.errors import InputError
from gnngmm.explain.common import as_tensor


@dataclass
class NodeScores:
    """Every node's scores, on the CPU.

    Attributes:
        z (Tensor): (N, d) embedding as the mixture models it.
        clusters (Tensor): (N,) int64 most responsible component.
        max_responsibility (Tensor): (N,) float64 largest responsibility.
        entropy (Tensor): (N,) float64 entropy of the responsibilities, in nats.
        log_density (Tensor): (N,) float64 log-density under the mixture.
        scores (Tensor): (N,) float64 anomaly score, higher = more anomalous.
        channels (dict): channel name -> (N,) score of each anomaly channel.
        stored (bool): read from the model's stored training-graph results.
        names (list, optional): N node ids (the graph's ``node_ids``, else the model's when its
            stored results are used); None: positions.
    """

    z: Tensor
    clusters: Tensor
    max_responsibility: Tensor
    entropy: Tensor
    log_density: Tensor
    scores: Tensor
    channels: dict
    stored: bool
    names: list | None = None


def responsibility_stats(proba: Tensor, rows: int = 1 << 16) -> tuple[Tensor, Tensor, Tensor]:
    """``(cluster, max_responsibility, entropy)`` of every row of ``proba`` (N, K), by blocks of
    ``rows`` rows (default 65,536). Entropy is in nats, 0 for a one-hot row.

    Returns:
        three (N,) tensors: int64 argmax, float64 largest responsibility, float64 entropy.
    """
    proba = as_tensor(proba)
    parts = []
    for block in proba.split(rows):
        block = block.double()
        best, cluster = block.max(1)
        parts.append((cluster, best, -torch.special.xlogy(block, block).sum(1)))
    if not parts:
        empty = torch.zeros(0, dtype=torch.float64)
        return torch.zeros(0, dtype=torch.long), empty, empty
    return tuple(torch.cat(column) for column in zip(*parts))


def _stored_results(model, n: int, use_training_results: bool | None) -> dict | None:
    """The model's stored training-graph results when they hold ``n`` nodes (and are wanted),
    else None. Raises InputError when ``use_training_results`` is True and they do not."""
    if use_training_results is False:
        return None
    try:
        stored = model.transform()  # data=None: the training graph's own results, nothing recomputed
    except (InputError, RuntimeError):
        stored = None
    if stored is not None and stored.shape[0] != n:
        stored = None
    if stored is None:
        if use_training_results:
            raise InputError("use_training_results=True, but the model holds no results of a graph of this size")
        return None
    proba = model.predict_proba()
    return {
        "z": stored,
        "proba": proba,
        "log_density": model.score_samples(),
        "clusters": as_tensor(model.labels_),
        "scores": model.decision_scores_,
        "channels": dict(model.channels_),
        "stored": True,
    }


def _computed_anomalies(model, data, clusters: Tensor) -> tuple:
    """``(scores, channels)`` of ``data``: the model's stored ones when its stored clusters agree
    with ``clusters`` on 99% of the nodes (the checkpoint's own training graph: its scores are
    kept, not recounted), else from ``prediction_table(data)``."""
    n = int(data.num_nodes)
    saved_labels = getattr(model, "labels_", None)
    channels = getattr(model, "channels_", None)
    same = (
        saved_labels is not None
        and channels
        and getattr(model, "decision_scores_", None) is not None
        and len(saved_labels) == n
        and float((as_tensor(saved_labels) == clusters).double().mean()) >= 0.99
    )
    if same:
        return model.decision_scores_, dict(channels)
    table = model.prediction_table(data)
    channels = {"nll": as_tensor(table["nll"])}
    channels.update({key[len("channel_") :]: as_tensor(v) for key, v in table.items() if key.startswith("channel_")})
    return as_tensor(table["anomaly_score"]), channels


def _computed_results(model, data) -> dict:
    """``data`` scored through the public API: ``transform(data)`` and the mixture's table."""
    z = model.transform(data)
    log_prob = model.gmm_.log_prob_table(z).detach().cpu()
    log_density = torch.logsumexp(log_prob, 1)
    proba = torch.exp(log_prob - log_density[:, None])
    clusters = log_prob.argmax(1)
    del log_prob
    record = getattr(model, "reference_", None)
    if record and record.get("decision") == "reference":  # its own partition on its training graph
        clusters = as_tensor(model.predict(data))
    scores, channels = _computed_anomalies(model, data, clusters)
    return {
        "z": z,
        "proba": proba,
        "log_density": log_density,
        "clusters": clusters,
        "scores": as_tensor(scores),
        "channels": channels,
        "stored": False,
    }


def node_scores(model, data, use_training_results: bool | None = None) -> NodeScores:
    """Every node's scores of ``data`` under ``model``.

    Args:
        model (GNNGMM): a fitted (or loaded) estimator.
        data (torch_geometric.data.Data): the graph (and its ``node_ids`` if it has them).
        use_training_results (bool, optional): ``None`` (default) uses the stored results when the
            model holds them for a graph of N nodes; ``True`` requires them; ``False`` scores
            ``data`` again.

    Returns:
        NodeScores

    Raises:
        InputError: ``use_training_results=True`` without stored results of N nodes.
    """
    n = int(data.num_nodes)
    got = _stored_results(model, n, use_training_results)
    got = got if got is not None else _computed_results(model, data)
    _, max_resp, entropy = responsibility_stats(got["proba"])
    names = getattr(data, "node_ids", None)
    if names is None and got["stored"]:
        names = getattr(model, "node_ids_", None)
    if names is not None and len(names) != n:
        names = None
    return NodeScores(
        z=as_tensor(got["z"]),
        clusters=got["clusters"].long(),
        max_responsibility=max_resp,
        entropy=entropy,
        log_density=as_tensor(got["log_density"], torch.float64),
        scores=as_tensor(got["scores"], torch.float64),
        channels=got["channels"],
        stored=got["stored"],
        names=names,
    )
