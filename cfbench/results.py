"""Result rows: one JSON file per (dataset, sampler, budget, seed, model), written atomically.

A row holds the full configuration, the subset's actual size, every metric on validation
and test, the chosen λ, timings and the environment. Rows are the single source of truth:
leaderboards and exports are regenerated from them alone.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["SCHEMA_VERSION", "STALE_DIR", "ResultsError", "archive_row", "environment", "load_rows", "row_path",
           "rows_frame", "write_row"]

SCHEMA_VERSION = 1
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


def write_row(path: Path, row: dict[str, Any]) -> None:
    """Write ``row`` as JSON atomically: a reader sees the old file or the complete new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(row, fh, indent=1, sort_keys=True, allow_nan=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_row(path: Path) -> dict[str, Any] | None:
    """The row at ``path``, or ``None`` if it is missing or unreadable (a foreign or damaged file)."""
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get("schema") == SCHEMA_VERSION else None


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


def iter_rows(results_dir: str | Path) -> Iterator[tuple[Path, dict[str, Any] | None]]:
    """Every ``*.json`` under ``results_dir`` with its row, skipping hidden paths (e.g. archived stale rows)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsError(f"results directory {root} does not exist; run `cfbench run --results-dir {root}` first")
    for path in sorted(root.rglob("*.json")):
        if not any(part.startswith(".") for part in path.relative_to(root).parts):
            yield path, read_row(path)


def load_rows(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every valid row under ``results_dir`` (sorted by path); unreadable files are reported on stderr."""
    rows = []
    for path, row in iter_rows(results_dir):
        if row is None:
            print(f"cfbench: skipping {path}: not a cfbench result row (schema {SCHEMA_VERSION})", file=sys.stderr)
            continue
        rows.append(row)
    return rows


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One flat record per row: configuration, subset size, test metrics, timings."""
    records = []
    for row in rows:
        rec = {
            "dataset": row["dataset"], "sampler": row["sampler_spec"], "sampler_name": row["sampler"],
            "subset_kind": row["subset_kind"], "budget": row["budget"], "model": row["model_spec"],
            "seed": row["seed"], "lambda": row["lambda"], **row["subset"],
            **{k: v for k, v in row["metrics"]["test"].items()},
            **{f"val_{k}": v for k, v in row["metrics"]["val"].items()},
            **row["timings"], "device": row["environment"]["device"],
        }
        records.append(rec)
    return pd.DataFrame.from_records(records)


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
