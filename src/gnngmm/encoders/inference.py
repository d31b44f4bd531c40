"""Layer-wise full-graph inference for message-passing encoders (SAGE, GAT), in chunks of
destination nodes.

The EM refit needs every node's embedding. A plain forward pass on a big graph materialises
per-edge messages (E x d) for the whole graph; here each layer is computed for all nodes before
the next, chunk by chunk, so at most ``chunk`` destination nodes' edges carry messages at once.
(GCN needs none of this: it is a sparse matrix product.) Needs no ``pyg-lib`` or ``torch-sparse``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import GATConv
from torch_geometric.utils import add_remaining_self_loops, remove_self_loops


def _dst_sorted(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    """Edges sorted by destination, and CSR-style row pointers into them."""
    order = torch.argsort(edge_index[1], stable=True)
    edges = edge_index[:, order]
    counts = torch.bincount(edges[1], minlength=num_nodes)
    ptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=edge_index.device)
    ptr[1:] = torch.cumsum(counts, 0)
    return edges, ptr


def _chunked_layer(conv, x: Tensor, edge_index: Tensor, chunk_size: int) -> Tensor:
    n = x.shape[0]
    loops = isinstance(conv, GATConv) and conv.add_self_loops
    if loops:  # add them once, globally: the conv's own loop logic assumes one node set
        edge_index, _ = remove_self_loops(edge_index)
        edge_index, _ = add_remaining_self_loops(edge_index, num_nodes=n)
        conv.add_self_loops = False
    try:
        edges, ptr = _dst_sorted(edge_index, n)
        out = []
        for start in range(0, n, chunk_size):
            end = min(n, start + chunk_size)
            block = edges[:, int(ptr[start]) : int(ptr[end])].clone()
            block[1] -= start
            out.append(conv((x, x[start:end]), block, size=(n, end - start)))
        return torch.cat(out)
    finally:
        if loops:
            conv.add_self_loops = True


@torch.no_grad()
def layerwise_embedding(encoder, x: Tensor, edge_index: Tensor, chunk_size: int = 65536) -> Tensor:
    """Equals ``encoder(x, edge_index)`` in eval mode (to float round-off); call it in eval mode."""
    gnn = encoder.gnn
    if gnn.jk_mode is not None:
        raise NotImplementedError("layer-wise inference supports jk=None only")
    for i, (conv, norm) in enumerate(zip(gnn.convs, gnn.norms)):
        x = _chunked_layer(conv, x, edge_index, chunk_size)
        if i < gnn.num_layers - 1:
            if gnn.act is not None and gnn.act_first:
                x = gnn.act(x)
            x = norm(x)
            if gnn.act is not None and not gnn.act_first:
                x = gnn.act(x)
    if hasattr(gnn, "lin"):
        x = gnn.lin(x)
    return encoder.out_act(x)
