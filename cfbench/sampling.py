"""The sampler plugin API.

A sampler is a small typed component::

    @dataclasses.dataclass(frozen=True)
    class MyConfig:
        alpha: float = 0.5

    class MySampler(Sampler):
        name = "my-sampler"
        description = "One line saying what it keeps."
        Config = MyConfig

        def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> Subset:
            ...  # return UserSubset, InteractionSubset or SyntheticUsers

and is registered under the entry-point group ``cfbench.samplers`` (see the README's plugin
guide). The budget is a number of users; interaction samplers keep the same fraction
``budget / n_users`` of train interactions (:meth:`SelectionData.interaction_budget`).
Samplers see train and validation data, never test.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import typing
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from cfbench.splits import Split, read_only_csr
from cfbench.subsets import Subset, interaction_budget

__all__ = ["ADDED_LATER", "NoConfig", "Sampler", "SelectionData", "added_later"]

#: ``dataclasses.field`` metadata of a parameter added to a sampler after rows were computed with it: at its
#: default (which must reproduce the former behaviour exactly) it is left out of :meth:`Sampler.params`, and so
#: of the rows' identity, which therefore stay valid. Set to any other value, it is recorded like every other.
ADDED_LATER = "omit from params at its default"


def added_later(default: Any) -> Any:
    """A config field for a parameter added after rows existed (see :data:`ADDED_LATER`)::

        validation_users: int = added_later(0)  # 0 behaves exactly as before the parameter existed
    """
    return dataclasses.field(default=default, metadata={"identity": ADDED_LATER})


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """A sampler without hyper-parameters."""


_VALIDATION_STREAM = 0x76616C  # "val": keeps validation subsets apart from other streams of the same seed


class SelectionData:
    """What a sampler may look at: train (and its timestamps), validation, never test.

    The matrices are read-only views of the split that every later row uses: writing into them
    raises ``ValueError`` (copy first, e.g. ``data.train.copy()``), and the harness checks after
    every unit that the split is unchanged.
    """

    def __init__(self, split: Split) -> None:
        self._split = split

    @property
    def dataset(self) -> str:
        return self._split.dataset

    @property
    def seed(self) -> int:
        return self._split.seed

    @functools.cached_property
    def train(self) -> sp.csr_matrix:
        """Users × items 0/1 train interactions (CSR, sorted indices; read-only)."""
        return read_only_csr(self._split.train)

    @functools.cached_property
    def val(self) -> sp.csr_matrix:
        """Users × items 0/1 validation interactions (CSR; read-only)."""
        return read_only_csr(self._split.val)

    @functools.cached_property
    def train_timestamps(self) -> sp.csr_matrix | None:
        """Timestamps of the train interactions (same sparsity as ``train``; read-only), or ``None``."""
        ts = self._split.train_timestamps
        return None if ts is None else read_only_csr(ts)

    @property
    def n_users(self) -> int:
        return self._split.n_users

    @property
    def n_items(self) -> int:
        return self._split.n_items

    @functools.cached_property
    def user_counts(self) -> np.ndarray:
        return np.diff(self.train.indptr)

    @functools.cached_property
    def item_counts(self) -> np.ndarray:
        return np.bincount(self.train.indices, minlength=self.n_items)

    def interaction_budget(self, budget: int) -> int:
        """Train interactions that a budget of ``budget`` users allows (the fraction budget / n_users)."""
        return interaction_budget(budget, self.train)

    def validation_split(self, users: int = 0, seed: int = 0) -> Split:
        """A view of the split whose test part is empty, for samplers that tune on validation.

        ``users`` > 0 keeps the validation items of only that many users, drawn at random (by ``seed``)
        from those that have validation items (all of them where there are no more): a cheaper, noisier
        validation for large datasets. The same (``users``, ``seed``) gives the same view (cached, so its
        evaluation task is built once)."""
        if users < 0:
            raise ValueError(f"users must be ≥ 0 (0 = every user with validation items), got {users}")
        cache = self.__dict__.setdefault("_validation_splits", {})
        key = (users, seed) if users else (0, 0)
        if key not in cache:
            empty = sp.csr_matrix(self.train.shape, dtype=np.float32)
            val = self._split.val
            have = np.flatnonzero(np.diff(val.indptr) > 0)
            if users and users < len(have):
                keep = np.zeros(val.shape[0], dtype=bool)
                keep[np.random.default_rng([seed, _VALIDATION_STREAM]).choice(have, users, replace=False)] = True
                val = sp.csr_matrix(val.multiply(keep[:, None].astype(val.dtype)), dtype=val.dtype)
                val.eliminate_zeros()
                val.sort_indices()
            cache[key] = dataclasses.replace(self._split, val=val, test=empty)
        return cache[key]


class Sampler(abc.ABC):
    """Base class of every sampler plugin; hyper-parameters live in a frozen ``Config`` dataclass."""

    name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type] = NoConfig
    #: ``False`` for samplers that ignore the budget (e.g. ``full``): they run once per seed.
    budgeted: ClassVar[bool] = True
    #: Bump when the sampler's behaviour changes for the same parameters: rows written by an
    #: older version are then re-run (and the old rows archived) instead of being reused.
    version: ClassVar[str] = "1"

    def __init__(self, config: Any = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("pass either a config object or keyword parameters, not both")
        if config is None:
            names = {f.name for f in dataclasses.fields(self.Config)}
            unknown = sorted(set(params) - names)
            if unknown:
                raise ValueError(f"sampler {self.name!r} has no parameter {', '.join(unknown)}; "
                                 f"it takes: {', '.join(sorted(names)) or 'none'}")
            config = self.Config(**params)
        self.config = config

    @abc.abstractmethod
    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> Subset:
        """Choose a subset of at most ``budget`` users (or the equivalent interactions)."""

    def diagnostics(self) -> dict[str, Any]:
        """JSON-serialisable facts about the last :meth:`select` call (e.g. the hyper-parameters a
        sampler chose on validation); the harness records them in each row under ``"selection"``.

        A sampler that reuses work from an earlier call (a cache) reports its cost as
        ``"reused_seconds"``: the row's ``select_cost_s`` (what one selection from scratch costs, used
        by the leaderboards' speed-up incl. selection) is then ``select_s`` plus that."""
        return {}

    @classmethod
    def parameters(cls) -> dict[str, tuple[str, Any]]:
        """``{name: (type name, default)}`` of the sampler's hyper-parameters."""
        hints = typing.get_type_hints(cls.Config)
        return {f.name: (getattr(hints.get(f.name), "__name__", str(hints.get(f.name))), f.default)
                for f in dataclasses.fields(cls.Config)}

    def params(self) -> dict[str, Any]:
        """Every hyper-parameter, as recorded in rows and identities; a parameter declared with
        :func:`added_later` is left out while it holds its default."""
        params = dataclasses.asdict(self.config)
        for f in dataclasses.fields(self.config):
            if f.metadata.get("identity") == ADDED_LATER and params[f.name] == f.default:
                del params[f.name]
        return params

    def spec(self) -> str:
        """Canonical ``name[:k=v,...]`` listing the parameters that differ from their defaults."""
        defaults = self.Config()
        changed = {k: v for k, v in dataclasses.asdict(self.config).items() if getattr(defaults, k) != v}
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) if changed else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"
