"""The estimator's public layer: results, the outlier threshold and persistence (as PyGOD's
``Detector`` is to its ``DeepDetector``).

:class:`GraphClusterer` answers every question about a fitted model from one primitive,
``_scored(data) -> (graph, z, log_prob)`` (the graph as prepared, the mixture's input ``(N, d)``
and the ``(N, K)`` table of ``log w_k + log N(z | k)``), which :class:`gnngmm.GNNGMM` implements.
It derives from scikit-learn's ``BaseEstimator`` (``get_params``, ``set_params``, ``clone``,
``repr``); an unfitted model raises scikit-learn's ``NotFittedError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from gnngmm.anomaly import anomaly_scores, outlier_threshold
from gnngmm.errors import InputError
from gnngmm.head import row_summaries


class GNNGMMWarning(UserWarning):
    """A setting that runs but probably not as intended (filter with ``warnings.filterwarnings``)."""


@contextlib.contextmanager
def library_call(verbose: bool):
    """What a library call must not leave behind: the caller's RNG states (a fit seeds them for
    its own run), Lightning's info lines (unless ``verbose``), PyTorch's sparse-tensor notices."""
    torch_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    np_state, py_state = np.random.get_state(), random.getstate()
    env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    pl_logger = logging.getLogger("lightning.pytorch")
    level = pl_logger.level
    if not verbose:
        pl_logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(), torch.sparse.check_sparse_tensor_invariants(enable=False):
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*Sparse invariant checks are implicitly disabled.*")
            warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")  # torch's pytree, inside Lightning
            yield
    finally:
        pl_logger.setLevel(level)
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        np.random.set_state(np_state)
        random.setstate(py_state)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def graph_fingerprint(graph) -> str:
    """A SHA-1 of a prepared graph's node count, features and edges: equal for the training graph
    prepared again (preparation is deterministic), different for any other graph."""
    import hashlib

    digest = hashlib.sha1(str(int(graph.num_nodes)).encode())
    parts = [graph.edge_index]
    x = graph.x.detach().cpu()
    if x.layout != torch.strided:  # sparse features: their indices and values
        x = x.to_sparse_coo().coalesce()
        parts += [x.indices(), x.values()]
    else:
        parts.append(x)
    for tensor in parts:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class GraphClusterer(BaseEstimator):
    """Results of a fitted graph clusterer. With ``data=None`` a method describes the training
    graph; given another graph (same feature width) it prepares and scores that one.

    Label contract: nothing here reads ``y`` or ``outlier``; compare results with labels through
    :func:`gnngmm.metrics.evaluate`.
    """

    def _scored(self, data) -> tuple:  # pragma: no cover - implemented by the estimator
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(data) first")

    def fit_predict(self, data, y=None) -> torch.Tensor:
        """``fit(data).labels_``."""
        return self.fit(data).labels_

    def predict(self, data=None) -> torch.Tensor:
        """``(N,)`` the cluster of every node: ``labels_`` for the training graph (``data=None``, or
        the same graph passed again), else the mixture's most responsible component. The two agree
        unless the run adopted its training-free reference (``reference_["decision"] ==
        "reference"``): ``labels_`` is then the reference's partition, and the mixture (refit to it
        by one M-step) reads another graph through it."""
        self._check_fitted()
        if data is None and getattr(self, "labels_", None) is not None:
            return self.labels_
        graph, _, log_prob = self._scored(data)
        own = self._own_partition(graph)
        return own if own is not None else log_prob.argmax(1).cpu()

    def _own_partition(self, graph):
        """``labels_`` when the run adopted a partition the mixture does not give and ``graph`` is
        the training graph prepared again; else None."""
        record = getattr(self, "reference_", None)
        if not record or record.get("decision") != "reference" or getattr(self, "labels_", None) is None:
            return None
        if graph_fingerprint(graph) != getattr(self, "graph_fingerprint_", None):
            return None
        return torch.as_tensor(self.labels_)

    def predict_proba(self, data=None) -> torch.Tensor:
        """``(N, K)`` responsibilities under the mixture. Their argmax is ``predict``'s answer except
        on the training graph of a run that adopted its reference, where ``predict`` gives that
        partition (``labels_``) and these stay the mixture's (refit to it by one M-step)."""
        return torch.softmax(self._scored(data)[2], dim=1).cpu()

    def transform(self, data=None) -> torch.Tensor:
        """``(N, d)`` the embedding as the mixture models it (the encoder's output after the
        fitted transform)."""
        return self._scored(data)[1].cpu()

    def score_samples(self, data=None) -> torch.Tensor:
        """``(N,)`` log-density of every node's embedding under the mixture (higher = more typical)."""
        return torch.logsumexp(self._scored(data)[2], dim=1).cpu()

    def decision_function(self, data=None) -> torch.Tensor:
        """``(N,)`` outlier score by ``anomaly_score``: higher is more anomalous."""
        self._check_fitted()
        if data is None and getattr(self, "decision_scores_", None) is not None:
            return self.decision_scores_
        graph, z, log_prob = self._scored(data)
        return anomaly_scores(self.anomaly_score, -torch.logsumexp(log_prob, 1), graph, z)[0]

    def predict_outliers(self, data=None) -> torch.Tensor:
        """``(N,)`` 1 for the nodes scoring above ``threshold_`` (the ``contamination`` share of
        the training graph), else 0."""
        self._check_fitted()
        if getattr(self, "threshold_", None) is None:
            raise InputError(
                "no threshold_: this model was loaded from a training checkpoint without scores; "
                "load the run's model.ckpt"
            )
        return (self.decision_function(data) > self.threshold_).long()

    def bic(self, data=None) -> float:
        """The mixture's BIC on the embedding."""
        return self.gmm_.bic(self._scored(data)[1])

    def aic(self, data=None) -> float:
        """The mixture's AIC on the embedding."""
        return self.gmm_.aic(self._scored(data)[1])

    def prediction_table(self, data=None) -> dict:
        """One row per node, as columns: node id, cluster, max responsibility, entropy, NLL, the
        anomaly score, each of its channels, and the 0/1 outlier flag (``predictions.csv``)."""
        graph, z, log_prob = self._scored(data)
        cluster, max_resp, entropy, log_norm = row_summaries(log_prob)
        if data is None:
            score, channels, node_ids = self.decision_scores_, self.channels_, self.node_ids_
            cluster = torch.as_tensor(self.labels_)  # the run's partition (its reference's, when adopted)
        else:
            score, channels = anomaly_scores(self.anomaly_score, -log_norm, graph, z)
            node_ids = getattr(data, "node_ids", None)
            own = self._own_partition(graph)
            cluster = own if own is not None else cluster
        table = {
            "node": list(node_ids) if node_ids is not None else torch.arange(log_prob.shape[0]),
            "cluster": cluster.cpu(),
            "max_responsibility": max_resp.cpu(),
            "entropy": entropy.cpu(),
            "nll": (-log_norm).cpu(),
            "anomaly_score": score,
        }
        table.update({f"channel_{name}": value for name, value in channels.items() if name != "nll"})
        if getattr(self, "threshold_", None) is not None:
            table["is_outlier"] = (score > self.threshold_).long()
        return table

    def _set_scores(self, graph, z: torch.Tensor, log_density: torch.Tensor) -> None:
        """``decision_scores_``, ``channels_`` and ``threshold_`` on the training graph."""
        self.decision_scores_, self.channels_ = anomaly_scores(self.anomaly_score, -log_density, graph, z)
        self.threshold_ = outlier_threshold(self.decision_scores_, self.contamination)
