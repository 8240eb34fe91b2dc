"""The ``cfbench`` command line: run, report, export, datasets, fetch, samplers, models."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]

log = logging.getLogger("cfbench")


EXIT_FAILED_UNITS = 1
EXIT_USAGE = 2
#: The defaults of the run flags a suite file can also set (cfbench.harness has them too; the CLI must start
#: without importing JAX, hence the copies, which tests/test_suites.py checks).
DEFAULT_RESULTS_DIR = "runs"
PUBLISHED_RESULTS_DIR = "results"
TUNE_METRICS = ("hr@10", "ndcg@10", "psp@10", "hr@100", "ndcg@100", "psp@100")
#: Run flags (argparse ``dest``) that are suite keys of the same name.
SUITE_FLAGS = ("dataset", "samplers", "models", "budgets", "seeds", "results_dir", "leaderboards_dir",
               "rating_threshold", "dtype", "batch_size", "unit_timeout", "executor", "address", "device",
               "cpus_per_unit", "tune_metric", "memory_limit", "compile_cache", "subset_cache")


def _int_list(text: str, minimum: int = 0) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    if min(values) < minimum:
        raise argparse.ArgumentTypeError(f"expected integers ≥ {minimum}, got {text!r}")
    return tuple(dict.fromkeys(values))  # duplicates run once


def _memory_bytes(text: str) -> int:
    from cfbench.memory import parse_bytes

    try:
        return parse_bytes(text, "--memory-limit")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _budgets(text: str) -> tuple[int, ...]:
    return _int_list(text, minimum=1)


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``cfbench: error: …``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("cfbench").strip()
        self.exit(EXIT_USAGE, f"cfbench: error: {where + ': ' if where else ''}{message} (see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cfbench", description="How little data do you need? Data distillation vs "
                                "sampling for collaborative filtering.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run benchmark suites, regenerate their leaderboards and compare with the "
                         "published rows")
    # Flags a suite file can also set default to None, so that a flag given explicitly (and only then)
    # overrides the file; the defaults are filled in by cfbench.suites / SuiteConfig.
    run.add_argument("suites", nargs="*", type=Path, metavar="SUITE.toml",
                     help="suite files to run, one after another (see the README's \"Suite files\"); flags given "
                          "override their values (default: the default suite)")
    run.add_argument("--dataset", default=None,
                     help="built-in name or CSV/TSV path (default: ml-latest-small)")
    run.add_argument("--samplers", default=None,
                     help="comma-separated NAME[:param=value,...] or module:attr (default: full,random-users,head-users)")
    run.add_argument("--models", default=None, help="comma-separated models (default: infinite-ae,ease)")
    run.add_argument("--budgets", type=_budgets, default=None,
                     help="comma-separated budgets in users (default: 10,20,50,100,... below the number of users)")
    run.add_argument("--seeds", type=_int_list, default=None, help="comma-separated seeds (default: 0,1,2)")
    run.add_argument("--results-dir", type=Path, default=None,
                     help="where rows go (default: runs, your own folder; the published rows are in results)")
    run.add_argument("--leaderboards-dir", type=Path, default=None,
                     help="where tables and plots go (default: RESULTS_DIR/leaderboards; leaderboards for results)")
    run.add_argument("--no-report", action="store_true", help="do not regenerate the leaderboards after the run")
    run.add_argument("--force", action="store_true",
                     help="write the leaderboards even into a folder generated from another results folder")
    run.add_argument("--against", type=Path, default=None,
                     help="published results folder to compare the run's rows with at the end (default: results, "
                          "when it exists here)")
    run.add_argument("--dry-run", action="store_true",
                     help="list the units that would run (missing, stale or failed rows) and compute nothing")
    run.add_argument("--rating-threshold", type=_finite, default=None,
                     help="keep only ratings ≥ this as positives (default: every rating)")
    run.add_argument("--dtype", choices=("float32", "float64"), default=None, help="(default: float32)")
    run.add_argument("--batch-size", type=_positive(int), default=None,
                     help="users scored at once during evaluation (default: 1024)")
    run.add_argument("--unit-timeout", type=_positive(float), default=None, metavar="SECONDS",
                     help="wall-clock limit of one unit (a sampler's selection and its models); a unit over it is "
                          "recorded as a failed row and the suite goes on (default: no limit)")
    run.add_argument("--executor", choices=("local", "ray"), default=None,
                     help="where units run: this process one after another, or one Ray task each (needs the "
                          "[ray] extra; default: local)")
    run.add_argument("--address", default=None,
                     help="Ray cluster to join (auto, HOST:PORT or ray://HOST:PORT; default: start Ray on this machine)")
    run.add_argument("--device", choices=("auto", "cpu", "gpu"), default=None,
                     help="JAX device for models and samplers: a GPU when there is one, or insist (default: auto)")
    run.add_argument("--cpus-per-unit", type=_positive(float), default=None,
                     help="CPUs each Ray task asks for (default: 1)")
    run.add_argument("--memory-limit", type=_memory_bytes, default=None, metavar="BYTES",
                     help="memory one unit may use, e.g. 8GiB (default: what the device has free, or "
                          "$CFBENCH_MEMORY_LIMIT); a model predicted not to fit is recorded as infeasible, not run")
    run.add_argument("--compile-cache", default=None, metavar="DIR",
                     help="keep JAX's compiled programs in DIR between runs (worth it on a GPU, where compiling "
                          "costs more than computing; default: JAX's own setting, e.g. $JAX_COMPILATION_CACHE_DIR)")
    run.add_argument("--subset-cache", default=None, metavar="DIR",
                     help="keep each unit's selected subset in DIR and reuse it in later runs that need the same "
                          "selection (a new model or λ grid on a Distill-CF sample does not distil again; default: off)")
    run.add_argument("--tune-metric", choices=TUNE_METRICS, default=None,
                     help="validation metric each model's λ is chosen on (default: hr@100, the reference's; another "
                          "one is part of the rows' identity)")

    rep = sub.add_parser("report", help="regenerate the leaderboards from result rows")
    rep.add_argument("--results-dir", type=Path, default=None,
                     help="folder of result rows (default: runs; the published rows: results)")
    rep.add_argument("--out", "--leaderboards-dir", dest="out", type=Path, default=None,
                     help="where tables and plots go (default: RESULTS_DIR/leaderboards; leaderboards for results)")
    rep.add_argument("--force", action="store_true",
                     help="write even into a leaderboards folder generated from another results folder")
    rep.add_argument("--no-plots", action="store_true", help="tables only")
    rep.add_argument("--formats", type=_formats, default=None,
                     help="comma-separated leaderboard formats among md,csv,tex,html (default: all; md always)")

    cmp_ = sub.add_parser("compare", help="check that a run reproduces the published rows (within seed noise)")
    cmp_.add_argument("run_dir", type=Path, metavar="RUN_DIR", nargs="?", default=Path(DEFAULT_RESULTS_DIR),
                      help="results folder of the run to check (default: %(default)s)")
    cmp_.add_argument("--against", type=Path, default=Path("results"),
                      help="published results folder (default: %(default)s)")
    cmp_.add_argument("--metric", default="ndcg@10", choices=("ndcg@10", "hr@10", "psp@10", "ndcg@100", "hr@100",
                                                              "psp@100", "auc"), help="test metric (default: %(default)s)")
    cmp_.add_argument("--threshold", type=_positive(float), default=2.0,
                      help="largest |run − published| in published seed-to-seed std devs (default: %(default)s)")
    cmp_.add_argument("--abs-tol", type=_finite, default=None,
                      help="tolerance where a cell has one published seed or zero std (default: 0.5; AUC 0.005)")
    cmp_.add_argument("--json", action="store_true", help="print the comparison as JSON")

    exp = sub.add_parser("export", help="write every result row as one CSV line")
    exp.add_argument("--results-dir", type=Path, default=None, help="folder of result rows (default: runs)")
    exp.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    exp.add_argument("--output", "-o", type=Path, default=None, help="file to write (default: stdout)")

    up = sub.add_parser("upgrade-rows", help="give rows written before row identities (schema 1) their identity, "
                        "where the data and parameters provably match; the others are re-run when next run")
    up.add_argument("--results-dir", type=Path, default=None, help="folder of result rows (default: runs)")
    ds = sub.add_parser("datasets", help="list datasets, their sizes and where they were found")
    fe = sub.add_parser("fetch", help="download a dataset into the per-user cache, verifying its checksum")
    fe.add_argument("name")
    sy = sub.add_parser("synth", help="generate seeded synthetic interactions (power-law degrees fitted to ML-1M) "
                        "and write them as a user,item,rating CSV")
    sy.add_argument("--preset", choices=("netflix", "netflix-small"), default=None,
                    help="start from the sizes of synth-netflix or synth-netflix-small (flags given override them)")
    for flag in ("users", "items", "interactions"):
        sy.add_argument(f"--{flag}", type=int, default=None, help=f"number of {flag} (required without --preset)")
    sy.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    sy.add_argument("--output", "-o", type=Path, required=True, help="FILE.csv or FILE.csv.gz, written atomically")
    sub.add_parser("samplers", help="list every sampler plugin with its description and parameters")
    sub.add_parser("models", help="list every model plugin")
    for sp in (run, ds, fe, up):
        sp.add_argument("--data-dir", type=Path, default=None,
                        help="data directory (then $CFBENCH_DATA_DIR, then the per-user cache)")
    for sp in (run, rep, exp, ds, fe, up, sy):
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from cfbench.datasets import DATASETS, DatasetError, load_dataset, locate
    from cfbench.harness import run_suite
    from cfbench.plugins import PluginError, load_model, load_sampler, split_specs
    from cfbench.reports import check_leaderboards_owner, default_leaderboards_dir, report
    from cfbench.results import ResultsError
    from cfbench.suites import build_suite, load_suite

    overrides = {key: getattr(args, key) for key in SUITE_FLAGS if getattr(args, key) is not None}
    for key in ("samplers", "models"):
        if key in overrides:
            overrides[key] = tuple(split_specs(overrides[key]))
    suites = [load_suite(path, overrides, args.data_dir) for path in args.suites] or \
        [build_suite(overrides, data_dir=args.data_dir)]
    for suite in suites:  # unknown plugins or parameters, missing data: one line before anything is computed
        name = suite.parts[0].dataset
        if name in DATASETS and locate(name, args.data_dir) is None:
            try:
                load_dataset(name, args.data_dir)  # raises its one-line "not found; fetch it" error
            except DatasetError as err:
                raise DatasetError(f"suite file {suite.file}: {err}" if suite.file else str(err)) from None
        for part in suite.parts:
            try:
                for spec in part.samplers:
                    load_sampler(spec)
                for spec in part.models:
                    load_model(spec, dtype=part.dtype)
            except PluginError as err:
                raise PluginError(f"suite file {suite.file}: {err}" if suite.file else str(err)) from None
    if args.against is not None and not args.against.is_dir():
        raise ResultsError(f"--against {args.against}: no such folder; pass the folder of the published rows")
    boards: list[tuple[Path, Path]] = []  # (results dir, leaderboards dir), each once
    for suite in suites:
        pair = (suite.results_dir, suite.leaderboards_dir or default_leaderboards_dir(suite.results_dir))
        if not any(p[0].resolve() == pair[0].resolve() and p[1].resolve() == pair[1].resolve() for p in boards):
            boards.append(pair)
    if not args.no_report:  # refused before hours of computing, not after
        for results_dir, out in boards:
            check_leaderboards_owner(results_dir, out, args.force)
    t0 = time.perf_counter()
    done: list[tuple[Path, Any]] = []
    for suite in suites:
        if suite.file is not None:
            log.info("suite %s: %d part%s", suite.file, len(suite.parts), "s" * (len(suite.parts) != 1))
        for part in suite.parts:
            done.append((suite.results_dir, run_suite(part, progress=not args.quiet, dry_run=args.dry_run)))
    total = _combined([s for _, s in done])
    if args.dry_run:
        log.info("dry run: %d of %d rows to run, %d already done; nothing computed", len(total.paths) - total.reused,
                 len(total.paths), total.reused)
        return 0
    folders = ", ".join(dict.fromkeys(str(d) for d, _ in done))
    log.info("suite: %s in %s (%.1f s)", total.describe(), folders, time.perf_counter() - t0)
    if not args.no_report:
        for results_dir, out in boards:
            written = report(results_dir, out, force=args.force)
            log.info("leaderboards: %d files in %s", len(written), out)
    _compare_with_published(done, args.against)
    if total.failed:
        print(f"cfbench: {len(total.failed)} of {len(total.paths)} rows failed (tracebacks in the rows and in "
              f"{total.log_file}); re-run to retry them:", file=sys.stderr)
        for path, error in total.failed:
            print(f"  {path}: {error['phase']}: {error['kind']}: {error['message']}", file=sys.stderr)
        return EXIT_FAILED_UNITS
    return 0


def _combined(summaries: list[Any]) -> Any:
    """One :class:`~cfbench.harness.RunSummary` for the parts of several suites: counts added, lists joined."""
    import dataclasses

    from cfbench.harness import RunSummary

    total = RunSummary([])
    for field in dataclasses.fields(RunSummary):
        values = [getattr(s, field.name) for s in summaries]
        if field.name == "log_file":
            total.log_file = values[-1]
        elif isinstance(values[0], list):
            setattr(total, field.name, [x for v in values for x in v])
        elif isinstance(values[0], int) and not isinstance(values[0], bool):
            setattr(total, field.name, sum(values))
    return total


def _compare_with_published(done: list[tuple[Path, Any]], against: Path | None) -> None:
    """The end of ``cfbench run``: how the run's rows compare with the published ones (a few lines, or why not)."""
    from cfbench.compare import run_summary

    published = Path(PUBLISHED_RESULTS_DIR) if against is None else against
    by_dir: dict[Path, list[Path]] = {}
    for results_dir, summary in done:
        by_dir.setdefault(Path(results_dir), []).extend(summary.paths)
    for results_dir, paths in by_dir.items():
        for line in run_summary(results_dir, published, paths):
            log.info("%s", line)


def _formats(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    bad = [n for n in names if n not in ("md", "csv", "tex", "html")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected formats among md,csv,tex,html, got {text!r}")
    return tuple(dict.fromkeys(("md", *names)))


def _results_dir(args: argparse.Namespace) -> Path:
    """``--results-dir``, or the default (``runs``), saying what to do when the default is not there yet."""
    if args.results_dir is not None:
        return args.results_dir
    default = Path(DEFAULT_RESULTS_DIR)
    if not default.exists():
        from cfbench.results import ResultsError

        raise ResultsError(f"no folder {default} here (the default results folder, where `cfbench run` writes): run "
                           f"`cfbench run` first, or pass --results-dir {PUBLISHED_RESULTS_DIR} for the published rows")
    return default


@contextlib.contextmanager
def _default_hint(args: argparse.Namespace) -> Iterator[None]:
    """With the default results folder, an error about its rows also says where the published rows are."""
    from cfbench.results import ResultsError

    try:
        yield
    except ResultsError as err:
        if args.results_dir is not None:
            raise
        raise ResultsError(f"{err} (the published rows: --results-dir {PUBLISHED_RESULTS_DIR})") from None


def _cmd_report(args: argparse.Namespace) -> int:
    from cfbench.reports import FORMATS, default_leaderboards_dir, report

    results_dir = _results_dir(args)
    out = args.out if args.out is not None else default_leaderboards_dir(results_dir)
    with _default_hint(args):
        written = report(results_dir, out, force=args.force, plots=not args.no_plots, formats=args.formats or FORMATS)
    log.info("leaderboards: %d files in %s", len(written), out)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from cfbench.reports import export

    with _default_hint(args):
        text = export(_results_dir(args), args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        from cfbench.files import atomic_write_text

        atomic_write_text(args.output, text)
    return 0


def _cmd_upgrade_rows(args: argparse.Namespace) -> int:
    from cfbench.upgrade import upgrade_rows

    report = upgrade_rows(_results_dir(args), args.data_dir)
    for path, reason in report.left:
        log.warning("left %s as it is: %s", path, reason)
    log.info("upgraded %d rows, %d already current, %d left (re-run when their unit is next run)",
             len(report.upgraded), report.current, len(report.left))
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from cfbench.datasets import DATASETS, load_dataset, locate
    from cfbench.synthetic import LICENCE, PARAMETRIC_FORM, PRESETS

    rows = []
    for name, spec in DATASETS.items():
        path = locate(name, args.data_dir)
        if path is None:
            rows.append([name, "", "", "", "not found" + (" (cfbench fetch " + name + ")" if spec.fetch_plan else ""),
                         spec.licence])
            continue
        data = load_dataset(name, args.data_dir)
        rows.append([name, f"{data.n_users:,}", f"{data.n_items:,}", f"{len(data):,}", str(path), spec.licence])
    for name, (synth, description) in PRESETS.items():  # sizes from the spec: generation hits them exactly
        rows.append([name, f"{synth.users:,}", f"{synth.items:,}", f"{synth.interactions:,}",
                     f"generated on load, seed {synth.seed} ({description})", LICENCE])
    rows.append([PARAMETRIC_FORM, "N", "M", "K", "generated on load", LICENCE])
    print(tabulate(rows, headers=["name", "users", "items", "interactions", "found at", "licence"],
                   tablefmt="github", disable_numparse=True))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from cfbench.datasets import fetch

    print(fetch(args.name, progress=not args.quiet))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    import dataclasses

    from cfbench.synthetic import PRESETS, SynthSpec, generate, write_csv

    if not args.output.name.lower().endswith((".csv", ".csv.gz")):
        raise ValueError(f"--output {args.output}: name the file FILE.csv or FILE.csv.gz")
    given = {k: getattr(args, k) for k in ("users", "items", "interactions", "seed") if getattr(args, k) is not None}
    if args.preset is not None:
        name = f"synth-{args.preset}"
        spec = dataclasses.replace(PRESETS[name][0], **given)
        name = name if spec == PRESETS[name][0] else spec.label
    else:
        missing = [f"--{k}" for k in ("users", "items", "interactions") if k not in given]
        if missing:
            raise ValueError(f"synth: give {', '.join(missing)} (or --preset netflix|netflix-small)")
        spec = SynthSpec(**given)
        name = spec.label
    t0 = time.perf_counter()
    data = generate(spec, name, progress=not args.quiet)
    write_csv(data, args.output, progress=not args.quiet)
    log.info("%s: %s users, %s items, %s interactions in %s (%.1f s)", name, f"{spec.users:,}", f"{spec.items:,}",
             f"{spec.interactions:,}", args.output, time.perf_counter() - t0)
    return 0


def _cmd_samplers(args: argparse.Namespace) -> int:
    from cfbench.plugins import available_samplers

    for name, cls in available_samplers().items():
        print(f"{name}: {cls.description}")
        for pname, (ptype, default) in cls.parameters().items():
            print(f"    {pname} ({ptype}, default {default!r})")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    import inspect

    from cfbench.models.base import format_lambdas
    from cfbench.plugins import available_models

    for name, cls in available_models().items():
        print(f"{name}: {cls.description}")
        print(f"    lam grid (chosen on validation HR@100, or --tune-metric): {', '.join(f'{v:g}' for v in cls.lambda_grid)}")
        if "lambdas" in inspect.signature(cls.__init__).parameters:
            print(f"    another grid: {name}:lambdas=V/V/... (e.g. {format_lambdas(cls.lambda_grid)})")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from cfbench.compare import compare

    result = compare(args.run_dir, args.against, metric=args.metric, threshold=args.threshold, abs_tol=args.abs_tol)
    sys.stdout.write(result.to_json() if args.json else result.render())
    return result.exit_code


COMMANDS = {"run": _cmd_run, "report": _cmd_report, "export": _cmd_export, "upgrade-rows": _cmd_upgrade_rows,
            "compare": _cmd_compare,
            "datasets": _cmd_datasets,
            "fetch": _cmd_fetch, "synth": _cmd_synth, "samplers": _cmd_samplers, "models": _cmd_models}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["run"]  # `cfbench` alone runs the default suite
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            args = _parser().parse_args(["run", *argv])
    except SystemExit as done:  # --help, or a usage error already printed on one line
        return int(done.code or 0) if isinstance(done.code, int | None) else EXIT_USAGE
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("cfbench: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    handler.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    log.setLevel(logging.INFO)
    if getattr(args, "dtype", "float32") == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)

    from cfbench.datasets import DatasetError
    from cfbench.devices import DeviceError
    from cfbench.executors import ExecutorError
    from cfbench.models.base import NumericalError
    from cfbench.plugins import PluginError
    from cfbench.results import ResultsError
    from cfbench.subsets import SubsetError

    from cfbench.files import describe_os_error

    data_dir = getattr(args, "data_dir", None)
    if data_dir is not None and not data_dir.is_dir():
        return _fail(f"cfbench: error: data directory {data_dir} does not exist or is not a folder; "
                     "pass a folder holding one sub-folder per dataset")
    on_term = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return COMMANDS[args.command](args)
    except (DatasetError, PluginError, SubsetError, ResultsError, NumericalError, DeviceError, ExecutorError,
            ValueError) as err:
        return _fail(f"cfbench: error: {_one_line(err)}")
    except OSError as err:
        return _fail(f"cfbench: error: {describe_os_error(err, 'a file')}")
    except KeyboardInterrupt:
        print("cfbench: interrupted; rows written so far are kept, re-run to resume", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 — a bug of cfbench's: one line, the traceback only on request
        if os.environ.get("CFBENCH_TRACEBACK"):
            traceback.print_exc()
        return _fail(f"cfbench: error: internal error ({type(err).__name__}: {_one_line(err)}); "
                     "set CFBENCH_TRACEBACK=1 to see where, and please report it")
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM stops a run like Ctrl-C: rows written so far are kept (no plugin can capture it)."""
    raise KeyboardInterrupt


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
