"""Does a run reproduce the published rows? ``cfbench compare RUN_DIR [--against results]``.

Rows of ``RUN_DIR`` are matched with the published rows (``--against``) by identity
(:func:`cfbench.results.row_identity_key`: same data, protocol, seed, sampler and its parameters,
budget, model, dtype). For every matched row, Δ = run − published of one test metric (NDCG@10 by
default); per (dataset, sampler, budget, model) cell, Δ is measured in units of the published
seed-to-seed standard deviation σ of that cell (the sample standard deviation, ddof = 1, of the
published rows of every seed of the cell), and the cell reproduces when every |Δ| ≤ threshold · σ
(default 2 σ). Where σ cannot say what noise is — a cell with one published seed, or σ = 0 — the
fallback is an absolute tolerance: |Δ| ≤ ``abs_tol`` (default 0.5 for metrics ×100, 0.005 for AUC),
and the cell says so. A metric that is null on one side only does not reproduce.

Rows of ``RUN_DIR`` without a published counterpart, and published rows the run did not redo, are
counted and listed, not errors; a unit that failed in ``RUN_DIR`` did not reproduce. Also counted:
rows whose metric is bit-for-bit equal, and rows whose every validation and test metric and λ are.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tabulate import tabulate

from cfbench.results import ResultsError, _json_safe, row_identity_key, scan_rows

__all__ = ["DEFAULT_THRESHOLD", "METRICS", "CellComparison", "Comparison", "RowComparison", "compare",
           "default_abs_tol", "run_summary"]

METRICS = ("ndcg@10", "hr@10", "psp@10", "ndcg@100", "hr@100", "psp@100", "auc")
DEFAULT_THRESHOLD = 2.0


def default_abs_tol(metric: str) -> float:
    """The fallback tolerance: 0.5 points for metrics ×100, 0.005 for AUC (in [0, 1])."""
    return 0.005 if metric == "auc" else 0.5


@dataclasses.dataclass(frozen=True)
class RowComparison:
    """One run row against the published row of the same identity."""

    seed: int
    path: str  # the run's row file
    published_path: str
    run: float | None  # the metric (None: not available)
    published: float | None
    delta: float | None  # run − published
    z: float | None  # delta / σ of the cell (None without σ)
    exact: bool  # the metric is bit-for-bit equal
    identical: bool  # every validation and test metric and λ are bit-for-bit equal
    reproduced: bool


@dataclasses.dataclass(frozen=True)
class CellComparison:
    """A (dataset, sampler, budget, model) cell: its matched rows and whether they are within the noise."""

    dataset: str
    sampler: str
    budget: int
    model: str
    published_seeds: int  # published rows of the cell (all seeds, matched or not): σ's sample
    sigma: float | None  # sample std (ddof=1) of the cell's published rows; None with one seed
    criterion: str  # "sigma" (|Δ| ≤ threshold·σ) or "abs" (|Δ| ≤ abs_tol)
    tolerance: float  # the largest |Δ| accepted
    why_abs: str  # why the absolute fallback is used ("" with "sigma")
    published_mean: float | None  # over the matched rows
    run_mean: float | None  # over the matched rows
    delta_mean: float | None
    worst_delta: float | None  # the Δ of largest magnitude
    worst_z: float | None  # worst_delta / σ
    rows: tuple[RowComparison, ...]

    @property
    def reproduced(self) -> bool:
        return all(r.reproduced for r in self.rows)

    @property
    def exact(self) -> int:
        return sum(r.exact for r in self.rows)


@dataclasses.dataclass
class Comparison:
    """What ``cfbench compare`` found; :attr:`exit_code` is 0 when everything matched reproduces, else 1."""

    run_dir: str
    against: str
    metric: str
    threshold: float
    abs_tol: float
    cells: list[CellComparison]
    only_in_run: list[str]  # run rows with no published row of the same identity
    not_rerun: list[str]  # published rows with no run row of the same identity
    failed: list[str]  # failed units in the run
    invalid: list[tuple[str, str]]  # run files that are not rows: (path, reason)

    @property
    def matched(self) -> int:
        return sum(len(c.rows) for c in self.cells)

    @property
    def exact(self) -> int:
        return sum(c.exact for c in self.cells)

    @property
    def identical(self) -> int:
        return sum(r.identical for c in self.cells for r in c.rows)

    @property
    def flagged(self) -> list[CellComparison]:
        return [c for c in self.cells if not c.reproduced]

    @property
    def reproduced(self) -> bool:
        return not self.flagged and not self.failed

    @property
    def exit_code(self) -> int:
        return 0 if self.reproduced else 1

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (NaN as ``null``), with the counts and the verdict."""
        out = dataclasses.asdict(self)
        for cell, data in zip(self.cells, out["cells"]):
            data["reproduced"] = cell.reproduced
            data["exact"] = cell.exact
        out.update(matched=self.matched, exact=self.exact, identical=self.identical,
                   flagged=len(self.flagged), reproduced=self.reproduced, exit_code=self.exit_code,
                   method=self.method())
        return _json_safe(out)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False) + "\n"

    def method(self) -> str:
        return (f"Δ = run − published {self.metric} of the row with the same identity; a cell reproduces when every "
                f"|Δ| ≤ {self.threshold:g} σ, σ = sample std (ddof=1) of the cell's published rows over seeds; with "
                f"one published seed or σ = 0: |Δ| ≤ {self.abs_tol:g} (absolute). A failed unit in the run does "
                "not reproduce.")

    def render(self, limit: int = 20) -> str:
        """A readable report: method, counts, one line per cell, the unmatched and failed rows, the verdict."""
        lines = [f"cfbench compare: {self.run_dir} against {self.against} — {self.metric}", self.method(), ""]
        lines.append(f"{self.matched} row{'s' * (self.matched != 1)} matched in {len(self.cells)} "
                     f"cell{'s' * (len(self.cells) != 1)}; {self.exact} with {self.metric} bit-for-bit equal, "
                     f"{self.identical} with every metric and λ equal; {len(self.flagged)} "
                     f"cell{'s' * (len(self.flagged) != 1)} outside the noise; {len(self.only_in_run)} only in the "
                     f"run; {len(self.not_rerun)} published not re-run; {len(self.failed)} failed in the run.")
        if self.cells:
            body = []
            for c in self.cells:
                crit = (f"{self.threshold:g}σ = {c.tolerance:.3g}" if c.criterion == "sigma"
                        else f"abs {c.tolerance:g} ({c.why_abs})")
                body.append([c.dataset, c.sampler, c.budget, c.model, ",".join(str(r.seed) for r in c.rows),
                             _num(c.published_mean), _num(c.run_mean), _signed(c.worst_delta),
                             ("–" if c.sigma is None else f"{c.sigma:.3g}") + f" ({c.published_seeds})",
                             "–" if c.worst_z is None else f"{c.worst_z:+.2f}", crit, f"{c.exact}/{len(c.rows)}",
                             "ok" if c.reproduced else "NOT REPRODUCED"])
            lines += ["", tabulate(body, headers=["dataset", "sampler", "budget", "model", "seeds", "published", "run",
                                                  "worst Δ", "σ (published seeds)", "worst Δ/σ", "tolerance",
                                                  "bit-equal", "status"],
                                   tablefmt="github", disable_numparse=True)]
        for title, items in ((f"Only in {self.run_dir} (no published row with the same identity)", self.only_in_run),
                             (f"Published in {self.against}, not re-run", self.not_rerun),
                             (f"Failed in {self.run_dir} (did not reproduce)", self.failed),
                             (f"Not rows (skipped) in {self.run_dir}", [f"{p}: {r}" for p, r in self.invalid])):
            if items:
                lines += ["", f"{title}: {len(items)}"] + [f"  {p}" for p in items[:limit]]
                if len(items) > limit:
                    lines.append(f"  … and {len(items) - limit} more (--json lists them all)")
        verdict = "REPRODUCED" if self.reproduced else (
            f"NOT REPRODUCED: {len(self.flagged)} cell{'s' * (len(self.flagged) != 1)} outside the noise"
            + (f", {len(self.failed)} failed unit{'s' * (len(self.failed) != 1)}" if self.failed else ""))
        lines += ["", verdict]
        return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _metric(row: dict[str, Any], metric: str) -> float | None:
    value = row["metrics"]["test"].get(metric)
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _identical(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["metrics"] == b["metrics"] and a["lambda"] == b["lambda"]


def _cell_key(row: dict[str, Any]) -> tuple[str, str, int, str]:
    return row["dataset"], row["sampler_spec"], row["budget"], row["model_spec"]


def _std(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def compare(run_dir: str | Path, against: str | Path = "results", metric: str = "ndcg@10",
            threshold: float = DEFAULT_THRESHOLD, abs_tol: float | None = None,
            only: Iterable[str | Path] | None = None) -> Comparison:
    """Compare the rows of ``run_dir`` with the published rows in ``against`` (see the module docstring).

    ``only``: compare just these row files of ``run_dir`` (e.g. the rows one suite covers), not all of them.

    Raises :class:`ValueError` for a bad metric or threshold, :class:`~cfbench.results.ResultsError`
    when a folder is missing, ``run_dir`` holds no row, or no row of it has a published counterpart.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    if not (threshold > 0 and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a positive number of standard deviations, got {threshold!r}")
    tol = default_abs_tol(metric) if abs_tol is None else abs_tol
    if not (tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"abs_tol must be a non-negative number, got {abs_tol!r}")
    run = scan_rows(run_dir)
    if only is not None:
        keep = {Path(p).resolve() for p in only}
        pairs = [(p, r) for p, r in zip(run.paths, run.rows) if p.resolve() in keep]
        run.paths, run.rows = [p for p, _ in pairs], [r for _, r in pairs]
        run.failed = [(p, r) for p, r in run.failed if p.resolve() in keep]
        run.invalid = []
    pub = scan_rows(against)
    if not run.rows and not run.failed:
        raise ResultsError(f"no result rows in {run_dir}" + (f" ({len(run.invalid)} invalid files)" if run.invalid
                                                               else "") + "; pass the results folder of a run")
    published: dict[str, tuple[Path, dict[str, Any]]] = {row_identity_key(r): (p, r)
                                                         for p, r in zip(pub.paths, pub.rows)}
    by_cell: dict[tuple[str, str, int, str], list[float]] = {}
    for r in pub.rows:
        if (v := _metric(r, metric)) is not None:
            by_cell.setdefault(_cell_key(r), []).append(v)
    matched: dict[tuple[str, str, int, str], list[tuple[Path, dict[str, Any], Path, dict[str, Any]]]] = {}
    only_in_run, seen = [], set()
    for path, row in zip(run.paths, run.rows):
        key = row_identity_key(row)
        if key not in published:
            only_in_run.append(str(path))
            continue
        seen.add(key)
        ppath, prow = published[key]
        matched.setdefault(_cell_key(prow), []).append((path, row, ppath, prow))
    failed = [str(p) for p, _ in run.failed]
    if not matched and not failed:
        raise ResultsError(f"no row of {run_dir} has a published counterpart in {against} ({len(only_in_run)} "
                           f"row{'s' * (len(only_in_run) != 1)} only in the run): nothing to compare; pass the "
                           "published results with --against")
    not_rerun = sorted(str(p) for k, (p, _) in published.items() if k not in seen)
    cells = []
    for key in sorted(matched):
        values = by_cell.get(key, [])
        sigma = _std(values)
        if sigma is not None and sigma > 0:
            criterion, tolerance, why = "sigma", threshold * sigma, ""
        else:
            criterion, tolerance = "abs", tol
            why = "σ = 0" if sigma == 0 else f"{len(values)} published seed{'s' * (len(values) != 1)}"
        rows = []
        for path, row, ppath, prow in sorted(matched[key], key=lambda m: (m[1]["seed"], str(m[0]))):
            a, b = _metric(row, metric), _metric(prow, metric)
            delta = None if a is None or b is None else a - b
            z = None if delta is None or criterion != "sigma" else delta / sigma
            ok = (a is None and b is None) or (delta is not None and abs(delta) <= tolerance)
            rows.append(RowComparison(row["seed"], str(path), str(ppath), a, b, delta, z,
                                      a == b, _identical(row, prow), ok))
        deltas = [r.delta for r in rows if r.delta is not None]
        worst = max(deltas, key=abs) if deltas else None
        run_values = [r.run for r in rows if r.run is not None]
        pub_values = [r.published for r in rows if r.published is not None]
        cells.append(CellComparison(
            dataset=key[0], sampler=key[1], budget=key[2], model=key[3], published_seeds=len(values), sigma=sigma,
            criterion=criterion, tolerance=tolerance, why_abs=why,
            published_mean=sum(pub_values) / len(pub_values) if pub_values else None,
            run_mean=sum(run_values) / len(run_values) if run_values else None,
            delta_mean=sum(deltas) / len(deltas) if deltas else None, worst_delta=worst,
            worst_z=None if worst is None or criterion != "sigma" else worst / sigma, rows=tuple(rows)))
    return Comparison(str(run_dir), str(against), metric, threshold, tol, cells, only_in_run, not_rerun, failed,
                      [(str(p), reason) for p, reason in run.invalid])


def run_summary(run_dir: str | Path, against: str | Path, paths: Iterable[str | Path], metric: str = "ndcg@10",
                limit: int = 5) -> list[str]:
    """The few lines ``cfbench run`` ends with: how the rows ``paths`` of ``run_dir`` compare with the published
    rows in ``against`` (rows matched by identity, within the noise, bit for bit, flagged cells), or one line
    saying why there is no comparison (no published folder, the run wrote into it, no shared identity)."""
    run, published = Path(run_dir), Path(against)
    if not published.is_dir():
        return [f"not compared with published rows: no folder {published} here (--against DIR names one)"]
    if run.resolve() == published.resolve():
        return [(f"not compared with published rows: this run wrote into {published} itself (`cfbench run` writes "
                 "into runs/ by default)")]
    try:
        result = compare(run, published, metric=metric, only=paths)
    except ResultsError as err:
        why = str(err).split(": nothing to compare")[0]
        return [f"not compared with published rows: {why}"]
    rows = [r for c in result.cells for r in c.rows]
    within = sum(r.reproduced for r in rows)
    lines = [f"compared with the published rows in {published} (test {metric.upper()}): {result.matched} of "
             f"{result.matched + len(result.only_in_run)} rows matched by identity, {within} within the noise "
             f"({result.threshold:g} σ of the published seeds), {result.exact} bit for bit; {len(result.flagged)} of "
             f"{len(result.cells)} cells flagged" + (f"; {len(result.failed)} failed in the run" if result.failed else "")
             + f" (details: cfbench compare {run} --against {published})"]
    for cell in result.flagged[:limit]:
        worst = "–" if cell.worst_delta is None else f"{cell.worst_delta:+.3f}"
        z = f" ({cell.worst_z:+.2f} σ)" if cell.worst_z is not None else f" (tolerance {cell.tolerance:.3g})"
        lines.append(f"  flagged: {cell.dataset} {cell.sampler} b={cell.budget} {cell.model}: worst Δ {worst}{z}")
    if len(result.flagged) > limit:
        lines.append(f"  … and {len(result.flagged) - limit} more")
    return lines
