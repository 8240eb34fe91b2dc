"""Kept selections: each unit's subset saved once, and reused by every later run that needs it.

A unit's selection depends on the data, the protocol and seed, the evaluation (Distill-CF and
SVP-CF choose on validation), the sampler with its parameters and version, the budget and the
dtype: a row's identity without its model (:func:`selection_identity`). With a subset cache
(``cfbench run --subset-cache DIR``, suite key ``subset_cache``) the harness saves every fresh
selection under that identity, and a later unit with the same selection identity (a new model,
another λ grid, a row that failed and is retried) loads it instead of selecting again. A
25-minute Distill-CF distillation is then paid once, whatever is trained on it afterwards.

What a reused selection keeps: the subset itself (user indices, an interaction mask, or the
synthetic matrix, value for value), the sampler's diagnostics, and what the selection cost when
it was computed (``select_s``, ``select_cost_s``, its peak memory) — a row's selection cost is
the real cost of that selection, never the milliseconds of loading a file. Such a row says so in
``selection_reused`` (the file, when and where the selection was computed).

Rules that keep a reused selection from ever being a wrong one:

* a file is used only if its recorded selection identity equals the unit's, key and identity
  both; anything else (another identity, a damaged or foreign file, an unreadable folder) is a
  miss, logged, and the sampler runs as without a cache (its selection then replaces the file);
* the loaded subset is validated against the split like a fresh one;
* files are written atomically (:mod:`cfbench.files`), so a killed run leaves no half file;
* a sampler whose code changes what it selects must bump its ``version``, exactly as for rows.

Files are ``<dir>/<dataset>/<sampler spec>__b<budget>__s<seed>__<key>.npz`` (NumPy, no pickles).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from cfbench.files import atomic_write_bytes, describe_os_error
from cfbench.identity import identity_key
from cfbench.results import _json_safe, _slug
from cfbench.subsets import InteractionSubset, Subset, SyntheticUsers, UserSubset

__all__ = ["FORMAT", "Selection", "SubsetCache", "selection_identity"]

log = logging.getLogger("cfbench")

#: Version of the file layout below; a file of another format is a miss.
FORMAT = 1
_ARRAY = {"users": "users", "interactions": "mask", "synthetic": "matrix"}


@dataclasses.dataclass(frozen=True)
class Selection:
    """A sampler's selection as a unit made it: the subset, the sampler's diagnostics and what it cost.

    ``timings`` holds ``select_s``, ``select_compile_s`` and ``select_cost_s`` (seconds), ``memory``
    the selection's measured peak memory (:class:`cfbench.timing.PeakMemory`'s record). ``source``
    is None for a selection computed in this unit, else where it was loaded from and when and where
    it was computed (what a row records as ``selection_reused``).
    """

    subset: Subset
    diagnostics: Any
    timings: dict[str, float]
    memory: dict[str, Any]
    computed_by: dict[str, Any] | None = None
    created: str | None = None
    source: dict[str, Any] | None = None


def selection_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """What a unit's selection depends on: a row's identity without its model."""
    return {k: v for k, v in identity.items() if k != "model"}


def _subset_array(subset: Subset) -> np.ndarray:
    if isinstance(subset, UserSubset):
        return np.asarray(subset.users)
    if isinstance(subset, InteractionSubset):
        return np.asarray(subset.mask)
    if isinstance(subset, SyntheticUsers):
        return np.asarray(subset.matrix)
    raise TypeError(f"unknown subset type {type(subset).__name__}")


def _subset_of(kind: str, array: np.ndarray) -> Subset:
    if kind == "users":
        return UserSubset(array)
    if kind == "interactions":
        return InteractionSubset(array)
    if kind == "synthetic":
        return SyntheticUsers(array)
    raise ValueError(f"unknown subset kind {kind!r}")


class SubsetCache:
    """A folder of kept selections (see the module's docstring).

    ``path(...)`` names a unit's file; ``load`` returns the :class:`Selection` stored there if it is
    this identity's, else None (and says why in the log); ``save`` writes one atomically and returns
    False, with a warning, where the folder cannot be written (the run goes on: rows matter more).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, dataset: str, sampler_spec: str, budget: int, seed: int, identity: dict[str, Any]) -> Path:
        key = identity_key(selection_identity(identity))
        return self.root / _slug(dataset) / f"{_slug(sampler_spec)}__b{budget}__s{seed}__{key[:16]}.npz"

    def load(self, path: Path, identity: dict[str, Any]) -> Selection | None:
        wanted = json.loads(json.dumps(_json_safe(selection_identity(identity)), sort_keys=True))
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"][()]))
                kind = meta["kind"]
                array = np.array(npz[_ARRAY[kind]])
        except FileNotFoundError:
            return None
        except OSError as err:
            log.warning("subset cache: cannot read %s (%s); selecting again", path, describe_os_error(err, "it"))
            return None
        except Exception as err:  # a damaged or foreign file: np.load, JSON and key errors alike
            log.warning("subset cache: %s is not a readable selection (%s: %s); selecting again", path,
                        type(err).__name__, err)
            return None
        if meta.get("format") != FORMAT or meta.get("key") != identity_key(wanted) or meta.get("identity") != wanted:
            log.warning("subset cache: %s holds another selection (format %s, key %.12s…); selecting again", path,
                        meta.get("format"), meta.get("key"))
            return None
        try:
            subset = _subset_of(kind, array)
        except ValueError as err:
            log.warning("subset cache: %s: %s; selecting again", path, err)
            return None
        source = {"file": str(path), "created": meta.get("created"), "computed_by": meta.get("computed_by")}
        return Selection(subset, meta.get("diagnostics"), dict(meta.get("timings") or {}), dict(meta.get("memory") or {}),
                         meta.get("computed_by"), meta.get("created"), source)

    def save(self, path: Path, identity: dict[str, Any], selection: Selection) -> bool:
        wanted = selection_identity(identity)
        meta = _json_safe({
            "format": FORMAT, "key": identity_key(wanted), "identity": wanted, "kind": selection.subset.kind,
            "diagnostics": selection.diagnostics, "timings": selection.timings, "memory": selection.memory,
            "computed_by": selection.computed_by,
            "created": selection.created or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        buffer = io.BytesIO()
        try:
            np.savez_compressed(buffer, meta=np.array(json.dumps(meta, sort_keys=True, allow_nan=False)),
                                **{_ARRAY[selection.subset.kind]: _subset_array(selection.subset)})
        except (TypeError, ValueError) as err:  # diagnostics JSON cannot carry (NaN, objects): keep the row going
            log.warning("subset cache: the selection for %s cannot be kept (%s); rows are not affected", path, err)
            return False
        try:
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as err:
            log.warning("subset cache: %s; the selection is not kept, rows are not affected",
                        describe_os_error(err, f"selection file {path}"))
            return False
        return True
