"""distill-cf-fast: S′ re-weighted Gumbel draws and user mini-batches — the estimator, its gradient, the sampler."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import SyntheticUsers, validate_subset
from samplers.distill_cf import (DistillCF, distillation_loss, gumbel_noise, multi_gumbel_sum,
                                 relaxed_multi_hot)
from samplers.distill_cf_fast import DistillCFFast, DistillCFFastConfig
from tests.conftest import toy_split, x64

TINY = {"steps": 3, "eval_every": 3, "samples_per_user": 40, "draws": 4, "lambdas": "1/20"}


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(axis=1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=1, keepdims=True))


def test_weighted_draws_equal_an_independent_numpy_computation():
    """X̃ = min((S/S′) Σ_{s<S′} softmax((Z + G_s)/τ), 1) with the noise G_s of draw s (float64 NumPy)."""
    rng = np.random.default_rng(0)
    logits, key, tau, n_samples, draws = rng.normal(size=(4, 30)), jax.random.key(3), 0.7, 50, 5
    with x64():
        total = np.zeros(logits.shape)
        for s in range(draws):
            seeds = jax.random.bits(jax.random.fold_in(key, s), (2,), jnp.uint32)
            total += np.exp(_log_softmax((logits + np.asarray(gumbel_noise(seeds, logits.shape, jnp.float64))) / tau))
        ours = np.asarray(relaxed_multi_hot(jnp.asarray(logits), key, tau, n_samples, draws))
    np.testing.assert_allclose(ours, np.minimum(total * n_samples / draws, 1.0), rtol=1e-12)
    assert ours.max() == 1.0 and ours.min() < 1.0  # the cap binds somewhere, not everywhere


def test_faithful_estimator_is_unchanged_when_draws_equal_samples():
    logits, key = jnp.asarray(np.random.default_rng(1).normal(size=(3, 20)), jnp.float32), jax.random.key(0)
    faithful = relaxed_multi_hot(logits, key, 5.0, 16)
    np.testing.assert_array_equal(np.asarray(faithful), np.asarray(relaxed_multi_hot(logits, key, 5.0, 16, 16)))
    np.testing.assert_array_equal(np.asarray(faithful), np.asarray(jnp.minimum(multi_gumbel_sum(logits, key, 5.0, 16),
                                                                               1.0)))


def test_weighted_draws_have_the_faithful_expectation_and_s_over_s_prime_times_its_variance():
    """Before the cap, E[(S/S′) Σ_{s<S′} P_s] = E[Σ_{s<S} P_s] = S·E[P]; the variance grows by S/S′.
    Estimated over 400 keys at τ = 5 (where rows are soft), uncapped (the sum itself)."""
    logits = jnp.asarray(np.random.default_rng(2).normal(size=(2, 25)), jnp.float32)
    n_samples, draws, tau = 40, 4, 5.0
    keys = jax.random.split(jax.random.key(9), 400)
    full = np.asarray(jax.vmap(lambda k: multi_gumbel_sum(logits, k, tau, n_samples))(keys), np.float64)
    few = np.asarray(jax.vmap(lambda k: multi_gumbel_sum(logits, k, tau, draws))(keys), np.float64) * n_samples / draws
    mean_full, mean_few = full.mean(axis=0), few.mean(axis=0)
    stderr = np.sqrt(few.var(axis=0) / len(keys) + full.var(axis=0) / len(keys))
    assert np.all(np.abs(mean_few - mean_full) < 4 * stderr + 1e-6)  # same expectation (4 standard errors)
    ratio = few.var(axis=0).sum() / full.var(axis=0).sum()
    assert 7.0 < ratio < 14.0  # S/S′ = 10


def test_loss_gradient_with_weighted_draws_matches_finite_differences():
    rng = np.random.default_rng(3)
    b, d, n_real = 3, 8, 5
    logits = rng.normal(size=(b, d))
    real = (rng.random((n_real, d)) < 0.4).astype(np.float64)
    real[:, 0] = 1.0
    with x64():
        key, blocks = jax.random.key(4), jnp.asarray(real[None])

        def loss(z):
            return distillation_loss(z, key, blocks, jnp.float64(n_real), jnp.float64(0.5), mean_train_length=3.0,
                                     tau=5.0, n_samples=12, cardinality=0.3, draws=3)[0]

        z = jnp.asarray(logits)
        grad = np.asarray(jax.grad(loss)(z))
        f = jax.jit(loss)
        numeric = np.zeros(z.shape)
        for idx in np.ndindex(*z.shape):
            e = jnp.zeros(z.shape, z.dtype).at[idx].set(1e-6)
            numeric[idx] = (f(z + e) - f(z - e)) / 2e-6
    assert np.abs(grad).max() > 1e-4
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-8)


def test_config_defaults_and_errors():
    cfg = DistillCFFastConfig()
    assert (cfg.samples_per_user, cfg.draws, cfg.batch_users) == (200, 20, 1024)
    with pytest.raises(ValueError, match=r"^draws must be in \[1, samples_per_user = 200\], got 300$"):
        DistillCFFastConfig(draws=300)
    with pytest.raises(ValueError, match="draws must be"):
        DistillCFFastConfig(draws=0)
    with pytest.raises(ValueError, match=r"^validation_draws must be in \[0, samples_per_user = 200\]"):
        DistillCFFastConfig(validation_draws=201)


def test_validation_samples_use_all_draws_unless_told(toy_data):
    """The step estimates X̃ from S′ draws; the validation sample (the matrix that is kept) uses all S by default."""
    from samplers.distill_cf_fast import FastDistillation
    logits, key = jnp.asarray(np.random.default_rng(5).normal(size=(4, toy_data.n_items)), jnp.float32), jax.random.key(1)
    for validation_draws, draws in ((0, 40), (4, 4), (10, 10)):
        cfg = DistillCFFastConfig(**{**TINY, "validation_draws": validation_draws})
        run = FastDistillation(toy_data, cfg, 5.0, 1e-3, np.arange(4), 0, (1.0, 0.0))
        np.testing.assert_array_equal(np.asarray(run.sample(logits, key)),
                                      np.asarray(relaxed_multi_hot(logits, key, 5.0, 40, draws)))


@pytest.fixture(scope="module")
def toy_data():
    return SelectionData(toy_split(n_users=30, n_items=150, density=0.1))


def test_budget_determinism_and_mini_batches(toy_data):
    a_sampler = DistillCFFast(**TINY, batch_users=10, tau="1/5")
    a = a_sampler.select(toy_data, 6, np.random.default_rng(11))
    b = DistillCFFast(**TINY, batch_users=10, tau="1/5").select(toy_data, 6, np.random.default_rng(11))
    c = DistillCFFast(**TINY, batch_users=10, tau="1/5").select(toy_data, 6, np.random.default_rng(12))
    assert isinstance(a, SyntheticUsers) and a.matrix.shape == (6, toy_data.n_items)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert not np.array_equal(a.matrix, c.matrix)
    validate_subset(a, toy_data.train, 6, "distill-cf-fast")
    info = a_sampler.diagnostics()
    assert [cand["tau"] for cand in info["candidates"]] == [1.0, 5.0] and info["skipped_steps_total"] == 0
    # a new batch of 10 of the 30 users every step: the run differs from one on all users
    full = DistillCFFast(**TINY, batch_users=0, tau="1/5").select(toy_data, 6, np.random.default_rng(11))
    assert not np.array_equal(a.matrix, full.matrix)


def test_fast_and_faithful_differ_only_in_the_estimator(toy_data):
    """With draws = S and all users per step, distill-cf-fast is distill-cf, bit for bit."""
    same = {**TINY, "draws": TINY["samples_per_user"]}
    fast = DistillCFFast(**same, batch_users=0, tau="5").select(toy_data, 5, np.random.default_rng(3))
    faithful = DistillCF(**{k: v for k, v in same.items() if k != "draws"}, tau="5").select(
        toy_data, 5, np.random.default_rng(3))
    np.testing.assert_array_equal(fast.matrix, faithful.matrix)
    fewer = DistillCFFast(**TINY, batch_users=0, tau="5").select(toy_data, 5, np.random.default_rng(3))
    assert not np.array_equal(fewer.matrix, faithful.matrix)


def test_registered_and_configurable_from_a_spec():
    sampler = load_sampler("distill-cf-fast:draws=10,steps=5")
    assert isinstance(sampler, DistillCFFast) and sampler.config.draws == 10
    assert sampler.spec() == "distill-cf-fast:draws=10,steps=5"
    assert load_sampler("distill-cf").spec() == "distill-cf"  # the faithful sampler's defaults are untouched
    assert "draws" not in load_sampler("distill-cf").params()
