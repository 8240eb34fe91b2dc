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
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from cfbench import metrics
from cfbench.devices import precise_jit
from cfbench.models.base import NumericalError, Recommender, Support, padded_coordinates
from cfbench.splits import Split

__all__ = [
    "CUTOFFS",
    "METRICS",
    "EvaluationResult",
    "EvaluationTask",
    "LambdaSelection",
    "best_lambda",
    "evaluate",
    "evaluate_many",
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


@functools.partial(precise_jit, static_argnames=("k",))
def _mask_and_rank(scores: jax.Array, masked_rows: jax.Array, masked_cols: jax.Array, negatives: jax.Array, k: int):
    """Top-k item indices of ``scores`` with the (row, column) pairs given set to −inf (pairs with an
    out-of-range row are padding and dropped), the scores of the sampled negatives, and how many rows
    hold a non-finite score. The mask is scattered on the device rather than sent as a dense boolean
    matrix (10 MB per 256 users on 40k items)."""
    neg_scores = jnp.take_along_axis(scores, jnp.maximum(negatives, 0), axis=1)
    ranked = jax.lax.top_k(scores.at[masked_rows, masked_cols].set(-jnp.inf, mode="drop"), k)[1]
    non_finite = jnp.sum(~jnp.all(jnp.isfinite(scores), axis=1))  # users with any NaN / ±inf score
    return ranked, neg_scores, non_finite


Scorer = Recommender | Callable[[Support], jax.Array]


def _nonzero_mask(m: sp.csr_matrix) -> np.ndarray:
    """``m.toarray() > 0`` for a CSR matrix of positive entries, without the dense float intermediate
    (the masks are rebuilt per chunk and λ; on 40k items ``toarray`` was a quarter of a λ's evaluation)."""
    out = np.zeros(m.shape, dtype=bool)
    data = m.data > 0
    out[np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[data], m.indices[data]] = True
    return out


def _score_many(models: Sequence[Scorer], queries: sp.csr_matrix) -> list[jax.Array]:
    """Each model's scores for ``queries``; fitted models of one class share work through ``score_many``."""
    out: list[jax.Array | None] = [None] * len(models)
    by_class: dict[type[Recommender], list[tuple[int, Recommender]]] = {}
    for i, model in enumerate(models):
        if isinstance(model, Recommender):
            by_class.setdefault(type(model), []).append((i, model))
        else:
            out[i] = model(queries)
    for cls, members in by_class.items():
        blocks = cls.score_many(queries, [model for _, model in members])
        for (i, _), block in zip(members, blocks, strict=True):
            out[i] = block
    return cast(list[jax.Array], out)


def _score_in_chunks(models: Sequence[Scorer], queries: sp.csr_matrix,
                     n_items: int) -> Iterator[tuple[slice, list[jax.Array]]]:
    """Per ``SCORE_CHUNK`` rows of ``queries`` (the last zero-padded), those rows and every model's scores."""
    n = queries.shape[0]
    padded = sp.vstack([queries, sp.csr_matrix((-n % SCORE_CHUNK, n_items), dtype=queries.dtype)]).tocsr()
    for start in range(0, padded.shape[0], SCORE_CHUNK):
        blocks = _score_many(models, padded[start:start + SCORE_CHUNK])
        for block in blocks:
            if block.shape != (SCORE_CHUNK, n_items):
                raise ValueError(f"model returned scores of shape {block.shape}, expected {(SCORE_CHUNK, n_items)}")
        rows = slice(start, min(start + SCORE_CHUNK, n))
        yield rows, [block[:rows.stop - start] for block in blocks]


def _model_name(model: Scorer) -> str:
    return getattr(model, "name", getattr(model, "__name__", type(model).__name__))


def _evaluate_many(models: Sequence[Scorer], task: EvaluationTask, batch_size: int,
                   cutoffs: Sequence[int], only: str | None = None) -> list[EvaluationResult | NumericalError]:
    """One result per model, or the NumericalError of a model with a non-finite score (not scored further).

    The users are scored ``SCORE_CHUNK`` at a time, every live model on each chunk before the next, so
    at most one chunk's scores per model are alive; top-k and the AUC scores are taken per chunk, the
    metrics per batch of ``batch_size`` users. ``only`` (one of :data:`METRICS`): compute just that
    metric (the AUC's gathers only for "auc"); its values are the ones a full evaluation gives, bit for bit.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    if len(task.users) == 0:
        raise ValueError(f"no user has {task.phase} items in this split, so there is nothing to rank"
                         + (": λ cannot be chosen on validation (the protocol gives validation items only to users "
                            "with ≥ 6 interactions)" if task.phase == "val" else ""))
    n_items = task.inputs.shape[1]
    k_max = min(max(cutoffs), n_items)
    names = [f"{m}@{k}" for k in cutoffs for m in ("hr", "ndcg", "psp")]
    if only is not None and only not in (*names, "auc"):
        raise ValueError(f"unknown metric {only!r} for cut-offs {tuple(cutoffs)}: use one of {(*names, 'auc')}")
    want_auc = only in (None, "auc")
    names = [name for name in names if only in (None, name)]
    per_user: list[dict[str, list[np.ndarray]]] = [{name: [] for name in names} for _ in models]
    pos_scores: list[list[np.ndarray]] = [[] for _ in models]
    neg_scores: list[list[np.ndarray]] = [[] for _ in models]
    failed: list[NumericalError | None] = [None] * len(models)
    for start in range(0, len(task.users), batch_size):
        live = [i for i, err in enumerate(failed) if err is None]
        if not live:
            break
        users = task.users[start:start + batch_size]
        targets = task.targets[users]
        exclude = task.exclude[users]
        negatives = task.negatives[start:start + batch_size]
        ranked: dict[int, list[np.ndarray]] = {i: [] for i in live}
        non_finite = dict.fromkeys(live, 0)
        for rows, blocks in _score_in_chunks([models[i] for i in live], task.inputs[users], n_items):
            chunk_exclude = exclude[rows]
            mask_rows, mask_cols, mask_vals = padded_coordinates(chunk_exclude, chunk_exclude.shape[0])
            mask_rows[mask_vals <= 0] = chunk_exclude.shape[0]  # only positive entries exclude, as `> 0` did
            chunk_targets = targets[rows]
            chunk_negatives = negatives[rows]
            pos_rows = np.repeat(np.arange(rows.stop - rows.start), np.diff(chunk_targets.indptr))
            for i, scores in zip(live, blocks, strict=True):
                top, neg, bad = _mask_and_rank(scores, mask_rows, mask_cols, chunk_negatives, k_max)
                non_finite[i] += int(bad)
                ranked[i].append(np.asarray(top))
                if want_auc:  # AUC uses the unmasked scores, as the reference does.
                    pos_scores[i].append(_gather(scores, pos_rows, chunk_targets.indices))
                    neg_scores[i].append(np.asarray(neg)[chunk_negatives >= 0])
        hits_all = _nonzero_mask(targets)
        n_pos = np.diff(targets.indptr)
        sl = slice(start, start + len(users))
        for i in live:
            if non_finite[i]:
                failed[i] = NumericalError(
                    f"model {_model_name(models[i])!r} produced non-finite scores (NaN or ±inf) for {non_finite[i]} "
                    f"of {len(users)} users in a {task.phase} batch: rankings would be arbitrary")
                continue
            top = np.concatenate(ranked[i])
            hits = np.take_along_axis(hits_all, top, axis=1)
            ranked_w = task.weights[top]
            for k in cutoffs:
                wanted = per_user[i]
                if f"hr@{k}" in wanted:
                    wanted[f"hr@{k}"].append(metrics.hit_rate(hits, n_pos, k))
                if f"ndcg@{k}" in wanted:
                    wanted[f"ndcg@{k}"].append(metrics.ndcg(hits, n_pos, k))
                if f"psp@{k}" in wanted:
                    wanted[f"psp@{k}"].append(metrics.psp(hits, ranked_w, n_pos, task.psp_normalisers[k][sl], k))
    results: list[EvaluationResult | NumericalError] = []
    for i, err in enumerate(failed):
        if err is not None:
            results.append(err)
            continue
        auc = (metrics.pooled_auc(np.concatenate(pos_scores[i]), np.concatenate(neg_scores[i]))
               if pos_scores[i] else float("nan"))
        results.append(EvaluationResult(task.phase, task.users,
                                        {k: np.concatenate(v) for k, v in per_user[i].items()}, auc))
    return results


def evaluate(model: Scorer, task: EvaluationTask, batch_size: int = 1024,
             cutoffs: Sequence[int] = CUTOFFS) -> EvaluationResult:
    """Rank all items for every evaluated user of ``task`` and compute the metrics."""
    return evaluate_many([model], task, batch_size, cutoffs)[0]


def evaluate_many(models: Sequence[Scorer], task: EvaluationTask, batch_size: int = 1024,
                  cutoffs: Sequence[int] = CUTOFFS) -> list[EvaluationResult]:
    """``[evaluate(m, task, batch_size, cutoffs) for m in models]``, bit for bit, in one pass over the users.

    Fitted models of one class are scored together through their ``score_many``, which shares work that
    does not depend on the fitted state (∞-AE computes each kernel block once for all the models of a
    λ path). Raises the first model's :class:`NumericalError` if any model scores non-finite.
    """
    results = _evaluate_many(models, task, batch_size, cutoffs)
    for result in results:
        if isinstance(result, NumericalError):
            raise result
    return cast(list[EvaluationResult], results)


@dataclasses.dataclass(frozen=True)
class LambdaSelection:
    """The λ chosen on validation, the model fitted with it, and the validation score of every λ."""

    lam: float
    model: Recommender
    validation: EvaluationResult
    scores: dict[float, float]  # λ → validation HR@100 (nan where the fit failed)


#: Most bytes of fitted state (all fitted models' arrays, shared ones once) that ``select_lambda`` keeps
#: alive to score several λ together, for models that share scoring work; more λ take several passes.
SHARED_SCORING_BYTES = 1 << 30


def _fitted_nbytes(model: Recommender, seen: set[int]) -> int:
    """Bytes of ``model``'s fitted arrays not already in ``seen`` (shared arrays count once); adds them."""
    total = 0
    for key, value in vars(model).items():
        if key.endswith("_") and hasattr(value, "nbytes") and id(value) not in seen:
            seen.add(id(value))
            total += int(value.nbytes)
    return total


def _lambda_groups(model: Recommender, support: Support, grid: Sequence[float]
                   ) -> Iterator[list[tuple[float, Recommender | NumericalError]]]:
    """``model.fit_path`` in groups of λ to score together: one fitted λ at a time (as before) unless the
    model's class shares scoring work (overrides ``score_many``); then as many as ``SHARED_SCORING_BYTES``
    holds, assuming each further λ adds as many bytes as the last one did. A group is handed over before
    the next λ is fitted."""
    shares = getattr(type(model).score_many, "__func__", None) is not Recommender.score_many.__func__
    group: list[tuple[float, Recommender | NumericalError]] = []
    seen: set[int] = set()
    held = 0
    for lam, fitted in model.fit_path(support, grid):
        group.append((lam, fitted))
        if isinstance(fitted, Recommender):
            added = _fitted_nbytes(fitted, seen)
            held += added
            if not shares or held + added > SHARED_SCORING_BYTES:
                yield group
                group, seen, held = [], set(), 0
    if group:
        yield group


def _gather(scores: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``scores[rows, cols]`` with the index arrays padded to a power of two, so XLA compiles one gather
    per size class instead of one per chunk (each compiled program keeps ~10 MiB of host memory)."""
    n = len(rows)
    size = 1 << max(n - 1, 0).bit_length()
    pad = size - n
    if pad:
        rows = np.concatenate([rows, np.zeros(pad, rows.dtype)])
        cols = np.concatenate([cols, np.zeros(pad, cols.dtype)])
    return np.asarray(scores[rows, cols])[:n]


def select_lambda(model: Recommender, support: Support, split: Split, grid: Sequence[float] | None = None,
                  batch_size: int = 1024, metric: str = SELECTION_METRIC) -> LambdaSelection:
    """Fit ``model`` for every λ of ``grid`` and keep the best on validation ``metric`` (first on ties).

    The λ of one ``fit_path`` are evaluated together (``evaluate_many``) where the model shares scoring
    work between them; every λ's metrics equal its own ``evaluate`` bit for bit.
    """
    return _search(model, support, split, grid, batch_size, metric, only=None)


def best_lambda(model: Recommender, support: Support, split: Split, grid: Sequence[float] | None = None,
                batch_size: int = 1024, metric: str = SELECTION_METRIC) -> tuple[float, float]:
    """(λ, its validation ``metric``): :func:`select_lambda`'s choice and score bit for bit, computing only
    ``metric`` (no AUC gathers, no other cut-off or metric) and returning no fitted model; for callers that
    compare many supports by one number (Distill-CF validates its sample every few steps)."""
    chosen = _search(model, support, split, grid, batch_size, metric, only=metric)
    return chosen.lam, chosen.scores[chosen.lam]


def _search(model: Recommender, support: Support, split: Split, grid: Sequence[float] | None, batch_size: int,
            metric: str, only: str | None) -> LambdaSelection:
    grid = tuple(model.search_grid if grid is None else grid)
    task = evaluation_task(split, "val")
    best: LambdaSelection | None = None
    scores: dict[float, float] = {}
    for group in _lambda_groups(model, support, grid):
        fitted = [f for _, f in group if isinstance(f, Recommender)]
        results = iter(_evaluate_many(fitted, task, batch_size, CUTOFFS, only=only))
        for lam, fit in group:
            result = next(results) if isinstance(fit, Recommender) else fit
            if isinstance(result, NumericalError):
                scores[lam] = float("nan")
                continue
            assert isinstance(fit, Recommender)
            scores[lam] = result.summary()[metric]
            if best is None or scores[lam] > best.scores[best.lam]:
                best = LambdaSelection(lam, fit, result, scores)
    if best is None:
        raise NumericalError(f"{model.name}: every λ in {grid} failed numerically")
    return dataclasses.replace(best, scores=scores)
