"""Safeguards (``conf/safeguard``): label-free checks of the partition at every refit, each with
one job. :class:`Safeguard` is the interface."""

from gnngmm.safeguards.base import Safeguard
from gnngmm.safeguards.modularity import KeepBestModularity
from gnngmm.safeguards.silhouette import KeepBestSilhouette

__all__ = ["KeepBestModularity", "KeepBestSilhouette", "Safeguard"]
