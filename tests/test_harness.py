"""End-to-end: the suite on the embedded dataset, resumption, reports, export and the CLI."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from cfbench.cli import main
from cfbench.harness import SuiteConfig, default_budgets, run_suite
from cfbench.identity import identity_key
from cfbench.reports import export, write_leaderboards
from cfbench.results import EXPORT_COLUMNS, load_rows

SUITE = dict(samplers=("full", "random-users", "head-users"), models=("infinite-ae", "ease"), budgets=(10, 50),
             seeds=(0, 1))


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    run_suite(SuiteConfig(results_dir=results, **SUITE), progress=False)
    return results


def test_default_budgets_are_log_spaced_below_all_users():
    assert default_budgets(610) == (10, 20, 50, 100, 200, 500)
    assert default_budgets(6040) == (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
    assert default_budgets(5) == ()


def test_rows_hold_configuration_size_metrics_and_timings(suite_dir):
    rows = load_rows(suite_dir)
    assert len(rows) == (1 + 2 * 2) * 2 * 2  # (full + 2 samplers × 2 budgets) × 2 models × 2 seeds
    for row in rows:
        assert row["split"]["users"] == 610 and row["split"]["protocol"] == "reference"
        assert set(row["metrics"]["test"]) == {"hr@10", "ndcg@10", "psp@10", "hr@100", "ndcg@100", "psp@100", "auc"}
        assert row["subset"]["n_users"] == (610 if row["sampler"] == "full" else row["budget"])
        assert 0 < row["subset"]["fraction_train_interactions"] <= 1
        assert row["lambda"] == row["model_params"]["lam"]
        assert row["lambda"] in (1.0, 5.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0) \
            if row["model"] == "ease" else row["lambda"] in (0.0, 1.0, 5.0, 20.0, 50.0, 100.0)
        assert row["status"] == "ok" and row["identity"]["budget"] == row["budget"]
        assert {"select_s", "fit_s", "eval_s", "tune_s", "fit_compile_s"} <= set(row["timings"])
        runs = row["timings"]["fit_runs_s"]  # short fits are repeated and their median kept
        assert 1 <= len(runs) <= 3 and row["timings"]["fit_s"] == float(np.median(runs))
        assert len(runs) == 3 or sum(runs) >= 2.0
        assert row["environment"]["packages"]["jax"]
    full = [r for r in rows if r["sampler"] == "full" and r["model"] == "infinite-ae"]
    small = [r for r in rows if r["sampler"] == "random-users" and r["budget"] == 10 and r["model"] == "infinite-ae"]
    assert min(r["metrics"]["test"]["ndcg@10"] for r in full) > max(r["metrics"]["test"]["ndcg@10"] for r in small)
    head = [r for r in rows if r["sampler"] == "head-users" and r["budget"] == 50]
    rand = [r for r in rows if r["sampler"] == "random-users" and r["budget"] == 50]
    assert min(r["subset"]["n_interactions"] for r in head) > max(r["subset"]["n_interactions"] for r in rand)


def test_rerun_skips_existing_rows_and_replaces_damaged_ones(suite_dir):
    paths = sorted(suite_dir.rglob("*.json"))
    before = {p: p.stat().st_mtime_ns for p in paths}
    damaged = paths[0]
    damaged.write_text("{not json")
    run_suite(SuiteConfig(results_dir=suite_dir, **SUITE), progress=False)
    assert json.loads(damaged.read_text())["schema"] == 2
    assert all(p.stat().st_mtime_ns == before[p] for p in paths[1:])


def test_report_is_byte_identical_from_the_same_rows(suite_dir, tmp_path):
    write_leaderboards(suite_dir, tmp_path / "a")
    write_leaderboards(suite_dir, tmp_path / "b")
    for md in (tmp_path / "a").rglob("*.md"):
        assert md.read_bytes() == (tmp_path / "b" / md.relative_to(tmp_path / "a")).read_bytes()
    text = (tmp_path / "a" / "ml-latest-small" / "infinite-ae.md").read_text()
    assert "% of full" in text and "speed-up" in text and "± " in text
    assert (tmp_path / "a" / "ml-latest-small" / "infinite-ae_ndcg-10.png").stat().st_size > 10_000


def test_export_csv_has_one_line_per_row_and_the_documented_columns(suite_dir):
    table = list(csv.DictReader(io.StringIO(export(suite_dir))))
    assert len(table) == len(load_rows(suite_dir))
    assert list(table[0])[: len(EXPORT_COLUMNS)] == EXPORT_COLUMNS


def test_cli_run_report_export(tmp_path, capsys):
    results, boards, out = tmp_path / "r", tmp_path / "lb", tmp_path / "rows.csv"
    assert main(["run", "--samplers", "random-users", "--models", "ease", "--budgets", "20", "--seeds", "3",
                 "--results-dir", str(results), "--leaderboards-dir", str(boards), "-q"]) == 0
    assert (boards / "ml-latest-small" / "ease.md").exists()
    assert main(["export", "--results-dir", str(results), "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2
    assert main(["report", "--results-dir", str(results), "--out", str(boards), "-q"]) == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--dataset", "nope"], "unknown dataset"),
    (["run", "--samplers", "nope"], "unknown sampler"),
    (["report", "--results-dir", "/nonexistent/x"], "does not exist"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("edit", [
    lambda ident: ident["sampler"]["params"].update(strategy="old-default"),  # a default changed since
    lambda ident: ident["sampler"].update(version="0"),  # the sampler's behaviour changed since
    lambda ident: ident["model"]["params"].update(depth=7),
    lambda ident: ident["model"].update(version="0"),  # the model's behaviour changed since
    lambda ident: ident["dataset"].update(hash="0" * 32),  # the data file changed since
    lambda ident: ident["protocol"].update(version=0),  # the split protocol changed since
    lambda ident: ident["evaluation"].update(cutoffs=[5, 50]),  # the metrics changed since
])
def test_stale_rows_are_rerun_and_archived_not_reused(tmp_path, edit, caplog):
    config = SuiteConfig(results_dir=tmp_path, samplers=("random-users",), models=("ease",), budgets=(10,), seeds=(0,))
    (path,) = run_suite(config, progress=False)
    row = json.loads(path.read_text())
    assert row["sampler_version"] == "1" and row["selection"] == {}
    edit(row["identity"])
    row["identity_key"] = identity_key(row["identity"])  # as a row of that other computation would have it
    path.write_text(json.dumps(row))
    with caplog.at_level("WARNING", logger="cfbench"):
        summary = run_suite(config, progress=False)
    assert "is stale" in caplog.text and summary.archived == 1 and summary.computed == 1
    fresh = json.loads(path.read_text())
    assert fresh["identity_key"] != row["identity_key"] and fresh["identity"]["sampler"]["version"] == "1"
    (archived,) = (tmp_path / ".stale").rglob("*.json")
    assert json.loads(archived.read_text()) == row
    assert len(load_rows(tmp_path)) == 1  # archived rows are not loaded
    summary = run_suite(config, progress=False)  # now current: nothing re-run, nothing archived
    assert summary.computed == 0 and summary.reused == 1
    assert len(list((tmp_path / ".stale").rglob("*.json"))) == 1


def test_a_row_whose_identity_was_edited_without_its_key_is_not_reused(tmp_path):
    config = SuiteConfig(results_dir=tmp_path, samplers=("random-users",), models=("ease",), budgets=(10,), seeds=(0,))
    (path,) = run_suite(config, progress=False)
    row = json.loads(path.read_text())
    row["identity"]["budget"] = 20
    path.write_text(json.dumps(row))
    assert run_suite(config, progress=False).computed == 1
    assert json.loads(path.read_text())["identity"]["budget"] == 10


def test_a_split_without_validation_users_fails_before_anything_is_computed(tmp_path, capsys):
    # Every user keeps 3–5 interactions: under the protocol nobody gets validation items, so no λ can be chosen.
    argv = ["run", "--dataset", "thin:ml-latest-small,per_user=3-5", "--samplers", "random-users", "--models", "ease",
            "--budgets", "10", "--seeds", "0,1", "--results-dir", str(tmp_path), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "seed 0: no user has validation items" in err and "most any user has here is 5" in err
    assert len(err.splitlines()) == 1
    assert not list(tmp_path.rglob("*.json"))
