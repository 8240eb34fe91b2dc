"""Ranking metrics of the reference protocol, per user, from a top-k hit matrix.

Notation for one user: R = the top-k ranked items, P = the positives of the evaluated part,
m = min(|P|, k), hit_r = [R_r ∈ P].

* HR@k   = Σ_r hit_r / m
* NDCG@k = Σ_r hit_r / log₂(r + 2)  ÷  Σ_{r<m} 1 / log₂(r + 2)
* PSP@k  = (Σ_r hit_r · w_{R_r} / m)  ÷  (sum of the m largest w_i over i ∈ P)
  with inverse propensities w_i = 1 + C (n_i + B)^(−A), C = (ln N − 1)(B + 1)^A,
  A = 0.55, B = 1.5, n_i = train count of item i, N = number of train interactions.
  (The extra 1/m in the numerator is the reference's definition, kept for comparability.)
* AUC    = pooled over users: P(score of a positive > score of a sampled negative), ties ½.

All functions are plain NumPy and return one value per user (AUC: one pooled value).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "hit_rate",
    "ideal_dcg",
    "inverse_propensity",
    "ndcg",
    "pooled_auc",
    "psp",
    "psp_normaliser",
]

PROPENSITY_A = 0.55
PROPENSITY_B = 1.5


def inverse_propensity(item_counts: np.ndarray, n_interactions: int | None = None,
                       a: float = PROPENSITY_A, b: float = PROPENSITY_B) -> np.ndarray:
    """w_i = 1 + C (n_i + B)^(−A) with C = (ln N − 1)(B + 1)^A (Jain et al., 2016)."""
    counts = np.asarray(item_counts, dtype=np.float64)
    n = counts.sum() if n_interactions is None else n_interactions
    c = (np.log(n) - 1.0) * (b + 1.0) ** a
    return 1.0 + c * (counts + b) ** (-a)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(k) + 2.0)


def hit_rate(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    """HR@k per user; ``hits`` is (users × ≥k) booleans in rank order."""
    return hits[:, :k].sum(axis=1) / np.minimum(n_pos, k)


def ideal_dcg(n_pos: np.ndarray, k: int) -> np.ndarray:
    cum = np.concatenate([[0.0], np.cumsum(_discounts(k))])
    return cum[np.minimum(n_pos, k)]


def ndcg(hits: np.ndarray, n_pos: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k per user with binary gains and the ideal DCG over min(|P|, k) items."""
    hits = hits[:, :k]  # may be shorter than k when the catalogue has fewer than k items
    dcg = (hits * _discounts(hits.shape[1])[None, :]).sum(axis=1)
    return dcg / ideal_dcg(n_pos, k)


def psp_normaliser(positive_weights: list[np.ndarray], k: int) -> np.ndarray:
    """Per user, the sum of the min(|P|, k) largest propensity weights among the user's positives."""
    return np.array([np.sort(w)[::-1][:k].sum() for w in positive_weights])


def psp(hits: np.ndarray, ranked_weights: np.ndarray, n_pos: np.ndarray, normaliser: np.ndarray,
        k: int) -> np.ndarray:
    """PSP@k per user; ``ranked_weights`` are the propensity weights of the ranked items."""
    gain = (hits[:, :k] * ranked_weights[:, :k]).sum(axis=1) / np.minimum(n_pos, k)
    return gain / normaliser


def pooled_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Mann-Whitney AUC of all positive vs all negative scores (ties count ½); NaN if any score is NaN.

    U = Σ_p #{n < p} + ½ #{n = p}, counted exactly in integers against the sorted negatives (binary search):
    the same value, to the last bit, as the rank-sum form U = R_pos − P(P + 1)/2, whose half-integer sums are
    exact too, at a fraction of its cost (one sort of the negatives instead of a ranking of everything).
    """
    pos = np.asarray(positive_scores, dtype=np.float64).ravel()
    neg = np.asarray(negative_scores, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    if np.isnan(pos).any() or np.isnan(neg).any():
        return float("nan")
    neg, pos = np.sort(neg), np.sort(pos)  # sorted queries: each binary search starts where the last ended
    below = np.searchsorted(neg, pos, side="left").sum(dtype=np.int64)
    at_or_below = np.searchsorted(neg, pos, side="right").sum(dtype=np.int64)
    twice_u = int(below) + int(at_or_below)  # 2U = 2·#less + #equal
    return float((twice_u / 2.0) / (pos.size * neg.size))
