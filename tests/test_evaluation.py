"""Evaluation: masking, candidates, batch-size independence, λ selection."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from cfbench.evaluation import evaluate, evaluation_task, select_lambda
from cfbench.models import EASE, InfiniteAE
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
