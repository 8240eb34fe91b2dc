"""Where and how cfbench's numerics run: the JAX device (``--device auto|cpu|gpu``), the precision of
float32 matrix products (true float32 unless ``$CFBENCH_MATMUL_PRECISION`` says otherwise: the
:func:`precise_jit` every numerical kernel is compiled with), and the compilation cache (``--compile-cache``)."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["MATMUL_PRECISION_ENV", "DeviceError", "gpu_count", "matmul_precision", "on_device", "precise",
           "precise_jit", "resolve_device", "use_compile_cache"]

#: Environment variable that sets the precision of float32 matrix products (default ``highest``).
MATMUL_PRECISION_ENV = "CFBENCH_MATMUL_PRECISION"
_PRECISIONS = ("highest", "high", "default")


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
        raise DeviceError("--device gpu, but JAX sees no GPU: install the CUDA build (pip install -e \".[cuda13]\" or "
                          "\".[cuda12]\") on a machine with an NVIDIA GPU, or use --device cpu")
    return jax.devices("cpu")[0]


def matmul_precision() -> str:
    """The precision of float32 matrix products in units: ``$CFBENCH_MATMUL_PRECISION``, else ``highest``.

    JAX's own default lets a GPU compute float32 products in TF32 (10-bit mantissa): about 1e-3
    relative error in the NTK and Gram matrices, which the ridge solves amplify, so rows would not
    be the float32 results they claim to be. ``highest`` is true float32 on every device (on a CPU
    all three are the same); ``high`` (bf16×3) and ``default`` (TF32 on a GPU) trade accuracy for speed,
    and every row records which was used.
    """
    value = os.environ.get(MATMUL_PRECISION_ENV, "highest").strip().lower()
    if value not in _PRECISIONS:
        raise DeviceError(f"${MATMUL_PRECISION_ENV}={value!r} is not a matmul precision: use one of "
                          f"{', '.join(_PRECISIONS)} (unset: highest)")
    return value


def precise() -> contextlib.AbstractContextManager[Any]:
    """Context in which JAX computes float32 products at :func:`matmul_precision` (traced or eager)."""
    import jax

    return jax.default_matmul_precision(matmul_precision())


def precise_jit(fun: Callable[..., Any] | None = None, /, **jit_kwargs: Any) -> Any:
    """:func:`jax.jit` whose calls trace and run under :func:`precise`, wherever they are called from.

    cfbench's numerics use it instead of ``jax.jit``, so a model or sampler used directly (not in a
    unit) on a GPU computes true float32 products too. JAX keys its compilation cache on the
    precision, so each setting compiles once.
    """
    if fun is None:
        return functools.partial(precise_jit, **jit_kwargs)
    import jax

    jitted = jax.jit(fun, **jit_kwargs)

    @functools.wraps(fun)
    def call(*args: Any, **kwargs: Any) -> Any:
        with precise():
            return jitted(*args, **kwargs)

    return call


@contextlib.contextmanager
def on_device(name: str) -> Iterator[Any]:
    """Run the block on :func:`resolve_device` (``name``) with float32 products at :func:`matmul_precision`."""
    import jax

    device = resolve_device(name)
    with jax.default_device(device), precise():
        yield device


def use_compile_cache(folder: str | os.PathLike[str]) -> Path:
    """Keep JAX's compiled programs in ``folder`` (created), so later runs and other workers load them.

    Compiled programs are the same programs, so rows are the same; only the ``*_compile_s`` timings shrink.
    The cache holds executable code: keep it in a folder only you can write. Returns the absolute folder;
    a folder that cannot be created is a one-line :class:`DeviceError`.
    """
    import jax

    path = Path(folder).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DeviceError(f"cannot use {path} as the compilation cache ({err.strerror or err}): pass a writable "
                          "folder to --compile-cache") from None
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.jax_compilation_cache_dir != str(path):
        compilation_cache.set_cache_dir(str(path))
        compilation_cache.reset_cache()  # a cache JAX already opened (or found absent) is re-read from ``path``
    return path
