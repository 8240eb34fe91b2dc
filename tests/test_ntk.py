"""The analytic NTK against its closed form and against the empirical NTK of a wide network."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cfbench.ntk import NTKConfig, ntk, ntk_diagonal
from tests.conftest import x64


def _closed_form_depth1(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Θ = (√(qq')/π)(sin θ + (π−θ) cos θ) + Σ₁(π−θ)/π + 0.01 with Σ₁ = 2⟨x,x'⟩/d + 0.01 (reference §2.2)."""
    d = x1.shape[1]
    s = 2 * x1 @ x2.T / d + 0.01
    q1 = 2 * (x1 * x1).sum(1) / d + 0.01
    q2 = 2 * (x2 * x2).sum(1) / d + 0.01
    norm = np.sqrt(np.outer(q1, q2))
    theta = np.arccos(np.clip(s / norm, -1, 1))
    return norm / np.pi * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) + s * (np.pi - theta) / np.pi + 0.01


def _inputs(n: int = 6, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, d)) < 0.4).astype(np.float64)


def test_depth1_matches_the_closed_form():
    x = _inputs()
    with x64():
        k = np.asarray(ntk(jnp.asarray(x), jnp.asarray(x)))
    np.testing.assert_allclose(k, _closed_form_depth1(x, x), rtol=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_diagonal_rule_matches_the_full_kernel(depth):
    x = _inputs(8, 20, seed=depth)
    cfg = NTKConfig(depth=depth)
    with x64():
        full = np.asarray(ntk(jnp.asarray(x), jnp.asarray(x), cfg))
        diag = np.asarray(ntk_diagonal(jnp.asarray((x * x).sum(1)), x.shape[1], cfg))
    np.testing.assert_allclose(np.diag(full), diag, rtol=1e-10)
    np.testing.assert_allclose(full, full.T, rtol=1e-12)
    assert np.linalg.eigvalsh(full).min() > 0


def _empirical_ntk(x: np.ndarray, width: int, depth: int, key: jax.Array, n_draws: int) -> np.ndarray:
    """Mean over weight draws of J(x)J(x)ᵀ for one output of a finite NTK-parameterised net (autodiff)."""
    d = x.shape[1]
    w_std, b_std = math.sqrt(2.0), 0.1

    def init(k):
        keys = jax.random.split(k, 2 * depth + 2)
        dims = [d] + [width] * depth + [1]
        return [(jax.random.normal(keys[2 * i], (dims[i], dims[i + 1]), jnp.float64),
                 jax.random.normal(keys[2 * i + 1], (dims[i + 1],), jnp.float64)) for i in range(depth + 1)]

    def f(params, xi):
        h = xi
        for i, (w, b) in enumerate(params):
            h = w_std * h @ w / math.sqrt(w.shape[0]) + b_std * b
            if i < depth:
                h = jax.nn.relu(h)
        return h[0]

    total = np.zeros((x.shape[0], x.shape[0]))
    for k in jax.random.split(key, n_draws):
        params = init(k)
        jac = jax.vmap(jax.grad(f), in_axes=(None, 0))(params, jnp.asarray(x))
        flat = jnp.concatenate([j.reshape(x.shape[0], -1) for j in jax.tree_util.tree_leaves(jac)], axis=1)
        total += np.asarray(flat @ flat.T)
    return total / n_draws


@pytest.mark.parametrize(("depth", "width", "tolerance"), [(1, 20_000, 0.02), (2, 2_000, 0.06)])
def test_analytic_kernel_matches_a_very_wide_network(depth, width, tolerance):
    """Monte-Carlo check in float64, 8 weight draws: depth 1 at width 20,000 agrees to ~1 %.

    Depth 2 has width² hidden weights, so it runs narrower (memory) with a looser tolerance.
    """
    x = _inputs(5, 16, seed=10 + depth)
    with x64():
        analytic = np.asarray(ntk(jnp.asarray(x), jnp.asarray(x), NTKConfig(depth=depth)))
        empirical = _empirical_ntk(x, width=width, depth=depth, key=jax.random.key(depth), n_draws=8)
    rel = np.abs(empirical - analytic) / np.abs(analytic)
    assert rel.max() < tolerance, f"max relative error {rel.max():.4f}"
    # and it is not trivially close: a wrong bias variance moves it well outside the tolerance
    wrong = np.asarray(ntk(jnp.asarray(x), jnp.asarray(x), NTKConfig(depth=depth, b_std=0.5)))
    assert (np.abs(empirical - wrong) / np.abs(wrong)).max() > 0.05


def test_matches_neural_tangents_when_importable():
    nt = pytest.importorskip("neural_tangents", reason="neural-tangents is an optional oracle (needs jax ≤ 0.5)")
    stax = nt.stax
    x = _inputs(6, 10).astype(np.float32)
    _, _, kernel_fn = stax.serial(stax.Dense(1024, W_std=math.sqrt(2), b_std=0.1, parameterization="ntk"),
                                  stax.Relu(), stax.Dense(1, W_std=math.sqrt(2), b_std=0.1, parameterization="ntk"))
    expected = np.asarray(kernel_fn(x, x, "ntk"))
    np.testing.assert_allclose(np.asarray(ntk(jnp.asarray(x), jnp.asarray(x))), expected, rtol=1e-4)


def test_invalid_depth():
    with pytest.raises(ValueError, match="depth"):
        NTKConfig(depth=0)
