"""The full-batch memory guard (gnngmm.memory): the estimate at Reddit's size, and the guard's switch
to the neighbour loader, its error and its off switch in short runs."""

from __future__ import annotations

import pytest

from gnngmm.train import train


def test_full_batch_estimate_at_reddit_size():
    """The mission's command: GAT over Reddit's 114.6M edges in one step cannot fit one GPU; the
    NS4GC all-pairs term alone cannot either; with sampled negatives GCN is tens of GB."""
    from gnngmm.memory import estimate_full_batch_bytes
    from gnngmm.objectives.ns4gc import negatives

    n, e, f = 232_965, 114_615_892, 602
    gat = estimate_full_batch_bytes(
        n,
        e,
        f,
        arch="gat",
        hidden_channels=256,
        out_channels=64,
        heads=4,
        objective="ns4gc",
        negatives=negatives(n, None),
    )
    assert gat.parts["messages"] > 400 * 2**30 and gat.total > 80 * 2**30
    # messages: views x layers x (2 x edges x heads x channels + 5 x edges x heads) float32
    assert gat.parts["messages"] == 2 * 2 * (e + n) * (2 * 256 + 5 * 4) * 4
    all_pairs = estimate_full_batch_bytes(n, e, f, arch="gcn", objective="ns4gc", negatives=None)
    assert all_pairs.parts["pairwise"] > 2 * n * n * 4  # N x N similarities and sigmoids
    gcn = estimate_full_batch_bytes(n, e, f, arch="gcn", objective="ns4gc", negatives=negatives(n, None))
    assert 5 * 2**30 < gcn.total < 40 * 2**30
    cora = estimate_full_batch_bytes(2708, 10556, 1433, arch="gat", heads=4, objective="ns4gc", negatives=None)
    assert cora.total < 2**30
    assert "messages" in gat.describe()


def test_full_batch_guard_switches_to_the_neighbour_loader(make_cfg, caplog):
    """Forced at CI size: a memory limit below the estimate switches the run to data.loader=neighbor
    with a logged line that shows the numbers, and the run completes."""
    import logging

    with caplog.at_level(logging.WARNING, logger="gnngmm.memory"):
        metrics = train(make_cfg("encoder=gat", "encoder.heads=2", "data.memory_limit_gb=0.001", "data.batch_size=128"))
    line = next(r.getMessage() for r in caplog.records if "switching to data.loader=neighbor" in r.getMessage())
    assert "full-batch step of gat + ns4gc on 560 nodes" in line and "MiB" in line and "more than 100%" in line
    assert metrics["nmi"] > 0.3


def test_full_batch_guard_error_names_the_override(make_cfg):
    from gnngmm.errors import InputError

    with pytest.raises(InputError, match=r"data\.loader=neighbor") as err:
        train(make_cfg("encoder=gat", "data.memory_limit_gb=0.001", "data.full_batch_guard=error"))
    assert "data.full_batch_guard=off" in str(err.value)


@pytest.mark.slow  # two training runs
def test_full_batch_guard_passes_what_fits_and_can_be_turned_off(make_cfg, caplog, monkeypatch):
    import logging

    import gnngmm.memory as memory

    decisions = []
    real = memory.check_full_batch
    monkeypatch.setattr(memory, "check_full_batch", lambda *a, **k: decisions.append(real(*a, **k)) or decisions[-1])
    with caplog.at_level(logging.WARNING, logger="gnngmm.memory"):
        train(make_cfg("trainer.max_epochs=1"))  # Cora-sized fixture: fits
        train(
            make_cfg(
                "trainer.max_epochs=1", "data.memory_limit_gb=0.001", "data.full_batch_guard=off", "overwrite=true"
            )
        )
    assert decisions == ["full", "full"]
    assert not [r for r in caplog.records if "switching" in r.getMessage()]
