"""Leaderboards as CSV, LaTeX and a self-contained, sortable HTML page; the Markdown is unchanged by them."""

from __future__ import annotations

import base64
import html.parser
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cfbench.formats import environment_summary, latex_escape
from cfbench.reports import FORMATS, write_leaderboards
from cfbench.results import read_row, rows_frame, write_row

from tests.test_reports import make_row
from tests.test_significance import _row_with_per_user

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "results" / "ml-100k"
SAMPLERS = ("full", "random-users", "distill-cf", "head-users")
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> tuple[Path, Path]:
    """Leaderboards of a few shipped ML-100K EASE rows (three seeds; one cell with one seed), every format."""
    base = tmp_path_factory.mktemp("formats")
    results = base / "results" / "ml-100k"
    results.mkdir(parents=True)
    picked = [p for p in sorted(SHIPPED.glob("*__ease__*.json"))
              if p.name.split("__")[0] in SAMPLERS and re.search(r"__b(10|50|943)__", p.name)]
    if len(picked) < 20:
        pytest.skip("the shipped ML-100K rows are not in results/")
    for p in picked:
        if not (p.name.startswith("head-users") and "__b50__" in p.name and not p.name.endswith("s0.json")):
            shutil.copy(p, results / p.name)
    out = base / "leaderboards"
    write_leaderboards(base / "results", out)
    return base / "results", out


# ------------------------------------------------------------------------------------------------ HTML


class _Page(html.parser.HTMLParser):
    """Tables (id → header texts, rows of (cell text, classes, links)), links, images, scripts, ids."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.images: list[str] = []
        self.scripts: list[str] = []
        self.external: list[str] = []
        self._table = self._row = self._cell = None
        self._in_script = self._in_th = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src"):
            if key in a and re.match(r"(https?:)?//", a[key] or ""):
                self.external.append(a[key])
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id"), {"class": a.get("class", ""), "headers": [],
                                                                  "rows": []})
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag == "th":
            self._in_th = True
            self._table["headers"].append("")
        elif tag == "td":
            self._cell = {"text": "", "class": a.get("class", ""), "data-v": a.get("data-v"), "links": []}
        elif tag == "a":
            self.links.append(a["href"])
            if self._cell is not None:
                self._cell["links"].append(a["href"])
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "th":
            self._in_th = False
        elif tag == "td":
            self._row.append(self._cell)
            self._cell = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        elif self._in_th:
            self._table["headers"][-1] += data
        elif self._cell is not None:
            self._cell["text"] += data


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_html_page_is_self_contained_sortable_and_every_link_resolves(board):
    _, out = board
    path = out / "ml-100k" / "index.html"
    page = _parse(path)
    for key in ("summary", "vs-random", "ndcg-10", "hr-10", "auc", "selection"):
        table = page.tables[f"ease-{key}"]
        assert "sortable" in table["class"] and table["rows"]
        assert all(len(r) == len(table["headers"]) for r in table["rows"])
    assert any("sortTable" in s and "#sort=" in s for s in page.scripts)
    assert not page.external  # works offline: nothing fetched from elsewhere
    assert len(page.images) == 3
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    targets = [h for h in page.links if not h.startswith("#")]
    assert len(targets) > 100
    for href in set(targets):
        assert (path.parent / urllib.parse.unquote(href)).resolve().exists(), href
    assert all(h[1:] in page.ids for h in page.links if h.startswith("#"))
    # every measured number links to the row files it comes from; the row files of one cell are its seeds
    for key, table in page.tables.items():
        keys = {i for i, h in enumerate(table["headers"]) if h in ("budget", "seed")}
        for row in table["rows"]:
            for i, cell in enumerate(row):
                if "num" in cell["class"] and i not in keys:
                    assert cell["links"], (key, table["headers"][i], cell)
    summary = page.tables["ease-summary"]
    head50 = next(r for r in summary["rows"] if r[0]["text"] == "head-users" and r[1]["text"] == "50")
    assert len(head50[5]["links"]) == 1 and head50[5]["links"][0].endswith("head-users__ease__b50__s0.json")
    rand10 = next(r for r in summary["rows"] if r[0]["text"] == "random-users" and r[1]["text"] == "10")
    assert [Path(h).name for h in rand10[5]["links"]] == [f"random-users__ease__b10__s{s}.json" for s in range(3)]
    text = path.read_text(encoding="utf-8")
    assert "Hardware: cpu:cpu" in text and "Packages: cfbench" in text and "Rows created 2026-" in text


def test_significance_is_marked_and_explained(board):
    _, out = board
    page = _parse(out / "ml-100k" / "index.html")
    vs = page.tables["ease-vs-random"]
    assert vs["headers"][:7] == ["sampler", "budget", "NDCG@10", "random-users", "Δ", "95 % CI", "test"]
    tests = {r[6]["text"] for r in vs["rows"]}
    assert tests <= {"seeds", "users", "–"} and "seeds" in tests and "–" in tests  # head-users at 50: one seed
    assert {r[0]["text"] for r in vs["rows"]} == {"distill-cf", "head-users"}
    md = (out / "ml-100k" / "ease.md").read_text(encoding="utf-8")
    assert "## Difference to random-users (NDCG@10)" in md and "Holm–Bonferroni" in md and "paired t-test" in md


# ------------------------------------------------------------------------------------------------ CSV


def test_csv_reads_back_to_the_same_numbers(board):
    results, out = board
    path = out / "ml-100k" / "ease.csv"
    head = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert any("Hardware: cpu:cpu" in h and "Packages:" in h for h in head)
    assert any("Rows created" in h for h in head) and any("Holm" in h for h in head)
    table = pd.read_csv(path, comment="#")
    rows = [read_row(p) for p in sorted(results.rglob("*.json"))]
    df = rows_frame(rows)
    expected = df.groupby(["sampler", "budget"])[["ndcg@10", "hr@10", "auc", "fit_s"]].mean()
    got = table.set_index(["sampler", "budget"])
    assert set(got.index) == set(expected.index)
    for (sampler, budget), ref in expected.iterrows():
        line = got.loc[(sampler, budget)]
        assert line["ndcg@10_mean"] == ref["ndcg@10"] and line["hr@10_mean"] == ref["hr@10"]
        assert line["auc_mean"] == ref["auc"] and line["fit_s"] == ref["fit_s"]
        files = line["rows"].split(";")
        assert len(files) == line["seeds"] and all((path.parent / f).resolve().exists() for f in files)
    single = got.loc[("head-users", 50)]
    assert single["seeds"] == 1 and np.isnan(single["ndcg@10_std"]) and single["test"] == "none"
    assert got.loc[("distill-cf", 10), "test"] == "seeds"
    assert got["significant"].dtype == bool and pd.isna(got.loc[("full", 943), "test"])  # no baseline for full
    md = (out / "ml-100k" / "ease.md").read_text(encoding="utf-8")
    for (sampler, budget), line in got.iterrows():  # the Markdown shows the CSV's numbers, rounded
        assert f"{line['ndcg@10_mean']:.2f}" in md


# ------------------------------------------------------------------------------------------------ LaTeX


def test_latex_escape():
    assert latex_escape("a_b 50% R&D #1 $x {y} ~^\\") == \
        r"a\_b 50\% R\&D \#1 \$x \{y\} \textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert latex_escape("33.45 ± 0.27 – 5.0× ↑\nnext") == r"33.45 $\pm$ 0.27 -- 5.0$\times$ $\uparrow$ next"


def test_latex_tables_are_booktabs_with_escaped_cells(board):
    _, out = board
    text = (out / "ml-100k" / "ease.tex").read_text(encoding="utf-8")
    assert text.count(r"\begin{table}") == text.count(r"\end{table}") >= 9
    assert "% Hardware: cpu:cpu" in text and "Packages: cfbench" in text and "Rows created" in text
    for block in re.findall(r"\\begin\{tabular\}\{(.*?)\}\n(.*?)\\end\{tabular\}", text, re.S):
        spec, body = block
        columns = len(re.sub(r"@\{\}", "", spec))
        lines = body.strip().splitlines()
        assert lines[0] == r"\toprule" and lines[2] == r"\midrule" and lines[-1] == r"\bottomrule"
        for line in [lines[1], *lines[3:-1]]:
            assert line.endswith(r" \\")
            cells = line[:-3].split(" & ")
            assert len(cells) == columns, line
            for cell in cells:  # no raw special character left in a cell
                assert not re.search(r"(?<!\\)[_%&#$]", re.sub(r"\$\\[A-Za-z]+\$", "", cell)), cell
    assert r"distill-cf & 10" in text and r"$\pm$" in text and r"\%" in text
    assert re.search(r"\\caption\{Difference to random-users \(NDCG@10\)\. .*Holm", text)


# ------------------------------------------------------------------------------------------------ Markdown


def test_markdown_is_the_same_whatever_other_formats_are_written(board, tmp_path):
    results, out = board
    write_leaderboards(results, tmp_path / "md", formats=("md",))
    alone = (tmp_path / "md" / "ml-100k" / "ease.md").read_text(encoding="utf-8")
    full = (out / "ml-100k" / "ease.md").read_text(encoding="utf-8")
    assert "Also as [CSV](ease.csv), [LaTeX](ease.tex), [HTML](index.html)." in full
    assert full.replace("Also as [CSV](ease.csv), [LaTeX](ease.tex), [HTML](index.html).\n\n", "") == alone
    assert not (tmp_path / "md" / "ml-100k" / "index.html").exists()
    again = out.with_name("again")  # at the same depth: the same relative links to the rows
    write_leaderboards(results, again)  # the same rows give the same bytes, in every format
    for path in out.rglob("*"):
        if path.is_file():
            assert (again / path.relative_to(out)).read_bytes() == path.read_bytes(), path
    with pytest.raises(ValueError):
        write_leaderboards(results, tmp_path / "x", formats=("md", "docx"))
    assert set(FORMATS) == {"md", "csv", "tex", "html"}


def test_per_user_rows_get_the_user_test(tmp_path):
    rng = np.random.default_rng(5)
    for seed in (0, 1):
        base = rng.uniform(size=300) * 0.3
        for sampler, values in (("random-users", base), ("good", np.clip(base + 0.05, 0, 1)),
                                ("same", np.clip(base + rng.normal(0, 0.01, 300), 0, 1))):
            write_row(tmp_path / "r" / f"{sampler}-{seed}.json", _row_with_per_user(values, sampler=sampler, seed=seed))
    write_leaderboards(tmp_path / "r", tmp_path / "lb", plots=False)
    md = (tmp_path / "lb" / "toy" / "ease.md").read_text(encoding="utf-8")
    section = md.split("## Difference to random-users (NDCG@10)")[1].split("\n## ")[0]
    good = next(line for line in section.splitlines() if line.startswith("| good "))
    cells = [c.strip() for c in good.strip("|").split("|")]
    assert cells[6] == "users" and cells[7] == "300" and cells[8] == "0,1" and cells[11] == "↑"
    assert cells[4] == "+5.00"
    assert "Packages: not recorded" in md  # toy rows record no package versions
    table = pd.read_csv(tmp_path / "lb" / "toy" / "ease.csv", comment="#").set_index("sampler")
    assert table.loc["good", "test"] == "users" and table.loc["good", "test_n"] == 300
    assert bool(table.loc["good", "significant"]) and table.loc["good", "direction"] == 1


def test_environment_summary_counts_what_differs():
    rows = [make_row(environment={"device": "cpu:cpu", "cpu": "x86_64", "cpu_count": 2,
                                  "packages": {"jax": "0.10.2", "numpy": "2.4.6"}}, created=f"2026-11-2{d}T10:00:00Z")
            for d in (4, 5)]
    rows.append(make_row(environment={"device": "gpu:H100", "packages": {"jax": "0.9.0"}},
                         created="2026-11-30T23:00:00-02:00"))
    env = environment_summary(rows)
    assert env.hardware == ["cpu:cpu (x86_64, 2 CPUs) (2 rows)", "gpu:H100 (1 row)"]
    assert env.packages == ["jax 0.10.2 (2 rows), 0.9.0 (1 row)", "numpy 2.4.6 (2 rows), not recorded (1 row)"]
    assert env.created == "rows created 2026-11-24 – 2026-12-01"  # UTC dates



def test_environment_summary_says_when_float32_products_were_not_true_float32():
    gpu = {"device": "gpu:H100"}
    rows = [make_row(environment=gpu, computed_by={"matmul_precision": "highest"}),
            make_row(environment=gpu, computed_by={"matmul_precision": "default"}),
            make_row(environment=gpu)]  # rows from before the precision was recorded
    assert environment_summary(rows).hardware == [
        "gpu:H100 (2 rows)", "gpu:H100 (float32 products at 'default' precision (TF32 on a GPU)) (1 row)"]


# ------------------------------------------------------------------------------------------------ browser


def _chromium(*args: str, timeout: int = 90) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHROMIUM), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                           "--disable-extensions", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed at /usr/bin/chromium")
def test_html_page_renders_and_sorts_in_headless_chromium(board, tmp_path):
    _, out = board
    path = out / "ml-100k" / "index.html"
    url = path.resolve().as_uri()

    def dom(suffix: str = "", file: Path = path) -> _Page:
        done = _chromium("--virtual-time-budget=5000", "--dump-dom", file.resolve().as_uri() + suffix)
        assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
        page = _Page()
        page.feed(done.stdout)
        return page

    def column(page: _Page, table: str, col: int) -> list[float]:
        return [float(r[col]["data-v"]) for r in page.tables[table]["rows"] if r[col]["data-v"] is not None]

    plain = dom()
    assert {"ease-summary", "ease-vs-random", "ease-ndcg-10"} <= set(plain.tables)
    ndcg = column(plain, "ease-summary", 5)
    assert ndcg != sorted(ndcg, reverse=True)  # not already in the order asked for below
    ordered = dom("#sort=ease-summary:5:desc")
    assert column(ordered, "ease-summary", 5) == sorted(ndcg, reverse=True)
    ascending = dom("#sort=ease-vs-random:4")
    deltas = column(ascending, "ease-vs-random", 4)
    assert deltas == sorted(deltas) and len(deltas) == len(plain.tables["ease-vs-random"]["rows"])
    # images decode to their natural size: a probe copy of the page records it once loaded
    probe = path.with_name("probe.html")
    probe.write_text(path.read_text(encoding="utf-8").replace(
        "</body>", '<script>window.addEventListener("load", function () { Array.prototype.forEach.call('
                   'document.images, function (i) { i.setAttribute("alt", i.naturalWidth + "x" + '
                   'i.naturalHeight); }); });</script></body>'), encoding="utf-8")
    try:
        done = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.resolve().as_uri())
    finally:
        probe.unlink()
    sizes = re.findall(r'<img alt="(\d+)x(\d+)"', done.stdout)
    assert len(sizes) == 3 and all(int(w) > 0 and int(h) > 0 for w, h in sizes), done.stdout[-500:]
    shot = tmp_path / "page.png"
    done = _chromium("--window-size=1280,2000", f"--screenshot={shot}", url + "#sort=ease-summary:5:desc")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1280) and pixels[..., :3].std() > 0.05  # a page was drawn, not a blank
