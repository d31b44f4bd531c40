"""gnngmm.data.bank: nested planted graphs, deterministic, cached, loadable as ``data=bank_<name>``;
and the RefitDump callback that records every refit of a run."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from gnngmm.data import bank
from gnngmm.data.bank import BANK, BankSpec, bank_communities, bank_graph, class_counts, load_bank
from gnngmm.data.datasets import load_dataset
from gnngmm.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
TINY = BankSpec(
    num_nodes=300,
    num_classes=3,
    num_features=400,
    communities_per_class=3,
    class_sizes="half",
    avg_degree=8,
    community_homophily=0.8,
    class_affinity=0.2,
    class_signal=0.2,
    community_signal=0.1,
    class_words=10,
    community_words=5,
    seed=7,
)


def test_class_counts_sum_and_shapes():
    assert class_counts(100, 4, "equal") == [25, 25, 25, 25]
    half = class_counts(1001, 5, "half")
    assert sum(half) == 1001 and half[0] in (500, 501) and max(half[1:]) <= 126
    zipf = class_counts(1000, 5, "zipf")
    assert sum(zipf) == 1000 and zipf == sorted(zipf, reverse=True)
    with pytest.raises(InputError):
        class_counts(10, 2, "skewed")


def test_graph_is_symmetric_binary_nested_and_deterministic():
    data, community = bank_graph(TINY)
    n = TINY.num_nodes
    src, dst = data.edge_index
    assert data.edge_index.shape[1] == round(n * TINY.avg_degree / 2) * 2  # exact edge count
    assert bool((src != dst).all())
    keys = src * n + dst
    assert torch.equal(keys, keys.unique()) and torch.equal(keys.sort().values, (dst * n + src).sort().values)
    assert set(data.x.unique().tolist()) <= {0.0, 1.0} and data.x.shape == (n, TINY.num_features)
    assert float(data.x.sum(1).min()) >= 1  # every document has a word
    for c in community.unique():  # a class is a union of communities
        assert data.y[community == c].unique().numel() == 1
    assert community.unique().numel() > TINY.num_classes  # the half class has more communities
    assert float((data.y == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    inside = float((community[src] == community[dst]).float().mean())
    assert 0.6 < inside < 0.95  # about community_homophily
    again, community_again = bank_graph(TINY)
    assert torch.equal(again.x, data.x) and torch.equal(again.edge_index, data.edge_index)
    assert torch.equal(community_again, community)
    other, _ = bank_graph(replace(TINY, seed=8))
    assert not torch.equal(other.edge_index, data.edge_index)


def test_class_words_make_classes_visible_in_the_features():
    strong, _ = bank_graph(replace(TINY, class_signal=0.6, community_signal=0.0))
    owned = strong.x[:, : TINY.num_classes * TINY.class_words].reshape(TINY.num_nodes, TINY.num_classes, -1).sum(2)
    assert float((owned.argmax(1) == strong.y).float().mean()) > 0.95


def test_load_bank_caches_and_regenerates_when_the_spec_changes(tmp_path, monkeypatch):
    monkeypatch.setitem(BANK, "tiny", TINY)
    first = load_bank("bank_tiny", tmp_path)
    assert (tmp_path / "bank" / "tiny.pt").exists()
    monkeypatch.setattr(bank, "bank_graph", lambda spec: pytest.fail("generated again instead of read from the cache"))
    cached = load_dataset("bank_tiny", tmp_path)  # the datasets entry point routes bank_ names here
    assert torch.equal(cached.x, first.x) and torch.equal(cached.y, first.y)
    assert torch.equal(cached.edge_index, first.edge_index)
    monkeypatch.undo()
    monkeypatch.setitem(BANK, "tiny", replace(TINY, seed=9))
    assert not torch.equal(load_bank("tiny", tmp_path).edge_index, first.edge_index)
    assert bank_communities("tiny", tmp_path).shape == (TINY.num_nodes,)
    with pytest.raises(InputError, match="unknown bank graph"):
        load_bank("bank_nothing", tmp_path)


def test_every_bank_graph_has_its_data_config(make_cfg):
    for name, spec in BANK.items():
        path = ROOT / "conf" / "data" / f"bank_{name}.yaml"
        assert yaml.safe_load(path.read_text()) == {
            "defaults": ["default"],
            "name": f"bank_{name}",
            "num_classes": spec.num_classes,
        }
        assert 3000 <= spec.num_nodes <= 50_000 and 3 <= spec.num_classes <= 40
        assert spec.seed not in {s.seed for n, s in BANK.items() if n != name}
    cfg = make_cfg("data=bank_fields")
    assert cfg.data.name == "bank_fields" and cfg.gmm.k == 5


def test_graph_bank_script_writes_the_configs(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("graph_bank", ROOT / "scripts" / "graph_bank.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "ROOT", tmp_path)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    paths = script.write_configs(["fields"])
    assert yaml.safe_load(paths[0].read_text()) == {"defaults": ["default"], "name": "bank_fields", "num_classes": 5}


@pytest.mark.slow
def test_refit_dump_records_every_refit_and_changes_nothing(tmp_path, make_cfg):
    from gnngmm.train import train

    base = [
        "data=planted",
        "data.planted.num_nodes=300",
        "trainer.max_epochs=4",
        "loss.finetune_epochs=2",
        "head.refit_every_n_epochs=1",
    ]
    plain = train(make_cfg(*base, f"paths.output_dir={tmp_path / 'a'}"))
    dumped = train(
        make_cfg(
            *base,
            f"paths.output_dir={tmp_path / 'b'}",
            "+callbacks.dump._target_=gnngmm.callbacks.refit_dump.RefitDump",
            f"+callbacks.dump.path={tmp_path / 'refits.pt'}",
        )
    )
    assert dumped["nmi"] == plain["nmi"] and dumped["gmm_log_likelihood"] == plain["gmm_log_likelihood"]
    record = torch.load(tmp_path / "refits.pt", weights_only=False)
    assert record["labels"].shape == (len(record["epochs"]), 300) and record["epochs"] == [0, 1, 2, 3]
    assert {"silhouette", "views_nmi", "view_nmi", "ssl_loss"} <= set(record["scores"][0])
    saved = torch.load(tmp_path / "refits_z.pt")  # the end of pretraining and the last epoch
    assert sorted(saved) == [1, 3] and saved[3].shape[0] == 300 and saved[3].dtype == torch.float16
