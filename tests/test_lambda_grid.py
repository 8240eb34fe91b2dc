"""A model's own λ grid (``lambdas``): parsing, specs, the search it drives, row identity and files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cfbench.cli import main
from cfbench.evaluation import select_lambda
from cfbench.harness import SuiteConfig, model_spec, run_suite
from cfbench.identity import identity_key, row_identity
from cfbench.models import EASE, InfiniteAE
from cfbench.models.base import format_lambdas, parse_lambdas
from cfbench.plugins import PluginError, load_model
from cfbench.results import load_rows
from tests.conftest import toy_split


def test_parse_lambdas_reads_the_spec_form_and_sequences_in_ascending_order():
    assert parse_lambdas(None, "m") is None
    assert parse_lambdas("5/0/0.1", "m") == (0.0, 0.1, 5.0)
    assert parse_lambdas(" 1 / 2e1 ", "m") == (1.0, 20.0)
    assert parse_lambdas((3, 0.5), "m") == (0.5, 3.0)
    assert parse_lambdas("7", "m") == (7.0,)


@pytest.mark.parametrize("bad, match", [
    ("-1/1", "≥ 0"), ("1/nan", "≥ 0"), ("1/inf", "≥ 0"), ("1//2", "''"), ("", "''"), ("a/1", "'a'"),
    ("1/1.0", "repeat"), ((), "at least one"), (3.0, "'/'-separated"), ((True, 1), "True"),
])
def test_parse_lambdas_refuses_bad_grids_in_one_line(bad, match):
    with pytest.raises(ValueError, match=match) as err:
        parse_lambdas(bad, "∞-AE")
    assert "\n" not in str(err.value) and "∞-AE" in str(err.value)


def test_ease_grid_must_be_positive_and_infinite_ae_grid_may_hold_zero():
    with pytest.raises(ValueError, match="> 0"):
        EASE(lambdas="0/1")
    assert InfiniteAE(lambdas="0/1").search_grid == (0.0, 1.0)


@pytest.mark.parametrize("grid", [(0.0, 0.01, 0.03, 0.1, 0.3, 1.0), (1e-05, 1.0 / 3.0, 2.5, 1e4), (123456.789,)])
def test_the_spec_form_reads_back_to_the_same_floats(grid):
    assert parse_lambdas(format_lambdas(grid), "m") == tuple(sorted(grid))


def test_default_grid_is_the_class_grid_and_a_set_grid_is_a_hyper_parameter():
    for cls in (InfiniteAE, EASE):
        assert cls().lambdas is None and cls().search_grid == cls.lambda_grid
    model = load_model("infinite-ae:lambdas=5/0/0.3")
    assert model.lambdas == "0/0.3/5" and model.search_grid == (0.0, 0.3, 5.0)
    assert model_spec(model) == "infinite-ae:lambdas=0/0.3/5"
    again = load_model(model_spec(model))  # upgrade-rows reloads models from their spec
    assert again.get_params() == model.get_params()
    assert model.clone(lam=1.0).search_grid == (0.0, 0.3, 5.0)
    assert model_spec(InfiniteAE()) == "infinite-ae"
    with pytest.raises(PluginError, match="lambdas"):
        load_model("ease:lambdas=0/1")


def test_select_lambda_searches_exactly_the_models_grid():
    split = toy_split()
    chosen = select_lambda(EASE(lambdas="0.5/3/40"), split.train, split)
    assert sorted(chosen.scores) == [0.5, 3.0, 40.0] and chosen.lam in (0.5, 3.0, 40.0)
    default = select_lambda(EASE(), split.train, split)
    assert sorted(default.scores) == sorted(EASE.lambda_grid)
    for lam in (0.5, 3.0, 40.0):  # the grid only changes which λ are tried, never a λ's score
        alone = select_lambda(EASE(), split.train, split, grid=(lam,))
        assert alone.scores[lam] == chosen.scores[lam]


def _identity(params):
    from cfbench.datasets import Interactions

    data = Interactions("toy", np.array([1, 2, 3]), np.array([4, 5, 6]), None)
    return row_identity(data=data, rating_threshold=None, seed=0, sampler_name="s", sampler_params={},
                        sampler_version="1", budget=10, model_name="ease", model_params=params, model_version="1",
                        dtype="float32")


def test_a_default_grid_leaves_the_identity_as_before_and_a_set_grid_changes_it():
    before = {"lam": 500.0, "solver": "auto", "dtype": "float32"}  # rows written before `lambdas` existed
    assert identity_key(_identity({**before, "lambdas": None})) == identity_key(_identity(before))
    assert identity_key(_identity({**before, "lambdas": "1/5"})) != identity_key(_identity(before))
    assert identity_key(_identity({**before, "lambdas": "1/5"})) != identity_key(_identity({**before, "lambdas": "1/6"}))


def test_suite_rows_with_their_own_grid_live_beside_the_default_rows(tmp_path):
    config = dict(results_dir=tmp_path, samplers=("random-users",), budgets=(20,), seeds=(0,))
    first = run_suite(SuiteConfig(models=("ease",), **config), progress=False)
    own = run_suite(SuiteConfig(models=("ease", "ease:lambdas=0.5/2/8"), **config), progress=False)
    assert own.computed == 1 and own.archived == 0  # the default row is reused, not stale
    rows = {r["model_spec"]: r for r in load_rows(tmp_path)}
    assert set(rows) == {"ease", "ease:lambdas=0.5/2/8"}
    assert sorted(map(float, rows["ease:lambdas=0.5/2/8"]["lambda_grid_val"])) == [0.5, 2.0, 8.0]
    assert rows["ease:lambdas=0.5/2/8"]["identity"]["model"]["params"]["lambdas"] == "0.5/2/8"
    assert "lambdas" not in rows["ease"]["identity"]["model"]["params"]
    assert rows["ease"]["identity_key"] == json.loads(first.paths[0].read_text())["identity_key"]
    assert all(math.isfinite(v) for v in rows["ease:lambdas=0.5/2/8"]["metrics"]["test"].values())


def test_a_bad_grid_on_the_command_line_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["run", "--samplers", "random-users", "--models", "infinite-ae:lambdas=-1/1", "--budgets", "10",
                 "--seeds", "0", "--results-dir", str(tmp_path / "r"), "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("cfbench: error: ") and "lambdas" in err[0]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.json"))


def test_the_memory_plan_counts_the_models_own_grid():
    from cfbench.memory import UnitShape, infinite_ae_footprint

    shape = UnitShape(2000, 300, 60_000, budget=2000)
    model = InfiniteAE(lambdas="0/0.01/0.03/0.1/0.3/1/2/5/10/20/50/100")
    plan = model.memory_footprint(shape)
    twelve = infinite_ae_footprint(shape.support_rows, shape.n_items, shape.queries, batch_size=shape.batch_size,
                                   block_size=model.block_size, grid_size=12, positives=shape.positives,
                                   mean_row=shape.mean_row, eval_chunks=shape.eval_chunks,
                                   support_nnz=shape.support_nnz)
    assert plan == twelve
