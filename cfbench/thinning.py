"""Sparse variants of a real dataset: every user thinned to a few interactions, the protocol unchanged.

Distill-CF's defaults were chosen on ML-1M and ML-100K, where users have dozens to hundreds of
interactions and nearly every user has validation items. Sparse data (e-commerce sets with 3–5
interactions per user) is where such defaults break, so cfbench derives sparse variants of the
datasets it has (GitHub issue #13):

    thin:BASE,per_user=LO-HI[,seed=S]        e.g.  thin:ml-100k,per_user=4-8,seed=0

keeps, for every user of ``BASE`` (any name :func:`cfbench.datasets.load_dataset` accepts), a
uniformly random number k_u ∈ [LO, HI] of their interactions (all of them if they have fewer),
chosen uniformly at random, in file order. The split protocol then applies unchanged; with the
reference protocol a user with n ≥ 3 interactions gets ⌊0.8n⌋ − 1 train interactions and has
validation items only where ⌊0.9n⌋ > ⌊0.8n⌋:

    n          3  4  5  6  7  8  9  10
    train      1  2  3  3  4  5  6   7
    validation 0  0  0  1  1  1  1   1

so ``per_user=5-9`` gives 3–6 train interactions per user, and ``per_user=3-5`` a set where no user
has validation items. Deterministic per (BASE's content, LO, HI, seed). The variant's name is
``BASE-thinLO-HI-sS``; rows are keyed by that name plus the content hash, like any derived file.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd

from cfbench.datasets import DatasetError, Interactions

__all__ = ["PREFIX", "ThinSpec", "is_thinned_name", "load_thinned", "parse_thinned", "thin"]

PREFIX = "thin:"
FORM = "thin:BASE,per_user=LO-HI[,seed=S]"
_RANGE = re.compile(r"(\d+)-(\d+)")


@dataclasses.dataclass(frozen=True)
class ThinSpec:
    """Keep a random k_u ∈ [``low``, ``high``] interactions of every user of ``base``, drawn with ``seed``."""

    base: str
    low: int
    high: int
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.low <= self.high:
            raise DatasetError(f"per_user must be LO-HI with 1 ≤ LO ≤ HI, got {self.low}-{self.high}")

    @property
    def label(self) -> str:
        return f"{self.base}-thin{self.low}-{self.high}-s{self.seed}"


def is_thinned_name(name: str) -> bool:
    return name.startswith(PREFIX)


def parse_thinned(name: str) -> ThinSpec:
    """The spec of ``thin:BASE,per_user=LO-HI[,seed=S]``; a one-line :class:`DatasetError` otherwise."""
    if not is_thinned_name(name):
        raise DatasetError(f"{name!r} is not a thinned dataset: expected {FORM}")
    base, *parts = (p.strip() for p in name[len(PREFIX):].split(","))
    if not base or "=" in base:
        raise DatasetError(f"{name!r}: the base dataset comes first; expected {FORM}")
    values: dict[str, str] = {}
    for part in parts:
        key, sep, text = (s.strip() for s in part.partition("="))
        if not sep or key not in ("per_user", "seed") or key in values:
            raise DatasetError(f"{name!r}: {part!r} is not per_user=LO-HI or seed=S (each once); expected {FORM}")
        values[key] = text
    match = _RANGE.fullmatch(values.get("per_user", ""))
    if match is None:
        raise DatasetError(f"{name!r}: per_user=LO-HI (two whole numbers) is required; expected {FORM}")
    seed = values.get("seed", "0")
    if not seed.isdigit():
        raise DatasetError(f"{name!r}: seed={seed!r} is not a whole number ≥ 0; expected {FORM}")
    try:
        return ThinSpec(base, int(match[1]), int(match[2]), int(seed))
    except DatasetError as err:
        raise DatasetError(f"{name!r}: {err}") from None


def thin(data: Interactions, spec: ThinSpec) -> Interactions:
    """``data`` with every user thinned to a random k_u ∈ [low, high] of their interactions (see the module)."""
    users, inverse = np.unique(np.asarray(data.user), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(users))
    rng = np.random.default_rng([spec.seed, spec.low, spec.high])
    keep_n = np.minimum(rng.integers(spec.low, spec.high + 1, size=len(users)), counts)
    # a random rank per interaction within its user; keep the ranks below k_u
    order = np.lexsort((rng.random(len(inverse)), inverse))
    rank = np.empty(len(inverse), np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank[order] = np.arange(len(inverse)) - starts[inverse[order]]
    mask = rank < keep_n[inverse]

    def take(col: np.ndarray | None) -> np.ndarray | None:
        return None if col is None else np.asarray(col)[mask]
    return Interactions(spec.label, take(data.user), take(data.item), take(data.rating), take(data.timestamp),
                        source=f"{data.source} thinned per_user={spec.low}-{spec.high} seed={spec.seed}")


def load_thinned(name: str, data_dir=None) -> Interactions:
    """Load ``BASE`` and thin it as ``name`` says."""
    from cfbench.datasets import load_dataset

    spec = parse_thinned(name)
    if is_thinned_name(spec.base):
        raise DatasetError(f"{name!r}: thin an original dataset, not a thinned one")
    data = load_dataset(spec.base, data_dir)
    if len(pd.unique(data.user)) == 0:
        raise DatasetError(f"{name!r}: {spec.base} has no interactions to thin")
    return thin(data, spec)
