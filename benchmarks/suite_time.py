"""What a suite costs, from its rows: the summed unit time per sampler, and in all.

    .venv/bin/python benchmarks/suite_time.py RESULTS_DIR [RESULTS_DIR ...] --dataset ml-1m
        [--budgets 10,20,50,100,200,500] [--replace distill-cf=distill-cf-fast]

Not a test. A unit is one (sampler spec, budget, seed); its time is the selection (``select_s`` +
``select_compile_s``, counted once) plus, for every model row, the λ search, the timed fits (every
repetition) and the test evaluation, compile time included: what running it again on the same
machine would take, without start-up and data loading. Full-data rows count once per seed.
Rows come from every directory given; a later directory's row replaces an earlier one's for the
same (dataset, sampler spec, budget, seed, model). ``--replace A=B`` counts sampler B's units in
place of A's (e.g. the faithful Distill-CF by the fast one) and says which (budget, seed) B lacks.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path


def unit_seconds(rows: list[dict]) -> float:
    """Selection once, then every model's λ search, timed fits and test evaluation (compile included)."""
    t0 = rows[0]["timings"]
    total = t0.get("select_s", 0.0) + t0.get("select_compile_s", 0.0)
    for row in rows:
        t = row["timings"]
        fits = t.get("fit_runs_s") or [t["fit_s"]]
        total += t["tune_s"] + t["tune_compile_s"] + sum(fits) + t["fit_compile_s"] + t["eval_s"] + t["eval_compile_s"]
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--budgets", default="")
    parser.add_argument("--replace", default="", help="A=B: count sampler spec B's units in place of A's")
    args = parser.parse_args(argv)
    budgets = {int(b) for b in args.budgets.split(",") if b}
    rows: dict[tuple, dict] = {}
    for folder in args.dirs:
        for path in sorted((folder / args.dataset).glob("*.json")):
            row = json.loads(path.read_text())
            if row.get("status") == "ok":
                rows[(row["sampler_spec"], row["budget"], row["seed"], row["model"])] = row
    units: dict[tuple, list[dict]] = collections.defaultdict(list)
    for (spec, budget, seed, _), row in rows.items():
        if spec == "full" or not budgets or budget in budgets:
            units[(spec, budget, seed)].append(row)
    old, _, new = args.replace.partition("=")
    if old:
        have = {(b, s) for (spec, b, s) in units if spec == new}
        missing = sorted((b, s) for (spec, b, s) in units if spec == old and (b, s) not in have)
        if missing:
            print(f"{new} lacks (budget, seed) {missing}: those units are not counted", file=sys.stderr)
        units = {k: v for k, v in units.items() if k[0] != old}
    per_sampler: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for (spec, _, _), members in units.items():
        per_sampler[spec] += unit_seconds(members)
        count[spec] += 1
    print(f"| sampler | units | unit time, h |\n| --- | ---: | ---: |")
    for spec, seconds in per_sampler.most_common():
        print(f"| {spec} | {count[spec]} | {seconds / 3600:.2f} |")
    print(f"| **all** | {sum(count.values())} | **{sum(per_sampler.values()) / 3600:.2f}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
