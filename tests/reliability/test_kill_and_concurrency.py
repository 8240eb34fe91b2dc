"""kill -9 during `run` and `report`, then resume; 2 and 4 concurrent runs on one results directory.

After any number of kills, a resumed run must leave every row present once, with metrics identical
to an uninterrupted run, and no temporary or claim files behind. Concurrent runs must split the units
between them: no row computed twice, none lost.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from cfbench.cli import main

from .conftest import cli_command, cli_env, rows_by_name, run_cli_process, ROOT

SUITE = ["--samplers", "full,random-users,head-users", "--models", "ease,infinite-ae", "--budgets", "5,10,20",
         "--seeds", "0,1", "--no-report"]
N_ROWS = 2 * (1 + 2 * 3) * 2  # seeds × (full + 2 samplers × 3 budgets) × models
SUMMARY = re.compile(r"(\d+) rows: (\d+) computed, (\d+) already done, (\d+) computed by another process, (\d+) failed")


def _run_args(tiny_csv: Path, results: Path) -> list[str]:
    return ["run", "--dataset", str(tiny_csv), "--results-dir", str(results), *SUITE]


@pytest.fixture(scope="module")
def reference(tiny_csv, tmp_path_factory) -> dict[str, dict]:
    results = tmp_path_factory.mktemp("uninterrupted")
    assert main([*_run_args(tiny_csv, results), "-q"]) == 0
    rows = rows_by_name(results)
    assert len(rows) == N_ROWS
    return rows


def _comparable(row: dict) -> dict:
    return {k: row[k] for k in ("identity_key", "metrics", "lambda", "lambda_grid_val", "subset", "status")}


def _leftovers(results: Path) -> list[Path]:
    temps = [p for p in results.rglob("*.tmp")]
    claims = [p for p in (results / ".claims").glob("*.lock")] if (results / ".claims").exists() else []
    return temps + claims


def _count_rows(results: Path) -> int:
    return sum(1 for p in results.rglob("*.json") if not any(x.startswith(".") for x in p.relative_to(results).parts))


def _kill_repeatedly(tiny_csv: Path, results: Path, rng: np.random.Generator) -> tuple[int, int]:
    """Start the suite and ``kill -9`` it, again and again, until it is complete: (kills, kills mid-suite)."""
    kills = mid_suite = 0
    for attempt in range(20):
        before = _count_rows(results) if results.exists() else 0
        if before == N_ROWS:
            break
        proc = subprocess.Popen(cli_command([*_run_args(tiny_csv, results), "-q"]), env=cli_env(), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        if attempt % 2:  # kill at a random moment (start-up, selection, fitting, writing)
            time.sleep(rng.uniform(0.3, 3.0))
        else:  # kill right after a row was written, while the next unit is under way
            while _count_rows(results) == before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
            mid_suite += 0 < _count_rows(results) < N_ROWS
        proc.wait(timeout=60)
    return kills, mid_suite


def test_kill_9_during_run_then_resume_gives_the_uninterrupted_rows(tiny_csv, tmp_path, reference):
    rng = np.random.default_rng(7)
    kills = mid_suite = 0
    for round_ in range(6):  # a fresh results directory per round, until 10 kills have landed
        if kills >= 10:
            break
        results = tmp_path / f"r{round_}"
        k, m = _kill_repeatedly(tiny_csv, results, rng)
        kills, mid_suite = kills + k, mid_suite + m
        done = run_cli_process(_run_args(tiny_csv, results))
        assert done.returncode == 0, done.stderr
        rows = rows_by_name(results)
        assert sorted(rows) == sorted(reference)  # every row present, once
        for name, row in rows.items():
            assert _comparable(row) == _comparable(reference[name]), name
        assert _leftovers(results) == []
        assert not (results / ".stale").exists()
    assert kills >= 10 and mid_suite >= 5, (kills, mid_suite)


def _complete_png(data: bytes) -> bool:
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")


def test_kill_9_during_report_never_leaves_a_truncated_or_mixed_leaderboard(tiny_csv, tmp_path, reference):
    results = tmp_path / "r"
    assert main([*_run_args(tiny_csv, results), "-q"]) == 0
    clean = tmp_path / "clean"
    assert main(["report", "--results-dir", str(results), "--out", str(clean), "-q"]) == 0
    expected = {p.relative_to(clean): p.read_bytes() for p in clean.rglob("*") if p.is_file()}
    assert any(str(p).endswith(".png") for p in expected)
    out = tmp_path / "lb"
    rng = np.random.default_rng(11)
    kills = 0
    started = time.monotonic()
    subprocess.run(cli_command(["report", "--results-dir", results, "--out", tmp_path / "timing", "-q"]), env=cli_env(),
                   cwd=ROOT, check=True, capture_output=True)
    duration = time.monotonic() - started  # how long one report takes here, start-up included
    for _ in range(40):
        if kills >= 10:
            break
        proc = subprocess.Popen(cli_command(["report", "--results-dir", results, "--out", out, "-q"]), env=cli_env(),
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 0.95) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        for path in (p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")) if out.exists() else ():
            data = path.read_bytes()
            rel = path.relative_to(out)
            assert data == expected[rel] or (path.suffix == ".png" and _complete_png(data)), rel
    assert kills >= 10
    done = run_cli_process(["report", "--results-dir", results, "--out", out, "-q"])
    assert done.returncode == 0, done.stderr
    got = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert got.keys() == expected.keys()
    for rel, data in got.items():
        assert data == expected[rel] if rel.suffix != ".png" else _complete_png(data), rel


@pytest.mark.parametrize("n_processes", [2, 4])
def test_concurrent_runs_split_the_work_and_compute_no_row_twice(n_processes, tiny_csv, tmp_path, reference):
    results = tmp_path / "r"
    procs = [subprocess.Popen(cli_command(_run_args(tiny_csv, results)), env=cli_env(), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(n_processes)]
    outputs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * n_processes, outputs
    summaries = [SUMMARY.search(err) for err in outputs]
    assert all(summaries), outputs
    computed = [int(m.group(2)) for m in summaries]
    assert sum(computed) == N_ROWS, computed  # every row computed exactly once across the processes
    assert sum(c > 0 for c in computed) >= 2, computed  # the work was actually shared
    rows = rows_by_name(results)
    assert sorted(rows) == sorted(reference)
    for name, row in rows.items():
        assert _comparable(row) == _comparable(reference[name]), name
    assert len({row["computed_by"]["pid"] for row in rows.values()}) >= 2
    assert _leftovers(results) == []
