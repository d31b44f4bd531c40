"""Datasets (PyG classes + offline mirror), files, BOND loader, preprocessing, the LightningDataModule."""

from gnngmm.data.datamodule import GraphDataModule
from gnngmm.data.datasets import DATASETS, load_dataset
from gnngmm.data.files import read_graph
from gnngmm.data.preprocess import GraphLabels, preprocess, split_labels

__all__ = ["DATASETS", "GraphDataModule", "GraphLabels", "load_dataset", "preprocess", "read_graph", "split_labels"]
