"""Evaluation: masking, candidates, batch-size independence, λ selection."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from cfbench import evaluation
from cfbench.evaluation import best_lambda, evaluate, evaluate_many, evaluation_task, select_lambda
from cfbench.models import EASE, InfiniteAE, NumericalError
from cfbench.models.base import padded_coordinates
from tests.conftest import toy_split


def _scorer_from_targets(split, task, weight_inputs: float, weight_targets: float):
    """A scorer that recognises each evaluated user by their query row and scores their positives."""
    lookup = {tuple(task.inputs[u].indices): u for u in task.users}
    assert len(lookup) == len(task.users), "toy histories must be distinct"

    def score(queries):
        out = queries.toarray() * weight_inputs
        for r in range(queries.shape[0]):
            user = lookup.get(tuple(queries[r].indices))
            if user is not None and queries[r].nnz:
                out[r] += weight_targets * task.targets[user].toarray()[0]
        return jnp.asarray(out)

    return score


def test_oracle_scores_get_perfect_ranking_metrics():
    split = toy_split()  # 40 items: also covers k = 100 > catalogue size
    task = evaluation_task(split, "test")
    summary = evaluate(_scorer_from_targets(split, task, 0.0, 10.0), task).summary()
    for k in (10, 100):
        assert summary[f"hr@{k}"] == pytest.approx(100.0)
        assert summary[f"ndcg@{k}"] == pytest.approx(100.0)
        assert summary[f"psp@{k}"] > 0
    assert summary["auc"] == pytest.approx(1.0)


def test_masked_items_are_never_ranked():
    split = toy_split()
    task = evaluation_task(split, "test")
    assert (np.diff(split.test.indptr) <= 10).all()
    # input (train + val) items score highest, test items next: only masking lets the test items reach the top 10
    summary = evaluate(_scorer_from_targets(split, task, 100.0, 50.0), task).summary()
    assert summary["hr@10"] == pytest.approx(100.0)


def test_only_users_with_positives_are_evaluated_and_all_items_are_candidates():
    split = toy_split()
    task = evaluation_task(split, "val")
    assert set(task.users) == set(np.flatnonzero(np.diff(split.val.indptr) > 0))
    assert task.inputs.shape[1] == split.n_items


def test_an_item_never_seen_in_train_can_be_recommended_and_hit():
    split = toy_split()
    item = split.n_items - 1
    train, val = split.train.tolil(), split.val.tolil()
    train[:, item] = 0  # the item occurs in no train row: it is user 0's only validation positive
    val[:, item] = 0
    val[0, :] = 0
    val[0, item] = 1
    split = dataclasses.replace(split, train=train.tocsr(), val=val.tocsr())
    assert split.train[:, item].nnz == 0 and split.val[:, item].nnz == 1
    task = evaluation_task(split, "val")

    def score(queries):  # everyone ranks the never-trained item first
        out = np.zeros(queries.shape, dtype=np.float32)
        out[:, item] = 1.0
        return jnp.asarray(out)

    result = evaluate(score, task)
    assert task.users[0] == 0
    # a candidate, ranked first, and counted as a hit for the user whose only positive it is
    assert result.per_user["hr@10"][0] == 1.0 and result.per_user["ndcg@10"][0] == pytest.approx(1.0)


@pytest.mark.parametrize("model", [InfiniteAE(lam=5.0), EASE(lam=100.0)])
def test_metrics_do_not_depend_on_the_batch_size(small_split, model):
    fitted = model.fit(small_split.train[:200])
    task = evaluation_task(small_split, "test")
    results = [evaluate(fitted, task, batch_size=b) for b in (37, 256, 1024)]
    for other in results[1:]:
        for name, values in results[0].per_user.items():
            np.testing.assert_allclose(other.per_user[name], values, atol=1e-12, err_msg=name)
        assert other.auc == pytest.approx(results[0].auc, abs=1e-9)


def test_select_lambda_picks_the_best_validation_hr100(small_split):
    sel = select_lambda(InfiniteAE(), small_split.train, small_split, grid=(1.0, 100.0))
    assert sel.lam == max(sel.scores, key=sel.scores.get)
    assert sel.scores[1.0] != sel.scores[100.0]
    assert sel.model.lam == sel.lam


def _assert_same_result(got, want):
    np.testing.assert_array_equal(got.users, want.users)
    assert got.per_user.keys() == want.per_user.keys()
    for name, values in want.per_user.items():
        np.testing.assert_array_equal(got.per_user[name], values, err_msg=name)
    assert got.auc == want.auc


@pytest.mark.parametrize("real", [False, True])
@pytest.mark.parametrize("template", [InfiniteAE(), EASE()])
def test_select_lambda_equals_per_lambda_evaluate_bit_for_bit(monkeypatch, template, real):
    # select_lambda scores all λ of a path in one pass (∞-AE: one kernel block per chunk for every λ); each
    # λ's validation metrics must be exactly those of evaluating that λ alone.
    split = toy_split(n_users=300, n_items=60, seed=3)  # 2 chunks of SCORE_CHUNK users
    support = split.train[:120]
    if real:
        support = support.multiply(np.random.default_rng(1).random(support.shape)).tocsr().astype(np.float32)
    task = evaluation_task(split, "val")
    fits = [(lam, fitted) for lam, fitted in template.fit_path(support, template.lambda_grid)
            if not isinstance(fitted, NumericalError)]
    alone = {lam: evaluate(fitted, task, batch_size=100) for lam, fitted in fits}
    for (lam, _), result in zip(fits, evaluate_many([f for _, f in fits], task, batch_size=100), strict=True):
        _assert_same_result(result, alone[lam])
    for budget in (evaluation.SHARED_SCORING_BYTES, 0):  # all λ in one pass, then one λ per pass
        monkeypatch.setattr(evaluation, "SHARED_SCORING_BYTES", budget)
        sel = select_lambda(template, support, split, batch_size=100)
        assert {lam: score for lam, score in sel.scores.items() if lam in alone} == \
            {lam: result.summary()["hr@100"] for lam, result in alone.items()}
        assert sel.lam == max(alone, key=lambda lam: alone[lam].summary()["hr@100"])  # first on ties
        _assert_same_result(sel.validation, alone[sel.lam])


def _rank(scores, masked, negatives, k=100):
    mask = sp.csr_matrix(masked)
    rows, cols, _ = padded_coordinates(mask, mask.shape[0])
    return evaluation._mask_and_rank(scores, rows, cols, negatives, k)


def test_ranking_per_chunk_equals_ranking_the_whole_batch():
    # evaluate ranks SCORE_CHUNK users at a time (the shipped rows ranked whole batches): top-k must not
    # depend on how many rows are ranked together, ties and masked items included.
    rng = np.random.default_rng(0)
    scores = jnp.asarray(rng.integers(0, 20, size=(700, 150)).astype(np.float32))  # many ties
    masked = rng.random((700, 150)) < 0.3
    negatives = rng.integers(-1, 150, size=(700, 50))
    whole = [np.asarray(a) for a in _rank(scores, masked, negatives)]
    parts = [_rank(scores[s:s + 256], masked[s:s + 256], negatives[s:s + 256]) for s in range(0, 700, 256)]
    np.testing.assert_array_equal(np.concatenate([np.asarray(p[0]) for p in parts]), whole[0])
    np.testing.assert_array_equal(np.concatenate([np.asarray(p[1]) for p in parts]), whole[1])
    assert sum(int(p[2]) for p in parts) == int(whole[2]) == 0


@pytest.mark.parametrize("density", [0.0, 0.02, 0.3, 1.0])
def test_mask_scattered_on_the_device_ranks_like_a_dense_mask(density):
    # The exclusion mask is sent as padded (row, column) pairs and scattered in XLA; the ranking must be
    # exactly top_k of the scores with the masked entries at −inf, ties included, padding dropped.
    rng = np.random.default_rng(1)
    scores = jnp.asarray(rng.integers(0, 10, size=(37, 120)).astype(np.float32))
    masked = rng.random((37, 120)) < density
    negatives = rng.integers(-1, 120, size=(37, 20))
    ranked, neg, bad = _rank(scores, masked, negatives, k=50)
    expected = jax.lax.top_k(jnp.where(jnp.asarray(masked), -jnp.inf, scores), 50)[1]
    np.testing.assert_array_equal(np.asarray(ranked), np.asarray(expected))
    np.testing.assert_array_equal(np.asarray(neg), np.take_along_axis(np.asarray(scores), np.maximum(negatives, 0), 1))
    assert int(bad) == 0


def test_nonzero_mask_equals_toarray_greater_than_zero():
    m = sp.random(50, 80, density=0.1, random_state=3, format="csr", dtype=np.float32)
    m.data[::7] = 0.0  # explicit zeros are not masked
    np.testing.assert_array_equal(evaluation._nonzero_mask(m), m.toarray() > 0)


def test_evaluate_many_raises_a_models_numerical_error_and_select_lambda_skips_it():
    split = toy_split()
    task = evaluation_task(split, "val")
    good = EASE(lam=5.0).fit(split.train)

    def nan_scores(queries):
        return jnp.full(queries.shape, jnp.nan, dtype=jnp.float32)

    with pytest.raises(NumericalError, match="'nan_scores' produced non-finite"):
        evaluate_many([good, nan_scores], task)
    results = evaluation._evaluate_many([nan_scores, good], task, 1024, evaluation.CUTOFFS)
    assert isinstance(results[0], NumericalError)
    _assert_same_result(results[1], evaluate(good, task))


def test_a_validation_task_without_users_is_a_clear_error_not_an_empty_concatenate():
    split = toy_split()
    empty = dataclasses.replace(split, val=split.val.multiply(0).tocsr())
    empty.val.eliminate_zeros()
    with pytest.raises(ValueError, match="no user has val items in this split.*≥ 6 interactions"):
        select_lambda(EASE(), split.train, empty)


@pytest.mark.parametrize("model", [InfiniteAE(), EASE()], ids=lambda m: m.name)
@pytest.mark.parametrize("metric", ["hr@100", "ndcg@100", "psp@10", "auc"])
def test_best_lambda_computes_only_its_metric_and_equals_select_lambda(model, metric):
    split = toy_split()
    support = split.train[:60]
    full = select_lambda(model, support, split, metric=metric)
    assert best_lambda(model, support, split, metric=metric) == (full.lam, full.scores[full.lam])
    task = evaluation_task(split, "val")
    fitted = model.clone(lam=full.lam).fit(support)
    (lean,) = evaluation._evaluate_many([fitted], task, 1024, evaluation.CUTOFFS, only=metric)
    whole = evaluate(fitted, task)
    assert set(lean.per_user) == ({metric} - {"auc"})
    for name, values in lean.per_user.items():
        np.testing.assert_array_equal(values, whole.per_user[name])
    assert (lean.auc == whole.auc) if metric == "auc" else np.isnan(lean.auc)


def test_best_lambda_rejects_an_unknown_metric_in_one_line():
    split = toy_split()
    with pytest.raises(ValueError, match="unknown metric 'hr@5'"):
        best_lambda(EASE(), split.train[:60], split, metric="hr@5")
