"""The benchmark harness: every (seed, sampler, budget) × model → one result row.

For each seed the dataset is split with the reference protocol; each sampler selects a
subset (once, shared by all models); each model chooses λ on validation, is refitted
with it (the timed fit), and is evaluated on test over **all** users.

What the harness guarantees (the README's "Guarantees" section says the same):

* **Identity.** A row is reused only if its recorded identity (:mod:`cfbench.identity`: data
  content, protocol, seed, sampler + parameters + version, budget, model + parameters +
  version, dtype) equals the computation's. A row in the same place with another identity is
  *stale*: it is moved to ``results/.stale/`` and re-run.
* **Isolation.** Samplers see read-only views of the split; the split's fingerprint is checked
  after every plugin call. Any way a plugin can fail — an exception, ``sys.exit``, running
  out of memory, writing into the shared data, passing ``--unit-timeout`` — becomes a
  *failed* row (kind, message, traceback; the traceback also goes to the run log under
  ``results/.logs/``); the suite goes on and :class:`RunSummary` reports the failures
  (``cfbench run`` then exits 1). Failed units are retried, last, by the next run.
* **Crash safety.** Rows are written atomically; a unit is claimed (:mod:`cfbench.claims`)
  before it is computed, so a ``kill -9`` loses at most the unit in progress, which the next
  run computes (units whose last attempt died are run last), and N processes on one results
  directory split the units between them without computing any twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import math
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cfbench.claims import Claim, abandoned_attempt, claim, remove_finished_claims
from cfbench.datasets import DatasetError, Interactions, load_dataset
from cfbench.devices import matmul_precision, resolve_device, use_compile_cache
from cfbench.files import atomic_write_bytes, describe_os_error, remove_orphans
from cfbench.guard import UnitFailure
from cfbench.identity import dataset_label, describe_difference, identity_key, row_identity
from cfbench.models.base import Recommender
from cfbench.plugins import PluginError, load_model, load_sampler
from cfbench.memory import UnitShape, memory_limit, parse_bytes, plan_unit
from cfbench.progress import suite_progress
from cfbench.results import SCHEMA_VERSION, ResultsError, archive_row, read_row, row_path, write_row
from cfbench.sampling import Sampler
from cfbench.splits import Split, freeze, reference_split
from cfbench.subset_cache import Selection, SubsetCache
from cfbench.suites import resolved_suite
from cfbench.unit import UnitTask, compute_unit, device_description, jsonable, process_environment

__all__ = ["RunSummary", "SuiteConfig", "default_budgets", "model_spec", "run_suite"]

log = logging.getLogger("cfbench")

DEFAULT_SAMPLERS = ("full", "random-users", "head-users")
DEFAULT_MODELS = ("infinite-ae", "ease")
LOGS_DIR = ".logs"
EXECUTORS = ("local", "ray")
DEVICES = ("auto", "cpu", "gpu")
#: Where ``cfbench run`` writes rows by default: the user's own (git-ignored) folder, never the published ``results/``.
DEFAULT_RESULTS_DIR = Path("runs")
#: Validation metrics λ may be chosen on (those evaluation reports per user); the reference's is HR@100.
TUNE_METRICS = ("hr@10", "ndcg@10", "psp@10", "hr@100", "ndcg@100", "psp@100")
DEFAULT_TUNE_METRIC = "hr@100"


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    """One benchmark suite: dataset × samplers × budgets × seeds × models."""

    dataset: str = "ml-latest-small"
    samplers: tuple[str, ...] = DEFAULT_SAMPLERS
    models: tuple[str, ...] = DEFAULT_MODELS
    budgets: tuple[int, ...] | None = None  # None: default_budgets(n_users)
    seeds: tuple[int, ...] = (0, 1, 2)
    results_dir: Path = DEFAULT_RESULTS_DIR
    data_dir: Path | None = None
    rating_threshold: float | None = None
    dtype: str = "float32"
    batch_size: int = 1024
    #: Wall-clock limit of one unit (one sampler selection and its models), in seconds; None: no limit.
    unit_timeout: float | None = None
    #: Where units run: ``local`` (this process, one after another) or ``ray`` (a Ray task each).
    executor: str = "local"
    #: Ray cluster to join (``auto``, ``ray://host:port`` or ``host:port``); None: start one on this machine.
    address: str | None = None
    #: JAX device: ``auto`` (a GPU when there is one), ``cpu`` or ``gpu``.
    device: str = "auto"
    #: CPUs each Ray task asks for (the Ray executor only).
    cpus_per_unit: float = 1.0
    #: Validation metric λ is chosen on (part of a row's identity when not the default).
    tune_metric: str = DEFAULT_TUNE_METRIC
    #: Bytes one unit may use (None: what its device has free; $CFBENCH_MEMORY_LIMIT also sets it).
    #: A model predicted not to fit is recorded as *infeasible* (with the prediction), not attempted.
    memory_limit: int | None = None
    #: Folder where JAX keeps compiled programs between runs (None: JAX's own setting, e.g.
    #: $JAX_COMPILATION_CACHE_DIR). On a GPU compiling costs more than computing (docs/performance.md).
    compile_cache: str | None = None
    #: Folder where each unit's selection is kept and reused by later units with the same selection identity
    #: (:mod:`cfbench.subset_cache`): a new model or λ grid on an expensive sample does not select again. None: off.
    subset_cache: str | None = None
    #: The suite file this configuration was read from (recorded in rows, not in their identity).
    suite_file: str | None = None

    def __post_init__(self) -> None:
        if self.budgets is not None and any(isinstance(b, bool) or not isinstance(b, int | np.integer) or b < 1
                                            for b in self.budgets):
            raise ValueError(f"budgets must be positive numbers of users, got {list(self.budgets)}")
        if not self.samplers or not self.models or not self.seeds:
            raise ValueError("a suite needs at least one sampler, one model and one seed")
        if any(isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-negative integers, got {list(self.seeds)}")
        if self.rating_threshold is not None and not math.isfinite(self.rating_threshold):
            raise ValueError(f"the rating threshold must be a finite number, got {self.rating_threshold}")
        if self.batch_size < 1:
            raise ValueError(f"the batch size must be ≥ 1 user, got {self.batch_size}")
        if self.unit_timeout is not None and not (self.unit_timeout > 0 and math.isfinite(self.unit_timeout)):
            raise ValueError(f"the unit time limit must be a positive number of seconds, got {self.unit_timeout}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.address is not None and self.executor != "ray":
            raise ValueError("a cluster address needs the Ray executor (--executor ray)")
        if not (self.cpus_per_unit > 0 and math.isfinite(self.cpus_per_unit)):
            raise ValueError(f"CPUs per unit must be a positive number, got {self.cpus_per_unit}")
        if self.memory_limit is not None and (isinstance(self.memory_limit, bool) or self.memory_limit < 1):
            raise ValueError(f"the memory limit must be a positive number of bytes, got {self.memory_limit}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.tune_metric not in TUNE_METRICS:
            raise ValueError(f"tune metric must be one of {', '.join(TUNE_METRICS)} (a per-user validation metric), "
                             f"got {self.tune_metric!r}")


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
class _Slot:
    """One row of a unit: a model, where its row lives and the identity it must have."""

    model: Recommender
    spec: str
    path: Path
    identity: dict[str, Any]
    key: str


@dataclasses.dataclass
class _Unit:
    seed: int
    sampler: Sampler
    budget: int
    slots: list[_Slot]

    @property
    def key(self) -> str:
        return hashlib.sha256("|".join(s.key for s in self.slots).encode()).hexdigest()[:32]

    @property
    def label(self) -> str:
        return f"{self.sampler.spec()} b={self.budget} seed={self.seed}"


@dataclasses.dataclass
class RunSummary:
    """What a run did; iterating over it gives the path of every row the suite covers."""

    paths: list[Path]
    computed: int = 0
    reused: int = 0
    by_others: int = 0
    archived: int = 0
    failed: list[tuple[Path, dict[str, str]]] = dataclasses.field(default_factory=list)
    #: Rows of models predicted not to fit in memory (not attempted), with the reason.
    infeasible: list[tuple[Path, str]] = dataclasses.field(default_factory=list)
    log_file: Path | None = None

    def __iter__(self) -> Iterator[Path]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        text = (f"{len(self.paths)} rows: {self.computed} computed, {self.reused} already done, "
                f"{self.by_others} computed by another process, {len(self.failed)} failed")
        if self.infeasible:
            text += f", {len(self.infeasible)} infeasible (would not fit in memory)"
        if self.archived:
            text += f"; {self.archived} stale rows archived"
        return text


_jsonable = jsonable


#: An infeasible row is planned again when the memory limit grew by more than this factor.
REPLAN_GROWTH = 1.1


def _slot_state(slot: _Slot, limit: int | None = None) -> tuple[str, dict[str, Any] | None]:
    """``done`` (a current row), ``missing``, ``failed`` (a failed row of this identity) or ``stale``.

    An *infeasible* row (a model predicted not to fit) is ``done`` unless ``limit`` (bytes) is more than
    :data:`REPLAN_GROWTH` × the limit it was planned with: then it is ``failed`` and is planned again.
    """
    row = read_row(slot.path)
    if row is None:
        return "missing", None
    identity = row.get("identity")
    if row.get("identity_key") != slot.key or not isinstance(identity, dict) or identity_key(identity) != slot.key:
        return "stale", row  # another computation's row, or one whose identity was edited
    if row.get("status") == "infeasible":
        planned = (row.get("memory") or {}).get("plan", {}).get("limit_bytes")
        grew = limit is not None and isinstance(planned, int | float) and limit > REPLAN_GROWTH * planned
        return ("failed" if grew else "done"), row
    return ("failed" if row.get("status") == "failed" else "done"), row


class _Run:
    """One call of :func:`run_suite`: the splits, the units and the bookkeeping of what happened."""

    def __init__(self, config: SuiteConfig, data: Interactions, progress: bool,
                 on_row: Callable[[Path, dict[str, Any]], None] | None) -> None:
        self.config, self.data, self.on_row = config, data, on_row
        self.label = dataset_label(data, config.rating_threshold)
        self.env = process_environment()
        self.where = device_description()
        #: The memory limit units are planned against here (infeasible rows planned with less are re-planned).
        self.limit = config.memory_limit if config.memory_limit is not None else memory_limit()
        self.splits: dict[int, Split] = {}
        self.fingerprints: dict[int, str] = {}
        self.summary = RunSummary([])
        self.progress = progress
        self.bar: Any = None
        self.cache = SubsetCache(config.subset_cache) if config.subset_cache is not None else None

    # ------------------------------------------------------------------ units

    def split(self, seed: int, rebuild: bool = False) -> Split:
        if rebuild or seed not in self.splits:
            split = freeze(reference_split(self.data, seed, self.config.rating_threshold))
            self.splits[seed], self.fingerprints[seed] = split, split.fingerprint()
        return self.splits[seed]

    def units(self, samplers: list[Sampler], models: list[Recommender]) -> list[_Unit]:
        specs = [model_spec(m) for m in models]
        units: dict[tuple[Path, ...], _Unit] = {}
        for seed in self.config.seeds:
            n_users = self.split(seed).n_users
            budgets = self.config.budgets or default_budgets(n_users)
            for sampler in samplers:
                for budget in (budgets if sampler.budgeted else (n_users,)):
                    budget = min(budget, n_users)
                    slots = []
                    for model, spec in zip(models, specs):
                        identity = row_identity(
                            data=self.data, rating_threshold=self.config.rating_threshold, seed=seed,
                            sampler_name=sampler.name, sampler_params=_jsonable(sampler.params()),
                            sampler_version=sampler.version, budget=budget, model_name=model.name,
                            model_params=_jsonable(model.get_params()), model_version=model.version,
                            dtype=self.config.dtype, tune_metric=self.config.tune_metric)
                        path = row_path(self.config.results_dir, self.label, sampler.spec(), spec, budget, seed)
                        slots.append(_Slot(model, spec, path, identity, identity_key(identity)))
                    # Identical units (e.g. budgets clipped to n_users) run once.
                    units.setdefault(tuple(s.path for s in slots), _Unit(seed, sampler, budget, slots))
        return list(units.values())

    # ------------------------------------------------------------------ rows

    def header(self, unit: _Unit, slot: _Slot) -> dict[str, Any]:
        split = self.splits[unit.seed]
        return {
            "schema": SCHEMA_VERSION,
            "identity": slot.identity,
            "identity_key": slot.key,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "computed_by": self.where,
            "dataset": self.label,
            "dataset_source": self.data.source,
            "split": {"protocol": "reference", "seed": unit.seed, "rating_threshold": self.config.rating_threshold,
                      **split.summary()},
            "sampler": unit.sampler.name,
            "sampler_spec": unit.sampler.spec(),
            "sampler_params": _jsonable(unit.sampler.params()),
            "sampler_version": unit.sampler.version,
            "model": slot.model.name,
            "model_spec": slot.spec,
            "model_params": _jsonable(slot.model.get_params()),
            "model_version": slot.model.version,
            "budget": unit.budget,
            "seed": unit.seed,
            "dtype": self.config.dtype,
            "tune_metric": self.config.tune_metric,
            "suite": resolved_suite(self.config),  # how this row was asked for; not part of its identity
            "environment": self.env,
        }

    def write(self, slot: _Slot, row: dict[str, Any]) -> None:
        old = read_row(slot.path)
        try:
            if old is not None and old.get("identity_key") != slot.key and old.get("status") != "failed":
                target = archive_row(self.config.results_dir, slot.path)
                self.summary.archived += 1
                log.warning("archived stale row %s as %s", slot.path, target)
            write_row(slot.path, row)
        except OSError as err:
            raise ResultsError(describe_os_error(err, f"result row {slot.path}")) from err
        if row["status"] == "failed":
            self.summary.failed.append((slot.path, row["error"]))
        elif row["status"] == "infeasible":
            self.summary.infeasible.append((slot.path, row["error"]["message"]))
            log.warning("INFEASIBLE %s: %s", slot.path.name, row["error"]["message"])
        else:
            self.summary.computed += 1
        if self.on_row is not None:
            self.on_row(slot.path, row)
        if self.bar is not None:
            self.bar.update()

    # ------------------------------------------------------------------ computing

    def task(self, unit: _Unit, pending: Sequence[_Slot]) -> UnitTask:
        return UnitTask(unit.seed, unit.sampler, unit.budget, [s.model for s in pending],
                        [self.config.batch_size] * len(pending), self.config.unit_timeout, self.config.device,
                        dtype=self.config.dtype, memory_limit=self.config.memory_limit,
                        tune_metric=self.config.tune_metric, selection=self.kept_selection(unit),
                        keep_selection=self.cache is not None)

    def selection_file(self, unit: _Unit) -> Path:
        assert self.cache is not None
        return self.cache.path(self.label, unit.sampler.spec(), unit.budget, unit.seed, unit.slots[0].identity)

    def kept_selection(self, unit: _Unit) -> Selection | None:
        """The subset cache's selection for ``unit`` (None without a cache, or where it has none that matches)."""
        if self.cache is None:
            return None
        kept = self.cache.load(self.selection_file(unit), unit.slots[0].identity)
        if kept is not None:
            log.info("%s: reusing the selection kept in %s (computed %s)", unit.label, self.selection_file(unit),
                     kept.created)
        return kept

    def keep_selection(self, unit: _Unit, selection: Selection) -> None:
        """Keep a freshly computed selection of ``unit`` in the subset cache (a no-op without one)."""
        if self.cache is not None and self.cache.save(self.selection_file(unit), unit.slots[0].identity, selection):
            log.info("%s: selection kept in %s", unit.label, self.selection_file(unit))

    def predicted_cost(self, unit: _Unit) -> float:
        """Relative cost of ``unit``, to submit the long ones first (∞-AE is O(U²·I + U³) in the support's users)."""
        n_items = self.split(unit.seed).n_items
        return float(unit.budget) ** 2 * (n_items + unit.budget) * len(unit.slots)

    def predicted_bytes(self, unit: _Unit, pending: Sequence[_Slot]) -> int:
        """The unit's predicted peak memory (no limit applied), from the memory planner."""
        shape = UnitShape.for_split(self.split(unit.seed), unit.budget, batch_size=self.config.batch_size,
                                    dtype=self.config.dtype)
        plan = plan_unit(unit.sampler, [s.model for s in pending], shape, limit=2**62, tasks_built=False)
        return plan.predicted_peak_bytes

    def gpu_share(self, unit: _Unit, pending: Sequence[_Slot]) -> float:
        """The fraction of one GPU a Ray task asks for: its predicted peak over one GPU's memory
        (``$CFBENCH_GPU_MEMORY``, default 16 GiB, the smallest data-centre GPU), in eighths, at most 1."""
        per_gpu = parse_bytes(os.environ.get("CFBENCH_GPU_MEMORY", "16GiB"), "CFBENCH_GPU_MEMORY")
        eighths = math.ceil(8 * self.predicted_bytes(unit, pending) / per_gpu)
        return min(1.0, max(1, eighths) / 8)

    def record(self, unit: _Unit, slot: _Slot, value: dict[str, Any] | UnitFailure,
               computed_by: dict[str, Any], env: dict[str, Any] | None = None) -> None:
        """Write ``slot``'s row from a computed body or the failure that ended it."""
        header = self.header(unit, slot)
        header["computed_by"] = computed_by
        if env is not None:
            header["environment"] = env
        if isinstance(value, UnitFailure):
            log.info("FAILED %s %s (%s, %s): %s", unit.label, slot.spec, value.phase, value.kind, value.message)
            log.debug("traceback of %s %s:\n%s", unit.label, slot.spec, value.traceback)
            self.write(slot, {**header, "status": "failed", "error": value.record()})
        else:
            self.write(slot, {**header, **value})

    def compute(self, unit: _Unit, pending: list[_Slot]) -> None:
        """Compute ``unit`` in this process, writing each row as soon as its model is done."""
        where = {**device_description(resolve_device(self.config.device)), "executor": "local"}

        def on_stuck(indices: Sequence[int], failure: UnitFailure) -> None:
            for i in indices:
                self.record(unit, pending[i], failure, where)

        result = compute_unit(self.task(unit, pending), self.split(unit.seed), self.fingerprints[unit.seed],
                              lambda: self.split(unit.seed, rebuild=True),
                              lambda i, value: self.record(unit, pending[i], value, where), on_stuck,
                              lambda selection: self.keep_selection(unit, selection))
        if result.split_modified:
            self.split(unit.seed, rebuild=True)

    # ------------------------------------------------------------------ the run

    def begin(self, unit: _Unit, wait: bool) -> tuple[Claim, list[_Slot]] | bool:
        """Claim ``unit`` and return ``(claim, rows still to compute)``.

        ``True`` if nothing is left to compute (another process finished it while we waited);
        ``False`` if another process holds it (and not ``wait``).
        """
        c = claim(self.config.results_dir, unit.key, unit.label, wait=wait)
        if c is None:
            return False
        try:
            states = [(slot, *_slot_state(slot, self.limit)) for slot in unit.slots]
            pending = [slot for slot, state, _ in states if state != "done"]
            if not pending:  # another process finished it while we waited for the claim
                self.summary.by_others += len(unit.slots)
                if self.bar is not None:
                    self.bar.update(len(unit.slots))
                c.release(finished=True)
                return True
            if c.previous:
                log.warning("an earlier attempt at %s (pid %s on %s, started %s) did not finish; running it again",
                            unit.label, c.previous.get("pid"), c.previous.get("host"), c.previous.get("started"))
            for slot, state, row in states:
                if state == "stale":
                    log.warning("%s is stale (%s): it will be re-run and the old row archived", slot.path,
                                describe_difference(row.get("identity") if row else None, slot.identity))
                elif state == "done":
                    self.summary.reused += 1
                    if self.bar is not None:
                        self.bar.update()
            if self.bar is not None:
                self.bar.set_postfix_str(unit.label)
        except BaseException:
            c.release(finished=False)
            raise
        return c, pending

    def process(self, unit: _Unit, wait: bool) -> bool:
        """Claim and compute ``unit`` here; ``False`` if another process holds it (and not ``wait``)."""
        started = self.begin(unit, wait)
        if isinstance(started, bool):
            return started
        c, pending = started
        finished = False
        try:
            self.compute(unit, pending)
            finished = True
            return True
        finally:
            c.release(finished=finished)


class _RunLog(logging.FileHandler):
    """The run's log file; if it cannot be written (a full disk), it stops quietly: rows matter more."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 — logging's name
        self.setLevel(logging.CRITICAL + 1)


def _open_log(results_dir: Path) -> logging.Handler:
    folder = results_dir / LOGS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    handler = _RunLog(folder / f"run-{stamp}-{os.getpid()}.log", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler


def _check_writable(results_dir: Path) -> None:
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = results_dir / f".write-probe.{socket.gethostname()}.{os.getpid()}"  # one per process: runs share dirs
        atomic_write_bytes(probe, b"")
        probe.unlink(missing_ok=True)
    except OSError as err:
        raise ResultsError(describe_os_error(err, f"to the results directory {results_dir}")) from err
    if not results_dir.is_dir():
        raise ResultsError(f"results directory {results_dir} is not a directory; pass another --results-dir")


def _check_validation(split: Split, label: str) -> None:
    """A one-line DatasetError, before anything is computed, when no user of ``split`` has validation items:
    every model chooses λ (and Distill-CF its sample) on validation, so no row could be computed."""
    if split.val.nnz == 0:
        counts = np.diff(split.train_val.indptr) + np.diff(split.test.indptr)
        raise DatasetError(
            f"{label}, seed {split.seed}: no user has validation items, and every model chooses λ on validation; "
            f"the protocol gives validation items only to users with ≥ 6 interactions and the most any user has "
            f"here is {int(counts.max()) if counts.size else 0}: use a denser dataset (for a thin: variant, a "
            f"per_user range reaching 6 or more)")


def run_suite(config: SuiteConfig, progress: bool = True,
              on_row: Callable[[Path, dict[str, Any]], None] | None = None, dry_run: bool = False) -> RunSummary:
    """Run the suite; return a :class:`RunSummary` (iterating gives every row path the suite covers).

    ``dry_run``: say which units would run (and which rows are stale or failed) and compute nothing.

    Configuration errors (unknown plugins or parameters, missing data) raise before anything is
    computed; a failing unit does not raise but is recorded as a failed row and in the summary.
    """
    # Absolute: a plugin that changes the working directory must not send rows elsewhere.
    results_dir = Path(config.results_dir).absolute()
    config = dataclasses.replace(config, results_dir=results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise ResultsError(f"results directory {results_dir} exists and is not a folder (it is a file); pass a folder "
                           "to --results-dir")
    matmul_precision()  # a bad $CFBENCH_MATMUL_PRECISION: one line before anything runs
    if config.subset_cache is not None:
        cache = Path(config.subset_cache).absolute()
        if cache.exists() and not cache.is_dir():
            raise ResultsError(f"subset cache {cache} exists and is not a folder; pass a folder to --subset-cache")
        config = dataclasses.replace(config, subset_cache=str(cache))
    if config.compile_cache is not None:
        config = dataclasses.replace(config, compile_cache=str(use_compile_cache(config.compile_cache)))
    if config.executor == "local":
        resolve_device(config.device)  # --device gpu without a GPU: likewise
    else:
        from cfbench.executors import require_ray

        require_ray()
    data = load_dataset(config.dataset, config.data_dir)
    samplers = [load_sampler(s) for s in config.samplers]
    models = [load_model(m, dtype=config.dtype) for m in config.models]
    for plugin, params in [(s, s.params) for s in samplers] + [(m, m.get_params) for m in models]:
        try:
            _jsonable(params())
        except TypeError as err:
            raise PluginError(f"plugin {plugin.name!r}: its parameters cannot be recorded in a row ({err})") from None
    _check_writable(results_dir)
    remove_orphans(results_dir)
    handler = _open_log(results_dir)
    log.addHandler(handler)
    previous_level = log.level
    log.setLevel(logging.DEBUG)  # the run log gets everything, tracebacks included; handlers filter the rest
    try:
        return _run(config, data, samplers, models, progress, on_row, Path(handler.baseFilename), dry_run)
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(previous_level)


def _run(config: SuiteConfig, data: Interactions, samplers: list[Sampler], models: list[Recommender],
         progress: bool, on_row: Callable[[Path, dict[str, Any]], None] | None, log_file: Path,
         dry_run: bool = False) -> RunSummary:
    run = _Run(config, data, progress, on_row)
    run.summary.log_file = log_file
    units = run.units(samplers, models)
    for seed in config.seeds:
        _check_validation(run.split(seed), run.label)
    run.summary.paths = [s.path for u in units for s in u.slots]
    states = {u.key: [_slot_state(s, run.limit)[0] for s in u.slots] for u in units}
    todo = [u for u in units if any(st != "done" for st in states[u.key])]
    run.summary.reused = sum(len(u.slots) for u in units if u not in todo)
    # Units that failed or whose last attempt died run last: one that crashes the process cannot
    # keep the others from being computed.
    retried = {u.key for u in todo if "failed" in states[u.key]
               or abandoned_attempt(config.results_dir, u.key) is not None}
    todo.sort(key=lambda u: u.key in retried)
    done_in_todo = sum(st == "done" for u in todo for st in states[u.key])  # a unit runs only its missing rows
    log.info("%s: %d units (%d rows) to run, %d rows already done%s", run.label, len(todo),
             sum(len(u.slots) for u in todo) - done_in_todo, run.summary.reused + done_in_todo,
             f"; {len(retried)} failed or interrupted before, run last" if retried else "")
    if dry_run:
        run.summary.reused += done_in_todo  # (a real run counts them as it reaches their unit)
        for unit in todo:
            states_of = ", ".join(f"{s.spec}: {st}" for s, st in zip(unit.slots, states[unit.key]))
            log.info("would run %s (%s)", unit.label, states_of)
        return run.summary
    run.bar = tqdm(total=sum(len(u.slots) for u in todo), disable=not progress, unit="row", desc=run.label,
                   dynamic_ncols=True, file=sys.stderr)
    try:
        with suite_progress(progress):
            if config.executor == "ray":
                from cfbench.executors import run_on_ray

                run_on_ray(run, todo, retried)
            else:
                deferred = [u for u in todo if not run.process(u, wait=False)]
                for unit in deferred:
                    log.info("waiting for another process that is computing %s", unit.label)
                    run.process(unit, wait=True)
    finally:
        run.bar.close()
    done = {u.key for u in units if all(_slot_state(s)[0] in ("done", "failed") for s in u.slots)}
    remove_finished_claims(config.results_dir, done)
    log.info("%s: %s", run.label, run.summary.describe())
    return run.summary


def run_suite_rows(config: SuiteConfig, **kwargs: Any) -> Sequence[dict[str, Any]]:
    """Convenience for notebooks: run the suite and return the rows it covers."""
    return [r for p in run_suite(config, **kwargs) if (r := read_row(p)) is not None]
