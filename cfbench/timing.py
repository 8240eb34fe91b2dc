"""Wall-clock timing with JAX compilation time measured apart.

JAX reports the duration of every trace, lowering and backend compile through
``jax.monitoring``; :class:`Stopwatch` sums those that happen while it runs, so a phase's
time splits into compile time and the rest. Callers must ``block_until_ready()`` their
results inside the ``with`` block: JAX dispatch is asynchronous.
"""

from __future__ import annotations

import threading
import time

from jax import monitoring

__all__ = ["Stopwatch"]

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_lock = threading.Lock()
_compile_total = 0.0
_registered = False


def _on_event(event: str, duration_secs: float, **_: object) -> None:
    global _compile_total
    if event in _COMPILE_EVENTS:
        with _lock:
            _compile_total += duration_secs


def _compile_seconds() -> float:
    global _registered
    if not _registered:
        monitoring.register_event_duration_secs_listener(_on_event)
        _registered = True
    return _compile_total


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (excluding compilation) and ``sw.compile_seconds``."""

    def __init__(self) -> None:
        self.wall_seconds = 0.0
        self.compile_seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._compile0 = _compile_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_seconds = time.perf_counter() - self._t0
        self.compile_seconds = min(_compile_seconds() - self._compile0, self.wall_seconds)

    @property
    def seconds(self) -> float:
        """Wall time minus the JAX compilation that happened inside the block."""
        return self.wall_seconds - self.compile_seconds
