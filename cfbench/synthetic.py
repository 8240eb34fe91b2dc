"""Synthetic interaction data: seeded, Netflix-sized, with power-law degrees fitted to real data.

Model (:func:`generate`). Every user u gets a degree d_u and every item i a popularity w_i, both drawn
from *truncated* power laws p(x) ∝ x^−α on [1, r] (continuous; :func:`truncated_power_law`):

* users: d_u = clip(round(s·x_u), ``min_user_degree``, ``items``), where the scale s is solved
  (bisection on the drawn values) so that Σ d_u = ``interactions`` exactly; ties at the last step
  are broken by taking one off the first users that crossed it;
* items: w_i = x_i, the relative popularity;
* each user's items are a weighted sample **without replacement** ∝ w (successive sampling: draws
  with replacement, duplicates rejected, redrawn until the user has d_u distinct items — an exact
  sampler of that law — with an exact Efraimidis–Spirakis top-k over the items not yet drawn for
  users that are heavy or still short after :data:`MAX_ROUNDS` rounds);
* an item that no user drew (rare: only items of the lowest popularity) replaces the most popular
  item of a random user, so the data has exactly ``users`` users, ``items`` items and
  ``interactions`` distinct (user, item) pairs, and every user keeps d_u ≥ ``min_user_degree``.

Users are generated in blocks of :func:`block_users` users (a function of the number of items only,
≈ 32 M cells of a per-block bitmap), each block from its own ``SeedSequence(seed, spawn_key=(3, block))``
stream, so memory is bounded whatever the size and the result is a function of the spec alone.
Ids are ``int32``: users 0..users−1 in order, each user's items in increasing order; no ratings.

The default exponents and ranges are the fit of :func:`fit_power_law` on MovieLens 1M (below); the
generator never reads real data.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cfbench.datasets import DatasetError, Interactions
from cfbench.splits import MIN_INTERACTIONS

__all__ = ["PRESETS", "PowerLawFit", "SynthSpec", "degrees", "fit_power_law", "generate", "is_synthetic",
           "is_synthetic_name", "load_synthetic", "parse_synthetic", "power_law_exponent", "truncated_power_law",
           "write_csv"]

# ----------------------------------------------------------------------------- fitted constants

# Produced by ``fit_power_law(load_dataset("ml-1m"))`` (this module, CFBENCH_DATA_DIR=../shared/data,
# ml-1m/ratings_notimestamps.dat: 1,000,209 ratings of 6,040 users and 3,706 movies), rounded to
# 4 significant digits: truncated discrete power law over each side's whole observed range
# (users 20..2,314 ratings, movies 1..3,428), exponent by the continuous approximation of
# Clauset, Shalizi & Newman (2009) with an upper cut-off; range = (max + ½)/(min − ½).
# For context, the same fit (exponent, range) on
#   ml-100k: users 1.490 (37.82), items 0.9425 (1,167);  gowalla: users 1.902 (119.4), items 2.527 (243.2);
#   ml-latest-small: users 1.543 (138.4), items 1.400 (659).
# The untruncated CSN formula α = 1 + n / Σ ln(x / (x_min − ½)) gives on ml-1m users 1.612, items 1.192
# (ml-100k 1.767 / 1.265, gowalla 1.958 / 2.529): MovieLens degrees are cut off well inside the range a
# pure power law would span, so the untruncated exponent describes neither the body nor the tail. CSN's
# KS-chosen x_min picks only the top 111 users (x_min 805, α 5.79) and 129 movies (x_min 1,220, α 4.32)
# of ml-1m, which says how the distribution ends, not what most users and items look like.
USER_EXPONENT = 1.422
USER_RANGE = 118.7
ITEM_EXPONENT = 0.8750
ITEM_RANGE = 6857.0

MIN_USER_DEGREE = 6  # ⌊0.8n⌋ < ⌊0.9n⌋ from n = 6: every user has train, validation and test items
MAX_ROUNDS = 16  # rejection rounds before the exact top-k finishes a user's sample
HEAVY_FRACTION = 0.25  # users with more than this fraction of the items go straight to the exact top-k
BLOCK_CELLS = 1 << 25  # users per block × items: the bitmap of one block (32 MiB)
_INT32_MAX = int(np.iinfo(np.int32).max)
_STREAM_USERS, _STREAM_ITEMS, _STREAM_COVER, _STREAM_BLOCKS = 0, 1, 2, 3


# ----------------------------------------------------------------------------- the spec


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    """What to generate; :func:`generate` hits ``users``, ``items`` and ``interactions`` exactly."""

    users: int
    items: int
    interactions: int
    seed: int = 0
    user_exponent: float = USER_EXPONENT
    item_exponent: float = ITEM_EXPONENT
    user_range: float = USER_RANGE  # max/min of the user degree law before clipping
    item_range: float = ITEM_RANGE  # max/min item popularity
    min_user_degree: int = MIN_USER_DEGREE

    def __post_init__(self) -> None:
        for name in ("users", "items", "interactions", "seed", "min_user_degree"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # plain ints: the label and source read the same
        for name in ("users", "items"):
            if not 1 <= getattr(self, name) <= _INT32_MAX:
                raise ValueError(f"{name} must be between 1 and {_INT32_MAX:,}, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be ≥ 0, got {self.seed}")
        for name in ("user_exponent", "item_exponent", "user_range", "item_range"):
            value = getattr(self, name)
            if not isinstance(value, int | float | np.number) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("user_range", "item_range"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1 (the ratio of the largest to the smallest value), "
                                 f"got {getattr(self, name)}")
        if not MIN_INTERACTIONS <= self.min_user_degree <= self.items:
            raise ValueError(f"min_user_degree must be between {MIN_INTERACTIONS} (the split drops users "
                             f"with fewer) and items ({self.items}), got {self.min_user_degree}")
        low, high = self.users * self.min_user_degree, self.users * self.items
        if not max(low, self.items) <= self.interactions <= high:
            raise ValueError(f"interactions must be between {max(low, self.items):,} (every user has at least "
                             f"min_user_degree={self.min_user_degree} items and every item a user) and "
                             f"{high:,} (users × items), got {self.interactions:,}")

    @property
    def label(self) -> str:
        """A stable dataset name, e.g. ``synth-u1000-i500-n20000-s0`` (non-default shape parameters appended)."""
        text = f"synth-u{self.users}-i{self.items}-n{self.interactions}-s{self.seed}"
        for field, tag in _LABEL_TAGS.items():
            value = getattr(self, field)
            if value != _DEFAULTS[field]:
                text += f"-{tag}{value!r}"  # repr: the shortest text that reads back as the same number
        return text

    def describe(self) -> str:
        """Every field as ``key=value`` (recorded as the data's ``source``)."""
        return ",".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SynthSpec) if f.default is not dataclasses.MISSING}
_LABEL_TAGS = {"user_exponent": "au", "item_exponent": "ai", "user_range": "ru", "item_range": "ri",
               "min_user_degree": "m"}

# Netflix Prize training set (480,189 users, 17,770 movies, 100,480,507 ratings); the small one keeps
# its mean of 209 ratings per user with 1/100 of the users and interactions and 1/10 of the items.
PRESETS: dict[str, tuple[SynthSpec, str]] = {
    "synth-netflix": (SynthSpec(480_189, 17_770, 100_480_507, seed=0), "the Netflix Prize's sizes"),
    "synth-netflix-small": (SynthSpec(4_802, 1_777, 1_004_805, seed=0),
                            "Netflix's users and interactions / 100, items / 10"),
}
PARAMETRIC_PREFIX = "synth:"
PARAMETRIC_FORM = "synth:users=N,items=M,interactions=K[,seed=S][,user_exponent=A][,item_exponent=B]"
LICENCE = "synthetic, generated locally"
_SOURCE_PREFIX = "synthetic:"
_LABEL_RE = re.compile(r"synth-u\d+-i\d+-n\d+-s\d+(-[a-z]+[0-9.e+-]+)*")


# ----------------------------------------------------------------------------- power laws


def truncated_power_law(u: np.ndarray, exponent: float, ratio: float) -> np.ndarray:
    """Inverse CDF of the continuous law p(x) ∝ x^−exponent on [1, ratio], at uniforms ``u`` ∈ [0, 1)."""
    b = 1.0 - exponent
    log_r = math.log(ratio)
    if abs(b * log_r) < 1e-12:  # exponent 1: log-uniform
        return np.exp(u * log_r)
    return np.exp(np.log1p(u * math.expm1(b * log_r)) / b)


def _mean_log(beta: float, log_r: float) -> float:
    """E[ln x] for x ~ p(x) ∝ x^−(1+beta) on [1, e^log_r]; decreasing in beta, from log_r to 0."""
    z = beta * log_r
    if abs(z) < 1e-6:
        return log_r / 2 - beta * log_r * log_r / 12
    if z > 700:
        return 1.0 / beta
    return 1.0 / beta - log_r / math.expm1(z)


def power_law_exponent(degrees: np.ndarray, x_min: int | None = None, x_max: int | None = None) -> float:
    """Maximum-likelihood exponent α of a discrete power law p(k) ∝ k^−α over the degrees in [x_min, x_max].

    The continuous approximation of Clauset, Shalizi & Newman (2009, section 3): each k stands for
    [k − ½, k + ½). Without ``x_max`` this is their closed form α = 1 + n / Σ ln(k / (x_min − ½));
    with ``x_max`` the law is truncated at x_max + ½ and α solves E_α[ln k] = mean ln k (the same
    estimator with an upper cut-off; it tends to the closed form as x_max → ∞). ``x_min`` defaults
    to the smallest degree; degrees outside [x_min, x_max] are ignored.
    """
    k = np.asarray(degrees, dtype=np.float64).ravel()
    if k.size == 0:
        raise ValueError("no degrees to fit")
    lo = float(k.min()) if x_min is None else float(x_min)
    if lo < 1:
        raise ValueError(f"x_min must be ≥ 1, got {lo:g}")
    k = k[k >= lo] if x_max is None else k[(k >= lo) & (k <= x_max)]
    if k.size == 0:
        raise ValueError(f"no degree lies in [{lo:g}, {x_max if x_max is not None else '∞'}]")
    mean_log = float(np.mean(np.log(k / (lo - 0.5))))
    if x_max is None:
        return 1.0 + 1.0 / mean_log
    if x_max < lo:
        raise ValueError(f"x_max ({x_max}) must be ≥ x_min ({lo:g})")
    log_r = math.log((x_max + 0.5) / (lo - 0.5))
    a, b = -1.0, 1.0  # bracket beta = α − 1: _mean_log falls from log_r to 0 as beta goes from −∞ to ∞
    while _mean_log(a, log_r) < mean_log:
        a *= 2
    while _mean_log(b, log_r) > mean_log:
        b *= 2
    for _ in range(200):
        mid = (a + b) / 2
        if mid in (a, b):
            break
        a, b = (mid, b) if _mean_log(mid, log_r) > mean_log else (a, mid)
    return 1.0 + (a + b) / 2


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """Truncated power-law fits of a dataset's user and item degrees (distinct items per user, users per item)."""

    user_exponent: float
    item_exponent: float
    user_min: int
    user_max: int
    item_min: int
    item_max: int

    @property
    def user_range(self) -> float:
        return (self.user_max + 0.5) / (self.user_min - 0.5)

    @property
    def item_range(self) -> float:
        return (self.item_max + 0.5) / (self.item_min - 0.5)


def degrees(data: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Distinct items per user and distinct users per item (duplicate pairs counted once), in order of first
    appearance."""
    import pandas as pd

    user_codes, _ = pd.factorize(np.asarray(data.user))
    item_codes, items = pd.factorize(np.asarray(data.item))
    pairs = user_codes.astype(np.int64) * len(items) + item_codes
    pairs.sort()
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))] if pairs.size else pairs
    return np.bincount(pairs // len(items)), np.bincount(pairs % len(items))


def fit_power_law(data: Interactions) -> PowerLawFit:
    """Fit :func:`power_law_exponent` to both sides of ``data`` over their whole observed range
    (x_min = smallest, x_max = largest degree), the law :func:`generate` draws from."""
    if len(data) == 0:
        raise ValueError(f"{data.name}: no interactions to fit")
    user_deg, item_deg = degrees(data)
    u_lo, u_hi, i_lo, i_hi = int(user_deg.min()), int(user_deg.max()), int(item_deg.min()), int(item_deg.max())
    return PowerLawFit(power_law_exponent(user_deg, u_lo, u_hi), power_law_exponent(item_deg, i_lo, i_hi),
                       u_lo, u_hi, i_lo, i_hi)


# ----------------------------------------------------------------------------- generation


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def block_users(items: int) -> int:
    """Users generated together (one RNG stream per block): ≈ :data:`BLOCK_CELLS` / items."""
    return max(1, BLOCK_CELLS // items)


def user_degrees(spec: SynthSpec) -> np.ndarray:
    """Each user's number of items (int64), summing to ``spec.interactions`` exactly."""
    x = truncated_power_law(_rng(spec.seed, _STREAM_USERS).random(spec.users), spec.user_exponent, spec.user_range)

    def at(scale: float) -> np.ndarray:
        return np.clip(np.floor(scale * x + 0.5), spec.min_user_degree, spec.items).astype(np.int64)

    lo, hi = 0.0, float(spec.items) + 1.0  # Σ at(lo) = users·min ≤ interactions ≤ users·items = Σ at(hi)
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if at(mid).sum() < spec.interactions else (lo, mid)
    low, deg = at(lo), at(hi)
    excess = int(deg.sum()) - spec.interactions  # 0 ≤ excess ≤ users that step up between lo and hi
    if excess:
        deg[np.flatnonzero(deg > low)[:excess]] -= 1
    return deg


def item_weights(spec: SynthSpec) -> np.ndarray:
    """Each item's relative popularity (float64)."""
    u = _rng(spec.seed, _STREAM_ITEMS).random(spec.items)
    return truncated_power_law(u, spec.item_exponent, spec.item_range)


def _top_k_unseen(rng: np.random.Generator, seen: np.ndarray, rows: np.ndarray, need: np.ndarray,
                  weights: np.ndarray) -> Iterator[np.ndarray]:
    """Efraimidis–Spirakis: for each row, the ``need`` unseen items with the smallest Exp(1)/w (flat keys)."""
    n_items = weights.size
    step = max(1, BLOCK_CELLS // (8 * n_items))
    for start in range(0, rows.size, step):
        sub = rows[start:start + step]
        keys = rng.standard_exponential((sub.size, n_items)) / weights
        keys[seen.reshape(-1, n_items)[sub]] = np.inf
        for r, row in enumerate(sub):
            k = int(need[start + r])
            chosen = np.argpartition(keys[r], k - 1)[:k] if k < n_items else np.arange(n_items)
            yield row * n_items + chosen


def _alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker's alias table (Vose's construction): item j is drawn as ``j`` if f < prob[j] else ``alias[j]``,
    with j uniform and f uniform on [0, 1)."""
    n = weights.size
    scaled = (weights * (n / weights.sum())).tolist()
    prob, alias = [1.0] * n, list(range(n))
    small = [j for j, p in enumerate(scaled) if p < 1.0]
    large = [j for j, p in enumerate(scaled) if p >= 1.0]
    while small and large:
        s, big = small.pop(), large[-1]
        prob[s], alias[s] = scaled[s], big
        scaled[big] += scaled[s] - 1.0
        if scaled[big] < 1.0:
            small.append(large.pop())
    return np.asarray(prob), np.asarray(alias, dtype=np.int64)


def _draw(rng: np.random.Generator, n: int, prob: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """``n`` items drawn with replacement from the alias table (one uniform each: its integer and fractional part)."""
    x = rng.random(n) * prob.size
    j = np.minimum(x.astype(np.int64), prob.size - 1)
    return np.where(x - j < prob[j], j, alias[j])


def _sample_block(rng: np.random.Generator, deg: np.ndarray, weights: np.ndarray,
                  table: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Items of one block of users: flat keys ``row·items + item``, sorted, distinct, ``deg[row]`` per row."""
    n_items = weights.size
    seen = np.zeros(deg.size * n_items, dtype=bool)
    short = deg.copy()
    heavy = deg > HEAVY_FRACTION * n_items
    short[heavy] = 0
    for _ in range(MAX_ROUNDS):
        rows = np.flatnonzero(short)
        if rows.size == 0:
            break
        count = short[rows]
        keys = np.repeat(rows * n_items, count) + _draw(rng, int(count.sum()), *table)
        keys = keys[~seen[keys]]
        keys.sort()
        new = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if keys.size else keys
        seen[new] = True
        short -= np.bincount(new // n_items, minlength=deg.size)
    short[heavy] = deg[heavy]
    rows = np.flatnonzero(short)
    for keys in _top_k_unseen(rng, seen, rows, short[rows], weights):
        seen[keys] = True
    return np.flatnonzero(seen)


def _cover_items(spec: SynthSpec, offsets: np.ndarray, item: np.ndarray) -> None:
    """Give every item that no user drew one interaction, in place of a random user's most popular item."""
    counts = np.bincount(item, minlength=spec.items)
    missing = np.flatnonzero(counts == 0)
    if missing.size == 0:
        return
    rng = _rng(spec.seed, _STREAM_COVER)
    for j in missing:
        u = int(rng.integers(spec.users))
        row = item[offsets[u]:offsets[u + 1]]
        pos = int(np.argmax(counts[row]))
        if counts[row[pos]] < 2:  # this user holds no item seen twice: take the most popular item's first user
            top = int(np.argmax(counts))
            u = int(np.searchsorted(offsets, int(np.argmax(item == top)), side="right")) - 1
            row = item[offsets[u]:offsets[u + 1]]
            pos = int(np.flatnonzero(row == top)[0])
        counts[row[pos]] -= 1
        counts[j] += 1
        row[pos] = j
        row.sort()


def generate(spec: SynthSpec, name: str | None = None, progress: bool = False) -> Interactions:
    """The interactions of ``spec`` (see the module docstring): int32 ids, no ratings, no timestamps."""
    from tqdm.auto import tqdm

    deg = user_degrees(spec)
    weights = item_weights(spec)
    table = _alias_table(weights)
    offsets = np.zeros(spec.users + 1, dtype=np.int64)
    np.cumsum(deg, out=offsets[1:])
    item = np.empty(spec.interactions, dtype=np.int32)
    per_block = block_users(spec.items)
    blocks = range(0, spec.users, per_block)
    with tqdm(total=spec.interactions, disable=not progress, unit="pair", unit_scale=True,
              desc=f"generating {name or spec.label}") as bar:
        for b, start in enumerate(blocks):
            stop = min(start + per_block, spec.users)
            keys = _sample_block(_rng(spec.seed, _STREAM_BLOCKS, b), deg[start:stop], weights, table)
            item[offsets[start]:offsets[stop]] = keys % spec.items
            bar.update(keys.size)
    _cover_items(spec, offsets, item)
    user = np.repeat(np.arange(spec.users, dtype=np.int32), deg)
    return Interactions(name or spec.label, user, item, source=_SOURCE_PREFIX + spec.describe())


# ----------------------------------------------------------------------------- dataset names


def is_synthetic_name(name: str) -> bool:
    """Whether ``load_dataset(name)`` means a synthetic dataset (a preset or the ``synth:`` form)."""
    return name in PRESETS or name.startswith(PARAMETRIC_PREFIX)


def is_synthetic(data: Interactions) -> bool:
    """Whether ``data`` was generated here under the name of its spec (a preset's name or the spec's label),
    so that the name alone identifies it; never true for data read from a file."""
    if not data.source.startswith(_SOURCE_PREFIX):
        return False
    if data.name in PRESETS:
        return data.source == _SOURCE_PREFIX + PRESETS[data.name][0].describe()
    if _LABEL_RE.fullmatch(data.name) is None:
        return False
    try:
        fields = dict(part.split("=", 1) for part in data.source[len(_SOURCE_PREFIX):].split(","))
        return SynthSpec(**{k: ast.literal_eval(v) for k, v in fields.items()}).label == data.name
    except (ValueError, TypeError, SyntaxError):
        return False


_KEYS: dict[str, type] = {"users": int, "items": int, "interactions": int, "seed": int, "user_exponent": float,
                          "item_exponent": float}


def parse_synthetic(name: str) -> SynthSpec:
    """The spec of a preset name or of ``synth:users=N,items=M,interactions=K[,seed=S]...``."""
    if name in PRESETS:
        return PRESETS[name][0]
    if not name.startswith(PARAMETRIC_PREFIX):
        raise DatasetError(f"{name!r} is not a synthetic dataset: use {', '.join(PRESETS)} or {PARAMETRIC_FORM}")
    values: dict[str, Any] = {}
    for part in name[len(PARAMETRIC_PREFIX):].split(","):
        key, sep, text = (s.strip() for s in part.partition("="))
        if not sep or key not in _KEYS:
            raise DatasetError(f"{name!r}: {part.strip()!r} is not one of {', '.join(k + '=' for k in _KEYS)}; "
                               f"expected {PARAMETRIC_FORM}")
        if key in values:
            raise DatasetError(f"{name!r}: {key} is given twice; expected {PARAMETRIC_FORM}")
        try:
            values[key] = _KEYS[key](text)
        except ValueError:
            kind = "an integer" if _KEYS[key] is int else "a number"
            raise DatasetError(f"{name!r}: {key}={text!r} is not {kind}; expected {PARAMETRIC_FORM}") from None
    missing = [k for k in ("users", "items", "interactions") if k not in values]
    if missing:
        raise DatasetError(f"{name!r}: missing {', '.join(missing)}; expected {PARAMETRIC_FORM}")
    try:
        return SynthSpec(**values)
    except ValueError as err:
        raise DatasetError(f"{name!r}: {err}") from None


def load_synthetic(name: str, progress: bool = False) -> Interactions:
    """Generate the dataset ``name`` (a preset, or the ``synth:`` form, named by its :attr:`SynthSpec.label`)."""
    spec = parse_synthetic(name)
    return generate(spec, name if name in PRESETS else spec.label, progress=progress)


# ----------------------------------------------------------------------------- CSV output


def _digits(buf: np.ndarray, start: np.ndarray, values: np.ndarray, width: np.ndarray) -> None:
    """Write ``values`` (non-negative) in decimal at ``buf[start:start+width]``."""
    v = values.copy()
    end = start + width - 1
    for k in range(int(width.max())):
        live = np.flatnonzero(width > k)
        buf[end[live] - k] = 48 + v[live] % 10
        v //= 10


def _width(values: np.ndarray) -> np.ndarray:
    width = np.ones(values.size, dtype=np.int64)
    for k in range(1, 19):
        big = values >= 10 ** k
        if not big.any():
            break
        width += big
    return width


def _csv_lines(user: np.ndarray, item: np.ndarray) -> bytes:
    """``user,item,1\\n`` per row, formatted in NumPy."""
    u, i = user.astype(np.int64), item.astype(np.int64)
    wu, wi = _width(u), _width(i)
    length = wu + wi + 4
    start = np.cumsum(length) - length
    buf = np.empty(int(length.sum()), dtype=np.uint8)
    _digits(buf, start, u, wu)
    buf[start + wu] = ord(",")
    _digits(buf, start + wu + 1, i, wi)
    tail = start + wu + 1 + wi
    buf[tail] = ord(",")
    buf[tail + 1] = ord("1")
    buf[tail + 2] = ord("\n")
    return buf.tobytes()


def write_csv(data: Interactions, path: str | Path, progress: bool = False, rows_per_chunk: int = 1 << 20) -> Path:
    """Write ``data`` as ``user,item,rating`` CSV (rating 1), gzip-compressed when ``path`` ends in ``.gz``,
    atomically: a hidden temporary file in the same folder, fsynced, then renamed over ``path``."""
    import gzip

    from tqdm.auto import tqdm

    path = Path(path)
    if np.asarray(data.user).dtype.kind not in "iu" or np.asarray(data.item).dtype.kind not in "iu":
        raise ValueError(f"{data.name}: only integer user and item ids can be written")
    if len(data) and min(int(np.min(data.user)), int(np.min(data.item))) < 0:
        raise ValueError(f"{data.name}: only non-negative user and item ids can be written")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) \
                if path.suffix.lower() == ".gz" else raw
            with tqdm(total=len(data), disable=not progress, unit="row", unit_scale=True,
                      desc=f"writing {path.name}") as bar:
                out.write(b"user,item,rating\n")
                for start in range(0, len(data), rows_per_chunk):
                    stop = min(start + rows_per_chunk, len(data))
                    out.write(_csv_lines(data.user[start:stop], data.item[start:stop]))
                    bar.update(stop - start)
            if out is not raw:
                out.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
