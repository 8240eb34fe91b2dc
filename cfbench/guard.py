"""Running plugin code so that whatever it does becomes a recorded outcome, never a lost suite.

:func:`guarded` runs one phase of a unit (a sampler's ``select``, a model's tuning, fit or
evaluation) and turns every way it can end badly into a :class:`UnitFailure` with a kind,
a one-line message and the traceback:

========== ===========================================================================
kind       cause
========== ===========================================================================
exception  any exception (its type and message; the traceback is kept)
exit       ``sys.exit()`` / ``SystemExit`` raised by the plugin
memory     ``MemoryError`` or an XLA ``RESOURCE_EXHAUSTED`` / out-of-memory error
timeout    the unit's time limit passed (``--unit-timeout``)
mutation   the plugin wrote into the shared, read-only train/validation/test data
========== ===========================================================================

The time limit is enforced with ``SIGALRM`` (Python code, ``sleep``, waits and lock
acquisitions are interrupted); :class:`UnitTimeout` derives from ``BaseException`` so a
plugin's ``except Exception`` cannot swallow it. Native code that never returns to Python
cannot be interrupted: a watchdog thread then records the unit as failed through a callback
and ends the process with exit status :data:`EXIT_STUCK`; a re-run resumes with the other
units first. ``KeyboardInterrupt`` is never captured.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["EXIT_STUCK", "Deadline", "UnitFailure", "UnitTimeout", "guarded"]

T = TypeVar("T")
EXIT_STUCK = 3


class UnitTimeout(BaseException):  # noqa: N818 — BaseException on purpose: plugins cannot swallow it
    """The unit's time limit passed."""


@dataclasses.dataclass
class UnitFailure(Exception):
    """How one phase of a unit failed: kind, one-line message, phase and traceback."""

    kind: str
    message: str
    phase: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.phase}: {self.kind}: {self.message}"

    def record(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message, "phase": self.phase, "traceback": self.traceback}


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _is_out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in text or "Out of memory" in text \
        or "out of memory" in text.lower() and type(err).__name__ in ("XlaRuntimeError", "JaxRuntimeError")


def _is_read_only_write(err: BaseException) -> bool:
    return isinstance(err, ValueError) and ("read-only" in str(err) or "WRITEABLE" in str(err))


class Deadline:
    """The time limit of one unit (``None``: no limit), shared by its phases."""

    def __init__(self, seconds: float | None, grace: float | None = None) -> None:
        self.seconds = seconds
        self.end = None if seconds is None else time.monotonic() + seconds
        #: How long native code may overrun the limit before the watchdog gives up on it.
        self.grace = grace if grace is not None else (None if seconds is None else max(5.0, 0.2 * seconds))

    def remaining(self) -> float | None:
        return None if self.end is None else self.end - time.monotonic()

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0


def _on_alarm(signum: int, frame: Any) -> None:
    raise UnitTimeout()


def guarded(phase: str, fn: Callable[[], T], deadline: Deadline | None = None,
            on_stuck: Callable[[UnitFailure], None] | None = None) -> T:
    """Run ``fn()``; return its result or raise :class:`UnitFailure` describing how it failed."""
    deadline = deadline or Deadline(None)
    if deadline.expired():
        raise UnitFailure("timeout", f"the unit's time limit of {deadline.seconds:g} s had passed before {phase}",
                          phase)
    remaining = deadline.remaining()
    use_alarm = remaining is not None and threading.current_thread() is threading.main_thread()
    watchdog = None
    if remaining is not None:
        stuck = UnitFailure("timeout", f"still running {remaining + deadline.grace:.0f} s into a {deadline.seconds:g} s "
                            "time limit, stuck in native code that cannot be interrupted; the process was ended",
                            phase, "")

        def give_up() -> None:
            try:
                if on_stuck is not None:
                    on_stuck(stuck)
            finally:
                print(f"cfbench: error: {phase} {stuck.message}; re-run to continue with the other units",
                      file=sys.stderr, flush=True)
                os._exit(EXIT_STUCK)

        watchdog = threading.Timer(remaining + deadline.grace, give_up)
        watchdog.daemon = True
        watchdog.start()
        # Last resort if the GIL itself is held for ever: a C-level watchdog that needs no Python.
        try:
            faulthandler.dump_traceback_later(remaining + 3 * deadline.grace, exit=True, file=sys.__stderr__)
        except (AttributeError, ValueError, OSError):  # no real stderr (embedded): the Python watchdog remains
            pass
    previous = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    try:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-3))
        try:
            return fn()
        finally:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
    except KeyboardInterrupt:
        raise
    except UnitTimeout:
        raise UnitFailure("timeout", f"exceeded the unit's time limit of {deadline.seconds:g} s", phase,
                          traceback.format_exc()) from None
    except SystemExit as err:
        raise UnitFailure("exit", f"the plugin called sys.exit({err.code!r})", phase, traceback.format_exc()) from None
    except UnitFailure:
        raise
    except BaseException as err:  # noqa: BLE001 — every other way out becomes a recorded failure
        tb = traceback.format_exc()
        if _is_out_of_memory(err):
            raise UnitFailure("memory", f"out of memory: {_one_line(err, 200)}; use a smaller budget, batch or "
                              "block size, or a machine with more memory", phase, tb) from None
        if _is_read_only_write(err):
            raise UnitFailure("mutation", "the plugin tried to modify the shared (read-only) split data; copy it "
                              f"first (e.g. data.train.copy()): {_one_line(err, 200)}", phase, tb) from None
        raise UnitFailure("exception", f"{type(err).__name__}: {_one_line(err)}", phase, tb) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGALRM, previous)
        if watchdog is not None:
            watchdog.cancel()
            faulthandler.cancel_dump_traceback_later()
