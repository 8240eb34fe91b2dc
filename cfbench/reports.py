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

Rows are read with :func:`cfbench.results.scan_rows`: files that are not valid rows are skipped
and listed (on stderr and in the index), duplicates of one computation are counted once, and
failed units are listed in a "Failed units" section, never silently dropped. Every file is
written atomically (:mod:`cfbench.files`): a reader, or a report killed halfway or stopped by a
full disk, leaves each file either complete-old or complete-new. Such a failure raises the
``OSError`` (for :func:`cfbench.files.describe_os_error`).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from tabulate import tabulate  # noqa: E402

from cfbench import files  # noqa: E402
from cfbench.results import (EXPORT_COLUMNS, RowScan, failure_summary, parse_created, rows_frame,  # noqa: E402
                             scan_rows)

__all__ = ["export", "write_leaderboards"]

TABLE_METRICS = ("ndcg@10", "hr@10", "psp@10", "ndcg@100", "hr@100", "psp@100", "auc")
PLOT_METRICS = ("ndcg@10", "hr@10")
FULL = "full"


def _fmt(mean: float, std: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{mean:.{digits}f}"


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:{spec}}{suffix}"


def _agg(df: pd.DataFrame, column: str) -> pd.DataFrame:
    g = df.groupby(["sampler", "budget"], sort=True)[column]
    n = g.count()  # seeds with a value (a null metric is not available, not a zero)
    return pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0).where(n > 1), "n": n})


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
    full_std = full[metric].std(ddof=0) if full[metric].count() > 1 else float("nan")  # no ± for a single seed
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
    # The cost of one selection from scratch: select_s plus work a sampler reused from an earlier
    # budget (e.g. SVP-CF's cached proxy); rows without it cost what they measured.
    cost = df["select_cost_s"] if "select_cost_s" in df else pd.Series(math.nan, index=df.index)
    df = df.assign(select_s=cost.fillna(df["select_s"]))
    g = df.groupby(["sampler", "budget"], sort=True)
    out = g[cols].mean()
    out["seeds"] = g.size()
    out["ndcg@10_std"] = g["ndcg@10"].std(ddof=0).where(g["ndcg@10"].count() > 1)  # no ± for a single seed
    full_fit = _full_level(df, "fit_s")
    for metric in ("ndcg@10", "hr@10"):
        out[f"{metric}_pct_full"] = 100.0 * out[metric] / _full_level(df, metric)
    out["speedup"] = full_fit / out["fit_s"]
    out["speedup_with_selection"] = full_fit / (out["fit_s"] + out["select_s"])
    out = out.replace([math.inf, -math.inf], math.nan)  # a zero fit time gives no meaningful speed-up
    return out.reset_index()


def summary_table(df: pd.DataFrame) -> str:
    s = summary_frame(df)
    order = {name: i for i, name in enumerate(_sampler_order(df))}
    s = s.assign(_o=s["sampler"].map(order)).sort_values(["_o", "budget"])
    headers = ["sampler", "budget", "users", "interactions", "% train", "NDCG@10", "% of full", "HR@10",
               "% of full", "fit s", "select s", "speed-up", "speed-up incl. selection", "seeds"]
    body = [[r["sampler"], r["budget"], f"{r['n_users']:.0f}", f"{r['n_interactions']:.0f}",
             f"{100 * r['fraction_train_interactions']:.2f}", _fmt(r["ndcg@10"], r["ndcg@10_std"]),
             _num(r["ndcg@10_pct_full"], ".1f"), _num(r["hr@10"], ".2f"), _num(r["hr@10_pct_full"], ".1f"),
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
    picked = sorted((r for r in rows if isinstance(r.get("selection"), dict) and r["selection"]),
                    key=lambda r: (r["sampler_spec"], r["budget"], r["seed"]))
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


def _finish(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str) -> bytes:
    """The figure as PNG bytes (no software tag, so the same data give the same bytes)."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _plot_metric(df: pd.DataFrame, metric: str, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    try:
        for sampler, style in _styles(df).items():
            st = _agg(df[df["sampler"] == sampler], metric).reset_index()
            ax.errorbar(st["budget"], st["mean"], yerr=st["std"], ms=4, capsize=2, label=sampler, **style)
        level = _full_level(df, metric)
        if not math.isnan(level):
            ax.axhline(level, color="black", ls="--", lw=1, label="full data")
        return _finish(fig, ax, "budget (users; interaction samplers: the same fraction of interactions)",
                       metric.upper(), title)
    finally:
        plt.close(fig)


def _plot_speedup(df: pd.DataFrame, title: str) -> bytes | None:
    """Quality vs speed-up; needs full-data rows (``None`` without them)."""
    s = summary_frame(df)
    if not (s["speedup"] > 0).any():
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    try:
        for sampler, style in _styles(df).items():
            part = s[s["sampler"] == sampler]
            ax.plot(part["speedup"], part["ndcg@10"], ms=4, label=sampler, **style)
        full = s[s["sampler"] == FULL]
        ax.scatter(full["speedup"], full["ndcg@10"], color="black", marker="*", s=80, label="full data", zorder=3)
        return _finish(fig, ax, "training speed-up vs full data (fit time, ×)", "NDCG@10", title)
    finally:
        plt.close(fig)


def _environment_line(df: pd.DataFrame) -> str:
    devices = ", ".join(sorted(set(df["device"])))
    return f"device(s): {devices}"


def _md(text: Any) -> str:
    """A table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _created_range(rows: list[dict[str, Any]]) -> str | None:
    """``rows created 2026-11-24 – 2026-11-30`` (UTC dates), or ``None`` if no row says when."""
    whens = [w for r in rows if (w := parse_created(r.get("created"))) is not None]
    if not whens:
        return None
    lo, hi = (min(whens).astimezone(dt.timezone.utc).date(), max(whens).astimezone(dt.timezone.utc).date())
    return f"rows created {lo}" if lo == hi else f"rows created {lo} – {hi}"


def _dataset_hash(row: dict[str, Any]) -> str | None:
    identity = row.get("identity")
    data = identity.get("dataset") if isinstance(identity, dict) else None
    value = data.get("hash") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def _mixed_data_line(rows: list[dict[str, Any]], dataset: str) -> str | None:
    """One line if (schema 2) rows of one dataset name come from different dataset contents."""
    counts: dict[str, int] = {}
    for row in rows:
        if (h := _dataset_hash(row)) is not None:
            counts[h] = counts.get(h, 0) + 1
    if len(counts) < 2:
        return None
    ordered = sorted(counts.items(), key=lambda hn: (-hn[1], hn[0]))
    parts = ", ".join(f"`{h[:12]}` ({n} row{'s' * (n != 1)})" for h, n in ordered)
    return (f"**Warning: mixed data.** These rows come from {len(counts)} different contents of the `{_md(dataset)}` "
            f"data file (hashes {parts}); their numbers are not comparable: re-run the rows of the old data or move "
            "them out of the results folder.")


def failed_table(failed: list[tuple[Path, dict[str, Any]]], with_group: bool = False) -> str:
    """Failed units, one line each: (dataset, model,) sampler, budget, seed, model, error kind, phase, message."""
    ordered = sorted((r for _, r in failed), key=lambda r: (r["dataset"], r["model_spec"], r["sampler_spec"],
                                                             r["budget"], r["seed"]))
    headers = (["dataset"] if with_group else []) + ["sampler", "budget", "seed", "model", "error", "phase",
                                                      "message"]
    body = []
    for r in ordered:
        err = r["error"]
        message = failure_summary(r).split(": ", 1)[1] if ": " in failure_summary(r) else ""
        body.append(([_md(r["dataset"])] if with_group else []) + [
            _md(r["sampler_spec"]), str(r["budget"]), str(r["seed"]), _md(r["model_spec"]), _md(err["kind"]),
            _md(err["phase"]), _md(message)])
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def _relative(scan: RowScan, path: Path) -> str:
    try:
        shown = str(path.relative_to(scan.root))
    except ValueError:
        shown = str(path)
    shown = shown if shown.isprintable() else ascii(shown)
    return "`" + shown.replace("`", "'") + "`"


def _not_counted_section(scan: RowScan, boards: set[tuple[str, str]], limit: int = 50) -> list[str]:
    """The index's account of every file that is not in the tables (empty if there is none)."""
    if not (scan.invalid or scan.duplicates or scan.failed):
        return []
    lines = ["", "## Files not in the tables", ""]
    if scan.invalid:
        lines.append(f"- {len(scan.invalid)} invalid file{'s' * (len(scan.invalid) != 1)} skipped:")
        lines += [f"  - {_relative(scan, p)}: {_md(reason)}" for p, reason in scan.invalid[:limit]]
        if len(scan.invalid) > limit:
            lines.append(f"  - … and {len(scan.invalid) - limit} more (`cfbench report` lists them all on stderr)")
    if scan.duplicates:
        lines.append(f"- {len(scan.duplicates)} duplicate file{'s' * (len(scan.duplicates) != 1)} (same identity as "
                     "another row) counted once:")
        lines += [f"  - {_relative(scan, p)} duplicates {_relative(scan, kept)}" for p, kept in scan.duplicates[:limit]]
        if len(scan.duplicates) > limit:
            lines.append(f"  - … and {len(scan.duplicates) - limit} more")
    if scan.failed:
        lines.append(f"- {len(scan.failed)} failed unit{'s' * (len(scan.failed) != 1)}, listed in the \"Failed units\" "
                     "section of each leaderboard")
        orphans = [(p, r) for p, r in scan.failed if (r["dataset"], r["model_spec"]) not in boards]
        if orphans:
            lines += ["", "### Failed units without a leaderboard", "", failed_table(orphans, with_group=True)]
    return lines


def write_leaderboards(results_dir: str | Path, out_dir: str | Path, plots: bool = True) -> list[Path]:
    """Regenerate every table and plot under ``out_dir`` from the rows in ``results_dir``; return the files.

    Files that are not valid rows, duplicates and failed units are reported on stderr and accounted
    for in the leaderboards. Raises :class:`~cfbench.results.ResultsError` if there is no valid row,
    and the ``OSError`` of a failed write (every file then is complete: old or new). Everything is
    rendered before the first file is written; abandoned temporary files under ``out_dir`` are removed.
    """
    out = Path(out_dir)
    files.remove_orphans(out)
    scan = scan_rows(results_dir)
    scan.warn()
    scan.require_rows()
    rows = scan.rows
    df = rows_frame(rows)
    outputs: list[tuple[Path, bytes]] = []
    boards: set[tuple[str, str]] = set()
    index = ["# cfbench leaderboards", "", "Generated by `cfbench report` from the result rows; do not edit.", ""]
    for (dataset, model), part in df.groupby(["dataset", "model"], sort=True):
        boards.add((dataset, model))
        group_rows = [r for r in rows if r["dataset"] == dataset and r["model_spec"] == model]
        folder = out / _slug(dataset)
        stem = _slug(model)
        created = _created_range(group_rows)
        lines = [f"# {dataset} — {model}", "",
                 f"{len(part)} rows; seeds {', '.join(str(s) for s in sorted(set(part['seed'])))}; "
                 f"{_environment_line(part)}{'; ' + created if created else ''}. "
                 "Test metrics ×100 (AUC in [0, 1]), mean ± std over seeds (no ± where there is one seed; "
                 "– where not available).", ""]
        mixed = _mixed_data_line(group_rows, dataset)
        if mixed:
            lines += [mixed, ""]
        lines += ["## Summary", ""]
        if not (part["sampler"] == FULL).any():
            lines += ["No full-data rows: add the `full` sampler to get % of full data and speed-ups.", ""]
        lines += [summary_table(part), ""]
        for metric in TABLE_METRICS:
            lines += [f"## {metric.upper()}", "", metric_table(part, metric), ""]
        chosen = selection_table(group_rows)
        if chosen is not None:
            lines += ["## What self-tuning samplers chose", "",
                      "From each row's `selection` (e.g. Distill-CF's τ, best step and validation HR@100, "
                      "seconds per step and compile time).", "", chosen, ""]
        failed = [(p, r) for p, r in scan.failed if r["dataset"] == dataset and r["model_spec"] == model]
        if failed:
            lines += ["## Failed units", "",
                      f"{len(failed)} unit{'s' * (len(failed) != 1)} failed and {'are' if len(failed) != 1 else 'is'} "
                      "not in the tables above (re-run `cfbench run` to retry).", "", failed_table(failed), ""]
        if plots:
            images = []
            for metric in PLOT_METRICS:
                png = folder / f"{stem}_{_slug(metric)}.png"
                outputs.append((png, _plot_metric(part, metric, f"{dataset} — {model}: {metric.upper()} vs budget")))
                images.append(png)
            png = folder / f"{stem}_speedup.png"
            speedup = _plot_speedup(part, f"{dataset} — {model}: quality vs training speed-up")
            if speedup is not None:
                outputs.append((png, speedup))
                images.append(png)
            lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in images] + [""]
        outputs.append((folder / f"{stem}.md", "\n".join(lines).encode("utf-8")))
        index.append(f"- [{dataset} — {model}]({_slug(dataset)}/{stem}.md)")
    index += _not_counted_section(scan, boards)
    outputs.append((out / "README.md", ("\n".join(index) + "\n").encode("utf-8")))
    written: list[Path] = []
    for path, data in outputs:  # each file complete (old or new) whatever happens; the index last
        files.atomic_write_bytes(path, data)
        written.append(path)
    return written


def export(results_dir: str | Path, fmt: str = "csv", output: str | Path | None = None) -> str:
    """All valid rows as CSV (one line per row, the documented columns first) or JSON lines.

    Rows are read like the leaderboards' (invalid files skipped and reported on stderr, duplicates
    counted once, failed units left out); :class:`~cfbench.results.ResultsError` if there is no valid
    row. With ``output``, the text is also written there atomically. A null metric is an empty CSV
    field / JSON ``null``.
    """
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown export format {fmt!r}: use csv or jsonl")
    scan = scan_rows(results_dir)
    scan.warn()
    scan.require_rows()
    df = rows_frame(scan.rows)
    rest = [c for c in df.columns if c not in EXPORT_COLUMNS]
    df = df[EXPORT_COLUMNS + rest].sort_values(["dataset", "sampler", "budget", "model", "seed"], kind="stable")
    text = df.to_csv(index=False, float_format="%.6g") if fmt == "csv" else df.to_json(orient="records", lines=True)
    if output is not None:
        files.atomic_write_text(output, text)
    return text
