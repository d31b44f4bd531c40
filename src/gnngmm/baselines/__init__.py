"""Training-free references a trained run is compared with.

- :mod:`gnngmm.baselines.kmeans`: k-means on the raw or pre-propagated features, and the
  ``KMeansBaseline`` callback that reports it beside a run.
"""

from gnngmm.baselines.kmeans import KMeansBaseline, kmeans_labels, kmeans_scores

__all__ = ["KMeansBaseline", "kmeans_labels", "kmeans_scores"]
