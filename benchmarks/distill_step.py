"""Seconds per Distill-CF step: faithful ``distill-cf`` against ``distill-cf-fast``, in one process.

    .venv/bin/python benchmarks/distill_step.py [--data-dir ../shared/data] [--dataset ml-1m]
                                                [--budgets 50,500] [--steps 8] [--taus 1,5]

Not a test. For every budget and τ it builds one optimisation of each sampler exactly as the
sampler's ``select`` does (same initial users, targets, Adam state, jitted step; no validation),
takes one step to compile, then ``--steps`` timed steps, the two samplers interleaved step by step
so that a change in the machine's load hits both. A step's time is the wall time of
``Distillation.run`` for that step: the jitted value and gradient, Adam, and (for mini-batches) drawing
the batch and building its dense targets on the host, results waited for with ``block_until_ready``.
Prints a Markdown table (median and min–max of the timed steps) and the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cfbench.datasets import load_dataset  # noqa: E402
from cfbench.sampling import SelectionData  # noqa: E402
from cfbench.splits import reference_split  # noqa: E402
from samplers.distill_cf import Distillation, DistillCFConfig, _target_blocks  # noqa: E402
from samplers.distill_cf_fast import DistillCFFastConfig, FastDistillation  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--budgets", default="50,500")
    parser.add_argument("--taus", default="1,5")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)

    split = reference_split(load_dataset(args.dataset, data_dir=args.data_dir), seed=0)
    data = SelectionData(split)
    faithful_cfg, fast_cfg = DistillCFConfig(steps=1000), DistillCFFastConfig(steps=1000)
    full = _target_blocks(data.train, faithful_cfg.block_users)
    print(f"{args.dataset}: {data.n_users} users × {data.n_items} items; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, JAX {jax.__version__} {jax.default_backend()}; load {os.getloadavg()[0]:.1f}",
          file=sys.stderr)
    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        init = np.sort(np.random.default_rng(0).choice(data.n_users, size=budget, replace=False))
        for tau in (float(t) for t in args.taus.split(",")):
            runs = {"distill-cf": Distillation(data, faithful_cfg, tau, 1e-3, init, 0, (1.0, 0.0), full),
                    "distill-cf-fast": FastDistillation(data, fast_cfg, tau, 1e-3, init, 0, (1.0, 0.0))}
            for step in range(1, args.steps + 2):
                for run in runs.values():
                    run.run(step)
            times = {name: run.step_seconds for name, run in runs.items()}
            med = {name: statistics.median(t) for name, t in times.items()}
            rows.append((budget, tau, med, times))
            print(f"b={budget} τ={tau:g}: " + ", ".join(f"{n} {m * 1e3:.0f} ms" for n, m in med.items()),
                  file=sys.stderr)
    print(f"\n| b | τ | distill-cf ms/step (min–max) | distill-cf-fast ms/step (min–max) | speed-up |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for budget, tau, med, times in rows:
        a, b = med["distill-cf"], med["distill-cf-fast"]
        ta, tb = times["distill-cf"], times["distill-cf-fast"]
        print(f"| {budget} | {tau:g} | {a * 1e3:.0f} ({min(ta) * 1e3:.0f}–{max(ta) * 1e3:.0f}) | "
              f"{b * 1e3:.0f} ({min(tb) * 1e3:.0f}–{max(tb) * 1e3:.0f}) | {a / b:.1f}× |")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
