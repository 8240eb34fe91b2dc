"""∞-AE at λ = 0 interpolates its support: with ``exact_interpolation`` a query identical to a support row
is scored as that row, so λ = 0's validation score no longer depends on float rounding noise."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from cfbench.evaluation import evaluate, evaluation_task, select_lambda
from cfbench.harness import SuiteConfig, model_spec, run_suite
from cfbench.identity import identity_key, row_identity
from cfbench.models import InfiniteAE
from cfbench.plugins import load_model, load_sampler
from cfbench.sampling import SelectionData
from cfbench.splits import reference_split
from cfbench.subsets import support_matrix
from tests.conftest import toy_split, x64


def _support_and_queries(seed: int = 0):
    split = toy_split(n_users=40, n_items=60, density=0.2, seed=seed)
    support = split.train[:12]
    # Queries: three support rows (one with its columns stored out of order and an explicit zero), and two others.
    own = sp.csr_matrix(support[[3, 7, 11]].toarray())
    others = split.train[20:22]
    return support, sp.vstack([own, others]).tocsr(), [3, 7, 11]


def test_a_support_row_is_predicted_as_itself_exactly_and_the_rest_is_unchanged():
    support, queries, rows = _support_and_queries()
    plain = InfiniteAE(lam=0.0).fit(support)
    exact = InfiniteAE(lam=0.0, exact_interpolation=True).fit(support)
    a, b = np.asarray(plain.score(queries)), np.asarray(exact.score(queries))
    np.testing.assert_array_equal(b[:3], support[rows].toarray())  # 1 on the row's items, exactly 0 elsewhere
    assert not np.array_equal(a[:3], b[:3])  # without it: the same up to rounding noise, not exactly
    np.testing.assert_allclose(a[:3], b[:3], atol=1e-4)
    np.testing.assert_array_equal(a[3:], b[3:])  # other queries: the very same bits
    # Dense queries and a shared λ path give the same bits as sparse queries and a single fit.
    np.testing.assert_array_equal(np.asarray(exact.score(jnp.asarray(queries.toarray()))), b)
    path = dict(InfiniteAE(exact_interpolation=True).fit_path(support, (0.0, 1.0)))
    for got, model in zip(InfiniteAE.score_many(queries, [path[0.0], path[1.0]]), (path[0.0], path[1.0])):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(model.score(queries)))
    np.testing.assert_array_equal(np.asarray(path[0.0].score(queries)), b)


def test_only_lambda_zero_interpolates():
    support, queries, _ = _support_and_queries(1)
    for lam in (0.01, 1.0, 5.0):
        np.testing.assert_array_equal(
            np.asarray(InfiniteAE(lam=lam).fit(support).score(queries)),
            np.asarray(InfiniteAE(lam=lam, exact_interpolation=True).fit(support).score(queries)))


def test_synthetic_supports_match_their_own_rows_too():
    x = np.array([[0.5, 0.0, 0.25, 0.0], [0.0, 1.0, 0.0, 0.3], [0.2, 0.2, 0.0, 0.9]], dtype=np.float32)
    model = InfiniteAE(lam=0.0, exact_interpolation=True).fit(x)
    got = np.asarray(model.score(np.vstack([x[1], [1.0, 0.0, 0.0, 0.0]])))
    np.testing.assert_array_equal(got[0], x[1])
    assert not np.array_equal(got[1], x[0])


def test_lambda_zero_validation_no_longer_depends_on_the_dtype(small_data):
    # The README's case: 20 random users of ml-latest-small, seed 0. Its 20 support users are validation
    # users; at λ = 0 their unseen items score rounding noise, which float32 and float64 rank differently.
    split = reference_split(small_data, 0)
    subset = load_sampler("random-users").select(SelectionData(split), 20, np.random.default_rng([0, 20]))
    support = support_matrix(subset, split.train)
    task = evaluation_task(split, "val")
    with x64():
        hr, chosen = _lambda_zero_scores(support, split, task)
    assert hr[("float32", True)] == hr[("float64", True)]
    assert hr[("float32", False)] != hr[("float64", False)]  # the noise this parameter removes
    assert chosen["float32"] == chosen["float64"]


def _lambda_zero_scores(support, split, task):
    hr = {(dtype, exact): evaluate(InfiniteAE(lam=0.0, dtype=dtype, exact_interpolation=exact).fit(support), task,
                                   1024).summary()["hr@100"]
          for dtype in ("float32", "float64") for exact in (False, True)}
    chosen = {dtype: select_lambda(InfiniteAE(dtype=dtype, exact_interpolation=True), support, split,
                                   batch_size=1024).lam for dtype in ("float32", "float64")}
    return hr, chosen


def test_off_keeps_the_published_identity_and_on_is_its_own_row():
    def identity(params):
        from cfbench.datasets import load_dataset
        return row_identity(data=load_dataset("ml-latest-small"), rating_threshold=None, seed=0,
                            sampler_name="random-users", sampler_params={}, sampler_version="1", budget=20,
                            model_name="infinite-ae", model_params=params, model_version="1", dtype="float32")
    published = {k: v for k, v in InfiniteAE().get_params().items() if k != "exact_interpolation"}
    assert identity_key(identity(InfiniteAE().get_params())) == identity_key(identity(published))
    assert identity_key(identity(InfiniteAE(exact_interpolation=True).get_params())) != \
        identity_key(identity(published))
    assert model_spec(load_model("infinite-ae:exact_interpolation=true")) == "infinite-ae:exact_interpolation=True"
    assert model_spec(InfiniteAE()) == "infinite-ae"
    with pytest.raises(ValueError, match="exact_interpolation must be true or false"):
        InfiniteAE(exact_interpolation="yes")


def test_rows_with_it_live_beside_the_default_rows(tmp_path):
    config = dict(results_dir=tmp_path, samplers=("random-users",), budgets=(20,), seeds=(0,))
    first = run_suite(SuiteConfig(models=("infinite-ae",), **config), progress=False)
    both = run_suite(SuiteConfig(models=("infinite-ae", "infinite-ae:exact_interpolation=true"), **config),
                     progress=False)
    assert both.computed == 1 and both.reused == 1 and both.archived == 0
    rows = {json.loads(p.read_text())["model_spec"]: json.loads(p.read_text()) for p in both}
    assert rows["infinite-ae:exact_interpolation=True"]["identity"]["model"]["params"]["exact_interpolation"] is True
    assert "exact_interpolation" not in rows["infinite-ae"]["identity"]["model"]["params"]
    assert rows["infinite-ae"]["identity_key"] == json.loads(first.paths[0].read_text())["identity_key"]
