"""The memory planner inside a suite: infeasible models are recorded, not attempted, and re-planned
when more memory is available."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cfbench.harness import SuiteConfig, run_suite
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import InteractionSubset

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


def test_each_infeasible_row_gives_its_own_models_reason(tmp_path):
    """Both models infeasible before selection: each row says why *its* model does not fit, not the unit's
    joined reasons (an EASE row led by ∞-AE's numbers would mislead)."""
    rows = _rows(run_suite(SuiteConfig(dataset="ml-latest-small", samplers=("full",), budgets=(10,), seeds=(7,),
                                       results_dir=tmp_path, memory_limit=200 * MiB), progress=False))
    messages = {row["model"]: row["error"]["message"] for row in rows.values()}
    assert {row["status"] for row in rows.values()} == {"infeasible"} and set(messages) == {"infinite-ae", "ease"}
    assert messages["infinite-ae"].startswith("∞-AE") and "EASE" not in messages["infinite-ae"]
    assert messages["ease"].startswith("EASE") and "∞-AE" not in messages["ease"]
    for message in messages.values():
        assert "needs" in message and "> limit 200.0 MiB" in message


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


class FewUsersInteractions(Sampler):
    """The budget's share of train interactions, taken in row order: all of them from the first few users,
    a support far below what the planner can bound before selection (one row per kept interaction)."""

    name = "few-users-interactions"
    description = "test: interactions of a few users"

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> InteractionSubset:
        return InteractionSubset(np.arange(data.train.nnz) < data.interaction_budget(budget))


def test_an_interaction_sampler_is_planned_on_its_real_support_not_on_the_bound(tmp_path):
    """At 450 MiB full-data ∞-AE does not fit (the test above); before selecting, an interaction sampler's
    support is bounded by all 610 users, so the bound alone would call ∞-AE infeasible. The unit selects,
    and the models are planned (and run) on the few real support rows."""
    from cfbench.memory import UnitShape, plan_unit, support_rows_bound
    from cfbench.plugins import load_model
    from cfbench.splits import reference_split
    from cfbench.datasets import load_dataset

    sampler = FewUsersInteractions()
    split = reference_split(load_dataset("ml-latest-small"), 9)
    shape = UnitShape.for_split(split, 10)
    assert support_rows_bound(sampler, shape.n_users, shape.nnz, 10) == shape.n_users  # the bound: every user
    bound = plan_unit(sampler, [load_model("infinite-ae")], shape, limit=450 * MiB, tasks_built=False)
    assert not bound.models[0].feasible  # on the bound it would be recorded infeasible without trying
    summary = run_suite(SuiteConfig(dataset="ml-latest-small", samplers=(f"{__name__}:FewUsersInteractions",),
                                    models=("infinite-ae",), budgets=(10,), seeds=(9,), results_dir=tmp_path,
                                    memory_limit=450 * MiB), progress=False)
    (row,) = _rows(summary).values()
    assert row["status"] == "ok" and not summary.infeasible, row.get("error")
    assert row["subset"]["n_users"] < 20 and row["memory"]["plan"]["feasible"]
