"""``SlurmLauncher`` (``hydra.launcher._target_`` in ``conf/launcher/slurm.yaml``):
hydra-submitit-launcher's SLURM launcher that checks for accounting first and names the jobs that
end without a result (see :mod:`gnngmm.launchers`). Defined only where that plugin is installed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as _SubmititSlurmLauncher
except ImportError:  # the sweeps extra is not installed: no launcher=slurm
    _SubmititSlurmLauncher = None

if _SubmititSlurmLauncher is not None:
    from hydra.core.singleton import Singleton
    from hydra.core.utils import JobReturn, filter_overrides
    from omegaconf import OmegaConf, open_dict

    class SlurmLauncher(_SubmititSlurmLauncher):
        """The submitit SLURM launcher (same config); its ``launch`` differs only in the end."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            import submitit
            from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

            from gnngmm.launchers import check_accounting, collect

            assert self.config is not None and self.hydra_context is not None
            check_accounting()
            init_keys = {"submitit_folder", "max_num_timeout"}
            executor = submitit.AutoExecutor(
                cluster=self._EXECUTOR,
                folder=self.params["submitit_folder"],
                **{f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]},
            )
            base = set(OmegaConf.structured(BaseQueueConf).keys())
            executor.update_parameters(
                **{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items() if k not in init_keys}
            )
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            job_params: list[Any] = []
            run_dirs: list[Path] = []
            for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
                self._log_job(idx, overrides)
                job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
                run_dirs.append(self._run_dir(overrides, idx))
            jobs = executor.map_array(self, *zip(*job_params))
            return collect(jobs, run_dirs, list(job_overrides))

        def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
            """In the SLURM job: the job itself, its time-limit handler guarded (see gnngmm.launchers)."""
            from gnngmm.launchers import guard_requeue_handler

            guard_requeue_handler()
            return super().__call__(*args, **kwargs)

        @staticmethod
        def _log_job(idx: int, overrides: Sequence[str]) -> None:
            import logging

            logging.getLogger(__name__).info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))

        def _run_dir(self, overrides: Sequence[str], idx: int) -> Path:
            """The run dir job ``idx`` writes to (``hydra.sweep.dir``/``hydra.sweep.subdir``)."""
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config.hydra.job):
                config.hydra.job.num = idx
            return Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
