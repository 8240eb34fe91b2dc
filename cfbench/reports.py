"""Leaderboards regenerated from result rows alone: Markdown, CSV and LaTeX tables, PNG plots and
one self-contained HTML page per dataset (renderers in :mod:`cfbench.formats`).

For every dataset × model:

* one wide table per metric — samplers as rows, budgets (users) as columns, mean ± std
  over seeds, and the full-data level;
* a summary table per (sampler, budget) with the subset's size, NDCG@10 and HR@10 as a
  % of full data, fit time and the training speed-up (full-data fit time ÷ subset fit
  time, and ÷ (subset fit + selection time));
* every sampler's NDCG@10 against random users at the same budget and seeds: Δ, a paired test
  (over users where rows store per-user values, over seeds otherwise), its 95 % interval and
  Holm-adjusted p-values (:mod:`cfbench.significance`);
* plots of NDCG@10 and HR@10 vs budget (log x) with the full-data level drawn, and of
  quality vs speed-up;
* the hardware, package versions and date range of its rows.

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
import json
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from cfbench import files  # noqa: E402
from cfbench.formats import (Board, Cell, Table, csv_text, environment_summary, html_page, latex_text,  # noqa: E402
                             markdown_table, relative_link)
from cfbench.peruser import read_per_user_checked  # noqa: E402
from cfbench.significance import BASELINE, baseline_table, describe_tests, mark  # noqa: E402
from cfbench.results import (EXPORT_COLUMNS, ResultsError, RowScan, failure_summary, parse_created,  # noqa: E402
                             rows_frame, scan_rows)

__all__ = ["FORMATS", "MARKER", "check_leaderboards_owner", "default_leaderboards_dir", "export", "leaderboards_owner",
           "report", "write_leaderboards"]

TABLE_METRICS = ("ndcg@10", "hr@10", "psp@10", "ndcg@100", "hr@100", "psp@100", "auc")
PLOT_METRICS = ("ndcg@10", "hr@10")
FULL = "full"
#: The metric compared with random users (paired tests; the rows' per-user values are of this metric).
SIGNIFICANCE_METRIC = "ndcg@10"
#: Leaderboard formats: Markdown and CSV and LaTeX per (dataset, model), one HTML page per dataset.
FORMATS = ("md", "csv", "tex", "html")
#: In a leaderboards folder: which results folder its leaderboards were generated from (path relative to it).
MARKER = ".cfbench-leaderboards.json"
#: The validation metric λ is chosen on when a row does not say (every row before ``--tune-metric``).
DEFAULT_TUNE_METRIC = "hr@100"


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


def _full_fit_on_same_device(df: pd.DataFrame, groups: Any) -> pd.Series | float:
    """Per group, the full-data mean fit time on the device its rows ran on: NaN where they ran on several
    devices or no full-data row ran on theirs (a GPU's fit time and a CPU's do not make a speed-up)."""
    if "device" not in df:
        return _full_level(df, "fit_s")
    full = df[df["sampler"] == FULL].groupby("device")["fit_s"].mean()
    device = groups["device"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else None)
    return device.map(full).astype(float)


Links = Callable[[pd.DataFrame], tuple[tuple[str, str], ...]]


def _no_links(part: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    return ()


def _groups(df: pd.DataFrame) -> dict[tuple[str, int], pd.DataFrame]:
    return {(str(k[0]), int(k[1])): g for k, g in df.groupby(["sampler", "budget"], sort=False)}


def metric_grid(df: pd.DataFrame, metric: str, links: Links = _no_links,
                marks: dict[tuple[str, int], int] | None = None) -> Table:
    """Samplers × budgets, mean ± std over seeds (AUC with 4 digits); ``marks`` (sampler, budget) → ±1."""
    digits = 4 if metric == "auc" else 2
    stats = _agg(df[df["sampler"] != FULL], metric)
    cells_stats = dict(zip(stats.index, zip(stats["mean"], stats["std"])))
    groups = _groups(df)
    budgets = sorted(set(df.loc[df["sampler"] != FULL, "budget"]))
    full = df[df["sampler"] == FULL]
    headers = ["sampler"] + [str(b) for b in budgets] + ["full data"]
    full_std = full[metric].std(ddof=0) if full[metric].count() > 1 else float("nan")  # no ± for a single seed
    full_cell = Cell(_fmt(full[metric].mean(), full_std, digits), full[metric].mean(), links(full)) \
        if len(full) else Cell("–")
    body = []
    for sampler in _sampler_order(df):
        if sampler == FULL:
            continue
        cells = []
        for b in budgets:
            if (sampler, b) in cells_stats:
                mean, std = cells_stats[(sampler, b)]
                cells.append(Cell(_fmt(mean, std, digits), mean, links(groups[(sampler, b)]),
                                  mark((marks or {}).get((sampler, b), 0))))
            else:
                cells.append(Cell(""))
        body.append([Cell(sampler)] + cells + [full_cell])
    if not body and len(full):
        body.append([Cell(FULL)] + [Cell("")] * len(budgets) + [full_cell])
    return Table(_slug(metric), metric.upper(), headers, body)


def metric_table(df: pd.DataFrame, metric: str) -> str:
    """Samplers × budgets, mean ± std over seeds (AUC with 4 digits)."""
    return markdown_table(metric_grid(df, metric))


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per (sampler, budget): size, quality as % of full data, fit time and speed-ups (means over seeds)."""
    cols = ["n_users", "n_interactions", "fraction_train_interactions", "ndcg@10", "hr@10", "fit_s", "select_s",
            "peak_host_bytes"]
    # The cost of one selection from scratch: select_s plus work a sampler reused from an earlier
    # budget (e.g. SVP-CF's cached proxy); rows without it cost what they measured.
    cost = df["select_cost_s"] if "select_cost_s" in df else pd.Series(math.nan, index=df.index)
    df = df.assign(select_s=cost.fillna(df["select_s"]))
    g = df.groupby(["sampler", "budget"], sort=True)
    out = g[cols].mean()
    out["seeds"] = g.size()
    out["ndcg@10_std"] = g["ndcg@10"].std(ddof=0).where(g["ndcg@10"].count() > 1)  # no ± for a single seed
    full_fit = _full_fit_on_same_device(df, g)
    for metric in ("ndcg@10", "hr@10"):
        out[f"{metric}_pct_full"] = 100.0 * out[metric] / _full_level(df, metric)
    out["speedup"] = full_fit / out["fit_s"]
    out["speedup_with_selection"] = full_fit / (out["fit_s"] + out["select_s"])
    # Break-even: after N trainings, selecting once and training on the subset N times costs less than
    # training on full data N times: N > select / (full fit − subset fit). 1 when selection is free.
    saving = full_fit - out["fit_s"]
    out["break_even"] = (out["select_s"] / saving).where(saving > 0).apply(
        lambda n: max(1, math.floor(n) + 1) if math.isfinite(n) else math.nan)
    out = out.replace([math.inf, -math.inf], math.nan)  # a zero fit time gives no meaningful speed-up
    return out.reset_index()


def _summary_sorted(df: pd.DataFrame) -> pd.DataFrame:
    s = summary_frame(df)
    order = {name: i for i, name in enumerate(_sampler_order(df))}
    return s.assign(_o=s["sampler"].map(order)).sort_values(["_o", "budget"]).drop(columns="_o")


def summary_grid(df: pd.DataFrame, links: Links = _no_links) -> Table:
    s = _summary_sorted(df)
    groups = _groups(df)
    headers = ["sampler", "budget", "users", "interactions", "% train", "NDCG@10", "% of full", "HR@10",
               "% of full", "fit s", "select s", "speed-up", "speed-up incl. selection", "break-even trainings",
               "peak MiB", "seeds"]
    body = []
    for r in s.to_dict("records"):
        ln = links(groups[(r["sampler"], r["budget"])])

        def c(text: str, value: Any, ln: tuple[tuple[str, str], ...] = ln) -> Cell:
            return Cell(text, value, ln)
        body.append([Cell(r["sampler"]), Cell(str(r["budget"]), r["budget"]), c(f"{r['n_users']:.0f}", r["n_users"]),
                     c(f"{r['n_interactions']:.0f}", r["n_interactions"]),
                     c(f"{100 * r['fraction_train_interactions']:.2f}", 100 * r["fraction_train_interactions"]),
                     c(_fmt(r["ndcg@10"], r["ndcg@10_std"]), r["ndcg@10"]),
                     c(_num(r["ndcg@10_pct_full"], ".1f"), r["ndcg@10_pct_full"]),
                     c(_num(r["hr@10"], ".2f"), r["hr@10"]), c(_num(r["hr@10_pct_full"], ".1f"), r["hr@10_pct_full"]),
                     c(f"{r['fit_s']:.3f}", r["fit_s"]), c(f"{r['select_s']:.3f}", r["select_s"]),
                     c(_num(r["speedup"], ".1f", "×"), r["speedup"]),
                     c(_num(r["speedup_with_selection"], ".1f", "×"), r["speedup_with_selection"]),
                     c(_num(r["break_even"], ".0f"), r["break_even"]),
                     c(_num(r["peak_host_bytes"] / 2**20, ".0f"), r["peak_host_bytes"] / 2**20),
                     c(str(r["seeds"]), r["seeds"])])
    return Table("summary", "Summary", headers, body)


def summary_table(df: pd.DataFrame) -> str:
    return markdown_table(summary_grid(df))


def _cell(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def lambda_edge_grid(df: pd.DataFrame, links: Links = _no_links) -> Table | None:
    """The (sampler, budget) cells whose chosen λ lies at an edge of the model's grid, with their seeds."""
    edges = df[df["lambda_edge"].notna()] if "lambda_edge" in df else df.iloc[:0]
    if edges.empty:
        return None
    body = []
    for (sampler, budget, edge), part in edges.groupby(["sampler", "budget", "lambda_edge"], sort=True):
        lams = ", ".join(f"{v:g}" for v in sorted(set(part["lambda"])))
        body.append([Cell(sampler), Cell(str(budget), budget), Cell(edge),
                     Cell(",".join(map(str, sorted(part["seed"])))), Cell(lams, None, links(part))])
    return Table("lambda-edge", "λ at the edge of its grid", ["sampler", "budget", "edge", "seeds", "λ"], body,
                 "These rows chose the smallest (above 0) or the largest λ of the model's grid that could be scored: "
                 "the best λ may lie outside it, so their quality may be understated. A wider grid "
                 "(the model's lambdas parameter, e.g. ease:lambdas=0.1/0.3/1/5/20) would tell.")


def selection_grid(rows: list[dict[str, Any]], row_links: list[tuple[tuple[str, str], ...]] | None = None
                   ) -> Table | None:
    """What self-tuning samplers chose (their scalar ``diagnostics``), one line per (sampler, budget, seed);
    ``row_links`` (aligned with ``rows``) link each line's numbers to its row."""
    ln = row_links if row_links is not None else [()] * len(rows)
    picked = sorted(((r, lk) for r, lk in zip(rows, ln) if isinstance(r.get("selection"), dict) and r["selection"]),
                    key=lambda rl: (rl[0]["sampler_spec"], rl[0]["budget"], rl[0]["seed"]))
    if not picked:
        return None
    keys: list[str] = []
    for r, _ in picked:
        keys += [k for k, v in r["selection"].items()
                 if k not in keys and k != "val_users" and (v is None or isinstance(v, (bool, int, float, str)))]
    # Choices made on validation (Distill-CF's τ, step and λ) rest on the users with validation items.
    on_validation = any(k.startswith("val_") for k in keys)
    headers = ["sampler", "budget", "seed", *keys, *(["val users"] if on_validation else []), "select s"]

    def val_users(r: dict[str, Any], lk: tuple[tuple[str, str], ...]) -> list[Cell]:
        if not on_validation:
            return []
        n = r["selection"].get("val_users", r.get("n_eval_users", {}).get("val"))  # a sampler's own subset
        return [Cell("", None) if n is None else Cell(f"{n:,}", n, lk)]

    def c(value: Any, lk: tuple[tuple[str, str], ...]) -> Cell:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return Cell(_cell(value), value if number else None, lk if number else ())
    body = [[Cell(r["sampler_spec"]), Cell(str(r["budget"]), r["budget"]), Cell(str(r["seed"]), r["seed"]),
             *(c(r["selection"].get(k, ""), lk) for k in keys), *val_users(r, lk),
             Cell(f"{r['timings']['select_s']:.1f}", r["timings"]["select_s"], lk)] for r, lk in picked]
    return Table("selection", "What self-tuning samplers chose", headers, body,
                 "From each row's selection (e.g. Distill-CF's τ, best step and validation HR@100, seconds per step "
                 "and compile time)." + (" *val users*: the users with validation items that the validation "
                                         "choices rest on (a sampler's own subset where it used one)." if on_validation else ""))


def selection_table(rows: list[dict[str, Any]]) -> str | None:
    """What self-tuning samplers chose (their scalar ``diagnostics``), one line per (sampler, budget, seed)."""
    table = selection_grid(rows)
    return None if table is None else markdown_table(table)


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


def _tune_metric(row: dict[str, Any]) -> str:
    """The validation metric ``row``'s λ was chosen on (its ``tune_metric``, else its identity's, else HR@100)."""
    metric = row.get("tune_metric")
    if not isinstance(metric, str):
        evaluation = row.get("identity", {}).get("evaluation") if isinstance(row.get("identity"), dict) else None
        metric = evaluation.get("selection_metric") if isinstance(evaluation, dict) else None
    return metric if isinstance(metric, str) else DEFAULT_TUNE_METRIC


def _tune_line(rows: list[dict[str, Any]]) -> str:
    """``λ chosen on validation HR@100.``, or every metric found with its number of rows."""
    counts: dict[str, int] = {}
    for row in rows:
        metric = _tune_metric(row)
        counts[metric] = counts.get(metric, 0) + 1
    if len(counts) == 1:
        return f"λ chosen on validation {next(iter(counts)).upper()}."
    return "λ chosen on validation " + ", ".join(f"{m.upper()} ({n} row{'s' * (n != 1)})"
                                                 for m, n in sorted(counts.items())) + "."


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


def failed_grid(failed: list[tuple[Path, dict[str, Any]]], with_group: bool = False,
                link: Callable[[Path], str] | None = None) -> Table:
    """Failed units, one line each: (dataset,) sampler, budget, seed, model, error kind, phase, message."""
    ordered = sorted(failed, key=lambda pr: (pr[1]["dataset"], pr[1]["model_spec"], pr[1]["sampler_spec"],
                                             pr[1]["budget"], pr[1]["seed"]))
    headers = (["dataset"] if with_group else []) + ["sampler", "budget", "seed", "model", "error", "phase",
                                                      "message"]
    body = []
    for path, r in ordered:
        err = r["error"]
        message = failure_summary(r).split(": ", 1)[1] if ": " in failure_summary(r) else ""
        lk = (("row", link(path)),) if link is not None else ()
        body.append([Cell(_md(r["dataset"]))] * with_group + [
            Cell(_md(r["sampler_spec"])), Cell(str(r["budget"]), r["budget"]), Cell(str(r["seed"]), r["seed"], lk),
            Cell(_md(r["model_spec"])), Cell(_md(err["kind"])), Cell(_md(err["phase"])), Cell(_md(message))])
    return Table("failed", "Failed units", headers, body)


def _failed_note(failed: list[tuple[Path, dict[str, Any]]]) -> str:
    """What the failed units are and what brings them back: a failure is retried by ``cfbench run``, an
    infeasible unit (predicted not to fit) only when more memory is available."""
    infeasible = sum(r.get("status") == "infeasible" for _, r in failed)
    errors = len(failed) - infeasible
    parts = []
    if errors:
        parts.append(f"{errors} unit{'s' * (errors != 1)} failed (re-run `cfbench run` to retry)")
    if infeasible:
        parts.append(f"{infeasible} unit{'s' * (infeasible != 1)} {'were' if infeasible != 1 else 'was'} infeasible: "
                     f"predicted not to fit in memory and not attempted (planned again when more memory is available, "
                     f"e.g. `--memory-limit`)")
    return "; ".join(parts) + ". Not in the tables above."


def failed_table(failed: list[tuple[Path, dict[str, Any]]], with_group: bool = False) -> str:
    """Failed units, one line each: (dataset, model,) sampler, budget, seed, model, error kind, phase, message."""
    return markdown_table(failed_grid(failed, with_group))


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


def _p(value: float) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.1e}" if value < 1e-4 else f"{value:.4f}"


def _signed(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:+.2f}"


def baseline_grid(sig: pd.DataFrame, df: pd.DataFrame, metric: str = SIGNIFICANCE_METRIC,
                  links: Links = _no_links) -> Table:
    """The comparison with random users (:func:`cfbench.significance.baseline_table`) as a table."""
    headers = ["sampler", "budget", metric.upper(), BASELINE, "Δ", "95 % CI", "test", "n", "paired seeds", "p",
               "p (Holm)", "sig.", "note"]
    order = {name: i for i, name in enumerate(_sampler_order(df))}
    body = []
    for r in sorted(sig.to_dict("records"), key=lambda r: (order.get(r["sampler"], len(order)), r["budget"])):
        seeds = [int(x) for x in r["seeds"].split(",")] if r["seeds"] else []
        own = df[(df["sampler"] == r["sampler"]) & (df["budget"] == r["budget"]) & df["seed"].isin(seeds)]
        base = df[(df["sampler"] == BASELINE) & (df["budget"] == r["budget"]) & df["seed"].isin(seeds)]
        ci = (f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]" if math.isfinite(r["ci_low"]) else "–")
        own_links = links(own)
        base_links = tuple((f"r{label[1:]}", href) for label, href in links(base))  # r0: random-users, seed 0
        both = own_links + base_links  # what Δ, its interval and test are computed from
        body.append([Cell(r["sampler"]), Cell(str(r["budget"]), r["budget"]),
                     Cell(_num(r["value"], ".2f"), r["value"], own_links),
                     Cell(_num(r["baseline_value"], ".2f"), r["baseline_value"], base_links),
                     Cell(_signed(r["delta"]), r["delta"], both, mark(r["direction"])), Cell(ci, r["ci_low"], both),
                     Cell(r["test"] if r["test"] != "none" else "–"),
                     Cell(str(r["n"]) if r["n"] else "–", r["n"] if r["n"] else None, both),
                     Cell(r["seeds"] or "–"), Cell(_p(r["p"]), r["p"], both), Cell(_p(r["p_holm"]), r["p_holm"], both),
                     Cell(mark(r["direction"])), Cell(r["note"])])
    return Table("vs-random", _difference_title(metric), headers, body, describe_tests(metric))


def _difference_title(metric: str) -> str:
    return f"Difference to {BASELINE} ({metric.upper()})"


def board_frame(df: pd.DataFrame, sig: pd.DataFrame | None, metric: str = SIGNIFICANCE_METRIC,
                paths: Callable[[pd.DataFrame], str] | None = None) -> pd.DataFrame:
    """The tidy table of one leaderboard: one line per (sampler, budget), every number at full precision."""
    s = _summary_sorted(df)
    out = pd.DataFrame({"dataset": df["dataset"].iloc[0] if len(df) else "",
                        "model": df["model"].iloc[0] if len(df) else "",
                        "sampler": s["sampler"], "budget": s["budget"], "seeds": s["seeds"]})
    seeds = df.groupby(["sampler", "budget"])["seed"].agg(lambda x: ",".join(map(str, sorted(x))))
    keys = list(zip(s["sampler"], s["budget"]))
    out["seed_list"] = [seeds.loc[k] for k in keys]
    for column in ("n_users", "n_interactions", "fraction_train_interactions"):
        out[column] = s[column].to_numpy()
    for m in TABLE_METRICS:
        stats = _agg(df, m)
        means, stds = dict(zip(stats.index, stats["mean"])), dict(zip(stats.index, stats["std"]))
        out[f"{m}_mean"] = [means[k] for k in keys]
        out[f"{m}_std"] = [stds[k] for k in keys]
    for column in ("ndcg@10_pct_full", "hr@10_pct_full", "fit_s", "select_s", "speedup", "speedup_with_selection"):
        out[column] = s[column].to_numpy()
    if sig is not None:
        by = {(r["sampler"], r["budget"]): r for r in sig.to_dict("records")}

        def get(k: tuple[str, int], column: str, default: Any = math.nan) -> Any:
            return by[k][column] if k in by else default
        out[f"delta_{metric}_vs_{BASELINE}"] = [get(k, "delta") for k in keys]
        for column in ("ci_low", "ci_high"):
            out[column] = [get(k, column) for k in keys]
        out["test"] = [get(k, "test", "") for k in keys]
        out["test_n"] = [get(k, "n", 0) for k in keys]
        out["paired_seeds"] = [get(k, "seeds", "") for k in keys]
        out["p"] = [get(k, "p") for k in keys]
        out["p_holm"] = [get(k, "p_holm") for k in keys]
        out["significant"] = [bool(get(k, "significant", False)) for k in keys]
        out["direction"] = [int(get(k, "direction", 0)) for k in keys]
    if paths is not None:
        groups = _groups(df)
        out["rows"] = [paths(groups[k]) for k in keys]
    return out.reset_index(drop=True)


def _per_user(rows: list[dict[str, Any]], paths: list[Path], metric: str) -> list[Any]:
    """Each row's per-user values of ``metric`` (or ``None``); a damaged block is reported and ignored."""
    out = []
    for row, path in zip(rows, paths):
        got, reason = read_per_user_checked(row, metric)
        if reason:
            print(f"cfbench: {path}: per-user values ignored: {reason}", file=sys.stderr)
        out.append(got)
    return out


def write_leaderboards(results_dir: str | Path, out_dir: str | Path, plots: bool = True,
                       formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Regenerate every table and plot under ``out_dir`` from the rows in ``results_dir``; return the files.

    ``formats``: any of ``md`` (``<dataset>/<model>.md`` and the index ``README.md``, always written),
    ``csv`` (``<dataset>/<model>.csv``), ``tex`` (``<dataset>/<model>.tex``), ``html``
    (``<dataset>/index.html``, every model of the dataset). Files that are not valid rows, duplicates
    and failed units are reported on stderr and accounted for in the leaderboards. Raises
    :class:`~cfbench.results.ResultsError` if there is no valid row, and the ``OSError`` of a failed
    write (every file then is complete: old or new). Everything is rendered before the first file is
    written; abandoned temporary files under ``out_dir`` are removed.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown leaderboard format {', '.join(unknown)}: use {', '.join(FORMATS)}")
    out = Path(out_dir)
    files.remove_orphans(out)
    scan = scan_rows(results_dir)
    scan.warn()
    scan.require_rows()
    rows = scan.rows
    df = rows_frame(rows)
    df["_i"] = range(len(df))
    df["_path"] = [str(p) for p in scan.paths]
    per_user = _per_user(rows, scan.paths, SIGNIFICANCE_METRIC)
    outputs: list[tuple[Path, bytes]] = []
    boards: set[tuple[str, str]] = set()
    pages: dict[str, list[Board]] = {}
    index = ["# cfbench leaderboards", "", "Generated by `cfbench report` from the result rows; do not edit.", ""]
    for (dataset, model), part in df.groupby(["dataset", "model"], sort=True):
        boards.add((dataset, model))
        group_rows = [rows[i] for i in part["_i"]]
        folder = out / _slug(dataset)
        stem = _slug(model)

        def links(sub: pd.DataFrame, folder: Path = folder) -> tuple[tuple[str, str], ...]:
            return tuple((f"s{seed}", relative_link(path, folder)) for seed, path in sorted(zip(sub["seed"],
                                                                                               sub["_path"])))

        def csv_paths(sub: pd.DataFrame, folder: Path = folder) -> str:
            return ";".join(relative_link(path, folder, quote=False) for _, path in sorted(zip(sub["seed"],
                                                                                              sub["_path"])))

        created = _created_range(group_rows)
        env = environment_summary(group_rows)
        intro = (f"{len(part)} rows; seeds {', '.join(str(s) for s in sorted(set(part['seed'])))}; "
                 f"{_environment_line(part)}{'; ' + created if created else ''}. "
                 "Test metrics ×100 (AUC in [0, 1]), mean ± std over seeds (no ± where there is one seed; "
                 f"– where not available). {_tune_line(group_rows)}")
        lines = [f"# {dataset} — {model}", "", intro, "", env.line(created=False), ""]
        siblings = [(label, f"{stem}.{ext}") for ext, label in (("md", "Markdown"), ("csv", "CSV"), ("tex", "LaTeX"))
                    if ext in formats and ext != "md"]
        if "html" in formats:
            siblings.append(("HTML", "index.html"))
        if siblings:
            lines += ["Also as " + ", ".join(f"[{label}]({name})" for label, name in siblings) + ".", ""]
        notes = []
        mixed = _mixed_data_line(group_rows, dataset)
        if mixed:
            lines += [mixed, ""]
            notes.append(mixed.replace("**", "").replace("`", ""))
        lines += ["## Summary", ""]
        if not (part["sampler"] == FULL).any():
            infeasible_full = any(r["dataset"] == dataset and r["model_spec"] == model and r["sampler"] == FULL
                                  and r.get("status") == "infeasible" for _, r in scan.failed)
            no_full = ("Full data is infeasible here (predicted not to fit in memory; see \"Failed units\"): "
                       "no % of full data or speed-ups." if infeasible_full else
                       "No full-data rows: add the `full` sampler to get % of full data and speed-ups.")
            lines += [no_full, ""]
            notes.append(no_full.replace("`", "").replace('"', ""))
        summary = summary_grid(part, links)
        summary.note = ("Speed-up: full-data fit time ÷ subset fit time (incl. selection: ÷ subset fit + one "
                        "selection from scratch). Break-even trainings: the smallest N for which selecting once "
                        "and training on the subset N times costs less than N full-data trainings, "
                        "N > select ÷ (full fit − subset fit); – where the subset fit is not cheaper. Times compare "
                        "within one device only: – where full data ran on another (say, a GPU). Peak MiB: "
                        "the largest host memory (RSS) of the unit's phases, measured.")
        lines += [markdown_table(summary), "", summary.note, ""]
        tables = [summary]
        compared = part[part["sampler"] != FULL]
        sig = baseline_table(compared, SIGNIFICANCE_METRIC, per_user=[per_user[i] for i in compared["_i"]])
        lines += [f"## {_difference_title(SIGNIFICANCE_METRIC)}", ""]
        if (part["sampler"] == BASELINE).any() and len(sig):
            vs = baseline_grid(sig, part, SIGNIFICANCE_METRIC, links)
            lines += [describe_tests(SIGNIFICANCE_METRIC), "", markdown_table(vs), ""]
            tables.append(vs)
        else:
            lines += [f"No `{BASELINE}` rows in this leaderboard: nothing to compare with." if len(sig) else
                      f"No sampler besides `{BASELINE}` and `{FULL}`: nothing to compare.", ""]
            sig = None
        marks = {} if sig is None else {(r["sampler"], r["budget"]): r["direction"] for r in sig.to_dict("records")}
        for metric in TABLE_METRICS:
            grid = metric_grid(part, metric, links, marks if metric == SIGNIFICANCE_METRIC else None)
            if metric == SIGNIFICANCE_METRIC and sig is not None:
                grid.note = (f"↑ / ↓: significantly above / below {BASELINE} (see "
                             f"{_difference_title(SIGNIFICANCE_METRIC)}).")
            lines += [f"## {metric.upper()}", "", markdown_table(grid), ""]
            tables.append(grid)
        chosen = selection_grid(group_rows, [((f"s{seed}", relative_link(path, folder)),)
                                             for seed, path in zip(part["seed"], part["_path"])])
        if chosen is not None:
            lines += ["## What self-tuning samplers chose", "",
                      "From each row's `selection` (e.g. Distill-CF's τ, best step and validation HR@100, "
                      "seconds per step and compile time).", "", markdown_table(chosen), ""]
            tables.append(chosen)
        edges = lambda_edge_grid(part, links)
        if edges is not None:
            lines += [f"## {edges.title}", "", edges.note, "", markdown_table(edges), ""]
            tables.append(edges)
        failed = [(p, r) for p, r in scan.failed if r["dataset"] == dataset and r["model_spec"] == model]
        if failed:
            note = _failed_note(failed)
            lines += ["## Failed units", "", note, "", failed_table(failed), ""]
            grid = failed_grid(failed, link=lambda p, folder=folder: relative_link(p, folder))
            grid.note = note.replace("`", "")
            tables.append(grid)
        images: list[tuple[str, bytes]] = []
        if plots:
            names = []
            for metric in PLOT_METRICS:
                png = folder / f"{stem}_{_slug(metric)}.png"
                data = _plot_metric(part, metric, f"{dataset} — {model}: {metric.upper()} vs budget")
                outputs.append((png, data))
                images.append((png.stem, data))
                names.append(png)
            png = folder / f"{stem}_speedup.png"
            speedup = _plot_speedup(part, f"{dataset} — {model}: quality vs training speed-up")
            if speedup is not None:
                outputs.append((png, speedup))
                images.append((png.stem, speedup))
                names.append(png)
            lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in names] + [""]
        outputs.append((folder / f"{stem}.md", "\n".join(lines).encode("utf-8")))
        board = Board(dataset, model, stem, intro, env, tables,
                      board_frame(part, sig, SIGNIFICANCE_METRIC, csv_paths), notes=notes, images=images,
                      siblings=[("Markdown", f"{stem}.md")] + [x for x in siblings if x[0] != "HTML"])
        board.csv_notes = [
            "*_mean / *_std: mean and population std (ddof=0) over seeds (empty with one seed); n_users, "
            "n_interactions, fit_s, select_s (incl. reused selection work): means over seeds; *_pct_full: % of the "
            "full-data mean; speedup: full-data fit time / fit time (with_selection: / (fit + select)).",
            describe_tests(SIGNIFICANCE_METRIC) if sig is not None else "",
            "rows: the row files of each line, relative to this file, ';'-separated."]
        if "csv" in formats:
            outputs.append((folder / f"{stem}.csv", csv_text(board).encode("utf-8")))
        if "tex" in formats:
            outputs.append((folder / f"{stem}.tex", latex_text(board).encode("utf-8")))
        pages.setdefault(dataset, []).append(board)
        index.append(f"- [{dataset} — {model}]({_slug(dataset)}/{stem}.md)")
    if "html" in formats:
        for dataset, page in sorted(pages.items()):
            outputs.append((out / _slug(dataset) / "index.html", html_page(dataset, page).encode("utf-8")))
    extra = [label for ext, label in (("csv", "CSV (`<model>.csv`)"), ("tex", "LaTeX (`<model>.tex`, booktabs)"))
             if ext in formats]
    if extra:
        index += ["", "Each leaderboard is also written as " + " and ".join(extra) + ", next to its Markdown file."]
    if "html" in formats:
        index += ["", "One HTML page per dataset (every model; sortable tables, plots embedded, opens offline):", ""]
        index += [f"- [{dataset}]({_slug(dataset)}/index.html)" for dataset in sorted(pages)]
    index += _not_counted_section(scan, boards)
    outputs.append((out / "README.md", ("\n".join(index) + "\n").encode("utf-8")))
    written: list[Path] = []
    for path, data in outputs:  # each file complete (old or new) whatever happens; the index last
        files.atomic_write_bytes(path, data)
        written.append(path)
    return written


def default_leaderboards_dir(results_dir: str | Path) -> Path:
    """Where the leaderboards of ``results_dir`` go by default: ``leaderboards/`` beside a folder named
    ``results`` (the published layout: ``results/`` → ``leaderboards/``), else ``<results_dir>/leaderboards``."""
    results = Path(results_dir)
    return results.parent / "leaderboards" if results.name == "results" else results / "leaderboards"


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def leaderboards_owner(out_dir: str | Path) -> Path | None:
    """The results folder (resolved) whose rows the leaderboards in ``out_dir`` were generated from, as its
    :data:`MARKER` says; ``None`` where there is no marker. Raises :class:`ResultsError` for an unreadable one."""
    marker = Path(out_dir) / MARKER
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise ResultsError(f"cannot read {marker} ({err}): pass --force to overwrite the leaderboards in {out_dir}")
    try:
        relative = json.loads(text)["results_dir"]
        if not isinstance(relative, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ResultsError(f"{marker} does not say which results folder these leaderboards come from: pass --force "
                           f"to overwrite the leaderboards in {out_dir}") from None
    return (Path(out_dir).resolve() / relative).resolve()


def check_leaderboards_owner(results_dir: str | Path, out_dir: str | Path, force: bool = False) -> None:
    """Refuse (:class:`ResultsError`, one line) to write the leaderboards of ``results_dir`` into ``out_dir``
    when its marker says they were generated from another results folder, unless ``force``. A folder without
    a marker (new, or written before markers existed) is anyone's."""
    if force or not Path(out_dir).is_dir():
        return
    owner = leaderboards_owner(out_dir)
    results = Path(results_dir).resolve()
    if owner is not None and owner != results:
        default = default_leaderboards_dir(results_dir)
        raise ResultsError(f"{out_dir} holds the leaderboards of {_show(owner)} (its {MARKER} says so), not of "
                           f"{results_dir}: write them elsewhere with --leaderboards-dir (the default for "
                           f"{results_dir} is {default}) or pass --force to overwrite them")


def report(results_dir: str | Path, out_dir: str | Path | None = None, *, force: bool = False, plots: bool = True,
           formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """``cfbench report``: :func:`write_leaderboards` into ``out_dir`` (default:
    :func:`default_leaderboards_dir`), after checking that ``out_dir`` is not another results folder's
    (:func:`check_leaderboards_owner`), then record in its :data:`MARKER` that it is ``results_dir``'s."""
    out = default_leaderboards_dir(results_dir) if out_dir is None else Path(out_dir)
    check_leaderboards_owner(results_dir, out, force)
    written = write_leaderboards(results_dir, out, plots=plots, formats=formats)
    relative = os.path.relpath(Path(results_dir).resolve(), out.resolve())
    marker = {"results_dir": relative,
              "note": "The leaderboards in this folder are generated by `cfbench report` from the rows in results_dir "
                      "(relative to this folder); cfbench refuses to overwrite them from other rows without --force."}
    written.append(files.atomic_write_text(out / MARKER, json.dumps(marker, indent=1, sort_keys=True) + "\n"))
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
