"""Building a fit from the estimator's parameters, in one place.

:func:`resolve_settings` turns :class:`gnngmm.GNNGMM`'s parameters into complete settings (the
packaged ``conf/`` values filling in what was not given); :func:`build_module` makes the encoder,
objective, mixture, transform, head, GMM term, steering strategy and optimizer from them, in a
fixed order (the order fixes the RNG draws); :func:`build_refits` the refit schedule with its
safeguards; :func:`build_trainer` the Lightning trainer. Components are made with Hydra's
``instantiate`` from spec dicts (``_target_``), so a YAML file naming a new class is all a new
component needs. Nothing here reads a Hydra config: it receives plain values.
"""

from __future__ import annotations

import inspect
import warnings

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn

from gnngmm.embedding import EmbeddingTransform
from gnngmm.errors import InputError
from gnngmm.head import GMMHead
from gnngmm.loss import GMMTerm
from gnngmm.mixture import GaussianMixture
from gnngmm.options import default_choice, option, resolve_spec, settings
from gnngmm.reference import TrainingFreeReference
from gnngmm.safeguards import Safeguard
from gnngmm.steering import Steering

# GaussianMixture arguments the pipeline sets itself (the rest may be given in `gmm`)
_MIXTURE_FIXED = (
    "self",
    "n_components",
    "random_state",
    "comm",
    "warm_start",
    "weights_init",
    "means_init",
    "precisions_init",
)
# conf/gmm keys that select K rather than configure the engine
_K_SELECTION = ("k_range", "k_criterion")
# conf/data keys that say which graph, not how it is prepared (GraphDataModule.SOURCE_KEYS)
_DATA_SOURCE = ("download", "num_classes", "inject")


def mixture_arguments() -> set[str]:
    """The :class:`GaussianMixture` arguments ``gmm`` settings may carry."""
    return set(inspect.signature(GaussianMixture.__init__).parameters) - set(_MIXTURE_FIXED)


def resolve_settings(params: dict) -> dict:
    """Complete settings from the estimator's parameters (``GNNGMM.get_params()``): component
    specs (or the given modules) for ``encoder``, ``objective``, ``optimizer``, ``steer`` and
    ``safeguard`` (and ``reference``), and the ``gmm``, ``head``, ``loss``, ``data`` and ``trainer`` settings."""
    return {
        "encoder": _component(params["encoder"], "encoder"),
        "objective": None if params["objective"] is None else _component(params["objective"], "objective"),
        "optimizer": _component(params["optimizer"], "optimizer"),
        "steer": _steer(params["steer"]),
        "safeguard": _safeguards(params["safeguard"]),
        "reference": _reference(params["reference"]),
        "gmm": settings("gmm", params["gmm"], ignore=("k",), allowed=mixture_arguments()),
        "head": settings("head", params["head"]),
        "loss": settings("loss", params["loss"]),
        "data": settings("data", params["data"], ignore=_DATA_SOURCE),
        "trainer": settings("trainer", params["trainer"], ignore=("enable_progress_bar",), extensible=True),
    }


def _component(value, group: str):
    """A module, a factory, or a spec dict (an option name or overrides of the default option)."""
    if isinstance(value, nn.Module) or (callable(value) and not isinstance(value, (str, dict))):
        return value
    return resolve_spec(value, group, default_choice(group))


def _steer(value):
    if value is None or isinstance(value, Steering):
        return value
    spec = option("steer", value) if isinstance(value, str) else dict(value)
    if spec and "_target_" not in spec:
        raise InputError(f"steer must be an option name, a spec dict with _target_ or a Steering, got {value!r}")
    return spec or None


def _safeguards(value) -> dict:
    """Name -> spec dict or :class:`Safeguard` (an option name, a dict of those, or a list)."""
    if value is None:
        return {}
    if isinstance(value, str):
        return option("safeguard", value)
    if isinstance(value, (list, tuple)):
        return {f"{i}": guard for i, guard in enumerate(value)}
    if isinstance(value, dict):
        return {name: spec for name, spec in value.items() if spec is not None}
    raise InputError(f"safeguard must be an option name, a dict of specs or a list of Safeguards, got {value!r}")


def _reference(value):
    """A spec dict, a :class:`TrainingFreeReference`, or None (an option name, ``"none"`` or None)."""
    if value is None or isinstance(value, TrainingFreeReference):
        return value
    spec = option("reference", value) if isinstance(value, str) else dict(value)
    if spec and "_target_" not in spec:
        spec = option("reference", default_choice("reference"), **spec)
    return spec or None


def build_reference(settings_: dict) -> TrainingFreeReference | None:
    """The run's training-free reference, or None."""
    spec = settings_["reference"]
    return spec if spec is None or isinstance(spec, TrainingFreeReference) else instantiate_component(spec)


def instantiate_component(spec: dict, **kwargs):
    """Hydra's ``instantiate`` of a spec dict (plain containers out); a bad value surfaces as the
    component's own :class:`InputError`, anything else as one naming the ``_target_``."""
    try:
        return instantiate(spec, _convert_="all", **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, InputError):
            raise cause from None
        raise InputError(f"cannot build {spec.get('_target_')}: {cause or err}") from None


def _make(spec, **call):
    """``spec``: a spec dict (built with Hydra's instantiate), a factory (called) or a module. The
    ``call`` arguments the target accepts are passed (``in_channels``, ``dim``)."""
    if isinstance(spec, nn.Module):
        return spec
    factory = instantiate_component(spec, _partial_=True) if isinstance(spec, dict) else spec
    try:
        accepted = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        accepted = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    try:
        return factory(**{k: v for k, v in call.items() if takes_any or k in accepted})
    except TypeError as err:
        target = spec.get("_target_") if isinstance(spec, dict) else spec
        raise InputError(f"cannot build {target}: {err}") from None


def build_module(settings_: dict, num_features: int, k: int, random_state, *, k_range=None, origin: dict | None = None):
    """The :class:`~gnngmm.module.GNNGMMModule` with ``k`` components for ``num_features`` inputs:
    encoder, objective, mixture, transform (in this order: it fixes the RNG draws), then the head
    (choosing K in ``k_range`` at fresh fits when given), the GMM term, the steering strategy and
    the optimizer."""
    from gnngmm.module import GNNGMMModule

    encoder = _make(settings_["encoder"], in_channels=num_features)
    spec = settings_["objective"]
    objective = None if spec is None else _make(spec, dim=encoder.out_channels)
    gmm = settings_["gmm"]
    engine = {key: value for key, value in gmm.items() if key not in _K_SELECTION}
    mixture = GaussianMixture(k, random_state=random_state, **engine)
    head_cfg = settings_["head"]
    head = GMMHead(
        mixture,
        EmbeddingTransform(**head_cfg["transform"]),
        k_range=k_range,
        k_criterion=gmm["k_criterion"],
        refit_max_iter=head_cfg["refit_max_iter"],
        final_fresh_fit=head_cfg["final_fresh_fit"],
    )
    gmm_term = GMMTerm.from_settings(settings_["loss"], settings_["trainer"]["max_epochs"])
    steer = settings_["steer"]
    steer = None if steer is None else steer if isinstance(steer, Steering) else instantiate_component(steer)
    if steer is not None:
        steer.check(objective, settings_["data"]["loader"])
    optimizer = settings_["optimizer"]
    factory = optimizer if callable(optimizer) else instantiate_component(optimizer, _partial_=True)
    seed = random_state if isinstance(random_state, int) else 0
    return GNNGMMModule(encoder, objective, head, gmm_term, steer, factory, seed=seed, origin=origin)


def build_refits(settings_: dict, evaluate=None):
    """The :class:`~gnngmm.callbacks.EMRefit` schedule with the run's safeguards."""
    from gnngmm.callbacks import EMRefit

    guards = []
    for name, spec in settings_["safeguard"].items():
        guard = spec if isinstance(spec, Safeguard) else instantiate_component(spec)
        if not isinstance(guard, Safeguard):
            raise InputError(f"safeguard.{name}: {type(guard).__name__} is not a gnngmm.safeguards.Safeguard")
        guards.append(guard)
    head = settings_["head"]
    return EMRefit(head["refit_every_n_epochs"], head["reseed_at_loss_start"], guards, evaluate)


def build_trainer(settings_: dict, callbacks: list, logger, verbose: bool):
    """The Lightning trainer. The data module shards mini-batches itself (per rank, exact on
    resume), so Lightning's distributed sampler is off; the progress bar follows ``verbose``
    unless the trainer settings say otherwise."""
    import lightning as L
    from lightning.pytorch.callbacks import Checkpoint

    kwargs = {"enable_progress_bar": bool(verbose), "use_distributed_sampler": False, **settings_["trainer"]}
    kwargs.update(logger=logger or False, enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks))
    trainer = L.Trainer(callbacks=callbacks, **kwargs)
    if trainer.world_size > 1 and settings_["data"]["loader"] == "full":
        raise InputError(
            f"data.loader=full under DDP ({trainer.world_size} processes): every process would take the same "
            "whole-graph step, N times the cost for no speed-up. Use a sampled loader: data.loader=neighbor "
            "(GNN encoders), data.loader=nodes with data.precompute=sign encoder=mlp, or data.loader=random_nodes"
        )
    return trainer


def warn_large_k(k: int, num_nodes: int, dim: int, covariance_type: str) -> None:
    """``k`` above 10% of the nodes: say what each EM refit will hold before it is paid for."""
    from gnngmm.base import GNNGMMWarning

    tables = 6 * num_nodes * k * 8  # (N, K) log-probabilities, responsibilities and their temporaries
    params = k * dim * dim * 8 * (3 if covariance_type == "full" else 0)
    warnings.warn(
        f"gmm.k={k} is above 10% of the {num_nodes} nodes: every EM refit holds (N, K) tables of about "
        f"{(tables + params) / 2**20:,.0f} MB and fits {k} components (minutes per refit on a CPU); clusters that "
        "small are rarely meant -- gmm.k=auto picks K by BIC",
        GNNGMMWarning,
        stacklevel=4,
    )
