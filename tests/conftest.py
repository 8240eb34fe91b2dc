"""Shared fixtures. Tests that need ../shared/data find it through CFBENCH_DATA_DIR and skip otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from cfbench.datasets import Interactions, load_dataset, locate
from cfbench.splits import Split, reference_split


def shared_data_dir() -> Path | None:
    env = os.environ.get("CFBENCH_DATA_DIR")
    return Path(env) if env and Path(env).is_dir() else None


def require_dataset(name: str) -> Interactions:
    """Load a dataset from CFBENCH_DATA_DIR or skip the test, saying why."""
    root = shared_data_dir()
    if root is None or locate(name, root) is None:
        pytest.skip(f"{name} not available: set CFBENCH_DATA_DIR to a folder laid out like ../shared/data")
    return load_dataset(name, root)


@pytest.fixture(scope="session")
def small_data() -> Interactions:
    return load_dataset("ml-latest-small")


@pytest.fixture(scope="session")
def small_split(small_data: Interactions) -> Split:
    return reference_split(small_data, seed=0)


def toy_split(n_users: int = 30, n_items: int = 40, density: float = 0.25, seed: int = 0) -> Split:
    """A random split built directly from matrices, for fast unit tests."""
    rng = np.random.default_rng(seed)
    full = (rng.random((n_users, n_items)) < density).astype(np.float32)
    full[:, 0] = 1.0  # every user has a few interactions
    full[:, 1] = 1.0
    full[:, 2] = 1.0
    parts = rng.integers(0, 3, size=full.shape) * full  # 0 → train, 1 → val, 2 → test among positives
    train = sp.csr_matrix((full > 0) & (parts == 0), dtype=np.float32)
    val = sp.csr_matrix((full > 0) & (parts == 1), dtype=np.float32)
    test = sp.csr_matrix((full > 0) & (parts == 2), dtype=np.float32)
    return Split("toy", seed, train, val, test, np.arange(n_users), np.arange(n_items))


def x64():
    """Context manager enabling float64 in JAX (``jax.enable_x64`` on new JAX, the experimental one before)."""
    import jax

    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # jax < 0.8

    return enable_x64()
