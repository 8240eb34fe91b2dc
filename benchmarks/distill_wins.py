"""Where does Distill-CF win? Per dataset, model and budget ≤ a fraction of the users (issue #13).

For every dataset folder under the results folders given, every model, and every budget at most
``--fraction`` of the dataset's users, the table gives test NDCG@10 (mean over the seeds present) of
full data, of each Distill-CF sampler (as % of full data) and of the best other sampler, and says
whether Distill-CF beats every other sampler there, each compared on the seeds it shares with the
distiller (paired; the distiller's seeds are listed). Only ``ok`` rows count.

    python benchmarks/distill_wins.py results /work/bigruns/thin --fraction 0.1
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from cfbench.results import iter_rows

DISTILLERS = ("distill-cf", "distill-cf-fast", "distill-cf-robust", "distill-cf-ease")


def load(folders: list[Path]) -> tuple[dict[tuple[str, str, str, int, int], float], dict[str, int]]:
    """((dataset, model, sampler spec, budget, seed) → test NDCG@10 ×100 of every ok row,
    dataset → its number of users, from any row's split, ok or not)."""
    out, users = {}, {}
    for folder in folders:
        for _, row in iter_rows(folder):
            if row is None:
                continue
            if "users" in row.get("split", {}):
                users[row["dataset"]] = int(row["split"]["users"])
            if row.get("status") != "ok":
                continue
            # the spec, not the name: svp-cf and svp-cf:level=interaction are different samplers
            key = (row["dataset"], row["model"], row["sampler_spec"], int(row["budget"]), int(row["seed"]))
            out[key] = float(row["metrics"]["test"]["ndcg@10"])
    return out, users


def _is_distiller(spec: str) -> bool:
    return spec.split(":")[0] in DISTILLERS


def table(scores: dict[tuple[str, str, str, int, int], float], users: dict[str, int], fraction: float) -> str:
    by = collections.defaultdict(dict)
    for (ds, model, sampler, budget, seed), value in scores.items():
        by[(ds, model)].setdefault(sampler, {}).setdefault(budget, {})[seed] = value
    lines = ["| dataset | model | budget | seeds | full | Distill-CF (% of full) | best other sampler | Distill-CF wins? |",
             "|---|---|---|---|---|---|---|---|"]
    for (ds, model), samplers in sorted(by.items()):
        n_users = users.get(ds)
        full = samplers.get("full", {})
        full_mean = float(np.mean(list(next(iter(full.values())).values()))) if full else float("nan")
        budgets = sorted({b for s, per in samplers.items() if s != "full" for b in per})
        for budget in budgets:
            if n_users is not None and budget > fraction * n_users:
                continue
            for distiller in sorted(s for s in samplers if _is_distiller(s)):
                mine = samplers.get(distiller, {}).get(budget)
                if not mine:
                    continue
                others = {s: per[budget] for s, per in samplers.items()
                          if not _is_distiller(s) and s != "full" and budget in per}
                if not others:
                    continue
                seeds = sorted(mine)
                mean = float(np.mean([mine[s] for s in seeds]))
                # Each other sampler is compared on the seeds it shares with the distiller (paired).
                paired = {s: [(mine[k], v[k]) for k in seeds if k in v] for s, v in others.items()}
                paired = {s: p for s, p in paired.items() if p}
                if not paired:
                    continue
                gaps = {s: float(np.mean([a - b for a, b in p])) for s, p in paired.items()}
                best_name = max(paired, key=lambda s: np.mean([b for _, b in paired[s]]))
                best = float(np.mean([b for _, b in paired[best_name]]))
                closest = min(gaps, key=gaps.get)
                verdict = "yes" if gaps[closest] > 0 else f"no: {closest} {gaps[closest]:+.2f}"
                share = f" ({100 * mean / full_mean:.0f} %)" if full else ""  # full data may be infeasible
                lines.append(f"| {ds} | {model} | {budget} | {','.join(map(str, seeds))} | "
                             f"{f'{full_mean:.2f}' if full else '–'} | {distiller}: {mean:.2f}{share} | "
                             f"{best_name}: {best:.2f} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--fraction", type=float, default=0.1, help="largest budget as a fraction of users (0.1)")
    args = ap.parse_args()
    print(table(*load(args.folders), args.fraction))


if __name__ == "__main__":
    main()
