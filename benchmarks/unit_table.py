"""Wall time and peak memory of every unit of a results folder, from its rows (issue #11).

One line per row: sampler, budget, model, status, selection seconds, λ search seconds, the timed fit
(median of its runs), test evaluation seconds, measured peak host memory over the phases and the
planner's prediction; an infeasible row gives the planner's reason instead, a failed row its error.

    python benchmarks/unit_table.py /work/bigruns/results/gowalla
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cfbench.results import iter_rows


def _gib(value: float | None) -> str:
    return "–" if value is None else f"{value / 2**30:.1f}"


def lines(folder: Path) -> list[str]:
    out = ["| sampler | budget | model | status | select s | λ search s | fit s | test eval s | peak host GiB | "
           "predicted GiB | note |", "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    rows = [r for _, r in iter_rows(folder) if r is not None]
    rows.sort(key=lambda r: (r["sampler_spec"], int(r["budget"]), r["model_spec"]))
    for r in rows:
        t, mem = r.get("timings") or {}, r.get("memory") or {}
        plan = mem.get("plan") or {}
        predicted = plan.get("predicted_peak_bytes") or (plan.get("model") or {}).get("predicted_peak_bytes")
        measured = [v.get("host_peak_bytes") for v in (mem.get("measured") or {}).values() if v.get("host_peak_bytes")]
        note = ""
        if r["status"] != "ok":
            note = (r.get("error") or {}).get("message", "")[:160]

        def s(key: str) -> str:
            return f"{t[key]:.1f}" if isinstance(t.get(key), (int, float)) else "–"

        out.append(f"| {r['sampler_spec']} | {r['budget']} | {r['model_spec']} | {r['status']} | {s('select_s')} | "
                   f"{s('tune_s')} | {s('fit_s')} | {s('eval_s')} | {_gib(max(measured) if measured else None)} | "
                   f"{_gib(predicted)} | {note} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="one dataset's folder of rows, e.g. results/ml-1m")
    print("\n".join(lines(ap.parse_args().folder)))


if __name__ == "__main__":
    main()
