"""cfbench.gram: the exact sparse Gram product, its exactness bound and cost model, and the models' use of it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from cfbench import gram
from cfbench.devices import precise_jit
from cfbench.gram import SparseRows, exact_pair, sparse_gram, sparse_pays, target_platform
from cfbench.models.ease import EASE
from cfbench.models.infinite_ae import InfiniteAE


@precise_jit
def _dense_gram(a: jax.Array, b: jax.Array) -> jax.Array:
    return a @ b.T


def _interactions(rng: np.random.Generator, n: int, d: int, density: float, values: tuple[int, ...] = (1,)
                  ) -> sp.csr_matrix:
    mask = rng.random((n, d)) < density
    data = rng.choice(np.asarray(values, dtype=np.float32), size=(n, d))
    return sp.csr_matrix(np.where(mask, data, 0.0).astype(np.float32))


@pytest.fixture
def always_sparse(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the sparse product win every cost comparison, and count its calls."""
    monkeypatch.setattr(gram, "SPARSE_OP_COST_PER_CORE", 0)
    calls: list[int] = []
    original = gram.sparse_gram

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(*args, **kwargs)

    for module in ("cfbench.models.infinite_ae", "cfbench.models.ease"):
        monkeypatch.setattr(f"{module}.sparse_gram", counted)
    return calls


@pytest.mark.parametrize("values", [(1,), (1, 2, 5)])
def test_sparse_gram_is_the_dense_gemm_bit_for_bit(values: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    a, b = _interactions(rng, 300, 700, 0.05, values), _interactions(rng, 120, 700, 0.3, values)
    ra, rb = SparseRows.of(a), SparseRows.of(b)
    assert ra is not None and rb is not None and exact_pair(ra, rb, jnp.float32)
    dense = np.asarray(_dense_gram(jnp.asarray(a.toarray()), jnp.asarray(b.toarray())))
    got = sparse_gram(ra, rb, jnp.float32)
    assert got.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(got), dense)
    np.testing.assert_array_equal(np.asarray(sparse_gram(ra, rb, jnp.float32, slice(10, 50))), dense[10:50])
    # the squared norms are the exact integers the device computes
    np.testing.assert_array_equal(ra.sq_norms.astype(np.float32), np.asarray(jnp.sum(jnp.asarray(a.toarray()) ** 2, 1)))


def test_sparse_rows_accepts_only_finite_integer_valued_sparse_matrices() -> None:
    x = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0]], dtype=np.float32))
    rows = SparseRows.of(x)
    assert rows is not None
    assert rows.l1_max == 3.0 and rows.abs_max == 3.0
    np.testing.assert_array_equal(rows.sq_norms, [5.0, 0.0, 9.0])  # the empty row is 0, not a neighbour's sum
    np.testing.assert_array_equal(rows.col_degree, [1, 1, 1])
    assert SparseRows.of(x * 0.5) is None  # synthetic, real-valued rows take the dense GEMM
    assert SparseRows.of(x.toarray()) is None  # dense input
    bad = x.copy()
    bad.data[0] = np.inf
    assert SparseRows.of(bad) is None
    assert SparseRows.of(sp.csr_matrix((4, 0), dtype=np.float32)) is not None  # no items: nothing to add
    trailing = SparseRows.of(sp.vstack([x, sp.csr_matrix((3, 3), dtype=np.float32)]).tocsr())  # empty last rows
    assert trailing is not None
    np.testing.assert_array_equal(trailing.sq_norms, [5.0, 0.0, 9.0, 0.0, 0.0, 0.0])


def test_exactness_bound_follows_the_significand() -> None:
    # one row of 5,000 entries of 4000: partial sums reach 5,000 · 4000² = 8·10¹⁰, exact in float64 only
    big = sp.csr_matrix(np.full((1, 5000), 4000.0))
    rows = SparseRows.of(big)
    assert rows is not None
    assert not exact_pair(rows, rows, jnp.float32)
    assert exact_pair(rows, rows, np.float64)
    small = SparseRows.of(sp.csr_matrix(np.ones((2, 5000), dtype=np.float32)))
    assert small is not None and exact_pair(small, small, jnp.float32)
    # 2²⁴ ones on a row would be the first sum float32 cannot hold; the bound is strict
    assert 2**24 == gram._significand_limit(jnp.float32)


def test_cost_model_prefers_the_sparse_product_on_sparse_data_only_on_a_cpu() -> None:
    rng = np.random.default_rng(1)
    sparse_rows = SparseRows.of(_interactions(rng, 400, 5000, 0.001))
    dense_rows = SparseRows.of(_interactions(rng, 400, 5000, 0.5))
    assert sparse_rows is not None and dense_rows is not None
    assert sparse_pays(sparse_rows, sparse_rows, "cpu")
    assert not sparse_pays(dense_rows, dense_rows, "cpu")
    assert not sparse_pays(sparse_rows, sparse_rows, "gpu")  # the product runs on the host
    with jax.default_device(jax.devices("cpu")[0]):
        assert target_platform() == "cpu"


def _fits(model_factory, support: sp.csr_matrix, queries: sp.csr_matrix, lams: tuple[float, ...]):  # type: ignore[no-untyped-def]
    fitted = [lam_model for _, lam_model in model_factory().fit_path(support, lams)]
    return fitted, [np.asarray(m.score(queries)) for m in fitted]


@pytest.mark.parametrize("factory, lams", [
    (InfiniteAE, (0.0, 5.0)),
    (lambda: InfiniteAE(block_size=7), (1.0,)),  # blocked kernel rows
    (EASE, (1.0, 50.0)),  # dual: fewer users than items
    (lambda: EASE(solver="primal"), (5.0,)),
])
def test_models_give_the_dense_bits_through_the_sparse_gram(factory, lams, always_sparse: list[int]) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    support, queries = _interactions(rng, 40, 90, 0.1), _interactions(rng, 25, 90, 0.1)
    sparse_fits, sparse_scores = _fits(factory, support, queries, lams)
    calls = len(always_sparse)
    assert calls >= 1  # the sparse product really ran
    _, dense_scores = _fits(factory, support.toarray(), queries.toarray(), lams)  # dense input: GEMM only
    assert len(always_sparse) == calls
    for got, want in zip(sparse_scores, dense_scores, strict=True):
        np.testing.assert_array_equal(got, want)
    if isinstance(sparse_fits[0], InfiniteAE):
        shared = InfiniteAE.score_many(queries, sparse_fits)
        for got, want in zip(shared, dense_scores, strict=True):
            np.testing.assert_array_equal(np.asarray(got), want)


def test_real_valued_supports_keep_the_dense_gemm(always_sparse: list[int]) -> None:
    rng = np.random.default_rng(3)
    support = _interactions(rng, 30, 60, 0.2) * 0.37  # synthetic users: weights in (0, 1)
    queries = _interactions(rng, 10, 60, 0.2)
    for model in (InfiniteAE(lam=1.0), EASE(lam=1.0)):
        scores = model.fit(support).score(queries)
        assert np.all(np.isfinite(np.asarray(scores)))
    assert always_sparse == []


def test_ease_primal_on_a_sparse_gram_never_densifies_the_support(always_sparse: list[int],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import cfbench.models.ease as ease_module

    densified: list[tuple[int, ...]] = []
    original = ease_module.as_dense

    def counted(x, dtype):  # type: ignore[no-untyped-def]
        densified.append(tuple(x.shape))
        return original(x, dtype)

    monkeypatch.setattr(ease_module, "as_dense", counted)
    support = _interactions(np.random.default_rng(4), 80, 30, 0.2)
    model = EASE(lam=5.0).fit(support)  # 80 users ≥ 30 items: primal
    assert model.solver_ == "primal" and always_sparse and densified == []
    want = EASE(lam=5.0).fit(support.toarray()).weights_
    np.testing.assert_array_equal(np.asarray(model.weights_), np.asarray(want))


@pytest.mark.parametrize("sparse_cost", [gram.SPARSE_OP_COST_PER_CORE, 0])
@pytest.mark.parametrize("model", [InfiniteAE(lam=1.0), EASE(lam=1.0, solver="dual"), EASE(lam=1.0, solver="primal")])
def test_queries_over_other_items_are_a_one_line_error(model, sparse_cost: int,  # type: ignore[no-untyped-def]
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gram, "SPARSE_OP_COST_PER_CORE", sparse_cost)
    rng = np.random.default_rng(5)
    fitted = model.fit(_interactions(rng, 40, 30, 0.2))
    with pytest.raises(ValueError, match=r"the queries have 31 items but the model was fitted on 30") as err:
        fitted.score(_interactions(rng, 5, 31, 0.2))
    assert "\n" not in str(err.value)


def test_on_an_accelerator_the_models_keep_no_sparse_copy(always_sparse: list[int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gram, "target_platform", lambda: "gpu")
    rng = np.random.default_rng(6)
    support, queries = _interactions(rng, 30, 60, 0.2), _interactions(rng, 10, 60, 0.2)
    for model in (InfiniteAE(lam=1.0), EASE(lam=1.0, solver="dual"), EASE(lam=1.0, solver="primal")):
        fitted = model.fit(support)
        assert getattr(fitted, "support_rows_", None) is None
        fitted.score(queries)
    assert always_sparse == []
