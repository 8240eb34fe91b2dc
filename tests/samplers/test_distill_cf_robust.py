"""distill-cf-robust: distill-cf-fast whose samples, steps and τ are compared by another validation metric."""

from __future__ import annotations

import numpy as np
import pytest

from cfbench.evaluation import select_lambda
from cfbench.models import InfiniteAE
from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import validate_subset
from samplers.distill_cf_fast import DistillCFFast
from samplers.distill_cf_robust import DistillCFRobust, DistillCFRobustConfig
from tests.conftest import toy_split

TINY = {"steps": 6, "eval_every": 2, "samples_per_user": 40, "draws": 4, "lambdas": "1/20", "batch_users": 10}


@pytest.fixture(scope="module")
def toy_data():
    return SelectionData(toy_split(n_users=30, n_items=150, density=0.1))


def test_config_defaults_and_errors():
    cfg = DistillCFRobustConfig()
    assert (cfg.selection_metric, cfg.draws, cfg.batch_users, cfg.tau) == ("ndcg@100", 20, 1024, "1/5")
    with pytest.raises(ValueError, match=r"^selection_metric must be one of hr@10, .*auc, got 'mrr'$"):
        DistillCFRobustConfig(selection_metric="mrr")


def test_with_hr100_it_is_distill_cf_fast_bit_for_bit(toy_data):
    robust = DistillCFRobust(**TINY, selection_metric="hr@100").select(toy_data, 5, np.random.default_rng(3))
    fast = DistillCFFast(**TINY).select(toy_data, 5, np.random.default_rng(3))
    np.testing.assert_array_equal(robust.matrix, fast.matrix)


def test_samples_are_compared_by_the_selection_metric(toy_data):
    sampler = DistillCFRobust(**TINY)
    subset = sampler.select(toy_data, 5, np.random.default_rng(4))
    validate_subset(subset, toy_data.train, 5, "distill-cf-robust")
    info = sampler.diagnostics()
    trace = info["trace"]
    assert all("ndcg@100" in t and "hr@100" not in t for t in trace)
    # the kept sample is the best validation point of the winning candidate by validation NDCG@100 ...
    best = max((t for t in trace if t["step"] > 0), key=lambda t: t["ndcg@100"])
    assert (info["best_step"], info["val_ndcg@100"], info["lambda"]) == (best["step"], best["ndcg@100"], best["lambda"])
    assert info["val_ndcg@100"] == max(c["val_ndcg@100"] for c in info["candidates"])
    # ... and that is the kept matrix's NDCG@100 at the λ of the grid that maximises NDCG@100
    chosen = select_lambda(InfiniteAE(), subset.matrix, toy_data.validation_split(), (1.0, 20.0), metric="ndcg@100")
    assert (chosen.lam, chosen.scores[chosen.lam]) == (info["lambda"], info["val_ndcg@100"])


def test_registered_and_configurable_from_a_spec():
    sampler = load_sampler("distill-cf-robust:selection_metric=hr@10,steps=5")
    assert isinstance(sampler, DistillCFRobust) and sampler.config.selection_metric == "hr@10"
    assert sampler.spec() == "distill-cf-robust:selection_metric=hr@10,steps=5"
    assert "selection_metric" not in load_sampler("distill-cf-fast").params()
