"""Check the memory planner's cost model (cfbench/memory.py) against measured peaks.

    .venv/bin/python benchmarks/memory_model.py [--data-dir /work/shared/data] [--out docs/performance.md]
                                                [--no-write] [--only iae|ease]

For ∞-AE and EASE on random sparse data (2,000 × 3,000 and 4,000 × 3,000, 2 % dense) and on ML-1M
(all 6,040 users, and 1,000 random users as the support), each in a **fresh subprocess** (XLA on CPU keeps
buffers, compiled programs and allocator arenas, so a second shape in one process would start from a
different baseline): the split and its evaluation tasks are built first (the harness caches them per
split), then one :class:`~cfbench.memory.PeakMemory` spans the model's part of a unit exactly as the harness
runs it — ``select_lambda``, the timed fit (repeated as the harness does while it is short), the test
evaluation — with one nested block per phase. The prediction is :func:`~cfbench.memory.plan_model`'s
footprint for the same sizes, the JAX/XLA runtime allowance included.

Writes (replaces) the "Memory planner" section of ``docs/performance.md`` between its markers; the rest of
the file is left as it is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sections import write_section  # noqa: E402

MiB = 1 << 20

#: (label, dataset or None for random data, users, items, support users or None for all)
SHAPES = [
    ("random 2,000 × 3,000", None, 2000, 3000, None),
    ("random 4,000 × 3,000", None, 4000, 3000, None),
    ("ML-1M, 1,000 random users", "ml-1m", 0, 0, 1000),
    ("ML-1M, all users", "ml-1m", 0, 0, None),
]
MODELS = {"iae": "infinite-ae", "ease": "ease"}


def _random_split(n_users: int, n_items: int, density: float = 0.02, seed: int = 0):
    import numpy as np
    import scipy.sparse as sp

    from cfbench.splits import Split, freeze

    rng = np.random.default_rng(seed)
    full = sp.random(n_users, n_items, density=density, format="csr", random_state=seed, dtype=np.float32)
    full.data[:] = 1.0
    part = rng.integers(0, 10, full.nnz)  # 80 / 10 / 10 % of each user's interactions, at random

    def keep(mask):
        m = full.copy()
        m.data = mask.astype(np.float32)
        m.eliminate_zeros()
        return m.tocsr()
    return freeze(Split("random", seed, keep(part < 8), keep(part == 8), keep(part == 9), np.arange(n_users),
                        np.arange(n_items)))


def child(model_key: str, index: int, data_dir: str | None) -> None:
    """Run one (model, shape) and print its sizes and measured peaks as one JSON line."""
    import jax
    import numpy as np

    from cfbench.evaluation import evaluate, evaluation_task, select_lambda
    from cfbench.memory import PeakMemory
    from cfbench.plugins import load_model
    from cfbench.timing import Stopwatch

    try:
        from cfbench.harness import FIT_REPEAT_BUDGET_S, FIT_REPEATS
    except ImportError:  # the harness is being rewritten: its documented defaults
        FIT_REPEATS, FIT_REPEAT_BUDGET_S = 3, 2.0

    label, dataset, n_users, n_items, support_users = SHAPES[index]
    if dataset is None:
        split = _random_split(n_users, n_items)
    else:
        from cfbench.datasets import load_dataset
        from cfbench.splits import freeze, reference_split

        split = freeze(reference_split(load_dataset(dataset, data_dir), 0))
    train = split.train
    if support_users is None:
        support = train
    else:
        rows = np.sort(np.random.default_rng([0, support_users]).choice(split.n_users, support_users, replace=False))
        support = train[rows]
    val, test = evaluation_task(split, "val"), evaluation_task(split, "test")
    model = load_model(MODELS[model_key])
    batch = 1024
    gc.collect()
    time.sleep(0.5)  # JAX frees device buffers asynchronously
    with PeakMemory() as unit:
        with PeakMemory() as tune:
            selection = select_lambda(model, support, split, batch_size=batch)
        lam = selection.lam
        del selection  # as the harness: the winner is not kept through the refit and the test
        with PeakMemory() as fit:
            runs = []
            fitted = None
            while len(runs) < FIT_REPEATS and (not runs or sum(runs) < FIT_REPEAT_BUDGET_S):
                with Stopwatch() as sw:
                    again = model.clone(lam=lam).fit(support)
                    jax.block_until_ready([v for k, v in vars(again).items() if k.endswith("_") and
                                           hasattr(v, "block_until_ready")])
                runs.append(sw.seconds)
                fitted = fitted or again
                del again
        with PeakMemory() as ev:
            evaluate(fitted, test, batch)
    start = unit.host_start_bytes
    print(json.dumps({
        "label": label, "model": model.name, "n_users": split.n_users, "n_items": split.n_items,
        "nnz": int(train.nnz), "n_support": int(support.shape[0]), "n_val": len(val.users),
        "n_test": len(test.users), "val_positives": int(split.val.nnz), "test_positives": int(split.test.nnz),
        "fit_runs": len(runs), "lambda": lam,
        "measured": {"unit": unit.host_delta_bytes, "λ search": tune.host_peak_bytes - start,
                     "fit": fit.host_peak_bytes - start, "test evaluation": ev.host_peak_bytes - start},
        "device_peak_bytes": unit.device_peak_bytes, "load_average": os.getloadavg()[0],
    }))


def predict(result: dict) -> tuple[int, dict[str, int], str, int]:
    """(predicted unit peak, predicted peak per harness phase, phase of the peak, runtime allowance)."""
    from cfbench.memory import UnitShape, plan_model
    from cfbench.plugins import load_model

    shape = UnitShape(result["n_users"], result["n_items"], result["nnz"], budget=result["n_support"],
                      n_support=result["n_support"], n_queries=max(result["n_val"], result["n_test"]),
                      batch_size=1024, eval_positives=max(result["val_positives"], result["test_positives"]))
    plan = plan_model(load_model(result["model"]), shape, limit=1 << 50, device="cpu")
    fp = plan.footprint
    groups = {"λ search": "λ search", "refit": "fit", "test evaluation": "test evaluation"}
    per_phase: dict[str, int] = {}
    for phase, total in fp.phases.items():
        key = next(v for k, v in groups.items() if phase.startswith(k))
        per_phase[key] = max(per_phase.get(key, 0), total)
    runtime = sum(v for k, v in fp.breakdown.items() if k == "JAX/XLA runtime" or k.startswith("compiled AUC"))
    return fp.peak_bytes, per_phase, fp.phase, runtime


def machine(results: list[dict]) -> list[str]:
    import jax
    import numpy as np

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    loads = [r["load_average"] for r in results if "load_average" in r]
    load = (f"- Load average during the runs: {min(loads):.1f}–{max(loads):.1f} (other jobs shared the cores; this "
            "changes times, not memory)") if loads else "- Load average: not recorded"
    return [(f"- Machine: {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, no GPU; JAX {jax.__version__} "
             f"({jax.default_backend()} backend), NumPy {np.__version__}, Python {platform.python_version()}"),
            load,
            f"- Date: {dt.date.today().isoformat()}"]


def mib(x: float) -> str:
    return f"{x / MiB:,.0f}"


def section(results: list[dict]) -> str:
    from cfbench.memory import GATHER_PROGRAM_BYTES, RUNTIME_OVERHEAD_BYTES

    lines = [
        "## Memory planner",
        "",
        ("`cfbench/memory.py` predicts the peak memory of a unit before it runs (`plan_unit`, `plan_model`) and "
         "measures it (`PeakMemory`). This table checks the prediction for one model's part of a unit — λ search, "
         "the timed fit (repeated as the harness does while it is short) and the test evaluation, batch 1024, "
         "float32 — against the measured peak RSS above the unit's start, each in a fresh process, with the "
         "split and its evaluation tasks built before (`benchmarks/memory_model.py`). Random data: 2 % dense, "
         "80/10/10 split per interaction; ML-1M: the seed-0 reference split."),
        "",
        *machine(results),
        "",
        ("| model | data | support users | predicted MiB (of which runtime) | measured MiB | predicted ÷ measured "
         "| predicted peak at | λ search pred / meas | fit pred / meas | test eval pred / meas |"),
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        peak, phases, at, runtime = predict(r)
        m = r["measured"]
        cells = [f"{mib(phases[k])} / {mib(m[k])}" for k in ("λ search", "fit", "test evaluation")]
        lines.append(f"| {r['model']} | {r['label']} | {r['n_support']:,} | {mib(peak)} ({mib(runtime)}) | "
                     f"{mib(m['unit'])} | {peak / m['unit']:.2f} | {at} | " + " | ".join(cells) + " |")
    lines += [
        "",
        ("Reading it: *predicted* is the footprint's peak phase, whose *runtime* part is the JAX/XLA allowance "
         f"(`RUNTIME_OVERHEAD_BYTES`, {RUNTIME_OVERHEAD_BYTES['cpu'] >> 20} MiB on CPU) plus "
         f"{GATHER_PROGRAM_BYTES >> 20} MiB per evaluated 256-user chunk whose AUC gather XLA compiles on first "
         "use (`GATHER_PROGRAM_BYTES`: the chunk's positives index the device score chunk, one program per "
         "length; ML-1M: 24 chunks per phase); the rest are the arrays the code keeps alive at that phase. "
         "*Measured* is `PeakMemory.host_delta_bytes` over the whole model part (RSS sampled every 5 ms, "
         "`ru_maxrss` as a floor). The per-phase columns give each phase's predicted peak and the measured peak "
         "RSS above the unit's start during that phase; later phases start from what earlier ones left resident "
         "(compiled programs and the allocator's arenas), which the runtime part covers. The prediction is meant "
         "as an upper bound. In a long-running process the programs of a split's evaluation are compiled by its "
         "first unit (`UnitShape(eval_compiled=True)` drops that term afterwards). The EASE rows with fewer support "
         "users than items use the dual solver (n × n and n × d matrices only)."),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("CFBENCH_DATA_DIR", "/work/shared/data"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--no-write", action="store_true", help="print the section, do not write it")
    parser.add_argument("--only", choices=sorted(MODELS), help="one model only")
    parser.add_argument("--save", metavar="JSON", help="also save the raw measurements to this file")
    parser.add_argument("--load", metavar="JSON", help="re-render saved measurements instead of measuring")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.data_dir)
        return 0
    results = json.loads(Path(args.load).read_text()) if args.load else []
    for key in [] if args.load else [args.only] if args.only else list(MODELS):
        for i, shape in enumerate(SHAPES):
            if shape[1] is not None and not (Path(args.data_dir) / "ml-1m").is_dir():
                print(f"skipping {shape[0]}: no {shape[1]} under {args.data_dir}", file=sys.stderr)
                continue
            start = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child", key, str(i), "--data-dir", args.data_dir],
                                 capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                                 check=False)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return 1
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(result)
            peak, _, at, _ = predict(result)
            print(f"{key} {shape[0]}: predicted {mib(peak)} MiB ({at}), measured {mib(result['measured']['unit'])} "
                  f"MiB, ratio {peak / result['measured']['unit']:.2f} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1))
    text = section(results)
    if args.no_write:
        print(text)
    else:
        write_section(Path(args.out), "memory_model.py", text)
        print(f"wrote the Memory planner section of {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
