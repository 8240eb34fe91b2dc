"""Row identity: what it covers, and that the harness never reuses a row of another computation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cfbench.datasets import Interactions, load_dataset
from cfbench.harness import SuiteConfig, run_suite
from cfbench.identity import content_hash, dataset_label, describe_difference, identity_key, row_identity
from cfbench.upgrade import upgrade_rows


def _data(user, item, rating=None, name="toy"):
    return Interactions(name, np.asarray(user), np.asarray(item), None if rating is None else np.asarray(rating))


def test_content_hash_follows_the_values_not_their_storage():
    a = _data([1, 2, 3], [4, 5, 6], [1.0, 2.0, 3.0])
    assert content_hash(a) == content_hash(_data(np.array([1, 2, 3], np.int32), [4, 5, 6], np.float32([1, 2, 3])))
    assert content_hash(a) == content_hash(_data([1, 2, 3], [4, 5, 6], [1.0, 2.0, 3.0], name="other name"))
    assert content_hash(a) != content_hash(_data([1, 2, 3], [4, 5, 7], [1.0, 2.0, 3.0]))  # one item differs
    assert content_hash(a) != content_hash(_data([2, 1, 3], [5, 4, 6], [2.0, 1.0, 3.0]))  # order differs
    assert content_hash(a) != content_hash(_data([1, 2, 3], [4, 5, 6]))  # ratings dropped
    assert content_hash(_data(["u1", "u2"], ["i1", "i2"])) != content_hash(_data(["u1", "u2"], ["i1", "i3"]))
    assert len(content_hash(a)) == 32


def test_dataset_label_names_files_by_content_and_marks_thresholds():
    small = load_dataset("ml-latest-small")
    assert dataset_label(small) == "ml-latest-small"
    assert dataset_label(small, 4.0) == "ml-latest-small_rating>=4"
    file_data = _data([1, 2, 3], [4, 5, 6], name="ratings")
    assert dataset_label(file_data) == f"ratings-{content_hash(file_data)[:8]}"


def _identity(**changes):
    base = dict(data=_data([1, 2, 3], [4, 5, 6]), rating_threshold=None, seed=0, sampler_name="s",
                sampler_params={"a": 1, "b": (1, 2)}, sampler_version="1", budget=10, model_name="m",
                model_params={"lam": 5.0, "depth": 1}, model_version="1", dtype="float32")
    return row_identity(**{**base, **changes})


def test_identity_key_changes_with_everything_but_lam():
    key = identity_key(_identity())
    assert key == identity_key(json.loads(json.dumps(_identity())))  # stable through JSON
    assert key == identity_key(_identity(model_params={"lam": 50.0, "depth": 1}))  # λ is tuned, not identity
    for change in [dict(rating_threshold=4.0), dict(seed=1), dict(sampler_params={"a": 2, "b": (1, 2)}),
                   dict(sampler_version="2"), dict(budget=20), dict(model_params={"lam": 5.0, "depth": 2}),
                   dict(model_version="2"), dict(dtype="float64"), dict(data=_data([1, 2, 3], [4, 5, 7])),
                   dict(sampler_name="t"), dict(model_name="n")]:
        assert identity_key(_identity(**change)) != key, change


def test_describe_difference_names_what_changed():
    text = describe_difference(_identity(), _identity(sampler_version="2", budget=20))
    assert "sampler.version: '1' → '2'" in text and "budget: 10 → 20" in text
    assert "predates" in describe_difference(None, _identity())


def _config(tmp_path, **kw):
    return SuiteConfig(results_dir=tmp_path, samplers=("random-users",), models=("ease",), budgets=(10,), seeds=(0,),
                       **kw)


def test_a_rating_threshold_never_reuses_the_all_ratings_rows(tmp_path):
    everything = run_suite(_config(tmp_path), progress=False)
    assert everything.computed == 1
    high = run_suite(_config(tmp_path, rating_threshold=4.0), progress=False)
    assert high.computed == 1 and high.reused == 0
    (a,), (b,) = everything.paths, high.paths
    assert a != b and a.exists() and b.exists()  # both kept, in their own folders
    rows = [json.loads(p.read_text()) for p in (a, b)]
    assert rows[1]["split"]["train"] < rows[0]["split"]["train"]
    assert rows[1]["identity"]["protocol"]["rating_threshold"] == 4.0 and rows[1]["dataset"].endswith(">=4")


def _write_csv(path, shift=0):
    rng = np.random.default_rng(0)
    lines = ["user,item"] + [f"{u},{(i + shift) % 40}" for u in range(30)
                             for i in rng.choice(40, size=8, replace=False)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_two_files_with_one_name_never_share_rows_but_a_moved_file_does(tmp_path):
    results = tmp_path / "r"
    a = _write_csv(tmp_path / "a" / "ratings.csv")
    b = _write_csv(tmp_path / "b" / "ratings.csv", shift=1)  # same stem, other content
    moved = _write_csv(tmp_path / "c" / "ratings.csv")  # same content as a, other place
    first = run_suite(_config(results, dataset=str(a)), progress=False)
    other = run_suite(_config(results, dataset=str(b)), progress=False)
    again = run_suite(_config(results, dataset=str(moved)), progress=False)
    assert (first.computed, other.computed, again.computed, again.reused) == (1, 1, 0, 1)
    assert first.paths[0].parent != other.paths[0].parent
    assert again.paths == first.paths


def test_a_model_version_bump_makes_rows_stale(tmp_path, monkeypatch):
    from cfbench.models.ease import EASE

    run_suite(_config(tmp_path), progress=False)
    monkeypatch.setattr(EASE, "version", "2")
    summary = run_suite(_config(tmp_path), progress=False)
    assert summary.computed == 1 and summary.archived == 1
    row = json.loads(summary.paths[0].read_text())
    assert row["model_version"] == "2" and row["identity"]["model"]["version"] == "2"


def test_upgrade_gives_old_rows_their_identity_only_when_provable(tmp_path):
    config = SuiteConfig(results_dir=tmp_path, samplers=("random-users", "head-users"), models=("ease",),
                         budgets=(10,), seeds=(0,))
    paths = list(run_suite(config, progress=False))
    rows = [json.loads(p.read_text()) for p in paths]
    for path, row in zip(paths, rows):  # as cfbench wrote them before rows had identities
        old = {k: v for k, v in row.items() if k not in ("identity", "identity_key", "status", "model_version",
                                                         "computed_by")}
        old["schema"] = 1
        del old["model_params"]["lambdas"]  # models had no λ-grid parameter then
        path.write_text(json.dumps(old))
    tampered = json.loads(paths[1].read_text())
    tampered["split"]["train"] += 1  # computed on other data
    paths[1].write_text(json.dumps(tampered))
    report = upgrade_rows(tmp_path)
    assert report.upgraded == [paths[0]] and [p for p, _ in report.left] == [paths[1]]
    assert "split sizes" in report.left[0][1]
    assert json.loads(paths[0].read_text())["identity_key"] == rows[0]["identity_key"]
    summary = run_suite(config, progress=False)
    assert summary.reused == 1 and summary.computed == 1 and summary.archived == 1  # the unprovable one re-runs


@pytest.mark.parametrize("field", ["sampler_params", "model_params"])
def test_upgrade_leaves_rows_whose_parameters_changed(tmp_path, field):
    config = _config(tmp_path)
    (path,) = run_suite(config, progress=False)
    row = json.loads(path.read_text())
    row = {k: v for k, v in row.items() if k not in ("identity", "identity_key", "status", "model_version")}
    row["schema"] = 1
    row[field]["old_parameter"] = 3
    path.write_text(json.dumps(row))
    report = upgrade_rows(tmp_path)
    assert not report.upgraded and "parameters" in report.left[0][1]
