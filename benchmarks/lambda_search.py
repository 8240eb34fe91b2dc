"""Wall time of one model's validation λ search on a random user subset, as the harness runs it (issue #10).

The split and its validation task are built first (the harness builds them once per seed), then
``select_lambda`` runs once over the model's whole λ grid; the line printed gives the seconds, the chosen
λ and every λ's validation score, so two versions of cfbench can be compared for time and for equality:

    PYTHONPATH=/path/to/old/checkout python benchmarks/lambda_search.py --dataset gowalla --model ease -b 100
    python benchmarks/lambda_search.py --dataset gowalla --model ease -b 100

Run one at a time on an otherwise idle machine; compile time is included (one λ search per process).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from cfbench.datasets import load_dataset
from cfbench.evaluation import evaluation_task, select_lambda
from cfbench.plugins import load_model
from cfbench.splits import reference_split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--model", default="ease", help="a model spec, e.g. ease or infinite-ae")
    parser.add_argument("-b", "--budget", type=int, default=100, help="random support users (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    split = reference_split(load_dataset(args.dataset), args.seed)
    evaluation_task(split, "val")
    users = np.arange(split.n_users) if args.budget <= 0 else np.sort(
        np.random.default_rng(args.seed).choice(split.n_users, args.budget, replace=False))
    model = load_model(args.model)
    start = time.perf_counter()
    chosen = select_lambda(model, split.train[users], split)
    seconds = time.perf_counter() - start
    print(json.dumps({"dataset": args.dataset, "model": args.model, "budget": len(users), "seconds": round(seconds, 1),
                      "lam": chosen.lam, "scores": {repr(k): v for k, v in chosen.scores.items()}}))


if __name__ == "__main__":
    main()
