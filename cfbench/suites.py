"""Suite files: a benchmark suite written down as TOML (``cfbench run suites/ml-1m.toml``).

A suite file holds the settings of ``cfbench run`` under the names of its flags (underscores for
dashes)::

    dataset = "ml-100k"
    models = ["infinite-ae", "ease"]
    budgets = [10, 20, 50, 100, 200, 500]
    seeds = [0, 1, 2]
    samplers = ["full", "random-users", "svp-cf:level=interaction"]

    [[samplers]]                      # or tables (both forms may be mixed with inline tables)
    name = "svp-cf"
    params = { level = "interaction", propensity = true }
    budgets = [10, 100, 500]          # optional: this sampler's own budgets …
    seeds = [0]                       # … seeds …
    models = ["ease"]                 # … and models (the suite's otherwise)

Every key is optional (the defaults of ``cfbench run``); an unknown key or a value of the wrong
type is refused with one line naming the file, the key and what is allowed. Paths written in a
suite file (``results_dir``, ``leaderboards_dir``, a dataset given as a file) are relative to the
**file's folder**, so a suite means the same thing from any working directory; flags given on the
command line (relative to the current directory, as always) override the file's values.

A suite whose samplers carry their own budgets, seeds or models is run as several *parts*, one
:class:`~cfbench.harness.SuiteConfig` per distinct (budgets, seeds, models), in the order they first appear.
Every row records the resolved configuration that computed it under ``"suite"`` (never part of its
identity).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["SUITE_KEYS", "SamplerEntry", "Suite", "SuiteError", "build_suite", "load_suite", "read_suite_file",
           "resolved_suite"]


class SuiteError(ValueError):
    """A suite file that cannot be read or holds a bad key or value (one line: file, key, what is allowed)."""


@dataclasses.dataclass(frozen=True)
class SamplerEntry:
    """One sampler of a suite: its spec, and its own budgets, seeds and model specs (``None``: the suite's)."""

    spec: str
    budgets: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None
    models: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Suite:
    """A resolved suite: the configurations to run (one per part) and where the leaderboards go."""

    parts: tuple[Any, ...]  # SuiteConfig, one per distinct (budgets, seeds, models)
    leaderboards_dir: Path | None = None  # None: the default of the results directory
    file: Path | None = None

    @property
    def results_dir(self) -> Path:
        return Path(self.parts[0].results_dir)

    def resolved(self) -> dict[str, Any]:
        """The whole suite as JSON-able data (every part resolved)."""
        return {"file": None if self.file is None else str(self.file),
                "leaderboards_dir": None if self.leaderboards_dir is None else str(self.leaderboards_dir),
                "parts": [resolved_suite(p) for p in self.parts]}


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def resolved_suite(config: Any) -> dict[str, Any]:
    """Every setting of ``config`` (a :class:`~cfbench.harness.SuiteConfig`) as JSON-able data: what a row records."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


# ----------------------------------------------------------------------------- validation

def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def _int_list(minimum: int, what: str) -> tuple[str, Callable[[Any], Any]]:
    def check(value: Any) -> Any:
        if isinstance(value, list) and value and all(_is_int(v) and v >= minimum for v in value):
            return tuple(dict.fromkeys(value))  # duplicates run once, as on the command line
        raise ValueError
    return f"a non-empty list of {what}", check


def _choice(*options: str) -> tuple[str, Callable[[Any], Any]]:
    def check(value: Any) -> Any:
        if value in options:
            return value
        raise ValueError
    return "one of " + ", ".join(repr(o) for o in options), check


def _string(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return value
    raise ValueError


def _positive(kind: str) -> tuple[str, Callable[[Any], Any]]:
    def check(value: Any) -> Any:
        if (_is_int(value) if kind == "integer" else _is_number(value)) and value > 0:
            return value
        raise ValueError
    return f"a positive {kind}", check


def _memory(value: Any) -> int:
    from cfbench.memory import parse_bytes

    if _is_int(value) and value > 0:
        return int(value)
    if isinstance(value, str):
        return parse_bytes(value, "memory_limit")
    raise ValueError


def _finite(value: Any) -> Any:
    if _is_number(value):
        return float(value)
    raise ValueError


def _tune_metrics() -> tuple[str, ...]:
    from cfbench.harness import TUNE_METRICS

    return TUNE_METRICS


def _tune_metric(value: Any) -> Any:
    if value in _tune_metrics():
        return value
    raise ValueError


#: Every key a suite file may hold: (what is allowed, a check returning the value or raising ValueError).
#: ``samplers`` and ``models`` are checked apart (they also take tables).
SUITE_KEYS: dict[str, tuple[str, Callable[[Any], Any] | None]] = {
    "dataset": ("a built-in dataset name, a synthetic one, or the path of a CSV/TSV file", _string),
    "samplers": ("a list of sampler specs ('svp-cf:level=interaction') or tables {name, params, budgets, seeds, models}",
                 None),
    "models": ("a list of model specs ('ease') or tables {name, params}", None),
    "budgets": _int_list(1, "positive integers (users)"),
    "seeds": _int_list(0, "non-negative integers"),
    "rating_threshold": ("a finite number", _finite),
    "dtype": _choice("float32", "float64"),
    "batch_size": _positive("integer"),
    "unit_timeout": _positive("number (seconds)"),
    "executor": _choice("local", "ray"),
    "address": ("a Ray cluster address (auto, HOST:PORT or ray://HOST:PORT)", _string),
    "device": _choice("auto", "cpu", "gpu"),
    "cpus_per_unit": _positive("number"),
    "memory_limit": ("bytes one unit may use: a positive integer or a string like \"8GiB\"", _memory),
    "results_dir": ("a folder path (relative to the suite file's folder)", _string),
    "leaderboards_dir": ("a folder path (relative to the suite file's folder)", _string),
    "tune_metric": ("a per-user validation metric: hr@10, ndcg@10, psp@10, hr@100, ndcg@100 or psp@100", _tune_metric),
    "compile_cache": ("a folder path (relative to the suite file's folder)", _string),
    "subset_cache": ("a folder path (relative to the suite file's folder)", _string),
}
_PATH_KEYS = ("results_dir", "leaderboards_dir", "compile_cache", "subset_cache")
_SAMPLER_TABLE_KEYS = ("name", "params", "budgets", "seeds", "models")
_MODEL_TABLE_KEYS = ("name", "params")


def _param_text(where: str, key: str, value: Any) -> str:
    """A parameter value of a table as it reads in a spec (``k=v``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return repr(value)
    if isinstance(value, str) and not any(c in value for c in ",=:") and value.strip() == value and value:
        return value
    raise SuiteError(f"{where}.params.{key} must be a number, true/false or a string without ',', '=' or ':', "
                     f"got {_short(value)}")


def _spec(where: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> str:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise SuiteError(f"{where}: unknown key {unknown[0]!r}; a table here takes {', '.join(allowed)}")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip() or any(c in name for c in ",="):
        raise SuiteError(f"{where}.name must be a plugin name (or module:attr), got {_short(name)}")
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise SuiteError(f"{where}.params must be a table of parameters, e.g. params = {{ level = \"interaction\" }}, "
                         f"got {_short(params)}")
    text = ",".join(f"{k}={_param_text(where, k, v)}" for k, v in params.items())
    return name.strip() + (":" + text if text else "")


def _entries(prefix: str, key: str, value: Any, table_keys: tuple[str, ...]) -> list[SamplerEntry]:
    from cfbench.plugins import split_specs

    allowed = SUITE_KEYS[key][0]
    if isinstance(value, str):
        items: list[Any] = split_specs(value)  # "a,b:x=1" as on the command line
    elif isinstance(value, list):
        items = value
    else:
        raise SuiteError(f"{prefix}'{key}' must be {allowed}, got {_short(value)}")
    if not items:
        raise SuiteError(f"{prefix}'{key}' must be {allowed}, got an empty list")
    out = []
    for i, item in enumerate(items):
        where = f"{prefix}{key}[{i}]"
        if isinstance(item, str) and item.strip():
            out.append(SamplerEntry(item.strip()))
        elif isinstance(item, dict):
            spec = _spec(where, item, table_keys)
            budgets = seeds = None
            for sub, (what, check) in (("budgets", SUITE_KEYS["budgets"]), ("seeds", SUITE_KEYS["seeds"])):
                if sub in item:
                    try:
                        checked = check(item[sub])  # type: ignore[misc]
                    except ValueError:
                        raise SuiteError(f"{where}.{sub} must be {what}, got {_short(item[sub])}") from None
                    budgets, seeds = (checked, seeds) if sub == "budgets" else (budgets, checked)
            models = None
            if "models" in item and "models" in table_keys:
                models = tuple(e.spec for e in _entries(f"{where}.", "models", item["models"], _MODEL_TABLE_KEYS))
            out.append(SamplerEntry(spec, budgets, seeds, models))
        else:
            raise SuiteError(f"{where} must be a spec string or a table {{{', '.join(table_keys)}}}, "
                             f"got {_short(item)}")
    return out


def _resolve_dataset(value: str, base: Path) -> str:
    """A built-in or synthetic name as it is; a file path relative to the suite file's folder."""
    from cfbench import synthetic
    from cfbench.datasets import DATASETS

    if value in DATASETS or synthetic.is_synthetic_name(value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else Path(os.path.normpath(base / path)))


def read_suite_file(path: str | Path) -> dict[str, Any]:
    """The settings a suite file gives, checked: ``{key: value}`` for the keys present (``samplers`` as
    :class:`SamplerEntry` items, ``models`` as spec strings, paths resolved against the file's folder).

    Raises :class:`SuiteError` (one line: the file, the key, what is allowed).
    """
    path = Path(path)
    prefix = f"suite file {path}: "
    if not path.is_file():
        hint = (f" (a suite is a TOML file; for a dataset use --dataset {path})" if not path.suffix else "")
        raise SuiteError(f"suite file {path} {'is a folder' if path.is_dir() else 'does not exist'}{hint}")
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"{prefix}not valid TOML: {' '.join(str(err).split())}") from None
    except UnicodeDecodeError:
        raise SuiteError(f"{prefix}not valid TOML: the file is not UTF-8 text") from None
    except OSError as err:
        raise SuiteError(f"{prefix}cannot be read ({err.strerror or err})") from None
    base = path.parent
    settings: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SUITE_KEYS:
            near = key.replace("-", "_")
            hint = f" (write {near})" if near in SUITE_KEYS else ""
            raise SuiteError(f"{prefix}unknown key {key!r}{hint}; allowed: {', '.join(SUITE_KEYS)}")
        if key == "samplers":
            settings[key] = _entries(prefix, key, value, _SAMPLER_TABLE_KEYS)
            continue
        if key == "models":
            entries = _entries(prefix, key, value, _MODEL_TABLE_KEYS)
            settings[key] = tuple(e.spec for e in entries)
            continue
        allowed, check = SUITE_KEYS[key]
        assert check is not None
        try:
            settings[key] = check(value)
        except ValueError:
            raise SuiteError(f"{prefix}'{key}' must be {allowed}, got {_short(value)}") from None
        if key in _PATH_KEYS:
            settings[key] = Path(os.path.normpath(base / Path(value).expanduser()))
        elif key == "dataset":
            settings[key] = _resolve_dataset(value, base)
    return settings


def build_suite(settings: Mapping[str, Any], file: str | Path | None = None, data_dir: Path | None = None) -> Suite:
    """A :class:`Suite` from ``settings`` (a suite file's values with the command line's on top; every key of
    :data:`SUITE_KEYS` optional, ``samplers`` as :class:`SamplerEntry` items or spec strings); the rest
    takes the defaults of :class:`~cfbench.harness.SuiteConfig`. Bad values raise :class:`SuiteError`
    (naming ``file`` when given)."""
    from cfbench.harness import SuiteConfig

    prefix = f"suite file {file}: " if file is not None else ""
    defaults = SuiteConfig()
    entries = [e if isinstance(e, SamplerEntry) else SamplerEntry(e)
               for e in settings.get("samplers", defaults.samplers)]
    budgets = settings.get("budgets", defaults.budgets)
    seeds = settings.get("seeds", defaults.seeds)
    models = settings.get("models", defaults.models)
    groups: dict[tuple[Any, Any, Any], list[str]] = {}
    for entry in entries:
        key = (entry.budgets if entry.budgets is not None else budgets,
               entry.seeds if entry.seeds is not None else seeds,
               tuple(entry.models) if entry.models is not None else tuple(models))
        specs = groups.setdefault(key, [])
        if entry.spec not in specs:
            specs.append(entry.spec)
    common = {k: settings[k] for k in SUITE_KEYS if k in settings and k not in ("samplers", "budgets", "seeds",
                                                                                 "models", "leaderboards_dir")}
    parts = []
    for (part_budgets, part_seeds, part_models), specs in groups.items():
        try:
            parts.append(SuiteConfig(**{**common, "samplers": tuple(specs), "budgets": part_budgets,
                                        "seeds": tuple(part_seeds), "models": part_models, "data_dir": data_dir,
                                        "suite_file": None if file is None else str(file)}))
        except ValueError as err:
            raise SuiteError(f"{prefix}{' '.join(str(err).split())}") from None
    leaderboards = settings.get("leaderboards_dir")
    return Suite(tuple(parts), None if leaderboards is None else Path(leaderboards),
                 None if file is None else Path(file))


def load_suite(path: str | Path, overrides: Mapping[str, Any] | None = None, data_dir: Path | None = None) -> Suite:
    """Read the suite file ``path`` and resolve it: ``overrides`` (the flags given on the command line, by
    suite key) replace the file's values — ``budgets``, ``seeds`` and ``models`` also replace the samplers'
    own — and what neither gives takes the defaults of ``cfbench run``."""
    settings = read_suite_file(path)
    overrides = dict(overrides or {})
    if "samplers" in settings and any(k in overrides for k in ("budgets", "seeds", "models")):
        settings["samplers"] = [dataclasses.replace(e, budgets=None if "budgets" in overrides else e.budgets,
                                                    seeds=None if "seeds" in overrides else e.seeds,
                                                    models=None if "models" in overrides else e.models)
                                for e in settings["samplers"]]
    return build_suite({**settings, **overrides}, file=path, data_dir=data_dir)
