"""Distributed training: two processes (trainer=ddp_sim) divide the seed nodes and hold one mixture; a
full-batch run under DDP is refused before training (gnngmm.pipeline)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT, run_cli


@pytest.mark.slow  # a subprocess / several processes
def test_ddp_ranks_divide_the_seed_nodes_and_hold_one_gmm(tmp_path, mirror):
    """trainer=ddp_sim (2 processes): every epoch each rank trains on its own half of the seed
    nodes (together all of them, none twice), and both end with the same mixture."""
    (tmp_path / "seen_nodes.py").write_text(
        "import torch\n"
        "from lightning.pytorch.callbacks import Callback\n"
        "class SeenNodes(Callback):\n"
        "    def __init__(self, out):\n"
        "        self.out, self.seen = out, {}\n"
        "    def on_train_batch_start(self, trainer, module, batch, batch_idx):\n"
        "        self.seen.setdefault(trainer.current_epoch, []).append(batch.n_id[: batch.batch_size])\n"
        "    def on_train_end(self, trainer, module):\n"
        "        seen = {e: torch.cat(v) for e, v in self.seen.items()}\n"
        "        state = {'seen': seen, 'means': module.head.mixture.means_.cpu()}\n"
        "        torch.save(state, f'{self.out}/rank{trainer.global_rank}.pt')\n"
    )
    run = tmp_path / "run"
    result = run_cli(
        [
            "train.py",
            "trainer=ddp_sim",
            "trainer.max_epochs=2",
            "data.loader=neighbor",
            "data.batch_size=64",
            "logger=csv",
            "callbacks.progress_bar=null",
            "trainer.enable_progress_bar=false",
            "encoder.hidden_channels=32",
            "encoder.out_channels=32",
            "head.transform.pca_dim=8",
            f"hydra.run.dir={run}",
            f"paths.data_dir={tmp_path}/data",
            f"paths.mirror_dir={mirror}",
            "save_pictures=false",
            "+callbacks.seen._target_=seen_nodes.SeenNodes",
            f"+callbacks.seen.out={tmp_path}",
        ],
        cwd=ROOT,
        env_extra={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for epoch in (0, 1):
        a, b = (r["seen"][epoch] for r in ranks)
        assert len(a) == len(b) == 280 and not set(a.tolist()) & set(b.tolist())
        assert sorted(a.tolist() + b.tolist()) == list(range(560))
    assert not torch.equal(ranks[0]["seen"][0], ranks[0]["seen"][1]), "a new order every epoch"
    assert torch.equal(ranks[0]["means"], ranks[1]["means"]), "one mixture on every rank"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["nmi"] > 0.5 and metrics["world_size"] == 2
    assert len((run / "history.csv").read_text().splitlines()) == 3
    assert len(list((run / "csv").glob("version_*"))) == 1, "only rank 0 writes logs"


def test_full_batch_under_ddp_is_refused_before_training(tmp_path, mirror, monkeypatch):
    import lightning

    from gnngmm import GNNGMM
    from gnngmm.data import load_dataset
    from gnngmm.errors import InputError

    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    data = load_dataset("cora", tmp_path / "data", mirror)
    with pytest.raises(InputError, match="data.loader=full under DDP.*data.loader=neighbor"):
        GNNGMM(7, trainer={"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}).fit(data)
