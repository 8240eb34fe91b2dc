"""Progress bars inside units follow the suite's progress setting."""

from __future__ import annotations

import io

from cfbench.progress import suite_progress, unit_progress


def test_quiet_suite_silences_unit_bars(monkeypatch):
    stderr = io.StringIO()
    stderr.isatty = lambda: True  # even on a terminal
    monkeypatch.setattr("sys.stderr", stderr)
    with suite_progress(False):
        with unit_progress(5, "quiet") as bar:
            bar.update(5)
            hidden = bar.disable
    assert hidden and stderr.getvalue() == ""


def test_unit_bar_shown_under_a_visible_suite_on_a_terminal(monkeypatch):
    stderr = io.StringIO()
    stderr.isatty = lambda: True
    monkeypatch.setattr("sys.stderr", stderr)
    with suite_progress(True):
        with unit_progress(5, "distill-cf b=10", unit="step") as bar:
            bar.update(5)
            bar.set_postfix(best_val_hr100="12.50")
            shown = not bar.disable
    assert shown
    assert "distill-cf b=10" in stderr.getvalue() and "best_val_hr100=12.50" in stderr.getvalue()


def test_setting_is_restored():
    with suite_progress(False):
        with suite_progress(True):
            pass
        assert unit_progress(1, "x").disable
