"""The reference protocol of the ∞-AE / Distill-CF papers: implicit feedback and a per-user split.

* Every rating is a positive (optionally only ratings ≥ a threshold); duplicate (user, item)
  pairs collapse to one (the earliest); users with fewer than 3 interactions are dropped.
  Users and items are re-indexed over the kept interactions, so the item catalogue holds
  every item of the dataset, also those that end up with no train interaction.
* Per user with n interactions, in a seeded random order: position 0 → test; positions
  [0, ⌊0.8n⌋) other than 0 → train; [⌊0.8n⌋, ⌊0.9n⌋) → validation; the rest → test.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cfbench.datasets import DatasetError, Interactions

__all__ = ["Split", "freeze", "implicit_feedback", "read_only_csr", "reference_split"]

MIN_INTERACTIONS = 3


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """Train / validation / test interaction matrices (users × items, 0/1 CSR, float32)."""

    dataset: str
    seed: int
    train: sp.csr_matrix
    val: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray  # original id of each row
    item_ids: np.ndarray  # original id of each column
    train_timestamps: sp.csr_matrix | None = None  # same sparsity as train, values = timestamps
    rating_threshold: float | None = None

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    @functools.cached_property
    def train_item_counts(self) -> np.ndarray:
        return np.asarray(self.train.sum(axis=0)).ravel()

    @functools.cached_property
    def train_user_counts(self) -> np.ndarray:
        return np.diff(self.train.indptr)

    @functools.cached_property
    def train_val(self) -> sp.csr_matrix:
        return (self.train + self.val).tocsr()

    def summary(self) -> dict[str, int]:
        return {"users": self.n_users, "items": self.n_items, "train": int(self.train.nnz),
                "val": int(self.val.nnz), "test": int(self.test.nnz)}

    def _arrays(self) -> list[np.ndarray]:
        mats = [m for m in (self.train, self.val, self.test, self.train_timestamps) if m is not None]
        return [a for m in mats for a in (m.data, m.indices, m.indptr)] + [self.user_ids, self.item_ids]

    def fingerprint(self) -> str:
        """A hash of every array of the split: equal before and after a plugin ran iff it changed nothing."""
        h = hashlib.blake2b(digest_size=16)
        for a in self._arrays():
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(np.ascontiguousarray(a).data)
        return h.hexdigest()


def freeze(split: Split) -> Split:
    """Make every array of ``split`` read-only, so that a plugin's write raises instead of corrupting
    the rows computed after it; returns ``split``."""
    for a in split._arrays():
        a.flags.writeable = False
    return split


def read_only_csr(m: sp.csr_matrix) -> sp.csr_matrix:
    """A new CSR matrix object over ``m``'s (read-only) arrays: rebinding its attributes cannot touch ``m``."""
    view = sp.csr_matrix((m.data, m.indices, m.indptr), shape=m.shape, copy=False)
    view.has_sorted_indices = m.has_sorted_indices
    return view


def implicit_feedback(data: Interactions, rating_threshold: float | None = None,
                      min_interactions: int = MIN_INTERACTIONS) -> pd.DataFrame:
    """Positive interactions with contiguous ``u``/``i`` codes (columns u, i, user, item[, timestamp])."""
    df = pd.DataFrame({"user": data.user, "item": data.item})
    if data.timestamp is not None:
        df["timestamp"] = data.timestamp
    if rating_threshold is not None:
        if data.rating is None:
            raise DatasetError(f"{data.name}: --rating-threshold needs ratings, but the data has none")
        df = df[data.rating >= rating_threshold]
    sort_cols = ["user", "item"] + (["timestamp"] if "timestamp" in df else [])
    df = df.sort_values(sort_cols, kind="stable").drop_duplicates(["user", "item"], keep="first")
    counts = df.groupby("user")["item"].transform("size")
    df = df[counts >= min_interactions]
    if df.empty:
        raise DatasetError(f"{data.name}: no user has {min_interactions} or more interactions")
    df = df.assign(u=pd.factorize(df["user"], sort=True)[0], i=pd.factorize(df["item"], sort=True)[0])
    return df.reset_index(drop=True)


def reference_split(data: Interactions, seed: int, rating_threshold: float | None = None) -> Split:
    """Split ``data`` with the reference protocol, shuffling each user's interactions with ``seed``."""
    df = implicit_feedback(data, rating_threshold)
    u = df["u"].to_numpy()
    i = df["i"].to_numpy()
    n_users, n_items = int(u.max()) + 1, int(i.max()) + 1

    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(u)), u))  # by user, random within user
    u_sorted = u[order]
    starts = np.searchsorted(u_sorted, np.arange(n_users))
    n = np.bincount(u_sorted, minlength=n_users)
    pos = np.arange(len(u)) - starts[u_sorted]
    n_u = n[u_sorted]
    cut_train, cut_val = (n_u * 8) // 10, (n_u * 9) // 10  # exact ⌊0.8n⌋, ⌊0.9n⌋ in integers
    part = np.where(pos == 0, 2, np.where(pos < cut_train, 0, np.where(pos < cut_val, 1, 2)))

    def matrix(mask: np.ndarray, values: np.ndarray | None = None) -> sp.csr_matrix:
        rows, cols = u_sorted[mask], i[order][mask]
        vals = np.ones(mask.sum(), np.float32) if values is None else values[order][mask]
        m = sp.csr_matrix((vals, (rows, cols)), shape=(n_users, n_items))
        m.sort_indices()
        return m

    timestamps = None
    if "timestamp" in df:
        ts = df["timestamp"].to_numpy(np.int64)
        timestamps = matrix(part == 0, ts)
    user_ids = df.drop_duplicates("u").sort_values("u")["user"].to_numpy()
    item_ids = df.drop_duplicates("i").sort_values("i")["item"].to_numpy()
    return Split(data.name, seed, matrix(part == 0), matrix(part == 1), matrix(part == 2), user_ids, item_ids,
                 timestamps, rating_threshold)
