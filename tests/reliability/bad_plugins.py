"""Misbehaving sampler and model plugins, loaded by ``module:attr`` specs in the reliability tests.

Each one fails in one of the ways a third-party plugin can: it raises, exits, hangs, returns
the wrong thing, writes into the shared data, runs out of memory, or produces garbage numbers.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np

from cfbench.models.ease import EASE
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import SyntheticUsers, UserSubset


class _Base(Sampler):
    description = "a misbehaving test plugin"

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator):
        return self.misbehave(data, budget, rng)

    def misbehave(self, data, budget, rng):  # pragma: no cover - overridden
        raise NotImplementedError


def _first(data: SelectionData, budget: int) -> UserSubset:
    return UserSubset(np.arange(min(budget, data.n_users)))


class Raises(_Base):
    name = "bad-raises"

    def misbehave(self, data, budget, rng):
        raise RuntimeError("the plugin's own bug")


class ExitZero(_Base):
    name = "bad-exit0"

    def misbehave(self, data, budget, rng):
        sys.exit(0)


class ExitOne(_Base):
    name = "bad-exit1"

    def misbehave(self, data, budget, rng):
        raise SystemExit("giving up")


class Sleeps(_Base):
    name = "bad-sleeps"

    def misbehave(self, data, budget, rng):
        time.sleep(3600)


class Spins(_Base):
    name = "bad-spins"

    def misbehave(self, data, budget, rng):
        x = 0
        while True:
            x += 1


class SwallowsEverything(_Base):
    """Catches every Exception while waiting: the time limit must still end it."""

    name = "bad-swallows"

    def misbehave(self, data, budget, rng):
        while True:
            try:
                time.sleep(3600)
            except Exception:  # noqa: BLE001
                pass


class Deadlocks(_Base):
    name = "bad-deadlocks"

    def misbehave(self, data, budget, rng):
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()


class ReturnsList(_Base):
    name = "bad-returns-list"

    def misbehave(self, data, budget, rng):
        return list(range(budget))


class ReturnsNone(_Base):
    name = "bad-returns-none"

    def misbehave(self, data, budget, rng):
        return None


class ReturnsFloatUsers(_Base):
    name = "bad-float-users"

    def misbehave(self, data, budget, rng):
        return UserSubset(np.arange(budget, dtype=np.float64))


class OverBudget(_Base):
    name = "bad-over-budget"

    def misbehave(self, data, budget, rng):
        return UserSubset(np.arange(min(budget + 1, data.n_users)))


class OutOfRange(_Base):
    name = "bad-out-of-range"

    def misbehave(self, data, budget, rng):
        return UserSubset(np.array([data.n_users + 5]))


class NaNSynthetic(_Base):
    name = "bad-nan-synthetic"

    def misbehave(self, data, budget, rng):
        m = np.ones((budget, data.n_items), np.float32)
        m[0, 0] = np.nan
        return SyntheticUsers(m)


class WritesTrain(_Base):
    """Writes into the train matrix it was given."""

    name = "bad-writes-train"

    def misbehave(self, data, budget, rng):
        data.train.data[:] = 0.0
        return _first(data, budget)


class WritesTrainSneakily(_Base):
    """Re-enables writing on the split's own arrays and zeroes them: only the fingerprint check catches it."""

    name = "bad-writes-sneakily"

    def misbehave(self, data, budget, rng):
        owner = data._split.train.data
        owner.flags.writeable = True
        owner[:] = 0.0
        return _first(data, budget)


class RebindsTrain(_Base):
    """Replaces the arrays of the matrix it was given: harmless, the split itself is untouched."""

    name = "bad-rebinds"

    def misbehave(self, data, budget, rng):
        train = data.train
        train.data = np.zeros_like(train.data)
        return _first(data, budget)


class SetsItem(_Base):
    name = "bad-setitem"

    def misbehave(self, data, budget, rng):
        data.train[0, 0] = 7.0
        return _first(data, budget)


class WritesVal(_Base):
    name = "bad-writes-val"

    def misbehave(self, data, budget, rng):
        data.val.data[:1] = 5.0
        return _first(data, budget)


class HugeAllocation(_Base):
    name = "bad-memory"

    def misbehave(self, data, budget, rng):
        return np.ones((1 << 26, 1 << 26), dtype=np.float64)  # 32 PiB


class BadDiagnostics(_Base):
    name = "bad-diagnostics"

    def misbehave(self, data, budget, rng):
        return _first(data, budget)

    def diagnostics(self):
        return {"an object": object()}


class RaisingDiagnostics(_Base):
    name = "bad-diagnostics-raise"

    def misbehave(self, data, budget, rng):
        return _first(data, budget)

    def diagnostics(self):
        raise KeyError("no such statistic")


class Interrupts(_Base):
    name = "bad-interrupts"

    def misbehave(self, data, budget, rng):
        raise KeyboardInterrupt


class HardExit(_Base):
    """Ends the whole process (only run in a subprocess)."""

    name = "bad-hard-exit"

    def misbehave(self, data, budget, rng):
        os._exit(0)


class NaNModel(EASE):
    """A model that scores everything NaN."""

    name = "bad-nan-model"

    def score(self, queries):
        import jax.numpy as jnp

        return jnp.full(super().score(queries).shape, jnp.nan)


class RaisingModel(EASE):
    name = "bad-raising-model"

    def fit(self, support):
        raise ValueError("cannot fit")


class ExitingModel(EASE):
    name = "bad-exiting-model"

    def fit(self, support):
        sys.exit(0)


class FailsWhenAsked(_Base):
    """Fails while the environment variable CFBENCH_TEST_FAIL is set, then works (a transient fault)."""

    name = "flaky"

    def misbehave(self, data, budget, rng):
        if os.environ.get("CFBENCH_TEST_FAIL"):
            raise ConnectionError("a transient fault")
        return UserSubset(np.sort(rng.choice(data.n_users, size=min(budget, data.n_users), replace=False)))


class ChangesDirectory(_Base):
    """Changes the working directory: rows must still go to the results directory given."""

    name = "bad-chdir"

    def misbehave(self, data, budget, rng):
        os.chdir(os.environ.get("CFBENCH_TEST_CHDIR", "/"))
        return _first(data, budget)


class NoName(Sampler):
    description = "a sampler without a name"

    def select(self, data, budget, rng):
        return _first(data, budget)


class NotImplemented_(Sampler):
    name = "bad-abstract"
    description = "a sampler without select"


class EmptyGridModel(EASE):
    name = "bad-empty-grid"
    lambda_grid = ()


class OddParams(_Base):
    """A sampler whose parameters cannot be written into a row."""

    name = "bad-params"

    def params(self):
        return {"callback": print}

    def misbehave(self, data, budget, rng):
        return _first(data, budget)


class StuckInNativeCode(_Base):
    """Blocks the time-limit signal and sleeps: like native code that never returns to Python."""

    name = "bad-stuck"

    def misbehave(self, data, budget, rng):
        import signal

        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(3600)


class HugeDeviceAllocation(_Base):
    """Asks XLA for a 4 PiB array: RESOURCE_EXHAUSTED, reported as out of memory."""

    name = "bad-device-memory"

    def misbehave(self, data, budget, rng):
        import jax.numpy as jnp

        return jnp.ones((1 << 24, 1 << 24)).block_until_ready()


class FailsOnce(_Base):
    """Fails the first time in any process (a marker file in $CFBENCH_TEST_MARKER_DIR records it), then works."""

    name = "fails-once"

    def misbehave(self, data, budget, rng):
        marker = os.path.join(os.environ["CFBENCH_TEST_MARKER_DIR"], f"failed-{budget}")
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise ConnectionError("a transient fault on this worker")
        return UserSubset(np.sort(rng.choice(data.n_users, size=min(budget, data.n_users), replace=False)))
