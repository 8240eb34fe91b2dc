"""Metrics against hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cfbench import metrics


def test_hit_rate_and_ndcg_by_hand():
    # user 0: 3 positives, hits at ranks 0 and 2 of the top-3; user 1: 1 positive, hit at rank 1
    hits = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)
    n_pos = np.array([3, 1])
    np.testing.assert_allclose(metrics.hit_rate(hits, n_pos, 3), [2 / 3, 1.0])
    np.testing.assert_allclose(metrics.hit_rate(hits, n_pos, 2), [1 / 2, 1.0])  # m = min(3, 2)
    dcg0 = 1 + 1 / math.log2(4)
    idcg0 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    np.testing.assert_allclose(metrics.ndcg(hits, n_pos, 3), [dcg0 / idcg0, 1 / math.log2(3)])


def test_inverse_propensity_formula():
    counts = np.array([0, 10, 100])
    n = 1000
    c = (math.log(n) - 1) * 2.5**0.55
    np.testing.assert_allclose(metrics.inverse_propensity(counts, n), 1 + c * (counts + 1.5) ** -0.55)
    assert metrics.inverse_propensity(counts, n)[0] > metrics.inverse_propensity(counts, n)[2]  # rare → heavier


def test_psp_by_hand():
    # one user, positives with weights 4 (item a), 2 (b), 1 (c); top-2 = [b, x]; m = min(3, 2) = 2
    hits = np.array([[True, False]])
    ranked_w = np.array([[2.0, 9.0]])
    norm = metrics.psp_normaliser([np.array([4.0, 2.0, 1.0])], k=2)
    assert norm.tolist() == [6.0]  # the two largest weights
    np.testing.assert_allclose(metrics.psp(hits, ranked_w, np.array([3]), norm, 2), [(2.0 / 2) / 6.0])


def test_pooled_auc_by_hand_with_ties():
    # pairs: (3 vs 1) win, (3 vs 2) win, (2 vs 1) win, (2 vs 2) tie → (3 + 0.5) / 4
    assert metrics.pooled_auc(np.array([3.0, 2.0]), np.array([1.0, 2.0])) == pytest.approx(3.5 / 4)
    assert metrics.pooled_auc(np.array([1.0]), np.array([2.0])) == 0.0
    assert math.isnan(metrics.pooled_auc(np.array([]), np.array([1.0])))
    assert math.isnan(metrics.pooled_auc(np.array([1.0, np.nan]), np.array([1.0])))


@pytest.mark.parametrize("seed", range(4))
def test_pooled_auc_equals_the_rank_sum_form_bit_for_bit(seed):
    """The shipped rows' AUCs came from U = R_pos − P(P+1)/2 over scipy's mid-ranks; the binary-search form
    must give the same float. Float32 scores on a coarse grid make many ties, within and across the classes."""
    import scipy.stats

    rng = np.random.default_rng(seed)
    pos = (rng.integers(0, 50 + 1000 * seed, 20_000) / 7).astype(np.float32)
    neg = (rng.integers(0, 40 + 1000 * seed, 90_000) / 7).astype(np.float32)
    p, n = pos.astype(np.float64), neg.astype(np.float64)
    ranks = scipy.stats.rankdata(np.concatenate([p, n]))
    rank_sum_form = float((ranks[: p.size].sum() - p.size * (p.size + 1) / 2.0) / (p.size * n.size))
    assert metrics.pooled_auc(pos, neg) == rank_sum_form
    brute = (np.sum(p[:2000, None] > n[None, :5000]) + 0.5 * np.sum(p[:2000, None] == n[None, :5000])) / (2000 * 5000)
    assert metrics.pooled_auc(pos[:2000], neg[:5000]) == pytest.approx(brute, abs=1e-15)
