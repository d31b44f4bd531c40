"""Self-supervised objectives that train the encoder (the GMM term is added by the module)."""

from gnngmm.objectives.base import Objective, ObjectiveOutput
from gnngmm.objectives.cca_ssg import CCASSG
from gnngmm.objectives.dgi import DGI
from gnngmm.objectives.gae import GAE
from gnngmm.objectives.grace import GRACE
from gnngmm.objectives.ns4gc import NS4GC

__all__ = ["CCASSG", "DGI", "GAE", "GRACE", "NS4GC", "Objective", "ObjectiveOutput"]
