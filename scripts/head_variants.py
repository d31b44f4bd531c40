"""Other final partitions from the same trained embeddings: does the head, or smoothing over the
graph, leave NMI on the table? (docs/experiments.md: rows 7-8, "Where the quality is made")

    python scripts/benchmark.py --datasets cora --methods gnngmm --seeds 10 --runs RUNS
    python scripts/head_variants.py RUNS cora
    python scripts/benchmark.py --datasets cora --methods gnngmm-stage1 --seeds 5 --runs RUNS
    python scripts/head_variants.py RUNS cora --method gnngmm-stage1 --restarts 20

Loads each ``RUNS/<dataset>/<method>/seed*/model.ckpt`` (``GNNGMM.load``) and, without training,
derives partitions from its embedding and responsibilities: the responsibilities smoothed over the
graph (``Â^t r``), the embedding smoothed (``Â^t z``, renormalised, mixture refit warm), the
mixture refit warm as diag / spherical / full, a fresh isotropic fit from a k-means basin, fresh
fits on other inputs (the encoder output centred before L2; the hidden and output layers side by
side; the hidden layer alone). With ``--restarts R``: R fresh fits from one k-means++ seeding
each, and the one a label-free rule keeps (highest log-likelihood, highest modularity on the
graph) beside the best by labels (a ceiling, not a method). With ``--post``: other ways to read a
partition out of the same embedding (docs/experiments.md, 22): spectral clustering of its cosine
k-NN graph (alone or joined with the input graph); twice or three times K components merged pairwise
down to K (by the entropy criterion of Baudry et al. 2010, or by modularity on the graph);
self-labelling (a logistic regression fit on the most confident share of each cluster, on the
embedding or on SSGC-propagated features, predicting every node). Labels only score them (mean
NMI / ARI over the seeds, one line each).
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gnngmm import GNNGMM  # noqa: E402
from gnngmm.data import GraphDataModule  # noqa: E402
from gnngmm.encoders.propagation import normalized_adjacency  # noqa: E402
from gnngmm.metrics import clustering_metrics  # noqa: E402
from gnngmm.mixture import GaussianMixture  # noqa: E402
from gnngmm.quality import modularity  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")


def warm_refit(z: torch.Tensor, resp: torch.Tensor, covariance_type: str) -> torch.Tensor:
    gmm = GaussianMixture(resp.shape[1], covariance_type=covariance_type, max_iter=100, degenerate="recover")
    gmm.initialize_from_responsibilities(z, resp)
    return gmm.set_params(warm_start=True).fit(z).predict(z)


def variants(est: GNNGMM, data, adjacency) -> dict[str, torch.Tensor]:
    resp = est.predict_proba(data).double()
    z = est.transform(data).double()
    out = {"final (as trained)": resp.argmax(1)}
    r = resp.float()
    for t in range(1, 5):
        r = adjacency @ r
        out[f"responsibilities smoothed, t={t}"] = r.argmax(1)
    h = z.float()
    for t in range(1, 3):
        h = adjacency @ h
        out[f"embedding smoothed, t={t}"] = warm_refit(
            torch.nn.functional.normalize(h.double(), dim=1), resp, "isotropic"
        )
    for cov in ("diag", "spherical", "full"):
        out[f"warm {cov}"] = warm_refit(z, resp, cov)
    out["fresh isotropic"] = fresh_fit(z, resp.shape[1])
    h, hidden = encoder_outputs(est, data)
    normalize = torch.nn.functional.normalize
    out["fresh, output centred before L2"] = fresh_fit(normalize(h - h.mean(0), dim=1), resp.shape[1])
    if hidden is not None:
        both = torch.cat([normalize(hidden, dim=1), normalize(h, dim=1)], 1) / 2**0.5
        out["fresh, hidden and output layers side by side"] = fresh_fit(both, resp.shape[1])
        out["fresh, hidden layer alone"] = fresh_fit(normalize(hidden, dim=1), resp.shape[1])
    return out


def post_hoc(est: GNNGMM, data) -> dict[str, torch.Tensor]:
    """Partitions read out of the trained embedding by other means than the head (``--post``)."""
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.mixture import GaussianMixture as SkGMM
    from sklearn.neighbors import NearestNeighbors

    z = est.transform(data).double().numpy()
    resp = est.predict_proba(data).double().numpy()
    n, k = resp.shape
    ei = data.edge_index.numpy()
    graph = sp.csr_matrix((np.ones(ei.shape[1]), (ei[0], ei[1])), shape=(n, n))
    graph = ((graph + graph.T) > 0).astype(float)

    def spectral(w):  # top-k eigenvectors of D^-1/2 W D^-1/2, rows renormalised, k-means
        d = np.asarray(w.sum(1)).ravel() ** -0.5
        _, vecs = eigsh(sp.diags(d) @ w @ sp.diags(d), k=k, which="LA")
        u = vecs / np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-12)
        return KMeans(k, n_init=10, random_state=0).fit_predict(u)

    out = {"final (as trained)": resp.argmax(1)}
    for nn in (10, 20):
        idx = NearestNeighbors(n_neighbors=nn + 1, metric="cosine").fit(z).kneighbors(z)[1][:, 1:]
        knn = sp.csr_matrix((np.ones(n * nn), (np.repeat(np.arange(n), nn), idx.ravel())), shape=(n, n))
        knn = ((knn + knn.T) > 0).astype(float)
        out[f"spectral, cosine {nn}-NN graph"] = spectral(knn)
        out[f"spectral, cosine {nn}-NN graph + input graph"] = spectral(((knn + graph) > 0).astype(float))
    degree = np.asarray(graph.sum(1)).ravel()

    def plogp(x):  # column sums of x log x
        return np.sum(x * np.log(np.clip(x, 1e-300, None)), 0)

    for mult in (2, 3):
        over = SkGMM(mult * k, covariance_type="spherical", random_state=0).fit(z)
        r = over.predict_proba(z)
        while r.shape[1] > k:  # merge the pair whose union lowers the entropy of the assignment most
            own = plogp(r)
            gain = np.array(
                [
                    [plogp(r[:, a] + r[:, b]) - own[a] - own[b] if a < b else -np.inf for b in range(r.shape[1])]
                    for a in range(r.shape[1])
                ]
            )
            a, b = np.unravel_index(np.argmax(gain), gain.shape)
            r = np.concatenate([np.delete(r, [a, b], 1), (r[:, a] + r[:, b])[:, None]], 1)
        out[f"{mult}K components merged by entropy"] = r.argmax(1)
        m = np.eye(mult * k)[over.predict(z)]
        while m.shape[1] > k:  # merge the pair whose union raises modularity most
            gain = (m.T @ graph @ m) / degree.sum() - np.outer(m.T @ degree, m.T @ degree) / degree.sum() ** 2
            np.fill_diagonal(gain, -np.inf)
            a, b = np.unravel_index(np.argmax(gain), gain.shape)
            m = np.concatenate([np.delete(m, [a, b], 1), (m[:, a] + m[:, b])[:, None]], 1)
        out[f"{mult}K components merged by modularity"] = m.argmax(1)
    adjacency = normalized_adjacency(data.edge_index, n)
    ssgc = data.x.float()
    for _ in range(2):
        ssgc = adjacency @ ssgc
    ssgc = torch.nn.functional.normalize(ssgc, dim=1).double().numpy()
    label, confidence = resp.argmax(1), resp.max(1)
    for share in (0.3, 0.6):
        chosen = np.concatenate(
            [
                c[np.argsort(-confidence[c])[: max(1, int(share * len(c)))]]
                for c in (np.flatnonzero(label == j) for j in np.unique(label))
            ]
        )
        for name, x in (("embedding", z), ("SSGC features (2 hops)", ssgc)):
            clf = LogisticRegression(max_iter=300).fit(x[chosen], label[chosen])
            out[f"self-labelling from the top {share:.0%}, {name}"] = clf.predict(x)
    return {name: torch.as_tensor(pred) for name, pred in out.items()}


def fresh_fit(z: torch.Tensor, k: int, kmeans_n_init: int = 10, seed: int = 0) -> torch.Tensor:
    gmm = GaussianMixture(
        k,
        covariance_type="isotropic",
        max_iter=100,
        kmeans_n_init=kmeans_n_init,
        random_state=seed,
        degenerate="recover",
    )
    return gmm.fit(z.double()).predict(z.double())


def encoder_outputs(est: GNNGMM, data) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The encoder's output and, for a two-layer GNN, its hidden layer after the activation
    (float64)."""
    encoder = est.module_.encoder
    convs = getattr(getattr(encoder, "gnn", None), "convs", [])
    caught = []
    hook = encoder.gnn.norms[0].register_forward_hook(lambda _m, _i, o: caught.append(o)) if len(convs) == 2 else None
    try:
        h = est.module_.embed(data).double()
    finally:
        if hook is not None:
            hook.remove()
    hidden = encoder.gnn.act(caught[-1]).double() if caught else None
    return h, hidden


def restart_choices(est: GNNGMM, data, restarts: int, y) -> dict[str, dict]:
    """``restarts`` fresh isotropic fits (one k-means++ seeding each) of the model's GMM input;
    the one each rule keeps, with its NMI / ARI."""
    z = est.transform(data).double()
    k = est.n_clusters_
    fits = []
    for seed in range(restarts):
        gmm = GaussianMixture(
            k, covariance_type="isotropic", max_iter=200, random_state=seed, degenerate="recover"
        ).fit(z)
        pred = gmm.predict(z)
        fits.append(
            {
                "log_likelihood": gmm.score(z),
                "modularity": modularity(data.edge_index, pred, data.num_nodes),
                **clustering_metrics(y, pred),
            }
        )
    return {
        f"{restarts} restarts: the first": fits[0],
        f"{restarts} restarts: highest log-likelihood": max(fits, key=lambda f: f["log_likelihood"]),
        f"{restarts} restarts: highest modularity": max(fits, key=lambda f: f["modularity"]),
        f"{restarts} restarts: best by labels (ceiling)": max(fits, key=lambda f: f["nmi"]),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", help="a scripts/benchmark.py --runs directory")
    p.add_argument("dataset")
    p.add_argument("--method", default="gnngmm", help="the benchmark method whose models to load")
    p.add_argument("--restarts", type=int, default=0, help="also compare label-free choices among R fresh fits")
    p.add_argument("--post", action="store_true", help="only the post-hoc readouts (spectral, merging, self-labelling)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    pattern = f"{args.runs}/{args.dataset}/{args.method}/seed*/model.ckpt"
    models = sorted(glob.glob(pattern))
    if not models:
        raise SystemExit(f"no {pattern}: run scripts/benchmark.py first")
    first = GNNGMM.load(models[0])
    settings = dict(first.data_source_ or {})
    dm = GraphDataModule(
        name=args.dataset,
        data_dir=str(ROOT / "data"),
        mirror_dir=str(ROOT.parent / "shared" / "datasets"),
        normalize_features=settings.get("normalize_features", "row"),
    )
    dm.setup("fit")
    data, y = dm.data, dm.labels.y
    adjacency = normalized_adjacency(data.edge_index, data.num_nodes)  # D^-1/2 (A + I) D^-1/2
    scores: dict[str, list[tuple[float, float]]] = {}
    for path in models:
        est = GNNGMM.load(path)
        for name, pred in (post_hoc(est, data) if args.post else variants(est, data, adjacency)).items():
            m = clustering_metrics(y, pred)
            scores.setdefault(name, []).append((m["nmi"], m["ari"]))
        for name, m in (restart_choices(est, data, args.restarts, y) if args.restarts else {}).items():
            scores.setdefault(name, []).append((m["nmi"], m["ari"]))
    for name, values in scores.items():
        nmi, ari = (statistics.fmean(v[i] for v in values) for i in (0, 1))
        print(f"{args.dataset} | {name} | {len(values)} seeds | NMI {nmi:.4f} | ARI {ari:.4f}")


if __name__ == "__main__":
    main()
