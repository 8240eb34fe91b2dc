"""The Ray executor: every unit a Ray task, rows written by the driver.

``cfbench run --executor ray [--address ADDR]`` runs each (seed, sampler, budget) unit as a Ray
task. The driver does everything that touches the results directory — claims, row identity,
stale rows, writing — exactly as the local executor does, so resume, concurrent drivers and
leaderboards behave the same; the workers only compute (:func:`cfbench.unit.compute_unit`):

* the split is built once per seed by the driver and shipped through the object store, so
  workers need neither the data directory nor a shared file system;
* each task asks for ``cpus_per_unit`` CPUs and, when the cluster has GPUs and ``--device`` is
  not ``cpu``, a share of one GPU sized by the memory planner's prediction (several small units
  share a GPU; JAX's memory preallocation is turned off in the workers so they can);
* a unit whose task fails — an exception or failed model, or the worker process dying (a
  segfault, ``os._exit``, the out-of-memory killer) — is retried once, then recorded as a failed
  row (``computed_by.attempts``); units are submitted largest predicted cost first, so the long ones
  do not end up alone at the end of the run.

Ray is an optional dependency (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import time
import traceback
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cfbench.devices import MATMUL_PRECISION_ENV, matmul_precision
from cfbench.guard import UnitFailure
from cfbench.unit import UnitResult, UnitTask, compute_unit

if TYPE_CHECKING:
    from cfbench.claims import Claim
    from cfbench.harness import _Run, _Slot, _Unit

__all__ = ["ExecutorError", "RAY_ATTEMPTS", "require_ray", "run_on_ray"]

log = logging.getLogger("cfbench")

#: A unit is attempted at most this many times on Ray before its failure is recorded.
RAY_ATTEMPTS = 2
#: The driver cancels a task that runs this long past ``--unit-timeout`` (the worker's own
#: guard normally ends it first; this covers a worker that cannot even do that).
DRIVER_GRACE_S = 60.0


class ExecutorError(RuntimeError):
    """The executor cannot run (Ray not installed, no cluster at the address, …)."""


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install -e \".[ray]\" (or pip install 'ray>=2.9')") from None
    return ray


def _remote_unit(task: UnitTask, split_ref: list[Any], fingerprint: str) -> UnitResult:
    """Run in a Ray worker: fetch the split from the object store and compute the unit."""
    import ray

    split = ray.get(split_ref[0])
    result = compute_unit(task, split, fingerprint, lambda: ray.get(split_ref[0]))
    context = ray.get_runtime_context()
    result.computed_by.update({"executor": "ray", "node_id": context.get_node_id(),
                               "node_ip": ray.util.get_node_ip_address(),
                               "gpu_ids": [str(g) for g in ray.get_gpu_ids()]})
    return result


@dataclasses.dataclass
class _InFlight:
    unit: _Unit
    claim: Claim
    pending: list[_Slot]
    attempt: int
    started: float
    options: dict[str, Any]


class _RayDriver:
    def __init__(self, run: _Run, ray: Any) -> None:
        self.run, self.ray = run, ray
        self.config = run.config
        self.split_refs: dict[int, Any] = {}
        resources = ray.cluster_resources()
        self.cpus = float(resources.get("CPU", 1.0))
        self.gpus = float(resources.get("GPU", 0.0))
        self.node_memory = max((n["Resources"].get("memory", 0.0) for n in ray.nodes() if n.get("Alive")),
                               default=resources.get("memory", 2**33))
        self.use_gpu = self.config.device != "cpu" and self.gpus > 0
        if self.config.device == "gpu" and not self.use_gpu:
            raise ExecutorError("--device gpu, but the Ray cluster declares no GPUs; start its nodes with GPUs "
                                "(ray start --num-gpus=N) or use --device cpu/auto")
        self.remote = ray.remote(_remote_unit)
        # Enough tasks in flight to keep every CPU (or GPU share) busy while finished ones are written.
        slots = self.cpus / self.config.cpus_per_unit
        self.max_in_flight = max(1, math.ceil(2 * slots))
        log.info("Ray cluster: %g CPUs, %g GPUs; %s per unit%s", self.cpus, self.gpus,
                 f"{self.config.cpus_per_unit:g} CPU", " + a GPU share" if self.use_gpu else "")

    def split_ref(self, seed: int) -> Any:
        if seed not in self.split_refs:
            self.split_refs[seed] = self.ray.put(self.run.split(seed))
        return self.split_refs[seed]

    def options(self, unit: _Unit, pending: Sequence[_Slot]) -> dict[str, Any]:
        # Ray sets OMP_NUM_THREADS=num_cpus in its workers, and XLA's CPU thread count changes the last bits
        # of large products (and λ = 0 solves a lot more): pass the driver's setting, where empty = XLA's
        # default (every core of the node), so rows equal the local executor's on the same machine.
        env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}
        # The driver's float32 precision and compilation cache hold in the workers too.
        env[MATMUL_PRECISION_ENV] = matmul_precision()
        if self.config.compile_cache is not None:
            env["JAX_COMPILATION_CACHE_DIR"] = self.config.compile_cache
        opts: dict[str, Any] = {"num_cpus": self.config.cpus_per_unit, "max_retries": 0}
        # Ray packs tasks on a node by their host memory too: ask for the planner's prediction (capped by
        # the largest node, so that a unit the planner will record as infeasible is still scheduled).
        opts["memory"] = int(min(self.run.predicted_bytes(unit, pending), 0.8 * self.node_memory))
        if self.use_gpu:
            opts["num_gpus"] = self.run.gpu_share(unit, pending)
        else:
            env["JAX_PLATFORMS"] = "cpu"
        opts["runtime_env"] = {"env_vars": env}
        return opts

    def submit(self, unit: _Unit, c: Claim, pending: list[_Slot], attempt: int) -> tuple[Any, _InFlight]:
        task = self.run.task(unit, pending)
        opts = self.options(unit, pending)
        if self.use_gpu:
            task = dataclasses.replace(task, device="gpu" if self.config.device == "gpu" else "auto",
                                       memory_share=opts["num_gpus"])
        else:
            task = dataclasses.replace(task, device="cpu")
        ref = self.remote.options(**opts).remote(task, [self.split_ref(unit.seed)],
                                                 self.run.fingerprints[unit.seed])
        return ref, _InFlight(unit, c, pending, attempt, time.monotonic(), opts)

    def outcome(self, ref: Any, job: _InFlight) -> UnitResult:
        """The task's result; a dead worker or a task error becomes a failure of every pending row."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.TaskCancelledError:
            failure = UnitFailure("timeout", f"the Ray task ran {DRIVER_GRACE_S:g} s past the unit's time limit of "
                                  f"{self.config.unit_timeout:g} s and was cancelled", "run", "")
        except (self.ray.exceptions.WorkerCrashedError, self.ray.exceptions.NodeDiedError,
                self.ray.exceptions.OutOfMemoryError) as err:
            failure = UnitFailure("exit", "the Ray worker computing the unit died (a crash, os._exit, a native "
                                  f"time-out, or the out-of-memory killer): {type(err).__name__}", "run",
                                  str(err)[-4000:])
        except self.ray.exceptions.RayTaskError as err:
            cause = err.cause if getattr(err, "cause", None) is not None else err
            failure = UnitFailure("exception", f"on a Ray worker: {type(cause).__name__}: "
                                  f"{' '.join(str(cause).split())[:300]}", "run", str(err)[-4000:])
        except self.ray.exceptions.RayError as err:
            failure = UnitFailure("exception", f"Ray could not run the unit: {type(err).__name__}: "
                                  f"{' '.join(str(err).split())[:300]}", "run", traceback.format_exc())
        where = {"executor": "ray", "host": None, "device": None}
        return UnitResult([failure] * len(job.pending), where, self.run.env)

    def record(self, job: _InFlight, result: UnitResult) -> None:
        if result.selection is not None:  # computed on a worker: the driver keeps it (workers share no folder)
            self.run.keep_selection(job.unit, result.selection)
        where = {**result.computed_by, "attempts": job.attempt, "requested": {
            k: job.options[k] for k in ("num_cpus", "num_gpus", "memory") if k in job.options}}
        for slot, value in zip(job.pending, result.results):
            if isinstance(value, UnitFailure):
                value = dataclasses.replace(value, message=value.message + (
                    f" (attempt {job.attempt} of {RAY_ATTEMPTS})" if job.attempt > 1 else ""))
            self.run.record(job.unit, slot, value, where, result.environment)

    def drive(self, units: list[_Unit]) -> None:
        queue = list(units)
        deferred: list[_Unit] = []
        in_flight: dict[Any, _InFlight] = {}
        try:
            while queue or in_flight or deferred:
                while queue and len(in_flight) < self.max_in_flight:
                    unit = queue.pop(0)
                    started = self.run.begin(unit, wait=False)
                    if started is False:
                        deferred.append(unit)
                    elif started is not True:
                        ref, job = self.submit(unit, *started, attempt=1)
                        in_flight[ref] = job
                if not in_flight:
                    if deferred:  # only units other processes hold are left: wait for one of them
                        unit = deferred.pop(0)
                        log.info("waiting for another process that is computing %s", unit.label)
                        started = self.run.begin(unit, wait=True)
                        if started is not True and started is not False:
                            ref, job = self.submit(unit, *started, attempt=1)
                            in_flight[ref] = job
                    continue
                ready, _ = self.ray.wait(list(in_flight), num_returns=1, timeout=5.0)
                self.cancel_overdue(in_flight)
                for ref in ready:
                    job = in_flight.pop(ref)
                    result = self.outcome(ref, job)
                    failed = [i for i, v in enumerate(result.results) if isinstance(v, UnitFailure)]
                    if failed and job.attempt < RAY_ATTEMPTS and not all(
                            result.results[i].kind == "timeout" for i in failed):  # type: ignore[union-attr]
                        # Keep what succeeded; retry only the rows that failed.
                        ok = _InFlight(job.unit, job.claim, [job.pending[i] for i in range(len(job.pending))
                                                             if i not in failed], job.attempt, job.started, job.options)
                        self.record(ok, UnitResult([v for i, v in enumerate(result.results) if i not in failed],
                                                   result.computed_by, result.environment,
                                                   selection=result.selection))
                        log.warning("%s failed on a Ray worker (%s); retrying once", job.unit.label,
                                    result.results[failed[0]].message)  # type: ignore[union-attr]
                        ref2, retry = self.submit(job.unit, job.claim, [job.pending[i] for i in failed],
                                                  job.attempt + 1)
                        in_flight[ref2] = retry
                        continue
                    self.record(job, result)
                    job.claim.release(finished=True)
        except BaseException:
            for ref, job in in_flight.items():
                self.ray.cancel(ref, force=True)
                job.claim.release(finished=False)
            raise

    def cancel_overdue(self, in_flight: dict[Any, _InFlight]) -> None:
        if self.config.unit_timeout is None:
            return
        limit = self.config.unit_timeout * 1.2 + DRIVER_GRACE_S
        for ref, job in in_flight.items():
            if time.monotonic() - job.started > limit:
                self.ray.cancel(ref, force=True)


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when ``HOST:PORT`` does not answer (Ray itself waits minutes before it gives up)."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"Ray address {address!r} is not HOST:PORT, auto or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise ExecutorError(f"cannot reach the Ray cluster at {address}: {err.strerror or err}; start it with "
                            "`ray start --head` (it prints the address) or pass the right --address") from None


def run_on_ray(run: _Run, units: list[_Unit], retried: set[str]) -> None:
    """Compute ``units`` as Ray tasks (largest predicted cost first; ``retried`` ones last)."""
    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        _check_reachable(run.config.address)
        try:
            with warnings.catch_warnings():  # Ray starts its processes with fork+exec, which is safe with JAX
                warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
                ray.init(address=run.config.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise ExecutorError(f"cannot join the Ray cluster at {run.config.address!r}: {err}; start it with "
                                "`ray start --head` or pass the right --address") from None
    try:
        ordered = sorted(units, key=lambda u: (u.key in retried, -run.predicted_cost(u)))
        _RayDriver(run, ray).drive(ordered)
    finally:
        if started_here:
            ray.shutdown()
