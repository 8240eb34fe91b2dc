"""Plugin discovery, specs, and an out-of-tree sampler package registered like a third-party one."""

from __future__ import annotations

import dataclasses
import sys
import textwrap

import numpy as np
import pytest

from cfbench import plugins
from cfbench.harness import SuiteConfig, run_suite
from cfbench.plugins import PluginError, coerce, load_model, load_sampler, split_specs
from cfbench.reports import write_leaderboards
from cfbench.sampling import Sampler, SelectionData, added_later
from cfbench.subsets import SubsetError, UserSubset, validate_subset


def test_split_specs_keeps_parameters_with_their_sampler():
    assert split_specs("full,svp-cf:proxy=mf,level=user,random-users") == [
        "full", "svp-cf:proxy=mf,level=user", "random-users"]
    assert split_specs("pkg.mod:Cls:alpha=1,beta=2") == ["pkg.mod:Cls:alpha=1,beta=2"]


def test_coerce_follows_annotations():
    assert coerce("3", int) == 3 and coerce("0.5", float) == 0.5 and coerce("true", bool) is True
    assert coerce("none", int | None) is None and coerce("7", int | None) == 7
    with pytest.raises(ValueError):
        coerce("abc", int)


def test_builtins_register_through_entry_points():
    samplers = plugins.available_samplers()
    assert {"full", "random-users", "head-users"} <= set(samplers)
    assert {"infinite-ae", "ease"} <= set(plugins.available_models())


def test_unknown_names_and_parameters_are_clear_errors():
    with pytest.raises(PluginError, match="unknown sampler 'nope'.*available:"):
        load_sampler("nope")
    with pytest.raises(PluginError, match="has no parameter 'x'"):
        load_sampler("random-users:x=1")
    with pytest.raises(PluginError, match="cannot load"):
        load_sampler("no_such_module_xyz:Thing")
    with pytest.raises(PluginError, match="not a subclass"):
        load_sampler("numpy:ndarray")
    with pytest.raises(PluginError, match="has no parameter 'width'"):
        load_model("ease:width=3")
    assert load_model("ease:lam=20,solver=dual").solver == "dual"


PLUGIN_SOURCE = '''
"""An out-of-tree sampler: the users with the longest validation history."""
import dataclasses

import numpy as np

from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import UserSubset


@dataclasses.dataclass(frozen=True)
class LongValConfig:
    shuffle_ties: bool = True


class LongestValidation(Sampler):
    name = "longest-val"
    description = "Users with the most validation interactions."
    Config = LongValConfig

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> UserSubset:
        counts = np.diff(data.val.indptr)
        ties = rng.random(data.n_users) if self.config.shuffle_ties else np.zeros(data.n_users)
        return UserSubset(np.lexsort((ties, -counts))[:budget])
'''


@pytest.fixture()
def installed_plugin(tmp_path, monkeypatch):
    """A package on sys.path with a .dist-info entry point: exactly what `pip install` leaves behind."""
    site = tmp_path / "site"
    (site / "longval_plugin").mkdir(parents=True)
    (site / "longval_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist = site / "longval_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: longval-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[cfbench.samplers]\nlongest-val = longval_plugin:LongestValidation\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("longval_plugin", None)


def test_out_of_tree_plugin_runs_through_the_suite(installed_plugin, tmp_path):
    assert "longest-val" in plugins.available_samplers()
    results, boards = tmp_path / "results", tmp_path / "boards"
    config = SuiteConfig(samplers=("full", "longest-val:shuffle_ties=false", "longval_plugin:LongestValidation"),
                         models=("ease",), budgets=(20,), seeds=(0,), results_dir=results)
    paths = run_suite(config, progress=False)
    assert len(paths) == 3 and all(p.exists() for p in paths)
    written = write_leaderboards(results, boards)
    table = (boards / "ml-latest-small" / "ease.md").read_text()
    assert "longest-val:shuffle_ties=False" in table and any(p.suffix == ".png" for p in written)


class _Bad(Sampler):
    name = "bad"
    description = "returns whatever the test asks"

    def __init__(self, result):
        super().__init__()
        self.result = result

    def select(self, data, budget, rng):
        return self.result


@pytest.mark.parametrize(("result", "message"), [
    (UserSubset(np.array([0, 0, 1])), "duplicate"),
    (UserSubset(np.array([0, 10**6])), "outside"),
    (UserSubset(np.arange(30)), "for a budget of 20"),
    (UserSubset(np.array([0.5])), "integer"),
    (np.arange(5), "expected UserSubset"),
])
def test_harness_validates_what_a_plugin_returns(small_split, result, message):
    sampler = _Bad(result)
    with pytest.raises(SubsetError, match=f"sampler 'bad'.*{message}"):
        validate_subset(sampler.select(SelectionData(small_split), 20, None), small_split.train, 20, sampler.name)


def _sampler_with(config: type) -> type[Sampler]:
    """A sampler class named "s" with ``config`` as its Config (select is never called)."""
    class S(Sampler):
        name = "s"
        description = "test"
        Config = config

        def select(self, data, budget, rng):
            raise NotImplementedError
    return S


def test_sampler_config_is_typed_and_canonical():
    @dataclasses.dataclass(frozen=True)
    class Cfg:
        alpha: float = 0.5
        mode: str = "a"

    S = _sampler_with(Cfg)
    assert S().spec() == "s" and S(alpha=2.0).spec() == "s:alpha=2.0"
    assert S.parameters() == {"alpha": ("float", 0.5), "mode": ("str", "a")}
    with pytest.raises(ValueError, match="no parameter beta"):
        S(beta=1)


def test_a_parameter_added_later_is_left_out_of_params_at_its_default_only():
    """Rows computed before a parameter existed keep their identity: at its default it is not recorded."""
    @dataclasses.dataclass(frozen=True)
    class Cfg:
        alpha: float = 0.5
        beta: int = added_later(0)

    S = _sampler_with(Cfg)
    assert S().params() == {"alpha": 0.5} and S().spec() == "s"
    assert S(beta=3).params() == {"alpha": 0.5, "beta": 3} and S(beta=3).spec() == "s:beta=3"
    assert S.parameters() == {"alpha": ("float", 0.5), "beta": ("int", 0)}  # still listed and configurable


def test_validation_split_on_a_random_subset_of_the_users_with_validation_items(small_split):
    data = SelectionData(small_split)
    have = np.flatnonzero(np.diff(small_split.val.indptr) > 0)
    full = data.validation_split()
    assert full is data.validation_split(0, 5) and full.test.nnz == 0  # one cached view; test never visible
    assert (full.val != small_split.val).nnz == 0
    part = data.validation_split(50, seed=3)
    kept = np.flatnonzero(np.diff(part.val.indptr) > 0)
    assert len(kept) == 50 and set(kept) <= set(have) and part.test.nnz == 0
    assert part.val.dtype == small_split.val.dtype and part.val.shape == small_split.val.shape
    assert (part.val[kept] != small_split.val[kept]).nnz == 0  # a kept user keeps all their validation items
    assert part is data.validation_split(50, seed=3)
    other = np.flatnonzero(np.diff(SelectionData(small_split).validation_split(50, seed=4).val.indptr) > 0)
    same = np.flatnonzero(np.diff(SelectionData(small_split).validation_split(50, seed=3).val.indptr) > 0)
    assert np.array_equal(same, kept) and not np.array_equal(other, kept)  # seeded, not cached by accident
    assert (data.validation_split(len(have), seed=3).val != small_split.val).nnz == 0  # asking for all: all
    assert part.train is small_split.train  # train untouched, shared
    with pytest.raises(ValueError, match="users must be ≥ 0"):
        data.validation_split(-1)
