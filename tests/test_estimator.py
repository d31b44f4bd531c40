"""The estimator (gnngmm.estimator, gnngmm.base): scikit-learn / PyGOD conventions, one source of
defaults, the same fit as the CLI, labels never read, save/load round trips, and no global state
left behind."""

from __future__ import annotations

import csv
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT
from conftest import SMALL_ARGS as SMALL
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from raw_fixtures import graph, write_planetoid

from gnngmm import GNNGMM
from gnngmm.data import load_dataset
from gnngmm.errors import InputError
from gnngmm.metrics import clustering_metrics
from gnngmm.train import train


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Exact comparisons need one torch thread: multithreaded float32 sums differ in the last bits
    from run to run (on a busy machine, enough to flip a node at the outlier threshold)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cora(tmp_path_factory, mirror):
    return load_dataset("cora", tmp_path_factory.mktemp("data"), mirror)


@pytest.fixture(scope="module")
def fitted(cora):
    return GNNGMM(7, **SMALL).fit(cora)


def test_fit_gives_every_result_with_the_documented_shapes(cora, fitted):
    n = cora.num_nodes
    assert fitted.labels_.shape == (n,) and fitted.predict().shape == (n,)
    assert fitted.predict_proba().shape == (n, 7) and fitted.transform().shape == (n, 8)
    assert fitted.score_samples().shape == fitted.decision_function().shape == fitted.decision_scores_.shape == (n,)
    torch.testing.assert_close(fitted.predict_proba().sum(1), torch.ones(n, dtype=torch.float64))
    # two epochs leave the encoder below MS2CAG: the run adopted the reference's partition
    assert fitted.reference_["decision"] == "reference" and torch.equal(fitted.predict(), fitted.labels_)
    assert torch.equal(fitted.predict(cora), fitted.labels_), "predicting the training graph again"
    other = cora.clone()
    other.x = other.x.flip(0)  # another graph: the mixture's reading, not the stored partition
    assert torch.equal(fitted.predict(other), fitted.predict_proba(other).argmax(1))
    torch.testing.assert_close(fitted.decision_function(cora), fitted.decision_scores_)
    # contamination 0.1: the share of flagged nodes, threshold_ from the training scores
    assert int(fitted.predict_outliers().sum()) == int((fitted.decision_scores_ > fitted.threshold_).sum()) == n // 10
    assert set(fitted.channels_) == {"nll", "contextual", "structural"}
    assert fitted.bic() == pytest.approx(fitted.gmm_.bic(fitted.transform()))
    assert fitted.aic() < fitted.bic()  # 2p < p log n
    assert clustering_metrics(cora.y, fitted.labels_)["nmi"] > 0.5
    assert len(fitted.history_) == 2 and fitted.n_clusters_ == 7 and fitted.n_features_in_ == 48


def test_without_a_reference_the_labels_are_the_mixtures(cora):
    model = GNNGMM(7, **SMALL, reference="none").fit(cora)
    assert model.reference_ is None
    assert torch.equal(model.predict(cora), model.labels_), "predicting the training graph again"


def test_same_clusters_as_the_command_line(cora, fitted, make_cfg, tmp_path):
    """GNNGMM(random_state=0).fit(data) and `python train.py seed=0` are one fit."""
    metrics = train(make_cfg())
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert [int(r["cluster"]) for r in rows] == fitted.labels_.tolist()
    assert clustering_metrics(cora.y, fitted.labels_)["nmi"] == pytest.approx(metrics["nmi"], abs=1e-12)
    assert metrics["bic"] == pytest.approx(fitted.bic(), rel=1e-12)
    assert [float(r["anomaly_score"]) for r in rows] == pytest.approx(fitted.decision_scores_.tolist(), rel=1e-12)


def _composed_default(overrides=()):
    GlobalHydra.instance().clear()
    with initialize_config_module("gnngmm.conf", version_base="1.3"):
        cfg = compose("train", overrides=["paths.root_dir=/tmp", "paths.output_dir=/tmp", *overrides])
    GlobalHydra.instance().clear()
    return cfg


def test_one_source_of_defaults():
    """The estimator's defaults are read from conf/: a plain GNNGMM and `python train.py`'s estimator
    resolve to the same settings, group by group."""
    from gnngmm.train import estimator_arguments

    cli = GNNGMM(**estimator_arguments(_composed_default()))
    mine, conf = GNNGMM(7).settings(), cli.settings()
    for group in ("encoder", "objective", "optimizer", "steer", "safeguard", "gmm", "head", "loss", "data"):
        assert mine[group] == conf[group], group
    for key in ("default_root_dir", "enable_progress_bar"):
        conf["trainer"].pop(key)
    assert mine["trainer"] == conf["trainer"]
    assert GNNGMM().anomaly_score == cli.anomaly_score and GNNGMM().contamination == cli.contamination
    assert GNNGMM().n_clusters is None, "no dataset-specific K"


def test_scikit_learn_protocol():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    model = GNNGMM(5, encoder="sage", loss={"weight": 1.0}, contamination=0.05)
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert copy.set_params(n_clusters="auto").n_clusters == "auto" and model.n_clusters == 5
    assert "n_clusters=5" in repr(model) and "encoder='sage'" in repr(model)
    with pytest.raises(ValueError, match="Invalid parameter 'k'"):
        model.set_params(k=3)
    assert not hasattr(model, "labels_"), "__init__ stores its arguments only"
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_clusters": 0}, r"gmm.k \(n_clusters\) must be >= 1"),
        ({"n_clusters": None}, "gmm.k .*is not set"),
        ({"gmm": {"covariance_type": "bogus"}}, "gmm.covariance_type='bogus' is not one of"),
        ({"trainer": {"max_epochs": -1}}, "trainer.max_epochs=-1 is not an integer >= 1"),
        ({"contamination": 0.7}, "contamination=0.7"),
        ({"encoder": "transformer"}, "encoder='transformer' is not one of .*gcn"),
        ({"gmm": {"tol2": 1}}, "tol2"),
        ({"head": {"transform": {"pca": 3}}}, "head.transform: unknown setting"),
        ({"loss": {"embedding": "both"}}, "loss.embedding='both' is not one of views, clean"),
        ({"data": {"loader": "magic"}}, "data.loader='magic'"),
        ({"random_state": "x"}, "seed='x' is not an integer"),
        ({"safeguard": {"m": {"_target_": "gnngmm.safeguards.KeepBestModularity", "tolerance": 2}}}, "tolerance=2"),
        ({"n_clusters": 10_000}, "exceeds the number of nodes"),
    ],
)
def test_bad_arguments_fail_in_fit_with_one_clear_line(cora, kwargs, message, monkeypatch):
    import lightning

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(InputError, match=message):
        GNNGMM(**{"n_clusters": 7, **kwargs}).fit(cora)


def test_fit_leaves_the_callers_data_and_global_state_alone(cora):
    before = {key: value.clone() for key, value in cora.items() if torch.is_tensor(value)}
    keys = set(cora.keys())
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    threads = torch.get_num_threads()
    GNNGMM(3, **{**SMALL, "trainer": {"max_epochs": 1}}).fit(cora)
    assert set(cora.keys()) == keys and all(torch.equal(before[k], cora[k]) for k in before)
    assert torch.equal(states[0], torch.get_rng_state()) and (states[1] == np.random.get_state()[1]).all()
    assert states[2] == random.getstate() and torch.get_num_threads() == threads


def test_labels_are_never_read(cora, fitted):
    """Permuting y and deleting / adding outlier marks changes no result of the fit."""
    shuffled = cora.clone()
    shuffled.y = cora.y[torch.randperm(cora.num_nodes, generator=torch.Generator().manual_seed(0))]
    shuffled.outlier = torch.rand(cora.num_nodes, generator=torch.Generator().manual_seed(1)) > 0.9
    other = GNNGMM(7, **SMALL).fit(shuffled)
    assert torch.equal(other.labels_, fitted.labels_)
    assert torch.equal(other.decision_scores_, fitted.decision_scores_)
    assert other.bic() == fitted.bic() and other.threshold_ == fitted.threshold_
    unlabelled = cora.clone()
    del unlabelled.y
    assert torch.equal(GNNGMM(7, **SMALL).fit(unlabelled).labels_, fitted.labels_)


@pytest.mark.slow  # two training runs
def test_command_line_outputs_do_not_depend_on_labels(make_cfg, tmp_path):
    """predictions.csv and the label-free metrics are byte-identical when the labels are permuted."""
    data = graph(560, 7, seed=0)
    outputs = {}
    for name, y in (
        ("true", data.y),
        ("permuted", data.y[torch.randperm(560, generator=torch.Generator().manual_seed(3))]),
    ):
        mirror = tmp_path / f"mirror-{name}"
        labelled = data.clone()
        labelled.y = y
        write_planetoid(mirror / "planetoid", "Cora", labelled)
        out = tmp_path / f"out-{name}"
        metrics = train(
            make_cfg(f"paths.mirror_dir={mirror}", f"paths.data_dir={tmp_path / name}", f"paths.output_dir={out}")
        )
        outputs[name] = ((out / "predictions.csv").read_bytes(), (out / "history.csv").read_text(), metrics)
    (pred_a, hist_a, m_a), (pred_b, hist_b, m_b) = outputs["true"], outputs["permuted"]
    assert pred_a == pred_b
    for key in ("bic", "gmm_log_likelihood", "cluster_sizes", "outlier_threshold", "k"):
        assert m_a[key] == m_b[key], key
    assert m_a["nmi"] != m_b["nmi"], "the labels did change: only the reported scores may move"
    strip = [c for c in hist_a.splitlines()[0].split(",") if c not in ("nmi", "ari", "acc")]

    def unsupervised(text):
        rows = list(csv.DictReader(text.splitlines()))
        return [{c: r[c] for c in strip if not c.startswith("time/")} for r in rows]

    assert unsupervised(hist_a) == unsupervised(hist_b)


def test_save_load_round_trip(cora, fitted, tmp_path):
    path = fitted.save(tmp_path / "m.ckpt")
    loaded = GNNGMM.load(path)
    assert loaded.get_params() == fitted.get_params()
    assert torch.equal(loaded.predict(cora), fitted.labels_) and torch.equal(loaded.labels_, fitted.labels_)
    torch.testing.assert_close(loaded.decision_function(cora), fitted.decision_scores_)
    torch.testing.assert_close(loaded.score_samples(cora), fitted.score_samples())
    assert torch.equal(loaded.predict_outliers(cora), fitted.predict_outliers())
    with pytest.raises(InputError, match="pass the graph"):
        loaded.transform()


def test_a_training_checkpoint_loads_the_same_way(cora, make_cfg, tmp_path):
    metrics = train(make_cfg())
    final = GNNGMM.load(tmp_path / "out" / "model.ckpt")
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert final.predict(cora).tolist() == [int(r["cluster"]) for r in rows]
    assert final.reference_ == metrics["reference"]
    last = GNNGMM.load(tmp_path / "out" / "checkpoints" / "last.ckpt")  # the last epoch's mixture
    assert (
        last.n_clusters_ == metrics["k"] and last.trainer["max_epochs"] == 2 and last.encoder["hidden_channels"] == 32
    )
    assert last.predict(cora).shape == (560,)


def test_custom_modules_are_accepted_and_saved(cora, tmp_path):
    from gnngmm.encoders import GNNEncoder
    from gnngmm.objectives import CCASSG

    torch.manual_seed(0)
    model = GNNGMM(
        4,
        encoder=GNNEncoder(48, hidden_channels=16, out_channels=8),
        objective=CCASSG(),
        trainer={"max_epochs": 2},
        anomaly_score="nll",
    ).fit(cora)
    path = model.save(tmp_path / "custom.ckpt")
    with pytest.raises(InputError, match="weights_only=False"):
        GNNGMM.load(path)
    assert torch.equal(GNNGMM.load(path, weights_only=False).predict(cora), model.labels_)


@pytest.mark.slow  # a subprocess / several processes
def test_importing_gnngmm_changes_no_global_state():
    code = (
        "import warnings, torch, lightning, torch_geometric, hydra, torchmetrics, matplotlib  # their own filters\n"
        "filters = list(warnings.filters); checks = torch.sparse.check_sparse_tensor_invariants.is_enabled()\n"
        "import gnngmm, gnngmm.estimator, gnngmm.train\n"
        "assert warnings.filters == filters, 'warning filters changed'\n"
        "assert torch.sparse.check_sparse_tensor_invariants.is_enabled() == checks, 'sparse checks changed'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_k_above_a_tenth_of_the_nodes_warns_with_the_memory_it_needs(cora):
    from gnngmm.base import GNNGMMWarning

    with pytest.warns(GNNGMMWarning, match=r"gmm.k=60 is above 10% of the 560 nodes: .* MB"):
        GNNGMM(60, **{**SMALL, "trainer": {"max_epochs": 1}}, anomaly_score="nll").fit(cora)
