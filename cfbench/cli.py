"""The ``cfbench`` command line: run, report, export, datasets, fetch, samplers, models."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("cfbench")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cfbench", description="How little data do you need? Data distillation vs "
                                "sampling for collaborative filtering.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a benchmark suite and regenerate the leaderboards")
    run.add_argument("--dataset", default="ml-latest-small", help="built-in name or CSV/TSV path (default: %(default)s)")
    run.add_argument("--samplers", default="full,random-users,head-users",
                     help="comma-separated NAME[:param=value,...] or module:attr (default: %(default)s)")
    run.add_argument("--models", default="infinite-ae,ease", help="comma-separated models (default: %(default)s)")
    run.add_argument("--budgets", type=_int_list, default=None,
                     help="comma-separated budgets in users (default: 10,20,50,100,... below the number of users)")
    run.add_argument("--seeds", type=_int_list, default=(0, 1, 2), help="comma-separated seeds (default: 0,1,2)")
    run.add_argument("--results-dir", type=Path, default=Path("results"), help="where rows go (default: %(default)s)")
    run.add_argument("--leaderboards-dir", type=Path, default=Path("leaderboards"),
                     help="where tables and plots go (default: %(default)s)")
    run.add_argument("--no-report", action="store_true", help="do not regenerate the leaderboards after the run")
    run.add_argument("--rating-threshold", type=float, default=None,
                     help="keep only ratings ≥ this as positives (default: every rating)")
    run.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    run.add_argument("--batch-size", type=int, default=1024, help="users scored at once during evaluation")

    rep = sub.add_parser("report", help="regenerate the leaderboards from result rows")
    rep.add_argument("--results-dir", type=Path, default=Path("results"))
    rep.add_argument("--out", "--leaderboards-dir", dest="out", type=Path, default=Path("leaderboards"))
    rep.add_argument("--no-plots", action="store_true", help="tables only")

    exp = sub.add_parser("export", help="write every result row as one CSV line")
    exp.add_argument("--results-dir", type=Path, default=Path("results"))
    exp.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    exp.add_argument("--output", "-o", type=Path, default=None, help="file to write (default: stdout)")

    ds = sub.add_parser("datasets", help="list datasets, their sizes and where they were found")
    fe = sub.add_parser("fetch", help="download a dataset into the per-user cache, verifying its checksum")
    fe.add_argument("name")
    sub.add_parser("samplers", help="list every sampler plugin with its description and parameters")
    sub.add_parser("models", help="list every model plugin")
    for sp in (run, ds, fe):
        sp.add_argument("--data-dir", type=Path, default=None,
                        help="data directory (then $CFBENCH_DATA_DIR, then the per-user cache)")
    for sp in (run, rep, exp, ds, fe):
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from cfbench.harness import SuiteConfig, run_suite
    from cfbench.plugins import split_specs
    from cfbench.reports import write_leaderboards

    config = SuiteConfig(dataset=args.dataset, samplers=tuple(split_specs(args.samplers)),
                         models=tuple(split_specs(args.models)), budgets=args.budgets, seeds=args.seeds,
                         results_dir=args.results_dir, data_dir=args.data_dir,
                         rating_threshold=args.rating_threshold, dtype=args.dtype, batch_size=args.batch_size)
    t0 = time.perf_counter()
    paths = run_suite(config, progress=not args.quiet)
    log.info("suite: %d rows in %s (%.1f s)", len(paths), args.results_dir, time.perf_counter() - t0)
    if not args.no_report:
        written = write_leaderboards(args.results_dir, args.leaderboards_dir)
        log.info("leaderboards: %d files in %s", len(written), args.leaderboards_dir)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from cfbench.reports import write_leaderboards

    written = write_leaderboards(args.results_dir, args.out, plots=not args.no_plots)
    log.info("leaderboards: %d files in %s", len(written), args.out)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from cfbench.reports import export

    text = export(args.results_dir, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        tmp = args.output.with_name(args.output.name + ".part")
        tmp.write_text(text)
        os.replace(tmp, args.output)
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from cfbench.datasets import DATASETS, load_dataset, locate

    rows = []
    for name, spec in DATASETS.items():
        path = locate(name, args.data_dir)
        if path is None:
            rows.append([name, "", "", "", "not found" + (" (cfbench fetch " + name + ")" if spec.url else ""),
                         spec.licence])
            continue
        data = load_dataset(name, args.data_dir)
        rows.append([name, f"{data.n_users:,}", f"{data.n_items:,}", f"{len(data):,}", str(path), spec.licence])
    print(tabulate(rows, headers=["name", "users", "items", "interactions", "found at", "licence"],
                   tablefmt="github", disable_numparse=True))
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from cfbench.datasets import fetch

    print(fetch(args.name, progress=not args.quiet))
    return 0


def _cmd_samplers(args: argparse.Namespace) -> int:
    from cfbench.plugins import available_samplers

    for name, cls in available_samplers().items():
        print(f"{name}: {cls.description}")
        for pname, (ptype, default) in cls.parameters().items():
            print(f"    {pname} ({ptype}, default {default!r})")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from cfbench.plugins import available_models

    for name, cls in available_models().items():
        print(f"{name}: {cls.description}")
        print(f"    lam grid (chosen on validation HR@100): {', '.join(f'{v:g}' for v in cls.lambda_grid)}")
    return 0


COMMANDS = {"run": _cmd_run, "report": _cmd_report, "export": _cmd_export, "datasets": _cmd_datasets,
            "fetch": _cmd_fetch, "samplers": _cmd_samplers, "models": _cmd_models}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["run"]  # `cfbench` alone runs the default suite
    args = _parser().parse_args(argv)
    if args.command is None:
        args = _parser().parse_args(["run", *argv])
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("cfbench: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    if getattr(args, "dtype", "float32") == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)

    from cfbench.datasets import DatasetError
    from cfbench.models.base import NumericalError
    from cfbench.plugins import PluginError
    from cfbench.results import ResultsError
    from cfbench.subsets import SubsetError

    try:
        return COMMANDS[args.command](args)
    except (DatasetError, PluginError, SubsetError, ResultsError, NumericalError, ValueError, OSError) as err:
        print(f"cfbench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cfbench: interrupted; rows written so far are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
