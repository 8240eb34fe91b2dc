"""Fixtures of the reliability catalogue: a tiny dataset file and ways to run the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cfbench.cli import main

ROOT = Path(__file__).resolve().parents[2]


def write_tiny_dataset(path: Path, n_users: int = 60, n_items: int = 50, seed: int = 0) -> Path:
    """A small user,item,rating CSV in which every user has 6-15 interactions."""
    rng = np.random.default_rng(seed)
    lines = ["user,item,rating"]
    popularity = 1.0 / np.arange(1, n_items + 1)
    popularity /= popularity.sum()
    for u in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(6, 16)), replace=False, p=popularity)
        lines += [f"u{u},i{i},{int(rng.integers(1, 6))}" for i in items]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny.csv")


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``cfbench ARGV`` in this process: exit status, stdout, stderr."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.pop("CFBENCH_TRACEBACK", None)
    return env


def cli_command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "cfbench.cli", *map(str, argv)]


def run_cli_process(argv: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """``cfbench ARGV`` in a fresh process (for faults that end or hang a process)."""
    return subprocess.run(cli_command(argv), capture_output=True, text=True, timeout=timeout, env=cli_env(),
                          cwd=ROOT, **kwargs)


def rows_by_name(results: Path) -> dict[str, dict]:
    """Every row file under ``results`` (hidden folders excluded), by its path relative to ``results``."""
    out = {}
    for path in sorted(results.rglob("*.json")):
        rel = path.relative_to(results)
        if not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = json.loads(path.read_text())
    return out


def assert_one_line_error(err: str, *needles: str) -> None:
    """stderr holds no traceback and its error is one line that mentions every needle."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("cfbench: error:")]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle.lower() in errors[0].lower(), (needle, errors[0])
