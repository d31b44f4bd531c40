"""Steering strategies (``conf/steer/``): how the mixture's responsibilities enter the training
step. :class:`Steering` is the interface and the ``steer=none`` default."""

from gnngmm.steering.augment import ComponentAugment, edge_drop_scale
from gnngmm.steering.base import Steering, SteerStep
from gnngmm.steering.contrast import ComponentContrast, component_contrast
from gnngmm.steering.dilation import ComponentDilation, component_dilation
from gnngmm.steering.false_negatives import FalseNegatives
from gnngmm.steering.self_training import SelfTraining, self_training

__all__ = [
    "ComponentAugment",
    "ComponentContrast",
    "ComponentDilation",
    "FalseNegatives",
    "SelfTraining",
    "SteerStep",
    "Steering",
    "component_contrast",
    "component_dilation",
    "edge_drop_scale",
    "self_training",
]
