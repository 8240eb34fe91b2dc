"""The Neural Tangent Kernel of an infinitely wide Dense→ReLU→…→Dense network, in jax.numpy.

NTK parameterisation with weight std σ_w and bias std σ_b (neural-tangents' ``stax`` rules):

* input:  Σ₀(x, x') = ⟨x, x'⟩ / d,  Θ₀ = 0
* Dense:  Σ ← σ_w² Σ + σ_b²,          Θ ← Σ + σ_w² Θ
* ReLU:   Σ ← (√(q q') sin θ + (π − θ) Σ) / 2π,   Θ ← Θ (π − θ) / 2π,
          with q = Σ(x, x), q' = Σ(x', x'), cos θ = Σ / √(q q').

``depth`` counts the hidden Dense→ReLU blocks; a final Dense layer follows them. For depth 1,
σ_w² = 2, σ_b² = 0.01 this is Θ = (√(q q')/π)(sin θ + (π − θ) cos θ) + Σ₁ (π − θ)/π + 0.01.

Every function here is a pure map from arrays to arrays; the caller picks the blocking.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from cfbench.devices import precise

__all__ = ["NTKConfig", "ntk", "ntk_diagonal", "ntk_from_gram"]


@dataclasses.dataclass(frozen=True)
class NTKConfig:
    """Architecture of the infinitely wide autoencoder."""

    depth: int = 1
    w_std: float = math.sqrt(2.0)
    b_std: float = 0.1

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"NTK depth must be ≥ 1, got {self.depth}")


def _relu(sigma: jax.Array, q1: jax.Array, q2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """ReLU arc-cosine rule: new covariance and derivative covariance (π − θ)/2π."""
    norm = jnp.sqrt(q1 * q2)
    cos = jnp.clip(sigma / norm, -1.0, 1.0)
    theta = jnp.arccos(cos)
    sin = jnp.sqrt(jnp.maximum(1.0 - cos * cos, 0.0))
    new_sigma = (norm * sin + (jnp.pi - theta) * sigma) / (2.0 * jnp.pi)
    return new_sigma, (jnp.pi - theta) / (2.0 * jnp.pi)


def ntk_from_gram(gram: jax.Array, sq_norms_1: jax.Array, sq_norms_2: jax.Array, n_features: int,
                  config: NTKConfig = NTKConfig()) -> jax.Array:
    """NTK from the linear Gram block ⟨x, x'⟩ and the rows' squared norms.

    ``gram`` is (n1, n2); ``sq_norms_1``/``sq_norms_2`` are ⟨x, x⟩ of the rows (n1,) and columns (n2,).
    """
    w2, b2 = config.w_std**2, config.b_std**2
    sigma = gram / n_features
    q1 = sq_norms_1[:, None] / n_features
    q2 = sq_norms_2[None, :] / n_features
    theta = jnp.zeros_like(sigma)
    for _ in range(config.depth):
        sigma, q1, q2 = w2 * sigma + b2, w2 * q1 + b2, w2 * q2 + b2  # Dense
        theta = sigma + w2 * theta
        sigma, dot = _relu(sigma, q1, q2)  # ReLU
        theta = theta * dot
        q1, q2 = q1 / 2.0, q2 / 2.0  # ReLU keeps half of the variance on the diagonal
    sigma = w2 * sigma + b2  # readout Dense
    return sigma + w2 * theta


def ntk_diagonal(sq_norms: jax.Array, n_features: int, config: NTKConfig = NTKConfig()) -> jax.Array:
    """Θ(x, x) for each row, from ⟨x, x⟩ alone (θ = 0 on the diagonal)."""
    w2, b2 = config.w_std**2, config.b_std**2
    q = sq_norms / n_features
    theta = jnp.zeros_like(q)
    for _ in range(config.depth):
        q = w2 * q + b2
        theta = (q + w2 * theta) / 2.0
        q = q / 2.0
    return w2 * q + b2 + w2 * theta


def ntk(x1: jax.Array, x2: jax.Array, config: NTKConfig = NTKConfig()) -> jax.Array:
    """Θ(x1, x2) for dense row matrices x1 (n1, d) and x2 (n2, d)."""
    with precise():
        gram = x1 @ x2.T
    return ntk_from_gram(gram, jnp.sum(x1 * x1, axis=1), jnp.sum(x2 * x2, axis=1), x1.shape[1], config)
