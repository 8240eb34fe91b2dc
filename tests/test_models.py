"""∞-AE and EASE against independent float64 NumPy computations."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from cfbench.devices import precise_jit
from cfbench.models import EASE, InfiniteAE, NumericalError
from cfbench.models.base import as_dense
from cfbench.ntk import ntk
from tests.conftest import x64


def _data(n=25, d=18, seed=0, real=False):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, d)) < 0.3).astype(np.float64)
    return x * rng.random((n, d)) if real else x


def _krr_reference(xs, xq, lam):
    with x64():
        k = np.asarray(ntk(jnp.asarray(xs), jnp.asarray(xs)))
        kq = np.asarray(ntk(jnp.asarray(xq), jnp.asarray(xs)))
    ridge = lam * np.trace(k) / len(k)
    return kq @ np.linalg.solve(k + ridge * np.eye(len(k)), xs)


@pytest.mark.parametrize("real", [False, True])
def test_infinite_ae_is_kernel_ridge_regression(real):
    xs, xq = _data(real=real), _data(7, seed=1)
    for lam in (1.0, 20.0):
        got = np.asarray(InfiniteAE(lam=lam, block_size=4).fit(sp.csr_matrix(xs)).score(xq))
        np.testing.assert_allclose(got, _krr_reference(xs, xq, lam), rtol=2e-3, atol=2e-4)


def test_infinite_ae_float64_is_exact():
    xs, xq = _data(), _data(7, seed=1)
    with x64():
        got = np.asarray(InfiniteAE(lam=5.0, dtype="float64").fit(xs).score(xq))
    np.testing.assert_allclose(got, _krr_reference(xs, xq, 5.0), rtol=1e-9)


def test_fit_path_equals_separate_fits():
    xs, xq = _data(), _data(5, seed=2)
    model = InfiniteAE()
    for lam, fitted in model.fit_path(xs, (1.0, 50.0)):
        alone = InfiniteAE(lam=lam).fit(xs)
        np.testing.assert_allclose(np.asarray(fitted.score(xq)), np.asarray(alone.score(xq)), rtol=1e-5, atol=1e-6)
        assert fitted.lam == lam
    assert not hasattr(model, "alpha_")  # the template stays unfitted


def test_infinite_ae_rejects_a_singular_unregularised_system():
    xs = np.vstack([_data(5)] * 2)  # duplicated users: K is singular
    with x64(), pytest.raises(NumericalError, match="singular"):
        InfiniteAE(lam=0.0, dtype="float64").fit(xs)


def _ease_reference(x, lam):
    """Column j: ridge regression of item j on every other item (independent of the closed form)."""
    d = x.shape[1]
    b = np.zeros((d, d))
    for j in range(d):
        others = np.delete(np.arange(d), j)
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + lam * np.eye(d - 1), a.T @ x[:, j])
    return b


@pytest.mark.parametrize(("n", "solver"), [(40, "primal"), (10, "dual"), (10, "primal"), (40, "dual")])
@pytest.mark.parametrize("real", [False, True])
def test_ease_is_per_item_ridge_regression(n, solver, real):
    x, xq = _data(n, 18, real=real), _data(6, 18, seed=3)
    lam = 3.0
    with x64():
        model = EASE(lam=lam, solver=solver, dtype="float64").fit(x)
        got = np.asarray(model.score(xq))
    np.testing.assert_allclose(got, xq @ _ease_reference(x, lam), rtol=1e-8, atol=1e-10)


def test_ease_auto_solver_and_float32_agree_with_float64():
    x, xq = _data(12, 30), _data(5, 30, seed=4)
    model = EASE(lam=10.0).fit(sp.csr_matrix(x))
    assert model.solver_ == "dual"
    np.testing.assert_allclose(np.asarray(model.score(xq)), xq @ _ease_reference(x, 10.0), rtol=1e-3, atol=1e-4)
    assert EASE(lam=10.0).fit(_data(50, 30)).solver_ == "primal"


def test_ease_item_never_predicts_itself():
    x = _data(30, 10)
    b = np.asarray(EASE(lam=1.0, solver="primal").fit(x).weights_)
    np.testing.assert_array_equal(np.diag(b), 0.0)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_ease_needs_positive_lambda(bad):
    with pytest.raises(ValueError, match="lam > 0"):
        EASE(lam=bad).fit(_data())


def test_float64_without_x64_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="x64"):
        InfiniteAE(dtype="float64").fit(_data())


def test_clone_and_params_follow_sklearn_conventions():
    model = InfiniteAE(lam=1.0, depth=2)
    assert model.get_params() == {"lam": 1.0, "depth": 2, "w_std": model.w_std, "b_std": 0.1, "dtype": "float32",
                                  "block_size": model.block_size, "lambdas": None,
                                  "exact_interpolation": False}
    fitted = model.clone().fit(_data())
    assert hasattr(fitted, "alpha_") and not hasattr(fitted.clone(), "alpha_")
    with pytest.raises(ValueError, match="no hyper-parameter"):
        model.set_params(width=3)


def _ease_state(model):
    keys = ("weights_",) if model.solver_ == "primal" else ("support_", "dual_w_", "dual_scale_")
    return [np.asarray(getattr(model, k)) for k in keys]


@pytest.mark.parametrize("solver", ["primal", "dual", "auto"])
@pytest.mark.parametrize("real", [False, True])
def test_ease_fit_path_equals_separate_fits_bit_for_bit(solver, real):
    # fit_path computes the Gram matrix once; every λ must still give exactly EASE(lam=λ).fit's numbers.
    x, xq = _data(60, 45, seed=5, real=real).astype(np.float32), _data(9, 45, seed=6)
    support = sp.csr_matrix(x)
    template = EASE(solver=solver)
    fits = list(template.fit_path(support, EASE.lambda_grid))
    assert [lam for lam, _ in fits] == list(EASE.lambda_grid)
    for lam, fitted in fits:
        alone = EASE(lam=lam, solver=solver).fit(support)
        assert fitted.lam == lam and fitted.solver_ == alone.solver_
        for got, want in zip(_ease_state(fitted), _ease_state(alone), strict=True):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.asarray(fitted.score(xq)), np.asarray(alone.score(xq)))
    assert not hasattr(template, "weights_") and not hasattr(template, "dual_w_")  # the template stays unfitted


def test_ease_fit_path_reports_a_failed_lambda_and_goes_on():
    x = np.zeros((4, 6))  # XᵀX = 0: a tiny λ overflows 1/λ in float32, a usual one is fine
    results = dict(EASE(solver="primal").fit_path(x, (1e-45, 1.0)))
    assert isinstance(results[1e-45], NumericalError)
    assert np.all(np.isfinite(np.asarray(results[1.0].weights_)))


@pytest.mark.parametrize("real", [False, True])
def test_ease_matches_the_single_jit_solver_that_computed_the_shipped_rows(real):
    # The shipped EASE rows were computed by one jitted function per solver (copied here); the split into a
    # Gram step and a solve step must not move a single bit.
    import jax
    import jax.scipy.linalg as jsl

    @precise_jit  # the shipped rows: CPU, where every precision is float32
    def primal(x, lam):
        d = x.shape[1]
        gram = x.T @ x + lam * jnp.eye(d, dtype=x.dtype)
        p = jsl.cho_solve((jnp.linalg.cholesky(gram), True), jnp.eye(d, dtype=x.dtype))
        return (-p / jnp.diag(p)[None, :]).at[jnp.diag_indices(d)].set(0.0)

    @precise_jit
    def dual(x, lam):
        n = x.shape[0]
        w = jsl.cho_solve((jnp.linalg.cholesky(x @ x.T + lam * jnp.eye(n, dtype=x.dtype)), True), x)
        return w, 1.0 / (1.0 - jnp.sum(x * w, axis=0))

    for n, d in ((120, 80), (30, 90), (200, 2000)):
        x = _data(n, d, seed=7, real=real).astype(np.float32)
        for lam in (1.0, 50.0, 1000.0):
            model = EASE(lam=lam, solver="primal").fit(x)
            want = primal(jnp.asarray(x), np.float32(lam))
            np.testing.assert_array_equal(np.asarray(model.weights_), np.asarray(want))
            model = EASE(lam=lam, solver="dual").fit(x)
            w, scale = dual(jnp.asarray(x), np.float32(lam))
            np.testing.assert_array_equal(np.asarray(model.dual_w_), np.asarray(w))
            np.testing.assert_array_equal(np.asarray(model.dual_scale_), np.asarray(scale))


@pytest.mark.parametrize("real", [False, True])
def test_infinite_ae_score_many_equals_score_bit_for_bit(real):
    # score_many computes each kernel block once for the models of one fit_path; every model's scores must
    # still be exactly its own score's (the shipped λ searches were computed one λ at a time).
    xs, xq = _data(60, 45, seed=8, real=real).astype(np.float32), _data(256, 45, seed=9)
    path = [fitted for _, fitted in InfiniteAE().fit_path(sp.csr_matrix(xs), (1.0, 5.0, 20.0, 100.0))]
    other = InfiniteAE(lam=5.0, depth=2).fit(xs)  # same support values, other architecture: not shared
    alone = InfiniteAE(lam=5.0).fit(xs[:30])  # another support: not shared
    models = [path[0], other, *path[1:], alone]
    many = InfiniteAE.score_many(sp.csr_matrix(xq), models)
    assert len(many) == len(models)
    for model, got in zip(models, many, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(model.score(sp.csr_matrix(xq))))
    assert InfiniteAE.score_many(xq, []) == []


def test_default_score_many_is_each_models_score():
    x, xq = _data(40, 30, seed=10), _data(8, 30, seed=11)
    models = [fitted for _, fitted in EASE().fit_path(x, (1.0, 50.0))]
    for model, got in zip(models, EASE.score_many(xq, models), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(model.score(xq)))


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_as_dense_scatters_sparse_input_exactly_like_toarray(fmt, dtype):
    # as_dense builds sparse input on the device by a scatter; it must equal the host densify bit for bit,
    # whatever the sparse format and value type (float64 values are rounded to float32 once, as before).
    rng = np.random.default_rng(0)
    dense = (rng.random((33, 57)) < 0.2) * rng.random((33, 57)) * 7
    x = sp.coo_matrix(dense.astype(dtype)).asformat(fmt)
    got = as_dense(x, jnp.float32)
    assert got.dtype == jnp.float32 and got.shape == (33, 57)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(jnp.asarray(x.toarray(), dtype=jnp.float32)))


def test_as_dense_sums_duplicate_entries_and_handles_empty_matrices():
    dup = sp.coo_matrix((np.array([1.0, 2.0, 4.0], np.float32), (np.array([0, 0, 2]), np.array([1, 1, 0]))),
                        shape=(3, 2))
    np.testing.assert_array_equal(np.asarray(as_dense(dup, jnp.float32)), dup.toarray())
    for shape in [(0, 5), (4, 5)]:
        np.testing.assert_array_equal(np.asarray(as_dense(sp.csr_matrix(shape, dtype=np.float32), jnp.float32)),
                                      np.zeros(shape, np.float32))
