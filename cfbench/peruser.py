"""Per-user test metrics stored in a result row, for paired significance tests.

A row may hold, under ``"per_user"``, the per-user values of some test metrics (the arrays of
:attr:`cfbench.evaluation.EvaluationResult.per_user`), compactly::

    "per_user": {
      "test": {
        "encoding": "zlib+base64:float32le",
        "users": 6040,                                  # number of evaluated users
        "users_hash": "<32 hex digits>",                # BLAKE2b-128 of the evaluated user ids as int64 LE
        "metrics": {"ndcg@10": "<base64 of zlib(float32 LE per-user values, fractions in [0, 1])>"}
      }
    }

The values are aligned with the evaluated users of the test task, in order (``result.users``);
``users_hash`` lets a reader check that two rows (a sampler and its baseline at the same seed) rank
the same users in the same order before pairing them. ML-1M's 6,040 users take ≤ 32 KB per metric.

Rows without the block stay valid (it is optional and not part of the identity); readers return
``None`` for them. :func:`encode_per_user` is what the harness writes; :func:`per_user_metric`
and :func:`read_per_user` read it back, never raising for a damaged block (it counts as absent,
with a reason from :func:`read_per_user_checked`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ENCODING", "KEY", "PerUser", "encode_per_user", "per_user_metric", "read_per_user",
           "read_per_user_checked", "users_hash"]

KEY = "per_user"
ENCODING = "zlib+base64:float32le"
#: Largest |mean(per-user) × 100 − row metric| accepted (float32 storage rounds each value by ≤ 6e-8).
MEAN_TOLERANCE = 1e-3
DEFAULT_METRICS = ("ndcg@10",)


@dataclasses.dataclass(frozen=True)
class PerUser:
    """One metric's per-user test values of one row (×100, like the row's metrics) and whose they are."""

    values: np.ndarray  # float64, ×100 (fractions × 100), aligned with the evaluated users
    users_hash: str

    @property
    def n(self) -> int:
        return int(self.values.size)


def users_hash(users: np.ndarray) -> str:
    """BLAKE2b-128 (hex) of the evaluated user ids as little-endian int64."""
    data = np.ascontiguousarray(np.asarray(users), dtype="<i8").tobytes()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _encode(values: np.ndarray) -> str:
    raw = np.ascontiguousarray(np.asarray(values, dtype=np.float64), dtype="<f4").tobytes()
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def encode_per_user(result: Any, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, Any]:
    """The ``per_user`` block of one phase for a row, from an :class:`~cfbench.evaluation.EvaluationResult`.

    The harness writes ``row["per_user"] = {"test": encode_per_user(test_result)}``. ``metrics`` are keys
    of ``result.per_user`` (fractions; AUC is pooled, never per user).
    """
    users = np.asarray(result.users)
    out = {"encoding": ENCODING, "users": int(users.size), "users_hash": users_hash(users), "metrics": {}}
    for name in metrics:
        values = np.asarray(result.per_user[name])
        if values.shape != users.shape:
            raise ValueError(f"per-user {name} has shape {values.shape}, expected {users.shape}")
        out["metrics"][name] = _encode(values)
    return out


def _load(row_or_path: dict[str, Any] | str | Path) -> tuple[dict[str, Any] | None, str | None]:
    if isinstance(row_or_path, dict):
        return row_or_path, None
    from cfbench.results import read_row_checked

    return read_row_checked(row_or_path)


def read_per_user_checked(row_or_path: dict[str, Any] | str | Path, metric: str = "ndcg@10",
                          phase: str = "test") -> tuple[PerUser | None, str | None]:
    """``(PerUser, None)``, or ``(None, why)``: ``why`` is ``None`` when the row simply has no per-user
    values for ``metric`` (rows written before they were stored), a short reason when the row or its
    block is damaged or inconsistent with the row's own mean. Never raises."""
    try:
        row, reason = _load(row_or_path)
        if row is None:
            return None, reason
        block = row.get(KEY)
        if block is None:
            return None, None
        part = block.get(phase) if isinstance(block, dict) else None
        if part is None:
            return None, None
        if not isinstance(part, dict) or not isinstance(part.get("metrics"), dict):
            return None, f"{KEY}.{phase} is not a dict with 'metrics'"
        text = part["metrics"].get(metric)
        if text is None:
            return None, None
        if part.get("encoding") != ENCODING:
            return None, f"{KEY}.{phase}.encoding is {part.get('encoding')!r}, expected {ENCODING!r}"
        n, digest = part.get("users"), part.get("users_hash")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            return None, f"{KEY}.{phase}.users is {n!r}, expected a count"
        if not isinstance(digest, str) or len(digest) != 32:
            return None, f"{KEY}.{phase}.users_hash is {str(digest)[:40]!r}, expected 32 hex digits"
        if not isinstance(text, str):
            return None, f"{KEY}.{phase}.metrics.{metric} is not a string"
        try:
            raw = zlib.decompress(base64.b64decode(text, validate=True), bufsize=4 * n + 16)
        except (binascii.Error, zlib.error, ValueError) as err:
            return None, f"{KEY}.{phase}.metrics.{metric} cannot be decoded ({err})"
        if len(raw) != 4 * n:
            return None, f"{KEY}.{phase}.metrics.{metric} holds {len(raw)} bytes, expected {4 * n} ({n} users)"
        values = np.frombuffer(raw, dtype="<f4").astype(np.float64) * 100.0
        if n and not (np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 100.0):
            return None, f"{KEY}.{phase}.metrics.{metric} has values outside [0, 1]"
        summary = (row.get("metrics") or {}).get(phase) or {}
        stated = summary.get(metric) if isinstance(summary, dict) else None
        if n and isinstance(stated, (int, float)) and math.isfinite(stated) \
                and abs(float(values.mean()) - stated) > MEAN_TOLERANCE:
            return None, (f"{KEY}.{phase}.metrics.{metric} averages {values.mean():.6f}, but the row's "
                          f"metrics.{phase}.{metric} is {stated:.6f}")
        return PerUser(values, digest), None
    except Exception as err:  # a damaged block is absent data, never a crash
        return None, f"{KEY} cannot be read ({type(err).__name__}: {str(err)[:100]})"


def read_per_user(row_or_path: dict[str, Any] | str | Path, metric: str = "ndcg@10",
                  phase: str = "test") -> PerUser | None:
    """The row's per-user ``metric`` (×100) with its users' hash, or ``None`` (absent or damaged)."""
    return read_per_user_checked(row_or_path, metric, phase)[0]


def per_user_metric(row_path: dict[str, Any] | str | Path, metric: str = "ndcg@10",
                    phase: str = "test") -> np.ndarray | None:
    """The per-user ``phase`` values of ``metric`` of the row at ``row_path`` (or a parsed row), ×100 like
    the row's metrics and aligned with its evaluated users, as float64; ``None`` for a row that lacks
    them (or whose block is damaged). Their mean is the row's ``metrics[phase][metric]``."""
    got = read_per_user(row_path, metric, phase)
    return None if got is None else got.values
