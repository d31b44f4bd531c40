"""Every setting's constraint, declared once (as scikit-learn's ``_parameter_constraints``).

The estimator checks its parameters with :func:`check_params` at the start of ``fit``; the command
line calls the same function on the estimator it built, before any data is read, and the data
module checks its own settings with :func:`check_setting`. A bad value raises one
:class:`~gnngmm.errors.InputError` line that names the config key (``gmm.covariance_type``), the
estimator argument where it differs (``n_clusters``), the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gnngmm.errors import InputError


@dataclass(frozen=True)
class Rule:
    """``ok(value)`` decides; ``allowed`` says what passes, for the message."""

    ok: Callable[[object], bool]
    allowed: str


def _int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def integer(low: int) -> Rule:
    return Rule(lambda v: _int(v) and v >= low, f"an integer >= {low}")


def number(low: float, *, strict: bool = False, high: float | None = None) -> Rule:
    def ok(v) -> bool:
        return _number(v) and (v > low if strict else v >= low) and (high is None or v <= high)

    bound = f"in ({low}, {high}]" if high is not None else f"{'>' if strict else '>='} {low}"
    return Rule(ok, f"a number {bound}")


def one_of(choices) -> Rule:
    choices = tuple(choices)
    return Rule(lambda v: v in choices, f"one of {', '.join(map(str, choices))}")


def optional(rule: Rule) -> Rule:
    return Rule(lambda v: v is None or rule.ok(v), f"null or {rule.allowed}")


BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")


def _k_range(value) -> bool:
    try:
        ks = [int(k) for k in value]
    except (TypeError, ValueError):
        return False
    if len(ks) == 2:
        return 1 <= ks[0] <= ks[1]
    return bool(ks) and all(k >= 1 for k in ks)


def _random_state(value) -> bool:
    return value is None or _int(value) or isinstance(value, np.random.RandomState)


def _rules() -> dict[str, Rule]:
    """The constraints, by config key (imported lazily: the modules that define the choices
    import this one)."""
    from gnngmm.anomaly import SCORES
    from gnngmm.data.datamodule import LOADERS
    from gnngmm.data.preprocess import PRECOMPUTE
    from gnngmm.data.transforms import FEATURE_NORMS
    from gnngmm.loss import LOSS_EMBEDDINGS
    from gnngmm.memory import GUARDS
    from gnngmm.mixture import COVARIANCE_TYPES, DEGENERATE, EXTRA_COVARIANCE_TYPES
    from gnngmm.mixture.criteria import CRITERIA

    return {
        "gmm.k_range": Rule(_k_range, "[low, high] with 1 <= low <= high, or a list of K"),
        "gmm.k_criterion": one_of(CRITERIA),
        "gmm.covariance_type": one_of(COVARIANCE_TYPES + EXTRA_COVARIANCE_TYPES),
        "gmm.reg_covar": number(0.0),
        "gmm.tol": number(0.0),
        "gmm.max_iter": integer(1),
        "gmm.n_init": integer(1),
        "gmm.kmeans_n_init": integer(1),
        "gmm.init_params": one_of(("kmeans", "k-means++", "random", "random_from_data")),
        "gmm.min_component_size": number(0.0),
        "gmm.degenerate": one_of(DEGENERATE),
        "head.refit_every_n_epochs": integer(1),
        "head.refit_max_iter": integer(1),
        "head.reseed_at_loss_start": BOOLEAN,
        "head.final_fresh_fit": BOOLEAN,
        "head.transform.pca_dim": optional(integer(1)),
        "loss.weight": number(0.0),
        "loss.finetune_epochs": integer(0),
        "loss.start_epoch": optional(integer(0)),
        "loss.scale_free": BOOLEAN,
        "loss.embedding": one_of(LOSS_EMBEDDINGS),
        "data.normalize_features": one_of(FEATURE_NORMS),
        "data.loader": one_of(LOADERS),
        "data.full_batch_guard": one_of(GUARDS),
        "data.memory_limit_gb": optional(number(0.0, strict=True)),
        "data.num_parts": integer(1),
        "data.batch_size": integer(1),
        "data.precompute": one_of(PRECOMPUTE),
        "data.precompute_hops": integer(1),
        "data.precompute_norm": one_of(("none", "l2")),
        "trainer.max_epochs": integer(1),
        "optimizer.lr": number(0.0, strict=True),
        "optimizer.weight_decay": number(0.0),
        "anomaly_score": one_of(SCORES),
        "contamination": number(0.0, strict=True, high=0.5),
        "seed": Rule(_random_state, "an integer, a numpy RandomState or null"),
    }


_RULES: dict[str, Rule] | None = None


def rules() -> dict[str, Rule]:
    global _RULES
    if _RULES is None:
        _RULES = _rules()
    return _RULES


def check_setting(key: str, value, argument: str | None = None) -> None:
    """Raise an :class:`InputError` when ``value`` breaks the rule declared for ``key``;
    ``argument`` names the estimator argument when it differs from the key."""
    rule = rules().get(key)
    if rule is not None and not rule.ok(value):
        where = f" (GNNGMM argument {argument})" if argument and argument != key else ""
        raise InputError(f"{key}={value!r} is not {rule.allowed}{where}")


def check_group(group: str, values: dict, prefix: str | None = None) -> None:
    """Every declared key of a settings group (nested dicts included)."""
    for name, value in values.items():
        key = f"{prefix or group}.{name}"
        if isinstance(value, dict):
            check_group(group, value, key)
        else:
            check_setting(key, value)


def check_n_clusters(k, num_nodes: int | None = None) -> int | None:
    """``n_clusters`` (``gmm.k``) as an int, None for ``"auto"``; without ``num_nodes`` only the
    value itself is checked."""
    if isinstance(k, str) and k.strip().lower() == "auto":
        return None
    if k is None:
        raise InputError(
            "gmm.k (n_clusters) is not set: this graph has no class count to default to; give gmm.k=K or gmm.k=auto"
        )
    if not _int(k):
        raise InputError(f"gmm.k (n_clusters) must be an integer >= 1 or 'auto', got {k!r}")
    if k < 1:
        raise InputError(f"gmm.k (n_clusters) must be >= 1, got {k}")
    if num_nodes is not None and k > num_nodes:
        raise InputError(f"gmm.k={k} exceeds the number of nodes ({num_nodes})")
    return int(k)


def check_params(params: dict, settings: dict) -> None:
    """The estimator's parameters (``get_params()``) and the settings resolved from them
    (``gnngmm.pipeline.resolve_settings``), every declared constraint, before any data is read."""
    check_n_clusters(params["n_clusters"])
    for name in ("anomaly_score", "contamination"):
        check_setting(name, params[name])
    check_setting("seed", params["random_state"], "random_state")
    for group in ("gmm", "head", "loss", "data", "trainer", "optimizer"):
        check_group(group, settings[group])
