"""The replay of Distill-CF's stopping rule (benchmarks/distill_schedule.py) on hand-worked traces."""

from __future__ import annotations

from benchmarks.distill_schedule import replay


def _trace(scores: dict[int, float]) -> list[dict]:
    return [{"step": 0, "hr@100": 1.0}] + [{"step": s, "hr@100": v} for s, v in sorted(scores.items())]


def test_the_runs_own_schedule_reproduces_where_it_stopped() -> None:
    # best at 50; 75, 100, 125, 150 bring nothing: patience 100 stops at 150 with the step-50 sample
    trace = _trace({25: 10.0, 50: 12.0, 75: 11.0, 100: 11.5, 125: 11.9, 150: 11.0})
    assert replay(trace, "hr@100", 25, 100, 500) == (12.0, 150, 6)


def test_a_shorter_patience_stops_earlier_and_can_miss_a_later_best() -> None:
    trace = _trace({25: 10.0, 50: 12.0, 75: 11.0, 100: 11.5, 125: 12.5, 150: 11.0, 175: 11.0, 200: 11.0, 225: 11.0})
    assert replay(trace, "hr@100", 25, 100, 500) == (12.5, 225, 9)
    assert replay(trace, "hr@100", 25, 50, 500) == (12.0, 100, 4)  # stops before step 125's better sample


def test_a_coarser_cadence_sees_every_other_point() -> None:
    trace = _trace({25: 13.0, 50: 12.0, 75: 11.0, 100: 11.5, 125: 11.9, 150: 11.0})
    assert replay(trace, "hr@100", 50, 100, 500) == (12.0, 150, 3)  # step 25's best is never validated


def test_the_step_cap_ends_a_run_that_keeps_improving() -> None:
    trace = _trace({s: float(s) for s in range(25, 101, 25)})
    assert replay(trace, "hr@100", 25, 100, 100) == (100.0, 100, 4)


def test_a_point_the_trace_lacks_makes_the_replay_unanswerable() -> None:
    # the run stopped at 150; validating every 50 from a best at 100 would need step 200
    trace = _trace({25: 10.0, 50: 11.0, 75: 11.5, 100: 12.0, 125: 11.0, 150: 11.0})
    assert replay(trace, "hr@100", 25, 50, 500) == (12.0, 150, 6)
    assert replay(trace, "hr@100", 50, 100, 500) is None
