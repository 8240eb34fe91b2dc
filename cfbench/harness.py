"""The benchmark harness: every (seed, sampler, budget) × model → one result row.

For each seed the dataset is split with the reference protocol; each sampler selects a
subset (once, shared by all models); each model chooses λ on validation, is refitted
with it (the timed fit), and is evaluated on test over **all** users. Rows that already
exist are skipped, so an interrupted suite resumes where it stopped — but only if they were
produced with the same sampler parameters, sampler version and model parameters: a row
file's name lists only non-default parameters, so after a default changes the old row is
*stale*. Stale rows are re-run and the old file is archived under ``results/.stale/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cfbench.datasets import Interactions, load_dataset
from cfbench.evaluation import evaluate, evaluation_task, select_lambda
from cfbench.models.base import Recommender
from cfbench.plugins import load_model, load_sampler
from cfbench.results import SCHEMA_VERSION, archive_row, environment, read_row, row_path, write_row
from cfbench.sampling import Sampler, SelectionData
from cfbench.splits import Split, reference_split
from cfbench.subsets import subset_size, support_matrix, validate_subset
from cfbench.timing import Stopwatch

__all__ = ["SuiteConfig", "default_budgets", "model_spec", "run_suite"]

log = logging.getLogger("cfbench")

DEFAULT_SAMPLERS = ("full", "random-users", "head-users")
DEFAULT_MODELS = ("infinite-ae", "ease")


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    """One benchmark suite: dataset × samplers × budgets × seeds × models."""

    dataset: str = "ml-latest-small"
    samplers: tuple[str, ...] = DEFAULT_SAMPLERS
    models: tuple[str, ...] = DEFAULT_MODELS
    budgets: tuple[int, ...] | None = None  # None: default_budgets(n_users)
    seeds: tuple[int, ...] = (0, 1, 2)
    results_dir: Path = Path("results")
    data_dir: Path | None = None
    rating_threshold: float | None = None
    dtype: str = "float32"
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.budgets is not None and any(b < 1 for b in self.budgets):
            raise ValueError(f"budgets must be positive numbers of users, got {self.budgets}")
        if not self.samplers or not self.models or not self.seeds:
            raise ValueError("a suite needs at least one sampler, one model and one seed")


def default_budgets(n_users: int, start: int = 10) -> tuple[int, ...]:
    """Log-spaced 1-2-5 budgets from ``start`` users up to (not including) all users."""
    budgets = []
    for decade in range(int(math.log10(start)), int(math.log10(max(n_users, 1))) + 1):
        for m in (1, 2, 5):
            b = m * 10**decade
            if start <= b < n_users:
                budgets.append(b)
    return tuple(budgets)


def model_spec(model: Recommender) -> str:
    """``name[:k=v,...]`` with the constructor arguments that differ from the defaults (``lam`` is tuned)."""
    defaults = type(model)().get_params()
    changed = {k: v for k, v in model.get_params().items() if k != "lam" and defaults.get(k) != v}
    return model.name + (":" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) if changed else "")


@dataclasses.dataclass
class _Unit:
    seed: int
    sampler: Sampler
    budget: int
    paths: dict[str, Path]  # model spec → row path


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from a row (tuples become lists, and so on)."""
    return json.loads(json.dumps(value))


def _stale_reason(row: dict[str, Any], sampler: Sampler, model: Recommender) -> str | None:
    """Why an existing row no longer matches this sampler and model, or ``None`` if it does."""
    if row.get("sampler_version", "1") != sampler.version:
        return f"sampler version {row.get('sampler_version', '1')} → {sampler.version}"
    old, new = row.get("sampler_params", {}), _jsonable(sampler.params())
    if old != new:
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return "sampler parameters " + ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in changed)
    old = {k: v for k, v in row.get("model_params", {}).items() if k != "lam"}
    new = {k: v for k, v in _jsonable(model.get_params()).items() if k != "lam"}
    if old != new:
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return "model parameters " + ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in changed)
    return None


def _current(path: Path, sampler: Sampler, model: Recommender) -> bool:
    """Whether ``path`` holds a row that this sampler and model would reproduce (warns if it is stale)."""
    row = read_row(path)
    if row is None:
        return False
    reason = _stale_reason(row, sampler, model)
    if reason is not None:
        log.warning("%s is stale (%s): it will be re-run and the old row archived", path, reason)
    return reason is None


def run_suite(config: SuiteConfig, progress: bool = True,
              on_row: Callable[[Path, dict[str, Any]], None] | None = None) -> list[Path]:
    """Run the suite; return the paths of every row it covers (written now or found)."""
    data = load_dataset(config.dataset, config.data_dir)
    samplers = [load_sampler(s) for s in config.samplers]
    models = [load_model(m, dtype=config.dtype) for m in config.models]
    specs = [model_spec(m) for m in models]
    env = environment()

    splits: dict[int, Split] = {}
    units: list[_Unit] = []
    for seed in config.seeds:
        split = reference_split(data, seed, config.rating_threshold)
        splits[seed] = split
        budgets = config.budgets or default_budgets(split.n_users)
        for sampler in samplers:
            for budget in (budgets if sampler.budgeted else (split.n_users,)):
                budget = min(budget, split.n_users)
                paths = {spec: row_path(config.results_dir, data.name, sampler.spec(), spec, budget, seed)
                         for spec in specs}
                units.append(_Unit(seed, sampler, budget, paths))
    # Identical units (e.g. budgets clipped to n_users) run once.
    units = list({tuple(u.paths.values()): u for u in units}.values())

    by_spec = dict(zip(specs, models))
    done = [u for u in units if all(_current(p, u.sampler, by_spec[s]) for s, p in u.paths.items())]
    todo = [u for u in units if u not in done]
    log.info("%s: %d units (%d rows) to run, %d already done", data.name, len(todo), len(todo) * len(models),
             len(done))
    bar = tqdm(total=len(todo) * len(models), disable=not progress, unit="row", desc=data.name, dynamic_ncols=True)
    for unit in todo:
        split = splits[unit.seed]
        bar.set_postfix_str(f"{unit.sampler.spec()} b={unit.budget} seed={unit.seed}")
        subset, select_sw = _select(unit.sampler, split, unit.budget, unit.seed)
        diagnostics = _jsonable(unit.sampler.diagnostics())
        support = support_matrix(subset, split.train)
        size = subset_size(subset, split.train)
        for model, spec in zip(models, specs):
            path = unit.paths[spec]
            if read_row(path) is not None:
                if _stale_reason(read_row(path), unit.sampler, model) is None:
                    bar.update()
                    continue
                log.warning("archived stale row %s as %s", path, archive_row(config.results_dir, path))
            row = _run_model(model, spec, support, split, config)
            row.update(_row_header(data, split, unit, subset.kind, size, env, config))
            row["selection"] = diagnostics
            row["timings"] = {"select_s": select_sw.seconds, "select_compile_s": select_sw.compile_seconds,
                              **row["timings"]}
            write_row(path, row)
            if on_row is not None:
                on_row(path, row)
            bar.update()
    bar.close()
    return [p for u in units for p in u.paths.values()]


def _select(sampler: Sampler, split: Split, budget: int, seed: int):
    rng = np.random.default_rng([seed, budget])
    with Stopwatch() as sw:
        subset = sampler.select(SelectionData(split), budget, rng)
        subset = validate_subset(subset, split.train, budget, sampler.spec())
    return subset, sw


def _run_model(model: Recommender, spec: str, support: Any, split: Split, config: SuiteConfig) -> dict[str, Any]:
    with Stopwatch() as tune_sw:
        selection = select_lambda(model, support, split, batch_size=config.batch_size)
    with Stopwatch() as fit_sw:
        fitted = model.clone(lam=selection.lam).fit(support)
    with Stopwatch() as eval_sw:
        test = evaluate(fitted, evaluation_task(split, "test"), config.batch_size)
    return {
        "model": model.name,
        "model_spec": spec,
        "model_params": {k: v for k, v in fitted.get_params().items()},
        "lambda": selection.lam,
        "lambda_grid_val": {repr(k): v for k, v in selection.scores.items()},
        "metrics": {"val": selection.validation.summary(), "test": test.summary()},
        "n_eval_users": {"val": int(len(selection.validation.users)), "test": int(len(test.users))},
        "timings": {
            "tune_s": tune_sw.seconds, "tune_compile_s": tune_sw.compile_seconds,
            "fit_s": fit_sw.seconds, "fit_compile_s": fit_sw.compile_seconds,
            "eval_s": eval_sw.seconds, "eval_compile_s": eval_sw.compile_seconds,
        },
    }


def _row_header(data: Interactions, split: Split, unit: _Unit, kind: str, size: dict[str, float],
                env: dict[str, Any], config: SuiteConfig) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": data.name,
        "dataset_source": data.source,
        "split": {"protocol": "reference", "seed": unit.seed, "rating_threshold": config.rating_threshold,
                  **split.summary()},
        "sampler": unit.sampler.name,
        "sampler_spec": unit.sampler.spec(),
        "sampler_params": unit.sampler.params(),
        "sampler_version": unit.sampler.version,
        "subset_kind": kind,
        "budget": unit.budget,
        "seed": unit.seed,
        "subset": size,
        "dtype": config.dtype,
        "environment": env,
    }


def run_suite_rows(config: SuiteConfig, **kwargs: Any) -> Sequence[dict[str, Any]]:
    """Convenience for notebooks: run the suite and return the rows it covers."""
    return [r for p in run_suite(config, **kwargs) if (r := read_row(p)) is not None]
