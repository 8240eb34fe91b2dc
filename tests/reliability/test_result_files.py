"""Corrupt, odd and duplicated result files next to valid rows: `cfbench report` and `cfbench export`
count every valid row once, skip the rest with one stderr line each, and never show a traceback;
leaderboards are written atomically (each file complete-old or complete-new after a failure)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cfbench import files, results as results_module
from cfbench.cli import main
from cfbench.harness import SuiteConfig, run_suite
from cfbench.reports import write_leaderboards
from cfbench.results import load_rows

DATASET = "ml-latest-small"
ROOT_USER = os.geteuid() == 0


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """Two valid rows (full and random-users at 10 users, EASE, seed 0), computed once per module."""
    d = tmp_path_factory.mktemp("suite")
    run_suite(SuiteConfig(results_dir=d, samplers=("full", "random-users"), models=("ease",), budgets=(10,),
                          seeds=(0,)), progress=False)
    assert len(list((d / DATASET).glob("*.json"))) == 2
    return d


@pytest.fixture
def results(suite, tmp_path) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(suite, dst, symlinks=True)
    return dst


def _rand(results: Path) -> Path:
    (path,) = (results / DATASET).glob("random-users__*.json")
    return path


def _full(results: Path) -> Path:
    (path,) = (results / DATASET).glob("full__*.json")
    return path


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _dump(path: Path, obj, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, **kwargs))


def _edit(path: Path, change: Callable[[dict], None], to: Path | None = None) -> None:
    row = _load(path)
    change(row)
    _dump(to or path, row)


def _failed_from(row: dict, budget: int | None = None) -> dict:
    failed = {k: row[k] for k in ("schema", "status", "identity", "identity_key", "created", "dataset", "sampler",
                                  "sampler_spec", "model", "model_spec", "budget", "seed", "environment")}
    if budget is not None:
        failed["budget"] = budget
        failed["identity"] = dict(row["identity"], budget=budget)
        failed["identity_key"] = "f" * 64
    failed.update(status="failed", error={"kind": "memory", "message": "RESOURCE_EXHAUSTED: out of memory",
                                          "traceback": "Traceback (most recent call last): …", "phase": "fit"})
    return failed


def _unreadable_via_os(results: Path, monkeypatch) -> None:
    """EACCES on read, as for a file of another user (works when the tests run as root)."""
    target = _rand(results)
    real = results_module._read_file

    def read(path):
        if Path(path) == target:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(results_module, "_read_file", read)


def _chmod_000(results: Path, monkeypatch) -> None:
    if ROOT_USER:
        pytest.skip("running as root: a chmod 000 file is still readable (see the unreadable-eacces case)")
    _rand(results).chmod(0)


def _unlistable_folder(results: Path, monkeypatch) -> None:
    if ROOT_USER:
        pytest.skip("running as root: a chmod 000 folder is still listable")
    backup = results / DATASET / "backup"
    backup.mkdir()
    shutil.copy(_rand(results), backup / "copy.json")
    backup.chmod(0)


def _unlistable_via_os(results: Path, monkeypatch) -> None:
    """EACCES on listing a folder (works when the tests run as root)."""
    backup = results / DATASET / "backup"
    backup.mkdir()
    shutil.copy(_rand(results), backup / "copy.json")
    real = os.scandir

    def scandir(path=".", *args):
        if Path(path) == backup:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args)

    monkeypatch.setattr(os, "scandir", scandir)


def _symlink_loop(results: Path, monkeypatch) -> None:
    a, b = results / DATASET / "loop-a.json", results / DATASET / "loop-b.json"
    a.symlink_to(b.name)
    b.symlink_to(a.name)


def _bytes(results: Path, monkeypatch) -> None:  # a non-UTF-8 byte inside a string value
    path = _rand(results)
    path.write_bytes(path.read_bytes().replace(b'"random-users"', b'"random-\xffusers"', 1))


def _token(old: bytes, new: bytes) -> Callable:
    def change(results: Path, monkeypatch) -> None:
        path = _rand(results)
        text = path.read_bytes()
        assert old in text
        path.write_bytes(text.replace(old, new, 1))
    return change


def _key_token(key: str, token: str) -> Callable:
    """Replace the value of ``"key": <number>`` by a bare token such as NaN or Infinity."""
    def change(results: Path, monkeypatch) -> None:
        path = _rand(results)
        row = _load(path)
        for section in ("metrics", "timings"):
            for part in (row[section].values() if section == "metrics" else [row[section]]):
                if key in part:
                    part[key] = "@@"
        path.write_text(json.dumps(row, indent=1).replace('"@@"', token))
    return change


def _extra(name: str, content: bytes | str) -> Callable:
    def change(results: Path, monkeypatch) -> None:
        path = results / DATASET / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return change


def _in_place(change_row: Callable[[dict], None]) -> Callable:
    return lambda results, monkeypatch: _edit(_rand(results), change_row)


def _copy(to: str, *, full_too: bool = False) -> Callable:
    def change(results: Path, monkeypatch) -> None:
        sources = [_rand(results)] + ([_full(results)] if full_too else [])
        for src in sources:
            dst = results / DATASET / to.format(name=src.name, stem=src.stem)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return change


def _older_edited_copy(results: Path, monkeypatch) -> None:
    def change(row):
        row["created"] = "2020-01-01T00:00:00+00:00"
        row["metrics"]["test"]["ndcg@10"] = 99.0

    _edit(_rand(results), change, to=results / DATASET / "old-run.json")


def _symlink_to_row(results: Path, monkeypatch) -> None:
    (results / DATASET / "link.json").symlink_to(_rand(results).name)


def _fifo(results: Path, monkeypatch) -> None:
    os.mkfifo(results / DATASET / "pipe.json")


def _dangling(results: Path, monkeypatch) -> None:
    (results / DATASET / "gone.json").symlink_to("nowhere.json")


def _directory_named_json(results: Path, monkeypatch) -> None:
    (results / DATASET / "folder.json").mkdir()
    (results / "top.json").mkdir()


def _orphan_temp(results: Path, monkeypatch) -> None:
    rand = _rand(results)
    (rand.parent / f".{rand.name}.host.123.tmp").write_text(rand.read_text()[:100])
    (rand.parent / f".{rand.name}.{files._HOST}.999999999.tmp").write_text("{")
    (rand.parent / f"{rand.name}.a1b2c3.tmp").write_text("{")  # the pre-files.py temporary name
    (results / DATASET / ".notes.json").write_text("not a row")
    (results / ".stale").mkdir()
    (results / ".stale" / "old.json").write_text("{")


def _schema1(row: dict) -> None:
    row["schema"] = 1
    for key in ("status", "identity", "identity_key"):
        row.pop(key, None)


def _failed_other_unit(results: Path, monkeypatch) -> None:
    _dump(results / DATASET / "random-users__ease__b20__s0.json", _failed_from(_load(_rand(results)), budget=20))


def _failed_same_unit(results: Path, monkeypatch) -> None:
    _dump(results / DATASET / "retry.json", _failed_from(_load(_rand(results))))


def _all_invalid(results: Path, monkeypatch) -> None:
    _rand(results).write_text("{")
    _full(results).write_text('{"schema": 1}')


def _only_failed(results: Path, monkeypatch) -> None:
    for path in (_rand(results), _full(results)):
        _dump(path, _failed_from(_load(path)))


def _empty_dir(results: Path, monkeypatch) -> None:
    shutil.rmtree(results / DATASET)


def _set_null_metrics(row: dict) -> None:
    row["metrics"]["test"] = dict.fromkeys(row["metrics"]["test"])


# (case, rows counted, stderr lines naming a file, substring the leaderboard must hold)
CASES = [
    # malformed rows
    pytest.param(_extra("bad.json", '{"schema": 1}'), 2, 1, None, id="schema-only"),
    pytest.param(_extra("bad.json", '{"schema": 2}'), 2, 1, None, id="schema2-only"),
    pytest.param(_in_place(lambda r: r.update(schema=99)), 1, 1, None, id="unsupported-schema"),
    pytest.param(_in_place(lambda r: r["metrics"]["test"].update({"ndcg@10": "14.8"})), 1, 1, None,
                 id="metric-as-string"),
    pytest.param(_in_place(lambda r: r.pop("timings")), 1, 1, None, id="missing-key"),
    pytest.param(_in_place(lambda r: r.update(budget="10")), 1, 1, None, id="budget-as-string"),
    pytest.param(_in_place(lambda r: r.update({"lambda": True})), 1, 1, None, id="bool-as-number"),
    pytest.param(_in_place(lambda r: r["metrics"].update(test=[1, 2])), 1, 1, None, id="metrics-list"),
    pytest.param(_in_place(lambda r: r["environment"].pop("device")), 1, 1, None, id="no-device"),
    pytest.param(_in_place(lambda r: r["timings"].update(fit_s=-0.5)), 1, 1, None, id="negative-timing"),
    pytest.param(_in_place(lambda r: r.update(status="failed")), 1, 1, None, id="failed-without-error"),
    pytest.param(_extra("list.json", "[" + "{}" + "]"), 2, 1, None, id="list-instead-of-dict"),
    pytest.param(_bytes, 1, 1, None, id="non-utf8"),
    pytest.param(_extra("empty.json", b""), 2, 1, None, id="empty-file"),
    pytest.param(_extra("truncated.json", '{\n "budget": 10,\n "created": "2026-'), 2, 1, None, id="truncated"),
    pytest.param(_extra("notes.json", "These are my notes about the run.\n"), 2, 1, None, id="not-json"),
    pytest.param(_extra("deep.json", "[" * 50_000 + "]" * 50_000), 2, 1, None, id="deeply-nested"),
    pytest.param(_key_token("fit_s", "Infinity"), 1, 1, None, id="infinity-timing"),
    # OS-level oddities
    pytest.param(_symlink_loop, 2, 2, None, id="symlink-loop"),
    pytest.param(_dangling, 2, 1, None, id="dangling-symlink"),
    pytest.param(_chmod_000, 1, 1, None, id="unreadable-chmod"),
    pytest.param(_unreadable_via_os, 1, 1, None, id="unreadable-eacces"),
    pytest.param(_unlistable_folder, 2, 1, None, id="unlistable-folder"),
    pytest.param(_unlistable_via_os, 2, 1, None, id="unlistable-folder-eacces"),
    pytest.param(_fifo, 2, 1, None, id="fifo"),
    pytest.param(_directory_named_json, 2, 0, None, id="directories-named-json"),
    pytest.param(_orphan_temp, 2, 0, None, id="orphan-temp-and-hidden"),
    # copies: counted once
    pytest.param(_copy("{stem} (copy).json"), 2, 1, None, id="copy-same-folder"),
    pytest.param(_copy("backup/{name}", full_too=True), 2, 2, None, id="backup-subfolder"),
    pytest.param(_older_edited_copy, 2, 1, None, id="older-edited-copy"),
    pytest.param(_symlink_to_row, 2, 1, None, id="symlink-to-row"),
    # odd but valid
    pytest.param(_key_token("ndcg@10", "NaN"), 2, 0, "| random-users | –", id="nan-token-metric"),
    pytest.param(_in_place(_set_null_metrics), 2, 0, "| random-users | –", id="null-metrics"),
    pytest.param(_in_place(lambda r: r.pop("selection", None)), 2, 0, None, id="no-selection"),
    pytest.param(_in_place(lambda r: r.update(selection=[1, 2], comment={"by": "me"})), 2, 0, None,
                 id="odd-optional-fields"),
    pytest.param(_in_place(_schema1), 2, 0, None, id="schema1-row"),
    # failed units: listed, never counted
    pytest.param(_failed_other_unit, 2, 1, "## Failed units", id="failed-row"),
    pytest.param(_failed_same_unit, 2, 1, None, id="failed-copy-of-ok-row"),
    # nothing valid left: one-line error, exit 2
    pytest.param(_all_invalid, 0, 2, None, id="all-invalid"),
    pytest.param(_only_failed, 0, 2, None, id="only-failed"),
    pytest.param(_empty_dir, 0, 0, None, id="empty-dir"),
]


def _cli(argv, capsys) -> tuple[int, str, list[str]]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err.splitlines()


def _check_stderr(err: list[str], n_files: int, error: bool) -> None:
    text = "\n".join(err)
    assert "Traceback" not in text, text
    per_file = [line for line in err if line.startswith("cfbench: skipping ") or line.endswith(
        " (same identity); counted once") or line.endswith("; not in the tables")]
    assert len(per_file) == n_files, text
    summary = [line for line in err if " loaded; " in line]
    assert len(summary) == (1 if n_files else 0), text
    errors = [line for line in err if line.startswith("cfbench: error: ")]
    assert len(errors) == (1 if error else 0), text
    assert len(err) == len(per_file) + len(summary) + len(errors), text


@pytest.mark.parametrize(("case", "n_rows", "n_lines", "expect"), CASES)
def test_report_and_export_survive_odd_result_files(results, tmp_path, capsys, monkeypatch, case, n_rows, n_lines,
                                                     expect):
    case(results, monkeypatch)
    boards = tmp_path / "lb"
    rc, _, err = _cli(["report", "--results-dir", results, "--out", boards, "--no-plots", "-q"], capsys)
    _check_stderr(err, n_lines, error=n_rows == 0)
    if n_rows == 0:
        assert rc == 2 and "result rows in" in err[-1]
        assert not boards.exists() or not list(boards.rglob("*.md"))
    else:
        assert rc == 0
        text = (boards / DATASET / "ease.md").read_text()
        assert text.splitlines()[2].startswith(f"{n_rows} rows; ")
        summary = text.split("## Summary")[1].split("\n## ")[0]
        assert len([x for x in summary.splitlines() if x.startswith("| ")]) == 1 + n_rows  # header + one per row
        if expect:
            assert expect in text
    rc, out, err = _cli(["export", "--results-dir", results], capsys)
    _check_stderr(err, n_lines, error=n_rows == 0)
    if n_rows == 0:
        assert rc == 2 and out == ""
    else:
        assert rc == 0 and len(out.splitlines()) == n_rows + 1
        assert len(load_rows(results)) == n_rows


def test_a_newer_row_wins_over_an_older_copy(results, capsys):
    _older_edited_copy(results, None)
    (row,) = [r for r in load_rows(results) if r["sampler"] == "random-users"]
    assert row["metrics"]["test"]["ndcg@10"] != 99.0
    assert f"{results / DATASET / 'old-run.json'} duplicates {_rand(results)}" in capsys.readouterr().err


def test_failed_units_are_listed_with_their_error(results, tmp_path, capsys):
    _failed_other_unit(results, None)
    write_leaderboards(results, tmp_path / "lb", plots=False)
    section = (tmp_path / "lb" / DATASET / "ease.md").read_text().split("## Failed units")[1]
    line = [x for x in section.splitlines() if x.startswith("| random-users")]
    assert len(line) == 1 and "| 20 " in line[0] and "| memory " in line[0] and "| fit " in line[0]
    assert "RESOURCE_EXHAUSTED: out of memory" in line[0]
    assert "1 failed unit" in (tmp_path / "lb" / "README.md").read_text()


# --------------------------------------------------------------------------------------------------------
# Atomic leaderboards: a failure mid-report leaves every file complete (old or new), no temporary file.

LEADERBOARD_FILES = ["README.md", f"{DATASET}/ease.csv", f"{DATASET}/ease.md", f"{DATASET}/ease.tex",
                     f"{DATASET}/ease_hr-10.png", f"{DATASET}/ease_ndcg-10.png", f"{DATASET}/ease_speedup.png",
                     f"{DATASET}/index.html"]


@pytest.fixture(scope="module")
def versions(suite, tmp_path_factory):
    """Leaderboards before (full-data row only) and after (both rows) the random-users row arrived."""
    base = tmp_path_factory.mktemp("versions")
    old_results = base / "old-results"
    shutil.copytree(suite, old_results)
    _rand(old_results).unlink()
    write_leaderboards(old_results, base / "old")
    write_leaderboards(suite, base / "new")
    old = {f: (base / "old" / f).read_bytes() for f in LEADERBOARD_FILES}
    new = {f: (base / "new" / f).read_bytes() for f in LEADERBOARD_FILES}
    assert _tree(base / "old") == _tree(base / "new") == LEADERBOARD_FILES
    assert old[f"{DATASET}/ease.md"] != new[f"{DATASET}/ease.md"]
    return base / "old", old, new


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _full_disk_on_call(monkeypatch, n: int) -> list[int]:
    calls = [0]
    real = files.os.replace

    def replace(src, dst, *args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(files.os, "replace", replace)
    return calls


@pytest.mark.parametrize("n", range(1, len(LEADERBOARD_FILES) + 1))
def test_a_full_disk_mid_report_leaves_every_file_old_or_new(suite, versions, tmp_path, monkeypatch, n):
    old_dir, old, new = versions
    out = tmp_path / "lb"
    shutil.copytree(old_dir, out)
    _full_disk_on_call(monkeypatch, n)
    with pytest.raises(OSError) as caught:
        write_leaderboards(suite, out)
    assert caught.value.errno == errno.ENOSPC
    assert "disk is full" in files.describe_os_error(caught.value, "the leaderboards")
    assert _tree(out) == LEADERBOARD_FILES  # no temporary file left, nothing missing
    state = {f: (out / f).read_bytes() for f in LEADERBOARD_FILES}
    for f, data in state.items():
        assert data in (old[f], new[f]), f"{f} is neither the old nor the new version"
    assert state["README.md"] == old["README.md"]  # the index is written last
    assert sum(state[f] != old[f] for f in LEADERBOARD_FILES) == min(n - 1, sum(old[f] != new[f]
                                                                               for f in LEADERBOARD_FILES))
    monkeypatch.undo()
    write_leaderboards(suite, out)  # the next report repairs everything
    assert {f: (out / f).read_bytes() for f in LEADERBOARD_FILES} == new


def test_a_failed_plot_writes_nothing(suite, versions, tmp_path, monkeypatch):
    import matplotlib.figure

    old_dir, old, _ = versions
    out = tmp_path / "lb"
    shutil.copytree(old_dir, out)

    def savefig(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    with pytest.raises(OSError):
        write_leaderboards(suite, out)
    assert {f: (out / f).read_bytes() for f in _tree(out)} == old


def test_cli_report_on_a_full_disk_is_one_line_and_exit_2(suite, versions, tmp_path, monkeypatch, capsys):
    out = tmp_path / "lb"
    shutil.copytree(versions[0], out)
    _full_disk_on_call(monkeypatch, 2)
    rc, _, err = _cli(["report", "--results-dir", suite, "--out", out, "-q"], capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("cfbench: error: "), err
    assert "the disk is full" in err[0], err  # cli.py maps OSError through files.describe_os_error
    assert _tree(out) == LEADERBOARD_FILES
