"""Unit claims: N processes on one results directory split the work, none computes a unit twice.

Before computing a unit, a process *claims* it: it takes an exclusive ``flock`` on
``<results>/.claims/<key>.lock`` and writes who it is (host, pid, start time) into the file.
The kernel drops the lock when the process ends, however it ends (``kill -9`` included), so a
killed process can never leave a unit claimed for ever; the file it leaves behind records that
an attempt died, which the harness uses to run such units last. A finished unit's claim file
is deleted while still locked; a claimant re-checks after locking that the file it holds is
still the one at the path (the classic unlink race), and re-checks the unit's rows, which a
process that held the claim before it may have written.

``flock`` works on local file systems and, emulated with POSIX locks by Linux, on NFSv4.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

__all__ = ["CLAIMS_DIR", "Claim", "abandoned_attempt", "claim", "remove_finished_claims"]

CLAIMS_DIR = ".claims"


class Claim:
    """An exclusive claim on one unit; release with :meth:`release` (or use as a context manager)."""

    def __init__(self, path: Path, fd: int, previous: dict[str, Any] | None) -> None:
        self.path = path
        self._fd = fd
        #: What the claim file said before we took it: the record of an attempt that died, or None.
        self.previous = previous

    def release(self, finished: bool) -> None:
        """Drop the claim; delete the claim file when the unit is ``finished`` (rows written)."""
        if self._fd < 0:
            return
        try:
            if finished:
                self.path.unlink(missing_ok=True)
            else:
                os.ftruncate(self._fd, 0)
        except OSError:
            pass
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release(finished=False)


def _read_record(fd: int) -> dict[str, Any] | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace").strip()
        record = json.loads(text) if text else None
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def claim(results_dir: str | Path, key: str, what: str, *, wait: bool = False) -> Claim | None:
    """Claim unit ``key`` (``what`` describes it); ``None`` if another live process holds it and not ``wait``."""
    folder = Path(results_dir) / CLAIMS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder finished and deleted the file: lock the current one
            os.close(fd)
            continue
        previous = _read_record(fd)
        record = {"host": socket.gethostname(), "pid": os.getpid(), "unit": what,
                  "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())
        return Claim(path, fd, previous)


def abandoned_attempt(results_dir: str | Path, key: str) -> dict[str, Any] | None:
    """The record of an attempt at ``key`` whose process died mid-unit (unlocked, non-empty claim file)."""
    path = Path(results_dir) / CLAIMS_DIR / f"{key}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # held by a live process: not abandoned
        return _read_record(fd)
    finally:
        os.close(fd)


def remove_finished_claims(results_dir: str | Path, finished_keys: set[str]) -> None:
    """Delete leftover claim files of units whose rows are all written (e.g. by a process killed just after)."""
    folder = Path(results_dir) / CLAIMS_DIR
    if not folder.is_dir():
        return
    for path in folder.glob("*.lock"):
        if path.stem not in finished_keys:
            continue
        c = claim(results_dir, path.stem, "cleanup")
        if c is not None:
            c.release(finished=True)
