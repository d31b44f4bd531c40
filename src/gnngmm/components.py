"""Named components and their defaults, read from the packaged config groups (``gnngmm/conf``).

The YAML files are the one source of truth for every default: ``encoder="gcn"`` in Python means
``conf/encoder/gcn.yaml``, as ``encoder=gcn`` does on the command line. Specs are plain dicts
with a ``_target_`` (and ``_partial_``), built here with importlib: the estimator needs no Hydra.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from functools import lru_cache
from importlib import resources

import yaml

from gnngmm.errors import InputError

HYDRA_KEYS = ("_target_", "_partial_", "defaults")


def _conf_dir():
    return resources.files("gnngmm") / "conf"


def group_options(group: str) -> list[str]:
    """The options of a config group (``encoder`` -> ``["gat", "gcn", ...]``)."""
    folder = _conf_dir() / group
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=None)
def _load(group: str, name: str) -> dict:
    path = _conf_dir() / group / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"{group}={name!r} is not one of {', '.join(group_options(group))}")
    return yaml.safe_load(path.read_text()) or {}


def group_config(group: str, name: str) -> dict:
    """A copy of ``conf/<group>/<name>.yaml``."""
    return copy.deepcopy(_load(group, name))


@lru_cache(maxsize=None)
def _load_root(name: str) -> dict:
    return yaml.safe_load((_conf_dir() / f"{name}.yaml").read_text()) or {}


def root_config(name: str = "train") -> dict:
    """A copy of ``conf/<name>.yaml`` (interpolations such as ``${paths.data_dir}`` left as text)."""
    return copy.deepcopy(_load_root(name))


def component_spec(value, group: str, overrides: dict | None = None) -> dict:
    """A name (an option of ``group``) or a spec dict, with ``overrides`` merged in."""
    if isinstance(value, str):
        spec = group_config(group, value)
    elif isinstance(value, dict):
        spec = copy.deepcopy(value)
    else:
        raise InputError(f"{group} must be a name ({', '.join(group_options(group))}), a spec dict or a module, got {value!r}")
    if "_target_" not in spec:
        raise InputError(f"{group} spec {spec!r} has no _target_")
    spec.update(overrides or {})
    return spec


def locate(path: str):
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise InputError(f"cannot import {path!r} (a _target_)") from None


def build(spec: dict, **kwargs):
    """``_target_(**spec, **kwargs)``; keyword arguments the target does not take are dropped only
    when they come from ``kwargs`` (e.g. ``dim`` for an objective that needs none)."""
    target = locate(spec["_target_"])
    params = {k: v for k, v in spec.items() if k not in HYDRA_KEYS}
    accepted = inspect.signature(target).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    extra = {k: v for k, v in kwargs.items() if takes_any or k in accepted}
    try:
        return target(**params, **extra)
    except TypeError as err:
        raise InputError(f"cannot build {spec['_target_']} from {params}: {err}") from None
