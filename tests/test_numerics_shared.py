"""The shared numerics in cfbench.numerics, against independent computations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cfbench.numerics import GOLDEN_RATIO_32, fmix32, hash_uniform_bits, ridge_solve, top_k_random_ties
from tests.conftest import x64

MASK = 0xFFFFFFFF


def _fmix32_py(h: int) -> int:
    """MurmurHash3's fmix32 in plain Python integers (reference: smhasher MurmurHash3.cpp)."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK
    return h ^ (h >> 16)


# --- ridge solve -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d, ridge", [(1, 1, 0.5), (6, 3, 1e-3), (25, 40, 2.0)])
def test_ridge_solve_matches_numpy_solve_in_float64(n, d, ridge):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(n, n + 2))
    kernel, targets = a @ a.T, rng.normal(size=(n, d))
    expected = np.linalg.solve(kernel + ridge * np.eye(n), targets)
    with x64():
        alpha = ridge_solve(jnp.asarray(kernel), jnp.asarray(targets), jnp.float64(ridge))
        assert alpha.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(alpha), expected, rtol=1e-10, atol=1e-12)


def test_ridge_solve_gradient_matches_the_implicit_function_formula():
    """∂⟨G, (K + ρI)⁻¹ Y⟩/∂K = −A⁻¹ G αᵀ (A = K + ρI), ∂/∂ρ = −tr(A⁻¹ G αᵀ); differentiated under jit."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5, 5))
    kernel, targets, weights, ridge = a @ a.T, rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), 0.7
    m = kernel + ridge * np.eye(5)
    alpha = np.linalg.solve(m, targets)
    adjoint = np.linalg.solve(m, weights)
    with x64():
        def f(k, r):
            sym = (k + k.T) / 2  # differentiate along symmetric directions, as a kernel varies
            return jnp.sum(jnp.asarray(weights) * ridge_solve(sym, jnp.asarray(targets), r))

        grad_k, grad_r = jax.jit(jax.grad(f, argnums=(0, 1)))(jnp.asarray(kernel), jnp.float64(ridge))
    outer = -adjoint @ alpha.T
    np.testing.assert_allclose(np.asarray(grad_k), (outer + outer.T) / 2, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(float(grad_r), np.trace(outer), rtol=1e-8)


def test_ridge_solve_is_the_same_inside_and_outside_jit():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(8, 8)).astype(np.float32)
    kernel, targets = jnp.asarray(a @ a.T), jnp.asarray(rng.normal(size=(8, 3)).astype(np.float32))
    eager = ridge_solve(kernel, targets, jnp.float32(0.3))
    jitted = jax.jit(ridge_solve)(kernel, targets, jnp.float32(0.3))
    assert eager.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-5, atol=1e-6)


# --- counter-based hash noise ------------------------------------------------------------------------------


def test_fmix32_matches_the_reference_finaliser_and_is_a_bijection_sample():
    rng = np.random.default_rng(0)
    xs = np.concatenate([[0, 1, 2, MASK, 0x80000000], rng.integers(0, 2**32, 2000, dtype=np.uint64)])
    got = np.asarray(fmix32(jnp.asarray(xs.astype(np.uint32))))
    assert got.dtype == np.uint32
    assert got.tolist() == [_fmix32_py(int(x)) for x in xs]
    assert _fmix32_py(0) == 0 and _fmix32_py(1) == 0x514E28B7  # smhasher's finaliser on 0 and 1
    distinct_in = np.unique(xs).size
    assert np.unique(got).size == distinct_in  # no collisions on distinct inputs


@pytest.mark.parametrize("seed, shape", [(0, (7,)), (12345, (3, 4)), (MASK, (2, 3, 5))])
def test_hash_uniform_bits_is_fmix32_of_a_weyl_sequence(seed, shape):
    got = np.asarray(hash_uniform_bits(jnp.uint32(seed), shape))
    n = int(np.prod(shape))
    expected = [_fmix32_py((i * GOLDEN_RATIO_32 + seed) & MASK) for i in range(n)]
    assert got.shape == shape and got.dtype == np.uint32
    assert got.ravel().tolist() == expected


def test_hash_uniform_bits_is_deterministic_distinct_and_uniform():
    a = np.asarray(hash_uniform_bits(jnp.uint32(7), (100_000,)))
    jitted = jax.jit(hash_uniform_bits, static_argnums=1)
    np.testing.assert_array_equal(a, np.asarray(jitted(jnp.uint32(7), (100_000,))))
    b = np.asarray(hash_uniform_bits(jnp.uint32(8), (100_000,)))
    assert np.unique(a).size == a.size  # distinct positions, distinct bits
    assert np.mean(a == b) < 1e-3  # another seed, another stream
    u = a / 2.0**32
    counts = np.bincount((u * 64).astype(int), minlength=64)
    chi2 = np.sum((counts - a.size / 64) ** 2 / (a.size / 64))
    assert chi2 < 120  # 63 degrees of freedom: P(χ² > 120) < 10⁻⁵
    bits = (a[:, None] >> np.arange(32, dtype=np.uint32)) & 1
    np.testing.assert_allclose(bits.mean(axis=0), 0.5, atol=0.01)  # every bit fair


# --- top-k with random ties --------------------------------------------------------------------------------


def _top_k_py(scores, k, ties):
    return sorted(range(len(scores)), key=lambda i: (-scores[i], ties[i]))[:k]


@pytest.mark.parametrize("seed", range(5))
def test_top_k_orders_by_score_then_by_the_given_random_keys(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, 60).astype(float)  # many ties
    ties = rng.random(60)
    for k in (0, 1, 10, 60, 100):
        got = top_k_random_ties(scores, k, ties)
        assert got.tolist() == _top_k_py(scores.tolist(), k, ties.tolist())


def test_top_k_ties_follow_the_keys_not_the_position():
    scores = np.array([1, 5, 5, 5, 2])
    assert top_k_random_ties(scores, 3, np.array([0.0, 0.9, 0.1, 0.5, 0.0])).tolist() == [2, 3, 1]
    assert top_k_random_ties(scores, 3, np.array([0.0, 0.1, 0.5, 0.9, 0.0])).tolist() == [1, 2, 3]
    assert top_k_random_ties(np.array([3, 1, 2]), 2, np.zeros(3)).tolist() == [0, 2]  # integer scores


def test_top_k_with_uniform_keys_picks_each_tied_index_equally_often():
    scores = np.array([9.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    rng = np.random.default_rng(0)
    picks = np.zeros(6, int)
    for _ in range(4000):
        picks[top_k_random_ties(scores, 2, rng.random(6))] += 1
    assert picks[0] == 4000 and picks[5] == 0
    np.testing.assert_allclose(picks[1:5] / 4000, 0.25, atol=0.03)
