"""Row blocks: how many rows a chunk holds, the split into chunks, and sums over every chunk and rank.

EM reads the data as a list of 2-D blocks (``(n_i, d)`` tensors; under DDP each rank holds its own
rows), so memory stays O(chunk) per temporary and one ``all_reduce(SUM)`` makes a sum global.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from gnngmm.mixture.distributed import Communicator

CHUNK_BYTES = 256 * 2**20
MIN_CHUNK_ROWS = 256
MAX_CHUNK_ROWS = 65536


def default_chunk_rows(n_features: int, n_components: int, quadratic: bool) -> int:
    """Rows per chunk that keep the per-chunk temporaries near ``CHUNK_BYTES``.

    Args:
        n_features (int): d.
        n_components (int): K.
        quadratic (bool): the full-covariance quadratic-feature path runs (its ``d(d+1)/2``
            features per row dominate); otherwise ``(n, K, d)`` tensors do.

    Returns:
        int: between ``MIN_CHUNK_ROWS`` and ``MAX_CHUNK_ROWS``.
    """
    k = max(1, n_components)
    if quadratic:
        per_row = 12 * n_features * (n_features + 1) // 2 + 8 * 6 * k  # quadratic features (float32 + float64)
    else:
        per_row = 8 * 4 * k * max(1, n_features)  # (n, K, d) tensors
    return int(min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, CHUNK_BYTES // per_row)))


def split_rows(parts: Sequence[Tensor], rows_for: Callable[[int], int], name: str) -> list[Tensor]:
    """The row blocks ``parts`` cut into chunks of ``rows_for(d)`` rows (views, no copy); empty blocks dropped.

    Raises:
        ValueError: no rows at all (scikit-learn's message, naming the estimator ``name``).
    """
    out = []
    for p in parts:
        out.extend(p.split(rows_for(p.shape[1])) if p.shape[0] else [])
    if not out:
        raise ValueError(f"Found array with 0 sample(s) while a minimum of 1 is required by {name}.")
    return out


def count_rows(chunks: Sequence[Tensor], comm: Communicator) -> int:
    """Rows in every chunk of every rank."""
    local = chunks[0].new_tensor([float(sum(c.shape[0] for c in chunks))])
    return int(comm.all_reduce_sum(local).item())


def data_mean(chunks: Sequence[Tensor], comm: Communicator) -> Tensor:
    """``(d,)`` mean row over every chunk of every rank."""
    return comm.all_reduce_sum(sum(c.sum(0) for c in chunks)) / count_rows(chunks, comm)
