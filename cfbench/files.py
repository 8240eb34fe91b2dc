"""Crash-safe file writes: every file cfbench writes appears complete or not at all.

A write goes to a hidden temporary file next to its target, named
``.<target>.<host>.<pid>.tmp``, is flushed and fsynced, then renamed over the target
(``os.replace`` is atomic on POSIX). A reader therefore sees the old file or the whole new
one, never a truncated one, whatever happens to the writer (``kill -9``, a full disk, a
read-only folder). A writer killed before the rename leaves its temporary file behind;
:func:`remove_orphans` deletes those whose process is gone, and hidden files are never
read as rows or leaderboards.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TMP_SUFFIX", "atomic_write_bytes", "atomic_write_text", "describe_os_error", "is_temporary",
           "remove_orphans"]

TMP_SUFFIX = ".tmp"
_HOST = socket.gethostname().replace(".", "_") or "host"


def _tmp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{_HOST}.{os.getpid()}{TMP_SUFFIX}")


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is one of cfbench's temporary files (complete or abandoned)."""
    return path.name.startswith(".") and path.name.endswith(TMP_SUFFIX)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename); return ``path``.

    On any failure (including ``OSError`` for a full disk or a read-only folder) the target is
    left as it was and the temporary file is removed before the error propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _orphans(root: Path) -> Iterator[Path]:
    for path in root.rglob(f".*{TMP_SUFFIX}"):
        parts = path.name[1:-len(TMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or parts[1] != _HOST or not parts[2].isdigit():
            continue  # another host's file: its writer may still be alive
        if not _pid_alive(int(parts[2])):
            yield path


def remove_orphans(root: str | Path) -> list[Path]:
    """Delete the temporary files under ``root`` left by writers of this host that no longer run."""
    root = Path(root)
    removed = []
    if not root.is_dir():
        return removed
    for path in _orphans(root):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError:  # read-only folder: nothing we can do, and nothing is read from it
            pass
    return removed


def describe_os_error(err: OSError, what: str) -> str:
    """A one-line message for a failed file operation that says what to do about it."""
    where = f" ({err.filename})" if getattr(err, "filename", None) else ""
    if err.errno == errno.ENOSPC:
        return f"cannot write {what}: the disk is full{where}; free some space and re-run (nothing written was lost)"
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {what}: permission denied or read-only file system{where}; "
                "choose a writable folder (--results-dir / --leaderboards-dir)")
    if err.errno == errno.EFBIG:
        return (f"cannot write {what}: file too large for this file system or the process's file-size limit"
                f"{where}; raise the limit (ulimit -f) or write elsewhere (nothing written was lost)")
    if err.errno == errno.EDQUOT:
        return f"cannot write {what}: disk quota exceeded{where}; free some space and re-run"
    return f"cannot write {what}: {err.strerror or err}{where}"
