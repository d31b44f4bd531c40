"""Training-free references a trained run is compared with.

- :mod:`gnngmm.baselines.kmeans`: k-means on the raw or pre-propagated features, and the
  ``KMeansBaseline`` callback that reports it beside a run.
- :mod:`gnngmm.baselines.ms2cag`: MS2CAG (multi-scale propagation, the modularity's top
  eigenvectors on the propagated rows' cosine affinity, k-means), sparse and chunked.
"""

from gnngmm.baselines.kmeans import KMeansBaseline, kmeans_labels, kmeans_scores
from gnngmm.baselines.ms2cag import kmeans_by_distance, ms2cag_embedding, ms2cag_labels

__all__ = [
    "KMeansBaseline",
    "kmeans_by_distance",
    "kmeans_labels",
    "kmeans_scores",
    "ms2cag_embedding",
    "ms2cag_labels",
]
