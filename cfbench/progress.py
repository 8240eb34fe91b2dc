"""Progress bars inside long units, shown under the suite's bar and silenced with it (``-q``).

A plugin whose selection runs for minutes (Distill-CF's steps, SVP-CF's proxy epochs) reports
its own progress with :func:`unit_progress`::

    from cfbench.progress import unit_progress

    with unit_progress(total=steps, desc="my-sampler b=100", unit="step") as bar:
        for step in range(steps):
            ...
            bar.update()
            bar.set_postfix(best=f"{best:.2f}")   # e.g. the best validation score so far

The bar shows steps, rate and ETA on the line below the suite's bar and disappears when done. It
is off when the suite runs quietly (``cfbench run -q``, ``run_suite(progress=False)``), when
stderr is not a terminal, and in Ray workers (their output does not reach the driver).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from tqdm.auto import tqdm

__all__ = ["suite_progress", "unit_progress"]

_enabled: bool | None = None  # None: outside a suite, tqdm decides (shown on a terminal)


@contextlib.contextmanager
def suite_progress(enabled: bool) -> Iterator[None]:
    """Within the block, unit bars are shown only if ``enabled`` (the suite's own bar is)."""
    global _enabled
    previous, _enabled = _enabled, enabled
    try:
        yield
    finally:
        _enabled = previous


def unit_progress(total: int | None, desc: str, unit: str = "it", **kwargs: Any) -> tqdm:
    """A transient tqdm bar for work inside one unit (see the module docstring)."""
    disable = None if _enabled is None or _enabled else True  # None: only on a terminal
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=False, position=1 if _enabled else None,
                dynamic_ncols=True, file=sys.stderr, **kwargs)
