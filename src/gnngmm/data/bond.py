"""BOND benchmark files (pygod-team/data): a zip holding one ``torch.save``d PyG ``Data``."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import torch
from torch_geometric.data import Data

from gnngmm.errors import InputError


def read_bond(path: str | Path) -> Data:
    """Load a BOND graph; its ``y`` (0 inlier, >0 outlier kinds) becomes the bool ``outlier``.

    The files are pickled PyG objects, so ``torch.load`` needs ``weights_only=False``: they are
    trusted files from the data dir, never user uploads.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.namelist() if m.endswith(".pt")]
        if len(members) != 1:
            raise InputError(f"{path}: expected one .pt member in the zip, found {members}")
        data = torch.load(io.BytesIO(archive.read(members[0])), weights_only=False)
    if not isinstance(data, Data):
        raise InputError(f"{path}: the zip holds a {type(data).__name__}, not a PyG Data")
    out = Data(x=data.x.float(), edge_index=data.edge_index.long(), num_nodes=data.num_nodes)
    if getattr(data, "y", None) is not None:
        y = data.y.reshape(data.num_nodes, -1)[:, 0] if data.y.dim() > 1 else data.y
        out.outlier = y > 0
    return out
