"""Leaderboard writers: Markdown, CSV, LaTeX (booktabs) and a self-contained HTML page per dataset.

:mod:`cfbench.reports` decides what the tables hold and builds them as :class:`Table` objects (texts
as the Markdown shows them, machine values, the row files behind every number); this module only
renders them. Every renderer is deterministic: the same tables give the same bytes.

* **Markdown**: GitHub tables (``tabulate``), exactly as the leaderboards always were.
* **CSV**: one tidy frame per leaderboard, full-precision numbers, preceded by ``#`` comment lines
  (read it with ``pandas.read_csv(path, comment="#")``); text fields are quoted.
* **LaTeX**: one ``table`` (booktabs: ``\\toprule``, ``\\midrule``, ``\\bottomrule``) per table; text
  escaped (``_ % & # $ { } ~ ^ \\``) and symbols mapped (``±`` → ``$\\pm$`` …). Needs
  ``\\usepackage{booktabs,graphicx}``.
* **HTML**: one page per dataset, no external resource (works from ``file://``): tables sortable by
  clicking a header (or on load with ``#sort=TABLE-ID:COLUMN[:desc]`` in the URL), PNG plots as
  ``data:`` URIs, every measured number linked to the row files it comes from (relative paths).
"""

from __future__ import annotations

import base64
import collections
import csv
import dataclasses
import html
import math
import numbers
import os
import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from cfbench.results import parse_created

__all__ = ["Board", "Cell", "EnvironmentSummary", "Table", "csv_text", "environment_summary", "html_page",
           "latex_escape", "latex_text", "markdown_table", "relative_link"]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One table cell: its text (as Markdown shows it), a machine value, the rows behind it, a mark."""

    text: str
    value: float | int | str | None = None  # number for sorting and CSV; None: the text is the value
    links: tuple[tuple[str, str], ...] = ()  # (label, href relative to the page) of every row behind it
    mark: str = ""  # significance mark ("↑" / "↓") after the text in LaTeX and HTML

    @property
    def numeric(self) -> bool:
        """Whether the cell holds a finite number (sorted and right-aligned as one)."""
        return (isinstance(self.value, numbers.Real) and not isinstance(self.value, (bool, np.bool_))
                and math.isfinite(self.value))

    def number(self) -> str:
        """The value as a plain decimal (exact: ``repr`` of a Python int or float)."""
        v = self.value
        return repr(int(v)) if isinstance(v, numbers.Integral) else repr(float(v))


def _cell(value: Any) -> Cell:
    return value if isinstance(value, Cell) else Cell(str(value))


@dataclasses.dataclass
class Table:
    """A table as every format renders it."""

    key: str  # short slug, unique within a leaderboard (HTML ids, LaTeX labels)
    title: str
    headers: list[str]
    body: list[list[Cell]]
    note: str = ""  # a sentence under the title (LaTeX caption, HTML paragraph)

    def texts(self) -> list[list[str]]:
        return [[_cell(c).text for c in row] for row in self.body]


@dataclasses.dataclass
class EnvironmentSummary:
    """Where and with what a leaderboard's rows were computed."""

    hardware: list[str]
    packages: list[str]
    created: str | None

    def line(self, created: bool = True) -> str:
        parts = [f"Hardware: {'; '.join(self.hardware) or 'not recorded'}.",
                 f"Packages: {', '.join(self.packages) or 'not recorded'}."]
        if created and self.created:
            parts.append(self.created[0].upper() + self.created[1:] + " (UTC).")
        return " ".join(parts)


def _counted(counter: collections.Counter, total: int) -> list[str]:
    if len(counter) == 1:
        return [next(iter(counter))]
    return [f"{k} ({n} row{'s' * (n != 1)})" for k, n in sorted(counter.items(), key=lambda kn: (-kn[1], kn[0]))]


#: What ``computed_by.matmul_precision`` meant on a GPU (cfbench.devices; on a CPU all are float32).
_PRECISIONS = {"high": "'high' precision (bf16×3 on a GPU)", "default": "'default' precision (TF32 on a GPU)"}


def environment_summary(rows: Sequence[dict[str, Any]]) -> EnvironmentSummary:
    """The distinct hardware and package versions of ``rows`` (with row counts where they differ) and the
    UTC date range of their ``created`` stamps."""
    hardware: collections.Counter = collections.Counter()
    versions: dict[str, collections.Counter] = {}
    whens = []
    for row in rows:
        env = row.get("environment") if isinstance(row.get("environment"), dict) else {}
        details = [str(env[k]) for k in ("cpu",) if env.get(k)]
        if env.get("cpu_count"):
            details.append(f"{env['cpu_count']} CPUs")
        if env.get("n_devices") and env.get("n_devices") != 1:
            details.append(f"{env['n_devices']} devices")
        if env.get("platform"):
            details.append(str(env["platform"]))
        where = row.get("computed_by") if isinstance(row.get("computed_by"), dict) else {}
        if where.get("matmul_precision") not in (None, "highest"):  # faster, less exact float32 products
            details.append(f"float32 products at {_PRECISIONS.get(where['matmul_precision'], where['matmul_precision'])}")
        hardware[f"{env.get('device', '?')}" + (f" ({', '.join(details)})" if details else "")] += 1
        packages = dict(env.get("packages") or {}) if isinstance(env.get("packages"), dict) else {}
        if env.get("python"):
            packages["python"] = env["python"]
        for name, version in packages.items():
            versions.setdefault(str(name), collections.Counter())[str(version)] += 1
        if (when := parse_created(row.get("created"))) is not None:
            whens.append(when)
    pkgs = []
    for name in sorted(versions):
        counter = versions[name]
        missing = len(rows) - sum(counter.values())
        if missing:
            counter = counter + collections.Counter({"not recorded": missing})
        pkgs.append(f"{name} " + ", ".join(_counted(counter, len(rows))))
    created = None
    if whens:
        import datetime as dt

        lo, hi = (min(whens).astimezone(dt.timezone.utc).date(), max(whens).astimezone(dt.timezone.utc).date())
        created = f"rows created {lo}" if lo == hi else f"rows created {lo} – {hi}"
    return EnvironmentSummary(_counted(hardware, len(rows)), pkgs, created)


def relative_link(target: str | Path, page_dir: str | Path, quote: bool = True) -> str:
    """``target`` relative to the folder of the page that links it (POSIX; percent-encoded as a URL unless
    ``quote`` is false)."""
    rel = Path(os.path.relpath(os.path.abspath(target), os.path.abspath(page_dir))).as_posix()
    return urllib.parse.quote(rel) if quote else rel


@dataclasses.dataclass
class Board:
    """One leaderboard (dataset × model) in every format."""

    dataset: str
    model: str
    stem: str  # file stem: <stem>.md, <stem>.csv, <stem>.tex
    intro: str  # the first paragraph (rows, seeds, what the numbers are)
    environment: EnvironmentSummary
    tables: list[Table]
    frame: pd.DataFrame  # the tidy CSV
    csv_notes: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)  # warnings (mixed data, missing full rows)
    images: list[tuple[str, bytes]] = dataclasses.field(default_factory=list)  # (name, PNG)
    siblings: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (label, file name) of other formats


# ------------------------------------------------------------------------------------------------ Markdown


def markdown_table(table: Table) -> str:
    return tabulate(table.texts(), headers=table.headers, tablefmt="github", disable_numparse=True)


# ------------------------------------------------------------------------------------------------ CSV


def csv_text(board: Board) -> str:
    """The board's tidy frame as CSV: ``#`` comment lines (what, where, with what, how), then the table."""
    head = [f"cfbench leaderboard {board.dataset} — {board.model}; generated by `cfbench report` from the result "
            "rows; do not edit. Read with pandas.read_csv(path, comment='#').",
            board.intro, board.environment.line(), *board.notes, *board.csv_notes]
    lines = ["# " + " ".join(str(h).split()) for h in head if h]
    body = board.frame.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    return "\n".join(lines) + "\n" + body


# ------------------------------------------------------------------------------------------------ LaTeX

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "×": r"$\times$", "–": "--", "—": "---", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
                  "∞": r"$\infty$", "λ": r"$\lambda$", "τ": r"$\tau$", "Δ": r"$\Delta$", "σ": r"$\sigma$",
                  "≥": r"$\geq$", "≤": r"$\leq$", "→": r"$\to$", "÷": r"$\div$", "·": r"$\cdot$", "…": r"\dots{}",
                  "µ": r"$\mu$", "≈": r"$\approx$", "−": "$-$", "’": "'", "“": "``", "”": "''"}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in [*_LATEX_SPECIAL, *_LATEX_SYMBOLS]))


def latex_escape(text: str) -> str:
    """``text`` safe in LaTeX text mode: specials escaped, common symbols as math, newlines as spaces."""
    text = " ".join(str(text).split())
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL.get(m.group(0)) or _LATEX_SYMBOLS[m.group(0)], text)


def _latex_table(table: Table, label: str) -> list[str]:
    aligns = "".join("r" if any(_cell(r[i]).numeric for r in table.body) else "l" for i in range(len(table.headers)))
    caption = latex_escape(table.title + (". " + table.note if table.note else ""))
    lines = [r"\begin{table}[htbp]", r"\centering", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
             r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
             rf"\begin{{tabular}}{{@{{}}{aligns}@{{}}}}", r"\toprule",
             " & ".join(latex_escape(h) for h in table.headers) + r" \\", r"\midrule"]
    for row in table.body:
        cells = []
        for c in map(_cell, row):
            text = latex_escape(c.text)
            if c.mark:
                text += latex_escape(c.mark)
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return lines


def latex_text(board: Board) -> str:
    """Every table of the board as a LaTeX ``table`` float (booktabs), with a commented header."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{board.dataset}-{board.model}").strip("-")
    head = [f"cfbench leaderboard {board.dataset} — {board.model}; generated by `cfbench report`; do not edit.",
            r"Needs \usepackage{booktabs,graphicx}.", board.intro, board.environment.line(), *board.notes]
    lines = ["% " + " ".join(str(h).split()) for h in head if h] + [""]
    for table in board.tables:
        lines += _latex_table(table, f"tab:cfbench-{slug}-{table.key}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;max-width:110em;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ccc;margin-top:2em}h3{font-size:1.05em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{padding:.2em .55em;border-bottom:1px solid #e4e4e4;text-align:left;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none;background:#f4f4f4}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td{position:relative}
sup.src{display:none;position:absolute;left:0;top:100%;z-index:2;background:#fff;border:1px solid #bbb;
padding:.15em .35em;font-size:.8em;box-shadow:0 1px 3px rgba(0,0,0,.2)}td:hover sup.src{display:block}
sup.src a{color:#06c;margin-right:.4em}td a{color:inherit;text-decoration:none}td a:hover{text-decoration:underline}
.mark{color:#0a6e0a;font-weight:bold}.mark.down{color:#b00}
.note{color:#555;font-size:.9em}.warn{color:#b00}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
"""

# Sort a table by a column on a header click (again: reverse); numbers by data-v, text otherwise, empty
# cells ("–") last. On load (and when the hash changes) #sort=TABLE-ID:COLUMN[:asc|desc] sorts too.
_JS = r"""
(function () {
  function key(td) {
    var v = td.getAttribute("data-v");
    if (v !== null) return {n: parseFloat(v)};
    var s = td.querySelector("span.v");
    var t = (s ? s.textContent : td.textContent).trim();
    return (t === "" || t === "\u2013") ? null : {s: t};
  }
  function compare(a, b) {
    if (a === null || b === null) return a === b ? 0 : (a === null ? 1 : -1);
    if ("n" in a && "n" in b) return a.n - b.n;
    var x = "n" in a ? String(a.n) : a.s, y = "n" in b ? String(b.n) : b.s;
    return x.localeCompare(y, undefined, {numeric: true});
  }
  function sortTable(table, col, desc) {
    var body = table.tBodies[0];
    if (!body) return;
    var rows = Array.prototype.slice.call(body.rows).map(function (r, i) {
      return {r: r, i: i, k: r.cells[col] ? key(r.cells[col]) : null};
    });
    rows.sort(function (a, b) {
      if (a.k === null || b.k === null) return compare(a.k, b.k) || a.i - b.i;
      return (desc ? -compare(a.k, b.k) : compare(a.k, b.k)) || a.i - b.i;
    });
    rows.forEach(function (x) { body.appendChild(x.r); });
    var ths = table.tHead.rows[0].cells;
    for (var j = 0; j < ths.length; j++) ths[j].removeAttribute("aria-sort");
    if (ths[col]) ths[col].setAttribute("aria-sort", desc ? "descending" : "ascending");
    table.setAttribute("data-sorted", col + ":" + (desc ? "desc" : "asc"));
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var ths = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths, function (th, col) {
      th.addEventListener("click", function () {
        sortTable(table, col, th.getAttribute("aria-sort") === "ascending");
      });
    });
  });
  function fromHash() {
    var m = /^#sort=([^:]+):(\d+)(?::(asc|desc))?$/.exec(decodeURIComponent(location.hash));
    var table = m && document.getElementById(m[1]);
    if (table) sortTable(table, parseInt(m[2], 10), m[3] === "desc");
  }
  fromHash();
  window.addEventListener("hashchange", fromHash);
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_cell(cell: Cell) -> str:
    cell = _cell(cell)
    attrs = ' class="num"' if cell.numeric else ""
    if cell.numeric:
        attrs += f' data-v="{cell.number()}"'
    text = _e(cell.text)
    if len(cell.links) == 1 and cell.numeric:
        inner = f'<span class="v"><a href="{_e(cell.links[0][1])}">{text}</a></span>'
    else:
        inner = f'<span class="v">{text}</span>'
        if cell.links:
            inner += '<sup class="src">' + "".join(f'<a href="{_e(href)}">{_e(label)}</a>'
                                                  for label, href in cell.links) + "</sup>"
    if cell.mark:
        inner += f'<span class="mark{" down" if cell.mark == "↓" else ""}">{_e(cell.mark)}</span>'
    return f"<td{attrs}>{inner}</td>"


def _html_table(table: Table, table_id: str) -> list[str]:
    out = [f'<h3 id="{_e(table_id)}-title">{_e(table.title)}</h3>']
    if table.note:
        out.append(f'<p class="note">{_e(table.note)}</p>')
    out.append(f'<table id="{_e(table_id)}" class="sortable"><thead><tr>'
               + "".join(f'<th title="click to sort">{_e(h)}</th>' for h in table.headers) + "</tr></thead><tbody>")
    out += ["<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in table.body]
    out.append("</tbody></table>")
    return out


def html_page(dataset: str, boards: Sequence[Board], extra: Sequence[str] = ()) -> str:
    """One self-contained page for every leaderboard of ``dataset``."""
    title = f"cfbench leaderboard — {dataset}"
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{_e(title)}</title>",
           f"<style>{_CSS}</style>", "</head>", "<body>", f"<h1>{_e(title)}</h1>",
           '<p class="note">Generated by <code>cfbench report</code> from the result rows; do not edit. Click a '
           "column header to sort (again to reverse); <code>#sort=TABLE-ID:COLUMN[:desc]</code> in the address "
           "sorts on load (columns counted from 0). Hover a number to see the row files it comes from "
           "(s0 = seed 0; r0 = random-users, seed 0); a number from one row links to it directly.</p>",
           "<nav><p>" + " · ".join(f'<a href="#{_e(_model_id(b))}">{_e(b.model)}</a>' for b in boards) + "</p></nav>"]
    for board in boards:
        mid = _model_id(board)
        out += [f'<section id="{_e(mid)}">', f"<h2>{_e(board.dataset)} — {_e(board.model)}</h2>",
                f"<p>{_e(board.intro)}</p>", f'<p class="note">{_e(board.environment.line())}</p>']
        out += [f'<p class="warn">{_e(n)}</p>' for n in board.notes]
        if board.siblings:
            out.append('<p class="note">Also as ' + ", ".join(
                f'<a href="{_e(urllib.parse.quote(name))}">{_e(label)}</a>' for label, name in board.siblings) + ".</p>")
        for table in board.tables:
            out += _html_table(table, f"{mid}-{table.key}")
        if board.images:
            out.append("<h3>Plots</h3>")
            for name, png in board.images:
                data = base64.b64encode(png).decode("ascii")
                out.append(f'<figure><img alt="{_e(name)}" src="data:image/png;base64,{data}"></figure>')
        out.append("</section>")
    out += list(extra)
    out += [f"<script>{_JS}</script>", "</body>", "</html>", ""]
    return "\n".join(out)


def _model_id(board: Board) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", board.stem).strip("-") or "model"
