"""Plugin discovery for samplers and models, and ``NAME[:param=value,...]`` specs.

Samplers register under the entry-point group ``cfbench.samplers`` and models under
``cfbench.models``; cfbench's own built-ins register there too, from its ``pyproject.toml``.
A spec may also name a class directly as ``module:attr`` (optionally ``module:attr:k=v``),
which loads it ad hoc without registration.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import math
import types
import typing
import warnings
from typing import Any

from cfbench.models.base import Recommender
from cfbench.sampling import Sampler

__all__ = ["PluginError", "available_models", "available_samplers", "load_model", "load_sampler",
           "split_specs"]

SAMPLER_GROUP = "cfbench.samplers"
MODEL_GROUP = "cfbench.models"


class PluginError(ValueError):
    """A plugin could not be found, loaded or configured."""


def _entry_points(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=group)}


def _available(group: str, base: type) -> dict[str, type]:
    found = {}
    for name, ep in sorted(_entry_points(group).items()):
        try:
            found[name] = _load_entry(ep, base)
        except PluginError as err:  # one broken plugin must not hide the others
            warnings.warn(str(err), stacklevel=3)
    return found


def available_samplers() -> dict[str, type[Sampler]]:
    """Every sampler registered under ``cfbench.samplers`` that imports, by name (broken ones warn)."""
    return _available(SAMPLER_GROUP, Sampler)


def available_models() -> dict[str, type[Recommender]]:
    """Every model registered under ``cfbench.models`` that imports, by name (broken ones warn)."""
    return _available(MODEL_GROUP, Recommender)


def _load_entry(ep: importlib.metadata.EntryPoint, base: type) -> type:
    try:
        obj = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: BLE001 — a broken plugin (even one calling sys.exit) must not end cfbench
        raise PluginError(f"plugin {ep.name!r} ({ep.value}) failed to import: {_describe(err)}") from err
    return _check_class(obj, base, ep.value)


def _describe(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return f"it called sys.exit({err.code!r}) while being imported"
    return " ".join(f"{type(err).__name__}: {err}".split())


def _check_class(obj: Any, base: type, where: str) -> type:
    """``obj`` if it is a usable plugin class of ``base``; else a :class:`PluginError` saying what is missing."""
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        raise PluginError(f"{where} is not a subclass of {base.__module__}.{base.__name__}")
    problems = []
    for attr in ("name", "description"):
        if not isinstance(getattr(obj, attr, None), str) or not getattr(obj, attr):
            problems.append(f"a non-empty string class attribute {attr!r}")
    if not isinstance(getattr(obj, "version", None), str):
        problems.append("a string class attribute 'version'")
    if inspect.isabstract(obj):
        problems.append("an implementation of " + ", ".join(sorted(obj.__abstractmethods__)))
    if issubclass(obj, Sampler) and not dataclasses.is_dataclass(getattr(obj, "Config", None)):
        problems.append("a dataclass 'Config' of its parameters")
    if issubclass(obj, Recommender):
        grid = getattr(obj, "lambda_grid", None)
        if not isinstance(grid, tuple | list) or not grid or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in grid):
            problems.append("a non-empty 'lambda_grid' of finite numbers")
    if problems:
        raise PluginError(f"plugin {where} needs " + "; ".join(problems))
    return obj


def split_specs(text: str) -> list[str]:
    """Split ``"a,b:x=1,y=2,c"`` into ``["a", "b:x=1,y=2", "c"]``: a ``k=v`` token continues the previous spec."""
    specs: list[str] = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if "=" in token and ":" not in token.split("=", 1)[0] and specs:
            specs[-1] += "," + token
        else:
            specs.append(token)
    return specs


def _parse(spec: str, group: str) -> tuple[str, str | None, dict[str, str]]:
    """``(name, module:attr or None, raw params)`` of a spec."""
    head, params = spec, ""
    parts = spec.split(":")
    if len(parts) > 1 and "=" in parts[-1]:
        head, params = ":".join(parts[:-1]), parts[-1]
    raw: dict[str, str] = {}
    for item in filter(None, params.split(",")):
        if "=" not in item:
            raise PluginError(f"bad parameter {item!r} in {spec!r}: write NAME:param=value,param=value")
        key, value = item.split("=", 1)
        raw[key.strip().replace("-", "_")] = value.strip()
    registered = _entry_points(group)
    if head in registered:
        return head, None, raw
    if ":" in head:
        return head, head, raw
    kind = "sampler" if group == SAMPLER_GROUP else "model"
    raise PluginError(f"unknown {kind} {head!r}; available: {', '.join(sorted(registered)) or 'none'} "
                      f"(or give module:attr)")


def _import(target: str, base: type) -> type:
    module, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: BLE001 — see _load_entry
        raise PluginError(f"cannot load {target!r}: {_describe(err)}") from err
    return _check_class(obj, base, target)


def coerce(value: str, annotation: Any) -> Any:
    """Convert a command-line string to the annotated type (bool, int, float, str, or a union of them)."""
    origin = typing.get_origin(annotation)
    options = typing.get_args(annotation) if origin in (typing.Union, types.UnionType) else (annotation,)
    if value.lower() in ("none", "null") and type(None) in options:
        return None
    for option in options:
        if option is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            continue
        if option in (int, float, str):
            try:
                return option(value)
            except ValueError:
                continue
    raise ValueError(f"{value!r} is not a valid {annotation}")


def load_sampler(spec: str) -> Sampler:
    """A configured sampler from ``NAME[:param=value,...]`` or ``module:attr[:param=value,...]``."""
    name, target, raw = _parse(spec, SAMPLER_GROUP)
    cls = _import(target, Sampler) if target else _load_entry(_entry_points(SAMPLER_GROUP)[name], Sampler)
    hints = typing.get_type_hints(cls.Config)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    params = {}
    for key, value in raw.items():
        if key not in fields:
            raise PluginError(f"sampler {cls.name!r} has no parameter {key!r}; it takes: "
                              f"{', '.join(sorted(fields)) or 'none'}")
        try:
            params[key] = coerce(value, hints[key])
        except ValueError as err:
            raise PluginError(f"sampler {cls.name!r}, parameter {key!r}: {err}") from err
    try:
        return cls(**params)
    except (TypeError, ValueError) as err:
        raise PluginError(f"sampler {cls.name!r}: {err}") from err


def load_model(spec: str, **overrides: Any) -> Recommender:
    """A configured model from ``NAME[:param=value,...]`` (constructor arguments)."""
    name, target, raw = _parse(spec, MODEL_GROUP)
    cls = _import(target, Recommender) if target else _load_entry(_entry_points(MODEL_GROUP)[name], Recommender)
    signature = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in signature.parameters or key == "self":
            allowed = [p for p in signature.parameters if p != "self"]
            raise PluginError(f"model {cls.name!r} has no parameter {key!r}; it takes: {', '.join(allowed)}")
        try:
            params[key] = coerce(value, hints.get(key, str))
        except ValueError as err:
            raise PluginError(f"model {cls.name!r}, parameter {key!r}: {err}") from err
    params.update({k: v for k, v in overrides.items() if k in signature.parameters and k not in params})
    try:
        return cls(**params)
    except (TypeError, ValueError) as err:
        raise PluginError(f"model {cls.name!r}: {err}") from err
