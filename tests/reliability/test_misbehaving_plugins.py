"""Misbehaving plugins: every way a sampler or model can fail becomes a failed row, never a lost suite.

Each case runs the failing plugin next to a healthy sampler in one suite and asserts: exit status 1;
the failing unit's row is recorded as failed with the right kind, a message and a traceback; the
healthy sampler's row is identical (metrics) to a run without the failing plugin; no traceback on
stderr, one line per failure; the run log holds the traceback.
"""

from __future__ import annotations

import json

import pytest

from .conftest import rows_by_name, run_cli

BAD = "tests.reliability.bad_plugins:"
HEALTHY = "random-users"


def _suite(tiny_csv, results, samplers, models="ease", extra=()):
    return ["run", "--dataset", tiny_csv, "--samplers", samplers, "--models", models, "--budgets", "10",
            "--seeds", "0", "--results-dir", results, "--no-report", "-q", *extra]


@pytest.fixture(scope="module")
def reference(tiny_csv, tmp_path_factory):
    """The healthy sampler's rows from a run without any misbehaving plugin."""
    from cfbench.cli import main

    results = tmp_path_factory.mktemp("reference")
    assert main([str(a) for a in _suite(tiny_csv, results, HEALTHY, "ease,infinite-ae")]) == 0
    return {name.split("/")[-1]: row for name, row in rows_by_name(results).items()}


SAMPLER_CASES = [
    ("Raises", "exception", "RuntimeError: the plugin's own bug"),
    ("ExitZero", "exit", "sys.exit(0)"),
    ("ExitOne", "exit", "giving up"),
    ("Sleeps", "timeout", "time limit"),
    ("Spins", "timeout", "time limit"),
    ("SwallowsEverything", "timeout", "time limit"),
    ("Deadlocks", "timeout", "time limit"),
    ("ReturnsList", "exception", "returned list"),
    ("ReturnsNone", "exception", "returned NoneType"),
    ("ReturnsFloatUsers", "exception", "integer"),
    ("OverBudget", "exception", "for a budget of 10"),
    ("OutOfRange", "exception", "outside"),
    ("NaNSynthetic", "exception", "non-finite"),
    ("WritesTrain", "mutation", "read-only"),
    ("SetsItem", "mutation", "read-only"),
    ("WritesVal", "mutation", "read-only"),
    ("WritesTrainSneakily", "mutation", "modified the shared"),
    ("HugeAllocation", "memory", "out of memory"),
    ("HugeDeviceAllocation", "memory", "out of memory"),
    ("BadDiagnostics", "exception", "JSON"),
    ("RaisingDiagnostics", "exception", "no such statistic"),
]


@pytest.mark.parametrize(("attr", "kind", "message"), SAMPLER_CASES, ids=[c[0] for c in SAMPLER_CASES])
def test_failing_sampler_becomes_a_failed_row_and_the_suite_goes_on(attr, kind, message, tiny_csv, tmp_path,
                                                                    capsys, reference):
    results = tmp_path / "r"
    rc, _, err = run_cli(_suite(tiny_csv, results, f"{BAD}{attr},{HEALTHY}", "ease,infinite-ae",
                                ("--unit-timeout", "1.5")), capsys)
    assert rc == 1, err
    assert "Traceback" not in err
    rows = rows_by_name(results)
    failed = {n: r for n, r in rows.items() if r["status"] == "failed"}
    ok = {n.split("/")[-1]: r for n, r in rows.items() if r["status"] == "ok"}
    assert len(failed) == 2 and len(ok) == 2, sorted(rows)  # both models of the bad unit; the healthy unit
    for row in failed.values():
        assert row["error"]["kind"] == kind, row["error"]
        assert message.lower() in row["error"]["message"].lower(), row["error"]["message"]
        assert row["error"]["phase"] in ("select", "diagnostics")
        assert row["identity_key"] and "metrics" not in row
        if attr != "WritesTrainSneakily":  # detected by the fingerprint after select, not raised
            assert "Traceback" in row["error"]["traceback"]
        assert sum(row["sampler_spec"] in line and kind in line for line in err.splitlines()) == 2, err
    for name, row in ok.items():  # the healthy unit is untouched by its neighbour
        assert row["metrics"] == reference[name]["metrics"], name
    logs = list((results / ".logs").glob("*.log"))
    assert len(logs) == 1 and "FAILED" in logs[0].read_text()


def test_rebinding_the_given_matrix_cannot_touch_the_shared_split(tiny_csv, tmp_path, capsys, reference):
    results = tmp_path / "r"
    rc, _, err = run_cli(_suite(tiny_csv, results, f"{BAD}RebindsTrain,{HEALTHY}", "ease,infinite-ae"), capsys)
    assert rc == 0, err
    ok = {n.split("/")[-1]: r for n, r in rows_by_name(results).items()}
    assert all(r["status"] == "ok" for r in ok.values())
    for name, row in ok.items():
        if name.startswith(HEALTHY):
            assert row["metrics"] == reference[name]["metrics"]


MODEL_CASES = [
    ("NaNModel", "exception", "failed numerically"),
    ("RaisingModel", "exception", "cannot fit"),
    ("ExitingModel", "exit", "sys.exit(0)"),
]


@pytest.mark.parametrize(("attr", "kind", "message"), MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_failing_model_becomes_a_failed_row_and_other_models_go_on(attr, kind, message, tiny_csv, tmp_path,
                                                                   capsys, reference):
    results = tmp_path / "r"
    rc, _, err = run_cli(_suite(tiny_csv, results, HEALTHY, f"{BAD}{attr},ease"), capsys)
    assert rc == 1 and "Traceback" not in err
    rows = rows_by_name(results)
    (bad,) = [r for r in rows.values() if r["status"] == "failed"]
    (good,) = [r for r in rows.values() if r["status"] == "ok"]
    assert bad["error"]["kind"] == kind and message.lower() in bad["error"]["message"].lower(), bad["error"]
    assert good["metrics"] == reference[f"{HEALTHY}__ease__b10__s0.json"]["metrics"]


def test_keyboard_interrupt_stops_the_run_and_keeps_what_was_written(tiny_csv, tmp_path, capsys):
    results = tmp_path / "r"
    rc, _, err = run_cli(_suite(tiny_csv, results, f"{HEALTHY},{BAD}Interrupts"), capsys)
    assert rc == 130 and "interrupted" in err and "Traceback" not in err
    rows = rows_by_name(results)
    assert [r["sampler"] for r in rows.values()] == [HEALTHY]
    assert not list((results / ".claims").glob("*.lock")) or all(
        p.read_text() == "" for p in (results / ".claims").glob("*.lock"))


def test_failed_units_are_retried_by_the_next_run(tiny_csv, tmp_path, capsys, monkeypatch):
    results = tmp_path / "r"
    argv = _suite(tiny_csv, results, f"{BAD}FailsWhenAsked,{HEALTHY}")
    monkeypatch.setenv("CFBENCH_TEST_FAIL", "1")
    rc, _, err = run_cli(argv, capsys)
    assert rc == 1 and "ConnectionError" in err
    monkeypatch.delenv("CFBENCH_TEST_FAIL")
    healthy = {n: p.stat().st_mtime_ns for n, p in ((n, results / n) for n in rows_by_name(results))
               if HEALTHY in n}
    rc, _, err = run_cli(argv, capsys)
    assert rc == 0, err
    rows = rows_by_name(results)
    assert all(r["status"] == "ok" for r in rows.values()) and len(rows) == 2
    assert all((results / n).stat().st_mtime_ns == t for n, t in healthy.items())  # not recomputed
    assert not list((results / ".stale").rglob("*.json")) if (results / ".stale").exists() else True


def test_failed_rows_are_not_in_leaderboards_or_exports_but_are_listed(tiny_csv, tmp_path, capsys):
    results, boards = tmp_path / "r", tmp_path / "lb"
    rc, _, _ = run_cli(_suite(tiny_csv, results, f"{BAD}Raises,{HEALTHY}"), capsys)
    assert rc == 1
    rc, out, err = run_cli(["export", "--results-dir", results], capsys)
    assert rc == 0 and "Traceback" not in err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and HEALTHY in lines[1] and "bad-raises" not in out
    rc, _, err = run_cli(["report", "--results-dir", results, "--out", boards, "--no-plots"], capsys)
    assert rc == 0 and "Traceback" not in err
    text = "\n".join(p.read_text() for p in boards.rglob("*.md"))
    assert "bad-raises" in text and "RuntimeError" in text  # listed as a failure, not scored
    row = json.loads(next(results.rglob("bad-raises*.json")).read_text())
    assert row["status"] == "failed"


def test_a_plugin_that_changes_directory_cannot_send_rows_elsewhere(tiny_csv, tmp_path, capsys, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("CFBENCH_TEST_CHDIR", str(elsewhere))
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli(_suite(tiny_csv, "r", f"{BAD}ChangesDirectory,{HEALTHY}"), capsys)
    assert rc == 0, err
    assert len(rows_by_name(tmp_path / "r")) == 2 and not list(elsewhere.rglob("*.json"))


@pytest.mark.parametrize(("spec", "needle"), [
    (f"{BAD}NoName", "'name'"),
    (f"{BAD}NotImplemented_", "select"),
    (f"{BAD}OddParams", "cannot be recorded"),
])
def test_unusable_sampler_classes_are_refused_before_anything_runs(spec, needle, tiny_csv, tmp_path, capsys):
    from .conftest import assert_one_line_error

    rc, _, err = run_cli(_suite(tiny_csv, tmp_path / "r", f"{HEALTHY},{spec}"), capsys)
    assert rc == 2
    assert_one_line_error(err, needle)
    assert not list((tmp_path / "r").rglob("*.json")) if (tmp_path / "r").exists() else True


def test_unusable_model_class_is_refused(tiny_csv, tmp_path, capsys):
    from .conftest import assert_one_line_error

    rc, _, err = run_cli(_suite(tiny_csv, tmp_path / "r", HEALTHY, f"{BAD}EmptyGridModel"), capsys)
    assert rc == 2
    assert_one_line_error(err, "lambda_grid")


@pytest.mark.parametrize(("body", "needle"), [
    ("import sys\nsys.exit(0)\n", "sys.exit(0)"),
    ("raise RuntimeError('broken at import')\n", "broken at import"),
    ("import nonexistent_dependency_xyz\n", "nonexistent_dependency_xyz"),
    ("def broken(:\n", "SyntaxError"),
])
def test_a_plugin_module_that_fails_to_import_is_one_line(body, needle, tiny_csv, tmp_path, capsys, monkeypatch):
    from .conftest import assert_one_line_error

    (tmp_path / "plugin_at_import.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "plugin_at_import", raising=False)
    rc, _, err = run_cli(_suite(tiny_csv, tmp_path / "r", "plugin_at_import:Sampler"), capsys)
    assert rc == 2
    assert_one_line_error(err, "plugin_at_import", needle)


def test_a_unit_stuck_in_native_code_is_recorded_and_the_next_run_goes_round_it(tiny_csv, tmp_path):
    from .conftest import run_cli_process

    results = tmp_path / "r"
    argv = ["run", "--dataset", tiny_csv, "--samplers", f"{BAD}StuckInNativeCode,{HEALTHY}", "--models", "ease",
            "--budgets", "10", "--seeds", "0", "--results-dir", results, "--no-report", "-q", "--unit-timeout", "5"]
    first = run_cli_process(argv, timeout=120)
    assert first.returncode == 3, first.stderr
    assert "stuck in native code" in first.stderr and "Traceback" not in first.stderr
    (stuck,) = rows_by_name(results).values()  # the suite stopped at the stuck unit, which is recorded
    assert stuck["status"] == "failed" and stuck["error"]["kind"] == "timeout"
    second = run_cli_process(argv, timeout=120)  # the failed unit now runs last: the healthy one is done first
    assert second.returncode == 3
    rows = rows_by_name(results)
    assert sorted(r["status"] for r in rows.values()) == ["failed", "ok"]
    assert not list(results.rglob("*.tmp"))
