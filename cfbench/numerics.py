"""Small numerical building blocks shared by models and samplers, each written once.

* :func:`ridge_solve` — α = (K + ρI)⁻¹ Y by Cholesky (∞-AE's fit, Distill-CF's inner loop).
* :func:`fmix32` / :func:`hash_uniform_bits` — counter-based uint32 noise from MurmurHash3's
  finaliser (SVP-CF's dropout masks, Distill-CF's Gumbel noise).
* :func:`top_k_random_ties` — the k highest scores, ties broken by given random keys (the
  score-ranking samplers).

These are pure functions. Changing one changes the bits of results already published (the hash and
the top-k are pinned by independent re-implementations in ``tests/test_numerics_shared.py``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

__all__ = ["GOLDEN_RATIO_32", "fmix32", "hash_uniform_bits", "ridge_solve", "top_k_random_ties"]

#: ⌊2³² / φ⌋ rounded to odd: the Weyl step that spreads consecutive counters over uint32.
GOLDEN_RATIO_32 = 0x9E3779B1


def ridge_solve(kernel: jax.Array, targets: jax.Array, ridge: jax.Array) -> jax.Array:
    """α = (K + ρ I)⁻¹ Y, by the Cholesky factor L Lᵀ = K + ρ I and two triangular solves.

    ``kernel`` K is (n, n) symmetric positive semi-definite, ``targets`` Y is (n, d), ``ridge`` ρ a
    scalar of K's dtype. Not jitted, so it traces inside a caller's jit and differentiates with
    ``jax.grad`` (through ``cholesky`` and ``cho_solve``). A singular K + ρI gives non-finite α.
    """
    n = kernel.shape[0]
    chol = jnp.linalg.cholesky(kernel + ridge * jnp.eye(n, dtype=kernel.dtype))
    return jsl.cho_solve((chol, True), targets)


def fmix32(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser, a bijection of uint32 with full avalanche:

        h ← h ⊕ (h ≫ 16);  h ← h · 0x85EBCA6B;  h ← h ⊕ (h ≫ 13);
        h ← h · 0xC2B2AE35;  h ← h ⊕ (h ≫ 16)

    (products mod 2³²). ``h`` must be uint32.
    """
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def hash_uniform_bits(seed: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Counter-based uniform uint32s: bits[i] = fmix32(i · 0x9E3779B1 + seed), i the flat (C-order) position.

    ``seed`` is a uint32 scalar. Distinct positions (< 2³²) give distinct bits for one seed, since
    both the Weyl step and ``fmix32`` are bijections of uint32. Far cheaper than threefry on CPU.
    """
    x = jnp.arange(int(np.prod(shape)), dtype=jnp.uint32).reshape(shape) * jnp.uint32(GOLDEN_RATIO_32) + seed
    return fmix32(x)


def top_k_random_ties(scores: np.ndarray, k: int, ties: np.ndarray) -> np.ndarray:
    """Indices of the ``k`` highest ``scores``, highest first; equal scores ordered by ascending ``ties``.

    The order is lexicographic in (−score, tie): ``np.lexsort((ties, -scores))[:k]``. ``ties`` holds
    one random number per score (e.g. ``rng.random(n)``), so ties are broken at random yet
    reproducibly. ``k`` larger than the number of scores returns them all.
    """
    return np.lexsort((ties, -np.asarray(scores)))[:k]
