"""Explanations: the tables of gnngmm.explain on inputs whose answers were planted, the report and
CSV files built from them, summary.html, W&B tables and scripts/report.py on a finished run."""

from __future__ import annotations

import json
import re
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT

from gnngmm import GNNGMM
from gnngmm.anomaly import tail_p_values
from gnngmm.data.inject import inject_outliers
from gnngmm.data.synthetic import planted_partition
from gnngmm.errors import InputError
from gnngmm.explain import (
    anomaly_reasons,
    class_agreement,
    cohesion,
    component_distances,
    edge_counts,
    embedding_map,
    explain_model,
    feature_profiles,
    select_outliers,
    typical_nodes,
)
from gnngmm.report import write_report, write_summary_html, write_tables

SMALL = {
    "trainer": {"max_epochs": 3},
    "encoder": {"hidden_channels": 32, "out_channels": 32},
    "head": {"transform": {"pca_dim": 8}},
    "gmm": {"n_init": 1},
    "random_state": 0,
}
K = 4
OWNED = 3  # planted characteristic features per block: block b owns columns 3b, 3b+1, 3b+2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted_features(y: torch.Tensor, num_features: int = 32, seed: int = 0) -> torch.Tensor:
    """Binary features: block b switches on its own columns 3b..3b+2 with probability 0.5, every
    other column with 0.05."""
    g = torch.Generator().manual_seed(seed)
    owner = torch.full((num_features,), -1)
    for b in range(int(y.max()) + 1):
        owner[OWNED * b : OWNED * (b + 1)] = b
    p = torch.where(owner[None, :] == y[:, None], 0.5, 0.05)
    return (torch.rand(y.shape[0], num_features, generator=g) < p).float()


def planted_graph(seed: int = 0):
    """400 nodes in 4 blocks, the features above, 2 cliques of 10 and 20 contextual outliers
    injected (PyGOD's recipes). Returns the graph and the clique / contextual node positions."""
    data = planted_partition(400, K, 32, avg_degree=8, homophily=0.85, seed=seed)
    data.x = planted_features(data.y, seed=seed)
    data = inject_outliers(data, structural_cliques=2, clique_size=10, contextual=20, candidates=50, seed=seed + 1)
    cliques = torch.randperm(400, generator=torch.Generator().manual_seed(seed + 1))[:20]  # inject_outliers' draw
    marked = torch.nonzero(data.outlier).flatten()
    return data, cliques, marked[~torch.isin(marked, cliques)]


@pytest.fixture(scope="module")
def planted():
    data, cliques, context = planted_graph()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GNNGMM(K, **SMALL).fit(data)
    return data, cliques, context, model


@pytest.fixture(scope="module")
def tables(planted):
    data, cliques, context, model = planted
    nodes = torch.cat([cliques, context]).tolist()
    return explain_model(model, data, labels=data.y, node_ids=nodes, outliers=data.outlier)


# --------------------------------------------------------------------------- pure functions
def test_feature_profiles_rank_the_planted_features_first_with_their_shares():
    y = torch.arange(K).repeat_interleave(150)
    x = planted_features(y)
    names = [f"word{j}" for j in range(x.shape[1])]
    table = feature_profiles(x, y, K, feature_names=names, top=OWNED)
    assert len(table) == K * OWNED and set(table["kind"]) == {"binary"}
    for b in range(K):
        rows = table[table["cluster"] == b]
        assert set(rows["column"]) == set(range(OWNED * b, OWNED * (b + 1)))
        assert list(rows["rank"]) == [1, 2, 3] and rows["score"].is_monotonic_decreasing
        assert rows["feature"].tolist() == [names[j] for j in rows["column"]]
        j = int(rows["column"].iloc[0])
        members = x[y == b, j]
        assert rows["in_cluster"].iloc[0] == pytest.approx(float(members.mean()))
        assert rows["outside"].iloc[0] == pytest.approx(float(x[y != b, j].mean()))
        assert rows["support"].iloc[0] == int(members.sum())
        a, bb = float(members.sum()), 150 - float(members.sum())
        c = float(x[y != b, j].sum())
        d = 450 - c
        log_odds = np.log((a + 0.5) * (d + 0.5) / ((bb + 0.5) * (c + 0.5)))
        assert rows["effect"].iloc[0] == pytest.approx(log_odds)


def test_feature_profiles_continuous_features_cohen_d_and_blocking():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(100)
    x = torch.randn(300, 12, generator=g)
    x[y == 1, 7] += 2.0  # cluster 1 is characterised by column 7
    table = feature_profiles(x, y, 3, top=2)
    assert set(table["kind"]) == {"continuous"}
    top = table[(table["cluster"] == 1) & (table["rank"] == 1)].iloc[0]
    assert top["column"] == 7 and top["feature"] == "7"
    inside, outside = x[y == 1, 7].double(), x[y != 1, 7].double()
    pooled = ((99 * inside.var() + 199 * outside.var()) / 298).sqrt()
    assert top["effect"] == pytest.approx(float((inside.mean() - outside.mean()) / pooled))
    tiny = feature_profiles(x, y, 3, top=2, row_bytes=8 * 12 * 7)  # 7 rows per block
    pd.testing.assert_frame_equal(table, tiny)


def test_feature_profiles_need_support_and_check_shapes():
    y = torch.tensor([0] * 10 + [1] * 10)
    x = torch.zeros(20, 3)
    x[:3, 0] = 1  # 3 members of cluster 0 only: under min_support=5
    x[:8, 1] = 1
    table = feature_profiles(x, y, 2, min_support=5)
    assert table["column"].tolist() == [1]
    from gnngmm.errors import InputError

    with pytest.raises(InputError, match="feature names"):
        feature_profiles(x, y, 2, feature_names=["a"])
    with pytest.raises(InputError, match="do not match"):
        feature_profiles(x[:5], y, 2)


def test_edge_counts_and_cohesion_on_two_triangles_joined_by_an_edge():
    und = torch.tensor([[0, 0, 1, 3, 3, 4, 2], [1, 2, 2, 4, 5, 5, 3]])
    edge_index = torch.cat([und, und.flip(0), torch.tensor([[4], [4]])], 1)  # both directions and a self-loop
    clusters = torch.tensor([0, 0, 0, 1, 1, 1])
    counts, degree = edge_counts(edge_index, clusters, 2)
    assert counts.tolist() == [[6, 1], [1, 6]]
    assert degree.tolist() == [2, 2, 3, 3, 2, 2]
    small_chunks = edge_counts(edge_index, clusters, 2, chunk=3)
    assert (small_chunks[0] == counts).all() and (small_chunks[1] == degree).all()
    frame = cohesion(counts)
    assert frame["volume"].tolist() == [7, 7] and frame["cut"].tolist() == [1, 1]
    assert frame["internal_edge_share"].tolist() == pytest.approx([6 / 7, 6 / 7])
    assert frame["conductance"].tolist() == pytest.approx([1 / 7, 1 / 7])


def test_class_agreement_states_split_and_merged_by_the_rule():
    # class 0: 50/50 over clusters 0 and 1 (split); classes 1 and 2 both in cluster 2 (merged);
    # class 3 alone in cluster 3, with 1 node in cluster 0 (under min_share); unknown labels (-1) left out
    clusters = torch.tensor([0] * 10 + [1] * 10 + [2] * 8 + [2] * 6 + [3] * 9 + [0] + [3] * 5)
    labels = torch.tensor([0] * 10 + [0] * 10 + [1] * 8 + [2] * 6 + [3] * 9 + [3] + [-1] * 5)
    contingency, classes = class_agreement(clusters, labels, 4, min_share=0.2)
    assert contingency.shape == (4, 4) and int(contingency.to_numpy().sum()) == 44
    assert contingency.loc[0, 3] == 1 and contingency.loc[2, 1] == 8
    by = classes.set_index("class")
    assert by.loc[0, "split"] and sorted(by.loc[0, "clusters"]) == [0, 1] and by.loc[0, "clusters_for_80"] == 2
    assert by.loc[1, "merged_with"] == [2] and by.loc[2, "merged_with"] == [1]
    assert (
        not by.loc[1, "split"]
        and by.loc[1, "best_cluster"] == 2
        and by.loc[1, "purity_of_best"] == pytest.approx(8 / 14)
    )
    assert by.loc[3, "clusters"] == [3] and by.loc[3, "share_in_best"] == pytest.approx(0.9)
    assert not by.loc[3, "split"] and by.loc[3, "merged_with"] == []


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "isotropic"])
def test_component_distances_equal_the_dense_formula(covariance_type):
    g = torch.Generator().manual_seed(0)
    k, d, n = 3, 4, 20
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    comp = torch.randint(k, (n,), generator=g)
    means = torch.randn(k, d, generator=g, dtype=torch.float64)
    a = torch.randn(k, d, d, generator=g, dtype=torch.float64)
    full = a @ a.transpose(1, 2) + torch.eye(d, dtype=torch.float64)
    cov = {
        "full": full,
        "tied": full[0],
        "diag": full.diagonal(dim1=1, dim2=2).clone(),
        "spherical": torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64),
        "isotropic": torch.full((k,), 0.7, dtype=torch.float64),
    }[covariance_type]
    maha, eucl = component_distances(z, comp, means, cov, covariance_type)
    for i in range(n):
        c = int(comp[i])
        if covariance_type == "full":
            matrix = cov[c]
        elif covariance_type == "tied":
            matrix = cov
        elif covariance_type == "diag":
            matrix = torch.diag(cov[c])
        else:
            matrix = cov[c] * torch.eye(d, dtype=torch.float64)
        diff = z[i] - means[c]
        assert maha[i] == pytest.approx(float(diff @ torch.linalg.inv(matrix) @ diff) ** 0.5)
        assert eucl[i] == pytest.approx(float(diff.norm()))


def test_anomaly_reasons_name_the_channel_that_stands_out():
    g = torch.Generator().manual_seed(0)
    n = 200
    channels = {name: torch.rand(n, generator=g, dtype=torch.float64) for name in ("nll", "contextual", "structural")}
    channels["flat"] = torch.zeros(n, dtype=torch.float64)  # constant: never the driver
    for node, name in ((0, "nll"), (1, "contextual"), (2, "structural")):
        channels[name][node] = 10.0
    score = sum(-tail_p_values(channels[c]).log() for c in ("nll", "contextual", "structural"))
    clusters = torch.arange(n) % 3
    frame = anomaly_reasons(score, channels, [0, 1, 2, 50], clusters=clusters, threshold=5.0, requested=[50])
    assert frame["driver"].tolist()[:3] == ["nll", "contextual", "structural"]
    assert frame["p_contextual"].iloc[1] == pytest.approx(1 / n) and "p_flat" in frame
    assert frame["requested"].tolist() == [False, False, False, True]
    assert frame["rank"].iloc[3] == 1 + int((score > score[50]).sum())
    assert frame["cluster"].tolist() == [0, 1, 2, 2]
    assert select_outliers(score, 0.1).tolist() == torch.argsort(-score, stable=True)[:20].tolist()
    assert len(select_outliers(score, 0.5, cap=7)) == 7


def test_typical_nodes_and_map_sample():
    clusters = torch.tensor([0, 1, 0, 1, 0, 2])
    density = torch.tensor([1.0, 5.0, 3.0, 2.0, 2.5, 0.0])
    frame = typical_nodes(clusters, density, 4, top=2, node_names=list("abcdef"))
    assert frame["node"].tolist() == ["c", "e", "b", "d", "f"] and frame["rank"].tolist() == [1, 2, 1, 2, 1]
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1000, 5, generator=g)
    z[:, 0] *= 10  # the first axis carries the variance
    columns = {"clusters": torch.arange(1000) % 3, "max_responsibility": torch.ones(1000), "scores": torch.rand(1000)}
    points = embedding_map(z, **columns, max_points=100, include=[3, 999])
    again = embedding_map(z, **columns, max_points=100, include=[3, 999])
    assert len(points) == 100 and {3, 999} <= set(points["index"]) and points["index"].is_monotonic_increasing
    pd.testing.assert_frame_equal(points, again)
    ratio = points.attrs["explained_variance_ratio"]
    assert ratio[0] > 0.8 and sum(ratio) <= 1 + 1e-9
    assert len(embedding_map(z, **columns, max_points=5000)) == 1000


# --------------------------------------------------------------------------- a fitted model
def test_explain_model_tables_on_a_planted_graph(planted, tables):
    data, _, _, model = planted
    n = data.num_nodes
    clusters = tables["clusters"]
    assert len(clusters) == K and clusters["size"].sum() == n
    assert clusters["weight"].to_numpy() == pytest.approx(model.gmm_.weights_.double().numpy())
    edges = tables["edges"]
    assert edges.shape == (K, K) and int(edges.to_numpy().sum()) == data.edge_index.shape[1]
    assert (edges.to_numpy() == edges.to_numpy().T).all()
    assert int(tables["contingency"].to_numpy().sum()) == n
    # every cluster is one block (purity), and its top features are that block's planted columns
    assert (clusters["purity"] > 0.9).all()
    features = tables["features"]
    for row in clusters.itertuples():
        top = features[(features["cluster"] == row.cluster) & (features["rank"] <= OWNED)]
        planted_columns = set(range(OWNED * row.majority_class, OWNED * (row.majority_class + 1)))
        assert set(top["column"]) == planted_columns, (row.cluster, top)
    # typical nodes are members of their cluster, of the highest log-density there
    density = model.score_samples()
    for row in tables["typical"].itertuples():
        assert model.labels_[row.index] == row.cluster
        members = model.labels_ == row.cluster
        assert density[row.index] >= torch.sort(density[members], descending=True).values[row.rank - 1] - 1e-9


def test_injected_outliers_are_driven_by_the_channel_they_were_injected_through(planted, tables):
    data, cliques, context, model = planted
    count = round(model.contamination * data.num_nodes)  # the top outliers come first, then the requested rest
    top = tables["anomalies"].iloc[:count]
    assert top["anomaly_score"].is_monotonic_decreasing and top["rank"].tolist() == list(range(1, count + 1))
    assert not tables["anomalies"].iloc[count:]["index"].isin(top["index"]).any()
    anomalies = tables["anomalies"].set_index("index")
    assert anomalies.loc[cliques.tolist() + context.tolist(), "requested"].all()
    assert anomalies.loc[cliques.tolist() + context.tolist(), "true_outlier"].all()
    structural = (anomalies.loc[cliques.tolist(), "driver"] == "structural").mean()
    contextual = (anomalies.loc[context.tolist(), "driver"] == "contextual").mean()
    assert structural >= 2 / 3 and contextual >= 2 / 3, (structural, contextual)
    degree = torch.bincount(data.edge_index[0], minlength=data.num_nodes)
    assert (anomalies["degree"] == degree[torch.as_tensor(anomalies.index.tolist())].numpy()).all()
    assert (anomalies.loc[cliques.tolist(), "degree"] >= 9).all()  # a clique of 10 adds 9 neighbours


def test_a_loaded_model_explains_the_same_graph_the_same_way(planted, tables, tmp_path):
    data, cliques, context, model = planted
    loaded = GNNGMM.load(model.save(tmp_path / "model.ckpt"))
    nodes = torch.cat([cliques, context]).tolist()
    again = explain_model(loaded, data, labels=data.y, node_ids=nodes, outliers=data.outlier)
    rescored = explain_model(model, data, labels=data.y, node_ids=nodes, use_training_results=False)
    for other in (again, rescored):
        pd.testing.assert_frame_equal(other["clusters"], tables["clusters"], atol=1e-5, rtol=1e-5)
        pd.testing.assert_frame_equal(other["edges"], tables["edges"])
        assert other["anomalies"]["index"].tolist() == tables["anomalies"]["index"].tolist()
        assert other["anomalies"]["driver"].tolist() == tables["anomalies"]["driver"].tolist()


def test_node_ids_by_name_and_errors(planted):
    data, _, _, model = planted
    named = data.clone()
    named.node_ids = [f"n{i}" for i in range(data.num_nodes)]
    frame = explain_model(model, named, node_ids=["n7"], max_outliers=3)["anomalies"]
    assert frame["node"].iloc[-1] == "n7" and frame["requested"].iloc[-1] and len(frame) in (3, 4)
    from gnngmm.errors import InputError

    with pytest.raises(InputError, match="not in the graph"):
        explain_model(model, named, node_ids=["nope"])
    with pytest.raises(InputError, match="out of range"):
        explain_model(model, data, node_ids=[10**6])


# --------------------------------------------------------------------------- files and pages
def table_rows(page: str, table_id: str) -> int:
    body = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.DOTALL)
    return len(re.findall(r"<tr", body.group(1))) if body else -1


def test_report_page_and_csv_files(planted, tables, tmp_path):
    _, _, _, model = planted
    written = write_tables(tmp_path, tables)
    assert {p.name for p in written} == {
        "clusters.csv", "cluster_features.csv", "cluster_typical.csv", "cluster_edges.csv", "contingency.csv",
        "classes.csv", "anomalies.csv",
    }  # fmt: skip
    assert len(pd.read_csv(tmp_path / "clusters.csv")) == K
    assert pd.read_csv(tmp_path / "cluster_edges.csv", index_col="cluster").shape == (K, K)
    page_path = write_report(tmp_path / "report.html", tables, model, metrics={"dataset": "planted", "nmi": 0.9})
    page = page_path.read_text()
    assert "https://" not in page.split("<body>")[1][:2000]  # nothing fetched: plotly.js is inlined in the head
    assert page.count('class="plotly-graph-div"') >= 4  # map, edges, contingency, history
    assert table_rows(page, "table-clusters") == K and table_rows(page, "table-edges") == K
    assert table_rows(page, "table-anomalies") == len(tables["anomalies"])
    meta = json.loads(re.search(r'id="gnngmm-report-meta">(.*?)</script>', page).group(1))
    assert meta == {"clusters": K, "map_points": len(tables["map"]), "anomalies": len(tables["anomalies"])}
    assert "gnngmm report: planted" in page and 'id="section-history"' in page


def fake_multirun(root, configs=("gcn", "sage"), seeds=(0, 1, 2)):
    for i, (encoder, seed) in enumerate((e, s) for e in configs for s in seeds):
        job = root / str(i)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"encoder={encoder}", f"seed={seed}"]))
        nmi = 0.5 + 0.01 * seed + 0.1 * (encoder == "sage")
        metrics = {"encoder": encoder, "seed": seed, "nmi": nmi, "ari": 0.4 + 0.02 * seed, "acc": 0.6}
        metrics.update(train_seconds=10.0 + seed, peak_rss_mb=700.0)
        (job / "metrics.json").write_text(json.dumps(metrics))
    failed = root / "99"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["encoder=gat", "seed=0"]))
    (failed / "failure.json").write_text(json.dumps({"error": "InputError", "message": "bad <value>"}))
    return root


def test_summary_html_has_one_row_per_configuration_and_every_run(tmp_path):
    from gnngmm.summary import summarize

    sweep = fake_multirun(tmp_path / "sweep")
    rows = summarize(sweep)
    assert [r["encoder"] for r in rows] == ["gcn", "sage"]
    page = (sweep / "summary.html").read_text()
    assert table_rows(page, "table-summary") == 2
    assert "0.5100 ± 0.0100" in page and "0.5000, 0.5100, 0.5200" in page  # mean ± std and each seed's value
    assert "bad &lt;value&gt;" in page and 'id="summary-figure"' in page
    empty = write_summary_html(tmp_path / "empty.html", [], [])
    assert "No finished run" in empty.read_text()


def test_tables_go_to_wandb_as_tables_and_the_page_as_an_artifact(tables, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    from gnngmm.report import log_to_wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    page = tmp_path / "report.html"
    page.write_text("<html></html>")
    run = wandb.init(project="gnngmm-test", dir=str(tmp_path), mode="offline")
    try:
        logged = log_to_wandb(run, tables, page)
    finally:
        run.finish()
    assert {"explain/clusters", "explain/anomalies", "explain/edges", "artifact"} <= set(logged)
    assert "explain/map" not in logged
    assert logged["explain/clusters"].get_dataframe().shape[0] == K
    assert "cluster" in logged["explain/edges"].columns


def test_report_script_rebuilds_a_run_report(make_cfg, tmp_path):
    from gnngmm.train import train

    cfg = make_cfg()
    train(cfg)
    run_dir = tmp_path / "out"
    page = report_script().main([str(run_dir), "--nodes", "0", "3"])
    assert page == run_dir / "report.html" and page.stat().st_size > 1_000_000
    clusters = pd.read_csv(run_dir / "clusters.csv")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(clusters) == metrics["k"] and clusters["size"].tolist() == metrics["cluster_sizes"]
    anomalies = pd.read_csv(run_dir / "anomalies.csv")
    top = anomalies.iloc[: round(metrics["contamination"] * metrics["num_nodes"])]
    assert abs(int(top["is_outlier"].sum()) - metrics["outliers_flagged"]) <= 1
    assert {0, 3} <= set(anomalies.loc[anomalies["requested"], "index"])
    assert (run_dir / "contingency.csv").exists()


def report_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import report
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return report


def test_report_script_needs_a_model_fitted_on_a_dataset(planted, tmp_path):
    _, _, _, model = planted
    loaded = GNNGMM.load(model.save(tmp_path / "model.ckpt"))
    assert loaded.data_source_["name"] == "data"
    with pytest.raises(InputError, match="given in Python"):
        report_script().load_run_graph(loaded)
