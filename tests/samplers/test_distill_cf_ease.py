"""distill-cf-ease: EASE's dual form as Distill-CF's inner model — scores, loss gradient, the sampler, the suite."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import samplers.distill_cf_ease as module
from cfbench.models.ease import EASE
from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import SyntheticUsers, validate_subset
from samplers.distill_cf import DistillationDiverged, gumbel_noise
from samplers.distill_cf_ease import (DistillCFEase, DistillCFEaseConfig, ease_distillation_loss, ease_dual_fit,
                                      ease_dual_scores)
from tests.conftest import toy_split, x64

TINY = {"steps": 3, "eval_every": 3, "samples_per_user": 8, "lambdas": "1/20"}


def _finite_differences(f, x: jax.Array, eps: float = 1e-6) -> np.ndarray:
    f = jax.jit(f)
    out = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        e = jnp.zeros(x.shape, x.dtype).at[idx].set(eps)
        out[idx] = (f(x + e) - f(x - e)) / (2 * eps)
    return out


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(axis=1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("lam", [1.0, 20.0, 500.0])
def test_inner_scores_equal_the_ease_model(lam):
    """scores(X_q) = X_q − (X_q − (X_q X_sᵀ)W) diag(1/(1 − s)) is EASE(λ) fitted on a real-valued X_s (float32)."""
    rng = np.random.default_rng(0)
    support = rng.random((6, 40)).astype(np.float32) * (rng.random((6, 40)) < 0.5)
    queries = (rng.random((5, 40)) < 0.3).astype(np.float32)
    w, one_minus_s = ease_dual_fit(jnp.asarray(support), jnp.float32(lam))
    ours = np.asarray(ease_dual_scores(jnp.asarray(queries), jnp.asarray(support), w, one_minus_s))
    model = np.asarray(EASE(lam=lam).fit(support).score(queries))
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, model, rtol=1e-5, atol=1e-5)
    # the documented bound: 1 − s_j ≥ λ / (λ + ‖x_j‖²)
    assert np.all(np.asarray(one_minus_s) >= lam / (lam + (support ** 2).sum(axis=0)) * (1 - 1e-5))


def test_inner_scores_equal_the_primal_closed_form_in_float64():
    """Against B = I − P diag(1/diag P), P = (X_sᵀX_s + λI)⁻¹, in plain NumPy (independent of cfbench's EASE)."""
    rng = np.random.default_rng(1)
    support, queries, lam = rng.random((4, 12)), (rng.random((3, 12)) < 0.4).astype(np.float64), 0.7
    p = np.linalg.inv(support.T @ support + lam * np.eye(12))
    b = np.eye(12) - p / np.diag(p)[None, :]
    assert np.allclose(np.diag(b), 0.0)
    with x64():
        w, one_minus_s = ease_dual_fit(jnp.asarray(support), jnp.float64(lam))
        ours = np.asarray(ease_dual_scores(jnp.asarray(queries), jnp.asarray(support), w, one_minus_s))
    np.testing.assert_allclose(ours, queries @ b, rtol=1e-10, atol=1e-12)


def _loss_inputs(rng: np.random.Generator, b: int, d: int, n_real: int):
    logits = rng.normal(size=(b, d))
    real = (rng.random((n_real, d)) < 0.4).astype(np.float64)
    real[:, 0] = 1.0
    blocks = np.zeros((2, 3, d))  # two blocks of three rows: the last row is zero padding
    blocks.reshape(6, d)[:n_real] = real
    return logits, real, blocks


def test_loss_gradient_matches_finite_differences():
    """End to end: multi-Gumbel sampling → EASE dual solve → multinomial NLL + cardinality, float64."""
    with x64():
        logits, _, blocks = _loss_inputs(np.random.default_rng(2), 3, 7, 5)
        key = jax.random.key(5)

        def loss(z):
            return ease_distillation_loss(z, key, jnp.asarray(blocks), jnp.float64(5.0), jnp.float64(0.5),
                                          mean_train_length=3.0, tau=0.5, n_samples=4, cardinality=0.3)[0]

        grad = np.asarray(jax.grad(loss)(jnp.asarray(logits)))
        assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 1e-3
        np.testing.assert_allclose(grad, _finite_differences(loss, jnp.asarray(logits)), rtol=1e-4, atol=1e-8)


def test_loss_matches_an_independent_numpy_computation():
    """L = −(1/U) Σ_u Σ_i X_ui log softmax(X_u B)_i + c · mean_rows(Σ_i X̃) / (|train| / U), B EASE's primal
    closed form on X̃ = min(Σ_s softmax((Z + G_s)/τ), 1), in float64 NumPy (only the noise G_s from cfbench)."""
    b, d, n_real, tau, n_samples, lam, card_weight = 3, 9, 5, 0.5, 4, 0.3, 0.2
    logits, real, blocks = _loss_inputs(np.random.default_rng(4), b, d, n_real)
    mean_train_length = real.sum() / n_real
    key = jax.random.key(7)
    with x64():
        total = np.zeros((b, d))
        for sample in range(n_samples):
            seeds = jax.random.bits(jax.random.fold_in(key, sample), (2,), jnp.uint32)
            total += np.exp(_log_softmax((logits + np.asarray(gumbel_noise(seeds, (b, d), jnp.float64))) / tau))
        xs = np.minimum(total, 1.0)
        p = np.linalg.inv(xs.T @ xs + lam * np.eye(d))
        nll = -np.sum(real * _log_softmax(real @ (np.eye(d) - p / np.diag(p)[None, :]))) / n_real
        cardinality = xs.sum(axis=1).mean() / mean_train_length
        value, parts = ease_distillation_loss(jnp.asarray(logits), key, jnp.asarray(blocks), jnp.float64(n_real),
                                              jnp.float64(lam), mean_train_length=mean_train_length, tau=tau,
                                              n_samples=n_samples, cardinality=card_weight)
    assert float(parts.nll) == pytest.approx(nll, rel=1e-9)
    assert float(parts.cardinality) == pytest.approx(cardinality, rel=1e-12)
    assert float(value) == pytest.approx(nll + card_weight * cardinality, rel=1e-9)


@pytest.fixture(scope="module")
def toy_data():
    return SelectionData(toy_split(n_users=30, n_items=150, density=0.1))


def test_budget_determinism_output_and_recorded_selection(toy_data):
    a_sampler = DistillCFEase(**TINY, tau="0.5/5")
    a = a_sampler.select(toy_data, 7, np.random.default_rng(11))
    b = DistillCFEase(**TINY, tau="0.5/5").select(toy_data, 7, np.random.default_rng(11))
    c = DistillCFEase(**TINY, tau="0.5/5").select(toy_data, 7, np.random.default_rng(12))
    assert isinstance(a, SyntheticUsers) and a.matrix.shape == (7, toy_data.n_items) and a.matrix.dtype == np.float32
    np.testing.assert_array_equal(a.matrix, b.matrix)  # bit-exact for a seed
    assert not np.array_equal(a.matrix, c.matrix)
    assert np.all(np.isfinite(a.matrix)) and a.matrix.min() >= 0.0 and a.matrix.max() <= 1.0
    validate_subset(a, toy_data.train, 7, "distill-cf-ease")
    info = json.loads(json.dumps(a_sampler.diagnostics()))
    assert {"tau", "cardinality", "best_step", "val_hr@100", "lambda", "steps_run", "skipped_steps",
            "skipped_steps_total", "trace", "candidates"} <= set(info)
    assert info["lambda"] in (1.0, 20.0) and [c["tau"] for c in info["candidates"]] == [0.5, 5.0]
    assert [t["step"] for t in info["trace"]] == [0, 3] and info["skipped_steps_total"] == 0
    big = DistillCFEase(**TINY, tau="5").select(toy_data, 100, np.random.default_rng(0))  # budget above the users
    assert big.matrix.shape == (toy_data.n_users, toy_data.n_items)


def test_lambda_is_chosen_on_validation_from_eases_grid(toy_data, monkeypatch):
    seen = []
    real = module._validate_ease
    monkeypatch.setattr(module, "_validate_ease", lambda xs, split, grid: seen.append(grid) or real(xs, split, grid))
    sampler = DistillCFEase(**{**TINY, "lambdas": DistillCFEaseConfig().lambdas}, tau="5")
    sampler.select(toy_data, 5, np.random.default_rng(0))
    assert seen and all(grid == EASE.lambda_grid for grid in seen)  # initial users and every validation
    assert sampler.result_.best_lambda in EASE.lambda_grid


def test_a_loss_below_the_one_minus_s_floor_is_skipped_and_then_a_clear_error(toy_data, monkeypatch):
    monkeypatch.setattr(module, "one_minus_s_floor", lambda lam, budget: 2.0)  # 1 − s ≤ 1: every step unsafe
    module._make_ease_step.cache_clear()
    try:
        sampler = DistillCFEase(**{**TINY, "steps": 20, "eval_every": 10}, tau="5")
        with pytest.raises(DistillationDiverged) as err:
            sampler.select(toy_data, 4, np.random.default_rng(0))
    finally:
        module._make_ease_step.cache_clear()
    message = str(err.value)
    assert message.startswith("distill-cf-ease (b=4") and "1 − s" in message and "\n" not in message
    assert sampler.diagnostics()["skipped_steps"] == 5


def test_registered_and_configurable_from_a_spec():
    sampler = load_sampler("distill-cf-ease:steps=5,tau=5")
    assert isinstance(sampler, DistillCFEase) and sampler.config.steps == 5
    assert sampler.spec() == "distill-cf-ease:steps=5,tau=5"
    assert DistillCFEaseConfig().lambda_grid == EASE.lambda_grid
    assert load_sampler("distill-cf").spec() == "distill-cf"  # distill-cf's own defaults are untouched


def test_suite_on_ml_latest_small_gives_ok_rows_for_both_models(tmp_path):
    from cfbench.harness import SuiteConfig, run_suite
    from cfbench.results import load_rows
    spec = "distill-cf-ease:eval_every=5,samples_per_user=20,steps=5,tau=5"  # canonical (sorted)
    run_suite(SuiteConfig(dataset="ml-latest-small", results_dir=tmp_path, samplers=(spec,),
                          models=("infinite-ae", "ease"), budgets=(10,), seeds=(0,)), progress=False)
    rows = load_rows(tmp_path)
    assert sorted(r["model"] for r in rows) == ["ease", "infinite-ae"]
    for row in rows:
        assert row["status"] == "ok", row.get("error")
        assert row["sampler_spec"] == spec and row["sampler_version"] == DistillCFEase.version
        assert row["budget"] == 10 and row["selection"]["steps_run"] == 5
        assert [t["step"] for t in row["selection"]["trace"]] == [0, 5]
        assert 0.0 < row["metrics"]["test"]["ndcg@10"] <= 100.0  # metrics are ×100
