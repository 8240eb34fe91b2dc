"""Paired tests against random users, Holm's correction, per-user values stored in rows."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from cfbench.peruser import (ENCODING, PerUser, encode_per_user, per_user_metric, read_per_user,
                             read_per_user_checked, users_hash)
from cfbench.results import write_row
from cfbench.significance import baseline_table, compare_paired, holm, mark, paired_t

from tests.test_reports import make_row


# ------------------------------------------------------------------------------------------------ Holm


def test_holm_on_a_hand_worked_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_skips_nan_caps_at_one_and_keeps_order():
    out = holm([math.nan, 0.02, 0.01, math.nan])  # m = 2: 0.01·2 = 0.02, 0.02·1 → max 0.02
    assert math.isnan(out[0]) and math.isnan(out[3])
    np.testing.assert_allclose(out[1:3], [0.02, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    assert holm([]).size == 0
    np.testing.assert_allclose(holm([0.3]), [0.3])


def test_holm_rejects_exactly_what_the_step_down_procedure_rejects():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.uniform(0, 0.1, size=rng.integers(1, 12)) ** rng.uniform(0.5, 3)
        alpha = 0.05
        order = np.argsort(p, kind="stable")
        rejected = np.zeros(p.size, bool)
        for i, j in enumerate(order):  # reject p_(i) while p_(i) ≤ α / (m − i), stop at the first failure
            if p[j] > alpha / (p.size - i):
                break
            rejected[j] = True
        assert ((holm(p) <= alpha) == rejected).all()


def test_holm_matches_statsmodels_when_available():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(1).uniform(size=20) ** 3
    np.testing.assert_allclose(holm(p), multitest.multipletests(p, method="holm")[1])


# ------------------------------------------------------------------------------------------------ t-test


def test_paired_t_on_a_hand_worked_example():
    # d = 1, 2, 3: mean 2, sd 1, se 1/√3, t = 2√3, 2 df; for 2 df, P(|T| > t) = 1 − t/√(2 + t²) = 1 − √(12/14)
    res = paired_t([1.0, 2.0, 3.0])
    assert res.n == 3 and res.mean == 2.0
    assert res.statistic == pytest.approx(2 * math.sqrt(3))
    assert res.p == pytest.approx(1 - math.sqrt(12 / 14), rel=1e-12)
    half = 4.302652729911275 / math.sqrt(3)  # t_{0.975, 2} · se
    assert (res.ci_low, res.ci_high) == (pytest.approx(2 - half), pytest.approx(2 + half))


def test_paired_t_equals_scipy_ttest_rel():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=50), rng.normal(0.3, size=50)
    ours = paired_t(a - b)
    ref = scipy.stats.ttest_rel(a, b)
    ci = ref.confidence_interval(0.95)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert (ours.ci_low, ours.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_paired_t_degenerate_inputs():
    res = paired_t([0.5, 0.5, 0.5])  # zero variance: the test is undefined, not "infinitely significant"
    assert math.isnan(res.p) and res.ci_low == res.ci_high == 0.5
    with pytest.raises(ValueError):
        paired_t([1.0])
    with pytest.raises(ValueError):
        paired_t([1.0, math.nan])


# ------------------------------------------------------------------------------------------------ one cell


def _pu(values, users=None) -> PerUser:
    values = np.asarray(values, dtype=float)
    return PerUser(values, users_hash(np.arange(values.size) if users is None else users))


def test_compare_paired_over_seeds_without_per_user_values():
    c = compare_paired({0: 12.0, 1: 13.0, 2: 15.0}, {0: 11.0, 1: 11.0, 2: 12.0, 3: 99.0})
    assert c.test == "seeds" and c.seeds == (0, 1, 2) and c.n == 3  # seed 3 has no pair
    assert c.delta == pytest.approx(2.0)  # differences 1, 2, 3: the hand example above
    assert c.p == pytest.approx(1 - math.sqrt(12 / 14))
    ref = scipy.stats.ttest_rel([12.0, 13.0, 15.0], [11.0, 11.0, 12.0])
    assert c.p == pytest.approx(ref.pvalue)


def test_compare_paired_over_users_averages_each_users_difference_over_seeds():
    rng = np.random.default_rng(3)
    n = 200
    a = {s: rng.uniform(0, 100, n) for s in (0, 1)}
    b = {s: np.clip(a[s] - rng.normal(1.0, 5.0, n), 0, 100) for s in (0, 1)}
    c = compare_paired({s: a[s].mean() for s in a}, {s: b[s].mean() for s in b},
                       {s: _pu(a[s]) for s in a}, {s: _pu(b[s]) for s in b})
    assert c.test == "users" and c.n == n and c.seeds == (0, 1)
    ref = scipy.stats.ttest_rel((a[0] + a[1]) / 2, (b[0] + b[1]) / 2)
    assert c.p == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval()
    assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert c.delta == pytest.approx(np.mean([(a[s] - b[s]).mean() for s in (0, 1)]))
    # one seed with per-user values is enough for the user test
    one = compare_paired({0: a[0].mean()}, {0: b[0].mean()}, {0: _pu(a[0])}, {0: _pu(b[0])})
    assert one.test == "users" and one.p == pytest.approx(scipy.stats.ttest_rel(a[0], b[0]).pvalue)


def test_compare_paired_falls_back_and_says_why():
    vals = {0: 10.0, 1: 12.0, 2: 11.0}
    base = {0: 9.0, 1: 9.5, 2: 9.0}
    partial = compare_paired(vals, base, {0: _pu([1.0, 2.0])}, {0: _pu([1.0, 1.0])})
    assert partial.test == "seeds" and "missing" in partial.note
    other = compare_paired(vals, base, {s: _pu([1.0, 2.0, 3.0]) for s in vals},
                           {s: _pu([1.0, 2.0, 3.0], users=[0, 1, 5]) for s in vals})
    assert other.test == "seeds" and "different users" in other.note
    single = compare_paired({0: 10.0}, {0: 9.0})
    assert single.test == "none" and single.delta == 1.0 and math.isnan(single.p) and "one seed" in single.note
    none = compare_paired({0: 10.0}, {})
    assert none.test == "none" and math.isnan(none.delta) and "no random-users row" in none.note


def test_baseline_table_corrects_over_the_table_and_marks_direction():
    rows = []
    for seed, (good, bad, base) in enumerate([(20.0, 5.0, 10.0), (21.0, 5.5, 10.2), (22.0, 5.2, 10.1)]):
        rows += [("good", 10, seed, good), ("bad", 10, seed, bad), ("random-users", 10, seed, base),
                 ("noisy", 10, seed, base + (-1) ** seed * 3), ("lonely", 20, seed, 1.0)]
    df = pd.DataFrame(rows, columns=["sampler", "budget", "seed", "ndcg@10"])
    t = baseline_table(df).set_index("sampler")
    assert set(t.index) == {"good", "bad", "noisy", "lonely"}  # never the baseline against itself
    assert t.loc["lonely", "test"] == "none" and not t.loc["lonely", "significant"]
    tested = t[t["test"] == "seeds"]
    np.testing.assert_allclose(tested["p_holm"], holm(tested["p"].to_numpy()))
    assert t.loc["good", "delta"] == pytest.approx(np.mean([10.0, 10.8, 11.9]))
    assert t.loc["good", "value"] == pytest.approx(21.0) and t.loc["good", "baseline_value"] == pytest.approx(10.1)
    assert t.loc["good", "direction"] == 1 and t.loc["bad", "direction"] == -1
    assert t.loc["noisy", "direction"] == 0 and not t.loc["noisy", "significant"]
    assert mark(1) == "↑" and mark(-1) == "↓" and mark(0) == ""


# ------------------------------------------------------------------------------------------------ rows


@dataclasses.dataclass
class _Result:  # the fields of cfbench.evaluation.EvaluationResult that encode_per_user reads
    phase: str
    users: np.ndarray
    per_user: dict


def _row_with_per_user(values: np.ndarray, users: np.ndarray | None = None, **kw) -> dict:
    users = np.arange(values.size) if users is None else users
    row = make_row(**kw)
    row["metrics"]["test"]["ndcg@10"] = row["metrics"]["test"]["hr@10"] = float(100 * values.mean())
    row["per_user"] = {"test": encode_per_user(_Result("test", users, {"ndcg@10": values, "hr@10": values}),
                                               metrics=("ndcg@10", "hr@10"))}
    return row


def test_per_user_values_round_trip_through_a_row_file(tmp_path):
    values = np.random.default_rng(4).uniform(size=6040)
    values[::3] = 0.0
    row = _row_with_per_user(values)
    block = row["per_user"]["test"]
    assert block["encoding"] == ENCODING and block["users"] == 6040 and len(block["users_hash"]) == 32
    assert len(block["metrics"]["ndcg@10"]) < 4 * 6040 * 4 / 3 + 8  # ≤ base64 of raw float32
    path = tmp_path / "row.json"
    write_row(path, row)
    got = per_user_metric(path)
    np.testing.assert_array_equal(got, 100 * values.astype(np.float32).astype(np.float64))
    assert got.dtype == np.float64
    assert read_per_user(path).users_hash == users_hash(np.arange(6040))
    assert per_user_metric(path, "hr@10") is not None and per_user_metric(path, "psp@10") is None


def test_rows_without_or_with_damaged_per_user_values_give_none(tmp_path):
    path = tmp_path / "plain.json"
    write_row(path, make_row())
    assert per_user_metric(path) is None and read_per_user_checked(path) == (None, None)
    assert per_user_metric(tmp_path / "missing.json") is None
    good = _row_with_per_user(np.array([0.1, 0.2, 0.3]))
    damaged = {
        "not base64": ("metrics", "ndcg@10", "***"),
        "wrong count": ("users", None, 4),
        "other encoding": ("encoding", None, "npy"),
    }
    for name, (key, sub, value) in damaged.items():
        row = {**good, "per_user": {"test": {**good["per_user"]["test"]}}}
        block = row["per_user"]["test"]
        if sub is None:
            block[key] = value
        else:
            block[key] = {**block[key], sub: value}
        got, reason = read_per_user_checked(row)
        assert got is None and reason, name
    inconsistent = {**good, "metrics": {**good["metrics"], "test": {**good["metrics"]["test"], "ndcg@10": 50.0}}}
    got, reason = read_per_user_checked(inconsistent)
    assert got is None and "averages" in reason
    assert read_per_user_checked({**good, "per_user": "junk"})[0] is None


def test_encode_per_user_refuses_misaligned_arrays():
    with pytest.raises(ValueError):
        encode_per_user(_Result("test", np.arange(3), {"ndcg@10": np.zeros(4)}))


def test_encode_per_user_from_a_real_evaluation():
    """What the harness writes (``row["per_user"] = {"test": encode_per_user(test)}``) reads back exactly."""
    from cfbench.evaluation import evaluate, evaluation_task
    from cfbench.models.ease import EASE
    from tests.conftest import toy_split

    split = toy_split()
    result = evaluate(EASE(lam=100.0).fit(split.train), evaluation_task(split, "test"))
    row = make_row()
    row["metrics"]["test"] = result.summary()
    row["per_user"] = {"test": encode_per_user(result)}
    got = read_per_user(row)
    assert got.n == len(result.users) and got.users_hash == users_hash(result.users)
    np.testing.assert_allclose(got.values, 100 * result.per_user["ndcg@10"], rtol=1e-6, atol=1e-5)
    assert got.values.mean() == pytest.approx(row["metrics"]["test"]["ndcg@10"], abs=1e-4)
