"""``OptunaSweeper`` (``hydra.sweeper._target_`` in ``conf/hparams_search/optuna.yaml``): see
:class:`gnngmm.sweeper.OptunaSweeper`."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper


class OptunaSweeper(Sweeper):
    """Takes hydra-optuna-sweeper's config; a shared, resumable study with pruned trials."""

    def __init__(self, **params: Any) -> None:
        from gnngmm.sweeper import OptunaSweeper as Impl

        self.sweeper = Impl(**params)

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)
