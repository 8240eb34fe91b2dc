"""Numerics never fail quietly: bad hyper-parameters, overflowing synthetic users, an unconverged
PageRank, a diverging Distill-CF and non-finite scores are clear errors, not silent garbage."""

from __future__ import annotations

import itertools
import json

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

import samplers.distill_cf as distill_module
from cfbench.evaluation import evaluate, evaluation_task, select_lambda
from cfbench.models import EASE, InfiniteAE
from cfbench.models.base import NumericalError, Recommender
from cfbench.plugins import PluginError, load_model, load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import (MAX_SYNTHETIC_VALUE, SubsetError, SyntheticUsers, UserSubset, support_matrix,
                             validate_subset)
from samplers.distill_cf import DistillCF, DistillationDiverged, check_synthetic
from samplers.pagerank import PageRank, PageRankNotConverged
from tests.conftest import toy_split, x64

# --- model hyper-parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "parameter"), [
    ("infinite-ae:lam=-1", "lam"), ("infinite-ae:lam=nan", "lam"), ("infinite-ae:lam=inf", "lam"),
    ("infinite-ae:depth=0", "depth"), ("infinite-ae:w_std=-1", "w_std"), ("infinite-ae:b_std=nan", "b_std"),
    ("infinite-ae:block_size=0", "block_size"), ("infinite-ae:dtype=float16", "dtype"),
    ("ease:lam=-1", "lam"), ("ease:lam=0", "lam"), ("ease:lam=nan", "lam"), ("ease:lam=inf", "lam"),
    ("ease:solver=qr", "solver"), ("ease:dtype=float16", "dtype"),
])
def test_bad_model_hyper_parameters_are_one_line_plugin_errors(spec, parameter):
    with pytest.raises(PluginError) as err:
        load_model(spec)
    message = str(err.value)
    assert "\n" not in message
    assert f"model {spec.split(':')[0]!r}" in message and parameter in message, message


def test_valid_hyper_parameters_still_load_including_lambda_zero():
    assert load_model("infinite-ae:lam=0").lam == 0.0  # the grid's first point stays allowed
    model = load_model("infinite-ae:lam=5,depth=2,w_std=1.5,b_std=0,block_size=7")
    assert (model.depth, model.b_std, model.block_size) == (2, 0.0, 7)
    assert load_model("ease:lam=0.5,solver=dual").solver == "dual"


@pytest.mark.parametrize("model", [InfiniteAE(), EASE()])
def test_set_params_cannot_smuggle_in_a_negative_lambda(model):
    x = (np.random.default_rng(0).random((6, 10)) < 0.4).astype(np.float32)
    with pytest.raises(ValueError, match="lam"):
        model.clone(lam=-1.0).fit(x)  # clone/set_params do not construct: fit checks again


def test_lambda_zero_fails_cleanly_on_a_singular_kernel_and_is_skipped():
    split = toy_split(n_users=20, n_items=15)
    support = sp.vstack([split.train[:4]] * 2).tocsr()  # duplicated users: K is singular
    with x64():
        chosen = select_lambda(InfiniteAE(dtype="float64"), support, split, grid=(0.0, 1.0))
    assert np.isnan(chosen.scores[0.0]) and chosen.lam == 1.0
    with pytest.raises(ValueError, match="lam"):  # a negative grid point is an error, not |λ|
        select_lambda(InfiniteAE(), support, split, grid=(-1.0,))


# --- synthetic users and user subsets ---------------------------------------------------------------------


def _synthetic(fill: float, n_items: int = 40) -> np.ndarray:
    matrix = np.random.default_rng(0).random((3, n_items)).astype(np.float64)
    matrix[1, 5] = fill
    return matrix


@pytest.mark.parametrize(("matrix", "message"), [
    (_synthetic(1e30), "bound is 1000"), (_synthetic(-1e30), "bound is 1000"),
    (_synthetic(MAX_SYNTHETIC_VALUE * 1.001), "bound"), (_synthetic(np.nan), "non-finite"),
    (_synthetic(np.inf), "non-finite"), (np.zeros((3, 40)), "all-zero"),
])
def test_synthetic_users_must_be_finite_bounded_and_not_all_zero(matrix, message):
    train = toy_split().train
    with pytest.raises(SubsetError, match=message) as err:
        validate_subset(SyntheticUsers(matrix), train, 5, "fake")
    assert "sampler 'fake'" in str(err.value) and "\n" not in str(err.value)


def test_synthetic_values_at_the_bound_and_negative_give_finite_models():
    """The bound is safe: ±MAX_SYNTHETIC_VALUE everywhere still gives finite float32 fits and scores."""
    split = toy_split()
    signs = np.where(np.random.default_rng(1).random((4, split.n_items)) < 0.5, -1.0, 1.0)
    matrix = signs * MAX_SYNTHETIC_VALUE
    matrix[3] = 0.0  # an all-zero row is dropped from the support, like a user left with no interaction
    subset = validate_subset(SyntheticUsers(matrix), split.train, 5, "fake")
    support = support_matrix(subset, split.train)
    assert support.shape == (3, split.n_items)
    for model in (InfiniteAE(lam=1.0), EASE(lam=1.0)):
        scores = model.fit(support).score(split.train[:5])
        assert bool(jnp.all(jnp.isfinite(scores))), model


@pytest.mark.parametrize(("users", "message"), [
    (np.array([True, False, True]), "boolean"), (np.array([0.0, 1.0]), "integer"),
    (np.array([[0, 1], [2, 3]]), "1-D"), ([], "no users"), (np.array([0, 99]), "outside"),
])
def test_user_subsets_of_the_wrong_form_are_clear_errors(users, message):
    with pytest.raises(SubsetError, match=message) as err:
        validate_subset(UserSubset(users), toy_split().train, 10, "fake")
    assert "sampler 'fake'" in str(err.value)


@pytest.mark.parametrize("users", [np.array([3, 0, 7], dtype=np.int32), [3, 0, 7], np.array([3, 0, 7], np.uint16)])
def test_user_subsets_of_int32_and_lists_work(users):
    train = toy_split().train
    subset = validate_subset(UserSubset(users), train, 10, "fake")
    assert subset.users.dtype == np.int64 and subset.users.tolist() == [3, 0, 7]
    assert (support_matrix(subset, train) != train[[0, 3, 7]]).nnz == 0


# --- PageRank ---------------------------------------------------------------------------------------------


def test_pagerank_that_does_not_converge_is_an_error_not_other_scores():
    data = SelectionData(toy_split())
    sampler = load_sampler("pagerank:max_iter=1")
    with pytest.raises(PageRankNotConverged) as err:
        sampler.select(data, 5, np.random.default_rng(0))
    message = str(err.value)
    assert isinstance(err.value, ArithmeticError) and "\n" not in message
    assert message.startswith("pagerank did not converge in 1 iteration:") and "max_iter" in message
    assert sampler.diagnostics()["converged"] is False and sampler.diagnostics()["iterations"] == 1


def test_pagerank_records_its_iterations_and_final_change():
    sampler = PageRank()
    sampler.select(SelectionData(toy_split()), 5, np.random.default_rng(0))
    info = json.loads(json.dumps(sampler.diagnostics()))
    assert info["converged"] is True and 1 < info["iterations"] < sampler.config.max_iter
    assert 0 < info["l1_change"] < sampler.config.tol


# --- Distill-CF -------------------------------------------------------------------------------------------

TINY = dict(samples_per_user=4, lambdas="1", tau="5")


@pytest.fixture(scope="module")
def distill_data():
    return SelectionData(toy_split(n_users=20, n_items=60, density=0.15))


def test_distill_cf_with_a_non_finite_loss_stops_after_a_bounded_number_of_steps(distill_data):
    # τ = 1e-40 overflows (Z + G)/τ to inf in float32: every loss is NaN
    sampler = DistillCF(**{**TINY, "tau": "1e-40"}, steps=50, eval_every=25)
    with pytest.raises(DistillationDiverged) as err:
        sampler.select(distill_data, 4, np.random.default_rng(0))
    limit = distill_module.MAX_CONSECUTIVE_NONFINITE
    message = str(err.value)
    assert isinstance(err.value, NumericalError) and "\n" not in message
    assert message.startswith("distill-cf") and f"at step {limit}" in message
    assert all(hint in message for hint in ("lr", "lambdas", "tau"))
    info = json.loads(json.dumps(sampler.diagnostics()))
    assert info["skipped_steps"] == info["failed_step"] == limit and info["candidates"][0]["steps_run"] == limit


def _flaky_steps(bad: set[int]):
    """Replace ``_make_step`` so that the steps in ``bad`` are non-finite (and skipped, as the jitted step does)."""
    real = distill_module._make_step

    def make(*args):
        optimizer, step = real(*args)
        calls = itertools.count(1)

        def flaky(logits, opt_state, *rest):
            if next(calls) in bad:
                nan = jnp.asarray(jnp.nan, jnp.float32)
                return logits, opt_state, nan, distill_module.LossParts(nan, nan), jnp.asarray(False)
            return step(logits, opt_state, *rest)
        return optimizer, flaky
    return make


def test_distill_cf_skips_a_few_non_finite_steps_and_counts_them(distill_data, monkeypatch):
    monkeypatch.setattr(distill_module, "_make_step", _flaky_steps({2, 3}))
    sampler = DistillCF(**TINY, steps=6, eval_every=3)
    out = sampler.select(distill_data, 4, np.random.default_rng(0))
    info = sampler.diagnostics()
    assert info["skipped_steps"] == info["skipped_steps_total"] == 2 and info["steps_run"] == 6
    assert info["candidates"][0]["skipped_steps"] == 2
    validate_subset(out, distill_data.train, 4, "distill-cf")


def test_distill_cf_fails_when_too_large_a_share_of_steps_is_skipped(distill_data, monkeypatch):
    monkeypatch.setattr(distill_module, "_make_step", _flaky_steps(set(range(1, 100, 2))))  # every other step
    sampler = DistillCF(**TINY, steps=20, eval_every=10)  # allowed: max(5, 10 % of 20) = 5 skipped steps
    with pytest.raises(DistillationDiverged, match=r"at step 11: 6 of 11 optimisation steps .* \(at most 5\)"):
        sampler.select(distill_data, 4, np.random.default_rng(0))
    assert sampler.diagnostics()["skipped_steps"] == 6


@pytest.mark.parametrize(("fill", "message"), [(np.nan, "non-finite"), (1.5, r"\[0, 1\]"), (0.0, "all zero")])
def test_a_degenerate_final_synthetic_matrix_is_an_error(fill, message):
    matrix = np.full((3, 8), 0.25, dtype=np.float32)
    matrix[1] = fill
    with pytest.raises(DistillationDiverged, match=message):
        check_synthetic(matrix)


# --- evaluation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_are_a_numerical_error_not_metrics(bad):
    split = toy_split()
    task = evaluation_task(split, "val")
    user = task.users[0]
    item = split.val[user].indices[0]  # a positive: neither masked nor an AUC negative

    history = split.train[user].toarray()

    def score(queries):  # zero for everyone, except one positive of one user
        out = np.zeros(queries.shape, dtype=np.float32)
        out[np.all(queries.toarray() == history, axis=1), item] = bad
        return jnp.asarray(out)

    with pytest.raises(NumericalError, match=r"'score' produced non-finite scores .* for 1 of"):
        evaluate(score, task)


class _NaNModel(Recommender):
    name = "nan-model"
    description = "scores NaN"
    lambda_grid = (1.0, 2.0)

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam

    def fit(self, support):
        return self

    def score(self, queries):
        return jnp.full(queries.shape, jnp.nan)


def test_select_lambda_fails_when_every_lambda_scores_non_finite():
    split = toy_split()
    with pytest.raises(NumericalError, match="nan-model: every λ"):
        select_lambda(_NaNModel(), split.train, split)
