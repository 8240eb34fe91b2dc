"""Upgrading schema-1 rows (written before rows carried their identity) to schema 2, where provable.

A schema-1 row records its sampler and model parameters, the sampler version and the split's
sizes, but not a hash of the data it was computed on. It is upgraded only when everything that
can be checked agrees with what the current code would compute:

* the dataset is found and, split with the row's seed and rating threshold, gives exactly the
  users, items and train/validation/test sizes the row recorded;
* the row's sampler and model specs load, with exactly the recorded parameters and sampler
  version (the model's version is "1", the only one before versions existed);
* the row sits where the current code would write it.

Every other schema-1 row is left untouched and reported: the harness treats it as stale and
re-runs it (archiving the old file) when its unit is next run.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from cfbench.datasets import DATASETS, Interactions, load_dataset
from cfbench.identity import dataset_label, identity_key, is_neutral, row_identity
from cfbench.plugins import load_model, load_sampler
from cfbench.results import SCHEMA_VERSION, iter_rows, row_path, write_row
from cfbench.splits import reference_split

__all__ = ["UpgradeReport", "upgrade_rows"]


@dataclasses.dataclass
class UpgradeReport:
    upgraded: list[Path] = dataclasses.field(default_factory=list)
    current: int = 0
    left: list[tuple[Path, str]] = dataclasses.field(default_factory=list)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _upgrade(path: Path, row: dict[str, Any], root: Path, data: Interactions, split_sizes: dict[str, int]) -> str:
    """Upgrade ``row`` in place; return '' or why it cannot be upgraded."""
    threshold = row["split"].get("rating_threshold")
    recorded = {k: row["split"].get(k) for k in ("users", "items", "train", "val", "test")}
    if recorded != split_sizes:
        return f"its split sizes {recorded} differ from this data's {split_sizes}"
    sampler = load_sampler(row["sampler_spec"])
    if _jsonable(sampler.params()) != row["sampler_params"] or sampler.version != row.get("sampler_version", "1"):
        return "its sampler parameters or version differ from the current ones"
    model = load_model(row["model_spec"], dtype=row.get("dtype", "float32"))
    def tuned_out(params: dict[str, Any]) -> dict[str, Any]:  # λ is tuned; a default λ grid predates `lambdas`
        return {k: v for k, v in params.items() if k != "lam" and not is_neutral(k, v)}

    if tuned_out(_jsonable(model.get_params())) != tuned_out(row["model_params"]) or model.version != "1":
        return "its model parameters differ from the current ones"
    label = dataset_label(data, threshold)
    if path != row_path(root, label, sampler.spec(), row["model_spec"], row["budget"], row["seed"]):
        return "it is not where the current code writes this row"
    identity = row_identity(data=data, rating_threshold=threshold, seed=row["seed"], sampler_name=sampler.name,
                            sampler_params=_jsonable(sampler.params()), sampler_version=sampler.version,
                            budget=row["budget"], model_name=model.name, model_params=row["model_params"],
                            model_version=model.version, dtype=row.get("dtype", "float32"))
    row.update({"schema": SCHEMA_VERSION, "status": "ok", "identity": identity, "identity_key": identity_key(identity),
                "model_version": model.version, "dataset": label})
    write_row(path, row)
    return ""


def upgrade_rows(results_dir: str | Path, data_dir: str | Path | None = None) -> UpgradeReport:
    """Upgrade every provably current schema-1 row under ``results_dir`` (see the module docstring)."""
    root = Path(results_dir)
    report = UpgradeReport()
    datasets: dict[str, Interactions | str] = {}
    splits: dict[tuple[str, int, float | None], dict[str, int]] = {}
    for path, row in iter_rows(root):
        if row is None:
            continue
        if row.get("schema") != 1:
            report.current += 1
            continue
        name = row["dataset"]
        if name not in DATASETS:
            report.left.append((path, f"dataset {name!r} is not built in: its content cannot be checked"))
            continue
        if name not in datasets:
            try:
                datasets[name] = load_dataset(name, data_dir)
            except ValueError as err:
                datasets[name] = str(err)
        data = datasets[name]
        if isinstance(data, str):
            report.left.append((path, data))
            continue
        key = (name, row["seed"], row["split"].get("rating_threshold"))
        if key not in splits:
            splits[key] = reference_split(data, key[1], key[2]).summary()
        try:
            reason = _upgrade(path, row, root, data, splits[key])
        except ValueError as err:
            reason = str(err)
        if reason:
            report.left.append((path, reason))
        else:
            report.upgraded.append(path)
    return report
