"""Result rows: one JSON file per (dataset, sampler, budget, seed, model), written atomically.

A row holds the full configuration, the subset's actual size, every metric on validation
and test, the chosen λ, timings and the environment. Rows are the single source of truth:
leaderboards and exports are regenerated from them alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import math
import numbers
import os
import platform
import re
import stat
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cfbench.files import atomic_write_text, is_temporary

__all__ = ["SCHEMA_VERSION", "STALE_DIR", "SUPPORTED_SCHEMAS", "ResultsError", "RowScan", "archive_row",
           "environment", "load_rows", "read_row", "read_row_checked", "row_identity_key", "row_path", "row_status",
           "rows_frame", "scan_rows", "validate_row", "write_row"]

SCHEMA_VERSION = 2
#: Row schemas this cfbench reads (reports, export); schema 1 rows have no status and count as ok.
SUPPORTED_SCHEMAS = (1, 2)
EXPORT_COLUMNS = ["dataset", "sampler", "budget", "n_users", "n_interactions", "model", "seed", "hr@10", "ndcg@10",
                  "psp@10", "hr@100", "ndcg@100", "psp@100", "auc", "select_s", "fit_s", "eval_s"]
#: Rows superseded by a re-run (their parameters or sampler version no longer match) are moved here;
#: like every path component starting with ".", it is ignored when rows are loaded.
STALE_DIR = ".stale"
PACKAGES = ("cfbench", "jax", "jaxlib", "numpy", "scipy", "pandas", "optax")


class ResultsError(ValueError):
    """A results directory or row could not be read or written."""


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
    if slug != text:  # keep distinct specs distinct after sanitising
        slug += "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return slug


def row_path(results_dir: str | Path, dataset: str, sampler_spec: str, model_spec: str, budget: int,
             seed: int) -> Path:
    """Where the row of one (dataset, sampler, model, budget, seed) lives."""
    name = f"{_slug(sampler_spec)}__{_slug(model_spec)}__b{budget}__s{seed}.json"
    return Path(results_dir) / _slug(dataset) / name


def _json_safe(value: Any) -> Any:
    """``value`` as standard JSON data: NaN and ±infinity become ``None`` (recursively), numpy
    scalars and arrays become Python numbers and lists, tuples become lists."""
    if isinstance(value, dict):
        return {(k.item() if isinstance(k, np.generic) else k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_row(path: Path, row: dict[str, Any]) -> None:
    """Write ``row`` as standard JSON, atomically (:func:`cfbench.files.atomic_write_text`): a reader sees
    the old file or the complete new one. NaN and ±infinity anywhere in the row are written as ``null``
    (readers treat a ``null`` metric as not available); numpy scalars are converted."""
    text = json.dumps(_json_safe(row), indent=1, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_text(path, text)


# ---------------------------------------------------------------------------------------------------------
# Validation: a structural check of a parsed row, strict about types, lenient about extra keys.

_HEX64 = re.compile(r"[0-9a-f]{64}")
_OK_KEYS = ("dataset", "sampler", "sampler_spec", "model", "model_spec", "subset_kind", "budget", "seed", "lambda",
            "metrics", "subset", "timings", "environment")
_FAILED_KEYS = ("created", "dataset", "sampler", "sampler_spec", "model", "model_spec", "budget", "seed",
                "environment", "error")
_STR_KEYS = ("created", "dataset", "sampler", "sampler_spec", "model", "model_spec", "subset_kind")
_SUBSET_KEYS = ("n_users", "n_interactions", "fraction_train_interactions")
_TIMING_KEYS = ("select_s", "fit_s", "eval_s")
_ERROR_KEYS = ("kind", "message", "traceback", "phase")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """How a value reads in a reason: ``a str``, ``null``, ``a list``…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, str):
        return "a str"
    if isinstance(value, dict):
        return "a dict"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, numbers.Integral):
        return "an int"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "infinite"
    if isinstance(value, numbers.Real):
        return "a float"
    return f"a {type(value).__name__}"


def parse_created(value: Any) -> dt.datetime | None:
    """A row's ``created`` as an aware datetime (naive ones are taken as UTC), or ``None``."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


def _check_number(name: str, value: Any, *, nullable: bool = False, nan_ok: bool = False,
                  non_negative: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not _is_number(value):
        return f"{name} is {_kind(value)}, expected a number"
    v = float(value)
    if math.isnan(v) and not nan_ok or math.isinf(v):
        return f"{name} is {_kind(v)}, expected a finite number"
    if non_negative and v < 0:
        return f"{name} is {value!r}, expected a non-negative number"
    return None


def _check_dict(name: str, value: Any, required: tuple[str, ...] = ()) -> str | None:
    if not isinstance(value, dict):
        return f"{name} is {_kind(value)}, expected a dict"
    missing = [k for k in required if k not in value]
    if missing:
        return f"{name} has no {', '.join(missing)}"
    return None


def _missing(row: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    missing = [k for k in keys if k not in row]
    if not missing:
        return None
    shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    return f"missing key{'s' if len(missing) > 1 else ''} {shown}"


def _validate(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"holds {_kind(row)}, expected a JSON object (a result row)"
    if "schema" not in row:
        return "no 'schema' key: not a cfbench result row"
    schema = row["schema"]
    if not _is_int(schema):
        return f"schema is {_kind(schema)}, expected an int"
    if schema not in SUPPORTED_SCHEMAS:
        return (f"schema {schema} is not supported (this cfbench reads schema "
                f"{', '.join(map(str, SUPPORTED_SCHEMAS))}): upgrade cfbench or re-run")
    status = "ok"
    if schema >= 2:
        reason = _missing(row, ("status", "identity", "identity_key"))
        if reason:
            return reason
        status = row["status"]
        if status not in ("ok", "failed", "infeasible"):
            return f"status is {status!r}, expected 'ok', 'failed' or 'infeasible'"
        if not isinstance(row["identity"], dict):
            return f"identity is {_kind(row['identity'])}, expected a dict"
        key = row["identity_key"]
        if not isinstance(key, str) or not _HEX64.fullmatch(key):
            return f"identity_key is {_kind(key) if not isinstance(key, str) else repr(key[:80])}, " \
                   "expected 64 hex digits (sha256)"
    keys = _FAILED_KEYS if status != "ok" else _OK_KEYS + (("created",) if schema >= 2 else ())
    reason = _missing(row, keys)
    if reason:
        return reason
    for key in _STR_KEYS:
        if key in row and not isinstance(row[key], str):
            return f"{key} is {_kind(row[key])}, expected a str"
    if "created" in row and parse_created(row["created"]) is None:
        return f"created is {row['created'][:40]!r}, expected an ISO 8601 date-time"
    for key in ("budget", "seed"):
        if not _is_int(row[key]):
            return f"{key} is {_kind(row[key])}, expected an int"
    if not isinstance(row["environment"], dict):
        return f"environment is {_kind(row['environment'])}, expected a dict"
    if status != "ok":
        reason = _check_dict("error", row["error"], _ERROR_KEYS)
        if reason:
            return reason
        for key in _ERROR_KEYS:
            if not isinstance(row["error"][key], str):
                return f"error.{key} is {_kind(row['error'][key])}, expected a str"
        return None
    reason = _check_number("lambda", row["lambda"])
    if reason:
        return reason
    reason = _check_dict("metrics", row["metrics"], ("val", "test"))
    if reason:
        return reason
    for part in ("val", "test"):
        metrics = row["metrics"][part]
        if not isinstance(metrics, dict):
            return f"metrics.{part} is {_kind(metrics)}, expected a dict"
        for name, value in metrics.items():
            # null (or NaN in rows written before schema 2) means "not available"
            reason = _check_number(f"metrics.{part}.{name}", value, nullable=True, nan_ok=True)
            if reason:
                return reason
    for section, required in (("subset", _SUBSET_KEYS), ("timings", _TIMING_KEYS)):
        reason = _check_dict(section, row[section], required)
        if reason:
            return reason
        for name in required:
            reason = _check_number(f"{section}.{name}", row[section][name], non_negative=True)
            if reason:
                return reason
    device = row["environment"].get("device")
    if not isinstance(device, str):
        return "environment has no device" if "device" not in row["environment"] else \
            f"environment.device is {_kind(device)}, expected a str"
    return None


def validate_row(row: Any) -> str | None:
    """Why ``row`` (parsed JSON) is not a usable result row, in a few words, or ``None`` if it is one.

    Accepts schema 1 and 2 rows, ``ok`` and ``failed`` ones. An ``ok`` row needs the configuration
    (``dataset``, ``sampler``, ``sampler_spec``, ``model``, ``model_spec``, ``subset_kind`` strings;
    ``budget`` and ``seed`` ints; ``lambda`` a finite number), ``metrics.val`` / ``metrics.test`` dicts of
    numbers or ``null`` (not available), ``subset`` and ``timings`` with their sizes and seconds
    (finite, non-negative) and ``environment.device``. A failed row (schema 2) needs the header and
    ``error`` (``kind``, ``message``, ``traceback``, ``phase`` strings). A bool is never a number; extra
    keys are allowed. Never raises.
    """
    try:
        return _validate(row)
    except Exception as err:  # a check itself failed on an odd value: still an answer, never a crash
        return f"cannot be checked ({type(err).__name__}: {err})"


def row_status(row: dict[str, Any]) -> str:
    """``"ok"`` or ``"failed"``; schema 1 rows are always ``"ok"``."""
    return row.get("status", "ok") if row.get("schema", 1) >= 2 else "ok"


def row_identity_key(row: dict[str, Any]) -> str:
    """The key two rows of the same computation share: a schema 2 row's ``identity_key``; for a schema 1
    row, a hash of (dataset, sampler_spec, model_spec, budget, seed, sampler_params, sampler_version,
    model_params without ``lam``, dtype)."""
    if row.get("schema", 1) >= 2 and isinstance(row.get("identity_key"), str):
        return row["identity_key"]
    model_params = row.get("model_params")
    legacy = {
        "schema1": [row.get("dataset"), row.get("sampler_spec"), row.get("model_spec"), row.get("budget"),
                    row.get("seed")],
        "sampler_params": row.get("sampler_params", {}),
        "sampler_version": str(row.get("sampler_version", "1")),
        "model_params": {k: v for k, v in model_params.items() if k != "lam"} if isinstance(model_params, dict)
        else model_params,
        "dtype": row.get("dtype"),
    }
    text = json.dumps(_json_safe(legacy), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return "schema1:" + hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Reading: never raises, whatever the file holds.

#: Row files are a few KB; anything much bigger is not a row (and is not read into memory).
MAX_ROW_BYTES = 16 * 2**20


def _read_file(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(MAX_ROW_BYTES + 1)


def _os_reason(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__


def _read_row_checked(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None, "does not exist (or is a dangling link)"
    except OSError as err:
        return None, f"cannot be read: {_os_reason(err)}"
    if stat.S_ISDIR(info.st_mode):
        return None, "is a directory"
    if not stat.S_ISREG(info.st_mode):
        return None, "is not a regular file"
    if info.st_size > MAX_ROW_BYTES:
        return None, f"is {info.st_size} bytes, far too large for a result row"
    try:
        data = _read_file(path)
    except OSError as err:
        return None, f"cannot be read: {_os_reason(err)}"
    if not data.strip():
        return None, "is empty"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
    try:
        row = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as err:
        return None, f"is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
    except (ValueError, RecursionError) as err:
        return None, f"is not valid JSON ({type(err).__name__}: {str(err)[:100]})"
    reason = validate_row(row)
    return (None, reason) if reason else (row, None)


def read_row_checked(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(row, None)`` for a valid row file (see :func:`validate_row`), else ``(None, reason)``.

    Never raises for any file content or OS error (missing, unreadable, a directory, a FIFO, a
    symlink loop, too large, not UTF-8, not JSON, not a row).
    """
    try:
        return _read_row_checked(Path(path))
    except Exception as err:  # an unforeseen failure is still a reason, never a crash
        return None, f"cannot be read ({type(err).__name__}: {str(err)[:100]})"


def read_row(path: Path) -> dict[str, Any] | None:
    """The row at ``path`` (schema 1 or 2, ok or failed; see :func:`validate_row`), or ``None`` if it is
    missing, unreadable or not a valid row (a foreign or damaged file). Never raises."""
    return read_row_checked(path)[0]


def archive_row(results_dir: str | Path, path: Path) -> Path:
    """Move the row at ``path`` under ``results_dir/.stale/`` (never overwriting an archived row); return where."""
    root = Path(results_dir)
    target = root / STALE_DIR / path.relative_to(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        if not target.exists():
            break
        target = target.with_name(f"{path.stem}.{n}{path.suffix}")
    os.replace(path, target)
    return target


def _show(path: Path) -> str:
    """``path`` for a one-line message (names with control or undecodable characters are escaped)."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


def _row_files(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every ``*.json`` file under ``root`` (sorted), skipping hidden files and folders (archived stale
    rows, cfbench's temporary files) and never following links to folders; plus folders that could not
    be listed, with why."""
    files: list[Path] = []
    errors: list[tuple[Path, str]] = []

    def onerror(err: OSError) -> None:
        errors.append((Path(err.filename) if err.filename else root, f"folder cannot be listed: {_os_reason(err)}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") or not name.endswith(".json") or is_temporary(path):
                continue
            files.append(path)
    return sorted(files), sorted(errors)


def iter_rows(results_dir: str | Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Every ``*.json`` under ``results_dir`` with its row (``None`` if not a valid row), skipping hidden
    paths (e.g. archived stale rows, temporary files)."""
    for path in _row_files(_results_root(results_dir))[0]:
        yield path, read_row(path)


def _results_root(results_dir: str | Path) -> Path:
    root = Path(results_dir)
    if not root.is_dir():
        if root.exists():
            raise ResultsError(f"results directory {root} is not a directory; pass the folder of result rows")
        raise ResultsError(f"results directory {root} does not exist; run `cfbench run --results-dir {root}` first")
    return root


@dataclasses.dataclass
class RowScan:
    """What a results directory holds: valid ``ok`` rows (deduplicated), failed units, the files skipped."""

    root: Path
    #: Valid ``ok`` rows, one per identity, in path order; ``paths[i]`` is where ``rows[i]`` was read.
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    paths: list[Path] = dataclasses.field(default_factory=list)
    #: Valid ``failed`` rows (one per identity): (path, row). Never in tables; listed by reports.
    failed: list[tuple[Path, dict[str, Any]]] = dataclasses.field(default_factory=list)
    #: Files (and folders) that are not valid rows: (path, reason).
    invalid: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    #: Valid rows whose identity another file already provides: (path, kept path).
    duplicates: list[tuple[Path, Path]] = dataclasses.field(default_factory=list)

    @property
    def n_files(self) -> int:
        return len(self.rows) + len(self.failed) + len(self.invalid) + len(self.duplicates)

    def messages(self) -> list[str]:
        """One line per file not counted, in path order (``cfbench: skipping PATH: REASON`` …)."""
        lines = [(p, f"cfbench: skipping {_show(p)}: {reason}") for p, reason in self.invalid]
        lines += [(p, f"cfbench: {_show(p)} duplicates {_show(kept)} (same identity); counted once")
                  for p, kept in self.duplicates]
        lines += [(p, f"cfbench: {_show(p)}: failed unit ({failure_summary(r)}); not in the tables")
                  for p, r in self.failed]
        return [line for _, line in sorted(lines, key=lambda pl: pl[0])]

    def summary(self) -> str | None:
        """One line counting what was skipped, or ``None`` if every file is a counted row."""
        if not (self.invalid or self.duplicates or self.failed):
            return None
        parts = [f"{len(self.invalid)} invalid file{'s' * (len(self.invalid) != 1)} skipped"] if self.invalid else []
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} duplicate{'s' * (len(self.duplicates) != 1)} counted once")
        if self.failed:
            parts.append(f"{len(self.failed)} failed unit{'s' * (len(self.failed) != 1)}")
        n = len(self.rows)
        return f"cfbench: {_show(self.root)}: {n} row{'s' * (n != 1)} loaded; " + ", ".join(parts)

    def warn(self, file: Any = None) -> None:
        """Print :meth:`messages` and :meth:`summary` (on stderr by default)."""
        file = sys.stderr if file is None else file
        for line in self.messages() + [s for s in [self.summary()] if s]:
            print(line, file=file)

    def require_rows(self) -> None:
        """Raise :class:`ResultsError` (one line: what was found, what to do) if there is no valid ok row."""
        if self.rows:
            return
        root = _show(self.root)
        if not self.n_files:
            raise ResultsError(f"no result rows in {root}; run `cfbench run --results-dir {root}` first")
        found = [f"{len(self.invalid)} invalid"] if self.invalid else []
        if self.failed:
            found.append(f"{len(self.failed)} failed unit{'s' * (len(self.failed) != 1)}")
        raise ResultsError(f"no usable result rows in {root} (found {', '.join(found)}, listed above); "
                           f"fix or remove those files, or run `cfbench run --results-dir {root}`")


def failure_summary(row: dict[str, Any]) -> str:
    """``kind in phase: first line of the message`` of a failed row, at most ~160 characters."""
    error = row.get("error") if isinstance(row.get("error"), dict) else {}
    message = str(error.get("message", "")).strip().splitlines()
    message = message[0] if message else ""
    if len(message) > 120:
        message = message[:119] + "…"
    return f"{error.get('kind', '?')} in {error.get('phase', '?')}: {message}"


def _created_ts(row: dict[str, Any]) -> float:
    when = parse_created(row.get("created"))
    return when.timestamp() if when is not None else -math.inf


def _is_canonical(root: Path, path: Path, row: dict[str, Any]) -> bool:
    try:
        return row_path(root, row["dataset"], row["sampler_spec"], row["model_spec"], row["budget"],
                        row["seed"]) == path
    except Exception:
        return False


def scan_rows(results_dir: str | Path) -> RowScan:
    """Read every row file under ``results_dir`` (see :func:`iter_rows` for what is skipped) and sort them
    into valid ok rows, failed units, invalid files and duplicates. Prints nothing; raises only
    :class:`ResultsError` when ``results_dir`` is not a directory.

    Rows with the same identity (:func:`row_identity_key`) are one computation, counted once. The row
    kept is, in order of preference: an ``ok`` one over a ``failed`` one, the most recent ``created``,
    the one at its canonical :func:`row_path`, the first in path order.
    """
    root = _results_root(results_dir)
    files, folder_errors = _row_files(root)
    scan = RowScan(root=root, invalid=list(folder_errors))
    groups: dict[str, list[tuple[int, Path, dict[str, Any]]]] = {}
    for order, path in enumerate(files):
        row, reason = read_row_checked(path)
        if row is None:
            scan.invalid.append((path, reason or "not a result row"))
            continue
        groups.setdefault(row_identity_key(row), []).append((order, path, row))
    kept: list[tuple[int, Path, dict[str, Any]]] = []
    for members in groups.values():
        members.sort(key=lambda m: (row_status(m[2]) != "ok", -_created_ts(m[2]), not _is_canonical(root, m[1], m[2]),
                                    m[0]))
        kept.append(members[0])
        scan.duplicates += [(path, members[0][1]) for _, path, _ in members[1:]]
    for _, path, row in sorted(kept, key=lambda m: m[0]):
        if row_status(row) == "ok":
            scan.rows.append(row)
            scan.paths.append(path)
        else:
            scan.failed.append((path, row))
    scan.invalid.sort(key=lambda pr: pr[0])
    scan.duplicates.sort(key=lambda pk: pk[0])
    return scan


def load_rows(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every valid ``ok`` row under ``results_dir``, one per identity, in path order (:func:`scan_rows`).

    Files that are not valid rows, duplicates and failed units are not returned; each is reported on
    stderr in one line, followed by a one-line summary. An empty list if there are none.
    """
    scan = scan_rows(results_dir)
    scan.warn()
    return scan.rows


def _nan_if_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: math.nan if v is None else v for k, v in values.items()}


def _peak_host_bytes(row: dict[str, Any]) -> float:
    """The largest host peak of the row's measured phases (select, tune, fit, evaluate); NaN if not measured."""
    measured = (row.get("memory") or {}).get("measured") if isinstance(row.get("memory"), dict) else None
    peaks = [m.get("host_peak_bytes") for m in measured.values() if isinstance(m, dict)] if isinstance(measured, dict) \
        else []
    peaks = [p for p in peaks if _is_number(p)]
    return float(max(peaks)) if peaks else math.nan


def lambda_grid_edge(row: dict[str, Any]) -> str | None:
    """``"lower"`` or ``"upper"`` when a row's chosen λ is the smallest (above 0) or the largest of the grid
    values that got a validation score: the best λ may then lie outside the grid. None inside the grid, at
    λ = 0 (nothing lies below it), or when the row recorded no grid."""
    grid = row.get("lambda_grid_val") or {}
    scored = sorted(float(k) for k, v in grid.items() if isinstance(v, int | float) and math.isfinite(v))
    lam = row.get("lambda")
    if len(scored) < 2 or lam is None:
        return None
    if lam == scored[-1]:
        return "upper"
    if lam == scored[0] and lam > 0:
        return "lower"
    return None


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One flat record per row: configuration, subset size, test metrics, timings.

    A ``null`` metric becomes NaN; every :data:`EXPORT_COLUMNS` column exists (NaN where no row has it).
    """
    records = []
    for row in rows:
        core = {
            "dataset": row["dataset"], "sampler": row["sampler_spec"], "sampler_name": row["sampler"],
            "subset_kind": row["subset_kind"], "budget": row["budget"], "model": row["model_spec"],
            "seed": row["seed"], "lambda": row["lambda"],
        }
        subset = {k: row["subset"][k] for k in _SUBSET_KEYS}
        timings = {k: row["timings"][k] for k in _TIMING_KEYS}
        rec = {
            **core, **_nan_if_none(row["subset"]),
            **_nan_if_none(row["metrics"]["test"]),
            **{f"val_{k}": v for k, v in _nan_if_none(row["metrics"]["val"]).items()},
            **{k: v for k, v in _nan_if_none(row["timings"]).items() if not isinstance(v, list | dict)},
            "device": row["environment"]["device"],
        }
        rec.update(core)  # an extra key elsewhere in the row never overrides the configuration
        rec.update(subset)
        rec.update(timings)
        rec["device"] = row["environment"]["device"]
        rec["peak_host_bytes"] = _peak_host_bytes(row)
        rec["lambda_edge"] = lambda_grid_edge(row)
        records.append(rec)
    df = pd.DataFrame.from_records(records)
    for column in EXPORT_COLUMNS:
        if column not in df.columns:
            df[column] = pd.Series(math.nan, index=df.index, dtype=float)
    return df


def environment() -> dict[str, Any]:
    """Device, platform and package versions, recorded in every row."""
    import jax

    devices = jax.devices()
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "backend": jax.default_backend(),
        "device": f"{devices[0].platform}:{getattr(devices[0], 'device_kind', '')}",
        "n_devices": len(devices),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "x64": bool(jax.config.jax_enable_x64),
        "packages": versions,
    }
