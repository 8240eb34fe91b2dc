"""`cfbench compare`: does a run reproduce the published rows, within the published seed-to-seed noise?"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cfbench.cli import main
from cfbench.compare import compare
from cfbench.results import read_row, write_row

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "results" / "ml-100k"
# Three cells of shipped ML-100K rows: two with three seeds, one reduced to a single seed below.
CELLS = ["random-users__ease__b50", "distill-cf__infinite-ae__b20", "head-users__ease__b100"]


@pytest.fixture()
def published(tmp_path: Path) -> Path:
    files = [SHIPPED / f"{cell}__s{seed}.json" for cell in CELLS for seed in (0, 1, 2)]
    if not all(f.exists() for f in files):
        pytest.skip("the shipped ML-100K rows are not in results/")
    out = tmp_path / "published" / "ml-100k"
    out.mkdir(parents=True)
    for f in files:
        if not (f.name.startswith("head-users") and not f.name.endswith("s0.json")):  # head-users: seed 0 only
            shutil.copy(f, out / f.name)
    return tmp_path / "published"


def _run_copy(published: Path, tmp_path: Path, names: list[str] | None = None) -> Path:
    run = tmp_path / "run" / "ml-100k"
    run.mkdir(parents=True)
    for f in sorted((published / "ml-100k").glob("*.json")):
        if names is None or f.name in names:
            shutil.copy(f, run / f.name)
    return tmp_path / "run"


def _perturb(path: Path, delta: float, metric: str = "ndcg@10") -> None:
    row = read_row(path)
    row["metrics"]["test"][metric] += delta
    write_row(path, row)


def _sigma(published: Path, cell: str) -> float:
    import statistics

    return statistics.stdev(read_row(p)["metrics"]["test"]["ndcg@10"]
                            for p in (published / "ml-100k").glob(f"{cell}__s*.json"))


def test_an_exact_copy_reproduces_bit_for_bit(published, tmp_path, capsys):
    run = _run_copy(published, tmp_path)
    result = compare(run, published)
    assert result.reproduced and result.exit_code == 0
    assert result.matched == 7 and result.exact == 7 and result.identical == 7
    assert not (result.only_in_run or result.not_rerun or result.failed or result.flagged)
    by = {(c.sampler, c.budget, c.model): c for c in result.cells}
    assert by[("random-users", 50, "ease")].criterion == "sigma"
    single = by[("head-users", 100, "ease")]
    assert single.criterion == "abs" and single.tolerance == 0.5 and "1 published seed" in single.why_abs
    assert main(["compare", str(run), "--against", str(published)]) == 0
    out = capsys.readouterr().out
    assert "7 rows matched in 3 cells; 7 with ndcg@10 bit-for-bit equal" in out and out.rstrip().endswith("REPRODUCED")


def test_a_perturbation_beyond_the_noise_is_flagged_and_exits_1(published, tmp_path, capsys):
    run = _run_copy(published, tmp_path)
    sigma = _sigma(published, "random-users__ease__b50")
    _perturb(run / "ml-100k" / "random-users__ease__b50__s1.json", 3 * sigma)  # 3 σ > 2 σ
    _perturb(run / "ml-100k" / "distill-cf__infinite-ae__b20__s2.json", 1e-9)  # inside the noise, not bit-equal
    result = compare(run, published)
    assert not result.reproduced and result.exit_code == 1 and result.exact == 5
    (flagged,) = result.flagged
    assert (flagged.sampler, flagged.budget) == ("random-users", 50)
    assert flagged.worst_z == pytest.approx(3.0) and flagged.worst_delta == pytest.approx(3 * sigma)
    assert [r.seed for r in flagged.rows if not r.reproduced] == [1]
    assert main(["compare", str(run), "--against", str(published)]) == 1
    out = capsys.readouterr().out
    assert "NOT REPRODUCED" in out and "+3.00" in out
    # a looser threshold accepts it; the single-seed cell uses the absolute fallback
    assert compare(run, published, threshold=3.5).reproduced
    _perturb(run / "ml-100k" / "head-users__ease__b100__s0.json", 0.6)
    assert [c.sampler for c in compare(run, published, threshold=3.5).flagged] == ["head-users"]
    assert compare(run, published, threshold=3.5, abs_tol=1.0).reproduced


def test_missing_and_extra_rows_are_listed_not_errors(published, tmp_path, capsys):
    run = _run_copy(published, tmp_path, ["random-users__ease__b50__s0.json", "random-users__ease__b50__s2.json"])
    extra = read_row(published / "ml-100k" / "random-users__ease__b50__s1.json")
    extra["identity_key"] = "f" * 64  # a computation the published results do not have
    write_row(run / "ml-100k" / "new__ease__b50__s1.json", extra)
    result = compare(run, published)
    assert result.reproduced and result.matched == 2
    assert [Path(p).name for p in result.only_in_run] == ["new__ease__b50__s1.json"]
    assert len(result.not_rerun) == 5 and all(Path(p).exists() for p in result.not_rerun)
    assert main(["compare", str(run), "--against", str(published), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reproduced"] and data["matched"] == 2 and len(data["not_rerun"]) == 5
    assert data["cells"][0]["rows"][0]["z"] == 0.0 and data["method"].startswith("Δ = run − published")


def test_a_failed_unit_in_the_run_does_not_reproduce(published, tmp_path):
    run = _run_copy(published, tmp_path, ["random-users__ease__b50__s0.json"])
    row = read_row(published / "ml-100k" / "random-users__ease__b50__s1.json")
    for key in ("metrics", "timings", "subset", "lambda", "subset_kind"):
        del row[key]
    row.update(status="failed", error={"kind": "exception", "message": "boom", "traceback": "", "phase": "fit"})
    write_row(run / "ml-100k" / "random-users__ease__b50__s1.json", row)
    result = compare(run, published)
    assert result.failed and not result.reproduced and result.exit_code == 1 and not result.flagged


def test_other_metrics_and_null_values(published, tmp_path):
    run = _run_copy(published, tmp_path)
    path = run / "ml-100k" / "random-users__ease__b50__s0.json"
    _perturb(path, 0.004, "auc")  # AUC's fallback tolerance is 0.005, but σ is used where there are seeds
    assert compare(run, published, metric="auc").abs_tol == 0.005
    row = read_row(path)
    row["metrics"]["test"]["hr@10"] = None
    write_row(path, row)
    assert [c.sampler for c in compare(run, published, metric="hr@10").flagged] == ["random-users"]


def test_bad_input_is_one_line_and_exit_2(published, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [["compare", str(tmp_path / "nowhere")], ["compare", str(empty), "--against", str(published)],
             ["compare", str(published), "--metric", "mrr"], ["compare", str(published), "--threshold", "0"],
             ["compare", str(published), "--against", str(empty)],
             ["compare", str(published), "--against", str(published), "--abs-tol", "-1"]]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("cfbench: error:") and err.count("\n") == 1, (argv, err)
    with pytest.raises(ValueError):
        compare(published, published, metric="mrr")
