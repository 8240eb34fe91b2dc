"""Which JAX device a unit computes on (``--device auto|cpu|gpu``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["DeviceError", "gpu_count", "on_device", "resolve_device"]


class DeviceError(RuntimeError):
    """The requested device is not available (e.g. ``--device gpu`` without a CUDA-enabled JAX)."""


def gpu_count() -> int:
    """Number of GPUs JAX sees in this process (0 with the CPU-only jaxlib)."""
    import jax

    try:
        return len(jax.devices("gpu"))
    except RuntimeError:  # no GPU backend in this jaxlib
        return 0


def resolve_device(name: str) -> Any:
    """The first JAX device of kind ``name``: ``auto`` prefers a GPU, ``cpu`` and ``gpu`` insist."""
    import jax

    if name not in ("auto", "cpu", "gpu"):
        raise DeviceError(f"unknown device {name!r}: use auto, cpu or gpu")
    if name in ("auto", "gpu") and gpu_count():
        return jax.devices("gpu")[0]
    if name == "gpu":
        raise DeviceError("--device gpu, but JAX sees no GPU: install the CUDA build (pip install -e \".[cuda12]\") "
                          "on a machine with an NVIDIA GPU, or use --device cpu")
    return jax.devices("cpu")[0]


@contextlib.contextmanager
def on_device(name: str) -> Iterator[Any]:
    """Run the block with JAX's default device set to :func:`resolve_device` (``name``)."""
    import jax

    device = resolve_device(name)
    with jax.default_device(device):
        yield device
