"""One generated section of a Markdown file, between markers, so that scripts refresh their part only.

A script's section sits between ``<!-- SCRIPT: begin (written by benchmarks/SCRIPT; re-run it to refresh) -->``
and ``<!-- SCRIPT: end -->``; everything outside the markers (hand-written notes, other scripts' sections)
is kept. A file without the markers gets the section appended.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["begin_marker", "end_marker", "write_section"]


def begin_marker(script: str) -> str:
    return f"<!-- {script}: begin (written by benchmarks/{script}; re-run it to refresh) -->"


def end_marker(script: str) -> str:
    return f"<!-- {script}: end -->"


def write_section(path: Path, script: str, text: str, title: str = "# Performance") -> None:
    """Replace ``script``'s section of ``path`` by ``text`` (markers added), or append it; create the file with
    ``title`` if it does not exist."""
    begin, end = begin_marker(script), end_marker(script)
    section = f"{begin}\n{text.strip(chr(10))}\n{end}"
    old = path.read_text() if path.exists() else f"{title}\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + section + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
