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

__all__ = ["NoConfig", "Sampler", "SelectionData"]


@dataclasses.dataclass(frozen=True)
class NoConfig:
    """A sampler without hyper-parameters."""


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

    def validation_split(self) -> Split:
        """A view of the split whose test part is empty, for samplers that tune on validation."""
        empty = sp.csr_matrix(self.train.shape, dtype=np.float32)
        return dataclasses.replace(self._split, test=empty)


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
        return dataclasses.asdict(self.config)

    def spec(self) -> str:
        """Canonical ``name[:k=v,...]`` listing the parameters that differ from their defaults."""
        defaults = self.Config()
        changed = {k: v for k, v in self.params().items() if getattr(defaults, k) != v}
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) if changed else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"
