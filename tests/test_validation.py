"""Settings validation (gnngmm.validation): every constraint is declared once, a bad value fails with one
line that names the config key, the value and what is allowed, and the data module, the estimator and
the command line report a bad setting with the same text."""

from __future__ import annotations

import numpy as np
import pytest
from raw_fixtures import graph

from gnngmm import GNNGMM, validation
from gnngmm.data import GraphDataModule
from gnngmm.data.datamodule import LOADERS
from gnngmm.errors import InputError
from gnngmm.train import train
from gnngmm.validation import Rule, check_group, check_n_clusters, check_setting


def message(call, *args) -> str:
    with pytest.raises(InputError) as err:
        call(*args)
    text = str(err.value)
    assert "\n" not in text, "one line"
    return text


BAD_SETTINGS = [
    ("data.loader", "magic", f"data.loader='magic' is not one of {', '.join(LOADERS)}"),
    ("contamination", 0.7, "contamination=0.7 is not a number in (0.0, 0.5]"),
    ("optimizer.lr", 0, "optimizer.lr=0 is not a number > 0.0"),
    ("loss.start_epoch", -1, "loss.start_epoch=-1 is not null or an integer >= 0"),
    ("trainer.max_epochs", True, "trainer.max_epochs=True is not an integer >= 1"),  # a bool is no integer
    ("data.memory_limit_gb", 0, "data.memory_limit_gb=0 is not null or a number > 0.0"),
    ("gmm.k_range", [5, 2], "gmm.k_range=[5, 2] is not [low, high] with 1 <= low <= high, or a list of K"),
    ("head.reseed_at_loss_start", "yes", "head.reseed_at_loss_start='yes' is not true or false"),
]


@pytest.mark.parametrize("key, value, line", BAD_SETTINGS, ids=[case[0] for case in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_naming_the_key_the_value_and_what_is_allowed(key, value, line):
    assert message(check_setting, key, value) == line


def test_the_allowed_choices_are_the_modules_own():
    from gnngmm.mixture import COVARIANCE_TYPES, EXTRA_COVARIANCE_TYPES

    allowed = ", ".join(COVARIANCE_TYPES + EXTRA_COVARIANCE_TYPES)
    assert (
        message(check_setting, "gmm.covariance_type", "bogus") == f"gmm.covariance_type='bogus' is not one of {allowed}"
    )
    for covariance_type in COVARIANCE_TYPES + EXTRA_COVARIANCE_TYPES:
        check_setting("gmm.covariance_type", covariance_type)


def test_good_and_undeclared_values_pass():
    for key, value in (
        ("data.loader", "neighbor"),
        ("contamination", 0.5),
        ("loss.start_epoch", None),
        ("gmm.k_range", [2, 9]),
        ("gmm.k_range", [3, 5, 8]),
        ("seed", np.random.RandomState(0)),
        ("seed", None),
        ("data.memory_limit_gb", 0.5),
        ("not.a.declared.key", object()),
    ):
        check_setting(key, value)


def test_an_estimator_argument_named_otherwise_is_named_too():
    line = "seed='x' is not an integer, a numpy RandomState or null"
    assert message(check_setting, "seed", "x") == line
    assert message(check_setting, "seed", "x", "random_state") == f"{line} (GNNGMM argument random_state)"
    assert message(check_setting, "seed", "x", "seed") == line


def test_a_group_is_checked_key_by_key_nested_dicts_included():
    assert message(check_group, "head", {"transform": {"pca_dim": 0}}) == (
        "head.transform.pca_dim=0 is not null or an integer >= 1"
    )
    assert (
        message(check_group, "data", {"loader": "full", "batch_size": 0}) == "data.batch_size=0 is not an integer >= 1"
    )
    check_group("data", {"loader": "full", "batch_size": 8, "name": "anything", "planted": {"num_nodes": -1}})


BAD_K = [
    (None, "gmm.k (n_clusters) is not set: this graph has no class count to default to; give gmm.k=K or gmm.k=auto"),
    ("x", "gmm.k (n_clusters) must be an integer >= 1 or 'auto', got 'x'"),
    (2.0, "gmm.k (n_clusters) must be an integer >= 1 or 'auto', got 2.0"),
    (True, "gmm.k (n_clusters) must be an integer >= 1 or 'auto', got True"),
    (0, "gmm.k (n_clusters) must be >= 1, got 0"),
    (-3, "gmm.k (n_clusters) must be >= 1, got -3"),
    (10, "gmm.k=10 exceeds the number of nodes (5)"),
]


@pytest.mark.parametrize("k, line", BAD_K, ids=[repr(case[0]) for case in BAD_K])
def test_n_clusters_messages(k, line):
    assert message(check_n_clusters, k, 5) == line


def test_n_clusters_values():
    assert check_n_clusters("auto") is None and check_n_clusters(" AUTO ", 5) is None
    assert check_n_clusters(5, 5) == 5 and check_n_clusters(10) == 10  # no graph yet: the value alone
    k = check_n_clusters(np.int64(3), 5)
    assert k == 3 and type(k) is int


def test_the_data_module_the_estimator_and_the_command_line_give_the_same_line(tmp_path, mirror, make_cfg, monkeypatch):
    import lightning

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    line = f"data.loader='magic' is not one of {', '.join(LOADERS)}"
    assert message(lambda: GraphDataModule("cora", str(tmp_path / "data"), str(mirror), loader="magic")) == line
    assert message(lambda: GNNGMM(3, data={"loader": "magic"}).fit(graph(60, 3))) == line
    assert message(lambda: train(make_cfg("data.loader=magic"))) == line


def test_the_data_module_and_the_estimator_read_one_declaration(tmp_path, mirror, monkeypatch):
    """Changing the declared rule changes what both accept and say: neither keeps a copy."""
    import lightning

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    monkeypatch.setitem(validation.rules(), "data.loader", Rule(lambda v: v == "full", "the only loader here"))
    line = "data.loader='nodes' is not the only loader here"
    assert message(lambda: GraphDataModule("cora", str(tmp_path / "data"), str(mirror), loader="nodes")) == line
    assert message(lambda: GNNGMM(3, data={"loader": "nodes"}).fit(graph(60, 3))) == line
