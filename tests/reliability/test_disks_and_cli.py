"""Full and read-only disks, and bad command-line arguments: a one-line error, nothing lost.

The disk cases use real kernel errors: a file-size limit (``RLIMIT_FSIZE``, EFBIG) works for any
user; a small tmpfs (ENOSPC) and a read-only bind mount (EROFS) need mount rights and are skipped,
saying so, where the machine does not give them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cfbench.cli import main

from .conftest import ROOT, assert_one_line_error, cli_command, cli_env, rows_by_name, run_cli, run_cli_process

def _run(tiny_csv, results, budgets="5,10,20"):
    return ["run", "--dataset", str(tiny_csv), "--results-dir", str(results), "--samplers", "full,random-users",
            "--models", "ease", "--budgets", budgets, "--seeds", "0", "--no-report", "-q"]


def _valid_rows(results: Path) -> dict[str, dict]:
    rows = rows_by_name(results)
    for name, row in rows.items():
        assert row["status"] == "ok" and "ndcg@10" in row["metrics"]["test"], name
    return rows


def _no_temporaries(root: Path) -> bool:
    return not [p for p in root.rglob("*.tmp")]


@contextlib.contextmanager
def _mounted(target: Path, *options: str):
    target.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", *options, str(target)], capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow mounting (needs root with CAP_SYS_ADMIN)")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture(scope="module")
def reference(tiny_csv, tmp_path_factory):
    results = tmp_path_factory.mktemp("reference")
    assert main(_run(tiny_csv, results)) == 0
    return rows_by_name(results)


def _with_file_size_limit(limit: int) -> list[str]:
    """A command prefix that runs the rest under a file-size limit: a write past it fails with EFBIG
    (SIGXFSZ ignored, which survives the exec)."""
    code = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", code]


def test_file_size_limit_fails_with_one_line_and_loses_nothing(tiny_csv, tmp_path, reference):
    results = tmp_path / "r"
    assert main(_run(tiny_csv, results, budgets="5")) == 0  # some rows exist
    before = {n: (results / n).read_bytes() for n in rows_by_name(results)}
    done = subprocess.run(_with_file_size_limit(2048) + cli_command(_run(tiny_csv, results)),  # a row is ~3 KiB
                          capture_output=True, text=True, timeout=300, env=cli_env(), cwd=ROOT)
    assert done.returncode == 2, done.stderr
    assert_one_line_error(done.stderr, "file too large")
    assert {n: (results / n).read_bytes() for n in before} == before  # nothing written before was touched
    assert _no_temporaries(results)
    assert main(_run(tiny_csv, results)) == 0  # without the limit the run completes
    rows = _valid_rows(results)
    assert {n: r["metrics"] for n, r in rows.items()} == {n: r["metrics"] for n, r in reference.items()}


def test_full_disk_during_run_then_resume(tiny_csv, tmp_path, reference):
    mount = tmp_path / "small"
    with _mounted(mount, "-t", "tmpfs", "-o", "size=12k", "tmpfs"):
        results = mount / "r"
        done = run_cli_process(_run(tiny_csv, results))
        assert done.returncode == 2, done.stderr
        assert_one_line_error(done.stderr, "disk is full")
        written = _valid_rows(results)  # whatever was written is complete and valid
        assert len(written) < len(reference)
        assert _no_temporaries(results)
        subprocess.run(["mount", "-o", "remount,size=4m", str(mount)], check=True)
        assert main(_run(tiny_csv, results)) == 0
        rows = _valid_rows(results)
        assert {n: r["metrics"] for n, r in rows.items()} == {n: r["metrics"] for n, r in reference.items()}


def test_full_disk_during_report_leaves_only_complete_files(tiny_csv, tmp_path, reference):
    results = tmp_path / "r"
    assert main(_run(tiny_csv, results)) == 0
    clean = tmp_path / "clean"
    assert main(["report", "--results-dir", str(results), "--out", str(clean), "-q"]) == 0
    expected = {p.relative_to(clean): p.read_bytes() for p in clean.rglob("*") if p.is_file()}
    mount = tmp_path / "lb"
    with _mounted(mount, "-t", "tmpfs", "-o", f"size={sum(map(len, expected.values())) // 2}", "tmpfs"):
        done = run_cli_process(["report", "--results-dir", results, "--out", mount, "-q"])
        assert done.returncode == 2
        assert_one_line_error(done.stderr, "disk is full")
        present = {p.relative_to(mount): p.read_bytes() for p in mount.rglob("*") if p.is_file()}
        assert present and len(present) < len(expected)
        assert all(data == expected[rel] for rel, data in present.items())  # complete files only
        assert _no_temporaries(mount)


def test_read_only_results_directory(tiny_csv, tmp_path, reference, capsys):
    results = tmp_path / "r"
    assert main(_run(tiny_csv, results, budgets="5")) == 0
    before = {n: (results / n).read_bytes() for n in rows_by_name(results)}
    if os.geteuid() != 0:
        results.chmod(0o555)
        ctx = contextlib.nullcontext()
    else:
        ctx = _mounted(results, "--bind", str(results))
    with ctx:
        if os.geteuid() == 0:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(results)], check=True)
        rc, _, err = run_cli(_run(tiny_csv, results), capsys)
        assert rc == 2
        assert_one_line_error(err, "read-only", str(results))
        rc, _, err = run_cli(["report", "--results-dir", results, "--out", tmp_path / "lb", "-q"], capsys)
        assert rc == 0, err  # reading is all a report needs
        rc, _, err = run_cli(["report", "--results-dir", results, "--out", results / "lb", "-q"], capsys)
        assert rc == 2
        assert_one_line_error(err, "read-only")
    assert {n: (results / n).read_bytes() for n in before} == before


def test_results_dir_that_is_a_file(tiny_csv, tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("not a folder")
    rc, _, err = run_cli(_run(tiny_csv, target), capsys)
    assert rc == 2
    assert_one_line_error(err, "is a file")
    assert target.read_text() == "not a folder"


BAD_ARGUMENTS = [
    (["run", "--budgets", "0"], "--budgets"),
    (["run", "--budgets", "-5"], "--budgets"),
    (["run", "--budgets", "ten"], "--budgets"),
    (["run", "--budgets", ","], "--budgets"),
    (["run", "--seeds", "-1"], "--seeds"),
    (["run", "--seeds", "0.5"], "--seeds"),
    (["run", "--batch-size", "0"], "--batch-size"),
    (["run", "--unit-timeout", "0"], "--unit-timeout"),
    (["run", "--unit-timeout", "nan"], "--unit-timeout"),
    (["run", "--rating-threshold", "nan"], "--rating-threshold"),
    (["run", "--rating-threshold", "inf"], "--rating-threshold"),
    (["run", "--dtype", "float16"], "--dtype"),
    (["run", "--no-such-flag"], "no-such-flag"),
    (["frobnicate"], "frobnicate"),
    (["run", "--samplers", "nope"], "unknown sampler 'nope'"),
    (["run", "--samplers", "random-users:nope=1"], "nope"),
    (["run", "--samplers", "svp-cf:epochs=many"], "epochs"),
    (["run", "--samplers", "random-users:=3"], "random-users"),
    (["run", "--samplers", "tests.reliability.nowhere:Sampler"], "tests.reliability.nowhere"),
    (["run", "--samplers", "os.path:join"], "os.path:join"),
    (["run", "--models", "nope"], "unknown model 'nope'"),
    (["run", "--models", "ease:solver=magic"], "solver"),
    (["run", "--models", "ease:lam=abc"], "lam"),
    (["run", "--dataset", "nope"], "unknown dataset"),
    (["run", "--dataset", "/"], "directory"),
    (["run", "--data-dir", "/nonexistent/data"], "data directory"),
    (["run", "--rating-threshold", "9"], "no user"),
    (["report", "--results-dir", "/nonexistent/x"], "does not exist"),
    (["export", "--format", "xml"], "--format"),
    (["fetch", "nope"], "nope"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_bad_arguments_give_one_line_and_write_nothing(argv, needle, tmp_path, capsys):
    results = tmp_path / "r"
    extra = ["--results-dir", str(results), "--no-report", "-q"] if argv[0] == "run" else []
    rc, out, err = run_cli([*argv, *extra], capsys)
    assert rc == 2, err
    assert_one_line_error(err, needle)
    assert not any(results.rglob("*.json")) if results.exists() else True


def test_help_exits_zero(capsys):
    rc, out, _ = run_cli(["run", "--help"], capsys)
    assert rc == 0 and "--unit-timeout" in out


def test_duplicate_budgets_and_seeds_run_once(tiny_csv, tmp_path, capsys):
    results = tmp_path / "r"
    rc, _, err = run_cli(["run", "--dataset", tiny_csv, "--samplers", "random-users", "--models", "ease",
                          "--budgets", "5,5", "--seeds", "1,1", "--results-dir", results, "--no-report", "-q"], capsys)
    assert rc == 0, err
    assert len(rows_by_name(results)) == 1
    row = json.loads(next(results.rglob("*.json")).read_text())
    assert row["budget"] == 5 and row["seed"] == 1
