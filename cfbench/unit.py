"""Computing one unit: a sampler's selection at one budget, then every model trained on it.

This is the part of a suite that runs where the work is done — in the driver with the local
executor, in a Ray worker with the Ray executor — so it reads nothing from disk and writes
nothing: it gets the split and the plugins, and returns, per model, the row body (metrics,
λ, timings) or the :class:`~cfbench.guard.UnitFailure` that ended it. The harness adds each
row's identity and writes it. A selection kept by the subset cache (:mod:`cfbench.subset_cache`)
comes in the task, and a fresh one goes back (``on_selection`` and :attr:`UnitResult.selection`):
the harness, not the worker, reads and writes the cache.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import socket
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cfbench.devices import matmul_precision, on_device
from cfbench.evaluation import SELECTION_METRIC, evaluate, evaluation_task, select_lambda
from cfbench.guard import Deadline, UnitFailure, guarded
from cfbench.memory import PeakMemory, UnitShape, evaluation_task_footprint, memory_limit, plan_model, plan_unit
from cfbench.models.base import Recommender
from cfbench.peruser import encode_per_user
from cfbench.results import environment
from cfbench.sampling import Sampler, SelectionData
from cfbench.splits import Split
from cfbench.subset_cache import Selection
from cfbench.subsets import SubsetError, subset_size, support_matrix, validate_subset
from cfbench.timing import Stopwatch

__all__ = ["FIT_REPEATS", "FIT_REPEAT_BUDGET_S", "UnitTask", "UnitResult", "compute_unit", "device_description",
           "jsonable", "process_environment"]

#: The timed refit is repeated up to FIT_REPEATS times while the runs so far took under
#: FIT_REPEAT_BUDGET_S seconds; the row's ``fit_s`` is their median (each run in ``fit_runs_s``).
FIT_REPEATS = 3
log = logging.getLogger("cfbench")
#: Fingerprints of the splits this process has evaluated on (their AUC gathers are compiled).
_EVALUATED: set[str] = set()
#: Split objects whose evaluation tasks are built (cached on the object; a Ray worker gets a new object per task).
_TASKS_BUILT: weakref.WeakSet[Split] = weakref.WeakSet()
FIT_REPEAT_BUDGET_S = 2.0


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from a row (tuples become lists, and so on); a clear error otherwise."""
    try:
        return json.loads(json.dumps(value, allow_nan=True))
    except (TypeError, ValueError) as err:
        raise TypeError(f"not JSON-serialisable: {err}") from None


def device_description(device: Any = None) -> dict[str, Any]:
    """Where this process computes: host, process, the JAX ``device`` (default: the first) and visible GPUs."""
    import jax

    device = device if device is not None else jax.devices()[0]
    where: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(),
                             "device": f"{device.platform}:{device.id} ({getattr(device, 'device_kind', '')})",
                             "matmul_precision": matmul_precision()}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        where["cuda_visible_devices"] = visible
    return where


@dataclasses.dataclass
class UnitTask:
    """What one unit needs: the selection to make and the models (one per row still to compute)."""

    seed: int
    sampler: Sampler
    budget: int
    models: list[Recommender]
    batch_sizes: list[int]  # evaluation batch per model (the memory planner may lower the suite's)
    timeout: float | None = None
    device: str = "auto"  # see cfbench.devices
    dtype: str = "float32"
    #: Bytes a unit may use (None: what the device has free, cfbench.memory.memory_limit).
    memory_limit: int | None = None
    #: The fraction of its accelerator this unit was given (Ray GPU shares): its limit is that part.
    memory_share: float = 1.0
    tune_metric: str = SELECTION_METRIC  # validation metric λ is chosen on
    #: A selection the subset cache kept for this unit's selection identity: used instead of selecting.
    selection: Selection | None = None
    #: Return a fresh selection in :attr:`UnitResult.selection` (the Ray executor's driver keeps it in the cache).
    keep_selection: bool = False


@dataclasses.dataclass
class UnitResult:
    """Per model, the row body or the failure; plus where it ran and whether the split was modified."""

    results: list[dict[str, Any] | UnitFailure]
    computed_by: dict[str, Any]
    environment: dict[str, Any]
    split_modified: bool = False
    #: The selection this unit computed (None when it reused the task's, or selecting failed), for the cache.
    selection: Selection | None = None


@functools.cache
def process_environment() -> dict[str, Any]:
    """This process's device, platform and package versions (what every row records), computed once."""
    return {**environment(), "host": socket.gethostname()}


def _check_split(split: Split, fingerprint: str, phase: str) -> None:
    if split.fingerprint() != fingerprint:
        raise UnitFailure("mutation", "the plugin modified the shared train/validation/test data (the split was "
                          "rebuilt for the units after it); copy the data before changing it", phase)


def compute_unit(task: UnitTask, split: Split, fingerprint: str, fresh_split: Callable[[], Split],
                 on_result: Callable[[int, dict[str, Any] | UnitFailure], None] | None = None,
                 on_stuck: Callable[[Sequence[int], UnitFailure], None] | None = None,
                 on_selection: Callable[[Selection], None] | None = None) -> UnitResult:
    """Select the subset (or take ``task.selection``), then tune (λ on validation), fit (timed) and test every
    model of ``task``.

    ``fresh_split()`` gives an unmodified split when a plugin modified this one (the next models
    of the unit use it). ``on_result(i, body_or_failure)`` is called as soon as model ``i`` is done (the local executor
    writes its row then); ``on_stuck(indices, failure)`` is called by the watchdog, for the models
    not yet done, when native code overruns the time limit (the process ends right after).
    ``on_selection(selection)`` is called once a fresh selection is validated, before any model runs (the local
    executor keeps it in the subset cache then, so a crash later in the unit does not lose it).
    """
    with on_device(task.device) as device:
        return _compute(task, split, fingerprint, fresh_split, on_result, on_stuck, on_selection, device)


def _reused_selection(task: UnitTask, split: Split) -> Selection | None:
    """``task.selection`` validated against this split (a kept subset that does not fit is selected again)."""
    kept = task.selection
    if kept is None:
        return None
    try:
        subset = validate_subset(kept.subset, split.train, task.budget, task.sampler.spec())
    except SubsetError as err:
        log.warning("subset cache: the kept selection of %s b=%d does not fit this split (%s); selecting again",
                    task.sampler.spec(), task.budget, err)
        return None
    return dataclasses.replace(kept, subset=subset)


def _compute(task: UnitTask, split: Split, fingerprint: str, fresh_split: Callable[[], Split],
             on_result: Callable[[int, dict[str, Any] | UnitFailure], None] | None,
             on_stuck: Callable[[Sequence[int], UnitFailure], None] | None,
             on_selection: Callable[[Selection], None] | None, device: Any) -> UnitResult:
    where = device_description(device)
    deadline = Deadline(task.timeout)
    results: list[dict[str, Any] | UnitFailure | None] = [None] * len(task.models)
    modified = False

    def done(i: int, value: dict[str, Any] | UnitFailure) -> None:
        results[i] = value
        if on_result is not None:
            on_result(i, value)

    def stuck(failure: UnitFailure) -> None:
        if on_stuck is not None:
            on_stuck([i for i, r in enumerate(results) if r is None], failure)

    shape = UnitShape.for_split(split, task.budget, batch_size=max(task.batch_sizes), dtype=task.dtype,
                                eval_compiled=fingerprint in _EVALUATED)
    limit = None if task.memory_limit is None else int(task.memory_limit)
    if limit is None and task.memory_share < 1.0:
        limit = int(memory_limit(device) * task.memory_share)
    plan = plan_unit(task.sampler, task.models, shape, limit=limit, device=device,
                     tasks_built=split in _TASKS_BUILT)
    selection_fits = plan.selection_counted.peak_bytes <= plan.limit_bytes
    # Before selecting, an interaction sampler's support is only bounded (one row per kept interaction at
    # most): its models are planned on the real support after selecting, never declared infeasible on the bound.
    support_known = plan.shape.support_rows <= min(task.budget, shape.n_users)
    if not selection_fits or (support_known and not any(m.feasible for m in plan.models)):
        # Nothing would be trained: do not even select (per model, the post-selection plan decides).
        for i, model in enumerate(task.models):
            done(i, infeasible_body(plan.reason_for(i), plan.record(i)))
        return UnitResult(list(results), where, process_environment(), modified)  # type: ignore[arg-type]
    kept = _reused_selection(task, split)
    fresh: Selection | None = None
    try:
        if kept is None:
            rng = np.random.default_rng([task.seed, task.budget])
            with Stopwatch() as select_sw, PeakMemory() as select_mem:
                subset = guarded("select", lambda: task.sampler.select(SelectionData(split), task.budget, rng),
                                 deadline, stuck)
            _check_split(split, fingerprint, "select")
            subset = guarded("select", lambda: validate_subset(subset, split.train, task.budget, task.sampler.spec()))
            diagnostics = guarded("diagnostics", lambda: jsonable(task.sampler.diagnostics()))
            reused = diagnostics.get("reused_seconds", 0.0) if isinstance(diagnostics, dict) else 0.0
            fresh = Selection(subset, diagnostics, {
                "select_s": select_sw.seconds, "select_compile_s": select_sw.compile_seconds,
                "select_cost_s": select_sw.seconds + (reused if isinstance(reused, float | int) else 0.0)},
                select_mem.record(), where)
        selection = kept if kept is not None else fresh
        assert selection is not None
        subset, diagnostics = selection.subset, selection.diagnostics
        support = support_matrix(subset, split.train)
        size = subset_size(subset, split.train)
    except UnitFailure as failure:
        modified = split.fingerprint() != fingerprint
        for i in range(len(task.models)):
            done(i, failure)
        return UnitResult(list(results), where, process_environment(), modified)  # type: ignore[arg-type]
    if fresh is not None and on_selection is not None:
        on_selection(fresh)
    select_timings = dict(selection.timings)
    retained = plan.support_bytes + plan.selection.retained_bytes
    # Building the split's validation and test tasks (first evaluation of this split object).
    tasks_bytes = evaluation_task_footprint(shape.n_users, shape.n_items, shape.nnz).peak_bytes
    for i, (model, batch) in enumerate(zip(task.models, task.batch_sizes)):
        # With the real support size the plan is tighter; it may lower the evaluation batch to fit.
        model_plan = plan_model(model, dataclasses.replace(shape, n_support=int(support.shape[0]), batch_size=batch,
                                                           eval_compiled=fingerprint in _EVALUATED),
                                limit=limit, device=device, extra_bytes=retained + (0 if split in _TASKS_BUILT else
                                                                                   tasks_bytes))
        if not model_plan.feasible:
            done(i, infeasible_body(model_plan.reason, model_plan.record()))
            continue
        if model_plan.batch_size < batch:
            log.info("%s on %s b=%d: evaluation batch lowered from %d to %d users to fit in memory", model.name,
                     task.sampler.spec(), task.budget, batch, model_plan.batch_size)
        try:
            body = _run_model(model, support, split, model_plan.batch_size, deadline, stuck, task.tune_metric)
            _check_split(split, fingerprint, "model")
        except UnitFailure as failure:
            if split.fingerprint() != fingerprint:
                modified, split = True, fresh_split()
            done(i, failure)
            continue
        _EVALUATED.add(fingerprint)
        _TASKS_BUILT.add(split)
        body.update({"status": "ok", "subset_kind": subset.kind, "subset": size, "selection": diagnostics})
        if selection.source is not None:
            body["selection_reused"] = selection.source
        body["timings"] = {**select_timings, **body["timings"]}
        body["memory"] = {"plan": model_plan.record(), "measured": {"select": selection.memory,
                                                                    **body.pop("measured_memory")}}
        done(i, body)
    return UnitResult(list(results), where, process_environment(), modified,  # type: ignore[arg-type]
                      fresh if task.keep_selection else None)


def infeasible_body(reason: str, plan: dict[str, Any]) -> dict[str, Any]:
    """The body of a row for a model that cannot fit in memory: not attempted, with the prediction."""
    # The "error" block makes readers that know failed rows list it with them (kind "infeasible").
    return {"status": "infeasible", "error": {"kind": "infeasible", "message": reason, "phase": "plan",
                                              "traceback": ""}, "memory": {"plan": plan}}


def _run_model(model: Recommender, support: Any, split: Split, batch: int, deadline: Deadline,
               on_stuck: Callable[[UnitFailure], None], metric: str = SELECTION_METRIC) -> dict[str, Any]:
    with Stopwatch() as tune_sw, PeakMemory() as tune_mem:
        selection = guarded("tune", lambda: select_lambda(model, support, split, batch_size=batch, metric=metric),
                            deadline, on_stuck)
    # Keep the λ search's outcome, not its fitted winner: the timed fit refits it, and holding both would
    # keep a second support and solution (∞-AE: X and α; EASE: B, or W and X) alive through the test.
    lam, lam_scores, validation = selection.lam, selection.scores, selection.validation
    del selection
    with Stopwatch() as fit_sw, PeakMemory() as fit_mem:
        fitted = guarded("fit", lambda: model.clone(lam=lam).fit(support), deadline, on_stuck)
    fit_runs = [fit_sw.seconds]
    while len(fit_runs) < FIT_REPEATS and sum(fit_runs) < FIT_REPEAT_BUDGET_S:
        with Stopwatch() as again:  # short fits are repeated: one measurement of 10 ms is noise
            guarded("fit", lambda: model.clone(lam=lam).fit(support), deadline, on_stuck)
        fit_runs.append(again.seconds)
    with Stopwatch() as eval_sw, PeakMemory() as eval_mem:
        test = guarded("evaluate", lambda: evaluate(fitted, evaluation_task(split, "test"), batch),
                       deadline, on_stuck)
    return {
        "model_params": jsonable(fitted.get_params()),
        "lambda": lam,
        "lambda_grid_val": {repr(k): v for k, v in lam_scores.items()},
        "metrics": {"val": validation.summary(), "test": test.summary()},
        "n_eval_users": {"val": int(len(validation.users)), "test": int(len(test.users))},
        "per_user": {"test": encode_per_user(test)},  # for the paired significance tests (cfbench.significance)
        "measured_memory": {"tune": tune_mem.record(), "fit": fit_mem.record(), "evaluate": eval_mem.record()},
        "timings": {
            "tune_s": tune_sw.seconds, "tune_compile_s": tune_sw.compile_seconds,
            "fit_s": float(np.median(fit_runs)), "fit_runs_s": fit_runs, "fit_compile_s": fit_sw.compile_seconds,
            "eval_s": eval_sw.seconds, "eval_compile_s": eval_sw.compile_seconds,
        },
    }
