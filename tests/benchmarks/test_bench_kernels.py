"""Kernel timings (pytest-benchmark). Skipped in the default test run; run them with

    python -m pytest tests/benchmarks --benchmark-only

Shapes are ML-1M's (6,040 users × 3,706 items, density 3.5 %) on synthetic 0/1 data, so the
numbers need no dataset. Every timed call ends in ``block_until_ready()``; a warm-up call
compiles first, so compile time is excluded.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from cfbench.evaluation import evaluate, evaluation_task
from cfbench.models import EASE, InfiniteAE
from cfbench.models.infinite_ae import kernel_matrix
from cfbench.splits import Split

USERS, ITEMS, DENSITY = 6040, 3706, 0.035


@pytest.fixture(scope="module")
def ml1m_like():
    rng = np.random.default_rng(0)
    x = sp.random(USERS, ITEMS, density=DENSITY, format="csr", random_state=rng, dtype=np.float32)
    x.data[:] = 1.0
    return x


def _ready(fn):
    def run():
        out = fn()
        return out.block_until_ready() if hasattr(out, "block_until_ready") else out
    run()  # compile
    return run


@pytest.mark.parametrize("n_support", [500, 6040])
def test_ntk_kernel_matrix(benchmark, ml1m_like, n_support):
    import jax.numpy as jnp

    xs = jnp.asarray(ml1m_like[:n_support].toarray())
    benchmark(_ready(lambda: kernel_matrix(xs, xs)))


@pytest.mark.parametrize("n_support", [50, 500, 6040])
def test_infinite_ae_fit(benchmark, ml1m_like, n_support):
    support = ml1m_like[:n_support]
    benchmark(_ready(lambda: InfiniteAE(lam=5.0).fit(support).alpha_))


@pytest.mark.parametrize(("n_support", "solver"), [(500, "dual"), (6040, "primal")])
def test_ease_fit(benchmark, ml1m_like, n_support, solver):
    support = ml1m_like[:n_support]

    def fit():
        m = EASE(lam=500.0, solver=solver).fit(support)
        return m.weights_ if solver == "primal" else m.dual_w_

    benchmark(_ready(fit))


def test_evaluate_all_users(benchmark, ml1m_like):
    n = USERS
    split = Split("bench", 0, ml1m_like, ml1m_like[np.r_[1:n, 0]], ml1m_like[np.r_[2:n, 0, 1]], np.arange(n),
                  np.arange(ITEMS))
    model = InfiniteAE(lam=5.0).fit(ml1m_like[:500])
    task = evaluation_task(split, "test")
    benchmark.pedantic(lambda: evaluate(model, task), rounds=3, warmup_rounds=1)


@pytest.fixture(scope="module")
def gowalla_like():
    """Gowalla's shape (29,858 users × 40,981 items, 0.084 % dense: ≈ 34 interactions per user), 0/1."""
    rng = np.random.default_rng(1)
    x = sp.random(29858, 40981, density=0.00084, format="csr", random_state=rng, dtype=np.float32)
    x.data[:] = 1.0
    return x


@pytest.mark.parametrize("path", ["sparse", "dense"])
def test_query_gram_gowalla_shape(benchmark, gowalla_like, path):
    """One 256-user query block against 2,000 support users: cfbench.gram's exact sparse product vs the GEMM."""
    import jax.numpy as jnp

    from cfbench.devices import precise_jit
    from cfbench.gram import SparseRows, sparse_gram

    queries, support = gowalla_like[:256], gowalla_like[-2000:]
    if path == "sparse":
        q_rows, s_rows = SparseRows.of(queries, transpose=False), SparseRows.of(support)
        benchmark(_ready(lambda: sparse_gram(q_rows, s_rows, jnp.float32)))
    else:
        gemm = precise_jit(lambda a, b: a @ b.T)
        q, s = jnp.asarray(queries.toarray()), jnp.asarray(support.toarray())
        benchmark(_ready(lambda: gemm(q, s)))
