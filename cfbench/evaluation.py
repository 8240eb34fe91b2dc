"""Full-catalogue ranking evaluation of any :class:`~cfbench.models.base.Recommender`.

For the validation phase a user's query input is their train row, train items are masked
and the validation items are the positives; for the test phase the query input is
train + validation, both are masked, and the test items are the positives. Every item of
the dataset is a candidate. Only users with at least one positive are evaluated.

Users are scored ``batch_size`` at a time, so memory is bounded by one (batch × items)
block; per-user results do not depend on the batch size.

Every score must be finite: a NaN makes top-k and AUC arbitrary, and ±inf ties, so a model that
returns a non-finite score for any (user, item) raises :class:`~cfbench.models.base.NumericalError`
instead of producing metrics.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from cfbench import metrics
from cfbench.models.base import NumericalError, Recommender, Support
from cfbench.splits import Split

__all__ = [
    "CUTOFFS",
    "METRICS",
    "EvaluationResult",
    "EvaluationTask",
    "LambdaSelection",
    "evaluate",
    "evaluation_task",
    "select_lambda",
]

CUTOFFS = (10, 100)
METRICS = tuple(f"{m}@{k}" for k in CUTOFFS for m in ("hr", "ndcg", "psp")) + ("auc",)
N_NEGATIVES = 50
SELECTION_METRIC = "hr@100"
#: Users scored per model call. Fixed (the last chunk is zero-padded) so that every user is scored by
#: a computation of the same shape whatever ``batch_size`` is: floating-point results, and so ties and
#: metrics, then do not depend on the batch size.
SCORE_CHUNK = 256


@dataclasses.dataclass(frozen=True, eq=False)
class EvaluationTask:
    """What to rank for whom: query inputs, positives, masked items, AUC negatives."""

    phase: str
    inputs: sp.csr_matrix
    targets: sp.csr_matrix
    exclude: sp.csr_matrix
    users: np.ndarray  # evaluated users (≥ 1 positive)
    negatives: np.ndarray  # (users, N_NEGATIVES) item ids for AUC, −1 = none
    weights: np.ndarray  # inverse propensity of each item (from train counts)
    psp_normalisers: dict[int, np.ndarray]  # per evaluated user


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """Per-user metrics (fractions, aligned with ``users``) and the pooled AUC."""

    phase: str
    users: np.ndarray
    per_user: dict[str, np.ndarray]
    auc: float

    def summary(self) -> dict[str, float]:
        """Mean of each ranking metric ×100 over evaluated users, and the AUC in [0, 1]."""
        out = {name: float(100.0 * values.mean()) for name, values in self.per_user.items()}
        out["auc"] = self.auc
        return out


def _sample_negatives(known: sp.csr_matrix, n: int, seed: int) -> np.ndarray:
    """For each user, ``n`` distinct items they never interacted with (fewer if the catalogue is short)."""
    rng = np.random.default_rng([seed, 0xA0C])
    n_users, n_items = known.shape
    out = np.full((n_users, n), -1, dtype=np.int64)
    for u in range(n_users):
        seen = known.indices[known.indptr[u]:known.indptr[u + 1]]
        free = n_items - len(seen)
        if free <= 0:
            continue
        if free <= 4 * n:
            pool = np.setdiff1d(np.arange(n_items), seen, assume_unique=True)
            pick = rng.choice(pool, size=min(n, free), replace=False)
        else:
            pick = np.empty(0, dtype=np.int64)
            while pick.size < n:
                cand = rng.integers(0, n_items, size=3 * n)
                cand = cand[~np.isin(cand, seen)]
                pick = np.concatenate([pick, cand])
                _, first = np.unique(pick, return_index=True)
                pick = pick[np.sort(first)]
            pick = pick[:n]
        out[u, : len(pick)] = pick
    return out


def evaluation_task(split: Split, phase: str) -> EvaluationTask:
    """The validation (``"val"``) or test (``"test"``) task of a split; cached per split."""
    cache = split.__dict__.setdefault("_tasks", {})
    if phase not in cache:
        cache[phase] = _build_task(split, phase)
    return cache[phase]


def _build_task(split: Split, phase: str) -> EvaluationTask:
    if phase == "val":
        inputs, targets = split.train, split.val
    elif phase == "test":
        inputs, targets = split.train_val, split.test
    else:
        raise ValueError(f"phase must be 'val' or 'test', got {phase!r}")
    users = np.flatnonzero(np.diff(targets.indptr) > 0)
    known = (split.train + split.val + split.test).tocsr()
    known.sort_indices()
    weights = metrics.inverse_propensity(split.train_item_counts, split.train.nnz)
    pos_weights = [weights[targets.indices[targets.indptr[u]:targets.indptr[u + 1]]] for u in users]
    return EvaluationTask(
        phase=phase, inputs=inputs, targets=targets, exclude=inputs, users=users,
        negatives=_sample_negatives(known, N_NEGATIVES, split.seed)[users], weights=weights,
        psp_normalisers={k: metrics.psp_normaliser(pos_weights, k) for k in CUTOFFS},
    )


@functools.partial(jax.jit, static_argnames=("k",))
def _mask_and_rank(scores: jax.Array, masked: jax.Array, negatives: jax.Array, k: int):
    neg_scores = jnp.take_along_axis(scores, jnp.maximum(negatives, 0), axis=1)
    ranked = jax.lax.top_k(jnp.where(masked, -jnp.inf, scores), k)[1]
    non_finite = jnp.sum(~jnp.all(jnp.isfinite(scores), axis=1))  # users with any NaN / ±inf score
    return ranked, neg_scores, non_finite


def _score_in_chunks(score: Callable[[Support], jax.Array], queries: sp.csr_matrix, n_items: int) -> jax.Array:
    n = queries.shape[0]
    padded = sp.vstack([queries, sp.csr_matrix((-n % SCORE_CHUNK, n_items), dtype=queries.dtype)]).tocsr()
    chunks = []
    for start in range(0, padded.shape[0], SCORE_CHUNK):
        block = score(padded[start:start + SCORE_CHUNK])
        if block.shape != (SCORE_CHUNK, n_items):
            raise ValueError(f"model returned scores of shape {block.shape}, expected {(SCORE_CHUNK, n_items)}")
        chunks.append(block)
    return jnp.concatenate(chunks)[:n] if len(chunks) > 1 else chunks[0][:n]


def evaluate(model: Recommender | Callable[[Support], jax.Array], task: EvaluationTask, batch_size: int = 1024,
             cutoffs: Sequence[int] = CUTOFFS) -> EvaluationResult:
    """Rank all items for every evaluated user of ``task`` and compute the metrics."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    score = model.score if isinstance(model, Recommender) else model
    n_items = task.inputs.shape[1]
    k_max = min(max(cutoffs), n_items)
    per_user: dict[str, list[np.ndarray]] = {f"{m}@{k}": [] for k in cutoffs for m in ("hr", "ndcg", "psp")}
    pos_scores, neg_scores = [], []
    for start in range(0, len(task.users), batch_size):
        users = task.users[start:start + batch_size]
        scores = _score_in_chunks(score, task.inputs[users], n_items)
        targets = task.targets[users]
        negatives = task.negatives[start:start + batch_size]
        ranked, neg, non_finite = _mask_and_rank(scores, task.exclude[users].toarray() > 0, negatives, k_max)
        if int(non_finite):
            name = getattr(model, "name", getattr(model, "__name__", type(model).__name__))
            raise NumericalError(f"model {name!r} produced non-finite scores (NaN or ±inf) for {int(non_finite)} of "
                                 f"{len(users)} users in a {task.phase} batch: rankings would be arbitrary")
        ranked = np.asarray(ranked)
        neg = np.asarray(neg)
        # AUC uses the unmasked scores, as the reference does.
        rows = np.repeat(np.arange(len(users)), np.diff(targets.indptr))
        pos_scores.append(np.asarray(scores[rows, targets.indices]))
        neg_scores.append(neg[negatives >= 0])

        hits = np.take_along_axis(targets.toarray() > 0, ranked, axis=1)
        n_pos = np.diff(targets.indptr)
        ranked_w = task.weights[ranked]
        sl = slice(start, start + len(users))
        for k in cutoffs:
            per_user[f"hr@{k}"].append(metrics.hit_rate(hits, n_pos, k))
            per_user[f"ndcg@{k}"].append(metrics.ndcg(hits, n_pos, k))
            per_user[f"psp@{k}"].append(metrics.psp(hits, ranked_w, n_pos, task.psp_normalisers[k][sl], k))
    auc = metrics.pooled_auc(np.concatenate(pos_scores), np.concatenate(neg_scores)) if pos_scores else float("nan")
    return EvaluationResult(task.phase, task.users, {k: np.concatenate(v) for k, v in per_user.items()}, auc)


@dataclasses.dataclass(frozen=True)
class LambdaSelection:
    """The λ chosen on validation, the model fitted with it, and the validation score of every λ."""

    lam: float
    model: Recommender
    validation: EvaluationResult
    scores: dict[float, float]  # λ → validation HR@100 (nan where the fit failed)


def select_lambda(model: Recommender, support: Support, split: Split, grid: Sequence[float] | None = None,
                  batch_size: int = 1024, metric: str = SELECTION_METRIC) -> LambdaSelection:
    """Fit ``model`` for every λ of ``grid`` and keep the best on validation ``metric`` (first on ties)."""
    grid = tuple(model.lambda_grid if grid is None else grid)
    task = evaluation_task(split, "val")
    best: LambdaSelection | None = None
    scores: dict[float, float] = {}
    for lam, fitted in model.fit_path(support, grid):
        if isinstance(fitted, NumericalError):
            scores[lam] = float("nan")
            continue
        try:
            result = evaluate(fitted, task, batch_size)
        except NumericalError:
            scores[lam] = float("nan")
            continue
        scores[lam] = result.summary()[metric]
        if best is None or scores[lam] > best.scores[best.lam]:
            best = LambdaSelection(lam, fitted, result, scores)
    if best is None:
        raise NumericalError(f"{model.name}: every λ in {grid} failed numerically")
    return dataclasses.replace(best, scores=scores)
