"""``GNNGMM``: the whole pipeline as a scikit-learn / PyGOD-style estimator for any PyG graph.

    from gnngmm import GNNGMM
    model = GNNGMM(n_clusters=7).fit(data)           # data: torch_geometric.data.Data (x, edge_index)
    model.labels_, model.predict_proba(), model.decision_function(), model.predict_outliers()
    model.save("model.ckpt"); GNNGMM.load("model.ckpt").predict(data)

Its parameters are the command line's config groups: a component (``encoder``, ``objective``,
``optimizer``, ``steer``, ``safeguard``) is an option name of ``conf/<group>``, a spec dict (with
``_target_``; without one, overrides of the default option) or an object; a settings group
(``gmm``, ``head``, ``loss``, ``data``, ``trainer``) is a dict of the settings to change. Left out,
everything is the packaged ``conf/`` value, the one source of every default; ``python train.py``
builds this same estimator from its config and calls the same fit.

Label contract: ``fit`` ignores ``y`` and ``data.y`` / ``data.outlier`` (and never modifies the
caller's ``Data``). Clusters, responsibilities, log-densities and anomaly scores are computed
without labels; compare them with labels through :func:`gnngmm.metrics.evaluate`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from gnngmm.anomaly import COMBINATION_RULES
from gnngmm.base import GNNGMMWarning, GraphClusterer, graph_fingerprint, library_call
from gnngmm.data.datamodule import GraphDataModule
from gnngmm.errors import InputError
from gnngmm.options import default_choice, root_config
from gnngmm.pipeline import (
    build_module,
    build_reference,
    build_refits,
    build_trainer,
    resolve_settings,
    warn_large_k,
)
from gnngmm.reference import log_check
from gnngmm.validation import check_n_clusters, check_params

log = logging.getLogger("gnngmm")

_RUN = root_config("train")  # the run-level defaults (anomaly_score, contamination, seed)

__all__ = ["GNNGMM", "GNNGMMWarning"]


class GNNGMM(GraphClusterer):
    """GNN encoder + Gaussian-mixture head: node clusters, responsibilities, log-densities and
    anomaly scores of an attributed graph.

    Args:
        n_clusters (int or "auto", optional): mixture components; ``"auto"`` chooses K in
            ``gmm["k_range"]`` by ``gmm["k_criterion"]`` (BIC). Required: no graph-specific default.
        encoder (str, dict, nn.Module or callable): ``conf/encoder`` option (gcn, sage, gat, mlp,
            sgc), spec, module (``(x, edge_index) -> h`` with ``out_channels`` and
            ``full_graph_embedding``) or factory ``in_channels -> module``. (default: ``"gcn"``)
        objective (str, dict, Objective, callable or None): ``conf/objective`` option (ns4gc,
            cca_ssg, dgi, grace, gae), spec, module, factory, or None (no training). (default: ``"ns4gc"``)
        optimizer (str, dict or callable): ``conf/optimizer`` option, spec (e.g. ``{"lr": 1e-2}``
            overrides Adam's), or ``params -> Optimizer``. (default: ``"adam"``)
        gmm (dict, optional): ``conf/gmm`` settings: ``covariance_type``, ``reg_covar``, ``tol``,
            ``max_iter``, ``n_init``, ``k_range``, ``k_criterion``, ... (any ``GaussianMixture`` argument).
        head (dict, optional): ``conf/head`` settings: refit schedule and ``transform``.
        loss (dict, optional): ``conf/loss`` settings of the GMM term: ``weight``, ``finetune_epochs``, ...
        steer (str, dict or Steering): ``conf/steer`` option or strategy. (default: ``"none"``)
        safeguard (str, dict or list): ``conf/safeguard`` option, a dict name -> spec, or a list of
            :class:`~gnngmm.safeguards.Safeguard`. (default: ``"default"``)
        reference (str, dict, TrainingFreeReference or None): ``conf/reference`` option (``ms2cag``,
            ``none``), spec (e.g. ``{"adopt": False}`` overrides the default's), object, or None:
            the training-free partition the trained one is judged against after the final refit,
            adopted when the trained one loses (:mod:`gnngmm.reference`). (default: ``"ms2cag"``)
        data (dict, optional): ``conf/data`` preparation and batching settings (``normalize_features``,
            ``clean``, ``loader``, ``batch_size``, ``precompute``, ...) for a graph given as ``Data``.
        trainer (dict, optional): ``lightning.Trainer`` arguments (``max_epochs``, ``accelerator``, ...).
        anomaly_score (str): ``combined``, ``combined_max``, ``nll``, ``nll+neighbor`` or
            ``neighbor``. (default: ``"combined"``)
        contamination (float): share of nodes ``predict_outliers`` flags; sets ``threshold_``.
            (default: ``0.1``)
        random_state (int, numpy RandomState or None): seeds the whole run; the caller's global RNG
            states are restored afterwards. (default: ``0``)
        verbose (bool): progress bar and Lightning's messages. (default: ``False``)

    Fitted attributes: ``labels_``, ``decision_scores_``, ``threshold_``, ``channels_`` (each
    anomaly channel), ``n_clusters_``, ``gmm_``, ``history_`` (one row per refit), ``bic_table_``,
    ``restored_epoch_``, ``reference_`` (the reference check's record, or None), ``epochs_``,
    ``module_``, ``result_``, ``n_features_in_``, ``node_ids_``, ``feature_names_in_`` (the input
    columns' names, where the graph has them).
    """

    def __init__(
        self,
        n_clusters=None,
        *,
        encoder=default_choice("encoder"),
        objective=default_choice("objective"),
        optimizer=default_choice("optimizer"),
        gmm=None,
        head=None,
        loss=None,
        steer=default_choice("steer"),
        safeguard=default_choice("safeguard"),
        reference=default_choice("reference"),
        data=None,
        trainer=None,
        anomaly_score=_RUN["anomaly_score"],
        contamination=_RUN["contamination"],
        random_state=_RUN["seed"],
        verbose=False,
    ):
        self.n_clusters = n_clusters
        self.encoder = encoder
        self.objective = objective
        self.optimizer = optimizer
        self.gmm = gmm
        self.head = head
        self.loss = loss
        self.steer = steer
        self.safeguard = safeguard
        self.reference = reference
        self.data = data
        self.trainer = trainer
        self.anomaly_score = anomaly_score
        self.contamination = contamination
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def settings(self) -> dict:
        """Every setting the fit will use, checked (:mod:`gnngmm.validation`), the packaged
        ``conf/`` values filling in what was not given."""
        params = self.get_params()
        settings = resolve_settings(params)
        check_params(params, settings)
        return settings

    def fit(self, data, y=None, *, callbacks=(), logger=None, ckpt_path=None, monitor=None) -> GNNGMM:
        """Train the encoder and fit the mixture.

        Args:
            data (Data or GraphDataModule): a PyG ``Data`` with ``x`` and ``edge_index`` (prepared by
                the ``data`` settings; ``y`` / ``outlier`` are ignored), or a data module (its own
                preparation and batching, as the command line passes).
            y: ignored (scikit-learn's signature).
            callbacks (sequence): extra Lightning callbacks.
            logger: a Lightning logger (or a list), or None.
            ckpt_path (str, optional): a ``last.ckpt`` to resume training from.
            monitor (callable, optional): maps each refit's :class:`~gnngmm.head.HeadResult` to
                numbers to log (reporting only: nothing reads them back).

        Returns:
            self.

        Raises:
            InputError: a bad setting or graph, before any training.
        """
        settings = self.settings()
        seed = _seed(self.random_state)
        datamodule = data if isinstance(data, GraphDataModule) else self._datamodule(data, settings, seed)
        with library_call(self.verbose):
            datamodule.setup("fit")
            graph = datamodule.data
            _guard_memory(datamodule, settings)
            settings["data"]["loader"] = datamodule.loader  # what the steps will see
            k = check_n_clusters(self.n_clusters, graph.num_nodes)
            k_range = None if k is not None else list(settings["gmm"]["k_range"])
            if k_range is not None and int(k_range[0]) > graph.num_nodes:
                raise InputError(f"gmm.k_range={k_range} starts above the number of nodes ({graph.num_nodes})")
            if seed is not None:
                import lightning as L

                L.seed_everything(seed, workers=True, verbose=False)
            origin = {
                "params": self.get_params(),
                "num_features": int(graph.num_features),
                "data": datamodule.describe(),
                "preparation": datamodule.preparation(),
            }
            module = build_module(
                settings, graph.num_features, k or int(k_range[0]), seed, k_range=k_range, origin=origin
            )
            if k is not None and k > 0.1 * graph.num_nodes:
                dim = settings["head"]["transform"].get("pca_dim") or module.encoder.out_channels
                warn_large_k(k, graph.num_nodes, dim, settings["gmm"]["covariance_type"])
            trainer = build_trainer(settings, [build_refits(settings, monitor), *callbacks], logger, self.verbose)
            epochs = 0
            if module.trainable:
                trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
                epochs = trainer.current_epoch
            else:
                log.info(
                    "encoder %s has nothing to train: fitting the GMM on its output directly",
                    getattr(module.encoder, "arch", type(module.encoder).__name__),
                )
            module.to(trainer.strategy.root_device)  # Lightning's teardown left it on the CPU
            h = module.embed(graph)
            final = module.head.final_refit(h)
            final, self.reference_ = _judge(build_reference(settings), module, graph, h, final, seed)
            self._set_fitted(module, graph, final, datamodule, epochs)
            self.world_size_ = int(trainer.world_size)
            self.is_global_zero_ = bool(trainer.is_global_zero)
        return self

    def _datamodule(self, data, settings: dict, seed) -> GraphDataModule:
        return GraphDataModule(
            name="data",
            data=data,
            seed=seed or 0,
            keep_raw_features=self.anomaly_score in COMBINATION_RULES,
            **settings["data"],
        )

    def _set_fitted(self, module, graph, final, datamodule: GraphDataModule, epochs: int) -> None:
        self.module_ = module.eval()
        self.gmm_ = module.head.mixture
        self.n_clusters_ = final.k
        self.labels_ = final.pred
        self.history_ = list(module.head.history)
        self.bic_table_ = final.bic_table or module.head.bic_table
        self.restored_epoch_ = module.head.restored_epoch
        self.n_features_in_ = int(graph.num_features)
        self.epochs_ = int(epochs)
        self.node_ids_ = datamodule.node_ids
        self.feature_names_in_ = datamodule.feature_names
        self.preparation_ = datamodule.preparation()
        self.result_ = final
        self.graph_fingerprint_ = graph_fingerprint(graph)
        self._graph = graph
        self._set_scores(graph, final.z, final.score_samples)

    # ------------------------------------------------------------------ scoring
    def _scored(self, data) -> tuple:
        """``(graph, z, log_prob)`` of the training graph (``data=None``) or of a new graph."""
        self._check_fitted()
        if data is None:
            if getattr(self, "result_", None) is None:
                raise InputError(
                    "this model was loaded without its training graph's results: pass the graph, e.g. predict(data)"
                )
            return self._graph, self.result_.z, self.result_.log_prob
        with library_call(self.verbose):
            datamodule = GraphDataModule(name="data", data=data, **self.preparation_)
            datamodule.setup("predict")
            graph = datamodule.data
            if graph.num_features != self.n_features_in_:
                raise InputError(
                    f"the graph has {graph.num_features} features after preprocessing, the model was "
                    f"fitted on {self.n_features_in_}"
                )
            z = self.module_.gmm_input(graph)
            return graph, z, self.gmm_.log_prob_table(z)

    def explain(self, data=None, *, labels=None, node_ids=None, feature_names=None, **options) -> dict:
        """What the clusters are and why nodes are flagged, as ``pandas`` tables
        (:func:`gnngmm.explain.explain_model`): ``clusters`` (size, weight, responsibility,
        entropy, cohesion, top features, typical nodes), ``features``, ``typical``, ``edges``
        (K x K), ``anomalies`` (the top outliers and ``node_ids`` with each channel's tail p-value
        and the driving channel), ``map`` (a 2-D sample), and with ``labels`` ``contingency`` and
        ``classes`` (which classes are merged or split).

        Args:
            data (Data, optional): the graph; None: the training graph (as prepared).
            labels (Tensor, optional): ``(N,)`` classes, for the agreement tables only.
            node_ids (sequence, optional): nodes to explain besides the top outliers.
            feature_names (sequence of str, optional): the feature columns' names.
            **options: :func:`~gnngmm.explain.explain_model`'s other arguments.
        """
        from gnngmm.explain import explain_model

        self._check_fitted()
        graph = self._graph if data is None else data
        if graph is None:
            raise InputError("this model was loaded without its training graph: pass the graph, e.g. explain(data)")
        if feature_names is None and data is None:
            feature_names = getattr(self, "feature_names_in_", None)
        if feature_names is not None and len(feature_names) != getattr(graph, "raw_x", graph.x).shape[1]:
            feature_names = None  # names of the raw columns, but the graph holds pre-propagated ones
        return explain_model(self, graph, labels=labels, node_ids=node_ids, feature_names=feature_names, **options)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write the fitted model: weights, head state, the estimator's parameters and the
        training graph's results (a ``last.ckpt``-compatible layout, atomically)."""
        self._check_fitted()
        path = Path(path)
        state = {
            "format": "gnngmm-estimator",
            "state_dict": self.module_.state_dict(),
            "gnngmm": {"head": self.module_.head.state_dict(), "origin": self.module_.origin},
            "fitted": {
                "labels_": self.labels_,
                "decision_scores_": self.decision_scores_,
                "threshold_": self.threshold_,
                "channels_": self.channels_,
                "epochs_": self.epochs_,
                "node_ids_": None if self.node_ids_ is None else [str(i) for i in self.node_ids_],
                "feature_names_in_": self.feature_names_in_,
                "reference_": self.reference_,
                "graph_fingerprint_": self.graph_fingerprint_,
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path, *, weights_only: bool = True) -> GNNGMM:
        """A model saved by :meth:`save`, or the ``model.ckpt`` / ``checkpoints/last.ckpt`` of a
        ``python train.py`` run. ``weights_only=False`` is needed (trusted files only) for a model
        whose parameters hold Python objects (a custom encoder or objective module)."""
        state = _read_checkpoint(Path(path), weights_only)
        origin = state["gnngmm"].get("origin") or {}
        if not origin.get("params"):
            raise InputError(f"{path} does not record the estimator's parameters; retrain with this gnngmm")
        model = cls(**origin["params"])
        head = state["gnngmm"]["head"]
        with library_call(model.verbose):
            seed = _seed(model.random_state)
            module = build_module(
                model.settings(), int(origin["num_features"]), int(head["mixture"]["n_components"]), seed, origin=origin
            )
            module.load_state_dict(state["state_dict"])
            module.head.load_state_dict(head)
        fitted = state.get("fitted") or {}
        model.module_ = module.eval()
        model.gmm_ = module.head.mixture
        model.n_clusters_ = module.head.mixture.n_components
        model.history_ = list(module.head.history)
        model.bic_table_ = module.head.bic_table
        model.restored_epoch_ = module.head.restored_epoch
        model.n_features_in_ = int(origin["num_features"])
        model.preparation_ = origin["preparation"]
        model.data_source_ = origin.get("data")
        model.result_, model._graph = None, None
        model.node_ids_ = fitted.get("node_ids_")
        for name in (
            "labels_",
            "decision_scores_",
            "threshold_",
            "channels_",
            "epochs_",
            "feature_names_in_",
            "reference_",
            "graph_fingerprint_",
        ):
            setattr(model, name, fitted.get(name))
        return model


def _judge(reference, module, graph, h, final, seed):
    """``(result, record)``: the final refit, or the mixture refit to the training-free reference's
    partition when that wins (:mod:`gnngmm.reference`); the check's record (None without one)."""
    if reference is None:
        return final, None
    check = reference.check(graph.x, graph.edge_index, final.pred, seed=seed or 0)
    log_check(check)
    if check.decision == "reference":
        final = module.head.adopt_partition(h, check.labels)
    return final, check.summary()


def _read_checkpoint(path: Path, weights_only: bool) -> dict:
    import pickle

    if not path.is_file():
        raise InputError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=weights_only)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        hint = (
            " (it holds Python objects: if you trust it, GNNGMM.load(path, weights_only=False))" if weights_only else ""
        )
        raise InputError(
            f"{path} is not a readable checkpoint{hint}: {type(err).__name__}: {str(err).splitlines()[0]}"
        ) from None
    head = (state.get("gnngmm") or {}).get("head") if isinstance(state, dict) else None
    if not head or not head.get("mixture"):
        raise InputError(f"{path} is not a gnngmm checkpoint with a fitted GMM (no 'gnngmm' head state)")
    return state


def _seed(random_state) -> int | None:
    """An int seed from ``random_state`` (an int, a numpy RandomState, or None: no seeding)."""
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    return None if random_state is None else int(random_state)


def _guard_memory(datamodule: GraphDataModule, settings: dict) -> None:
    """A full-batch step that would not fit: the neighbour loader, or stop (:mod:`gnngmm.memory`)."""
    if isinstance(settings["encoder"], dict):
        from gnngmm.memory import guard_full_batch

        objective = settings["objective"] if isinstance(settings["objective"], dict) else None
        guard_full_batch(datamodule, settings["encoder"], objective, settings["trainer"].get("accelerator"))
