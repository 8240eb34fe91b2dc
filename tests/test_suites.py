"""Suite files, the user's own results folder, leaderboards that belong to their rows, the λ-selection metric
and the comparison with the published rows that ends `cfbench run` (GitHub issue #12)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest

from cfbench import cli
from cfbench.cli import main
from cfbench.harness import DEFAULT_RESULTS_DIR, TUNE_METRICS, SuiteConfig, run_suite
from cfbench.identity import identity_key
from cfbench.plugins import load_sampler
from cfbench.reports import MARKER, check_leaderboards_owner, default_leaderboards_dir, leaderboards_owner
from cfbench.results import ResultsError, scan_rows
from cfbench.suites import load_suite, resolved_suite

from .conftest import shared_data_dir
from .reliability.conftest import write_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "results"


def _cli(argv: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cfbench: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny.csv")


# ----------------------------------------------------------------------------- loading

def test_a_suite_file_with_every_key_resolves_paths_against_its_folder(tmp_path):
    folder = tmp_path / "project" / "suites"
    folder.mkdir(parents=True)
    path = folder / "all.toml"
    path.write_text('''
dataset = "../data/mine.csv"
samplers = ["full", "random-users", {name = "svp-cf", params = {level = "interaction", propensity = true}}]
models = ["ease", {name = "infinite-ae"}]
budgets = [10, 20, 20]
seeds = [1, 2]
rating_threshold = 4
dtype = "float64"
batch_size = 256
unit_timeout = 600
executor = "ray"
address = "auto"
device = "cpu"
cpus_per_unit = 2
results_dir = "../my-runs"
leaderboards_dir = "boards"
tune_metric = "ndcg@10"
compile_cache = "../jax-cache"
''')
    suite = load_suite(path)
    (config,) = suite.parts
    assert config.dataset == str(tmp_path / "project" / "data" / "mine.csv")
    assert config.results_dir == tmp_path / "project" / "my-runs" and suite.leaderboards_dir == folder / "boards"
    assert config.samplers == ("full", "random-users", "svp-cf:level=interaction,propensity=true")
    assert load_sampler(config.samplers[2]).spec() == load_sampler("svp-cf:level=interaction,propensity=True").spec()
    assert config.models == ("ease", "infinite-ae") and config.budgets == (10, 20) and config.seeds == (1, 2)
    assert (config.rating_threshold, config.dtype, config.batch_size, config.unit_timeout) == (4.0, "float64", 256, 600)
    assert (config.executor, config.address, config.device, config.cpus_per_unit) == ("ray", "auto", "cpu", 2)
    assert config.tune_metric == "ndcg@10" and config.suite_file == str(path)
    assert Path(config.compile_cache) == tmp_path / "project" / "jax-cache"
    resolved = resolved_suite(config)
    assert json.loads(json.dumps(resolved)) == resolved and resolved["samplers"][2].startswith("svp-cf:")
    assert json.loads(json.dumps(suite.resolved()))["parts"] == [resolved]


def test_built_in_names_stay_names_and_a_relative_suite_path_stays_relative(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("s").mkdir()
    Path("s/a.toml").write_text('dataset = "ml-1m"\nresults_dir = "../out"\n')
    (config,) = load_suite("s/a.toml").parts
    assert config.dataset == "ml-1m" and config.results_dir == Path("out")
    Path("s/b.toml").write_text('dataset = "synth:users=50,items=40,interactions=500"\n')
    assert load_suite("s/b.toml").parts[0].dataset == "synth:users=50,items=40,interactions=500"


def test_samplers_with_their_own_budgets_and_seeds_make_parts(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('''
budgets = [10, 20]
samplers = ["full", "random-users",
            {name = "random-users", budgets = [50], seeds = [0]},
            {name = "head-users", budgets = [50], seeds = [0]},
            {name = "svp-cf", seeds = [4]}]
''')
    parts = load_suite(path).parts
    assert [(p.samplers, p.budgets, p.seeds) for p in parts] == [
        (("full", "random-users"), (10, 20), (0, 1, 2)),
        (("random-users", "head-users"), (50,), (0,)),
        (("svp-cf",), (10, 20), (4,))]
    # --budgets / --seeds on the command line replace the samplers' own too: one part again
    (part,) = load_suite(path, {"budgets": (5,), "seeds": (7,)}).parts
    assert part.samplers == ("full", "random-users", "head-users", "svp-cf") and part.budgets == (5,)
    assert part.seeds == (7,)


def test_samplers_with_their_own_models_make_parts(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('''
models = ["infinite-ae", "ease"]
budgets = [10, 20]
samplers = ["full", {name = "random-users", budgets = [50], models = ["infinite-ae"]},
            {name = "head-users", models = [{name = "ease", params = {solver = "dual"}}]},
            {name = "svp-cf", models = ["ease:solver=dual"]}]
''')
    parts = load_suite(path).parts
    assert [(p.samplers, p.budgets, p.models) for p in parts] == [
        (("full",), (10, 20), ("infinite-ae", "ease")),
        (("random-users",), (50,), ("infinite-ae",)),
        (("head-users", "svp-cf"), (10, 20), ("ease:solver=dual",))]
    (part,) = load_suite(path, {"models": ("ease",), "budgets": (5,)}).parts  # --models replaces the samplers' own
    assert part.models == ("ease",) and part.samplers == ("full", "random-users", "head-users", "svp-cf")
    # a dry run plans exactly the rows each part names: full (one budget: all users) × 2 models, random users
    # at 50 × ∞-AE, head users and svp-cf × 2 budgets × EASE
    data = write_tiny_dataset(tmp_path / "tiny.csv")
    planned = 0
    for p in load_suite(path, {"dataset": str(data), "seeds": (0,), "results_dir": tmp_path / "r"}).parts:
        planned += len(run_suite(p, progress=False, dry_run=True).paths)
    assert planned == 2 + 1 + 4
    path.write_text('samplers = [{name = "full", models = 3}]')
    with pytest.raises(Exception, match=r"samplers\[0\]\.'models' must be .*got 3") as err:
        load_suite(path)
    assert "\n" not in str(err.value)


BAD_SUITES = [
    ("budgetz = [10]", "unknown key 'budgetz'", "allowed: dataset, samplers"),
    ("rating-threshold = 4", "unknown key 'rating-threshold'", "write rating_threshold"),
    ("budgets = \"10,20\"", "'budgets' must be a non-empty list of positive integers", "'10,20'"),
    ("budgets = [0]", "'budgets' must be", "[0]"),
    ("budgets = []", "'budgets' must be", "[]"),
    ("seeds = [-1]", "'seeds' must be a non-empty list of non-negative integers", "[-1]"),
    ("seeds = [true]", "'seeds' must be", "[True]"),
    ("dtype = \"float16\"", "'dtype' must be one of 'float32', 'float64'", "float16"),
    ("batch_size = 0", "'batch_size' must be a positive integer", "0"),
    ("batch_size = 2.5", "'batch_size' must be a positive integer", "2.5"),
    ("unit_timeout = -1", "'unit_timeout' must be a positive number", "-1"),
    ("executor = \"spark\"", "'executor' must be one of 'local', 'ray'", "spark"),
    ("device = \"tpu\"", "'device' must be one of 'auto', 'cpu', 'gpu'", "tpu"),
    ("cpus_per_unit = \"two\"", "'cpus_per_unit' must be a positive number", "two"),
    ("rating_threshold = \"4\"", "'rating_threshold' must be a finite number", "'4'"),
    ("rating_threshold = nan", "'rating_threshold' must be a finite number", "nan"),
    ("tune_metric = \"auc\"", "'tune_metric' must be a per-user validation metric", "auc"),
    ("results_dir = 3", "'results_dir' must be a folder path", "3"),
    ("dataset = 7", "'dataset' must be a built-in dataset name", "7"),
    ("address = \"auto\"", "needs the Ray executor", ""),
    ("samplers = 3", "'samplers' must be a list of sampler specs", "3"),
    ("samplers = []", "'samplers' must be a list of sampler specs", "empty list"),
    ("samplers = [3]", "samplers[0] must be a spec string or a table {name, params, budgets, seeds, models}", "3"),
    ("samplers = [{name = \"svp-cf\", parms = {}}]", "samplers[0]: unknown key 'parms'", "name, params"),
    ("samplers = [{params = {}}]", "samplers[0].name must be a plugin name", "None"),
    ("samplers = [{name = \"svp-cf\", params = 3}]", "samplers[0].params must be a table", "3"),
    ("samplers = [{name = \"svp-cf\", params = {level = [1]}}]", "samplers[0].params.level must be a number", "[1]"),
    ("samplers = [{name = \"svp-cf\", params = {level = \"a,b\"}}]", "samplers[0].params.level", "'a,b'"),
    ("samplers = [{name = \"random-users\", budgets = [0]}]", "samplers[0].budgets must be", "[0]"),
    ("samplers = [\"nope\"]", "unknown sampler 'nope'", ""),
    ("samplers = [{name = \"svp-cf\", params = {nope = 1}}]", "sampler 'svp-cf' has no parameter 'nope'", ""),
    ("models = [{name = \"ease\", budgets = [10]}]", "models[0]: unknown key 'budgets'", "name, params"),
    ("models = [\"ease:solver=magic\"]", "solver", ""),
    ("dataset = ", "not valid TOML", "line 1"),
    ("[samplers", "not valid TOML", ""),
]


@pytest.mark.parametrize(("text", "needle", "also"), BAD_SUITES, ids=[t for t, _, _ in BAD_SUITES])
def test_a_bad_suite_file_is_one_line_naming_the_file_and_key(text, needle, also, tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    rc, _, err = _cli(["run", path, "--dry-run", "--results-dir", tmp_path / "r", "-q"], capsys)
    assert rc == 2
    _one_line_error(err, f"suite file {path}", needle, also)
    assert not (tmp_path / "r").exists()  # refused before anything is written


def test_a_missing_or_unreadable_suite_file_is_one_line(tmp_path, capsys):
    rc, _, err = _cli(["run", "ml-1m", "--dry-run", "-q"], capsys)
    assert rc == 2
    _one_line_error(err, "suite file ml-1m does not exist", "--dataset ml-1m")
    rc, _, err = _cli(["run", tmp_path, "--dry-run", "-q"], capsys)
    _one_line_error(err, "is a folder")
    (tmp_path / "latin1.toml").write_bytes('dataset = "caf\xe9"\n'.encode("latin-1"))
    rc, _, err = _cli(["run", tmp_path / "latin1.toml", "--dry-run", "-q"], capsys)
    assert rc == 2
    _one_line_error(err, "not valid TOML")


def test_flags_given_override_the_file_and_the_file_overrides_the_defaults(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "suites"
    folder.mkdir()
    shutil.copy(tiny, folder / "tiny.csv")
    (folder / "a.toml").write_text('dataset = "tiny.csv"\nresults_dir = "from-file"\nsamplers = ["random-users", '
                                   '{name = "head-users", seeds = [3]}]\nmodels = ["ease"]\nbudgets = [5]\n'
                                   'seeds = [1]\n')
    (folder / "b.toml").write_text('dataset = "tiny.csv"\nresults_dir = "from-file"\nsamplers = "full"\n'
                                   'models = "ease"\nseeds = [2]\n')
    rc, _, err = _cli(["run", "suites/a.toml", "suites/b.toml", "--dry-run"], capsys)
    assert rc == 0, err
    assert (folder / "from-file" / ".logs").is_dir() and not Path(DEFAULT_RESULTS_DIR).exists()
    assert "would run random-users b=5 seed=1" in err and "would run head-users b=5 seed=3" in err
    assert "would run full b=" in err and "seed=2" in err and "dry run: 3 of 3 rows to run" in err
    rc, _, err = _cli(["run", "suites/a.toml", "--dry-run", "--results-dir", "mine", "--seeds", "7", "--budgets",
                       "6"], capsys)
    assert rc == 0, err
    assert Path("mine/.logs").is_dir()  # a flag is relative to the current directory
    assert "would run random-users b=6 seed=7" in err and "would run head-users b=6 seed=7" in err
    assert "seed=3" not in err and "seed=1" not in err


def test_a_unit_with_one_model_done_counts_only_its_missing_row(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["--dataset", tiny, "--samplers", "random-users", "--budgets", "5", "--seeds", "0", "--results-dir", "r",
              "--no-report"]
    rc, _, err = _cli(["run", *common, "--models", "ease", "-q"], capsys)
    assert rc == 0, err
    rc, _, err = _cli(["run", *common, "--models", "ease,infinite-ae", "--dry-run"], capsys)
    assert rc == 0, err
    assert "1 units (1 rows) to run, 1 rows already done" in err  # the unit runs, but only its ∞-AE row
    assert "(ease: done, infinite-ae: missing)" in err
    assert "dry run: 1 of 2 rows to run, 1 already done" in err


# ----------------------------------------------------------------------------- the shipped suites

#: Every shipped suite file, by dataset. synth-netflix needs no data file, but generating it and its reference
#: split costs 3–5 minutes and 12 GiB of memory, more than the default test run should spend on one check.
SHIPPED_SUITES = [
    "ml-latest-small", "ml-100k", "ml-1m", "gowalla",
    pytest.param("synth-netflix", marks=pytest.mark.skipif(
        not os.environ.get("CFBENCH_HEAVY_TESTS"),
        reason="synth-netflix's split takes 3–5 min and 12 GiB: set CFBENCH_HEAVY_TESTS=1 to check its suite file")),
]


def test_every_shipped_suite_file_is_checked_against_the_shipped_rows():
    names = {p.values[0] if hasattr(p, "values") else p for p in SHIPPED_SUITES}
    assert {p.stem for p in (ROOT / "suites").glob("*.toml")} == names
    assert {p.name for p in SHIPPED.iterdir() if p.is_dir() and not p.name.startswith(".")} <= names


@pytest.mark.parametrize("dataset", SHIPPED_SUITES)
def test_the_shipped_suite_files_cover_exactly_the_shipped_rows(dataset, tmp_path, monkeypatch):
    """`cfbench run suites/<dataset>.toml --dry-run --results-dir results` has nothing to run: the suite file
    regenerates this repository's rows (and so its leaderboards), no more, no less."""
    from cfbench.synthetic import is_synthetic_name

    if dataset != "ml-latest-small" and not is_synthetic_name(dataset):  # embedded or generated: always there
        from cfbench.datasets import locate

        if shared_data_dir() is None or locate(dataset, shared_data_dir()) is None:
            pytest.skip(f"{dataset} not available: set CFBENCH_DATA_DIR to a folder laid out like ../shared/data")
    shipped = sorted((SHIPPED / dataset).glob("*.json"))
    if not shipped:
        pytest.skip(f"no shipped rows in results/{dataset}")
    results = tmp_path / "results"
    shutil.copytree(SHIPPED / dataset, results / dataset)  # a dry run writes its log into the results folder
    suite = load_suite(ROOT / "suites" / f"{dataset}.toml")
    covered = []
    for part in suite.parts:
        summary = run_suite(dataclasses.replace(part, results_dir=results), progress=False, dry_run=True)
        assert summary.reused == len(summary.paths), part  # 0 units to run
        covered += summary.paths
    assert sorted(p.name for p in covered) == [p.name for p in shipped]


# ----------------------------------------------------------------------------- defaults and leaderboards

def test_the_default_results_folder_is_the_users_own_not_the_published_one(tmp_path, monkeypatch, capsys):
    assert SuiteConfig().results_dir == DEFAULT_RESULTS_DIR == Path(cli.DEFAULT_RESULTS_DIR) == Path("runs")
    assert cli.TUNE_METRICS == TUNE_METRICS  # the CLI's copies (it starts without JAX)
    assert "/runs/" in (ROOT / ".gitignore").read_text().splitlines()
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(["run", "--dry-run", "--samplers", "full", "--models", "ease", "--seeds", "0"], capsys)
    assert rc == 0, err
    assert (tmp_path / "runs" / ".logs").is_dir() and not (tmp_path / "results").exists()
    rc, _, err = _cli(["report"], capsys)  # nothing in runs/ yet: say what to do
    assert rc == 2
    _one_line_error(err, "--results-dir results")
    shutil.rmtree(tmp_path / "runs")
    rc, _, err = _cli(["export"], capsys)
    _one_line_error(err, "no folder runs here", "`cfbench run` first")


def test_default_leaderboards_folder_and_the_published_marker():
    assert default_leaderboards_dir(Path("runs")) == Path("runs/leaderboards")
    assert default_leaderboards_dir(Path("results")) == Path("leaderboards")
    assert default_leaderboards_dir(Path("/x/y/results")) == Path("/x/y/leaderboards")
    assert leaderboards_owner(ROOT / "leaderboards") == SHIPPED.resolve()
    check_leaderboards_owner(SHIPPED, ROOT / "leaderboards")  # the published pair
    with pytest.raises(ResultsError, match="--force"):
        check_leaderboards_owner(ROOT / "runs", ROOT / "leaderboards")
    check_leaderboards_owner(ROOT / "runs", ROOT / "leaderboards", force=True)


def _rows(target: Path, names: list[str]) -> Path:
    (target / "ml-latest-small").mkdir(parents=True)
    for name in names:
        shutil.copy(SHIPPED / "ml-latest-small" / name, target / "ml-latest-small" / name)
    return target


def test_leaderboards_belong_to_their_results_folder(tmp_path, capsys):
    names = [f"random-users__ease__b10__s{s}.json" for s in (0, 1, 2)] + ["full__ease__b610__s0.json"]
    published = _rows(tmp_path / "results", names)
    mine = _rows(tmp_path / "mine", names[:2])
    boards = tmp_path / "leaderboards"
    rc, _, err = _cli(["report", "--results-dir", published, "--no-plots", "-q"], capsys)  # → ../leaderboards
    assert rc == 0, err
    assert json.loads((boards / MARKER).read_text())["results_dir"] == "../results"
    before = {p: p.read_bytes() for p in boards.rglob("*") if p.is_file()}
    rc, _, err = _cli(["report", "--results-dir", mine, "--out", boards, "--no-plots", "-q"], capsys)
    assert rc == 2
    _one_line_error(err, f"{boards} holds the leaderboards of", "--force", f"{mine}/leaderboards")
    rc, _, err = _cli(["run", "--results-dir", mine, "--leaderboards-dir", boards, "--samplers", "random-users",
                       "--models", "ease", "--budgets", "20", "--seeds", "0", "-q"], capsys)
    assert rc == 2  # refused before computing
    _one_line_error(err, "--force")
    assert not (mine / "ml-latest-small" / "random-users__ease__b20__s0.json").exists()
    assert {p: p.read_bytes() for p in boards.rglob("*") if p.is_file()} == before
    rc, _, err = _cli(["report", "--results-dir", mine, "--no-plots", "-q"], capsys)  # its own: mine/leaderboards
    assert rc == 0, err
    assert (mine / "leaderboards" / "ml-latest-small" / "ease.md").exists()
    assert leaderboards_owner(mine / "leaderboards") == mine.resolve()
    scan = scan_rows(mine)  # its leaderboards are not mistaken for rows
    assert len(scan.rows) == 2 and not scan.invalid and not scan.duplicates
    rc, _, err = _cli(["report", "--results-dir", mine, "--out", boards, "--no-plots", "--force", "-q"], capsys)
    assert rc == 0, err
    assert leaderboards_owner(boards) == mine.resolve()
    assert "2 rows" in (boards / "ml-latest-small" / "ease.md").read_text()


# ----------------------------------------------------------------------------- runs: λ metric, compare, rows

def test_a_run_records_its_suite_and_ends_with_the_comparison(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # where results/ holds the published rows
    suite = tmp_path / "one.toml"
    suite.write_text('samplers = ["random-users"]\nmodels = ["ease"]\nbudgets = [10]\nseeds = [0]\n')
    results = tmp_path / "r"
    rc, _, err = _cli(["run", suite, "--results-dir", results, "--no-report"], capsys)
    assert rc == 0, err
    (path,) = (results / "ml-latest-small").glob("*.json")
    row = json.loads(path.read_text())
    published = json.loads((SHIPPED / "ml-latest-small" / path.name).read_text())
    assert row["identity_key"] == published["identity_key"]  # the default metric leaves the identity alone
    assert row["tune_metric"] == "hr@100" and row["suite"]["suite_file"] == str(suite)
    assert row["suite"]["samplers"] == ["random-users"] and row["suite"]["budgets"] == [10]
    assert "suite" not in row["identity"] and "tune_metric" not in json.dumps(row["identity"])
    assert "compared with the published rows in results (test NDCG@10): 1 of 1 rows matched by identity, " \
           "1 within the noise" in err
    assert "0 of 1 cells flagged" in err and f"cfbench compare {results} --against results" in err
    rc, _, err = _cli(["run", suite, "--results-dir", results, "--no-report", "--against", tmp_path / "r"], capsys)
    assert rc == 0 and "not compared with published rows: this run wrote into" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = _cli(["run", suite, "--results-dir", results, "--no-report", "--against", tmp_path / "empty"], capsys)
    assert rc == 0 and "not compared with published rows: no row of" in err
    rc, _, err = _cli(["run", suite, "--results-dir", results, "--no-report", "--against", tmp_path / "none"], capsys)
    assert rc == 2
    _one_line_error(err, "--against")
    monkeypatch.chdir(tmp_path)
    rc, _, err = _cli(["run", suite, "--results-dir", results, "--no-report"], capsys)
    assert rc == 0 and "not compared with published rows: no folder results here" in err


def test_the_tune_metric_picks_lambda_and_is_in_the_identity_only_when_not_the_default(tmp_path, capsys):
    config = SuiteConfig(samplers=("random-users",), models=("ease",), budgets=(10,), seeds=(0,),
                         results_dir=tmp_path / "r", tune_metric="ndcg@10")
    (path,) = run_suite(config, progress=False)
    row = json.loads(path.read_text())
    published = json.loads((SHIPPED / "ml-latest-small" / path.name).read_text())
    assert row["tune_metric"] == "ndcg@10" and row["identity"]["evaluation"]["selection_metric"] == "ndcg@10"
    assert row["identity_key"] != published["identity_key"]
    default = json.loads(json.dumps(row["identity"]))
    default["evaluation"]["selection_metric"] = "hr@100"
    assert identity_key(default) == published["identity_key"]  # the metric is the only difference
    scores = {float(k): v for k, v in row["lambda_grid_val"].items()}
    assert row["lambda"] == max(scores, key=lambda lam: (scores[lam], -list(scores).index(lam)))
    assert scores[row["lambda"]] == row["metrics"]["val"]["ndcg@10"]  # the scores are NDCG@10's
    rc, _, err = _cli(["report", "--results-dir", tmp_path / "r", "--no-plots", "--formats", "md", "-q"], capsys)
    assert rc == 0, err
    assert "λ chosen on validation NDCG@10." in (tmp_path / "r" / "leaderboards" / "ml-latest-small" / "ease.md"
                                                 ).read_text()
    rc, _, err = _cli(["run", "--tune-metric", "auc", "-q"], capsys)
    assert rc == 2
    _one_line_error(err, "--tune-metric", "invalid choice: 'auc'")


def test_the_readme_example_and_array_of_tables_load(tmp_path):
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```toml\n# suites/my-study.toml")
    example = readme[start + len("```toml\n"):readme.index("```", start + 7)]
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "my-study.toml").write_text(example)
    suite = load_suite(tmp_path / "suites" / "my-study.toml")
    assert [(p.samplers, p.budgets, p.seeds, p.models) for p in suite.parts] == [
        (("full", "random-users", "svp-cf:level=interaction", "svp-cf:level=interaction,propensity=true"),
         (10, 20, 50, 100, 200, 500), (0, 1, 2), ("infinite-ae", "ease")),
        (("distill-cf",), (10, 20, 50), (0,), ("infinite-ae", "ease")),
        (("head-users",), (500,), (0, 1, 2), ("ease",))]
    assert suite.results_dir == tmp_path / "runs" / "my-study" and suite.parts[0].tune_metric == "ndcg@10"
    (tmp_path / "tables.toml").write_text('[[samplers]]\nname = "svp-cf"\nparams = { level = "interaction" }\n'
                                          '[[samplers]]\nname = "random-users"\nseeds = [0]\n')
    assert [p.samplers for p in load_suite(tmp_path / "tables.toml").parts] == [("svp-cf:level=interaction",),
                                                                                ("random-users",)]


def test_a_leaderboard_says_which_metric_chose_lambda():
    from cfbench.reports import _tune_line

    legacy = {"identity": {"evaluation": {"selection_metric": "hr@100"}}}
    assert _tune_line([legacy, {}]) == "λ chosen on validation HR@100."
    assert _tune_line([legacy, {"tune_metric": "ndcg@10"}, {"tune_metric": "ndcg@10"}]) == \
        "λ chosen on validation HR@100 (1 row), NDCG@10 (2 rows)."


def test_missing_data_of_a_later_suite_is_refused_before_the_first_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CFBENCH_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "a.toml").write_text('samplers = ["random-users"]\nmodels = ["ease"]\nbudgets = [10]\nseeds = [0]\n')
    (tmp_path / "b.toml").write_text('dataset = "ml-1m"\n')
    rc, _, err = _cli(["run", tmp_path / "a.toml", tmp_path / "b.toml", "--results-dir", tmp_path / "r", "-q"], capsys)
    assert rc == 2
    _one_line_error(err, f"suite file {tmp_path / 'b.toml'}", "dataset 'ml-1m' not found", "cfbench fetch ml-1m")
    assert not (tmp_path / "r").exists()
