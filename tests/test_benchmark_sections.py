"""benchmarks/sections.py: a script refreshes its own section of docs/performance.md and keeps the rest."""

from __future__ import annotations

from benchmarks.sections import begin_marker, end_marker, write_section


def test_a_section_is_appended_then_replaced_and_the_rest_is_kept(tmp_path):
    path = tmp_path / "perf.md"
    write_section(path, "a.py", "## A\n\nfirst")
    assert path.read_text().startswith("# Performance\n\n" + begin_marker("a.py") + "\n## A\n\nfirst\n")
    path.write_text(path.read_text() + "\n## Hand-written note\n\nkeep me\n")
    write_section(path, "b.py", "## B\n\nother script")
    write_section(path, "a.py", "## A\n\nsecond")
    text = path.read_text()
    assert "first" not in text and "second" in text and "keep me" in text and "other script" in text
    assert text.count(begin_marker("a.py")) == 1 and text.count(end_marker("a.py")) == 1
    assert text.index("second") < text.index("keep me") < text.index("other script")  # order kept


def test_the_shipped_performance_page_has_each_scripts_markers_once():
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "performance.md").read_text()
    for script in ("peers.py", "memory_model.py"):
        assert text.count(begin_marker(script)) == 1 and text.count(end_marker(script)) == 1
        assert text.index(begin_marker(script)) < text.index(end_marker(script))
