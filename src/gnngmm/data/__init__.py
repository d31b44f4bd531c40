"""Datasets (PyG classes + offline mirror), BOND loader, transforms, the LightningDataModule."""

from gnngmm.data.datamodule import GraphDataModule
from gnngmm.data.datasets import DATASETS, load_dataset

__all__ = ["DATASETS", "GraphDataModule", "load_dataset"]
