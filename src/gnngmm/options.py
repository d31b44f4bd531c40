"""The packaged config groups (``gnngmm/conf``) as Python values: the one source of every default.

``encoder="gcn"`` in Python means ``conf/encoder/gcn.yaml``, as ``encoder=gcn`` does on the command
line, and an estimator setting left out takes the group's default file (``conf/loss/default.yaml``
for ``loss``). Interpolations such as ``${paths.data_dir}`` are left as text: Python callers get
the plain settings, the command line resolves them through Hydra.
"""

from __future__ import annotations

import copy
from functools import cache
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


@cache
def _load(group: str, name: str) -> dict:
    path = _conf_dir() / group / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"{group}={name!r} is not one of {', '.join(group_options(group))}")
    loaded = yaml.safe_load(path.read_text()) or {}
    base = {}
    for parent in loaded.pop("defaults", None) or []:  # e.g. trainer/cpu.yaml starts from trainer/default.yaml
        if isinstance(parent, str) and parent != "_self_":
            base = _merge(base, _load(group, parent))
    return _merge(base, loaded)


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def option(group: str, name: str, **overrides) -> dict:
    """A copy of ``conf/<group>/<name>.yaml`` (its own defaults merged in) with ``overrides``:
    e.g. ``option("encoder", "gat", hidden_channels=64)`` for ``GNNGMM(encoder=...)``."""
    return _merge(_load(group, name), overrides)


@cache
def _load_root(name: str) -> dict:
    return yaml.safe_load((_conf_dir() / f"{name}.yaml").read_text()) or {}


def root_config(name: str = "train") -> dict:
    """A copy of ``conf/<name>.yaml``'s own keys (the defaults list left out)."""
    return {k: v for k, v in copy.deepcopy(_load_root(name)).items() if k != "defaults"}


def resolve_spec(value, group: str, default: str) -> dict:
    """A component's spec from what a user gave: an option name of ``group``, a spec dict with a
    ``_target_`` (used as is), or a dict without one (overrides of the ``default`` option)."""
    if isinstance(value, str):
        return option(group, value)
    if isinstance(value, dict):
        return copy.deepcopy(value) if "_target_" in value else option(group, default, **value)
    raise InputError(f"{group} must be an option name ({', '.join(group_options(group))}) or a dict, got {value!r}")


def settings(
    group: str, given: dict | None, *, ignore: tuple[str, ...] = (), allowed=(), extensible: bool = False
) -> dict:
    """A settings group (``gmm``, ``head``, ``loss``, ``data``, ``trainer``): ``conf/<group>/default.yaml``
    without Hydra's keys, interpolated values and ``ignore``, with ``given`` merged over it. A key
    the group does not know (at any depth) is an :class:`InputError`, unless it is in ``allowed``
    or the group is ``extensible`` (the trainer takes any ``lightning.Trainer`` argument)."""
    if not isinstance(given, (dict, type(None))):
        raise InputError(f"{group} must be a dict of settings, got {given!r}")
    packaged = option(group, "default")
    if not extensible:
        _check_known(group, given or {}, {k: v for k, v in packaged.items() if k not in HYDRA_KEYS}, set(allowed))
    base = {
        k: v
        for k, v in packaged.items()
        if k not in HYDRA_KEYS and k not in ignore and not (isinstance(v, str) and "${" in v)
    }
    return _merge(base, {k: v for k, v in (given or {}).items() if k not in HYDRA_KEYS})


def _check_known(where: str, given: dict, known: dict, allowed: set) -> None:
    unknown = sorted(set(given) - set(known) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown setting(s) {unknown}; known: {sorted(set(known) | allowed)}")
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(known.get(key), dict):
            _check_known(f"{where}.{key}", value, known[key], set())


def default_choice(group: str) -> str:
    """The option ``conf/train.yaml``'s defaults list picks for ``group`` (``encoder`` -> ``gcn``)."""
    for entry in _load_root("train").get("defaults", []):
        if isinstance(entry, dict) and group in entry:
            return entry[group]
    raise InputError(f"conf/train.yaml has no default for the group {group!r}")
