"""A result row's identity: everything that can change its numbers, and nothing else.

Two computations with the same identity give the same row (up to timings and the last bits
of floating point across machines); a row is reused only when its recorded identity equals
the identity of the computation the harness is about to run. The identity covers

* the **data**: the dataset's name and a hash of the loaded interactions themselves (users,
  items, ratings, timestamps, in file order), never the path they were read from;
* the **protocol**: split protocol, its version, rating threshold, minimum interactions, seed;
* the **evaluation**: its version, cut-offs, AUC negatives and the λ-selection metric;
* the **sampler**: name, every parameter, ``version``; and the budget;
* the **model**: name, every hyper-parameter except the tuned ``lam``, ``version``; the dtype. A
  hyper-parameter added after rows were published is left out at the value that computes what the rows
  computed (:data:`NEUTRAL_PARAMS`: a λ grid left at the model's default, ``lambdas`` None; ∞-AE's
  ``exact_interpolation`` off), so those rows keep their identity; any other value is part of it.

Bump :data:`PROTOCOL` or :data:`EVALUATION` ``version`` when the split or the metrics change
what they compute: every existing row then becomes stale and is re-run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from cfbench.datasets import DATASETS, Interactions
from cfbench.synthetic import is_synthetic

__all__ = ["EVALUATION", "NEUTRAL_PARAMS", "PROTOCOL", "content_hash", "dataset_label", "describe_difference",
           "identity_key", "is_neutral", "row_identity"]

PROTOCOL = {"name": "reference", "version": 1, "min_interactions": 3}
#: Model hyper-parameters added after rows were published, at the value that computes what those rows computed:
#: at that value they are left out of the identity (and the rows keep theirs).
NEUTRAL_PARAMS: dict[str, Any] = {"lambdas": None, "exact_interpolation": False}
EVALUATION = {"version": 1, "cutoffs": [10, 100], "auc_negatives": 50, "selection_metric": "hr@100"}


def _column_bytes(values: np.ndarray) -> bytes:
    """Canonical bytes of one column, the same on every platform for the same values."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return np.ascontiguousarray(arr, dtype="<i8").tobytes()
    if arr.dtype.kind == "f":
        return np.ascontiguousarray(arr, dtype="<f8").tobytes()
    return "\x1f".join(map(str, arr.tolist())).encode("utf-8", "surrogatepass")


def content_hash(data: Interactions) -> str:
    """BLAKE2b (128-bit, hex) of the loaded interactions: users, items, ratings, timestamps."""
    cached = data.__dict__.get("_content_hash")
    if cached is not None:
        return cached
    h = hashlib.blake2b(digest_size=16)
    for name in ("user", "item", "rating", "timestamp"):
        col = getattr(data, name)
        h.update(f"{name}:{'none' if col is None else len(col)}:".encode())
        if col is not None:
            h.update(_column_bytes(col))
    digest = h.hexdigest()
    object.__setattr__(data, "_content_hash", digest)  # frozen dataclass: cache beside the fields
    return digest


def dataset_label(data: Interactions, rating_threshold: float | None = None) -> str:
    """The name rows and leaderboards group by: a built-in name, a synthetic dataset's name (``synth-netflix``,
    ``synth-u1000-i500-n20000-s0``: the spec it was generated from), or a file's stem plus a short content
    hash (two different files with one stem never share rows); ``>=T`` marks a rating threshold."""
    label = data.name if data.name in DATASETS or is_synthetic(data) else f"{data.name}-{content_hash(data)[:8]}"
    if rating_threshold is not None:
        label += f"_rating>={rating_threshold:g}"
    return label


def _canonical(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists, numpy scalars plain numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def row_identity(*, data: Interactions, rating_threshold: float | None, seed: int, sampler_name: str,
                 sampler_params: dict[str, Any], sampler_version: str, budget: int, model_name: str,
                 model_params: dict[str, Any], model_version: str, dtype: str,
                 tune_metric: str | None = None) -> dict[str, Any]:
    """The identity of one (data, protocol, seed, sampler, budget, model) computation.

    ``tune_metric``: the validation metric λ is chosen on; ``None`` or the reference's (HR@100, the
    default) leave the identity as it always was, another one replaces ``evaluation.selection_metric``.
    """
    evaluation = EVALUATION if tune_metric in (None, EVALUATION["selection_metric"]) else \
        {**EVALUATION, "selection_metric": tune_metric}
    return _canonical({
        "dataset": {"name": data.name, "label": dataset_label(data, rating_threshold), "hash": content_hash(data),
                    "events": len(data)},
        "protocol": {**PROTOCOL, "rating_threshold": rating_threshold, "seed": seed},
        "evaluation": evaluation,
        "sampler": {"name": sampler_name, "params": sampler_params, "version": str(sampler_version)},
        "budget": budget,
        "model": {"name": model_name, "params": {k: v for k, v in model_params.items()
                                                 if k != "lam" and not is_neutral(k, v)},
                  "version": str(model_version)},
        "dtype": dtype,
    })


def is_neutral(name: str, value: Any) -> bool:
    """Whether model hyper-parameter ``name`` at ``value`` is left out of identities (:data:`NEUTRAL_PARAMS`)."""
    if name not in NEUTRAL_PARAMS:
        return False
    neutral = NEUTRAL_PARAMS[name]
    return value is neutral if neutral is None else (type(value) is type(neutral) and value == neutral)


def identity_key(identity: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``identity``."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def describe_difference(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """What differs between two identities, e.g. ``sampler.version: '1' → '2'`` (for the log)."""
    if not old:
        return "the row predates row identities (schema 1)"
    a, b = _flatten(old), _flatten(new)
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    parts = [f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in changed[:4]]
    if len(changed) > 4:
        parts.append(f"and {len(changed) - 4} more")
    return ", ".join(parts) or "identity key differs"
