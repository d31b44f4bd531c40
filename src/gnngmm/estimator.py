"""``GNNGMM``: the whole pipeline as a scikit-learn / PyGOD-style estimator for any PyG graph.

    from gnngmm import GNNGMM
    model = GNNGMM(n_clusters=7).fit(data)           # data: torch_geometric.data.Data (x, edge_index)
    model.labels_, model.predict_proba(), model.decision_function(), model.predict_outliers()
    model.save("model.ckpt"); GNNGMM.load("model.ckpt").predict(data)

``__init__`` only stores its arguments (checked in ``fit``), so ``get_params`` / ``set_params`` /
``sklearn.base.clone`` work. Every default is ``python train.py``'s: the flat ones are tested
against ``conf/``, and ``None`` for a ``*_kwargs`` argument means that group's packaged YAML.
``python train.py`` builds this same object from its config (:meth:`GNNGMM.from_config`) and calls
the same fit, so a run and ``GNNGMM(random_state=seed).fit(data)`` give the same clusters.

Label contract: ``fit`` ignores ``y`` and ``outlier`` on the ``Data`` it is given (and never
modifies that object). Clusters, responsibilities, log-densities and anomaly scores are all
computed without labels; compare them with labels through :func:`gnngmm.metrics.evaluate`.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import random
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gnngmm.anomaly import COMBINATION_RULES, SCORES, anomaly_scores, outlier_threshold
from gnngmm.components import build, component_spec, group_config, locate, root_config
from gnngmm.data.datamodule import LOADERS, GraphDataModule
from gnngmm.data.transforms import FEATURE_NORMS
from gnngmm.embedding import EmbeddingTransform
from gnngmm.errors import InputError
from gnngmm.head import HeadResult, refit, row_summaries
from gnngmm.mixture import COVARIANCE_TYPES, EXTRA_COVARIANCE_TYPES, GaussianMixture
from gnngmm.mixture.criteria import CRITERIA
from gnngmm.steering import STEER

log = logging.getLogger("gnngmm")

# conf/gmm/default.yaml keys that are flat estimator arguments (the rest go in gmm_kwargs)
_FLAT_GMM_KEYS = {"k": "n_clusters", "k_range": "k_range", "k_criterion": "k_criterion",
                  "covariance_type": "covariance_type", "loss_weight": "gmm_loss_weight",
                  "finetune_epochs": "finetune_epochs", "embedding": "embedding_kwargs"}
# gmm settings that schedule the refits and shape the loss term (not GaussianMixture arguments)
_SCHEDULE_KEYS = ("refit_every_n_epochs", "refit_max_iter", "final_fresh_fit", "loss_start_epoch",
                  "loss_scale_free", "loss_on", "reseed_at_loss_start", "steer", "steer_weight",
                  "steer_start_epoch", "keep_best", "keep_best_silhouette")
# GaussianMixture arguments the estimator sets itself
_ENGINE_FIXED = ("self", "n_components", "covariance_type", "random_state", "comm", "warm_start",
                 "weights_init", "means_init", "precisions_init")
_DATA_KEYS = ("loader", "num_parts", "batch_size", "num_neighbors", "num_workers", "precompute", "precompute_hops",
              "precompute_norm", "full_batch_guard", "memory_limit_gb")
_TRAINER_FIXED = ("_target_", "max_epochs", "accelerator", "devices")


def _engine_keys() -> set[str]:
    return set(inspect.signature(GaussianMixture.__init__).parameters) - set(_ENGINE_FIXED)


def resolve_k(k, num_nodes: int | None = None) -> int | None:
    """``n_clusters`` (``gmm.k``) as an int, None for ``auto``; an InputError naming the bad value.
    Without ``num_nodes`` only the value itself is checked."""
    if isinstance(k, str) and k.strip().lower() == "auto":
        return None
    if k is None:
        raise InputError("gmm.k (n_clusters) is not set: this graph has no class count to default to; "
                         "give gmm.k=K or gmm.k=auto")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InputError(f"gmm.k (n_clusters) must be an integer >= 1 or 'auto', got {k!r}")
    if k < 1:
        raise InputError(f"gmm.k (n_clusters) must be >= 1, got {k}")
    if num_nodes is not None and k > num_nodes:
        raise InputError(f"gmm.k={k} exceeds the number of nodes ({num_nodes})")
    return int(k)


@contextlib.contextmanager
def _library_call(verbose: bool):
    """What a library call must not leave behind: the caller's RNG states (a fit seeds them for
    its own run), Lightning's info lines (unless ``verbose``), PyTorch's sparse-tensor notices."""
    torch_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    np_state, py_state = np.random.get_state(), random.getstate()
    env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    pl_logger = logging.getLogger("lightning.pytorch")
    level = pl_logger.level
    if not verbose:
        pl_logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(), torch.sparse.check_sparse_tensor_invariants(enable=False):
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*Sparse invariant checks are implicitly disabled.*")
            warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")  # torch's pytree, inside Lightning
            yield
    finally:
        pl_logger.setLevel(level)
        torch.set_rng_state(torch_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state_all(cuda_state)
        np.random.set_state(np_state)
        random.setstate(py_state)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class GNNGMM:
    """GNN encoder + Gaussian-mixture head: node clusters, responsibilities, log-densities and
    anomaly scores of an attributed graph.

    Parameters (defaults: ``python train.py``'s)
    ----------
    n_clusters : int or "auto", default 7
        Mixture components; ``"auto"`` picks K in ``k_range`` by ``k_criterion`` (BIC).
    encoder : str, dict or nn.Module, default "gcn"
        A name from ``conf/encoder`` (gcn, sage, gat, mlp, sgc), a spec dict with ``_target_``, or
        a module mapping ``(x, edge_index)`` to embeddings (with ``out_channels`` and
        ``full_graph_embedding``, as :class:`gnngmm.encoders.GNNEncoder`).
    objective : str, dict, nn.Module or None, default "ns4gc"
        Self-supervised objective: a name from ``conf/objective`` (ns4gc, cca_ssg, dgi, grace, gae),
        a spec dict, an :class:`gnngmm.objectives.Objective`, or None (no training).
    covariance_type : {"isotropic", "full", "diag", "spherical", "tied"}, default "isotropic"
    max_epochs : int, default 220
        Training epochs; the GMM term is on for the last ``finetune_epochs``.
    finetune_epochs : int, default 20
    gmm_loss_weight : float, default 3.0
        Weight of the (scale-free) NLL of the embeddings under the fixed mixture.
    lr, weight_decay : float, default 1e-3, 1e-5
    optimizer : str or dict, default "Adam"
        A ``torch.optim`` class name or a spec dict.
    normalize_features : {"row", "standard", "l2", "none"}, default "none"
        "none" keeps binary bag-of-words features as they are; "row" divides each row by its sum.
    preprocess : bool, default True
        Make edges undirected and drop self-loops (and normalise features) before fitting.
    anomaly_score : str, default "combined"
        ``nll``, ``nll+neighbor``, ``neighbor``, ``combined`` (Fisher's combination of the GMM NLL,
        the raw-feature inconsistency with the neighbourhood and triangle density) or ``combined_max``.
    contamination : float, default 0.1
        Share of nodes flagged by ``predict_outliers``: sets ``threshold_``.
    k_range : (int, int), default (2, 16)
    k_criterion : {"bic", "bic_knee"}, default "bic"
    encoder_kwargs, objective_kwargs : dict, optional
        Overrides of the named encoder's / objective's settings (e.g. ``{"hidden_channels": 128}``).
    gmm_kwargs : dict, optional
        Other ``conf/gmm/default.yaml`` settings (``tol``, ``reg_covar``, ``max_iter``, ``n_init``,
        ``kmeans_n_init``, ``refit_max_iter``, ...) and any :class:`GaussianMixture` argument.
    embedding_kwargs : dict, optional
        Encoder output -> GMM input (``pca_dim``, ``standardize``, ``l2``, ``center``, ``rescale``).
    data_kwargs : dict, optional
        Mini-batching and pre-propagation (``loader``, ``batch_size``, ``num_neighbors``,
        ``num_parts``, ``num_workers``, ``precompute``, ``precompute_hops``).
    random_state : int or None, default 0
        Seeds the whole run; the caller's global RNG states are restored afterwards.
    accelerator, devices : Lightning's, default "auto", 1
    trainer_kwargs : dict, optional
        Further ``lightning.Trainer`` arguments (``strategy``, ``precision``, ...).
    verbose : bool, default False
        Progress bar and Lightning's messages.

    Fitted attributes
    -----------------
    labels_, decision_scores_, threshold_, n_clusters_, gmm_, history_, module_, bic_table_,
    channels_ (each anomaly channel, by name), n_features_in_, node_ids_ (when the graph had them).
    """

    def __init__(
        self,
        n_clusters=7,
        *,
        encoder="gcn",
        objective="ns4gc",
        covariance_type="isotropic",
        max_epochs=220,
        finetune_epochs=20,
        gmm_loss_weight=3.0,
        lr=1e-3,
        weight_decay=1e-5,
        optimizer="Adam",
        normalize_features="none",
        preprocess=True,
        anomaly_score="combined",
        contamination=0.1,
        k_range=(2, 16),
        k_criterion="bic",
        encoder_kwargs=None,
        objective_kwargs=None,
        gmm_kwargs=None,
        embedding_kwargs=None,
        data_kwargs=None,
        random_state=0,
        accelerator="auto",
        devices=1,
        trainer_kwargs=None,
        verbose=False,
    ):
        self.n_clusters = n_clusters
        self.encoder = encoder
        self.objective = objective
        self.covariance_type = covariance_type
        self.max_epochs = max_epochs
        self.finetune_epochs = finetune_epochs
        self.gmm_loss_weight = gmm_loss_weight
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.normalize_features = normalize_features
        self.preprocess = preprocess
        self.anomaly_score = anomaly_score
        self.contamination = contamination
        self.k_range = k_range
        self.k_criterion = k_criterion
        self.encoder_kwargs = encoder_kwargs
        self.objective_kwargs = objective_kwargs
        self.gmm_kwargs = gmm_kwargs
        self.embedding_kwargs = embedding_kwargs
        self.data_kwargs = data_kwargs
        self.random_state = random_state
        self.accelerator = accelerator
        self.devices = devices
        self.trainer_kwargs = trainer_kwargs
        self.verbose = verbose

    # ------------------------------------------------------------------ scikit-learn protocol
    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters if name != "self"}

    def set_params(self, **params) -> GNNGMM:
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"GNNGMM has no parameter {name!r}; valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        changed = {k: v for k, v in self.get_params().items() if not _same(v, defaults[k])}
        return f"GNNGMM({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ------------------------------------------------------------------ the configuration
    @classmethod
    def from_config(cls, config: dict) -> GNNGMM:
        """The estimator a ``python train.py`` config describes (a resolved, plain ``dict``): the
        one mapping from config keys to arguments, used by ``train`` and by ``load``."""
        gmm, trainer, data = dict(config["gmm"]), dict(config.get("trainer") or {}), dict(config.get("data") or {})
        opt = dict(config.get("optimizer") or {"_target_": "torch.optim.Adam"})
        extra_opt = set(opt) - {"_target_", "_partial_", "lr", "weight_decay"}
        return cls(
            n_clusters=gmm.get("k"),
            encoder=dict(config["encoder"]),
            objective=dict(config["objective"]) if config.get("objective") else None,
            covariance_type=gmm["covariance_type"],
            max_epochs=trainer.get("max_epochs", 220),
            finetune_epochs=gmm["finetune_epochs"],
            gmm_loss_weight=gmm["loss_weight"],
            lr=opt.get("lr", 1e-3),
            weight_decay=opt.get("weight_decay", 0.0),
            optimizer=opt if extra_opt else opt["_target_"].rsplit(".", 1)[-1],
            normalize_features=data.get("normalize_features", "none"),
            anomaly_score=config.get("anomaly_score", "nll"),
            contamination=config.get("contamination", 0.1),
            k_range=tuple(gmm["k_range"]),
            k_criterion=gmm.get("k_criterion", "bic"),
            gmm_kwargs={k: v for k, v in gmm.items() if k not in _FLAT_GMM_KEYS},
            embedding_kwargs=dict(gmm.get("embedding") or {}),
            data_kwargs={k: data[k] for k in _DATA_KEYS if k in data},
            random_state=config.get("seed", 0),
            accelerator=trainer.get("accelerator", "auto"),
            devices=trainer.get("devices", 1),
            trainer_kwargs={k: v for k, v in trainer.items() if k not in _TRAINER_FIXED},
            verbose=True,
        )

    def resolved_settings(self) -> dict:
        """Every setting the fit will use, the packaged YAML filling in what was not given: the
        encoder and objective specs, the GMM engine, schedule, embedding, data and trainer."""
        defaults = group_config("gmm", "default")
        gmm = {k: v for k, v in defaults.items() if k not in _FLAT_GMM_KEYS}
        unknown = set(self.gmm_kwargs or {}) - set(gmm) - _engine_keys()
        if unknown:
            raise InputError(f"gmm_kwargs: unknown setting(s) {sorted(unknown)}; known: {sorted(set(gmm) | _engine_keys())}")
        gmm.update(self.gmm_kwargs or {})
        embedding = {**defaults["embedding"], **(self.embedding_kwargs or {})}
        unknown = set(embedding) - set(inspect.signature(EmbeddingTransform.__init__).parameters)
        if unknown:
            raise InputError(f"embedding_kwargs: unknown setting(s) {sorted(unknown)}")
        train_cfg = root_config("train")
        data = {k: train_cfg["data"][k] for k in _DATA_KEYS}
        unknown = set(self.data_kwargs or {}) - set(data)
        if unknown:
            raise InputError(f"data_kwargs: unknown setting(s) {sorted(unknown)}; known: {list(_DATA_KEYS)}")
        data.update(self.data_kwargs or {})
        # the progress bar follows `verbose` unless trainer_kwargs says otherwise (the CLI's config does)
        trainer = {k: v for k, v in group_config("trainer", "default").items()
                   if k not in (*_TRAINER_FIXED, "enable_progress_bar") and not (isinstance(v, str) and "${" in v)}
        trainer.update(self.trainer_kwargs or {})
        return {
            "encoder": self.encoder if isinstance(self.encoder, nn.Module)
            else component_spec(self.encoder, "encoder", self.encoder_kwargs),
            "objective": None if self.objective is None else self.objective if isinstance(self.objective, nn.Module)
            else component_spec(self.objective, "objective", self.objective_kwargs),
            "gmm": gmm, "embedding": embedding, "data": data, "trainer": trainer,
        }

    def _check_params(self) -> dict:
        """Every argument checked at once (before any data is touched); returns the settings."""
        resolve_k(self.n_clusters)
        kinds = COVARIANCE_TYPES + EXTRA_COVARIANCE_TYPES
        checks = [
            (self.covariance_type in kinds, "gmm.covariance_type", "covariance_type", self.covariance_type, f"one of {', '.join(kinds)}"),
            (_is_int(self.max_epochs) and self.max_epochs >= 1, "trainer.max_epochs", "max_epochs", self.max_epochs, "an integer >= 1"),
            (_is_int(self.finetune_epochs) and self.finetune_epochs >= 0, "gmm.finetune_epochs", "finetune_epochs", self.finetune_epochs, "an integer >= 0"),
            (_is_number(self.gmm_loss_weight) and self.gmm_loss_weight >= 0, "gmm.loss_weight", "gmm_loss_weight", self.gmm_loss_weight, "a number >= 0"),
            (_is_number(self.lr) and self.lr > 0, "optimizer.lr", "lr", self.lr, "a number > 0"),
            (_is_number(self.weight_decay) and self.weight_decay >= 0, "optimizer.weight_decay", "weight_decay", self.weight_decay, "a number >= 0"),
            (self.normalize_features in FEATURE_NORMS or self.normalize_features is None, "data.normalize_features", "normalize_features",
             self.normalize_features, f"one of {', '.join(FEATURE_NORMS)}"),
            (self.anomaly_score in SCORES, "anomaly_score", "anomaly_score", self.anomaly_score, f"one of {', '.join(SCORES)}"),
            (_is_number(self.contamination) and 0 < self.contamination <= 0.5, "contamination", "contamination", self.contamination, "a number in (0, 0.5]"),
            (self.k_criterion in CRITERIA, "gmm.k_criterion", "k_criterion", self.k_criterion, f"one of {', '.join(CRITERIA)}"),
            (_valid_k_range(self.k_range), "gmm.k_range", "k_range", self.k_range, "[low, high] with 1 <= low <= high, or a list of K"),
            (self.random_state is None or _is_int(self.random_state), "seed", "random_state", self.random_state, "an integer or None"),
        ]
        for ok, key, name, value, allowed in checks:
            if not ok:
                where = f" (GNNGMM argument {name})" if name != key else ""
                raise InputError(f"{key}={value!r} is not {allowed}{where}")
        settings = self.resolved_settings()
        loader = settings["data"]["loader"]
        if loader not in LOADERS:
            raise InputError(f"data.loader={loader!r} is not one of {', '.join(LOADERS)}")
        if settings["gmm"]["loss_on"] not in ("clean", "views"):
            raise InputError(f"gmm.loss_on={settings['gmm']['loss_on']!r} is not one of clean, views")
        for key, example in (("keep_best", 0.05), ("keep_best_silhouette", 0.25)):
            share = settings["gmm"].get(key)
            if share is not None and not (_is_number(share) and 0 <= share < 1):
                raise InputError(f"gmm.{key}={share!r} is not null or a share in [0, 1), e.g. {example}")
        if settings["gmm"].get("steer", "none") not in STEER:
            raise InputError(f"gmm.steer={settings['gmm']['steer']!r} is not one of {', '.join(STEER)}")
        steer_weight = settings["gmm"].get("steer_weight", 1.0)
        if settings["gmm"].get("steer") == "augment" and not (_is_number(steer_weight) and 0 <= steer_weight <= 1):
            raise InputError(f"gmm.steer_weight={steer_weight!r} is not a share in [0, 1] (gmm.steer=augment mixes "
                             "uniform and component-driven edge dropping)")
        if settings["gmm"].get("steer") == "augment" and loader != "full":
            raise InputError(f"gmm.steer=augment needs every node's responsibilities in each step: data.loader={loader} "
                             "is not full; use data.loader=full or another gmm.steer")
        if isinstance(self.optimizer, str) and not hasattr(torch.optim, self.optimizer):
            raise InputError(f"optimizer={self.optimizer!r} is not a torch.optim class")
        return settings

    # ------------------------------------------------------------------ building
    def _loss_start(self, gmm: dict) -> int:
        if gmm.get("loss_start_epoch") is not None:
            return int(gmm["loss_start_epoch"])
        return max(1, int(self.max_epochs) - int(self.finetune_epochs))

    def _build_module(self, settings: dict, num_features: int, k: int):
        """Encoder, objective, GMM and transform, in this order (the order fixes the RNG draws)."""
        from gnngmm.module import GNNGMMModule

        spec = settings["encoder"]
        encoder = spec if isinstance(spec, nn.Module) else build(spec, in_channels=num_features)
        spec = settings["objective"]
        objective = spec if spec is None or isinstance(spec, nn.Module) else build(spec, dim=encoder.out_channels)
        gmm = settings["gmm"]
        engine = {k_: v for k_, v in gmm.items() if k_ in _engine_keys()}
        mixture = GaussianMixture(k, covariance_type=self.covariance_type, random_state=self.random_state,
                                  **{"degenerate": "recover", **engine})
        if isinstance(self.optimizer, dict):
            opt_spec = {**self.optimizer, "lr": self.lr, "weight_decay": self.weight_decay}
            optimizer = partial(locate(opt_spec["_target_"]), **{k_: v for k_, v in opt_spec.items() if not k_.startswith("_")})
        else:
            optimizer = partial(getattr(torch.optim, self.optimizer), lr=self.lr, weight_decay=self.weight_decay)
        return GNNGMMModule(
            encoder, objective, mixture, EmbeddingTransform(**settings["embedding"]), optimizer=optimizer,
            gmm_loss_weight=self.gmm_loss_weight, gmm_loss_start_epoch=self._loss_start(gmm),
            gmm_loss_scale_free=gmm["loss_scale_free"], gmm_loss_on=gmm["loss_on"], num_features=num_features,
            seed=self.random_state or 0, steer=gmm.get("steer", "none"), steer_weight=gmm.get("steer_weight", 1.0),
            steer_start_epoch=gmm.get("steer_start_epoch"),
        )

    def _datamodule(self, data, settings: dict) -> GraphDataModule:
        return GraphDataModule(
            name="data", data=data, normalize_features=self.normalize_features or "none", clean=bool(self.preprocess),
            keep_raw_features=self.anomaly_score in COMBINATION_RULES, seed=self.random_state or 0, **settings["data"],
        )

    def _trainer(self, settings: dict, callbacks: list, logger):
        import lightning as L
        from lightning.pytorch.callbacks import Checkpoint

        # the data module shards mini-batches itself (per rank, resume-exact): Lightning's sampler is off
        kwargs = {"enable_progress_bar": bool(self.verbose), "use_distributed_sampler": False, **settings["trainer"]}
        kwargs.update(
            max_epochs=int(self.max_epochs), accelerator=self.accelerator, devices=self.devices,
            logger=logger or False, enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks),
        )
        trainer = L.Trainer(callbacks=callbacks, **kwargs)
        if trainer.world_size > 1 and settings["data"]["loader"] == "full":
            raise InputError(
                f"data.loader=full under DDP ({trainer.world_size} processes): every process would take the same "
                "whole-graph step, N times the cost for no speed-up. Use a sampled loader: data.loader=neighbor "
                "(GNN encoders), data.loader=nodes with data.precompute=sign encoder=mlp, or data.loader=random_nodes"
            )
        return trainer

    # ------------------------------------------------------------------ fitting
    def fit(self, data, y=None) -> GNNGMM:
        """Train the encoder and fit the mixture on ``data`` (a PyG ``Data`` with ``x`` and
        ``edge_index``). ``y`` and ``data.y`` / ``data.outlier`` are ignored."""
        settings = self._check_params()
        return self.fit_datamodule(self._datamodule(data, settings), settings=settings)

    def fit_datamodule(
        self, datamodule: GraphDataModule, *, callbacks=(), logger=None, ckpt_path=None, evaluate=None,
        run_config: dict | None = None, settings: dict | None = None,
    ) -> GNNGMM:
        """``fit`` on a :class:`GraphDataModule` (what ``python train.py`` passes), with extra
        Lightning ``callbacks`` / ``logger``, a checkpoint to resume from, and ``evaluate``: a
        function of each refit's :class:`HeadResult` whose numbers are logged (reporting only)."""
        from gnngmm.callbacks import EMRefit

        settings = settings or self._check_params()
        gmm = settings["gmm"]
        with _library_call(self.verbose):
            datamodule.setup("fit")
            graph = datamodule.data
            if isinstance(settings["encoder"], dict):  # a full-batch step that would not fit: neighbor loader, or stop
                from gnngmm.memory import guard_full_batch

                objective = settings["objective"] if isinstance(settings["objective"], dict) else None
                guard_full_batch(datamodule, settings["encoder"], objective, self.accelerator)
                settings["data"]["loader"] = datamodule.loader
            k = resolve_k(self.n_clusters, graph.num_nodes)
            k_range = list(self.k_range) if k is None else None
            if k_range is not None and int(k_range[0]) > graph.num_nodes:
                raise InputError(f"gmm.k_range={k_range} starts above the number of nodes ({graph.num_nodes})")
            if self.random_state is not None:
                import lightning as L

                L.seed_everything(int(self.random_state), workers=True, verbose=False)
            module = self._build_module(settings, graph.num_features, k or int(k_range[0]))
            module.run_config = run_config
            if k is not None and k > 0.1 * graph.num_nodes:
                warn_large_k(k, graph.num_nodes, settings["embedding"].get("pca_dim") or module.encoder.out_channels,
                             self.covariance_type)
            refits = EMRefit(
                gmm["refit_every_n_epochs"], gmm["refit_max_iter"], k_range,
                loss_start_epoch=self._loss_start(gmm) if self.gmm_loss_weight > 0 else None,
                reseed_at_loss_start=gmm["reseed_at_loss_start"], k_criterion=self.k_criterion, evaluate=evaluate,
                keep_best=gmm.get("keep_best"), keep_best_silhouette=gmm.get("keep_best_silhouette"),
            )
            trainer = self._trainer(settings, [refits, *callbacks], logger)
            epochs = 0
            if module.trainable and module.objective is not None:
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
                epochs = trainer.current_epoch
            else:
                log.info("encoder %s has nothing to train: fitting the GMM on its output directly",
                         getattr(module.encoder, "arch", type(module.encoder).__name__))
            module.to(trainer.strategy.root_device)  # Lightning's teardown left it on the CPU
            final = refit(
                module, graph, max_iter=gmm["max_iter"], k_range=k_range, k_criterion=self.k_criterion,
                fresh_inits=gmm["n_init"] if gmm["final_fresh_fit"] else 0,
            )
            self._set_fitted(module, graph, final, datamodule.node_ids, epochs, trainer.is_global_zero)
            self.world_size_ = int(trainer.world_size)
        return self

    def _set_fitted(self, module, graph, final: HeadResult, node_ids, epochs: int, is_global_zero: bool = True) -> None:
        self.module_ = module.eval()
        self.gmm_ = module.gmm
        self.n_clusters_ = final.k
        self.labels_ = final.pred
        self.history_ = list(module.history)
        self.bic_table_ = final.bic_table or module.bic_table
        self.n_features_in_ = graph.num_features
        self.epochs_ = int(epochs)
        self.restored_epoch_ = getattr(module, "restored_epoch", None)  # set when the safeguard went back
        self.node_ids_ = node_ids
        self.is_global_zero_ = is_global_zero
        self.result_ = final
        self._graph = graph
        self.decision_scores_, self.channels_ = anomaly_scores(self.anomaly_score, -final.score_samples, graph, final.z)
        self.threshold_ = outlier_threshold(self.decision_scores_, self.contamination)

    # ------------------------------------------------------------------ results
    def _check_fitted(self) -> None:
        if not hasattr(self, "module_"):
            raise RuntimeError("this GNNGMM is not fitted yet; call fit(data) first")

    def _scored(self, data) -> tuple:
        """``(graph, z, log_prob)`` of the training graph (``data=None``) or of a new graph."""
        self._check_fitted()
        if data is None:
            if getattr(self, "result_", None) is None:
                raise InputError("this model was loaded without its training graph's results: pass the graph, e.g. predict(data)")
            return self._graph, self.result_.z, self.result_.log_prob
        with _library_call(self.verbose):
            settings = self.resolved_settings()
            datamodule = self._datamodule(data, settings)
            datamodule.setup("predict")
            graph = datamodule.data
            if graph.num_features != self.n_features_in_:
                raise InputError(f"the graph has {graph.num_features} features after preprocessing, the model was fitted on {self.n_features_in_}")
            z = self.module_.gmm_input(graph)
            return graph, z, self.gmm_.log_prob_table(z)

    def predict(self, data=None) -> torch.Tensor:
        """(N,) cluster of every node (the mixture's most responsible component)."""
        if data is None and getattr(self, "labels_", None) is not None:
            return self.labels_
        return self._scored(data)[2].argmax(1).cpu()

    def fit_predict(self, data, y=None) -> torch.Tensor:
        return self.fit(data).labels_

    def predict_proba(self, data=None) -> torch.Tensor:
        """(N, K) responsibilities."""
        return torch.softmax(self._scored(data)[2], dim=1).cpu()

    def transform(self, data=None) -> torch.Tensor:
        """(N, d) embeddings as the mixture models them (encoder output after the fitted transform)."""
        return self._scored(data)[1].cpu()

    def score_samples(self, data=None) -> torch.Tensor:
        """(N,) log-density of every node's embedding under the mixture (higher = more typical)."""
        return torch.logsumexp(self._scored(data)[2], dim=1).cpu()

    def decision_function(self, data=None) -> torch.Tensor:
        """(N,) outlier score by ``anomaly_score``: higher is more anomalous."""
        if data is None and getattr(self, "decision_scores_", None) is not None:
            return self.decision_scores_
        graph, z, log_prob = self._scored(data)
        return anomaly_scores(self.anomaly_score, -torch.logsumexp(log_prob, 1), graph, z)[0]

    def predict_outliers(self, data=None) -> torch.Tensor:
        """(N,) 1 for the nodes scoring above ``threshold_`` (the ``contamination`` share of the
        training graph), else 0."""
        if getattr(self, "threshold_", None) is None:
            raise InputError("no threshold_: this model was loaded from a training checkpoint without scores; load the run's model.ckpt")
        return (self.decision_function(data) > self.threshold_).long()

    def bic(self, data=None) -> float:
        return self.gmm_.bic(self._scored(data)[1])

    def aic(self, data=None) -> float:
        return self.gmm_.aic(self._scored(data)[1])

    def prediction_table(self, data=None) -> dict:
        """One row per node, as columns: node id, cluster, max responsibility, entropy, NLL, the
        anomaly score, each of its channels, and the 0/1 outlier flag (``predictions.csv``)."""
        graph, z, log_prob = self._scored(data)
        cluster, max_resp, entropy, log_norm = row_summaries(log_prob)
        if data is None:
            score, channels, node_ids = self.decision_scores_, self.channels_, self.node_ids_
        else:
            score, channels = anomaly_scores(self.anomaly_score, -log_norm, graph, z)
            node_ids = getattr(data, "node_ids", None)
        table = {
            "node": list(node_ids) if node_ids is not None else torch.arange(log_prob.shape[0]),
            "cluster": cluster.cpu(),
            "max_responsibility": max_resp.cpu(),
            "entropy": entropy.cpu(),
            "nll": (-log_norm).cpu(),
            "anomaly_score": score,
        }
        table.update({f"channel_{name}": value for name, value in channels.items() if name != "nll"})
        if getattr(self, "threshold_", None) is not None:
            table["is_outlier"] = (score > self.threshold_).long()
        return table

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write the fitted model (weights, mixture, transform, arguments, training-graph results)."""
        self._check_fitted()
        path = Path(path)
        state = {
            "format": "gnngmm-estimator",
            "params": self.get_params(),
            "state_dict": self.module_.state_dict(),
            "gnngmm": self.module_.head_state(),
            "fitted": {
                "labels_": self.labels_, "decision_scores_": self.decision_scores_, "threshold_": self.threshold_,
                "channels_": self.channels_, "n_features_in_": self.n_features_in_, "epochs_": self.epochs_,
                "node_ids_": None if self.node_ids_ is None else [str(i) for i in self.node_ids_],
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path, *, weights_only: bool = True) -> GNNGMM:
        """A model saved by ``save``, or the ``last.ckpt`` / ``model.ckpt`` of a ``python train.py``
        run. ``weights_only=False`` is needed (trusted files only) for a model whose encoder or
        objective was a custom module."""
        import pickle

        path = Path(path)
        if not path.is_file():
            raise InputError(f"checkpoint not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=weights_only)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
            hint = " (it holds Python objects: if you trust it, GNNGMM.load(path, weights_only=False))" if weights_only else ""
            raise InputError(f"{path} is not a readable checkpoint{hint}: {type(err).__name__}: {str(err).splitlines()[0]}") from None
        head = state.get("gnngmm") if isinstance(state, dict) else None
        if not head or not head.get("gmm"):
            raise InputError(f"{path} is not a gnngmm checkpoint with a fitted GMM (no 'gnngmm' state)")
        if state.get("params") is not None:
            model = cls(**state["params"])
        elif head.get("config"):
            model = cls.from_config(head["config"])
        else:
            raise InputError(f"{path} carries neither the estimator's arguments nor the run's config")
        fitted = state.get("fitted") or {}
        num_features = head.get("num_features") or fitted.get("n_features_in_")
        if num_features is None:
            raise InputError(f"{path} was written by an older gnngmm without the input width; retrain")
        with _library_call(model.verbose):
            module = model._build_module(model.resolved_settings(), int(num_features), int(head["gmm"]["n_components"]))
            module.load_state_dict(state["state_dict"])
            module.load_head_state(head)
            module.run_config = head.get("config")
        model.module_ = module.eval()
        model.gmm_ = module.gmm
        model.n_clusters_ = module.gmm.n_components
        model.history_ = list(module.history)
        model.bic_table_ = module.bic_table
        model.n_features_in_ = int(num_features)
        model.result_ = None
        model._graph = None
        model.node_ids_ = fitted.get("node_ids_")
        for name in ("labels_", "decision_scores_", "threshold_", "channels_", "epochs_"):
            setattr(model, name, fitted.get(name))
        return model


class GNNGMMWarning(UserWarning):
    """A setting that runs but probably not as intended (filter with ``warnings.filterwarnings``)."""


def warn_large_k(k: int, num_nodes: int, dim: int, covariance_type: str) -> None:
    """gmm.k above 10% of the nodes: say what each EM refit will hold before it is paid for."""
    tables = 6 * num_nodes * k * 8  # (N, K) log-probabilities, responsibilities and their temporaries
    params = k * dim * dim * 8 * (3 if covariance_type == "full" else 0)
    warnings.warn(
        f"gmm.k={k} is above 10% of the {num_nodes} nodes: every EM refit holds (N, K) tables of about "
        f"{(tables + params) / 2**20:,.0f} MB and fits {k} components (minutes per refit on a CPU); clusters that "
        "small are rarely meant -- gmm.k=auto picks K by BIC", GNNGMMWarning, stacklevel=3,
    )


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _valid_k_range(value) -> bool:
    try:
        ks = [int(k) for k in value]
    except (TypeError, ValueError):
        return False
    if len(ks) == 2:
        return 1 <= ks[0] <= ks[1]
    return bool(ks) and all(k >= 1 for k in ks)


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - tensors, modules: compare by identity
        return a is b

