"""Self-supervised objectives that train the encoder (the GMM term is added by the module)."""

from gnngmm.objectives.base import Objective, ObjectiveOutput
from gnngmm.objectives.cca_ssg import CCASSG
from gnngmm.objectives.dgi import DGI
from gnngmm.objectives.gae import GAE
from gnngmm.objectives.grace import GRACE

__all__ = ["CCASSG", "DGI", "GAE", "GRACE", "Objective", "ObjectiveOutput"]
