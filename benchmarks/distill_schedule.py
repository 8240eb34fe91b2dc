"""Distill-CF's validation cadence and patience, checked across datasets from the rows' traces (issue #13).

Every Distill-CF row keeps the trace of its winning candidate: the validation score of the sample drawn every
``eval_every`` (25) steps, until ``patience`` (100) steps pass without a better one or the step cap (500).
This script replays the stopping rule on those traces for other schedules — validate every E steps, stop after
P steps without progress — and reports, per dataset and sampler, what each schedule would have cost (steps
and validations) and what it would have lost: the validation score of the sample it keeps against the one the
run kept. Nothing is recomputed, so only schedules the traces can answer are replayed: E a multiple of the
run's cadence, P at most the run's patience (a longer patience would need the steps the run never took).

Two limits, stated with the table: the replay holds the winning candidate (τ) fixed, while a schedule could
change which candidate wins; and it measures the *validation* score kept, the signal the method selects on,
not test quality (see ``distill_selection.py`` for how well that signal tracks test).

    python benchmarks/distill_schedule.py results /work/bigruns/thin [--schedules 25:100,50:100,25:50,50:50]

Prints a Markdown table and the cost model used to turn steps and validations into time.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cfbench.results import iter_rows  # noqa: E402

DISTILLERS = ("distill-cf", "distill-cf-fast", "distill-cf-robust", "distill-cf-ease")


def replay(trace: list[dict], score: str, every: int, patience: int, cap: int) -> tuple[float, int, int] | None:
    """(best score kept, steps run, validations) of the stopping rule with (``every``, ``patience``) on ``trace``
    (validation points of a run at a finer cadence and at least this patience); None where the replay would
    need a validation point the trace does not have."""
    points = {int(p["step"]): float(p[score]) for p in trace if int(p["step"]) > 0 and score in p}
    best, best_step, validations = float("-inf"), 0, 0
    step = 0
    while step < cap:
        step = min(step + every, cap)
        if step not in points:
            return None
        validations += 1
        if points[step] > best:
            best, best_step = points[step], step
        elif step - best_step >= patience:
            return best, step, validations
    return best, step, validations


def load(folders: list[Path]) -> list[dict]:
    """One record per distillation (the rows of both models share it): dataset, sampler, budget, seed, the
    winner's trace and schedule, its seconds per step, and the selection time."""
    runs: dict[tuple, dict] = {}
    for folder in folders:
        for _, row in iter_rows(folder):
            if not row or row.get("status") != "ok" or row.get("sampler") not in DISTILLERS:
                continue
            sel = row.get("selection") or {}
            trace = sel.get("trace")
            if not trace:
                continue
            params = row.get("sampler_params") or {}
            key = (row["dataset"], row.get("sampler_spec", row["sampler"]), row["budget"], row["seed"])
            score = sel.get("score_name") or next((k[4:] for k in sel if k.startswith("val_")), "hr@100")
            runs[key] = {"dataset": row["dataset"], "sampler": row["sampler"], "spec": key[1], "budget": row["budget"],
                         "seed": row["seed"], "trace": trace, "score": score,
                         "every": int(params.get("eval_every", 25)), "patience": int(params.get("patience", 100)),
                         "cap": int(params.get("steps", 500)), "step_s": sel.get("step_s"),
                         "candidates": len(sel.get("candidates") or [1]),
                         "select_s": (row.get("timings") or {}).get("select_s")}
    return list(runs.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--schedules", default="25:100,50:100,25:75,25:50,50:50",
                        help="E:P pairs, validate every E steps and stop after P without progress (default: %(default)s)")
    args = parser.parse_args(argv)
    schedules = [tuple(int(v) for v in s.split(":")) for s in args.schedules.split(",")]
    runs = load(args.folders)
    if not runs:
        print("no Distill-CF rows with traces in " + ", ".join(map(str, args.folders)), file=sys.stderr)
        return 1
    groups: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for run in runs:
        groups[(run["dataset"], run["sampler"])].append(run)
    head = " | ".join(f"every {e}, patience {p}: steps / validations / Δ val / changed" for e, p in schedules)
    print(f"| dataset | sampler | runs | {head} |")
    print("|---|---|---:|" + "---|" * len(schedules))
    for (dataset, sampler), group in sorted(groups.items()):
        cells = []
        for every, patience in schedules:
            steps, vals, loss, changed, n = [], [], [], 0, 0
            for run in group:
                if every % run["every"] or patience > run["patience"]:
                    continue
                ref = replay(run["trace"], run["score"], run["every"], run["patience"], run["cap"])
                got = replay(run["trace"], run["score"], every, patience, run["cap"])
                if ref is None or got is None:
                    continue
                n += 1
                steps.append(got[1] / ref[1])
                vals.append(got[2] / ref[2])
                loss.append(got[0] - ref[0])
                changed += got[0] != ref[0]
            cells.append(f"{statistics.mean(steps):.2f}× / {statistics.mean(vals):.2f}× / {statistics.mean(loss):+.2f} "
                         f"(min {min(loss):+.2f}) / {changed} of {n}" if n else "–")
        print(f"| {dataset} | {sampler} | {len(group)} | " + " | ".join(cells) + " |")
    print("\nsteps, validations: of the winning candidate, as a fraction of what the run did; Δ val: validation "
          "score of the sample kept minus the run's (points, mean over runs; min: the worst run); changed: runs "
          "whose kept sample differs. The other candidates are not replayed (their traces are not kept).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
