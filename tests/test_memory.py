"""The memory planner (cfbench/memory.py): limits, the cost model, planning decisions and peak measurement."""

from __future__ import annotations

import dataclasses
import gc
import json
import time

import jax
import numpy as np
import pytest
import scipy.sparse as sp

from cfbench import memory
from cfbench.evaluation import evaluate, evaluation_task, select_lambda
from cfbench.identity import NEUTRAL_PARAMS, is_neutral
from cfbench.memory import (
    ACCELERATOR_SLACK,
    ENV_LIMIT,
    GATHER_PROGRAM_BYTES,
    RUNTIME_OVERHEAD_BYTES,
    Footprint,
    MemoryAware,
    PeakMemory,
    Term,
    UnitShape,
    ease_footprint,
    infinite_ae_footprint,
    memory_limit,
    model_footprint,
    parse_bytes,
    plan_model,
    plan_unit,
    sampler_footprint,
    sparse_support_term,
    support_rows_bound,
)
from cfbench.models import EASE, InfiniteAE
from cfbench.plugins import available_samplers, load_sampler
from cfbench.sampling import Sampler, SelectionData
from cfbench.splits import Split, freeze
from cfbench.subsets import UserSubset

MiB, GiB = 1 << 20, 1 << 30
CPU_OVERHEAD = RUNTIME_OVERHEAD_BYTES["cpu"]
NETFLIX = UnitShape(n_users=480_189, n_items=17_770, nnz=100_480_507, budget=480_189)


# ------------------------------------------------------------------------------------------------ limits


@pytest.mark.parametrize("text, expected", [
    ("512MiB", 512 * MiB), ("2GiB", 2 * GiB), ("1.5e9", 1_500_000_000), ("800MB", 800_000_000),
    (" 4G ", 4 * GiB), ("1024", 1024), ("1.5 GiB", 3 * GiB // 2), ("64kib", 64 * 1024), ("2e3KB", 2_000_000),
])
def test_parse_bytes_accepts_sizes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "12XB", "-5MiB", "nan", "inf", "0", "0.1", "5 Mi B", "1e400"])
def test_parse_bytes_refuses_anything_else_in_one_line(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_bytes(text)
    message = str(err.value)
    assert ENV_LIMIT in message and "\n" not in message and repr(text) in message


def test_declared_limit_wins_over_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LIMIT, "512MiB")
    assert memory_limit() == memory_limit("cpu") == 512 * MiB
    monkeypatch.setenv(ENV_LIMIT, "lots")
    with pytest.raises(ValueError, match=ENV_LIMIT):
        memory_limit()


def test_cpu_limit_is_a_fraction_of_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_LIMIT, raising=False)
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 10 * GiB)
    assert memory_limit("cpu") == int(10 * GiB * memory.SAFETY_FRACTION)
    monkeypatch.undo()
    monkeypatch.delenv(ENV_LIMIT, raising=False)
    assert 0 < memory_limit() <= memory.host_available_bytes()


# ------------------------------------------------------------------------------------------------ cost model


def test_infinite_ae_terms_for_a_tiny_shape() -> None:
    """n = 100 support users, d = 50 items, float32: every term by hand."""
    fp = infinite_ae_footprint(100, 50, 100, batch_size=64, positives=30, mean_row=5.0)
    nd, nn = 100 * 50 * 4, 100 * 100 * 4  # 20,000 and 40,000 bytes
    assert fp.phases["λ search: densify"] == 2 * nd  # float32 host copy + device copy
    assert fp.phases["λ search: kernel"] == nd + 100 * 4 + 2 * nn  # X, norms, kernel + its Gram temporary
    # all six λ fit in one scoring group (6 × 20 kB ≪ 1 GiB): at the last fit X, K, six α and the solve
    assert fp.phases["λ search: fit"] == nd + nn + 6 * nd + (nn + nn + nd)
    assert {t.name: t.nbytes for t in fp.terms["λ search: fit"]} == {
        "dense support": nd, "kernel": nn, "α per λ kept": 6 * nd, "K + ρI": nn, "Cholesky factor": nn,
        "solve intermediate": nd}
    # at this size the 256-row evaluation chunks outweigh the model: the peak is the validation pass
    assert fp.phase == "λ search: evaluation" and fp.peak_bytes == max(fp.phases.values())
    assert sum(fp.breakdown.values()) == fp.peak_bytes
    assert fp.shapes["kernel"] == "100×100 float32" and fp.shapes["α per λ kept"] == "100×50 float32 ×6"
    # refit: the first timed fit kept (X and α; the λ-search winner is dropped), a new X, K, α and the solve
    assert fp.phases["refit: solve"] == 2 * nd + nd + nn + nd + (2 * nn + nd)
    c = 256 * 50  # one score chunk's entries
    evaluation = (c * 4 + c * 4 + 2 * 256 * 100 * 4 + 6 * c * 4 + c * 9 + (64 * 50 * 5 + 64 * 5 * 36)
                  + 64 * 50 * (8 * 6 + 48) + 6 * 2 * (30 * 4 + 100 * (50 * 4 + 6 * 8)))
    assert fp.phases["λ search: evaluation"] == nd + nn + 6 * nd + evaluation
    # a fresh process compiles one AUC gather per evaluated chunk: validation from the λ search on, then test
    fresh = infinite_ae_footprint(100, 50, 100, batch_size=64, positives=30, mean_row=5.0, eval_chunks=1)
    extra = {phase: fresh.phases[phase] - fp.phases[phase] for phase in fp.phases}
    assert extra == {"λ search: densify": 0, "λ search: kernel": 0, "λ search: fit": 0,
                     "λ search: evaluation": GATHER_PROGRAM_BYTES, "refit: densify": GATHER_PROGRAM_BYTES,
                     "refit: kernel": GATHER_PROGRAM_BYTES, "refit: solve": GATHER_PROGRAM_BYTES,
                     "test evaluation": 2 * GATHER_PROGRAM_BYTES}
    host = fresh.part(host=True)  # what stays in host memory on an accelerator
    assert host.phases["test evaluation"] == 2 * GATHER_PROGRAM_BYTES + c * 4 + c * 5 + (
        64 * 50 * 5 + 64 * 5 * 36) + 64 * 50 * (8 + 48) + 2 * (30 * 4 + 100 * (50 * 4 + 6 * 8))
    assert fresh.part(host=False).peak_bytes + host.peak_bytes >= fresh.peak_bytes


def test_ease_terms_for_a_tiny_shape() -> None:
    primal = ease_footprint(100, 50, 100, batch_size=64, positives=30, mean_row=5.0)
    nd, dd = 100 * 50 * 4, 50 * 50 * 4
    assert primal.what.startswith("EASE (primal)")
    assert primal.phases["λ search: Gram"] == nd + dd
    # previous, best and new B, and the solve's 2 d × d
    assert primal.phases["λ search: fit"] == nd + dd + 3 * dd + 2 * dd
    dual = ease_footprint(40, 50, 100, batch_size=64, positives=30, mean_row=5.0)
    nd, nn = 40 * 50 * 4, 40 * 40 * 4
    assert dual.what.startswith("EASE (dual)")
    assert dual.phases["λ search: Gram"] == nd + nn
    assert dual.phases["λ search: fit"] == nd + nn + 3 * (nd + 50 * 4) + 2 * nn + nd


def test_models_declare_their_footprints_without_new_parameters() -> None:
    shape = UnitShape(6040, 3706, 791_718, budget=6040)
    for model, params in ((InfiniteAE(), {"lam", "depth", "w_std", "b_std", "dtype", "block_size", "lambdas",
                                          "exact_interpolation"}),
                          (EASE(), {"lam", "solver", "dtype", "lambdas"})):
        assert isinstance(model, MemoryAware)
        # a row's identity is unchanged: the parameters added since rows were published (`lambdas`, ∞-AE's
        # `exact_interpolation`) are left out of it at their defaults (identity.NEUTRAL_PARAMS)
        added = {k: v for k, v in model.get_params().items() if k in NEUTRAL_PARAMS}
        assert set(model.get_params()) == params and all(is_neutral(k, v) for k, v in added.items()) and added
        assert model_footprint(model, shape) == model.memory_footprint(shape)
    # float64 doubles the kernel
    k32 = InfiniteAE().memory_footprint(shape).breakdown["kernel"]
    assert InfiniteAE(dtype="float64").memory_footprint(shape).breakdown["kernel"] == 2 * k32 == 2 * 6040**2 * 4


def test_every_built_in_sampler_declares_a_footprint() -> None:
    shape = UnitShape(6040, 3706, 791_718, budget=500)
    for name, cls in available_samplers().items():
        sampler = cls()
        fp = sampler.memory_footprint(shape)
        assert isinstance(fp, Footprint) and fp.peak_bytes > 0 and not fp.note, name
        assert sampler.params() == cls().params()
    distill = load_sampler("distill-cf").memory_footprint(shape)
    assert distill.breakdown["dense targets"] == 3 * 2048 * 3706 * 4  # all users, padded to 2048-row blocks
    batched = load_sampler("distill-cf:batch_users=1024").memory_footprint(shape)
    assert batched.peak_bytes < distill.peak_bytes


@pytest.mark.parametrize("model", [InfiniteAE(), EASE()], ids=["infinite-ae", "ease"])
def test_more_users_need_more_memory(model) -> None:
    peaks = [model_footprint(model, UnitShape(n, 17_770, 20 * n, budget=n, n_support=n)).peak_bytes
             for n in (10, 100, 1000, 3000, 10_000, 30_000, 100_000, 480_189)]
    assert peaks == sorted(peaks) and len(set(peaks)) == len(peaks)
    later = dataclasses.replace(NETFLIX, eval_compiled=True)  # same evaluated users: only the support grows
    plans = [plan_unit(load_sampler("random-users"), [model], dataclasses.replace(later, budget=b), limit=1 << 60,
                       device="cpu").predicted_peak_bytes for b in (10, 100, 1000, 10_000, 100_000, 480_189)]
    assert plans == sorted(plans) and len(set(plans)) == len(plans)


def test_describe_names_the_terms_and_shapes() -> None:
    fp = infinite_ae_footprint(6040, 3706, 6040)
    text = fp.describe()
    assert text.startswith("∞-AE on 6040 support users × 3706 items needs ") and "GiB" in text
    assert "kernel 6040×6040 float32 139.2 MiB" in text and "(λ search: fit)" in text
    assert json.loads(json.dumps(fp.record()))["predicted_peak_bytes"] == fp.peak_bytes


# ------------------------------------------------------------------------------------------------ planning


def _wide_shape(batch_size: int = 1024) -> UnitShape:
    """Few support users, many items: the evaluation batch is a large part of the footprint."""
    return UnitShape(n_users=2000, n_items=20_000, nnz=100_000, budget=20, n_support=20, batch_size=batch_size)


def test_planner_shrinks_the_evaluation_batch_to_fit() -> None:
    model = InfiniteAE()
    at = {b: model_footprint(model, _wide_shape(b)).peak_bytes + CPU_OVERHEAD for b in (1, 128, 256, 1024)}
    assert at[1] < at[128] < at[256] < at[1024]
    plan = plan_model(model, _wide_shape(), limit=at[128], device="cpu")
    assert plan.feasible and plan.batch_size == 128 and plan.predicted_peak_bytes == at[128]
    assert plan_model(model, _wide_shape(), limit=at[1024], device="cpu").batch_size == 1024
    assert plan_model(model, _wide_shape(1000), limit=at[1024], device="cpu").batch_size == 1000  # as configured
    record = json.loads(json.dumps(plan.record()))
    assert record["predicted_peak_bytes"] == at[128] and record["limit_bytes"] == at[128]
    assert record["batch_size"] == 128 and record["feasible"] is True
    assert sum(record["breakdown"].values()) == at[128]


def test_planner_declares_infeasible_below_the_fixed_part() -> None:
    model = InfiniteAE()
    fixed = model_footprint(model, _wide_shape(1)).peak_bytes + CPU_OVERHEAD
    plan = plan_model(model, _wide_shape(), limit=fixed - 1, device="cpu")
    assert not plan.feasible and plan.predicted_peak_bytes == fixed
    dominant, _ = plan.footprint.dominant
    assert f"dominant: {dominant}" in plan.reason and "needs" in plan.reason and "\n" not in plan.reason
    assert plan.record()["reason"] == plan.reason


def test_infeasible_reason_says_which_budget_would_fit() -> None:
    shape = UnitShape(n_users=20_000, n_items=3706, nnz=2_000_000, budget=20_000, n_support=20_000)
    plan = plan_model(InfiniteAE(), shape, limit=2 * GiB, device="cpu")
    assert not plan.feasible and "dominant: kernel 20000×20000 float32" in plan.reason
    budget = int(plan.reason.rsplit("budget ≤ ", 1)[1].split()[0].replace(",", ""))
    assert plan_model(InfiniteAE(), dataclasses.replace(shape, n_support=budget), 2 * GiB, "cpu").feasible
    assert not plan_model(InfiniteAE(), dataclasses.replace(shape, n_support=budget + 1), 2 * GiB, "cpu").feasible


@pytest.mark.parametrize("limit", [24 * GiB, 80 * GiB, 141 * GiB, 1 << 40])
def test_full_data_infinite_ae_on_netflix_is_infeasible(limit: int) -> None:
    plan = plan_unit(load_sampler("full"), [InfiniteAE()], NETFLIX, limit=limit, device="cpu")
    assert support_rows_bound(load_sampler("full"), NETFLIX.n_users, NETFLIX.nnz, NETFLIX.budget) == 480_189
    assert not plan.feasible and plan.predicted_peak_bytes >= 0.9e12
    assert plan.models[0].footprint.breakdown["kernel"] == 480_189**2 * 4  # 0.92 TB
    assert "dominant: kernel 480189×480189 float32 859.0 GiB" in plan.reason
    assert "use a sampler with a budget ≤ " in plan.reason  # some smaller support fits
    row = json.loads(json.dumps(plan.record(InfiniteAE())))
    assert row["feasible"] is False and row["predicted_peak_bytes"] >= 0.9e12 and row["limit_bytes"] == limit
    assert row["model"]["breakdown"]["kernel"] == 480_189**2 * 4 and row["reason"] == plan.reason


def test_small_budgets_on_netflix_fit_even_in_a_fresh_process() -> None:
    models = [InfiniteAE(), EASE()]
    first = plan_unit(load_sampler("random-users"), models, dataclasses.replace(NETFLIX, budget=500), limit=20 * GiB,
                      device="cpu")
    # One AUC gather program per power-of-two size class, not one per 256-user chunk (1,876 of them).
    assert first.shape.eval_chunks <= 27 and first.feasible, first.reason
    later = dataclasses.replace(NETFLIX, budget=500, eval_compiled=True)
    plan = plan_unit(load_sampler("random-users"), models, later, limit=20 * GiB, device="cpu")
    assert plan.feasible, plan.reason
    assert plan.predicted_peak_bytes < first.predicted_peak_bytes
    assert plan.shape.support_rows == 500 and [p.model for p in plan.models] == ["infinite-ae", "ease"]
    assert plan.model_plan("ease").batch_size == 1024


# Measured on an H100 (JAX 0.11.2, 2026-11-25): full-data Gowalla, the λ search's device peak of each model.
GOWALLA_FULL = UnitShape(n_users=29_858, n_items=40_981, nnz=780_196, budget=29_858, n_support=29_858)
GOWALLA_FULL_DEVICE_PEAK = {"infinite-ae": 36_502_270_976, "ease": 36_502_643_200}


@pytest.mark.parametrize("model", [InfiniteAE(), EASE()], ids=["infinite-ae", "ease"])
def test_gpu_plans_bound_the_peaks_measured_on_an_h100(model) -> None:
    plan = plan_model(model, GOWALLA_FULL, limit=80 * GiB, device="gpu", host_limit=100 * GiB)
    predicted = plan.footprint.part(host=False).peak_bytes
    measured = GOWALLA_FULL_DEVICE_PEAK[model.name]
    assert plan.feasible and measured <= predicted <= 1.1 * measured
    assert "allocator and solver workspaces (device)" in plan.footprint.part(host=False).breakdown


def test_accelerator_plans_check_device_and_host_memory() -> None:
    shape = UnitShape(n_users=20_000, n_items=3706, nnz=2_000_000, budget=5000, n_support=5000)
    fp = model_footprint(InfiniteAE(), shape)
    arrays = fp.part(host=False).peak_bytes
    device_part = arrays + int(ACCELERATOR_SLACK * arrays) + RUNTIME_OVERHEAD_BYTES["gpu"]
    host_part = fp.part(host=True).peak_bytes + CPU_OVERHEAD
    assert plan_model(InfiniteAE(), shape, limit=device_part, device="gpu", host_limit=host_part).feasible
    tight_device = plan_model(InfiniteAE(), shape, limit=device_part // 2, device="gpu", host_limit=host_part)
    assert not tight_device.feasible and "> device memory limit" in tight_device.reason
    assert not plan_model(InfiniteAE(), shape, limit=device_part - 1, device="gpu", host_limit=host_part).feasible
    tight_host = plan_model(InfiniteAE(), shape, limit=device_part, device="gpu", host_limit=host_part // 2)
    assert not tight_host.feasible and "> host memory limit" in tight_host.reason
    record = tight_host.record()
    assert record["device"] == "gpu" and record["host_limit_bytes"] == host_part // 2


def test_support_rows_bound_follows_the_subset_kind() -> None:
    assert support_rows_bound(load_sampler("random-users"), 1000, 50_000, 20) == 20
    assert support_rows_bound(load_sampler("distill-cf"), 1000, 50_000, 20) == 20
    assert support_rows_bound(load_sampler("random-interactions"), 1000, 50_000, 20) == 1000  # 1,000 interactions
    assert support_rows_bound(load_sampler("random-interactions"), 1000, 50_000, 10) == 500
    assert support_rows_bound(load_sampler("full"), 1000, 50_000, 1000) == 1000


class _Undeclared(Sampler):
    name = "undeclared"
    description = "A plugin without a memory estimate."

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator):
        return UserSubset(np.arange(budget))


class _Broken(_Undeclared):
    name = "broken-estimate"

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        raise RuntimeError("no idea")


class _Declared(_Undeclared):
    name = "declared"

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        return Footprint.from_phases("declared", {"selection": [Term("scores", 8 * shape.n_users)]})


def test_plugins_without_a_working_estimate_get_the_conservative_default() -> None:
    shape = UnitShape(1000, 500, 20_000, budget=50)
    default = sampler_footprint(_Undeclared(), shape)
    assert "conservative default" in default.note and default.peak_bytes >= 4 * 20_000 * 12
    broken = sampler_footprint(_Broken(), shape)
    assert "broken-estimate.memory_footprint failed (RuntimeError: no idea)" in broken.note
    assert broken.peak_bytes == default.peak_bytes
    assert sampler_footprint(_Declared(), shape).peak_bytes == 8000
    assert support_rows_bound(_Undeclared(), 1000, 20_000, 50) == 1000  # unannotated: interactions possible
    plan = plan_unit(_Declared(), [InfiniteAE()], shape, limit=1 << 40, device="cpu")
    assert plan.feasible and plan.record()["selection"]["breakdown"]["scores"] == 8000


# ------------------------------------------------------------------------------------------------ real runs


def _random_split(n_users: int = 300, n_items: int = 400, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    full = (rng.random((n_users, n_items)) < 0.05).astype(np.float32)
    full[:, :3] = 1.0
    part = rng.integers(0, 10, size=full.shape)
    mats = [sp.csr_matrix((full > 0) & cond, dtype=np.float32) for cond in (part < 8, part == 8, part == 9)]
    return freeze(Split("toy", seed, *mats, np.arange(n_users), np.arange(n_items)))


def test_a_fit_under_the_planned_batch_works(monkeypatch: pytest.MonkeyPatch) -> None:
    split = _random_split()
    model = InfiniteAE()
    shape = UnitShape.for_split(split, split.n_users, batch_size=1024, n_support=split.n_users)
    assert (shape.n_users, shape.n_items, shape.nnz, shape.budget) == (300, 400, split.train.nnz, 300)
    evaluated = max(len(evaluation_task(split, "val").users), len(evaluation_task(split, "test").users))
    assert shape.queries == evaluated and shape.positives == max(split.val.nnz, split.test.nnz) and shape.dtype_bytes == 4
    limit = model_footprint(model, dataclasses.replace(shape, batch_size=64)).peak_bytes + CPU_OVERHEAD
    monkeypatch.setenv(ENV_LIMIT, str(limit))
    plan = plan_model(model, shape, device="cpu")
    assert plan.feasible and plan.batch_size == 64 and plan.limit_bytes == limit
    with PeakMemory() as measured:
        chosen = select_lambda(model, split.train, split, batch_size=plan.batch_size)
        fitted = model.clone(lam=chosen.lam).fit(split.train)
        test = evaluate(fitted, evaluation_task(split, "test"), plan.batch_size)
    reference = evaluate(fitted, evaluation_task(split, "test"), 1024)
    assert test.summary() == reference.summary()  # the batch size never changes the metrics
    assert measured.host_peak_bytes >= measured.host_start_bytes


def test_peak_memory_sees_a_200_mb_allocation() -> None:
    size = 200_000_000
    with PeakMemory() as pm:
        block = np.ones(size, dtype=np.uint8)  # touches every page
        time.sleep(0.03)
        del block
    assert 0.9 * size <= pm.host_delta_bytes <= 1.25 * size
    assert pm.host_peak_bytes == pm.host_start_bytes + pm.host_delta_bytes
    assert pm.device_peak_bytes is None  # CPU: device memory is host memory
    assert json.loads(json.dumps(pm.record())) == {"host_peak_bytes": pm.host_peak_bytes,
                                                   "host_delta_bytes": pm.host_delta_bytes,
                                                   "device_peak_bytes": None}
    with PeakMemory() as idle:
        time.sleep(0.02)
    assert idle.host_delta_bytes < 20 * MiB


@pytest.mark.parametrize("model", [InfiniteAE(), EASE(solver="dual")])
def test_the_support_kept_sparse_is_planned_and_bounds_what_is_held(model, small_split) -> None:  # type: ignore[no-untyped-def]
    from cfbench.gram import exact_rows

    lengths = small_split.train.getnnz(axis=1)
    longest_first = np.argsort(-lengths, kind="stable")[:40]  # the worst case a sampler can keep
    shape = UnitShape.for_split(small_split, 40)
    assert shape.max_row == int(lengths.max())
    assert shape.support_nnz == min(small_split.train.nnz, 40 * int(lengths.max()))
    term = sparse_support_term(shape.support_nnz, 40, shape.n_items)
    fp = model.memory_footprint(shape)
    assert fp.phases  # every phase after densifying holds it once per fitted model alive
    for phase, terms in fp.terms.items():
        held = [t for t in terms if t.name == "support kept sparse (host)"]
        assert (held == []) == (phase == "λ search: densify"), phase
        assert all(t.host and t.nbytes >= term.nbytes for t in held)
    rows = exact_rows(small_split.train[longest_first], np.float32)
    assert rows is not None and rows.nbytes <= term.nbytes
    # without the bound (a shape built by hand) the term falls back to all of train, still a bound
    assert UnitShape(100, 50, 700, 10).support_nnz == 700


def test_a_dual_ease_fit_holds_no_more_than_the_planner_counts() -> None:
    # One λ's dual fit adds W (n × d) and the solve's workspace (XXᵀ + λI, its factor, an n × d intermediate):
    # what the planner counts for a new fit. Computing 1/(1 − s) in the same jitted call as W made XLA keep a
    # third n × d buffer (measured: 3.0 n·d·4 bytes at the peak instead of 2.0).
    n, d = 1000, 30000
    x = sp.random(n, d, density=0.002, format="csr", random_state=3, dtype=np.float32)
    x.data[:] = 1.0
    model = EASE(solver="dual")
    prepared = model._prepare(x)
    model._with_solution(*prepared, 1.0)  # compile outside the measured block
    gc.collect()
    time.sleep(0.05)
    with PeakMemory() as pm:
        fitted = model._with_solution(*prepared, 5.0)
        jax.block_until_ready(fitted.dual_w_)
    terms = ease_footprint(n, d, n, solver="dual", grid_size=11).terms["λ search: fit"]
    one_fit = sum(t.nbytes for t in terms if t.name in ("XXᵀ + λI", "Cholesky factor", "solve intermediate"))
    one_fit += n * d * 4  # its W
    assert pm.host_delta_bytes <= one_fit
    assert pm.host_delta_bytes >= n * d * 4  # W itself is there: the measurement sees the fit
