"""Leaderboards regenerated from result rows alone: Markdown tables and PNG plots.

For every dataset × model:

* one wide table per metric — samplers as rows, budgets (users) as columns, mean ± std
  over seeds, and the full-data level;
* a summary table per (sampler, budget) with the subset's size, NDCG@10 and HR@10 as a
  % of full data, fit time and the training speed-up (full-data fit time ÷ subset fit
  time, and ÷ (subset fit + selection time));
* plots of NDCG@10 and HR@10 vs budget (log x) with the full-data level drawn, and of
  quality vs speed-up.

The same rows always give byte-identical tables (fixed ordering and number formats).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from tabulate import tabulate  # noqa: E402

from cfbench.results import EXPORT_COLUMNS, load_rows, rows_frame  # noqa: E402

__all__ = ["export", "write_leaderboards"]

TABLE_METRICS = ("ndcg@10", "hr@10", "psp@10", "ndcg@100", "hr@100", "psp@100", "auc")
PLOT_METRICS = ("ndcg@10", "hr@10")
FULL = "full"


def _fmt(mean: float, std: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{mean:.{digits}f}"


def _num(value: float, spec: str, suffix: str = "") -> str:
    return "–" if value is None or math.isnan(value) else f"{value:{spec}}{suffix}"


def _agg(df: pd.DataFrame, column: str) -> pd.DataFrame:
    g = df.groupby(["sampler", "budget"], sort=True)[column]
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0).where(g.size() > 1), "n": g.size()})


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _sampler_order(df: pd.DataFrame) -> list[str]:
    names = sorted(set(df["sampler"]) - {FULL})
    return ([FULL] if FULL in set(df["sampler"]) else []) + names


def _full_level(df: pd.DataFrame, column: str) -> float:
    full = df[df["sampler"] == FULL][column]
    return float(full.mean()) if len(full) else float("nan")


def metric_table(df: pd.DataFrame, metric: str) -> str:
    """Samplers × budgets, mean ± std over seeds (AUC with 4 digits)."""
    digits = 4 if metric == "auc" else 2
    stats = _agg(df[df["sampler"] != FULL], metric)
    budgets = sorted(set(df.loc[df["sampler"] != FULL, "budget"]))
    full = df[df["sampler"] == FULL]
    headers = ["sampler"] + [str(b) for b in budgets] + ["full data"]
    full_std = full[metric].std(ddof=0) if len(full) > 1 else float("nan")  # no ± for a single seed
    full_cell = _fmt(full[metric].mean(), full_std, digits) if len(full) else "–"
    body = []
    for sampler in _sampler_order(df):
        if sampler == FULL:
            continue
        cells = []
        for b in budgets:
            cells.append(_fmt(stats.loc[(sampler, b), "mean"], stats.loc[(sampler, b), "std"], digits)
                         if (sampler, b) in stats.index else "")
        body.append([sampler] + cells + [full_cell])
    if not body and len(full):
        body.append([FULL] + [""] * len(budgets) + [full_cell])
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per (sampler, budget): size, quality as % of full data, fit time and speed-ups (means over seeds)."""
    cols = ["n_users", "n_interactions", "fraction_train_interactions", "ndcg@10", "hr@10", "fit_s", "select_s"]
    g = df.groupby(["sampler", "budget"], sort=True)
    out = g[cols].mean()
    out["seeds"] = g.size()
    out["ndcg@10_std"] = g["ndcg@10"].std(ddof=0).where(out["seeds"] > 1)  # no ± for a single seed
    full_fit = _full_level(df, "fit_s")
    for metric in ("ndcg@10", "hr@10"):
        out[f"{metric}_pct_full"] = 100.0 * out[metric] / _full_level(df, metric)
    out["speedup"] = full_fit / out["fit_s"]
    out["speedup_with_selection"] = full_fit / (out["fit_s"] + out["select_s"])
    return out.reset_index()


def summary_table(df: pd.DataFrame) -> str:
    s = summary_frame(df)
    order = {name: i for i, name in enumerate(_sampler_order(df))}
    s = s.assign(_o=s["sampler"].map(order)).sort_values(["_o", "budget"])
    headers = ["sampler", "budget", "users", "interactions", "% train", "NDCG@10", "% of full", "HR@10",
               "% of full", "fit s", "select s", "speed-up", "speed-up incl. selection", "seeds"]
    body = [[r["sampler"], r["budget"], f"{r['n_users']:.0f}", f"{r['n_interactions']:.0f}",
             f"{100 * r['fraction_train_interactions']:.2f}", _fmt(r["ndcg@10"], r["ndcg@10_std"]),
             _num(r["ndcg@10_pct_full"], ".1f"), f"{r['hr@10']:.2f}", _num(r["hr@10_pct_full"], ".1f"),
             f"{r['fit_s']:.3f}", f"{r['select_s']:.3f}", _num(r["speedup"], ".1f", "×"),
             _num(r["speedup_with_selection"], ".1f", "×"), r["seeds"]]
            for r in s.to_dict("records")]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def _cell(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def selection_table(rows: list[dict[str, Any]]) -> str | None:
    """What self-tuning samplers chose (their scalar ``diagnostics``), one line per (sampler, budget, seed)."""
    picked = sorted((r for r in rows if r.get("selection")), key=lambda r: (r["sampler_spec"], r["budget"], r["seed"]))
    if not picked:
        return None
    keys: list[str] = []
    for r in picked:
        keys += [k for k, v in r["selection"].items()
                 if k not in keys and (v is None or isinstance(v, (bool, int, float, str)))]
    headers = ["sampler", "budget", "seed", *keys, "select s"]
    body = [[r["sampler_spec"], r["budget"], r["seed"], *(_cell(r["selection"].get(k, "")) for k in keys),
             f"{r['timings']['select_s']:.1f}"] for r in picked]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def _styles(df: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """A distinct colour and marker per sampler, stable for a given set of samplers."""
    names = [n for n in _sampler_order(df) if n != FULL]
    colours = plt.get_cmap("tab20" if len(names) > 10 else "tab10")
    markers = "osD^v<>pPX*h"
    return {n: {"color": colours(i % colours.N), "marker": markers[i % len(markers)]} for i, n in enumerate(names)}


def _finish(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str, path: Path) -> None:
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def _plot_metric(df: pd.DataFrame, metric: str, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for sampler, style in _styles(df).items():
        st = _agg(df[df["sampler"] == sampler], metric).reset_index()
        ax.errorbar(st["budget"], st["mean"], yerr=st["std"], ms=4, capsize=2, label=sampler, **style)
    level = _full_level(df, metric)
    if not math.isnan(level):
        ax.axhline(level, color="black", ls="--", lw=1, label="full data")
    _finish(fig, ax, "budget (users; interaction samplers: the same fraction of interactions)", metric.upper(),
            title, path)


def _plot_speedup(df: pd.DataFrame, title: str, path: Path) -> bool:
    """Quality vs speed-up; needs full-data rows (returns False, writing nothing, without them)."""
    s = summary_frame(df)
    if not (s["speedup"] > 0).any():
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for sampler, style in _styles(df).items():
        part = s[s["sampler"] == sampler]
        ax.plot(part["speedup"], part["ndcg@10"], ms=4, label=sampler, **style)
    full = s[s["sampler"] == FULL]
    ax.scatter(full["speedup"], full["ndcg@10"], color="black", marker="*", s=80, label="full data", zorder=3)
    _finish(fig, ax, "training speed-up vs full data (fit time, ×)", "NDCG@10", title, path)
    return True


def _environment_line(df: pd.DataFrame) -> str:
    devices = ", ".join(sorted(set(df["device"])))
    return f"device(s): {devices}"


def write_leaderboards(results_dir: str | Path, out_dir: str | Path, plots: bool = True) -> list[Path]:
    """Regenerate every table and plot under ``out_dir`` from the rows in ``results_dir``."""
    rows = load_rows(results_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not rows:
        raise ValueError(f"no result rows in {results_dir}; run `cfbench run --results-dir {results_dir}` first")
    df = rows_frame(rows)
    written: list[Path] = []
    index = ["# cfbench leaderboards", "", "Generated by `cfbench report` from the result rows; do not edit.", ""]
    for (dataset, model), part in df.groupby(["dataset", "model"], sort=True):
        folder = out / _slug(dataset)
        folder.mkdir(parents=True, exist_ok=True)
        stem = _slug(model)
        lines = [f"# {dataset} — {model}", "",
                 f"{len(part)} rows; seeds {', '.join(str(s) for s in sorted(set(part['seed'])))}; "
                 f"{_environment_line(part)}. Test metrics ×100 (AUC in [0, 1]), mean ± std over seeds "
                 "(no ± where there is one seed).", "",
                 "## Summary", ""]
        if not (part["sampler"] == FULL).any():
            lines += ["No full-data rows: add the `full` sampler to get % of full data and speed-ups.", ""]
        lines += [summary_table(part), ""]
        for metric in TABLE_METRICS:
            lines += [f"## {metric.upper()}", "", metric_table(part, metric), ""]
        chosen = selection_table([r for r in rows if r["dataset"] == dataset and r["model_spec"] == model])
        if chosen is not None:
            lines += ["## What self-tuning samplers chose", "",
                      "From each row's `selection` (e.g. Distill-CF's τ, best step and validation HR@100, "
                      "seconds per step and compile time).", "", chosen, ""]
        if plots:
            images = []
            for metric in PLOT_METRICS:
                png = folder / f"{stem}_{_slug(metric)}.png"
                _plot_metric(part, metric, f"{dataset} — {model}: {metric.upper()} vs budget", png)
                images.append(png)
            png = folder / f"{stem}_speedup.png"
            if _plot_speedup(part, f"{dataset} — {model}: quality vs training speed-up", png):
                images.append(png)
            lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in images] + [""]
            written += images
        md = folder / f"{stem}.md"
        md.write_text("\n".join(lines))
        written.append(md)
        index.append(f"- [{dataset} — {model}]({_slug(dataset)}/{stem}.md)")
    index_path = out / "README.md"
    index_path.write_text("\n".join(index) + "\n")
    written.append(index_path)
    return written


def export(results_dir: str | Path, fmt: str = "csv") -> str:
    """All rows as CSV (one line per row, the documented columns first) or JSON lines."""
    rows = load_rows(results_dir)
    df = rows_frame(rows)
    if df.empty:
        df = pd.DataFrame(columns=EXPORT_COLUMNS)
    rest = [c for c in df.columns if c not in EXPORT_COLUMNS]
    df = df[EXPORT_COLUMNS + rest].sort_values(["dataset", "sampler", "budget", "model", "seed"], kind="stable")
    if fmt == "csv":
        return df.to_csv(index=False, float_format="%.6g")
    if fmt == "jsonl":
        return df.to_json(orient="records", lines=True)
    raise ValueError(f"unknown export format {fmt!r}: use csv or jsonl")
