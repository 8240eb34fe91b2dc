"""Is a sampler better than random users? Paired tests, confidence intervals, Holm's correction.

Pure functions (no files): the leaderboards call them with the rows' metrics and, where rows store
them (:mod:`cfbench.peruser`), per-user test values.

For each (sampler, budget) of one leaderboard (dataset × model), the sampler's metric is compared
with the baseline's (``random-users`` at the same budget) at the **same seeds** (same split, so the
same test users); Δ = mean over the paired seeds of (sampler − baseline). One of two tests is used,
and every table says which:

* ``users`` — where both rows of every paired seed store per-user values of the metric over the same
  users: each user's difference, averaged over the paired seeds, is one observation; a two-sided
  one-sample t-test of these n_users differences against 0 (= ``scipy.stats.ttest_rel`` on the
  per-user values averaged over seeds), with its t confidence interval for Δ. Users are the
  independent units, so seeds are combined by averaging within users (not by pooling user-seed
  pairs, which would count one user several times).
* ``seeds`` — otherwise, with ≥ 2 paired seeds: a two-sided paired t-test over seeds of the row means
  (``scipy.stats.ttest_rel``), with its t confidence interval (n − 1 degrees of freedom).
* none — one paired seed without per-user values, or no baseline row: Δ only.

The family of one table (every (sampler, budget) with a p-value) is corrected with Holm–Bonferroni;
a cell is significant when its Holm-adjusted p is below α = 0.05. The confidence intervals are
the unadjusted 95 % intervals.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.stats

from cfbench.peruser import PerUser

__all__ = ["ALPHA", "BASELINE", "CONFIDENCE", "PairedComparison", "TestResult", "baseline_table", "compare_paired",
           "describe_tests", "holm", "mark", "paired_t"]

BASELINE = "random-users"
ALPHA = 0.05
CONFIDENCE = 0.95
USERS, SEEDS, NONE = "users", "seeds", "none"


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order); NaN stays NaN and is not counted in the family.

    With the m finite p-values sorted ascending, p₍ᵢ₎ becomes max_{j ≤ i} min(1, (m − j + 1) p₍ⱼ₎);
    rejecting where the adjusted p < α is Holm's step-down procedure at family-wise error rate α.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


@dataclasses.dataclass(frozen=True)
class TestResult:
    """A two-sided one-sample t-test of differences against 0, with the t interval for their mean."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    statistic: float
    p: float


def paired_t(differences: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> TestResult:
    """t-test of mean(differences) = 0 (paired data: pass the differences), two-sided, with its CI.

    Needs ≥ 2 finite differences (ValueError otherwise). With zero variance the test is undefined:
    p is NaN and the interval is the point (the mean).
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or d.size < 2 or not np.isfinite(d).all():
        raise ValueError(f"a paired t-test needs ≥ 2 finite differences, got {d.size}")
    mean = float(d.mean())
    if float(d.std(ddof=1)) == 0.0:
        return TestResult(d.size, mean, mean, mean, math.nan, math.nan)
    res = scipy.stats.ttest_1samp(d, 0.0)
    ci = res.confidence_interval(confidence)
    return TestResult(d.size, mean, float(ci.low), float(ci.high), float(res.statistic), float(res.pvalue))


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    """A sampler cell against the baseline at the same budget: Δ, its test and confidence interval."""

    seeds: tuple[int, ...]  # paired seeds
    delta: float  # mean over paired seeds of (sampler − baseline), NaN without a pair
    test: str  # "users", "seeds" or "none"
    n: int  # observations of the test (users or seeds); 0 without a test
    ci_low: float = math.nan
    ci_high: float = math.nan
    p: float = math.nan
    note: str = ""  # why there is no test (or a weaker one)


def compare_paired(sampler: Mapping[int, float], baseline: Mapping[int, float],
                   sampler_users: Mapping[int, PerUser | None] | None = None,
                   baseline_users: Mapping[int, PerUser | None] | None = None,
                   confidence: float = CONFIDENCE) -> PairedComparison:
    """Compare one cell's per-seed metric with the baseline's (both ×100, keyed by seed).

    ``*_users`` give each seed's per-user values where the row stores them. The per-user test is used
    when every paired seed has them on both sides, aligned (same users hash within a seed) and over
    the same users in every seed; otherwise the seed test (≥ 2 paired seeds); otherwise none.
    """
    seeds = tuple(sorted(s for s in set(sampler) & set(baseline)
                         if math.isfinite(sampler[s]) and math.isfinite(baseline[s])))
    if not seeds:
        return PairedComparison((), math.nan, NONE, 0, note=f"no {BASELINE} row at this budget and seed")
    diffs = np.array([sampler[s] - baseline[s] for s in seeds])
    delta = float(diffs.mean())
    su, bu = sampler_users or {}, baseline_users or {}
    pairs = [(su.get(s), bu.get(s)) for s in seeds]
    note = ""
    if all(a is not None and b is not None for a, b in pairs):
        hashes = {a.users_hash for a, _ in pairs} | {b.users_hash for _, b in pairs}
        if len(hashes) == 1 and len({a.n for a, _ in pairs} | {b.n for _, b in pairs}) == 1:
            per_user = np.mean([a.values - b.values for a, b in pairs], axis=0)
            if per_user.size >= 2:
                res = paired_t(per_user, confidence)
                return PairedComparison(seeds, delta, USERS, res.n, res.ci_low, res.ci_high, res.p,
                                        "zero variance" if math.isnan(res.p) else "")
            note = "fewer than 2 users"
        else:
            note = "per-user values over different users"
    elif any(a is not None or b is not None for a, b in pairs):
        note = "per-user values missing for some rows"
    if len(seeds) >= 2:
        res = paired_t(diffs, confidence)
        return PairedComparison(seeds, delta, SEEDS, res.n, res.ci_low, res.ci_high, res.p,
                                note or ("zero variance" if math.isnan(res.p) else ""))
    return PairedComparison(seeds, delta, NONE, 0, note=note or "one seed, no per-user values")


def baseline_table(df: pd.DataFrame, metric: str = "ndcg@10", baseline: str = BASELINE,
                   per_user: Sequence[PerUser | None] | None = None, alpha: float = ALPHA,
                   confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Every (sampler, budget) of one leaderboard against ``baseline`` at the same budget and seeds.

    ``df`` has one line per row with ``sampler``, ``budget``, ``seed`` and ``metric`` (×100);
    ``per_user`` (aligned with ``df``'s lines) the rows' per-user values or ``None``. Returns one line
    per (sampler, budget) other than the baseline's, sorted, with ``value`` (the sampler's mean over
    the paired seeds), ``baseline_value``, ``delta``, ``ci_low``, ``ci_high``, ``test``, ``n``,
    ``seeds`` (paired), ``p``, ``p_holm`` (Holm over the table), ``significant`` (p_holm < alpha) and
    ``direction`` (+1 better, −1 worse, 0 not significant).
    """
    pu = list(per_user) if per_user is not None else [None] * len(df)
    if len(pu) != len(df):
        raise ValueError("per_user must have one entry per line of df")
    values: dict[tuple[str, int], dict[int, float]] = {}
    users: dict[tuple[str, int], dict[int, PerUser | None]] = {}
    for (sampler, budget, seed, value), u in zip(df[["sampler", "budget", "seed", metric]].itertuples(index=False,
                                                                                                   name=None), pu):
        key = (str(sampler), int(budget))
        values.setdefault(key, {})[int(seed)] = float(value)
        users.setdefault(key, {})[int(seed)] = u
    records = []
    for sampler, budget in sorted(values):
        if sampler == baseline:
            continue
        base = values.get((baseline, budget), {})
        c = compare_paired(values[(sampler, budget)], base, users[(sampler, budget)], users.get((baseline, budget)),
                           confidence)
        records.append({
            "sampler": sampler, "budget": budget,
            "value": float(np.mean([values[(sampler, budget)][s] for s in c.seeds])) if c.seeds else math.nan,
            "baseline_value": float(np.mean([base[s] for s in c.seeds])) if c.seeds else math.nan,
            "delta": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high, "test": c.test, "n": c.n,
            "seeds": ",".join(map(str, c.seeds)), "p": c.p, "note": c.note})
    out = pd.DataFrame.from_records(records, columns=["sampler", "budget", "value", "baseline_value", "delta",
                                                      "ci_low", "ci_high", "test", "n", "seeds", "p", "note"])
    out["p_holm"] = holm(out["p"].to_numpy(dtype=float)) if len(out) else pd.Series(dtype=float)
    out["significant"] = (out["p_holm"] < alpha).astype(bool)
    out["direction"] = np.where(out["significant"], np.sign(out["delta"].fillna(0.0)), 0).astype(int)
    return out


def mark(direction: int, up: str = "↑", down: str = "↓") -> str:
    """The mark of a cell: ``up`` significantly above the baseline, ``down`` below, else nothing."""
    return up if direction > 0 else down if direction < 0 else ""


def describe_tests(metric: str = "ndcg@10", baseline: str = BASELINE, alpha: float = ALPHA,
                   confidence: float = CONFIDENCE) -> str:
    """One paragraph (plain text) saying what the significance columns mean, for every format."""
    m = metric.upper()
    return (f"Δ = {m} of the sampler − {m} of {baseline} at the same budget, paired by seed (same split and test "
            f"users), mean over the paired seeds. Test \"users\": two-sided paired t-test over users, each user's "
            f"difference averaged over the paired seeds (rows that store per-user values); test \"seeds\": two-sided "
            f"paired t-test over seeds of the row means (per-user values not stored); \"none\": one seed and no "
            f"per-user values. CI: unadjusted {100 * confidence:g} % t interval of Δ. p (Holm): Holm–Bonferroni "
            f"over every tested cell of this table; ↑ / ↓ = significantly above / below {baseline} "
            f"(Holm-adjusted p < {alpha:g}).")
