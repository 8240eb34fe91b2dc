"""The subset cache: kept selections are the same selections, reused only under their own identity."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from cfbench.cli import main
from cfbench.datasets import load_dataset
from cfbench.harness import SuiteConfig, run_suite
from cfbench.identity import row_identity
from cfbench.sampling import Sampler, SelectionData
from cfbench.subset_cache import Selection, SubsetCache, selection_identity
from cfbench.subsets import InteractionSubset, SyntheticUsers, UserSubset
from cfbench.suites import load_suite

COUNTING = "tests.test_subset_cache:CountingSynthetic"


class CountingSynthetic(Sampler):
    """Synthetic users from real ones with random real weights (negative ones too); every call of ``select``
    appends a line to ``$CFBENCH_TEST_MARKER_DIR/selections`` (any process: Ray workers included)."""

    name = "counting-synthetic"
    description = "a test sampler that counts its selections"

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> SyntheticUsers:
        with open(os.path.join(os.environ["CFBENCH_TEST_MARKER_DIR"], "selections"), "a") as f:
            f.write(f"{budget}\n")
        users = rng.choice(data.n_users, size=min(budget, data.n_users), replace=False)
        weights = rng.uniform(-0.2, 1.0, size=(users.size, data.n_items)).astype(np.float32)
        self._diag = {"users": users.tolist()[:3], "mean_weight": float(weights.mean()), "undefined": float("nan")}
        return SyntheticUsers(data.train[np.sort(users)].toarray().astype(np.float32) * weights)

    def diagnostics(self) -> dict:
        return self._diag


@pytest.fixture()
def markers(tmp_path, monkeypatch):
    folder = tmp_path / "markers"
    folder.mkdir()
    monkeypatch.setenv("CFBENCH_TEST_MARKER_DIR", str(folder))
    return folder


def _selections(markers: Path) -> int:
    file = markers / "selections"
    return len(file.read_text().splitlines()) if file.exists() else 0


def _identity(data, budget=20, seed=0, sampler="random-users", params=None, model="ease", dtype="float32",
              tune_metric=None):
    return row_identity(data=data, rating_threshold=None, seed=seed, sampler_name=sampler, sampler_params=params or {},
                        sampler_version="1", budget=budget, model_name=model, model_params={"lam": 1.0},
                        model_version="1", dtype=dtype, tune_metric=tune_metric)


@pytest.fixture(scope="module")
def data():
    return load_dataset("ml-latest-small")


# ------------------------------------------------------------------------------------------- the file


@pytest.mark.parametrize("subset", [
    UserSubset(np.array([5, 1, 3], dtype=np.int64)),
    InteractionSubset(np.array([True, False, True, True, False])),
    SyntheticUsers(np.array([[0.0, -1.5e-7, 0.25], [3.0, 0.0, -2.0]], dtype=np.float32)),
    SyntheticUsers(np.array([[0.1, 0.2], [0.3, 1e-300]], dtype=np.float64)),
], ids=["users", "interactions", "synthetic32", "synthetic64"])
def test_every_subset_kind_comes_back_value_for_value(tmp_path, data, subset):
    cache, identity = SubsetCache(tmp_path), _identity(data)
    path = cache.path("ml-latest-small", "random-users", 20, 0, identity)
    diag = {"tau": 5, "steps": [1, 2], "val_users": 391}
    timings = {"select_s": 12.5, "select_compile_s": 1.0, "select_cost_s": 20.0}
    assert cache.save(path, identity, Selection(subset, diag, timings, {"host_peak_bytes": 7}, {"host": "h"}))
    kept = cache.load(path, identity)
    assert kept is not None and type(kept.subset) is type(subset)
    field = {"users": "users", "interactions": "mask", "synthetic": "matrix"}[subset.kind]
    a, b = np.asarray(getattr(subset, field)), np.asarray(getattr(kept.subset, field))
    assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    assert kept.diagnostics == diag and kept.timings == timings and kept.memory == {"host_peak_bytes": 7}
    assert kept.source["file"] == str(path) and kept.computed_by == {"host": "h"} and kept.created


def test_the_key_is_the_identity_without_the_model(tmp_path, data):
    cache = SubsetCache(tmp_path)
    base = cache.path("d", "s", 20, 0, _identity(data))
    assert cache.path("d", "s", 20, 0, _identity(data, model="infinite-ae")) == base
    for other in (dict(budget=50), dict(seed=1), dict(params={"tau": "5"}), dict(sampler="head-users"),
                  dict(dtype="float64"), dict(tune_metric="ndcg@10")):
        assert cache.path("d", "s", 20, 0, _identity(data, **other)).name[-20:] != base.name[-20:], other
    assert "model" not in selection_identity(_identity(data))


def _damage(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"not a selection at all")
    elif how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "no-meta":
        np.savez(path.open("wb"), users=np.arange(3))
    elif how == "old-format":
        with np.load(path) as npz:
            meta, users = json.loads(str(npz["meta"][()])), np.array(npz["users"])
        meta["format"] = 0
        with path.open("wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), users=users)


@pytest.mark.parametrize("how", ["garbage", "truncated", "no-meta", "old-format", "other-identity"])
def test_a_file_that_is_not_this_selection_is_a_miss(tmp_path, data, how, caplog):
    cache, identity = SubsetCache(tmp_path), _identity(data)
    path = cache.path("d", "s", 20, 0, identity)
    if how == "other-identity":  # e.g. a file copied or renamed by hand
        cache.save(path, _identity(data, budget=50), Selection(UserSubset(np.arange(3)), {}, {}, {}))
    else:
        cache.save(path, identity, Selection(UserSubset(np.arange(3)), {}, {}, {}))
        _damage(path, how)
    with caplog.at_level(logging.WARNING, logger="cfbench"):
        assert cache.load(path, identity) is None
    assert "selecting again" in caplog.text
    assert cache.load(tmp_path / "absent.npz", identity) is None


def test_an_unwritable_cache_is_a_warning_not_an_error(tmp_path, data, caplog):
    (tmp_path / "file").write_text("in the way")
    cache = SubsetCache(tmp_path / "file")
    identity = _identity(data)
    with caplog.at_level(logging.WARNING, logger="cfbench"):
        assert not cache.save(cache.path("d", "s", 20, 0, identity), identity,
                              Selection(UserSubset(np.arange(3)), {}, {}, {}))
    assert "not kept" in caplog.text


# ------------------------------------------------------------------------------------------- in a suite

SUITE = dict(dataset="ml-latest-small", budgets=(20,), seeds=(0,), device="cpu")
SAMPLERS = (COUNTING, "random-interactions", "random-users")


def _rows(summary) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in summary}


def test_a_later_run_reuses_the_selection_and_gets_the_same_rows(tmp_path, markers):
    cache = tmp_path / "cache"
    first = run_suite(SuiteConfig(samplers=SAMPLERS, models=("ease",), results_dir=tmp_path / "a",
                                  subset_cache=str(cache), **SUITE), progress=False)
    assert first.ok and _selections(markers) == 1 and len(list(cache.rglob("*.npz"))) == 3
    # A new model and another λ grid on the same selections: nothing is selected again.
    second = run_suite(SuiteConfig(samplers=SAMPLERS, models=("ease", "infinite-ae", "ease:lambdas=10/100"),
                                   results_dir=tmp_path / "b", subset_cache=str(cache), **SUITE), progress=False)
    assert second.ok and second.computed == 9 and _selections(markers) == 1
    # Without the cache the sampler runs again, and gives what the cache gave (the rows are the same).
    third = run_suite(SuiteConfig(samplers=SAMPLERS, models=("ease",), results_dir=tmp_path / "c", **SUITE),
                      progress=False)
    assert third.ok and _selections(markers) == 2
    a, b, c = _rows(first), _rows(second), _rows(third)
    assert len(b) == 9
    for name, row in a.items():
        for other in (b[name], c[name]):
            for key in ("identity_key", "metrics", "lambda", "lambda_grid_val", "subset", "selection", "per_user"):
                assert row[key] == other[key], (name, key)
        assert "selection_reused" not in row and "selection_reused" not in c[name]
        reused = b[name]["selection_reused"]
        assert Path(reused["file"]).parent == cache / "ml-latest-small" and reused["computed_by"]["pid"] == os.getpid()
        # The selection's cost is what it cost when computed, not the time to load a file.
        for key in ("select_s", "select_compile_s", "select_cost_s"):
            assert b[name]["timings"][key] == row["timings"][key]
        assert b[name]["memory"]["measured"]["select"] == row["memory"]["measured"]["select"]
    (counting,) = [r for r in b.values() if r["sampler"] == "counting-synthetic" and r["model"] == "ease"
                   and r["model_spec"] == "ease"]
    assert counting["selection"]["undefined"] is None  # NaN in diagnostics: null, as in any row


def test_a_damaged_or_misfitting_kept_selection_is_selected_again(tmp_path, markers, caplog):
    cache = tmp_path / "cache"
    config = SuiteConfig(samplers=(COUNTING,), models=("ease",), results_dir=tmp_path / "a",
                         subset_cache=str(cache), **SUITE)
    run_suite(config, progress=False)
    (file,) = cache.rglob("*.npz")
    good = file.read_bytes()
    file.write_bytes(good[:100])
    with caplog.at_level(logging.WARNING, logger="cfbench"):
        again = run_suite(SuiteConfig(**{**config.__dict__, "results_dir": tmp_path / "b"}), progress=False)
    assert again.ok and _selections(markers) == 2 and "not a readable selection" in caplog.text
    assert file.read_bytes() != good[:100] and SubsetCache(cache).load(file, json.loads(
        next((tmp_path / "b").rglob("*.json")).read_text())["identity"]) is not None  # repaired
    # A file with this identity whose subset does not fit the split (a hand-edited one): selected again.
    with np.load(file) as npz:
        meta = str(npz["meta"][()])
    with file.open("wb") as f:
        np.savez(f, meta=np.array(meta), matrix=np.ones((3, 7), dtype=np.float32))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cfbench"):
        third = run_suite(SuiteConfig(**{**config.__dict__, "results_dir": tmp_path / "c"}), progress=False)
    assert third.ok and _selections(markers) == 3 and "does not fit this split" in caplog.text
    rows = [_rows(s) for s in (again, third)]
    assert rows[0].keys() == rows[1].keys()
    for name in rows[0]:
        assert rows[0][name]["metrics"] == rows[1][name]["metrics"]


def test_cli_flag_suite_key_and_a_file_in_the_way(tmp_path, markers, capsys):
    suite = tmp_path / "project" / "s.toml"
    suite.parent.mkdir()
    suite.write_text('dataset = "ml-latest-small"\nsamplers = ["random-users"]\nsubset_cache = "../kept"\n')
    (config,) = load_suite(suite).parts
    assert Path(config.subset_cache) == tmp_path / "kept"
    (tmp_path / "file").write_text("x")
    rc = main(["run", "--samplers", "random-users", "--models", "ease", "--budgets", "10", "--seeds", "0",
               "--results-dir", str(tmp_path / "r"), "--subset-cache", str(tmp_path / "file"), "--no-report", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "--subset-cache" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("*.json"))
    rc = main(["run", "--samplers", "random-users", "--models", "ease", "--budgets", "10", "--seeds", "0",
               "--results-dir", str(tmp_path / "r"), "--subset-cache", str(tmp_path / "kept"), "--no-report", "-q"])
    assert rc == 0 and len(list((tmp_path / "kept").rglob("*.npz"))) == 1
