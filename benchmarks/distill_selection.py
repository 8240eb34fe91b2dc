"""How well does each selection signal inside Distill-CF pick the sample that tests best? (issue #13)

Distill-CF keeps, over its τ candidates and its validation points (every ``eval_every`` steps), the
synthetic sample with the best validation HR@100 of ∞-AE. On sparse data few users have validation
items and that choice is noise. This study re-runs the distillation of one sampler exactly as the harness
does (same split, same rng per (seed, budget)), keeps every validation point's sample, and scores each
with signals computed **without test data**, and — for the study only — with test NDCG@10 of ∞-AE at the
λ the signal's own validation chose. A selection rule is then judged by the test NDCG@10 of the sample it
picks, against the best sample in hindsight (the oracle) and the rule in use today.

Signals per validation point (every one a mean over users, ×100):

* ``val_hr100``: validation HR@100 (today's signal);
* ``val_ndcg100`` and ``val_auc``: other metrics of the same validation users;
* ``holdout_hr100``: HR@100 of one train item per user held out of that user's query (users with ≥ 2
  train items; the distillation saw these items as targets, so the signal is in-sample);

Usage::

    python benchmarks/distill_selection.py --dataset thin:ml-100k,per_user=3-6 --budgets 10,20,50 \\
        --seeds 0,1,2 --sampler distill-cf -o selection.json

Then ``--analyse selection.json`` prints the table of rules. It reads data only from the data directory
(``CFBENCH_DATA_DIR``), never the network.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from cfbench import metrics
from cfbench.datasets import load_dataset
from cfbench.evaluation import EvaluationTask, evaluate, evaluation_task, select_lambda
from cfbench.models.infinite_ae import InfiniteAE
from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.splits import freeze, reference_split


def holdout_task(split, seed: int) -> EvaluationTask:
    """One random train item of every user with ≥ 2 train items, held out of that user's query."""
    train = split.train.tocsr()
    rng = np.random.default_rng([seed, 0x5E1])
    counts = np.diff(train.indptr)
    users = np.flatnonzero(counts >= 2)
    held = np.array([train.indices[train.indptr[u] + rng.integers(counts[u])] for u in users], dtype=np.int64)
    n_users, n_items = train.shape
    targets = sp.csr_matrix((np.ones(len(users), np.float32), (users, held)), shape=train.shape)
    inputs = (train - targets.multiply(train)).tocsr()
    inputs.eliminate_zeros()
    base = evaluation_task(split, "val")
    weights = base.weights
    pos = [weights[[h]] for h in held]
    return EvaluationTask(phase="holdout", inputs=inputs, targets=targets, exclude=inputs, users=users,
                          negatives=np.full((len(users), 1), -1, dtype=np.int64), weights=weights,
                          psp_normalisers={k: metrics.psp_normaliser(pos, k) for k in (10, 100)})


def study(dataset: str, budgets: list[int], seeds: list[int], sampler_spec: str) -> list[dict]:
    data = load_dataset(dataset)
    records = []
    for seed in seeds:
        split = freeze(reference_split(data, seed, None))
        val_task, test_task = evaluation_task(split, "val"), evaluation_task(split, "test")
        hold = holdout_task(split, seed)
        for budget in budgets:
            sampler = load_sampler(sampler_spec)
            points: list[tuple[float, int, np.ndarray]] = []
            run_class = sampler.Run

            class Recording(run_class):  # type: ignore[misc, valid-type]
                def _evaluate(self, i, value, parts):
                    before = len(self.trace)
                    super()._evaluate(i, value, parts)
                    if len(self.trace) > before:
                        points.append((self.tau, i, self._last_xs))

                def sample(self, logits, key):
                    self._last_xs = np.asarray(super().sample(logits, key))
                    return self._last_xs

            sampler.Run = Recording
            start = time.perf_counter()
            rng = np.random.default_rng([seed, budget])
            subset = sampler.select(SelectionData(split), budget, rng)
            chosen = sampler.diagnostics()
            took = time.perf_counter() - start
            rec = {"dataset": dataset, "seed": seed, "budget": budget, "sampler": sampler_spec,
                   "n_val_users": int(len(val_task.users)), "n_holdout_users": int(len(hold.users)),
                   "chosen": {"tau": chosen["tau"], "step": chosen["best_step"]}, "distill_s": took, "points": []}
            del subset
            for tau, step, xs in points:
                sel = select_lambda(InfiniteAE(), xs, split)
                val = sel.validation
                model = sel.model
                test = evaluate(model, test_task).summary()
                ho = evaluate(model, hold)
                rec["points"].append({
                    "tau": tau, "step": step, "lam": sel.lam,
                    "val_hr100": val.summary()["hr@100"], "val_ndcg100": val.summary()["ndcg@100"],
                    "val_hr10": val.summary()["hr@10"], "val_auc": 100 * val.summary()["auc"],
                    "val_per_user_hr100": val.per_user["hr@100"].tolist(),
                    "holdout_hr100": ho.summary()["hr@100"],
                    "holdout_per_user_hr100": ho.per_user["hr@100"].tolist(),
                    "test_ndcg10": test["ndcg@10"], "test_hr100": test["hr@100"]})
            print(f"{dataset} s{seed} b{budget}: {len(points)} points, distill {took:.0f} s, chosen τ={chosen['tau']:g} "
                  f"step {chosen['best_step']}", file=sys.stderr, flush=True)
            records.append(rec)
    return records


def _smoothed(points: list[dict], key: str) -> list[float]:
    """Each point's ``key`` averaged with its neighbours of the same τ (a 3-point moving average)."""
    out = []
    for i, p in enumerate(points):
        same = [q[key] for q in points[max(0, i - 1):i + 2] if q["tau"] == p["tau"]]
        out.append(float(np.mean(same)))
    return out


def _pooled(points: list[dict]) -> list[float]:
    """Mean HR@100 over validation items' users and held-out train items' users, each user once per signal."""
    return [float(np.mean(np.concatenate([p["val_per_user_hr100"], p["holdout_per_user_hr100"]])) * 100)
            for p in points]


def _per_user(p: dict, pooled: bool) -> np.ndarray:
    v = np.asarray(p["val_per_user_hr100"])
    return np.concatenate([v, p["holdout_per_user_hr100"]]) if pooled else v


def _prior_unless_significant(points: list[dict], prior: float, pooled: bool, alpha: float = 0.05) -> list[float]:
    """Each τ's best point by the (pooled) signal; the ``prior`` τ's unless another τ's best is better in a
    paired t-test over users at level ``alpha``. Returned as a one-hot score over the points."""
    from scipy.stats import ttest_rel

    signal = _pooled(points) if pooled else [p["val_hr100"] for p in points]
    best: dict[float, int] = {}
    for i, p in enumerate(points):
        if p["tau"] not in best or signal[i] > signal[best[p["tau"]]]:
            best[p["tau"]] = i
    pick = best.get(prior, max(best.values(), key=lambda i: signal[i]))
    for tau, i in best.items():
        if i == pick:
            continue
        a, b = _per_user(points[i], pooled), _per_user(points[pick], pooled)
        if a.mean() > b.mean() and np.any(a != b) and ttest_rel(a, b, alternative="greater").pvalue < alpha:
            pick = i
    return [1.0 if i == pick else 0.0 for i in range(len(points))]


RULES = {
    "val HR@100 (today)": lambda pts: [p["val_hr100"] for p in pts],
    "val HR@100, 3-point average": lambda pts: _smoothed(pts, "val_hr100"),
    "val NDCG@100": lambda pts: [p["val_ndcg100"] for p in pts],
    "val AUC": lambda pts: [p["val_auc"] for p in pts],
    "held-out train item HR@100": lambda pts: [p["holdout_hr100"] for p in pts],
    "val + held-out HR@100, pooled": _pooled,
    "τ=5 unless τ=1 significantly better (val)": lambda pts: _prior_unless_significant(pts, 5.0, False),
    "τ=5 unless τ=1 significantly better (pooled)": lambda pts: _prior_unless_significant(pts, 5.0, True),
    "τ=1 unless τ=5 significantly better (pooled)": lambda pts: _prior_unless_significant(pts, 1.0, True),
}


def analyse(records: list[dict], truth: str = "test_ndcg10") -> str:
    """A markdown table: per rule, the test metric ``truth`` of the point it picks, mean over records and as % of
    the oracle (the best point in hindsight)."""
    lines = ["| dataset | budget | seeds | val users | oracle | " + " | ".join(RULES) + " |",
             "|---|---|---|---|---|" + "---|" * len(RULES)]
    groups: dict[tuple[str, int], list[dict]] = {}
    for rec in records:
        groups.setdefault((rec["dataset"], rec["budget"]), []).append(rec)
    totals = {name: [] for name in RULES}
    for (dataset, budget), recs in groups.items():
        oracle = [max(p[truth] for p in r["points"]) for r in recs]
        cells = []
        for name, rule in RULES.items():
            picked = [r["points"][int(np.argmax(rule(r["points"])))][truth] for r in recs]
            totals[name] += [a / b for a, b in zip(picked, oracle, strict=True)]
            cells.append(f"{np.mean(picked):.2f}")
        lines.append(f"| {dataset} | {budget} | {len(recs)} | {np.mean([r['n_val_users'] for r in recs]):.0f} | "
                     f"{np.mean(oracle):.2f} | " + " | ".join(cells) + " |")
    lines.append("| all | | | | 100 % | " + " | ".join(f"{100 * np.mean(v):.1f} %" for v in totals.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset")
    ap.add_argument("--budgets", default="10,20,50")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--sampler", default="distill-cf")
    ap.add_argument("-o", "--output", type=Path)
    ap.add_argument("--analyse", type=Path, help="print the table of selection rules for this study file")
    ap.add_argument("--truth", default="test_ndcg10", choices=["test_ndcg10", "test_hr100"],
                    help="the test metric a rule is judged by (default test_ndcg10)")
    args = ap.parse_args()
    if args.analyse:
        print(analyse(json.loads(args.analyse.read_text()), args.truth))
        return
    recs = study(args.dataset, [int(b) for b in args.budgets.split(",")], [int(s) for s in args.seeds.split(",")],
                 args.sampler)
    out = args.output
    existing = json.loads(out.read_text()) if out.exists() else []
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(existing + recs))
    tmp.replace(out)


if __name__ == "__main__":
    main()
