"""The memory planner inside a suite: infeasible models are recorded, not attempted, and re-planned
when more memory is available."""

from __future__ import annotations

import json

import pytest

from cfbench.harness import SuiteConfig, run_suite

MiB = 2**20


def _rows(summary):
    return {p.name: json.loads(p.read_text()) for p in summary}


def test_units_over_the_declared_limit_are_infeasible_rows(tmp_path):
    # Seed 7: a split no other test evaluates in this process (what is compiled already counts in the plan).
    suite = dict(dataset="ml-latest-small", samplers=("full", "random-users"), budgets=(10,), seeds=(7,),
                 results_dir=tmp_path)
    small = run_suite(SuiteConfig(**suite, memory_limit=450 * MiB), progress=False)
    rows = _rows(small)
    # Full-data ∞-AE does not fit (an infeasible row, not a failure); full-data EASE fits once its
    # evaluation batch is lowered (it keeps one fitted 9,724² B through the test, not the λ-search winner too).
    assert small.ok and len(small.infeasible) == 1
    for name, row in rows.items():
        plan = row["memory"]["plan"]
        if name.startswith("full__ease"):
            assert row["status"] == "ok" and plan["feasible"] and plan["predicted_peak_bytes"] <= 450 * MiB
            assert plan["batch_size"] < 1024
        elif name.startswith("full"):
            assert row["status"] == "infeasible" and row["error"]["kind"] == "infeasible"
            assert plan["predicted_peak_bytes"] > plan["limit_bytes"] == 450 * MiB
            assert "needs" in row["error"]["message"] and "limit" in row["error"]["message"]
            assert "metrics" not in row
        else:
            assert row["status"] == "ok" and plan["feasible"] and plan["predicted_peak_bytes"] <= 450 * MiB
            measured = row["memory"]["measured"]
            assert set(measured) == {"select", "tune", "fit", "evaluate"}
            assert measured["tune"]["host_peak_bytes"] > 0
    # Same limit: nothing to do (infeasible rows are results, not failures to retry).
    again = run_suite(SuiteConfig(**suite, memory_limit=450 * MiB), progress=False)
    assert again.computed == 0 and again.reused == 4
    # More memory: the infeasible units are planned again and now computed.
    more = run_suite(SuiteConfig(**suite, memory_limit=4096 * MiB), progress=False)
    assert more.computed == 1 and not more.infeasible
    assert all(r["status"] == "ok" for r in _rows(more).values())


def test_a_tight_limit_lowers_the_evaluation_batch_not_the_results(tmp_path):
    suite = dict(dataset="ml-latest-small", samplers=("random-users",), budgets=(10,), seeds=(8,))
    roomy = _rows(run_suite(SuiteConfig(**suite, results_dir=tmp_path / "roomy"), progress=False))
    tight = _rows(run_suite(SuiteConfig(**suite, results_dir=tmp_path / "tight", memory_limit=365 * MiB),
                            progress=False))
    for name, row in tight.items():
        assert row["status"] == "ok" and row["memory"]["plan"]["batch_size"] < 1024
        assert roomy[name]["memory"]["plan"]["batch_size"] == 1024
        assert row["lambda"] == roomy[name]["lambda"]
        for metric, value in row["metrics"]["test"].items():
            assert value == pytest.approx(roomy[name]["metrics"]["test"][metric], rel=1e-5, abs=1e-9), metric
