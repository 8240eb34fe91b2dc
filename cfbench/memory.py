"""Memory planning: predict a unit's peak memory before it runs, fit it to the device, measure the peak.

Three parts:

* **Limits.** :func:`memory_limit` — the bytes a unit may use on the device it runs on:
  ``$CFBENCH_MEMORY_LIMIT`` (``"512MiB"``, ``"2GiB"``, ``"1.5e9"``) wins; on a GPU the JAX device's
  ``bytes_limit`` less what is in use; on a CPU ``MemAvailable`` (and the cgroup's headroom, where
  lower) — each times :data:`SAFETY_FRACTION`.
* **Cost model.** A :class:`Footprint` is the predicted peak of one piece of work (a sampler's
  selection, a model's λ search + fit + evaluation): the peak bytes, the terms alive at that peak
  (kernel, dense support, solve workspace, α kept per λ, evaluation chunks, …) and every phase's
  total. The formulas below follow what the code really keeps alive at once (see each function);
  ``benchmarks/memory_model.py`` checks them against measured peaks. :func:`plan_unit` (before a unit)
  and :func:`plan_model` (per model, once the support is known) compare footprints with the limit,
  choose the evaluation batch size, and say *infeasible* — with the predicted bytes, the dominant
  term and what would help — rather than letting the unit crash.
* **Measurement.** :class:`PeakMemory` measures the peak host RSS of a block (and the device peak on
  a GPU) for the result rows.

**Plugins declare their own estimate** by implementing the optional :class:`MemoryAware` method::

    def memory_footprint(self, shape: UnitShape) -> Footprint: ...

on the sampler or model class (instances are asked, so hyper-parameters count). ``shape`` has the
data sizes (users, items, train interactions, budget), the support rows the models train on, the
evaluated users and the evaluation batch size. Build the result with :meth:`Footprint.from_phases`
from :class:`Term` lists, one list per phase of the work (the peak is the largest phase). A method is
not a hyper-parameter, so adding it never changes a row's identity. Plugins without it get a
conservative default (:func:`default_sampler_footprint`, :func:`default_model_footprint`); an
estimate that raises or returns something else is replaced by that default, and the footprint says so.
The planner adds the JAX/XLA runtime's own memory (:data:`RUNTIME_OVERHEAD_BYTES`) to every footprint:
plugins count only their arrays.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
import resource
import threading
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, Self, runtime_checkable

from cfbench.evaluation import CUTOFFS, N_NEGATIVES, SCORE_CHUNK, SHARED_SCORING_BYTES

__all__ = [
    "ACCELERATOR_SLACK", "ENV_LIMIT", "GATHER_PROGRAM_BYTES", "RUNTIME_OVERHEAD_BYTES", "SAFETY_FRACTION", "Footprint", "MemoryAware",
    "ModelPlan", "PeakMemory", "Term", "UnitPlan", "UnitShape", "current_rss_bytes", "default_model_footprint",
    "default_sampler_footprint", "distill_cf_footprint", "ease_footprint", "evaluation_task_footprint",
    "evaluation_terms", "format_bytes", "gather_programs", "host_available_bytes", "infinite_ae_footprint",
    "interaction_sampler_footprint", "memory_limit", "model_footprint", "parse_bytes", "plan_model", "plan_unit",
    "sampler_footprint", "support_rows_bound", "svp_cf_footprint", "user_kernel_footprint",
]

#: Environment variable that declares the memory limit of a unit, overriding what the device reports.
ENV_LIMIT = "CFBENCH_MEMORY_LIMIT"
#: Share of the memory reported available that a unit may plan to use: the rest absorbs allocator
#: fragmentation, other processes' growth and what the cost model does not count (Python objects).
SAFETY_FRACTION = 0.85
#: The JAX/XLA runtime's own memory, added to every footprint: compiled programs and their caches, library
#: code paged in by compilation, allocator arenas. On the CPU backend the first unit of a fresh process
#: grew RSS by 270–370 MiB beyond its arrays, of which ≈ 10 MiB per evaluated chunk is the AUC gathers'
#: compilation (:data:`GATHER_PROGRAM_BYTES`, counted apart), the rest the model's and the evaluation's
#: other programs (2-core / 24 GiB machine, JAX 0.10.2, ``benchmarks/memory_model.py``). The "gpu" value is
#: device memory for CUDA libraries' handles and compiled programs (ML-1M full data on an H100: EASE's λ
#: search peaked at 0.48 GB of device memory for 0.42 GB predicted arrays).
RUNTIME_OVERHEAD_BYTES = {"cpu": 256 << 20, "gpu": 512 << 20}
#: On an accelerator, device memory beyond the arrays in proportion to them: the allocator's rounding and
#: fragmentation and the solvers' workspaces. Measured on an H100 (JAX 0.11.2): full-data Gowalla λ searches
#: peaked at 36.50 GB for 35.17 GB of predicted arrays + the 0.54 GB runtime allowance (both models), i.e.
#: 2.3 % over the flat allowance; 5 % keeps the prediction an upper bound with room.
ACCELERATOR_SLACK = 0.05
#: Host memory each compiled AUC gather leaves behind (glibc keeps ≈ 10 MiB of each XLA compilation). Before
#: ``cfbench.evaluation`` padded the gather indices to powers of two, every 256-user chunk compiled its own
#: (measured on ML-1M: a first validation pass over 24 chunks +340 MiB RSS, the same pass again +4 MiB); now
#: #: there is one per power-of-two size class (:attr:`UnitShape.eval_chunks`). Programs are cached, so later
#: units on the same split pay nothing (``UnitShape.eval_compiled``).
GATHER_PROGRAM_BYTES = 10 << 20
TOP_K = max(CUTOFFS)
FIT_CALLS_ALIVE = 1  # fitted models the harness keeps through refit and test: the first timed fit, not the λ-search winner

_UNITS = {"": 1, "b": 1,
          "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50,
          "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15}
_BYTES_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


# ------------------------------------------------------------------------------------------------ limits


def parse_bytes(text: str, what: str = ENV_LIMIT) -> int:
    """Bytes from ``"512MiB"``, ``"2GiB"``, ``"1.5e9"``, ``"800MB"`` or ``"4G"`` (K/M/G/T alone are binary).

    Raises a one-line ValueError naming ``what`` for anything else, and for zero.
    """
    match = _BYTES_RE.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{what} must be a number of bytes such as 512MiB, 2GiB or 1.5e9, got {text!r}")
    value = float(match.group(1)) * _UNITS[unit]
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"{what} must be at least 1 byte, got {text!r}")
    return int(value)


def format_bytes(n: float) -> str:
    """``912.4 GiB``, ``3.0 MiB``, ``512 B``."""
    n = float(n)
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_headroom() -> int | None:
    """Bytes the process's cgroup may still allocate (v2 ``memory.max − memory.current``, or v1), if limited."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:  # "max" / huge = unlimited
            return max(limit - usage, 0)
    return None


def host_available_bytes() -> int:
    """Host memory available to a new allocation: ``MemAvailable`` (or free pages), capped by the cgroup."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    headroom = _cgroup_headroom()
    return min(available, headroom) if headroom is not None else available


def _jax_device(device: Any = None) -> Any:
    if device is not None and not isinstance(device, str):
        return device
    import jax

    return jax.devices(device)[0] if isinstance(device, str) else jax.devices()[0]


def _platform(device: Any) -> str:
    """``"cpu"`` or ``"gpu"`` (any accelerator) for a JAX device, a platform name or None (the default device)."""
    if isinstance(device, str):
        return "cpu" if device == "cpu" else "gpu"
    return "cpu" if _jax_device(device).platform == "cpu" else "gpu"


def memory_limit(device: Any = None) -> int:
    """Bytes available to a unit on ``device`` (a JAX device, ``"cpu"``/``"gpu"``, or None for JAX's default).

    ``$CFBENCH_MEMORY_LIMIT`` wins (a declared limit, e.g. to test the planner or to leave room for
    other jobs). On a GPU: the device's ``bytes_limit`` minus ``bytes_in_use``; on a CPU: the host's
    ``MemAvailable`` (``os.sysconf`` where there is no /proc/meminfo), capped by the cgroup's headroom;
    both times :data:`SAFETY_FRACTION`.
    """
    declared = os.environ.get(ENV_LIMIT, "").strip()
    if declared:
        return parse_bytes(declared)
    if _platform(device) != "cpu":
        stats = _jax_device(device).memory_stats() or {}
        if "bytes_limit" in stats:
            return int((stats["bytes_limit"] - stats.get("bytes_in_use", 0)) * SAFETY_FRACTION)
    return int(host_available_bytes() * SAFETY_FRACTION)


# ------------------------------------------------------------------------------------------------ footprints


class Term(typing.NamedTuple):
    """One allocation alive at a phase's peak: a name, its bytes, its shape (for messages), and whether it
    lives in host memory even when the model runs on an accelerator (NumPy/SciPy arrays, compiled programs)."""

    name: str
    nbytes: int
    shape: str = ""
    host: bool = False


def _dtype_name(dtype_bytes: int) -> str:
    return {4: "float32", 8: "float64", 2: "float16", 1: "uint8"}.get(dtype_bytes, f"{dtype_bytes}-byte")


def _matrix(name: str, rows: int, cols: int, itemsize: int, dtype: str | None = None, count: int = 1,
            host: bool = False) -> Term:
    shape = f"{rows}×{cols} {dtype or _dtype_name(itemsize)}" + (f" ×{count}" if count != 1 else "")
    return Term(name, int(count) * int(rows) * int(cols) * int(itemsize), shape, host)


@dataclasses.dataclass(frozen=True)
class Footprint:
    """The predicted peak memory of one piece of work.

    ``phases`` maps each phase (e.g. "λ search: fit", "test evaluation") to its total; ``breakdown``
    holds the terms (name → bytes) of the phase with the largest total, ``phase``, which sum to
    ``peak_bytes``; ``shapes`` their shapes. ``retained_bytes``: what stays allocated after the work
    returns (a sampler's subset and caches); ``advice``: what would make it smaller, for infeasibility
    messages; ``note``: how the estimate was obtained when it is not the plugin's own. Build one with
    :meth:`from_phases`.
    """

    what: str
    peak_bytes: int
    breakdown: Mapping[str, int] = dataclasses.field(hash=False)
    phase: str = ""
    phases: Mapping[str, int] = dataclasses.field(default_factory=dict, hash=False)
    shapes: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    advice: str = ""
    retained_bytes: int = 0
    note: str = ""
    terms: Mapping[str, tuple[Term, ...]] = dataclasses.field(default_factory=dict, hash=False, repr=False)

    @classmethod
    def from_phases(cls, what: str, phases: Mapping[str, Iterable[Term]], advice: str = "",
                    retained_bytes: int = 0, note: str = "") -> Footprint:
        """The footprint whose peak is the phase with the largest sum of terms (terms of one name add up)."""
        if not phases:
            raise ValueError("a footprint needs at least one phase")
        kept = {phase: tuple(terms) for phase, terms in phases.items()}
        totals: dict[str, int] = {}
        merged: dict[str, tuple[dict[str, int], dict[str, str]]] = {}
        for phase, terms in kept.items():
            sizes: dict[str, int] = {}
            shapes: dict[str, str] = {}
            for term in terms:
                if not isinstance(term, Term) or term.nbytes < 0:
                    raise ValueError(f"{what}: phase {phase!r} has {term!r}; expected a Term of ≥ 0 bytes")
                sizes[term.name] = sizes.get(term.name, 0) + int(term.nbytes)
                if term.shape:
                    shapes[term.name] = f"{shapes[term.name]} + {term.shape}" if term.name in shapes else term.shape
            totals[phase] = sum(sizes.values())
            merged[phase] = (sizes, shapes)
        peak_phase = max(totals, key=lambda p: totals[p])  # the first phase on ties
        sizes, shapes = merged[peak_phase]
        return cls(what, totals[peak_phase], sizes, peak_phase, totals, shapes, advice, int(retained_bytes), note,
                   kept)

    def _rebuild(self, phases: Mapping[str, Iterable[Term]]) -> Footprint:
        return Footprint.from_phases(self.what, phases, self.advice, self.retained_bytes, self.note)

    def _phase_terms(self) -> Mapping[str, tuple[Term, ...]]:
        """The terms of every phase (a footprint constructed directly has only its peak's breakdown)."""
        return self.terms or {self.phase: tuple(Term(k, v, self.shapes.get(k, "")) for k, v in self.breakdown.items())}

    def plus(self, *terms: Term) -> Footprint:
        """This footprint with ``terms`` added to every phase (e.g. the runtime overhead)."""
        return self._rebuild({phase: (*ts, *terms) for phase, ts in self._phase_terms().items()})

    def part(self, host: bool) -> Footprint:
        """Only the host terms (``host=True``) or only the device terms: what counts against each memory on an
        accelerator (on a CPU both are one memory and the whole footprint counts)."""
        return self._rebuild({phase: [t for t in ts if t.host == host] for phase, ts in self._phase_terms().items()})

    @property
    def dominant(self) -> tuple[str, int]:
        """The largest term at the peak: (name, bytes); the first one on ties."""
        if not self.breakdown:
            return ("nothing", 0)
        name = max(self.breakdown, key=lambda k: self.breakdown[k])
        return name, self.breakdown[name]

    def term_text(self, name: str) -> str:
        """``kernel 6040×6040 float32 139.2 MiB``."""
        shape = self.shapes.get(name)
        size = format_bytes(self.breakdown.get(name, 0))
        return f"{name} {shape} {size}" if shape else f"{name} {size}"

    def describe(self, terms: int = 4) -> str:
        """One line: ``∞-AE on … needs 2.8 TiB at its peak (refit: solve): kernel 480189×480189 float32 859.0 GiB, …``."""
        ranked = sorted(self.breakdown, key=lambda k: -self.breakdown[k])
        parts = [self.term_text(k) for k in ranked[:terms] if self.breakdown[k] > 0]
        rest = sum(self.breakdown[k] for k in ranked[terms:])
        if rest:
            parts.append(f"other {format_bytes(rest)}")
        where = f" ({self.phase})" if self.phase else ""
        return f"{self.what} needs {format_bytes(self.peak_bytes)} at its peak{where}: " + ", ".join(parts)

    def record(self) -> dict[str, Any]:
        """JSON-serialisable: peak, phase, the peak's terms and every phase's total (bytes)."""
        out: dict[str, Any] = {"what": self.what, "predicted_peak_bytes": int(self.peak_bytes), "phase": self.phase,
                               "breakdown": {k: int(v) for k, v in self.breakdown.items()},
                               "phases": {k: int(v) for k, v in self.phases.items()}}
        if self.retained_bytes:
            out["retained_bytes"] = int(self.retained_bytes)
        if self.note:
            out["note"] = self.note
        return out


@dataclasses.dataclass(frozen=True)
class UnitShape:
    """The sizes one unit works with, as a plugin's ``memory_footprint`` receives them.

    ``n_users``/``n_items``/``nnz``: the train matrix; ``budget``: the unit's budget (users);
    ``dtype_bytes``: the suite's float size; ``n_support``: rows of the support the models train on
    (None: :func:`support_rows_bound`'s bound, filled in by the planner); ``n_queries``: users
    evaluated (None: all users); ``batch_size``: the evaluation batch; ``eval_positives``: positives in
    one evaluated phase (None: ``nnz // 8 + n_users``, the reference split's validation or test size);
    ``eval_compiled``: this process has already evaluated a model on the split's validation and test tasks
    with this batch size (their AUC gathers are compiled, :data:`GATHER_PROGRAM_BYTES`); ``max_row``: the
    longest train row (None: unknown), which bounds the support's non-zeros (:attr:`support_nnz`).
    """

    n_users: int
    n_items: int
    nnz: int
    budget: int
    dtype_bytes: int = 4
    n_support: int | None = None
    n_queries: int | None = None
    batch_size: int = 1024
    eval_positives: int | None = None
    eval_compiled: bool = False
    max_row: int | None = None

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "nnz", "budget", "dtype_bytes", "batch_size", "n_support", "n_queries",
                     "eval_positives", "max_row"):
            value = getattr(self, name)
            if value is None and name in ("n_support", "n_queries", "eval_positives", "max_row"):
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (
                    0 if name in ("nnz", "eval_positives", "max_row") else 1):
                raise ValueError(f"UnitShape.{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # numpy integers become Python ints

    @classmethod
    def for_split(cls, split: Any, budget: int, *, batch_size: int = 1024, dtype: str = "float32",
                  n_support: int | None = None, eval_compiled: bool = False) -> UnitShape:
        """The shape of a unit on ``split`` (a :class:`cfbench.splits.Split`): its train sizes, the users and
        positives of its larger evaluated phase, and the suite's batch size and dtype."""
        train, val, test = split.train, split.val, split.test
        queries = max(int((val.getnnz(axis=1) > 0).sum()), int((test.getnnz(axis=1) > 0).sum()), 1)
        longest = int(train.getnnz(axis=1).max(initial=0))
        return cls(int(train.shape[0]), int(train.shape[1]), int(train.nnz), int(min(budget, train.shape[0])),
                   8 if dtype == "float64" else 4, n_support, queries, int(batch_size),
                   int(max(val.nnz, test.nnz)), eval_compiled, longest)

    @property
    def support_rows(self) -> int:
        return self.n_support if self.n_support is not None else min(self.budget, self.n_users)

    @property
    def queries(self) -> int:
        return self.n_queries if self.n_queries is not None else self.n_users

    @property
    def positives(self) -> int:
        return self.eval_positives if self.eval_positives is not None else self.nnz // 8 + self.n_users

    @property
    def support_nnz(self) -> int:
        """A bound on the support's non-zeros: all of train, or the support's rows × the longest train row."""
        return self.nnz if self.max_row is None else min(self.nnz, self.support_rows * self.max_row)

    @property
    def mean_row(self) -> float:
        return self.nnz / max(self.n_users, 1)

    @property
    def eval_chunks(self) -> int:
        """256-user chunks of one evaluated phase whose AUC gather is compiled on first use (0 if cached)."""
        if self.eval_compiled:
            return 0
        # cfbench.evaluation pads each chunk's gather indices to a power of two: one program per size
        # class, at most one per bit of the largest chunk's positive count.
        chunks = -(-self.queries // SCORE_CHUNK)
        return min(chunks, max(self.positives, 1).bit_length())


@runtime_checkable
class MemoryAware(Protocol):
    """The optional method a sampler or model implements to declare its memory footprint."""

    def memory_footprint(self, shape: UnitShape) -> Footprint: ...


# ------------------------------------------------------------------------------------------------ evaluation


def gather_programs(chunks: int, phase: str = "validation") -> Term:
    """The compiled AUC gathers of ``chunks`` first-evaluated chunks of one phase (:data:`GATHER_PROGRAM_BYTES`)."""
    return Term(f"compiled AUC gathers ({phase})", chunks * GATHER_PROGRAM_BYTES, f"{chunks} programs", True)


def evaluation_terms(n_items: int, n_queries: int, batch_size: int, n_models: int, dtype_bytes: int,
                     positives: int, mean_row: float, scoring: Sequence[Term]) -> list[Term]:
    """What :func:`cfbench.evaluation.evaluate_many` keeps alive while scoring ``n_models`` models together.

    Per ``SCORE_CHUNK`` query rows: the chunk densified on the host (float32) and on the device, each
    model's score chunk, and the mask (CSR → float32 → bool), the masked copy and top-k of one model;
    ``scoring`` adds the model's own scoring intermediates. Per batch: the targets densified
    (float32, then bool), the CSR slices of inputs / targets / exclusions, each model's top-k indices and
    the metric temporaries. Over the whole pass, per model: the AUC scores of every positive and negative
    and six per-user metrics (float64), doubled by the final concatenation.
    """
    d, c, s = n_items, SCORE_CHUNK, dtype_bytes
    k = min(TOP_K, d)
    batch_size = max(1, min(batch_size, n_queries))  # a batch never holds more than the evaluated users
    per_model_total = 2 * (positives * 4 + n_queries * (N_NEGATIVES * 4 + 6 * 8))
    return [
        _matrix("query chunk (host)", c, d, 4, host=True),
        _matrix("query chunk (device)", c, d, s),
        *scoring,
        _matrix("score chunks", c, d, s, count=n_models),
        Term("mask (host)", c * d * 5, f"{c}×{d} float32 + bool", True),
        _matrix("masked scores", c, d, s),
        Term("batch targets", batch_size * d * 5 + int(batch_size * mean_row * 36), f"{batch_size}×{d}", True),
        Term("batch rankings", batch_size * k * (8 * n_models + 48), f"{batch_size}×{k} ×{n_models}", True),
        Term("metric accumulators", n_models * per_model_total, f"{n_queries} users ×{n_models}", True),
    ]


def evaluation_task_footprint(n_users: int, n_items: int, nnz: int) -> Footprint:
    """Building the validation and test tasks of a split (once per split, then cached on it).

    Per phase: the known-items CSR (train + validation + test, built from two sums), the AUC negatives
    (int64, all users then the evaluated ones) and propensity weights.
    """
    total = nnz + nnz // 4 + n_users  # train, validation and test interactions (reference split ≈ 80/10/10)
    known = 3 * total * 12 + 3 * (n_users + 1) * 8
    negatives = 2 * n_users * N_NEGATIVES * 8
    build = [Term("known-items CSR", known, host=True),
             Term("AUC negatives", negatives, f"{n_users}×{N_NEGATIVES} int64", True),
             Term("cached tasks", negatives // 2 + n_items * 16 + n_users * 24, host=True)]
    return Footprint.from_phases("evaluation tasks", {"build": build})


# ------------------------------------------------------------------------------------------------ ∞-AE


def _alphas_alive(grid_size: int, alpha_bytes: int, first_extra: int, cap: int) -> tuple[int, list[int]]:
    """(most α alive while fitting, α alive while scoring each group) in ``select_lambda``'s λ search.

    ``_lambda_groups`` hands over a group once its fitted bytes would pass ``cap`` (the first model also
    counts the shared support, ``first_extra``); while the next group is fitted, ``select_lambda`` still
    holds the previous group (and the best model so far, which may be older).
    """
    groups: list[int] = []
    held, size = 0, 0
    for _ in range(grid_size):
        added = alpha_bytes + (first_extra if size == 0 else 0)
        held += added
        size += 1
        if held + added > cap:
            groups.append(size)
            held, size = 0, 0
    if size:
        groups.append(size)
    most_fitting, scoring = 0, []
    prev = 0
    for i, g in enumerate(groups):
        best_elsewhere = 1 if i >= 2 else 0  # the best may sit in a group before the previous one
        most_fitting = max(most_fitting, prev + best_elsewhere + g)  # the group's last fit, new α included
        scoring.append(g + (1 if i >= 1 else 0))
        prev = g
    return most_fitting, scoring


def sparse_support_term(support_nnz: int, n_support: int, n_items: int) -> Term:
    """The support kept sparse on the host for exact Gram products (:mod:`cfbench.gram`, CPU only): its CSR
    and transposed CSR (float64 data bound + int32 indices each) and index pointers."""
    return Term("support kept sparse (host)", 2 * 12 * support_nnz + 8 * (n_support + n_items + 2),
                f"2 × CSR of ≤ {support_nnz} non-zeros", True)


def infinite_ae_footprint(n_support: int, n_items: int, n_queries: int, *, batch_size: int = 1024,
                          dtype_bytes: int = 4, block_size: int = 2048, grid_size: int = 6,
                          positives: int | None = None, mean_row: float = 0.0, eval_chunks: int = 0,
                          fitted_cap: int = SHARED_SCORING_BYTES, tune_only: bool = False,
                          support_nnz: int = 0) -> Footprint:
    """∞-AE's λ search (``select_lambda``), timed refit and test evaluation, as the harness runs them.

    With X_s the dense support (n × d), K = Θ(X_s, X_s) (n × n), α (n × d) per λ:

    * densify: the CSR support as a float32 host array and its device copy;
    * kernel: X_s, K's row blocks and their concatenation (2 n²), one block's Gram temporary;
    * λ search, fit: X_s, K, the α alive (``fit_path`` fits λ after λ; ``select_lambda`` keeps a group
      of them for shared scoring, up to ``fitted_cap`` = 1 GiB, the previous group while the next is
      fitted, and the best), and the solve's workspace: K + ρI and its Cholesky factor (2 n²) and a
      triangular-solve intermediate (n × d);
    * λ search, evaluation: X_s, K, the group's α, :func:`evaluation_terms` with one shared
      (256 × n) kernel block (and its Gram temporary) per chunk;
    * refit: the first timed fit (X_s and α) while the fit repeats, plus a new fit's kernel or solve (the
      harness drops the λ-search winner before it refits);
    * test evaluation: the fit, one model's scoring chunk.

    ``eval_chunks``: chunks per evaluated phase whose AUC gather is compiled on first use
    (:data:`GATHER_PROGRAM_BYTES`): the validation ones from the λ search's first scoring pass on, the test
    ones in the test evaluation. ``support_nnz`` > 0 (a bound on the support's non-zeros) adds the support kept
    sparse by each fitted model (:func:`sparse_support_term`).
    """
    n, d, s = n_support, n_items, dtype_bytes
    dt = _dtype_name(s)
    positives = positives if positives is not None else n_queries
    b = max(1, min(block_size, n))
    xs = _matrix("dense support", n, d, s)
    kernel = _matrix("kernel", n, n, s)
    alpha_bytes = n * d * s
    most_fitting, scoring = _alphas_alive(grid_size, alpha_bytes, alpha_bytes + n * s, fitted_cap)
    val_gathers = gather_programs(eval_chunks)
    solve = [_matrix("K + ρI", n, n, s), _matrix("Cholesky factor", n, n, s), _matrix("solve intermediate", n, d, s)]
    if n <= b:  # one jitted block: its Gram temporary and the kernel
        kernel_build = [Term("kernel and its Gram temporary", 2 * n * n * s, f"2×{n}×{n} {dt}")]
    else:  # the row blocks, their concatenation and the last block's Gram temporary
        kernel_build = [Term("kernel blocks and concatenation", 2 * n * n * s + b * n * s,
                             f"2×{n}×{n} + {b}×{n} {dt}")]
    densify = [_matrix("support densify (host)", n, d, 4, host=True), xs]

    def evaluation(models: int) -> list[Term]:
        block = [_matrix("scoring kernel block", SCORE_CHUNK, n, s, count=2)]
        return evaluation_terms(d, n_queries, batch_size, models, s, positives, mean_row, block)

    phases: dict[str, list[Term]] = {
        "λ search: densify": densify,
        "λ search: kernel": [xs, Term("support norms", n * s), *kernel_build],
        # a second group of λ is fitted after the first group's validation pass compiled its gathers
        "λ search: fit": [xs, kernel, _matrix("α per λ kept", n, d, s, count=most_fitting), *solve,
                          *([val_gathers] if len(scoring) > 1 else [])],
        "λ search: evaluation": [xs, kernel, _matrix("α per λ kept", n, d, s, count=max(scoring)),
                                 *evaluation(max(scoring)), val_gathers],
    }
    if not tune_only:
        kept = [_matrix("fitted model kept (timed fit: X_s, α)", n, d, s, count=2 * FIT_CALLS_ALIVE), val_gathers]
        phases["refit: densify"] = kept + densify
        phases["refit: kernel"] = kept + [xs, *kernel_build]
        phases["refit: solve"] = kept + [xs, kernel, _matrix("α", n, d, s), *solve]
        phases["test evaluation"] = kept + evaluation(1) + [gather_programs(eval_chunks, "test")]
    _add_sparse_support(phases, support_nnz, n, d)
    return Footprint.from_phases(f"∞-AE on {n} support users × {d} items", phases,
                                 advice="the kernel and its solve grow as n²: use fewer support users")


# ------------------------------------------------------------------------------------------------ EASE


def ease_footprint(n_support: int, n_items: int, n_queries: int, *, batch_size: int = 1024, dtype_bytes: int = 4,
                   solver: str = "auto", grid_size: int = 11, positives: int | None = None,
                   mean_row: float = 0.0, eval_chunks: int = 0, support_nnz: int = 0) -> Footprint:
    """EASE's λ search, timed refit and test evaluation.

    EASE does not share scoring work, so ``select_lambda`` scores one λ at a time; while the next λ is
    fitted it still holds the previous model and the best so far (3 fitted models with the new one).
    ``fit_path`` shares the dense support X (n × d) and its Gram matrix for the whole grid.

    * primal (d ≤ n, or ``solver="primal"``): Gram XᵀX (d × d); each fit's workspace is XᵀX + λI / its
      Cholesky factor and P (2 d²), its result B (d × d). Scoring: X_q B per chunk.
    * dual (n < d): Gram XXᵀ (n × n); workspace 2 n² (XXᵀ + λI and its factor) and an n × d triangular
      solve intermediate; a fitted model holds W (n × d) and shares X. Scoring: (X_q Xᵀ) W per chunk
      (a 256 × n product and three 256 × d temporaries).

    ``eval_chunks`` as in :func:`infinite_ae_footprint` (the second λ is fitted after the first validation pass);
    ``support_nnz`` too (the primal solver holds its sparse copies only while it forms XᵀX, counted throughout).
    """
    n, d, s = n_support, n_items, dtype_bytes
    dt = _dtype_name(s)
    positives = positives if positives is not None else n_queries
    primal = solver == "primal" or (solver == "auto" and d <= n)
    x = _matrix("dense support", n, d, s)
    densify = [_matrix("support densify (host)", n, d, 4, host=True), x]
    if primal:
        gram = _matrix("Gram XᵀX", d, d, s)
        solve = [_matrix("XᵀX + λI and its Cholesky factor", d, d, s), _matrix("P = (XᵀX + λI)⁻¹", d, d, s)]

        def models(count: int) -> Term:
            return _matrix("fitted B", d, d, s, count=count)
        scoring: list[Term] = []
        name = f"EASE (primal) on {n} support users × {d} items"
        advice = "the primal solver needs d × d matrices: with fewer support users than items the dual solver avoids them"
    else:
        gram = _matrix("Gram XXᵀ", n, n, s)
        solve = [_matrix("XXᵀ + λI", n, n, s), _matrix("Cholesky factor", n, n, s),
                 _matrix("solve intermediate", n, d, s)]

        def models(count: int) -> Term:
            return Term("fitted W", count * (n * d + d) * s, f"{n}×{d} {dt} ×{count}")
        scoring = [_matrix("dual scoring temporaries", SCORE_CHUNK, n, s),
                   _matrix("dual scoring temporaries", SCORE_CHUNK, d, s, count=3)]
        name = f"EASE (dual) on {n} support users × {d} items"
        advice = "the dual solver grows as n² and n × d: use fewer support users"
    evaluation = evaluation_terms(d, n_queries, batch_size, 1, s, positives, mean_row, scoring)
    alive = min(3, grid_size)  # previous λ, best λ, the new one
    val_gathers = gather_programs(eval_chunks)
    phases = {
        "λ search: densify": densify,
        "λ search: Gram": [x, gram],
        "λ search: fit": [x, gram, models(alive), *solve, *([val_gathers] if grid_size > 1 else [])],
        "λ search: evaluation": [x, gram, models(min(2, grid_size)), *evaluation, val_gathers],
        "refit: densify": [models(FIT_CALLS_ALIVE), *densify, val_gathers],
        "refit: solve": [models(FIT_CALLS_ALIVE + 1), x, gram, *solve, val_gathers],
        "test evaluation": [models(FIT_CALLS_ALIVE), *evaluation, val_gathers, gather_programs(eval_chunks, "test")],
    }
    if not primal:  # a fitted dual model also holds its own dense support
        phases["refit: solve"].append(_matrix("fitted supports kept", n, d, s, count=FIT_CALLS_ALIVE))
        phases["test evaluation"].append(_matrix("fitted supports kept", n, d, s, count=FIT_CALLS_ALIVE))
    _add_sparse_support(phases, support_nnz, n, d)
    return Footprint.from_phases(name, phases, advice=advice)


def _add_sparse_support(phases: dict[str, list[Term]], support_nnz: int, n: int, d: int) -> None:
    """Each phase after densifying holds the support kept sparse once per fitted model that may be alive: one
    for the λ path, ``FIT_CALLS_ALIVE`` + 1 while the timed fit repeats, ``FIT_CALLS_ALIVE`` in the test evaluation."""
    if support_nnz <= 0:
        return
    term = sparse_support_term(support_nnz, n, d)
    for phase, terms in phases.items():
        count = 0 if phase.endswith("densify") and phase.startswith("λ") else \
            FIT_CALLS_ALIVE + 1 if phase.startswith("refit") else FIT_CALLS_ALIVE if phase == "test evaluation" else 1
        if count:
            terms.append(Term(term.name, count * term.nbytes, f"{term.shape} ×{count}" if count > 1 else term.shape,
                              True))


# ------------------------------------------------------------------------------------------------ samplers


def interaction_sampler_footprint(what: str, n_users: int, n_items: int, nnz: int, *, per_interaction: int = 0,
                                  per_user: int = 16, per_item: int = 0, retained: int = 0) -> Footprint:
    """A cheap sampler: index/score arrays per interaction, user and item, beside the shared (read-only) split."""
    terms = [Term("per-interaction arrays", per_interaction * nnz, f"{nnz} × {per_interaction} B", True),
             Term("per-user arrays", per_user * n_users, f"{n_users} × {per_user} B", True),
             Term("per-item arrays", per_item * n_items, f"{n_items} × {per_item} B", True)]
    return Footprint.from_phases(what, {"selection": [t for t in terms if t.nbytes]}, retained_bytes=retained)


def svp_cf_footprint(n_users: int, n_items: int, nnz: int, *, latent: int = 10, proxy: str = "mf",
                     cache_size: int = 4) -> Footprint:
    """SVP-CF: the BPR proxy's device data and one epoch's temporaries, then the forgetting scores.

    Training: the interactions on the device (users, items, complement gaps: 12 B each), the
    mis-ranking counts (4 B), an epoch's host permutation (int64 → int32, 16 B) and, inside the jitted
    epoch, the permuted users, negatives and the binary search's bounds (≈ 48 B); the parameters with
    Adam's moments and updates. Scoring: forgetting scores (float64), tie keys and the sort (≈ 57 B).
    The proxy cache keeps up to ``cache_size`` forgetting vectors (8 B per interaction each).
    """
    emb = (latent + 1) if proxy == "mf" else 1
    params = Term("proxy parameters (Adam)", 4 * (n_users + n_items) * emb * 4, f"({n_users}+{n_items})×{emb} ×4")
    cache = Term("proxy cache", cache_size * nnz * 8, f"{cache_size}×{nnz} float64", True)
    train = [Term("device interactions", nnz * 16 + (n_users + 1) * 4), Term("epoch temporaries", nnz * 48),
             Term("epoch permutation (host)", nnz * 16, host=True), params, cache]
    score = [Term("forgetting scores and sort", nnz * 57 + n_users * 32, host=True), cache]
    return Footprint.from_phases(f"svp-cf on {n_users} users × {n_items} items ({nnz} interactions)",
                                 {"proxy training": train, "scoring": score}, retained_bytes=cache.nbytes)


def user_kernel_footprint(what: str, n_users: int, n_items: int, nnz: int, columns: int) -> Footprint:
    """The coreset samplers' NTK between users, ``columns`` kernel columns at a time (samplers/_user_kernel.py).

    The float32 CSR copy and its squared entries (12 B per interaction each), norms and diagonal; per
    block of columns: the columns' rows dense (columns × d), the Gram block U × columns (float32, its
    copy, the device copy and the NTK's output and temporary) and its float64 result (32 B per entry
    in all); and a few float64 vectors over users (greedy state).
    """
    w = max(1, min(columns, n_users))
    base = [Term("train copy (CSR)", 2 * nnz * 12 + (n_users + 1) * 8, host=True),
            Term("user vectors", n_users * 8 * 8, host=True)]
    block = [_matrix("column rows dense", w, n_items, 4, host=True),
             Term("kernel column block (host)", 24 * n_users * w, f"{n_users}×{w} float32 ×2 + float64", True),
             Term("kernel column block (device)", 8 * n_users * w, f"{n_users}×{w} float32 ×2")]
    return Footprint.from_phases(what, {"kernel columns": base + block},
                                 advice="fewer columns per block (block_size) lowers the kernel block")


def distill_cf_footprint(n_users: int, n_items: int, nnz: int, budget: int, *, candidates: int = 2,
                         batch_users: int = 0, block_users: int = 2048, grid_size: int = 6,
                         eval_positives: int | None = None, batch_size: int = 1024,
                         eval_chunks: int = 0) -> Footprint:
    """Distill-CF (samplers/distill_cf.py): b synthetic users × d items, every candidate (τ, c) alive at once.

    * per candidate: logits Z, Adam's two moments and the best sample kept (4 b × d float32);
    * targets: the real users' train rows dense, padded to ``block_users`` blocks (all users when
      ``batch_users`` = 0, built on the host then copied: 2× while built); with ``batch_users`` a new
      batch per step;
    * one step (jitted value and gradient): the multi-Gumbel forward and hand-written backward (each a
      scan over samples: ≈ 8 b × d between them), X̃, α and their gradients (≈ 8 b × d), the support
      kernel, its solve and gradient (≈ 12 b²), the checkpointed target block: Gram / kernel
      (block × b, ≈ 8) and scores, log-softmax and their gradients (block × d, ≈ 6); Adam's update (4 b × d);
    * validation every ``eval_every`` steps: the ∞-AE λ search on the sample (:func:`infinite_ae_footprint`,
      λ search only), with one validation task per candidate.

    After selection the runs' matrices (one per candidate) and the subset stay allocated.
    """
    b, d, u = max(1, min(budget, n_users)), n_items, n_users
    batch = u if batch_users == 0 else min(batch_users, u)
    block = max(1, min(block_users, batch))
    blocks = -(-batch // block)
    targets = _matrix("dense targets", blocks * block, d, 4)
    state = [_matrix("candidate state (Z, Adam)", b, d, 4, count=3 * candidates),
             _matrix("best samples (host)", b, d, 4, count=candidates, host=True)]
    tasks = Term("validation tasks", (candidates + 1) * u * N_NEGATIVES * 16, f"{candidates + 1}×{u}×{N_NEGATIVES}",
                 True)
    step = [_matrix("step: b × d temporaries", b, d, 4, count=20), _matrix("step: kernel and solve", b, b, 4, count=12),
            _matrix("step: target block × b", block, b, 4, count=8),
            _matrix("step: target block × d", block, d, 4, count=6)]
    if batch_users:
        step.append(_matrix("batch targets (host)", blocks * block, d, 4, count=2, host=True))
    validation = infinite_ae_footprint(b, d, u, batch_size=batch_size, grid_size=grid_size, positives=eval_positives,
                                       mean_row=nnz / max(u, 1), eval_chunks=eval_chunks, tune_only=True)
    val_terms = [t._replace(name=f"validation: {t.name}") for t in validation.terms[validation.phase]]
    phases = {
        "targets": [*state, tasks, _matrix("dense targets (host, while built)", blocks * block, d, 4, host=True),
                    targets],
        "step": [*state, tasks, targets, *step],
        "validation": [*state, tasks, targets, *val_terms],
    }
    advice = ("pass batch_users (e.g. distill-cf:batch_users=2048) to mini-batch the dense targets"
              if batch_users == 0 else "a smaller batch_users or block_users lowers the targets and step")
    return Footprint.from_phases(f"distill-cf with {b} synthetic users × {d} items", phases, advice=advice,
                                 retained_bytes=(candidates + 3) * b * d * 4)


def default_sampler_footprint(shape: UnitShape, what: str = "sampler") -> Footprint:
    """A conservative estimate for a sampler that declares none: four copies of train (CSR), float64
    arrays per user and per interaction, and a dense (budget × items) matrix twice (a synthetic result)."""
    u, d, nnz, b = shape.n_users, shape.n_items, shape.nnz, min(shape.budget, shape.n_users)
    terms = [Term("train copies (CSR)", 4 * (nnz * 12 + (u + 1) * 8), host=True),
             Term("per-user arrays", u * 8 * 8, host=True), Term("per-interaction arrays", nnz * 8 * 4, host=True),
             _matrix("dense subset", b, d, 4, count=2, host=True)]
    return Footprint.from_phases(what, {"selection": terms}, retained_bytes=2 * b * d * 4,
                                 note="conservative default: the plugin declares no memory_footprint")


def default_model_footprint(shape: UnitShape, what: str = "model", dtype_bytes: int | None = None) -> Footprint:
    """A conservative estimate for a model that declares none: three dense copies of the support, four
    n × n and four d × d matrices, three fitted states the size of the largest of them, and one model's
    evaluation chunk."""
    n, d = shape.support_rows, shape.n_items
    s = dtype_bytes or shape.dtype_bytes
    largest = max(n * n, d * d, n * d) * s
    terms = [_matrix("dense support copies", n, d, s, count=3), _matrix("n × n matrices", n, n, s, count=4),
             _matrix("d × d matrices", d, d, s, count=4), Term("fitted states", 3 * largest),
             *evaluation_terms(d, shape.queries, shape.batch_size, 1, s, shape.positives, shape.mean_row,
                               [_matrix("scoring temporaries", SCORE_CHUNK, max(n, d), s, count=2)]),
             gather_programs(shape.eval_chunks), gather_programs(shape.eval_chunks, "test")]
    return Footprint.from_phases(what, {"fit and evaluation": terms},
                                 note="conservative default: the plugin declares no memory_footprint")


def _declared(plugin: Any, shape: UnitShape, default: Footprint) -> Footprint:
    """The plugin's own ``memory_footprint`` if it has a working one, else ``default`` (saying why)."""
    method = getattr(plugin, "memory_footprint", None)
    if method is None or not callable(method):
        return default
    try:
        result = method(shape)
    except Exception as err:  # noqa: BLE001 — a broken estimate must not stop the suite: be conservative
        reason = f"{type(err).__name__}: {err}"
    else:
        if isinstance(result, Footprint):
            return result
        reason = f"it returned {type(result).__name__}, not a Footprint"
    name = getattr(plugin, "name", type(plugin).__name__)
    return dataclasses.replace(default, note=f"{name}.memory_footprint failed ({' '.join(reason.split())[:200]}); "
                                             "conservative default used")


def sampler_footprint(sampler: Any, shape: UnitShape) -> Footprint:
    """The sampler's declared footprint for ``shape``, or the conservative default."""
    name = getattr(sampler, "name", type(sampler).__name__)
    return _declared(sampler, shape, default_sampler_footprint(shape, f"{name} (undeclared)"))


def model_footprint(model: Any, shape: UnitShape) -> Footprint:
    """The model's declared footprint for ``shape`` (λ search, fit and test evaluation), or the default."""
    name = getattr(model, "name", type(model).__name__)
    size = {"float32": 4, "float64": 8}.get(getattr(model, "dtype", None), shape.dtype_bytes)
    return _declared(model, shape, default_model_footprint(shape, f"{name} (undeclared)", size))


def _subset_kinds(sampler: Any) -> set[str] | None:
    """The subset kinds the sampler's ``select`` is annotated to return, or None if unknown."""
    try:
        hint = typing.get_type_hints(type(sampler).select).get("return")
    except Exception:  # noqa: BLE001 — unresolvable annotations: unknown
        return None
    if hint is None:
        return None
    kinds = set()
    for arg in typing.get_args(hint) or (hint,):
        kind = getattr(arg, "kind", None)
        if not isinstance(kind, str):
            return None
        kinds.add(kind)
    return kinds


def support_rows_bound(sampler: Any, n_users: int, nnz: int, budget: int) -> int:
    """Most rows the support of this unit can have (before selection).

    User subsets and synthetic users have at most ``budget`` rows; an interaction subset keeps at most
    the budget's share of interactions, each user left with one at least, so at most that many rows;
    samplers that ignore the budget (``budgeted = False``) or whose return type is unknown: the larger.
    """
    b = min(budget, n_users)
    interactions = min(n_users, round(nnz * b / max(n_users, 1)))
    if not getattr(sampler, "budgeted", True):
        return n_users
    kinds = _subset_kinds(sampler)
    if kinds is not None and kinds <= {"users", "synthetic"}:
        return b
    return max(b, interactions)


# ------------------------------------------------------------------------------------------------ planning


def _overheads(platform: str) -> list[Term]:
    """The runtime allowance: host memory on a CPU; on an accelerator its device part and the host's too."""
    host = Term("JAX/XLA runtime", RUNTIME_OVERHEAD_BYTES["cpu"], host=True)
    return [host] if platform == "cpu" else [Term("JAX/XLA runtime (device)", RUNTIME_OVERHEAD_BYTES["gpu"]), host]


def _batch_candidates(batch_size: int) -> list[int]:
    """The configured batch, then every power of two below it, largest first."""
    out = [batch_size]
    p = 1 << (batch_size.bit_length() - 1)
    if p == batch_size:
        p //= 2
    while p >= 1:
        out.append(p)
        p //= 2
    return out


@dataclasses.dataclass(frozen=True)
class _Limits:
    """What a footprint is compared with: one memory on a CPU; device and host memory on an accelerator."""

    platform: str
    limit: int
    host_limit: int | None

    @classmethod
    def of(cls, device: Any, limit: int | None, host_limit: int | None) -> _Limits:
        platform = _platform(device)
        limit = memory_limit(device) if limit is None else int(limit)
        if platform == "cpu":
            return cls(platform, limit, None)
        return cls(platform, limit, int(host_available_bytes() * SAFETY_FRACTION) if host_limit is None
                   else int(host_limit))

    def split(self, fp: Footprint) -> tuple[Footprint, Footprint | None]:
        """(the part compared with ``limit``, the host part compared with ``host_limit`` on an accelerator)."""
        return (fp, None) if self.platform == "cpu" else (fp.part(host=False), fp.part(host=True))

    def fits(self, fp: Footprint) -> bool:
        counted, host = self.split(fp)
        return counted.peak_bytes <= self.limit and (host is None or host.peak_bytes <= (self.host_limit or 0))

    def reason(self, fp: Footprint, hint: str = "", floor: Footprint | None = None) -> str:
        """One line: what needs how much against which limit, the dominant term and what would help
        (``hint``, else what ``floor`` — the smallest version of the work — still needs, else the footprint's advice)."""
        counted, host = self.split(fp)
        on_host = host is not None and counted.peak_bytes <= self.limit  # the device part fits: the host's does not
        part, limit = (host, self.host_limit or 0) if on_host and host is not None else (counted, self.limit)
        memory = "" if self.platform == "cpu" else "host memory " if on_host else "device memory "
        name, _ = part.dominant
        text = (f"{fp.what} needs {format_bytes(part.peak_bytes)} > {memory}limit {format_bytes(limit)} "
                f"(dominant: {part.term_text(name)}, at {part.phase})")
        if hint:
            return f"{text}; {hint}"
        if floor is not None:
            floor_counted, floor_host = self.split(floor)
            least = floor_host if on_host and floor_host is not None else floor_counted
            least_name, _ = least.dominant
            return (f"{text}; even 1 support user and evaluation batch 1 need {format_bytes(least.peak_bytes)} "
                    f"(dominant: {least.term_text(least_name)}): run it where more memory is available")
        return f"{text}; {fp.advice or 'run it where more memory is available'}"


@dataclasses.dataclass(frozen=True)
class ModelPlan:
    """Whether a model fits its unit's limit, with the evaluation batch size chosen to fit.

    ``footprint`` is the model's footprint at that batch with the runtime allowance and what the unit keeps
    besides (the support, the sampler's retained memory); on an accelerator its device part is compared
    with ``limit_bytes`` and its host part with ``host_limit_bytes``.
    """

    model: str
    feasible: bool
    footprint: Footprint
    limit_bytes: int
    batch_size: int
    reason: str = ""
    platform: str = "cpu"
    host_limit_bytes: int | None = None

    @property
    def counted(self) -> Footprint:
        """The footprint compared with ``limit_bytes``: all of it on a CPU, the device part on an accelerator."""
        return self.footprint if self.platform == "cpu" else self.footprint.part(host=False)

    @property
    def predicted_peak_bytes(self) -> int:
        return self.counted.peak_bytes

    def record(self) -> dict[str, Any]:
        """JSON for a result row: ``{"feasible", "predicted_peak_bytes", "limit_bytes", "batch_size", "breakdown", …}``."""
        counted = self.counted
        out: dict[str, Any] = {"feasible": self.feasible, "predicted_peak_bytes": int(counted.peak_bytes),
                               "limit_bytes": int(self.limit_bytes), "batch_size": int(self.batch_size),
                               "phase": counted.phase, "breakdown": {k: int(v) for k, v in counted.breakdown.items()}}
        if self.platform != "cpu":
            out["device"] = self.platform
            out["predicted_host_peak_bytes"] = int(self.footprint.part(host=True).peak_bytes)
            out["host_limit_bytes"] = self.host_limit_bytes
        if self.reason:
            out["reason"] = self.reason
        if self.footprint.note:
            out["note"] = self.footprint.note
        return out


def _with_slack(fp: Footprint, platform: str) -> Footprint:
    """On an accelerator, ``fp`` plus :data:`ACCELERATOR_SLACK` of its device arrays in every phase."""
    if platform == "cpu":
        return fp
    def slack(ts: Sequence[Term]) -> tuple[Term, ...]:
        arrays = sum(t.nbytes for t in ts if not t.host)
        return (Term("allocator and solver workspaces (device)", int(ACCELERATOR_SLACK * arrays)),) if arrays else ()

    return fp._rebuild({phase: (*ts, *slack(ts)) for phase, ts in fp._phase_terms().items()})


def _model_at(model: Any, shape: UnitShape, extra: Sequence[Term], platform: str = "cpu") -> Footprint:
    return _with_slack(model_footprint(model, shape), platform).plus(*extra)


def _largest_support(model: Any, shape: UnitShape, limits: _Limits, extra: Sequence[Term]) -> int:
    """The most support rows (≤ ``shape.support_rows``) with which the model fits at batch 1; 0 if none."""
    def fits(n: int) -> bool:
        return limits.fits(_model_at(model, dataclasses.replace(shape, n_support=n, batch_size=1), extra,
                                     limits.platform))
    if not fits(1):
        return 0
    lo, hi = 1, shape.support_rows  # lo fits; hi does not (else the model would have fitted)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def plan_model(model: Any, shape: UnitShape, limit: int | None = None, device: Any = None,
               extra_bytes: int = 0, host_limit: int | None = None) -> ModelPlan:
    """Plan one model's λ search, fit and test evaluation on ``shape`` (``n_support``: the actual support rows).

    Tries the configured evaluation batch, then every power of two below it, and keeps the first whose
    footprint — with the runtime allowance and ``extra_bytes`` of host memory the unit holds besides (the
    support matrix, what the sampler keeps) — fits ``limit`` (default: :func:`memory_limit` of ``device``;
    on an accelerator the host part must fit ``host_limit`` too, default the host's available memory).
    Infeasible when even batch 1 does not fit: the reason names the predicted bytes, the dominant term and
    the largest support that would fit ("use a sampler with a budget ≤ N users"), or says that none would.
    """
    limits = _Limits.of(device, limit, host_limit)
    extra = [*_overheads(limits.platform), Term("support and retained selection", int(extra_bytes), host=True)]
    name = getattr(model, "name", type(model).__name__)
    fp = None
    for batch in _batch_candidates(shape.batch_size):
        fp = _model_at(model, dataclasses.replace(shape, batch_size=batch), extra, limits.platform)
        if limits.fits(fp):
            return ModelPlan(name, True, fp, limits.limit, batch, "", limits.platform, limits.host_limit)
    assert fp is not None
    largest = _largest_support(model, shape, limits, extra)
    if largest:
        reason = limits.reason(fp, f"use a sampler with a budget ≤ {largest:,} users")
    else:
        floor = _model_at(model, dataclasses.replace(shape, n_support=1, batch_size=1), extra, limits.platform)
        reason = limits.reason(fp, floor=floor)
    return ModelPlan(name, False, fp, limits.limit, 1, reason, limits.platform, limits.host_limit)


@dataclasses.dataclass(frozen=True)
class UnitPlan:
    """The plan of one unit (a sampler's selection and its models) before it runs."""

    feasible: bool
    limit_bytes: int
    shape: UnitShape
    selection: Footprint
    support_bytes: int
    models: tuple[ModelPlan, ...]
    reason: str = ""
    platform: str = "cpu"
    host_limit_bytes: int | None = None

    @property
    def selection_counted(self) -> Footprint:
        return self.selection if self.platform == "cpu" else self.selection.part(host=False)

    @property
    def predicted_peak_bytes(self) -> int:
        """The unit's predicted peak on its limit's memory: the selection or the largest model."""
        return max([self.selection_counted.peak_bytes] + [m.predicted_peak_bytes for m in self.models])

    def model_plan(self, model: Any) -> ModelPlan:
        """The plan of ``model`` (a model object, its name or its index)."""
        if isinstance(model, int):
            return self.models[model]
        name = model if isinstance(model, str) else getattr(model, "name", type(model).__name__)
        for plan in self.models:
            if plan.model == name:
                return plan
        raise KeyError(f"no plan for model {name!r}")

    def reason_for(self, model: Any) -> str:
        """Why ``model`` (object, name or index) cannot run in this unit: its own plan's reason when it does not
        fit, else the unit's (the selection does not fit); a row names its own model, not its neighbour's."""
        plan = self.model_plan(model)
        return self.reason if plan.feasible else plan.reason

    def record(self, model: Any | None = None) -> dict[str, Any]:
        """JSON for a result row: the unit's verdict, the selection's plan and (given ``model``) that model's."""
        selection = self.selection_counted
        out: dict[str, Any] = {"feasible": self.feasible, "predicted_peak_bytes": int(self.predicted_peak_bytes),
                               "limit_bytes": int(self.limit_bytes), "support_rows_bound": self.shape.support_rows,
                               "selection": {"predicted_peak_bytes": int(selection.peak_bytes),
                                             "phase": selection.phase,
                                             "breakdown": {k: int(v) for k, v in selection.breakdown.items()}}}
        if self.host_limit_bytes is not None:
            out["host_limit_bytes"] = self.host_limit_bytes
        if self.selection.note:
            out["selection"]["note"] = self.selection.note
        if model is not None:
            out["model"] = self.model_plan(model).record()
            out["predicted_peak_bytes"] = max(int(selection.peak_bytes), out["model"]["predicted_peak_bytes"])
        if self.reason:
            out["reason"] = self.reason
        return out


def _support_bytes(sampler: Any, shape: UnitShape) -> tuple[int, int]:
    """(bytes of the support matrix, bytes of building it) for ``shape.support_rows`` rows, in host memory.

    Sparse supports are bounded by all of train (the rows kept may be the longest); synthetic (or unknown)
    subsets may be dense. Building: ``support_matrix`` and ``subset_size`` each build it once; an interaction
    mask also makes a masked copy of train.
    """
    rows, d = shape.support_rows, shape.n_items
    kinds = _subset_kinds(sampler)
    sparse_bytes = shape.nnz * 12 + (rows + 1) * 8
    dense_bytes = rows * d * 4 if kinds is None or "synthetic" in kinds else 0
    support = max(sparse_bytes, dense_bytes)
    interactions = kinds is None or "interactions" in kinds or not getattr(sampler, "budgeted", True)
    return support, 2 * support + (shape.nnz * 17 if interactions else 0)


def plan_unit(sampler: Any, models: Sequence[Any], shape: UnitShape, limit: int | None = None,
              device: Any = None, tasks_built: bool = True, host_limit: int | None = None) -> UnitPlan:
    """Plan a unit before it runs: the sampler's selection, then every model on the largest possible support.

    ``shape.n_support`` None: :func:`support_rows_bound`. The selection must fit with the runtime
    allowance and building the support; each model with the support and what the sampler keeps after
    selecting (its ``retained_bytes``). ``tasks_built=False`` (the split's first unit in this process) adds
    building the evaluation tasks. Infeasible when anything does not fit; ``reason`` says which, how much it
    needs and what would help. After selection, :func:`plan_model` with the actual support rows is tighter;
    where the support is only bounded here (interaction samplers), the harness selects whenever the selection
    fits and lets that post-selection plan decide each model.
    """
    limits = _Limits.of(device, limit, host_limit)
    if shape.n_support is None:
        shape = dataclasses.replace(shape, n_support=support_rows_bound(sampler, shape.n_users, shape.nnz,
                                                                        shape.budget))
    selection = sampler_footprint(sampler, shape)
    support, build = _support_bytes(sampler, shape)
    extras = [*_overheads(limits.platform), Term("support matrix build", build, host=True)]
    if not tasks_built:
        tasks = evaluation_task_footprint(shape.n_users, shape.n_items, shape.nnz)
        extras.append(Term("evaluation tasks", tasks.peak_bytes, host=True))
    selection = _with_slack(selection, limits.platform).plus(*extras)
    plans = tuple(plan_model(m, shape, limits.limit, device, support + selection.retained_bytes, limits.host_limit)
                  for m in models)
    reasons = [] if limits.fits(selection) else [limits.reason(selection)]
    reasons += [p.reason for p in plans if not p.feasible]
    return UnitPlan(not reasons, limits.limit, shape, selection, support, plans, "; ".join(reasons), limits.platform,
                    limits.host_limit)


# ------------------------------------------------------------------------------------------------ measuring


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_from_statm(raw: bytes) -> int:
    return int(raw.split()[1]) * _PAGE


def current_rss_bytes() -> int:
    """Resident set size of this process now (``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as f:
        return _rss_from_statm(f.read())


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _accelerator() -> Any:
    """The first JAX device if it is an accelerator with memory statistics, else None."""
    try:
        import jax

        device = jax.devices()[0]
        if device.platform == "cpu":
            return None
        return device if device.memory_stats() is not None else None
    except Exception:  # noqa: BLE001 — no device statistics: report None
        return None


class PeakMemory:
    """``with PeakMemory() as pm: ...`` then ``pm.host_peak_bytes``, ``pm.host_delta_bytes``, ``pm.device_peak_bytes``.

    A daemon thread reads the process's RSS from ``/proc/self/statm`` every ``interval`` seconds (one
    ``pread``); at exit, ``ru_maxrss`` is a floor for the peak when the process's lifetime maximum grew
    during the block (it then happened inside it), which catches spikes between samples. Where JAX's
    default device is an accelerator, its ``bytes_in_use`` is sampled too and ``peak_bytes_in_use`` is
    the floor likewise; on a CPU ``device_peak_bytes`` is None (device memory *is* host memory there).
    Blocks may nest. The thread costs a few microseconds per sample.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.host_start_bytes = 0
        self.host_peak_bytes = 0
        self.device_start_bytes: int | None = None
        self.device_peak_bytes: int | None = None

    @property
    def host_delta_bytes(self) -> int:
        """Peak RSS during the block minus RSS at its start."""
        return self.host_peak_bytes - self.host_start_bytes

    @property
    def device_delta_bytes(self) -> int | None:
        if self.device_peak_bytes is None or self.device_start_bytes is None:
            return None
        return self.device_peak_bytes - self.device_start_bytes

    def __enter__(self) -> Self:
        self._device = _accelerator()
        try:
            self._fd: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:  # no /proc: the lifetime maximum RSS alone (a floor only when it grows)
            self._fd = None
        self._max_rss_start = _max_rss_bytes()
        self.host_start_bytes = self.host_peak_bytes = self._rss()
        if self._device is not None:
            stats = self._device.memory_stats()
            self.device_start_bytes = self.device_peak_bytes = int(stats.get("bytes_in_use", 0))
            self._device_max_start = int(stats.get("peak_bytes_in_use", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, name="cfbench-peak-memory", daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        return _rss_from_statm(os.pread(self._fd, 128, 0)) if self._fd is not None else _max_rss_bytes()

    def _sample(self) -> None:
        self.host_peak_bytes = max(self.host_peak_bytes, self._rss())
        if self._device is not None:
            in_use = int(self._device.memory_stats().get("bytes_in_use", 0))
            if self.device_peak_bytes is None or in_use > self.device_peak_bytes:
                self.device_peak_bytes = in_use

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._sample()
        finally:
            if self._fd is not None:
                os.close(self._fd)
        max_rss = _max_rss_bytes()
        if max_rss > self._max_rss_start:  # the lifetime maximum was reached inside the block
            self.host_peak_bytes = max(self.host_peak_bytes, max_rss)
        if self._device is not None:
            peak = int(self._device.memory_stats().get("peak_bytes_in_use", 0))
            if peak > self._device_max_start:
                self.device_peak_bytes = max(self.device_peak_bytes or 0, peak)

    def record(self) -> dict[str, int | None]:
        """JSON for a result row."""
        return {"host_peak_bytes": int(self.host_peak_bytes), "host_delta_bytes": int(self.host_delta_bytes),
                "device_peak_bytes": self.device_peak_bytes}
