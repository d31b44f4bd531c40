"""What a fitted clustering found, in tables: what each cluster is, how the clusters sit on the
graph, how they meet the classes where labels exist, and why a node is flagged as an outlier.

Pure functions, tensors or arrays in and ``pandas.DataFrame`` out, each reading the whole graph in
blocks (of rows, of edges): nothing of size ``N x K x F`` or ``N x N`` is ever built, so they can
follow a run on a graph of 10^5-10^6 nodes and 10^8 edges. :func:`explain_model` computes every
table from a fitted :class:`~gnngmm.GNNGMM` through its public attributes only.

Tables (the keys of :func:`explain_model`'s result), each from its module:

* ``clusters`` (K rows, :mod:`~gnngmm.explain.clusters`): size, mixture weight, mean
  max-responsibility and entropy, cohesion on the graph, flagged outliers, top features and
  typical nodes (and the classes it holds);
* ``features`` (:mod:`~gnngmm.explain.profiles`): per cluster, the input features most
  over-represented in it against the rest;
* ``typical`` (:mod:`~gnngmm.explain.profiles`): per cluster, its members of highest log-density;
* ``edges`` (K x K, :mod:`~gnngmm.explain.graph`): stored edges between clusters;
* ``contingency`` (K x C) and ``classes`` (C rows, :mod:`~gnngmm.explain.agreement`): only with
  labels;
* ``anomalies`` (:mod:`~gnngmm.explain.anomalies`): the top outliers and the requested nodes, each
  channel's tail p-value and the channel that drove the score;
* ``map`` (:mod:`~gnngmm.explain.node_map`): a sample of nodes with a 2-D PCA of the
  embedding, for the report's picture.
"""

from gnngmm.explain.agreement import class_agreement
from gnngmm.explain.anomalies import anomaly_reasons, component_distances, informative_channels, select_outliers
from gnngmm.explain.common import EDGE_CHUNK, MAX_OUTLIERS, ROW_BYTES
from gnngmm.explain.graph import cohesion, edge_counts
from gnngmm.explain.model import explain_model
from gnngmm.explain.node_map import embedding_map
from gnngmm.explain.profiles import feature_profiles, typical_nodes
from gnngmm.explain.scores import responsibility_stats

__all__ = [
    "EDGE_CHUNK",
    "MAX_OUTLIERS",
    "ROW_BYTES",
    "anomaly_reasons",
    "class_agreement",
    "cohesion",
    "component_distances",
    "edge_counts",
    "embedding_map",
    "explain_model",
    "feature_profiles",
    "informative_channels",
    "responsibility_stats",
    "select_outliers",
    "typical_nodes",
]
