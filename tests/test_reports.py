"""Result rows as reports and exports read them: validation, NaN → null, deduplication, leaderboards."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os

import numpy as np
import pytest

from cfbench import files
from cfbench.reports import export, write_leaderboards
from cfbench.results import (ResultsError, load_rows, read_row, read_row_checked, row_identity_key, row_path,
                             rows_frame, scan_rows, validate_row, write_row)

METRICS = {"auc": 0.9, "hr@10": 20.0, "hr@100": 50.0, "ndcg@10": 15.0, "ndcg@100": 25.0, "psp@10": 2.0,
           "psp@100": 6.0}


def make_row(schema: int = 2, sampler: str = "random-users", budget: int = 10, seed: int = 0, model: str = "ease",
             created: str = "2026-11-24T03:26:48+00:00", data_hash: str = "ab" * 16, **extra) -> dict:
    """A minimal valid ok row (schema 1 or 2)."""
    row = {
        "schema": schema, "created": created, "dataset": "toy", "sampler": sampler.split(":")[0],
        "sampler_spec": sampler, "sampler_params": {}, "sampler_version": "1", "model": model, "model_spec": model,
        "model_params": {"lam": 5.0, "dtype": "float32"}, "dtype": "float32", "subset_kind": "users",
        "budget": budget, "seed": seed, "lambda": 5.0,
        "metrics": {"val": dict(METRICS), "test": dict(METRICS)},
        "subset": {"n_users": budget, "n_interactions": 10 * budget, "fraction_train_interactions": budget / 100},
        "timings": {"select_s": 0.01, "fit_s": 0.02 * budget, "eval_s": 0.1},
        "environment": {"device": "cpu:cpu"},
    }
    if schema >= 2:
        identity = {"dataset": {"name": "toy", "hash": data_hash}, "sampler": {"name": sampler, "params": {}},
                    "budget": budget, "seed": seed, "model": {"name": model}}
        row.update(status="ok", identity=identity, identity_key=_key(identity))
    row.update(extra)
    return row


def make_failed(sampler: str = "random-users", budget: int = 20, seed: int = 0, model: str = "ease", **extra) -> dict:
    row = make_row(sampler=sampler, budget=budget, seed=seed, model=model)
    for key in ("metrics", "timings", "subset", "lambda", "subset_kind"):
        del row[key]
    row.update(status="failed", error={"kind": "exception", "message": "ValueError: boom | bad\nsecond line",
                                       "traceback": "Traceback …", "phase": "fit"})
    row.update(extra)
    return row


def _key(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _set(row: dict, dotted: str, value) -> dict:
    row = copy.deepcopy(row)
    *parents, last = dotted.split(".")
    target = row
    for p in parents:
        target = target[p]
    target[last] = value
    return row


def _drop(row: dict, dotted: str) -> dict:
    row = copy.deepcopy(row)
    *parents, last = dotted.split(".")
    target = row
    for p in parents:
        target = target[p]
    del target[last]
    return row


# --------------------------------------------------------------------------------------------------------
# validate_row


@pytest.mark.parametrize("row", [
    make_row(), make_row(schema=1), make_failed(),
    make_row(selection={"tau": 0.5}, extra_key=[1, 2, {"x": None}]),  # extra keys are fine
    _set(make_row(), "metrics.test.ndcg@10", None),  # null = not available
    _set(make_row(schema=1), "metrics.test.auc", math.nan),  # NaN in rows written before schema 2
    _set(make_row(), "metrics.val", {}),
    _set(make_row(), "budget", np.int64(10)),  # in-memory rows may hold numpy scalars
    _set(make_row(), "lambda", np.float32(5.0)),
    _set(make_row(), "created", "2026-11-24T03:26:48"),  # naive: taken as UTC
], ids=["schema2", "schema1", "failed", "extra-keys", "null-metric", "nan-metric-schema1", "empty-val",
        "numpy-int", "numpy-float", "naive-created"])
def test_valid_rows_pass(row):
    assert validate_row(row) is None


@pytest.mark.parametrize(("row", "reason"), [
    ([make_row()], "holds a list, expected a JSON object"),
    ("text", "holds a str"),
    (None, "holds null"),
    ({"schema": 1}, "missing keys dataset, sampler"),
    (_drop(make_row(), "schema"), "no 'schema' key"),
    (_set(make_row(), "schema", 3), "schema 3 is not supported"),
    (_set(make_row(), "schema", "2"), "schema is a str, expected an int"),
    (_set(make_row(), "schema", True), "schema is a bool, expected an int"),
    (_drop(make_row(), "status"), "missing key status"),
    (_set(make_row(), "status", "done"), "status is 'done'"),
    (_set(make_row(), "identity", []), "identity is a list, expected a dict"),
    (_set(make_row(), "identity_key", "xyz"), "identity_key is 'xyz', expected 64 hex digits"),
    (_drop(make_row(), "created"), "missing key created"),
    (_set(make_row(), "created", "yesterday"), "created is 'yesterday', expected an ISO 8601"),
    (_set(make_row(), "metrics.test.ndcg@10", "14.8"), "metrics.test.ndcg@10 is a str, expected a number"),
    (_set(make_row(), "metrics.test.hr@10", True), "metrics.test.hr@10 is a bool, expected a number"),
    (_set(make_row(), "metrics.val.auc", math.inf), "metrics.val.auc is infinite, expected a finite number"),
    (_set(make_row(), "metrics.val", [1, 2]), "metrics.val is a list, expected a dict"),
    (_drop(make_row(), "metrics.test"), "metrics has no test"),
    (_set(make_row(), "metrics", None), "metrics is null, expected a dict"),
    (_set(make_row(), "budget", "10"), "budget is a str, expected an int"),
    (_set(make_row(), "budget", True), "budget is a bool, expected an int"),
    (_set(make_row(), "seed", 0.0), "seed is a float, expected an int"),
    (_set(make_row(), "lambda", True), "lambda is a bool, expected a number"),
    (_set(make_row(), "lambda", math.nan), "lambda is NaN, expected a finite number"),
    (_set(make_row(), "sampler_spec", 3), "sampler_spec is an int, expected a str"),
    (_drop(make_row(), "subset.fraction_train_interactions"), "subset has no fraction_train_interactions"),
    (_set(make_row(), "subset.n_users", "10"), "subset.n_users is a str"),
    (_drop(make_row(), "timings"), "missing key timings"),
    (_set(make_row(), "timings.fit_s", -1.0), "timings.fit_s is -1.0, expected a non-negative number"),
    (_set(make_row(), "timings.eval_s", math.inf), "timings.eval_s is infinite"),
    (_set(make_row(), "timings.select_s", None), "timings.select_s is null, expected a number"),
    (_set(make_row(), "environment", "cpu"), "environment is a str, expected a dict"),
    (_set(make_row(), "environment", {}), "environment has no device"),
    (_set(make_row(), "environment.device", None), "environment.device is null, expected a str"),
    (_drop(make_failed(), "error"), "missing key error"),
    (_drop(make_failed(), "error.traceback"), "error has no traceback"),
    (_set(make_failed(), "error.kind", 3), "error.kind is an int, expected a str"),
    (_set(make_failed(), "budget", None), "budget is null, expected an int"),
])
def test_invalid_rows_give_a_short_reason(row, reason):
    got = validate_row(row)
    assert got is not None and reason in got, got
    assert "\n" not in got and len(got) < 200


def test_validate_row_never_raises_on_odd_objects():
    class Weird(dict):
        def get(self, *args):
            raise RuntimeError("no")

    assert validate_row(Weird(schema=2)) is not None
    assert validate_row(object()) is not None
    assert validate_row(_set(make_row(), "metrics.test.x", object())) is not None


# --------------------------------------------------------------------------------------------------------
# write_row: standard JSON only


def test_write_row_turns_nan_and_infinity_into_null_and_reads_back(tmp_path):
    row = make_row()
    row["metrics"]["test"]["psp@10"] = math.nan
    row["metrics"]["val"]["auc"] = np.float32("nan")
    row["lambda_grid_val"] = {"0.0": math.nan, "1.0": np.float64(3.5), "2.0": -math.inf}
    row["trace"] = [(1, math.inf), np.array([1.0, np.nan])]
    row["subset"]["n_users"] = np.int64(10)
    path = tmp_path / "toy" / "row.json"
    write_row(path, row)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text

    def reject(token):
        raise AssertionError(f"non-standard JSON token {token}")

    strict = json.loads(text, parse_constant=reject)
    assert strict["lambda_grid_val"] == {"0.0": None, "1.0": 3.5, "2.0": None}
    assert strict["trace"] == [[1, None], [1.0, None]]
    back = read_row(path)
    assert back is not None and back["metrics"]["test"]["psp@10"] is None and back["metrics"]["val"]["auc"] is None
    assert back["subset"]["n_users"] == 10 and type(back["subset"]["n_users"]) is int
    df = rows_frame([back])
    assert math.isnan(df.loc[0, "psp@10"]) and df.loc[0, "ndcg@10"] == 15.0
    assert [p.name for p in path.parent.iterdir()] == ["row.json"]  # no temporary file left


def test_write_row_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "row.json"
    write_row(path, make_row())
    before = path.read_bytes()

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError):
        write_row(path, make_row(seed=5))
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["row.json"]


# --------------------------------------------------------------------------------------------------------
# read_row never raises


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "is empty"),
    (b"  \n", "is empty"),
    (b"{not json", "is not valid JSON"),
    (b'{"schema": 2,', "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text (byte 0xff at offset 0)"),
    (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),  # nesting deeper than the parser's recursion limit
    (b"1" * 5000, "is not valid JSON"),  # an int beyond Python's digit limit
    (b"null", "holds null"),
    (b"[1, 2]", "holds a list"),
])
def test_read_row_checked_gives_a_reason_for_any_content(tmp_path, content, reason):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    row, why = read_row_checked(path)
    assert row is None and reason in why, why
    assert read_row(path) is None


def test_read_row_checked_handles_odd_files(tmp_path):
    assert read_row_checked(tmp_path / "missing.json") == (None, "does not exist (or is a dangling link)")
    (tmp_path / "dir.json").mkdir()
    assert read_row_checked(tmp_path / "dir.json") == (None, "is a directory")
    os.mkfifo(tmp_path / "fifo.json")  # opening it would block: never opened
    assert read_row_checked(tmp_path / "fifo.json") == (None, "is not a regular file")
    (tmp_path / "a.json").symlink_to(tmp_path / "b.json")
    (tmp_path / "b.json").symlink_to(tmp_path / "a.json")
    row, why = read_row_checked(tmp_path / "a.json")
    assert row is None and why.startswith("cannot be read: ")
    good = tmp_path / "good.json"
    good.write_text("\ufeff" + json.dumps(make_row()))  # a byte-order mark some editors add
    assert read_row_checked(good)[1] is None


# --------------------------------------------------------------------------------------------------------
# Deduplication


def _put(root, name: str, row: dict):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row))
    return path


def test_duplicates_keep_the_most_recent_row(tmp_path):
    old = make_row(created="2026-01-01T00:00:00+00:00")
    new = _set(make_row(created="2026-02-01T00:00:00+00:00"), "metrics.test.ndcg@10", 99.0)
    _put(tmp_path, "a/old.json", old)
    kept = _put(tmp_path, "b/new.json", new)
    scan = scan_rows(tmp_path)
    assert [r["metrics"]["test"]["ndcg@10"] for r in scan.rows] == [99.0]
    assert scan.paths == [kept] and scan.duplicates == [(tmp_path / "a/old.json", kept)]


def test_duplicates_with_the_same_time_keep_the_canonical_path_then_the_first(tmp_path):
    row = make_row()
    canonical = row_path(tmp_path, "toy", "random-users", "ease", 10, 0)
    _put(tmp_path, "toy/backup/" + canonical.name, row)
    _put(tmp_path, "toy/" + canonical.stem + " (copy).json", row)
    _put(tmp_path, "toy/" + canonical.name, row)
    _put(tmp_path, "a.json", make_row(seed=1))
    _put(tmp_path, "b.json", make_row(seed=1))
    scan = scan_rows(tmp_path)
    assert scan.paths == [tmp_path / "a.json", canonical]
    assert sorted(kept for _, kept in scan.duplicates) == [tmp_path / "a.json", canonical, canonical]
    assert scan_rows(tmp_path) == scan  # deterministic


def test_an_ok_row_wins_over_a_failed_one_of_the_same_computation(tmp_path):
    ok = make_row(budget=20, created="2026-01-01T00:00:00+00:00")
    failed = make_failed(budget=20, created="2026-03-01T00:00:00+00:00")
    failed.update(identity=ok["identity"], identity_key=ok["identity_key"])
    _put(tmp_path, "failed.json", failed)
    _put(tmp_path, "ok.json", ok)
    _put(tmp_path, "other-failure.json", make_failed(budget=50))
    scan = scan_rows(tmp_path)
    assert scan.paths == [tmp_path / "ok.json"]
    assert scan.duplicates == [(tmp_path / "failed.json", tmp_path / "ok.json")]
    assert [p.name for p, _ in scan.failed] == ["other-failure.json"]


def test_schema1_identity_ignores_lam_and_paths_but_not_parameters():
    a = make_row(schema=1)
    assert row_identity_key(a) == row_identity_key(_set(a, "model_params.lam", 100.0))
    assert row_identity_key(a) == row_identity_key(_set(a, "created", "2020-01-01T00:00:00+00:00"))
    for dotted, value in [("dtype", "float64"), ("sampler_version", "2"), ("sampler_params", {"k": 1}),
                          ("model_params.solver", "cg"), ("seed", 1), ("budget", 20), ("model_spec", "ease:x=1")]:
        assert row_identity_key(a) != row_identity_key(_set(a, dotted, value)), dotted
    assert row_identity_key(make_row()) == make_row()["identity_key"]


def test_load_rows_reports_each_skipped_file_on_one_line(tmp_path, capsys):
    _put(tmp_path, "ok.json", make_row())
    _put(tmp_path, "copy.json", make_row())
    (tmp_path / "bad.json").write_text("{")
    _put(tmp_path, "failed.json", make_failed())
    (tmp_path / ".hidden.json").write_text("{")
    (tmp_path / ".stale").mkdir()
    (tmp_path / ".stale" / "old.json").write_text("{")
    rows = load_rows(tmp_path)
    err = capsys.readouterr().err.splitlines()
    assert len(rows) == 1
    assert err == [f"cfbench: skipping {tmp_path / 'bad.json'}: is not valid JSON (Expecting property name enclosed "
                   "in double quotes at line 1 column 2)",
                   f"cfbench: {tmp_path / 'failed.json'}: failed unit (exception in fit: ValueError: boom | bad); "
                   "not in the tables",
                   f"cfbench: {tmp_path / 'ok.json'} duplicates {tmp_path / 'copy.json'} (same identity); counted once",
                   f"cfbench: {tmp_path}: 1 row loaded; 1 invalid file skipped, 1 duplicate counted once, "
                   "1 failed unit"]


def test_no_usable_rows_is_a_one_line_results_error(tmp_path):
    with pytest.raises(ResultsError, match="no result rows in .*; run `cfbench run"):
        scan_rows(tmp_path).require_rows()
    (tmp_path / "bad.json").write_text("{")
    _put(tmp_path, "failed.json", make_failed())
    with pytest.raises(ResultsError, match=r"no usable result rows in .* \(found 1 invalid, 1 failed unit"):
        export(tmp_path)
    with pytest.raises(ResultsError, match="does not exist"):
        scan_rows(tmp_path / "nope")
    with pytest.raises(ResultsError, match="is not a directory"):
        scan_rows(tmp_path / "bad.json")


# --------------------------------------------------------------------------------------------------------
# Tables from imperfect rows


def test_rows_frame_tolerates_null_metrics_and_colliding_extra_keys():
    rows = [_set(make_row(), "metrics.test", {"ndcg@10": None, "budget": 7.0}),
            _set(make_row(seed=1), "subset.model", "oops")]
    df = rows_frame(rows)
    assert list(df["budget"]) == [10, 10] and list(df["model"]) == ["ease", "ease"]
    assert df["auc"].isna().iloc[0] and math.isnan(df.loc[0, "ndcg@10"])
    assert rows_frame([]).empty


def test_leaderboards_from_imperfect_rows(tmp_path, capsys):
    results = tmp_path / "results"
    _put(results, "full.json", make_row(sampler="full", budget=100, created="2026-11-20T10:00:00+00:00"))
    _put(results, "a.json", _set(make_row(created="2026-11-24T03:00:00+00:00"), "metrics.test.ndcg@10", None))
    _put(results, "b.json", _set(make_row(seed=1, data_hash="cd" * 16), "metrics.test.ndcg@10", None))
    _put(results, "c.json", _set(make_row(budget=50, selection=[1, 2]), "metrics.test",
                                 {"ndcg@10": 10.0}))  # no other metric; `selection` not a dict
    _put(results, "d0.json", make_row(budget=30))
    _put(results, "d1.json", _set(make_row(budget=30, seed=1), "metrics.test.ndcg@10", None))
    _put(results, "failed.json", make_failed())
    _put(results, "failed-other-model.json", make_failed(model="infinite-ae"))
    (results / "junk.json").write_text("[]")
    out = tmp_path / "lb"
    out.mkdir()
    orphan = out / f".toy.md.{files._HOST}.999999999.tmp"
    orphan.write_text("half")
    written = write_leaderboards(results, out, plots=False)
    assert not orphan.exists()
    assert {p.name for p in written} == {"ease.md", "ease.csv", "ease.tex", "index.html", "README.md"}
    text = (out / "toy" / "ease.md").read_text()
    lines = text.splitlines()
    assert lines[2].startswith("6 rows; seeds 0, 1; device(s): cpu:cpu; rows created 2026-11-20 – 2026-11-24.")
    assert sum("mixed data" in line for line in lines) == 1
    ndcg = text.split("## NDCG@10")[1].split("##")[0]
    # null metrics are "–"; a cell with one value among two seeds has no ±
    assert ndcg.splitlines()[4].split("|")[2:5] == [" –    ", " 15.00 ", " 10.00 "], ndcg
    assert "`abababababab` (5 rows), `cdcdcdcdcdcd` (1 row)" in text
    failed = text.split("## Failed units")[1]
    assert "| random-users | 20       | 0      | ease    | exception | fit     | ValueError: boom \\| bad |" in failed
    index = (out / "README.md").read_text()
    assert "1 invalid file skipped" in index and "`junk.json`: holds a list" in index
    assert "2 failed units" in index and "Failed units without a leaderboard" in index and "infinite-ae" in index
    first = {p: p.read_bytes() for p in written}
    write_leaderboards(results, out, plots=False)
    assert {p: p.read_bytes() for p in written} == first  # byte-identical for the same rows
    err = capsys.readouterr().err
    assert "Traceback" not in err and "junk.json: holds a list" in err


def test_export_skips_invalid_files_and_writes_atomically(tmp_path, capsys):
    results = tmp_path / "results"
    _put(results, "a.json", _set(make_row(), "metrics.test.auc", None))
    _put(results, "a-copy.json", _set(make_row(), "metrics.test.auc", None))
    _put(results, "b.json", make_row(seed=1, schema=1))
    (results / "bad.json").write_bytes(b"\x00\x01")
    out = tmp_path / "rows.csv"
    text = export(results, "csv", output=out)
    assert out.read_text() == text and len(text.splitlines()) == 3
    assert text.splitlines()[1].split(",")[13] == ""  # the null AUC is an empty field
    lines = export(results, "jsonl").splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["auc"] is None
    with pytest.raises(ValueError, match="unknown export format"):
        export(results, "xml")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_the_selection_table_counts_the_validation_users_a_choice_rested_on():
    """Distill-CF's choices rest on the users with validation items, or on its own subset of them
    (``validation_users``): the *val users* column shows that subset, not the split's count."""
    from cfbench.reports import selection_grid
    everyone = make_row(sampler="distill-cf", selection={"tau": 5.0, "val_hr@100": 40.0},
                        n_eval_users={"val": 29_000, "test": 29_500})
    subset = make_row(sampler="distill-cf:validation_users=4096", budget=20,
                      selection={"tau": 1.0, "val_hr@100": 41.0, "val_users": 4096},
                      n_eval_users={"val": 29_000, "test": 29_500})
    table = selection_grid([everyone, subset])
    assert "val_users" not in table.headers and "val users" in table.headers
    column = table.headers.index("val users")
    assert [line[column] for line in table.texts()] == ["29,000", "4,096"]


def test_an_infeasible_full_data_unit_is_named_as_such_not_as_missing(tmp_path):
    """Where full data was planned infeasible the summary says so (not "add the full sampler"), and the
    failed-units note tells an infeasible unit (more memory brings it back) from a failure (a re-run does)."""
    results = tmp_path / "results"
    _put(results, "a.json", make_row(budget=10))
    infeasible = make_failed(sampler="full", budget=100)
    infeasible.update(status="infeasible", error={"kind": "infeasible", "phase": "plan", "traceback": "",
                                                  "message": "EASE (dual) on 100 support users needs 9 GiB > limit 1 GiB"})
    _put(results, "full.json", infeasible)
    _put(results, "failed.json", make_failed(budget=20))
    out = tmp_path / "lb"
    write_leaderboards(results, out, plots=False)
    text = (out / "toy" / "ease.md").read_text()
    assert "Full data is infeasible here" in text and "add the `full` sampler" not in text
    note = text.split("## Failed units")[1].strip().splitlines()[0]
    assert note.startswith("1 unit failed (re-run `cfbench run` to retry); 1 unit was infeasible: predicted not to fit")
    other = tmp_path / "other"
    _put(other, "a.json", make_row(budget=10))
    write_leaderboards(other, tmp_path / "lb2", plots=False)
    assert "add the `full` sampler" in (tmp_path / "lb2" / "toy" / "ease.md").read_text()


def test_speed_ups_compare_fit_times_on_one_device_only(tmp_path):
    """Full data on a GPU, subsets on a CPU: no speed-up (the fit times of two devices do not compare);
    a subset that also ran on the GPU gets its speed-up against the GPU's full-data fit."""
    from cfbench.reports import summary_frame

    gpu = {"device": "gpu:NVIDIA H100 80GB HBM3"}
    rows = [make_row(sampler="full", budget=100, environment=gpu, timings={"select_s": 0.0, "fit_s": 0.5,
                                                                          "eval_s": 0.1}),
            make_row(sampler="random-users", budget=10),  # on the CPU, fit 0.2 s
            make_row(sampler="head-users", budget=10, environment=gpu, timings={"select_s": 0.0, "fit_s": 0.05,
                                                                                "eval_s": 0.1})]
    for row in rows:
        write_row(row_path(tmp_path, "toy", row["sampler_spec"], "ease", row["budget"], 0), row)
    summary = summary_frame(rows_frame(load_rows(tmp_path))).set_index(["sampler", "budget"])
    assert math.isnan(summary.loc[("random-users", 10), "speedup"])
    assert math.isnan(summary.loc[("random-users", 10), "break_even"])
    assert summary.loc[("head-users", 10), "speedup"] == pytest.approx(10.0)
    assert summary.loc[("random-users", 10), "ndcg@10_pct_full"] == pytest.approx(100.0)  # quality still compares


def test_lambda_at_the_edge_of_its_grid_is_flagged(tmp_path):
    """λ at the largest scored grid value, or the smallest above 0, may be a grid artefact: say so."""
    from cfbench.results import lambda_grid_edge

    grid = {"0.0": None, "1.0": 30.0, "5.0": 40.0, "100.0": 35.0}  # λ = 0 was singular (no score)
    assert lambda_grid_edge({"lambda": 1.0, "lambda_grid_val": grid}) == "lower"  # 0 failed: 1 is the edge
    assert lambda_grid_edge({"lambda": 5.0, "lambda_grid_val": grid}) is None
    assert lambda_grid_edge({"lambda": 100.0, "lambda_grid_val": grid}) == "upper"
    assert lambda_grid_edge({"lambda": 0.0, "lambda_grid_val": {"0.0": 9.0, "1.0": 8.0}}) is None  # nothing below 0
    assert lambda_grid_edge({"lambda": 1.0, "lambda_grid_val": {"1.0": 8.0}}) is None  # a grid of one says nothing
    assert lambda_grid_edge({"lambda": 1.0}) is None

    results, out = tmp_path / "results", tmp_path / "boards"
    rows = [make_row(sampler="head-users", budget=10, seed=s, lambda_grid_val=grid, **{"lambda": 100.0})
            for s in (0, 1)]
    rows += [make_row(sampler="random-users", budget=10, lambda_grid_val=grid, **{"lambda": 5.0}),
             make_row(sampler="random-users", budget=20, lambda_grid_val=grid, **{"lambda": 1.0})]
    for row in rows:
        write_row(row_path(results, "toy", row["sampler_spec"], "ease", row["budget"], row["seed"]), row)
    write_leaderboards(results, out, plots=False)
    section = (out / "toy" / "ease.md").read_text().split("## λ at the edge of its grid")[1].split("##")[0]
    table = [line for line in section.splitlines() if line.startswith("| ") and "sampler" not in line]
    assert [[c.strip() for c in line.split("|")[1:-1]] for line in table] == [
        ["head-users", "10", "upper", "0,1", "100"], ["random-users", "20", "lower", "0", "1"]]
