"""Datasets: where they are found, how their files are read, and their interaction tables.

A dataset is read into an :class:`Interactions` table (one row per rating event, with
original user and item identifiers). Built-in names know their file layout; any other
name is treated as a path to a CSV/TSV file.

Data directories are searched in order: ``--data-dir``, ``$CFBENCH_DATA_DIR``, the
per-user cache (``cfbench fetch`` downloads there), then the data embedded in the
package (``ml-latest-small`` only; its licence allows redistribution). Files may be
plain or ``.xz``/``.gz`` compressed.

Files are read strictly and never by guesswork: UTF-8 only, one separator, the same number
of fields on every line, columns taken by name whenever there is a header, and typed values
(ids present, ratings finite, timestamps numbers or ISO 8601 dates). Anything else is refused
with a one-line :class:`DatasetError` naming the file, the column and the line, and saying
what the file should look like (see :func:`read_interaction_file`).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import http.client
import io
import logging
import lzma
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetSpec",
    "Download",
    "Interactions",
    "cache_dir",
    "data_dirs",
    "download_url",
    "fetch",
    "load_dataset",
    "locate",
    "read_interaction_file",
]

EMBEDDED_DIR = Path(__file__).parent / "_embedded"
COMPRESSED_SUFFIXES = ("", ".xz", ".gz")
MIRROR_ENV = "CFBENCH_MIRROR"  # base URL (or folder) of a mirror that `fetch` reads instead of the original hosts
_HASH = re.compile(r"sha256:[0-9a-f]{64}|md5:[0-9a-f]{32}")

log = logging.getLogger("cfbench")


class DatasetError(ValueError):
    """A dataset could not be found or read; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Interactions:
    """A table of user-item events with original identifiers.

    ``rating`` and ``timestamp`` are ``None`` when the source has no such column.
    """

    name: str
    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray | None = None
    timestamp: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        n = len(self.user)
        for field in ("item", "rating", "timestamp"):
            col = getattr(self, field)
            if col is not None and len(col) != n:
                raise DatasetError(f"{self.name}: column {field!r} has {len(col)} rows, user has {n}")

    def __len__(self) -> int:
        return len(self.user)

    @property
    def n_users(self) -> int:
        return int(pd.unique(self.user).size)

    @property
    def n_items(self) -> int:
        return int(pd.unique(self.item).size)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A built-in dataset: its folder name, the files that hold it and how to read them."""

    name: str
    folder: str
    files: tuple[str, ...]  # alternatives, first found wins
    reader: Callable[[Path, str], Interactions]
    description: str
    licence: str
    url: str | None = None
    archive_member: str | None = None  # path of the ratings file inside the downloaded zip
    known_hash: str | None = None  # "md5:..."/"sha256:..." of the official archive; None: recorded on first download
    downloads: tuple[Download, ...] = ()  # what `fetch` downloads when it is more than `url` (several files, hashes)
    source: str = ""  # where to get the files by hand, quoted when the dataset is missing or has no download

    @property
    def fetch_plan(self) -> tuple[Download, ...]:
        """The files :func:`fetch` downloads (``()``: none, the files must be put in a data directory by hand)."""
        if self.downloads:
            return self.downloads
        if self.url is None:
            return ()
        return (Download(self.url, self.known_hash, (self.archive_member,) if self.archive_member else ()),)


@dataclasses.dataclass(frozen=True)
class Download:
    """One file :func:`fetch` downloads into the cache, and what the dataset folder keeps of it.

    ``known_hash`` is the published checksum of the download (``"sha256:<hex>"`` or ``"md5:<hex>"``); without
    one, the sha256 of the first download is recorded next to it (``<file>.sha256``) and later fetches are
    verified against that record. ``members`` are files taken out of a zip or tar archive (``.tar``, ``.tar.gz``,
    ``.tar.xz``, ``.tar.bz2``) and kept under their base names, each checked against ``member_hashes`` where
    one is published; without members the downloaded file itself (plain or ``.gz``/``.xz``) is kept.
    """

    url: str
    known_hash: str | None = None
    members: tuple[str, ...] = ()
    member_hashes: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        for value in (self.known_hash, *self.member_hashes):
            if value is not None and _HASH.fullmatch(value) is None:
                raise ValueError(f"checksum {value!r} of {self.url} is not 'sha256:<64 hex>' or 'md5:<32 hex>'")
        if len(self.member_hashes) > len(self.members):
            raise ValueError(f"{self.url}: more member_hashes than members")


# ----------------------------------------------------------------------------- file access

# What a readable interactions file looks like; quoted at the end of the errors that are about layout.
LAYOUT_HINT = ("expected a header naming user and item columns (user/userId/user_id, item/itemId/movieId/item_id, "
               "...), optionally rating/timestamp, or no header and 2-4 numeric columns user,item[,rating[,timestamp]]")
SEPARATORS = ("::", "\t", ",", ";", "|")  # auto-detected only when the first line holds exactly one of them

# Header names per role, compared after lower-casing and dropping spaces, '_', '-' and '.'.
ALIASES: dict[str, frozenset[str]] = {
    "user": frozenset({"user", "userid", "uid", "u", "users", "customer", "customerid", "visitor", "visitorid",
                       "member", "memberid", "reader", "readerid", "listener", "listenerid"}),
    "item": frozenset({"item", "itemid", "iid", "i", "items", "movie", "movieid", "product", "productid", "asin",
                       "track", "trackid", "song", "songid", "artist", "artistid", "book", "bookid", "isbn",
                       "business", "businessid", "poi", "poiid", "venue", "venueid", "location", "locationid",
                       "article", "articleid", "video", "videoid", "anime", "animeid", "game", "gameid",
                       "recipe", "recipeid"}),
    "rating": frozenset({"rating", "ratings", "score", "value", "r", "weight", "count", "counts", "plays",
                         "playcount", "listens", "listencount", "clicks", "clickcount", "preference", "pref",
                         "stars", "frequency", "freq", "affinity"}),
    "timestamp": frozenset({"timestamp", "time", "ts", "t", "datetime", "date", "unixtime", "epoch"}),
}
ROLES = ("user", "item", "rating", "timestamp")

_MAGIC = ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"PK\x03\x04", "zip"),
          (b"\x28\xb5\x2f\xfd", "zstd"), (b"7z\xbc\xaf\x27\x1c", "7z"))
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = r"[+-]?\d+"
_BLANK = re.compile(r"\s*")
_ISO_HINT = "timestamps must all be Unix times (numbers) or all ISO 8601 dates (YYYY-MM-DD[ HH:MM[:SS]])"


def _error(path: Path | str, message: str) -> DatasetError:
    """A one-line error naming the file."""
    text = f"{path}: {message}"
    return DatasetError(" ".join(text.replace("\r", "\n").split("\n")))


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _magic(raw: bytes) -> str | None:
    return next((kind for magic, kind in _MAGIC if raw.startswith(magic)), None)


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed by suffix; every failure is a one-line :class:`DatasetError`."""
    if path.is_dir():
        raise _error(path, "is a directory; pass the interactions file inside it")
    if not path.exists():
        raise _error(path, f"no such file; pass a CSV/TSV path or a built-in name ({', '.join(DATASETS)})")
    if not path.is_file():  # reading a pipe would wait for ever, a device (/dev/zero) never end
        raise _error(path, "is not a regular file (a pipe, socket or device); save the interactions to a file first")
    suffix = path.suffix.lower()
    expected = {".xz": "xz", ".gz": "gzip"}.get(suffix)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            kind = _magic(head)  # checked before reading the rest, which may be large
            if expected is None and kind == "zip":
                raise _error(path, "is a zip archive; extract the interactions file from it first")
            if expected is None and kind is not None:
                raise _error(path, f"is {kind}-compressed but its name does not end in .xz or .gz; "
                                   "decompress it or give it the right suffix")
            if expected is not None and kind is not None and kind != expected:
                raise _error(path, f"is named {suffix} but is {kind}-compressed; give it the right suffix")
            raw = head + fh.read()
    except OSError as err:
        raise _error(path, f"cannot be read ({err.strerror or err})") from None
    if expected is None:
        return raw
    try:
        return lzma.decompress(raw, format=lzma.FORMAT_XZ) if expected == "xz" else gzip.decompress(raw)
    except (lzma.LZMAError, gzip.BadGzipFile, EOFError, zlib.error, OSError) as err:
        reason = str(err) or type(err).__name__
        raise _error(path, f"is not a valid {suffix} file ({reason}); it may be truncated or corrupt, "
                           "re-download or re-compress it") from None


def _read_text(path: Path) -> str:
    """The file as text: decompressed, decoded as UTF-8 (a byte-order mark is dropped), newlines made ``\\n``."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        hint = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise _error(path, f"is not UTF-8 text{hint}: byte 0x{raw[err.start]:02x} at line {line} cannot be decoded; "
                           "save the file as UTF-8") from None
    nul = text.find("\x00")
    if nul >= 0:
        raise _error(path, f"contains a NUL byte at line {text.count(chr(10), 0, nul) + 1}; it is a binary file, "
                           "not CSV/TSV text")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def open_text(path: Path) -> io.TextIOBase:
    """Open a plain, .xz or .gz UTF-8 text file (see :func:`_read_text` for what is refused)."""
    return io.StringIO(_read_text(Path(path)), newline="")


def find_file(folder: Path, name: str) -> Path | None:
    for suffix in COMPRESSED_SUFFIXES:
        candidate = folder / (name + suffix)
        if candidate.is_file():
            return candidate
    return None


# ----------------------------------------------------------------------------- delimited tables


def _normalise(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name.strip().strip('"').lower())


def _role_of(name: str) -> str | None:
    key = _normalise(name)
    return next((role for role in ROLES if key in ALIASES[role]), None)


def _is_number(field: str) -> bool:
    return _NUMBER.fullmatch(field.strip()) is not None


def _first_line(text: str) -> tuple[int, str]:
    """1-based number and text of the first line that is not blank (blank = only spaces)."""
    match = re.search(r"^(?! *$).*$", text, re.M)
    assert match is not None  # the caller checked the text is not blank
    return text.count("\n", 0, match.start()) + 1, match.group(0)


def _detect_sep(path: Path, lineno: int, line: str) -> str:
    bare = re.sub(r'"[^"]*"', "", line)
    found = [s for s in SEPARATORS if s in bare]
    names = {"\t": "tab", "::": "'::'"}
    if not found:
        raise _error(path, f"line {lineno} has no field separator (tab, ',', ';', '|' or '::'), so the file has a "
                           f"single column; {LAYOUT_HINT}")
    if len(found) > 1:
        shown = " and ".join(names.get(s, repr(s)) for s in found)
        raise _error(path, f"line {lineno} contains both {shown}, so the separator is ambiguous; "
                           "use one separator throughout")
    return found[0]


def _split_line(line: str, sep: str) -> list[str]:
    if '"' not in line:
        return line.split(sep)
    return next(csv.reader([line], delimiter=sep, quotechar='"', strict=False), [])


def _records_plain(text: str, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """Line numbers (1-based) and field counts of the non-blank lines of unquoted text; ``sep`` is one ASCII char."""
    b = np.frombuffer(text.encode("utf-8"), np.uint8)
    nl = np.flatnonzero(b == 10)
    ends = nl if b.size and b[-1] == 10 else np.append(nl, b.size)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    counts = np.bincount(np.searchsorted(ends, np.flatnonzero(b == ord(sep))), minlength=ends.size) + 1
    spaces = np.bincount(np.searchsorted(ends, np.flatnonzero(b == 32)), minlength=ends.size)
    keep = (ends - starts) != spaces
    return np.flatnonzero(keep) + 1, counts[keep]


def _records_quoted(path: Path, text: str, sep: str) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`_records_plain` for text with quotes (a quoted field may hold separators and newlines)."""
    lines, counts = [], []
    raw_lines = text.split("\n")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"', doublequote=True, strict=True)
    prev = 0
    try:
        for rec in reader:
            start, prev = prev + 1, reader.line_num
            if not rec or (start == prev and not raw_lines[start - 1].strip(" ")):
                continue  # blank line, skipped like pandas does
            lines.append(start)
            counts.append(len(rec))
    except csv.Error as err:
        problem = "opens a quote that is never closed" if "end of data" in str(err) else f"cannot be parsed ({err})"
        raise _error(path, f"line {prev + 1} {problem}; check its quotes (a quote inside a quoted field is "
                           'written "")') from None
    return np.asarray(lines, dtype=np.int64), np.asarray(counts, dtype=np.int64)


class _Column:
    """One column of a table, with what an error about it needs: its name and the line of each row."""

    def __init__(self, path: Path, values: pd.Series, lines: np.ndarray, label: str, role: str, hint: str):
        self.path, self.values, self.lines, self.label, self.role, self.hint = path, values, lines, label, role, hint

    def fail(self, row: int, problem: str) -> DatasetError:
        return _error(self.path, f"line {int(self.lines[row])}, column {self.label}: {problem}; {self.hint}")

    def first(self, mask: np.ndarray) -> int:
        return int(np.argmax(mask))

    def missing(self) -> None:
        na = self.values.isna().to_numpy()
        if na.any():
            raise self.fail(self.first(na), f"missing {self.role}")


def _ids(col: _Column, integers_only: bool) -> np.ndarray:
    s = col.values
    col.missing()
    kind = s.dtype.kind
    if kind in "iu":
        return s.to_numpy()
    if kind == "b":
        raise col.fail(0, f"{_show(str(s.iloc[0]))} is not a {col.role} id")
    if kind == "f":
        v = s.to_numpy(np.float64)
        bad = (v != np.floor(v)) | (np.abs(v) >= 2.0**63)
        if bad.any():
            raise col.fail(col.first(bad), f"{_show(float(v[col.first(bad)]))} is not a whole number")
        return v.astype(np.int64)
    text = s.astype(object).map(str).str.strip()
    empty = (text == "").to_numpy()
    if empty.any():
        raise col.fail(col.first(empty), f"missing {col.role}")
    if integers_only:
        bad = ~text.str.fullmatch(_INTEGER).to_numpy(bool)
        if bad.any():
            raise col.fail(col.first(bad), f"{_show(text.iloc[col.first(bad)])} is not an integer id")
    return text.to_numpy(dtype=object)


def _ratings(col: _Column) -> np.ndarray:
    s = col.values
    col.missing()
    if s.dtype.kind in "iuf":
        v = s.to_numpy(np.float64)
    else:
        v = pd.to_numeric(s.astype(object), errors="coerce").to_numpy(np.float64) if s.dtype.kind != "b" \
            else np.full(len(s), np.nan)
    with np.errstate(over="ignore"):
        out = v.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        row = col.first(bad)
        raise col.fail(row, f"{_show(str(s.iloc[row]))} is not a finite number")
    return out


def _timestamps(col: _Column) -> np.ndarray:
    s = col.values
    col.missing()
    kind = s.dtype.kind
    if kind in "iu":
        v = s.to_numpy()
        if kind == "u" and (v > np.iinfo(np.int64).max).any():
            row = col.first(v > np.iinfo(np.int64).max)
            raise col.fail(row, f"{v[row]} is too large for a timestamp")
        return v.astype(np.int64)
    if kind == "f":
        v = s.to_numpy(np.float64)
        bad = ~np.isfinite(v) | (np.abs(v) >= 2.0**63)
        if bad.any():
            raise col.fail(col.first(bad), f"{_show(str(s.iloc[col.first(bad)]))} is not a valid time")
        return v.astype(np.int64)  # fractional seconds are dropped
    text = s.astype(object).map(str).str.strip()
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        value = text.iloc[col.first(bad)]
        problem = "is a number but other timestamps are dates" if _is_number(value) else \
            "is neither a number nor an ISO 8601 date"
        raise col.fail(col.first(bad), f"{_show(value)} {problem}")
    return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def _internal_sep(path: Path, text: str, sep: str) -> tuple[str, str]:
    """A one-character ASCII separator for the C parser; a longer one (``::``) is replaced in the text."""
    if len(sep) == 1 and ord(sep) < 128 and sep not in '"\n':
        return text, sep
    if not sep or "\n" in sep or '"' in sep:
        raise _error(path, f"cannot use {sep!r} as a column separator")
    for repl in ("\x1f", "\x1e", "\x1d", "\x1c"):
        if repl not in text:
            return text.replace(sep, repl), repl
    raise _error(path, "contains ASCII control characters \\x1c-\\x1f; clean the file first")


def _parse_interactions(path: Path, text: str, *, name: str, sep: str | None, header: bool | None,
                        columns: Sequence[str] | None, integers_only: bool, hint: str) -> Interactions:
    """Read delimited ``text`` into :class:`Interactions`, refusing anything it would have to guess about.

    ``header``: ``True`` the first line names the columns; ``False`` it is data; ``None`` decide: a header
    exists if the first line has a non-empty field that is not a number. ``columns``: names of the columns by
    position for a file without a header (implies ``header=False``).
    """
    if _BLANK.fullmatch(text):
        raise _error(path, f"is empty; {hint}")
    lineno, line = _first_line(text)
    if sep is None:
        sep = _detect_sep(path, lineno, line)
    text, isep = _internal_sep(path, text, sep)
    line = line.replace(sep, isep) if isep != sep else line
    fields = [f.strip() for f in _split_line(line, isep)]
    shown = ", ".join(_show(f) for f in fields[:12]) + (", ..." if len(fields) > 12 else "")
    if columns is not None:
        header = False
        if any(_role_of(f) for f in fields if not _is_number(f)):
            raise _error(path, f"line {lineno} ({shown}) looks like a header, but columns= says the file has none; "
                               "drop columns= to read the columns by name")
    forced_header = bool(header)
    if columns is None and header is None:
        header = any(f and not _is_number(f) for f in fields)

    # Which column (by position) holds each role, and how errors should call it.
    roles: dict[str, int] = {}
    labels: dict[str, str] = {}
    if header:
        names = [f.strip('"').strip() for f in fields]
        seen: dict[str, int] = {}
        for i, n in enumerate(names):
            key = n.lower()
            if key and key in seen:
                raise _error(path, f"column name {n!r} appears twice in the header (columns {seen[key] + 1} and "
                                   f"{i + 1}); give every column a distinct name")
            seen[key] = i
        for i, n in enumerate(names):
            role = _role_of(n) if n else None
            if role is None:
                continue
            if role in roles:
                raise _error(path, f"columns {names[roles[role]]!r} and {n!r} both name the {role} column; "
                                   "keep one or rename the other")
            roles[role], labels[role] = i, f"{n!r}"
        missing = [r for r in ("user", "item") if r not in roles]
        if missing:
            what = " and ".join(missing)
            why = "" if forced_header else " (it has a non-numeric field)"
            raise _error(path, f"line {lineno} is read as a header{why} but names no {what} column; "
                               f"columns found: {shown}; {hint}")
    else:
        ncols = len(fields)
        if columns is None:
            if not 2 <= ncols <= 4:
                raise _error(path, f"line {lineno} has {ncols} field{'s' if ncols != 1 else ''} and no header; {hint}")
            columns = ROLES[:ncols]
        elif len(columns) != ncols:
            raise _error(path, f"line {lineno} has {ncols} fields but {len(columns)} columns were named "
                               f"({', '.join(map(str, columns))}); {hint}")
        for i, n in enumerate(columns):
            role = _role_of(n)
            if role is not None:
                if role in roles:
                    raise _error(path, f"columns {columns[roles[role]]!r} and {n!r} both name the {role} column")
                roles[role], labels[role] = i, f"{i + 1} ({role})"
        if "user" not in roles or "item" not in roles:
            raise _error(path, f"columns= ({', '.join(map(str, columns))}) must name a user and an item column")

    # Every line must have as many fields as the first one.
    quoted = '"' in text
    rec_lines, counts = _records_quoted(path, text, isep) if quoted else _records_plain(text, isep)
    ragged = counts != len(fields)
    if ragged.any():
        row = int(np.argmax(ragged))
        where = "the header" if header else f"line {lineno}"
        sep_name = {"\t": "tab"}.get(sep, repr(sep))
        advice = hint if hint != LAYOUT_HINT else \
            "quote fields that contain the separator, and give every line the same columns"
        n = int(counts[row])
        raise _error(path, f"line {int(rec_lines[row])} has {n} field{'s' if n != 1 else ''} but {where} has "
                           f"{len(fields)} (separator {sep_name}); {advice}")
    data_lines = rec_lines[1:] if header else rec_lines
    if data_lines.size == 0:
        raise _error(path, f"has a header but no interactions; {hint}")

    used = sorted(roles.values())
    try:
        df = pd.read_csv(io.StringIO(text, newline=""), sep=isep, header=0 if header else None,
                         names=[f"c{i}" for i in range(len(fields))], usecols=used, engine="c",
                         quotechar='"', low_memory=False, skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _error(path, f"cannot be parsed ({first}); {hint}") from None
    if len(df) != data_lines.size:
        raise _error(path, f"has {data_lines.size} data lines but {len(df)} rows could be parsed; check its quotes")

    def column(role: str) -> _Column:
        rule = {"rating": "every rating must be a finite number", "timestamp": _ISO_HINT}.get(
            role, "ids must be integers" if integers_only else "ids must be non-empty integers or names")
        return _Column(path, df[f"c{roles[role]}"], data_lines, labels[role], role, rule)

    user = _ids(column("user"), integers_only)
    item = _ids(column("item"), integers_only)
    rating = _ratings(column("rating")) if "rating" in roles else None
    timestamp = _timestamps(column("timestamp")) if "timestamp" in roles else None
    return Interactions(name, user, item, rating, timestamp, str(path))


# ----------------------------------------------------------------------------- readers


def _read_movielens_csv(path: Path, name: str) -> Interactions:
    return _parse_interactions(path, _read_text(path), name=name, sep=",", header=True, columns=None,
                               integers_only=True, hint="expected the header userId,movieId,rating,timestamp")


def _read_ml100k(path: Path, name: str) -> Interactions:
    return _parse_interactions(path, _read_text(path), name=name, sep="\t", header=False, columns=ROLES,
                               integers_only=True, hint="expected tab-separated 'user item rating timestamp' lines")


def _read_rating_lines(path: Path, name: str, sep: str, hint: str) -> Interactions:
    """Header-less ``user<sep>item<sep>rating[<sep>timestamp]`` lines with integer ids (the timestamp optional)."""
    text = _read_text(path)
    if _BLANK.fullmatch(text):
        raise _error(path, f"is empty; {hint}")
    lineno, line = _first_line(text)
    ncols = line.count(sep) + 1
    if ncols not in (3, 4):
        raise _error(path, f"line {lineno} has {ncols} field{'s' if ncols != 1 else ''} separated by {sep!r}; {hint}")
    return _parse_interactions(path, text, name=name, sep=sep, header=False, columns=ROLES[:ncols],
                               integers_only=True, hint=hint)


def _read_ml1m(path: Path, name: str) -> Interactions:
    # "::"-separated; the shared copy has no timestamp column.
    return _read_rating_lines(path, name, "::", "expected 'user::item::rating[::timestamp]' lines")


def _parse_lightgcn(path: Path, text: str) -> tuple[np.ndarray, np.ndarray]:
    """Users and items of ``u i i i`` lines (non-negative integers separated by spaces or tabs)."""
    hint = "expected lines of non-negative integer ids 'user item item ...' separated by spaces"
    if _BLANK.fullmatch(text):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bad = re.search(r"[^0-9 \t\n]", text)
    if bad is not None:
        pos = bad.start()
        start, end = text.rfind("\n", 0, pos) + 1, text.find("\n", pos)
        token = next((t for t in text[start:end if end >= 0 else None].split() if not t.isdigit()), text[pos])
        raise _error(path, f"line {text.count(chr(10), 0, pos) + 1}: {_show(token)} is not an id; {hint}")
    b = np.frombuffer(text.encode("ascii"), np.uint8)
    digit = b >= 48
    before = np.empty_like(digit)
    before[0], before[1:] = False, digit[:-1]
    after = np.empty_like(digit)
    after[-1:], after[:-1] = False, digit[1:]
    starts = np.flatnonzero(digit & ~before)
    ends = np.flatnonzero(digit & ~after) + 1
    lengths = ends - starts
    newlines = np.flatnonzero(b == 10)
    line_of = np.searchsorted(newlines, starts)  # 0-based line of each token
    if lengths.size and lengths.max() > 18:
        row = int(np.argmax(lengths > 18))
        token = text[starts[row]:ends[row]]
        raise _error(path, f"line {int(line_of[row]) + 1}: id {_show(token)} is too large; {hint}")
    positions = np.flatnonzero(digit)
    power = np.repeat(ends, lengths) - positions - 1
    values = (b[positions].astype(np.int64) - 48) * (np.int64(10) ** power)
    ids = np.add.reduceat(values, np.cumsum(lengths) - lengths) if lengths.size else np.zeros(0, np.int64)
    first = np.ones(ids.size, dtype=bool)
    first[1:] = line_of[1:] != line_of[:-1]
    line_user = ids[first][np.cumsum(first) - 1]
    return line_user[~first], ids[~first]


def _read_lightgcn(path: Path, name: str) -> Interactions:
    """LightGCN format: ``train*.txt`` and ``test.txt``, one line per user: ``u i i i ...``.

    cfbench applies its own reference split, so both files are read as one interaction set. A line with a
    user and no items adds nothing; any token that is not a non-negative integer is refused.
    """
    users, items = [], []
    folder = path.parent
    files = [path]
    test = find_file(folder, "test.txt")
    if test is not None and test != path:
        files.append(test)
    for f in files:
        u, i = _parse_lightgcn(f, _read_text(f))
        users.append(u)
        items.append(i)
    if not sum(len(u) for u in users):
        raise _error(path, "no 'user item item ...' lines found")
    return Interactions(name, np.concatenate(users), np.concatenate(items), source=", ".join(map(str, files)))


def _read_amazon_ratings(path: Path, name: str) -> Interactions:
    """Amazon review data (McAuley lab, 2018) "ratings only" CSV: ``item,user,rating,timestamp``, no header."""
    return _parse_interactions(path, _read_text(path), name=name, sep=",", header=False,
                               columns=("item", "user", "rating", "timestamp"), integers_only=False,
                               hint="expected 'item,user,rating,timestamp' lines without a header "
                                    "(the Amazon 2018 ratings-only CSV)")


def _read_douban(path: Path, name: str) -> Interactions:
    """Douban ratings as released by Zhu et al. (DTCDR): tab-separated ``user item rating[ timestamp]``, no header."""
    return _read_rating_lines(path, name, "\t",
                              "expected tab-separated 'user item rating[ timestamp]' lines without a header")


NETFLIX_HINT = "expected the Netflix prize format: a 'MovieID:' line, then one 'CustomerID,Rating,YYYY-MM-DD' line " \
               "per rating of that movie"
_NETFLIX_CHUNK = 16 << 20  # bytes parsed at once: bounds the temporary arrays (about 20 bytes per byte of text)
_NETFLIX_PARTS = 4  # Kaggle's copy: combined_data_1.txt ... combined_data_4.txt
_DATE_DIGITS = (10, 9, 8, 7, 5, 4, 2, 1)  # distance from the end of a rating line of each digit of YYYY-MM-DD


class _BadLine(Exception):
    """A line of the Netflix format that cannot be read: its byte offset in the chunk, and what is wrong."""

    def __init__(self, offset: int, problem: str):
        super().__init__(problem)
        self.offset, self.problem = offset, problem


def _parse_netflix_chunk(buf: bytes, movie: int | None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int | None]:
    """Movie, customer, rating and Unix time of every rating in ``buf`` (whole lines of the per-movie block format).

    Vectorised over the bytes (4 to 5 million lines a second on one core): ``MovieID:`` lines are found by their
    last byte; a rating line is a customer id followed by exactly ``,R,YYYY-MM-DD``, so every field sits at a
    fixed distance from the line end. ``movie`` is the movie of rating lines before the first ``MovieID:`` line
    (``None``: such lines are an error). Blank lines are skipped. Returns the four arrays and the last movie;
    raises :class:`_BadLine` at the first line that is not in the format.
    """
    if b"\r" in buf:
        buf = buf.replace(b"\r\n", b"\n")
    if not buf.endswith(b"\n"):
        buf += b"\n"
    b = np.frombuffer(buf, np.uint8)
    ends = np.flatnonzero(b == 10)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    keep = ends > starts
    if not keep.all():
        ends, starts = ends[keep], starts[keep]
    header = b[ends - 1] == 58  # ':'
    heads = np.flatnonzero(header)
    movies = np.empty(heads.size + 1, np.int64)
    movies[0] = -1 if movie is None else movie
    for j, i in enumerate(heads.tolist()):  # one per movie: 17,770 in all
        token = buf[starts[i]:ends[i] - 1]
        if not token.isdigit() or len(token) > 18:
            raise _BadLine(int(starts[i]), "is not a 'MovieID:' line (a movie id is a number)")
        movies[j + 1] = int(token)
    rows = ~header
    e, s = ends[rows], starts[rows]
    block = np.cumsum(header)[rows]  # how many 'MovieID:' lines come before each rating line
    if movie is None and block.size and block[0] == 0:
        raise _BadLine(int(s[0]), "comes before the first 'MovieID:' line")
    length = e - s  # the customer id, then 13 bytes: ',R,YYYY-MM-DD'
    ok = (length >= 14) & (length <= 31)
    if ok.all():
        # Digits are byte - 48 in uint8, so anything that is not a digit wraps to a value above 9.
        ok = (b[e - 13] == 44) & (b[e - 11] == 44) & (b[e - 6] == 45) & (b[e - 3] == 45)
        rating = b[e - 12] - np.uint8(48)
        ok &= (rating - np.uint8(1)) <= 4  # 1 to 5
        d = b[e[:, None] - np.asarray(_DATE_DIGITS)] - np.uint8(48)
        ok &= (d <= 9).all(axis=1)
        d = d.astype(np.int32)
        year, month, day = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3], d[:, 4] * 10 + d[:, 5], \
            d[:, 6] * 10 + d[:, 7]
        ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31)
        digits = length - 13
        customer = np.zeros(e.size, np.int64)
        shortest = int(digits.min()) if digits.size else 0
        for k in range(int(digits.max()) if digits.size else 0):
            more = slice(None) if k < shortest else digits > k
            digit = b[(e - 14 - k)[more]] - np.uint8(48)
            ok[more] &= digit <= 9
            customer[more] += digit.astype(np.int64) * 10**k
    if not ok.all():
        raise _BadLine(int(s[np.argmin(ok)]), "is not 'CustomerID,Rating,YYYY-MM-DD' with a rating from 1 to 5")
    y = year.astype(np.int64) - (month <= 2)  # days since 1970-01-01 of a Gregorian date (H. Hinnant's)
    era = y // 400
    yoe = y - era * 400
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + (153 * ((month + 9) % 12) + 2) // 5 + day - 1 - 719468
    last = int(movies[-1]) if heads.size or movie is not None else None
    return movies[block], customer, rating.astype(np.float32), days * 86400, last


def _netflix_error(where: str, text: bytes, err: _BadLine, first_line: int = 1) -> DatasetError:
    line_no = first_line + text.count(b"\n", 0, err.offset)
    end = text.find(b"\n", err.offset)
    line = text[err.offset:end if end >= 0 else None].decode("utf-8", "replace").rstrip("\r")
    return _error(where, f"line {line_no}: {_show(line)} {err.problem}; {NETFLIX_HINT}")


def _netflix_chunks(path: Path) -> Iterator[tuple[bytes, list[tuple[int, str, int]]]]:
    """The rating text of a Netflix file in chunks of whole lines, each with where its parts came from:
    ``(offset in the chunk, file or tar member name, line number of that offset in it)``."""
    if ".tar" in path.name.lower():
        try:
            with tarfile.open(path, "r|*") as tf:
                parts: list[bytes] = []
                origins: list[tuple[int, str, int]] = []
                size = found = 0
                for info in tf:
                    base = PurePosixPath(info.name).name
                    if not info.isfile() or re.fullmatch(r"mv_\d+\.txt", base) is None:
                        continue
                    member = tf.extractfile(info)
                    data = member.read() if member is not None else b""
                    found += 1
                    if not data.endswith(b"\n"):
                        data += b"\n"
                    if not data.split(b"\n", 1)[0].rstrip(b"\r").endswith(b":"):
                        raise _error(f"{path}:{info.name}", f"line 1 is not a 'MovieID:' line; {NETFLIX_HINT}")
                    origins.append((size, f"{path}:{info.name}", 1))
                    parts.append(data)
                    size += len(data)
                    if size >= _NETFLIX_CHUNK:
                        yield b"".join(parts), origins
                        parts, origins, size = [], [], 0
                if parts:
                    yield b"".join(parts), origins
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as err:
            raise _error(path, f"is not a readable tar archive ({err or type(err).__name__}); it may be truncated "
                               "or corrupt, fetch or download it again") from None
        if not found:
            raise _error(path, "holds no mv_NNNNNNN.txt files; expected the Netflix prize training_set.tar")
        return
    files = [path]
    match = re.fullmatch(r"combined_data_1(\.txt.*)", path.name)
    if match:
        files = [find_file(path.parent, f"combined_data_{k}.txt") for k in range(1, _NETFLIX_PARTS + 1)]
        missing = [f"combined_data_{k}.txt" for k, f in enumerate(files, 1) if f is None]
        if missing:
            raise _error(path, f"{', '.join(missing)} missing next to it; Kaggle's Netflix prize data has "
                               f"{_NETFLIX_PARTS} parts, put all of them in {path.parent}")
    for f in files:
        data = _read_bytes(f)
        pos, line = 0, 1
        while pos < len(data):
            end = len(data) if pos + _NETFLIX_CHUNK >= len(data) else data.rfind(b"\n", pos, pos + _NETFLIX_CHUNK) + 1
            if end <= pos:  # a line longer than a chunk: not this format
                end = len(data)
            chunk = data[pos:end]
            yield chunk, [(0, str(f), line)]
            line += chunk.count(b"\n")
            pos = end


def _narrow(ids: np.ndarray) -> np.ndarray:
    """int32 ids where they fit (Netflix's all do): 100 million ratings take 2 GB instead of 2.8 GB."""
    return ids.astype(np.int32) if not ids.size or (ids.min() >= 0 and ids.max() < 2**31) else ids


def _read_netflix(path: Path, name: str) -> Interactions:
    """The Netflix prize training set: the original ``training_set.tar`` (one ``mv_NNNNNNN.txt`` per movie, read
    from the tar without extracting it) or Kaggle's ``combined_data_1.txt`` ... ``combined_data_4.txt``, in the same
    per-movie block format. Dates become Unix times (midnight UTC); ids are int32. The full set (100 million
    ratings) should take about 30 s and 2 GB for the arrays, 4 GB at the peak: 5 million synthetic ratings in a
    105 MB tar read at 3.8 million a second on one busy core (the full set was not available to measure)."""
    movie_parts, user_parts, rating_parts, time_parts = [], [], [], []
    movie: int | None = None
    for chunk, origins in _netflix_chunks(path):
        try:
            # A chunk of a combined_data file may go on with the last movie of the one before; in a tar every
            # member starts with its own 'MovieID:' line (checked), so a chunk of several members carries nothing.
            item, user, rating, ts, movie = _parse_netflix_chunk(chunk, movie if len(origins) == 1 else None)
        except _BadLine as err:
            at = max(k for k, origin in enumerate(origins) if origin[0] <= err.offset)
            start, where, first_line = origins[at]
            end = origins[at + 1][0] if at + 1 < len(origins) else len(chunk)
            err.offset -= start
            raise _netflix_error(where, chunk[start:end], err, first_line) from None
        movie_parts.append(_narrow(item))
        user_parts.append(_narrow(user))
        rating_parts.append(rating)
        time_parts.append(ts)
    if not movie_parts or not sum(len(p) for p in movie_parts):
        raise _error(path, f"holds no ratings; {NETFLIX_HINT}")
    return Interactions(name, np.concatenate(user_parts), np.concatenate(movie_parts), np.concatenate(rating_parts),
                        np.concatenate(time_parts), str(path))


def read_interaction_file(path: str | Path, *, sep: str | None = None, columns: Sequence[str] | None = None,
                          name: str | None = None) -> Interactions:
    """Read a user CSV/TSV file of interactions, refusing (with a one-line :class:`DatasetError`) what it cannot
    read unambiguously.

    * Text: UTF-8 (a byte-order mark is fine), plain or ``.xz``/``.gz``.
    * Separator: ``sep``, else the one of tab, ``,``, ``;``, ``|``, ``::`` that the first line contains (if it
      contains several, the file is refused). Fields may be quoted with ``"``.
    * Header: present when the first line has a field that is not a number. Columns are then taken by name
      (see :data:`ALIASES`: ``user``/``userId``/``user_id``..., ``item``/``movieId``/``item_id``...,
      ``rating``/``score``/``weight``/``count``..., ``timestamp``/``time``/``date``...); user and item are
      required, other named columns are ignored, and two columns for one role are refused. Without a header,
      2-4 columns are taken by position: user, item[, rating[, timestamp]]; ``columns`` names them instead.
    * Every line has the same number of fields; ids are non-missing (all integers, or else all kept as
      text); ratings are finite numbers; timestamps are numbers (Unix time) or ISO 8601 dates, never missing.
    """
    path = Path(path)
    return _parse_interactions(path, _read_text(path), name=name or path.stem.split(".")[0], sep=sep, header=None,
                               columns=columns, integers_only=False, hint=LAYOUT_HINT)


# ----------------------------------------------------------------------------- registry

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("ml-latest-small", "ml-latest-small", ("ratings.csv",), _read_movielens_csv,
                    "MovieLens latest-small (2018): 100,836 ratings, 610 users, 9,724 movies",
                    "GroupLens research licence; redistribution allowed (shipped with cfbench)",
                    "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
                    "ml-latest-small/ratings.csv"),
        DatasetSpec("ml-100k", "ml-100k", ("u.data",), _read_ml100k,
                    "MovieLens 100K: 100,000 ratings, 943 users, 1,682 movies",
                    "GroupLens research licence; no redistribution (never shipped)",
                    "https://files.grouplens.org/datasets/movielens/ml-100k.zip", "ml-100k/u.data",
                    "md5:0e33842e24a9c977be4e0107933c0723"),
        DatasetSpec("ml-1m", "ml-1m", ("ratings.dat", "ratings_notimestamps.dat"), _read_ml1m,
                    "MovieLens 1M: 1,000,209 ratings, 6,040 users, 3,706 movies",
                    "GroupLens research licence; no redistribution (never shipped)",
                    "https://files.grouplens.org/datasets/movielens/ml-1m.zip", "ml-1m/ratings.dat",
                    "md5:c4d9eecfca2ab87c1945afe126590906"),
        DatasetSpec("gowalla", "lightgcn-gowalla", ("train.txt", "train_reconstructed.txt"), _read_lightgcn,
                    "Gowalla check-ins, LightGCN split (train+test read as one set): 29,858 users, 40,981 items",
                    "no licence stated by LightGCN/SNAP; cite Cho et al. KDD 2011 and He et al. SIGIR 2020"),
        DatasetSpec("netflix", "netflix", ("training_set.tar", "combined_data_1.txt"), _read_netflix,
                    "Netflix prize training set: 100,480,507 ratings, 480,189 users, 17,770 movies (read from "
                    "training_set.tar as is, or Kaggle's combined_data_1-4.txt)",
                    "Netflix prize licence: research only, no redistribution without Netflix's permission "
                    "(never shipped; fetched from the Internet Archive's copy)",
                    downloads=(Download("https://archive.org/download/nf_prize_dataset.tar/nf_prize_dataset.tar.gz",
                                        None, ("download/training_set.tar",),
                                        ("md5:0098ee8997ffda361a59bc0dd1bdad8b",)),),  # md5 from the data's README
                    source="https://archive.org/details/nf_prize_dataset.tar or "
                           "https://www.kaggle.com/datasets/netflix-inc/netflix-prize-data"),
        DatasetSpec("amazon-magazine", "amazon-magazine", ("Magazine_Subscriptions.csv",), _read_amazon_ratings,
                    "Amazon reviews 2018, Magazine Subscriptions, ratings only: 89,689 ratings, 72,098 users, "
                    "2,428 items",
                    "no licence stated by the McAuley lab: research use, cite Ni, Li and McAuley, EMNLP 2019 "
                    "(never shipped)",
                    "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/categoryFilesSmall/"
                    "Magazine_Subscriptions.csv",
                    known_hash="sha256:40287d71ee0c49030ee222888fb21a95941c2c31344e15bdd2e58e0f63831c2d",
                    source="https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/ (\"ratings only\" files)"),
        DatasetSpec("amazon-book", "lightgcn-amazon-book", ("train.txt",), _read_lightgcn,
                    "Amazon-book, LightGCN split (train+test read as one set): 52,643 users, 91,599 items, "
                    "2,984,108 interactions",
                    "no licence stated by LightGCN or the McAuley lab: cite McAuley et al. SIGIR 2015 and He et al. "
                    "SIGIR 2020 (never shipped)",
                    downloads=tuple(Download(f"https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/"
                                             f"amazon-book/{part}.txt") for part in ("train", "test")),
                    source="https://github.com/kuandeng/LightGCN/tree/master/Data/amazon-book"),
        DatasetSpec("yelp2018", "lightgcn-yelp2018", ("train.txt",), _read_lightgcn,
                    "Yelp2018, LightGCN split (train+test read as one set): 31,668 users, 38,048 items, "
                    "1,561,406 interactions",
                    "Yelp Dataset terms: non-commercial academic use, no redistribution (no fetch; never shipped)",
                    source="the Yelp Open Dataset (https://www.yelp.com/dataset, under its terms) as split by "
                           "LightGCN (train.txt and test.txt in Data/yelp2018 of "
                           "https://github.com/kuandeng/LightGCN)"),
        DatasetSpec("douban", "douban", ("ratings.dat",), _read_douban,
                    "Douban movie ratings of Zhu et al. (DTCDR, CIKM 2019), the paper's Douban: 1,278,401 ratings "
                    "(tab-separated user, item, rating)",
                    "no licence stated; released by Zhu et al. for research, cite DTCDR (CIKM 2019) (no public "
                    "download URL; never shipped)",
                    source="Zhu et al.'s Douban data, its movie ratings.dat (https://www.researchgate.net/publication/"
                           "350793434 or https://www.kaggle.com/datasets/fengzhujoey/douban-datasetratingreviewside-"
                           "information)"),
    )
}
FOLDER_ALIASES = {"gowalla": ("lightgcn-gowalla", "gowalla"), "amazon-book": ("lightgcn-amazon-book", "amazon-book"),
                  "yelp2018": ("lightgcn-yelp2018", "yelp2018"), "douban": ("douban", "douban_movie")}


def cache_dir() -> Path:
    """Per-user cache for fetched datasets (``$XDG_CACHE_HOME/cfbench`` or ``~/.cache/cfbench``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cfbench"


def data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Directories searched for datasets, in order."""
    dirs: list[Path] = []
    if data_dir:
        dirs.append(Path(data_dir))
    env = os.environ.get("CFBENCH_DATA_DIR")
    if env:
        dirs.extend(Path(p) for p in env.split(os.pathsep) if p)
    dirs.append(cache_dir())
    dirs.append(EMBEDDED_DIR)
    return dirs


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The file that holds built-in dataset ``name``, or ``None`` if no data directory has it."""
    spec = DATASETS[name]
    folders = FOLDER_ALIASES.get(name, (spec.folder,))
    for root in data_dirs(data_dir):
        for folder in folders:
            for fname in spec.files:
                found = find_file(root / folder, fname)
                if found is not None:
                    return found
    return None


def load_dataset(name: str, data_dir: str | Path | None = None) -> Interactions:
    """Load a built-in dataset by name, a synthetic one (``synth-netflix``, ``synth:users=...``), a thinned variant
    of one (``thin:ml-100k,per_user=4-8``, :mod:`cfbench.thinning`), or any CSV/TSV file by path."""
    from cfbench import synthetic, thinning  # here: both import this module

    if synthetic.is_synthetic_name(name):
        return synthetic.load_synthetic(name)
    if thinning.is_thinned_name(name):
        return thinning.load_thinned(name, data_dir)
    if name in DATASETS:
        path = locate(name, data_dir)
        if path is None:
            searched = ", ".join(str(d) for d in data_dirs(data_dir))
            spec = DATASETS[name]
            hint = f"run `cfbench fetch {name}`" if spec.fetch_plan else (
                f"get it from {spec.source or 'its publisher'} and put {spec.folder}/{spec.files[0]} in a data "
                "directory")
            raise DatasetError(f"dataset {name!r} not found in {searched}; {hint} or pass --data-dir")
        return DATASETS[name].reader(path, name)
    path = Path(name)
    if path.exists() or os.sep in name or (os.altsep and os.altsep in name) or path.suffix:
        return read_interaction_file(path)  # refuses directories and missing files with a clear message
    raise DatasetError(f"unknown dataset {name!r}: use one of {', '.join([*DATASETS, *synthetic.PRESETS])}, "
                       f"{synthetic.PARAMETRIC_FORM}, {thinning.FORM} or a path to a CSV/TSV file")


# ----------------------------------------------------------------------------- downloads

_BLOCK = 1 << 20  # bytes read and hashed at a time
_TIMEOUT_S = 60  # per network operation (connect, each read), not for the whole download


def download_url(url: str) -> str:
    """Where a download is read from: ``url`` itself, or its copy on the mirror named by ``$CFBENCH_MIRROR``.

    A mirror holds each file at ``<mirror>/<host>/<path>`` (the layout ``wget -x`` writes), e.g.
    ``https://files.grouplens.org/datasets/movielens/ml-1m.zip`` is read from
    ``$CFBENCH_MIRROR/files.grouplens.org/datasets/movielens/ml-1m.zip``. The mirror is an ``http(s)://`` or
    ``file://`` URL, or a local folder. Checksums are verified as for the original host.
    """
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    if "://" not in mirror:
        mirror = Path(mirror).expanduser().resolve().as_uri()
    parts = urllib.parse.urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def _record_of(file: Path) -> Path:
    """The ``<file>.sha256`` record of a download (``sha256sum`` format)."""
    return file.with_name(file.name + ".sha256")


def _read_record(record: Path) -> str | None:
    try:
        digest = record.read_text(encoding="utf-8").split()[0].lower()
    except (OSError, UnicodeDecodeError, IndexError):
        return None
    return digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _hash_file(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _copy_hashed(src: io.BufferedIOBase, dst: Path, algorithms: Sequence[str], *, total: int | None = None,
                 label: str = "", progress: bool = False, network: bool = False) -> dict[str, str]:
    """Copy ``src`` to ``dst`` hashing on the way; with ``network`` a failed read is a one-line DatasetError."""
    from tqdm import tqdm

    digests = {a: hashlib.new(a) for a in algorithms}
    done = 0
    with open(dst, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not progress,
                                      leave=False) as bar:
        while True:
            try:
                block = src.read(_BLOCK)
            except (OSError, http.client.HTTPException) as err:
                if not network:
                    raise
                raise DatasetError(f"the download of {label} was interrupted after {done:,} bytes "
                                   f"({_one_line(err)}); run `cfbench fetch` again") from None
            if not block:
                break
            out.write(block)
            for d in digests.values():
                d.update(block)
            done += len(block)
            bar.update(len(block))
    if total is not None and done != total:
        raise DatasetError(f"the download of {label} stopped after {done:,} of {total:,} bytes; "
                           "run `cfbench fetch` again")
    return {a: d.hexdigest() for a, d in digests.items()}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _download(name: str, item: Download, file: Path, progress: bool) -> None:
    """Make ``file`` a verified copy of ``item.url``: keep a cached copy that matches, else download it again.

    Verified against ``item.known_hash``, else against the sha256 recorded at the first download, else (first
    download) its sha256 is recorded. The download goes to ``<file>.part`` and replaces ``file`` only once
    verified, so a failure leaves nothing behind but an older verified copy.
    """
    record = _record_of(file)
    recorded = None if item.known_hash else _read_record(record)
    if item.known_hash:
        algorithm, expected = item.known_hash.split(":")
    elif recorded:
        algorithm, expected = "sha256", recorded
    else:
        algorithm, expected = "sha256", None
    if file.is_file() and expected is not None:
        if _hash_file(file, algorithm) == expected:
            if not record.is_file():
                _write_atomic(record, f"{_hash_file(file, 'sha256')}  {file.name}\n")
            return
        log.warning("%s does not match its %s; downloading it again", file, "checksum" if item.known_hash
                    else f"recorded sha256 ({record})")
        file.unlink()
    file.parent.mkdir(parents=True, exist_ok=True)
    url = download_url(item.url)
    mirror = url != item.url
    part = file.with_name(file.name + ".part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "cfbench"})
        try:
            response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)  # http(s):// or file://
        except urllib.error.HTTPError as err:
            where = (f"the mirror in ${MIRROR_ENV} has no copy there (it must hold <host>/<path> of {item.url})"
                     if mirror else "the file may have moved")
            raise DatasetError(f"downloading {url} failed: HTTP {err.code} {err.reason}; {where}; or put the "
                               f"{name} files in a data directory by hand") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            reason = _one_line(reason) if isinstance(reason, BaseException) else str(reason)
            raise DatasetError(f"cannot download {url} ({reason}); check the network connection, or set "
                               f"${MIRROR_ENV} to a mirror holding the file, or put the {name} files in a data "
                               "directory by hand") from None
        with response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            digests = _copy_hashed(response, part, sorted({"sha256", algorithm}), total=total, label=url,
                                   progress=progress, network=True)
        if expected is not None and digests[algorithm] != expected:
            if item.known_hash:
                why = (f"does not match its published checksum ({algorithm} {expected}, got {digests[algorithm]}); "
                       "nothing was kept: run `cfbench fetch` again, and if it fails again the file changed upstream "
                       "or was altered on the way")
            else:
                why = (f"does not match the sha256 recorded when it was first downloaded ({expected}, got "
                       f"{digests['sha256']}); nothing was kept: the file changed upstream or was altered on the "
                       f"way; if the change is legitimate, delete {record} and fetch again")
            raise DatasetError(f"checksum mismatch: {url} {why}")
        os.replace(part, file)
    finally:
        part.unlink(missing_ok=True)
    if expected is None or item.known_hash:
        _write_atomic(record, f"{digests['sha256']}  {file.name}\n")
        if expected is None:
            log.info("%s has no published checksum: recorded its sha256 %s in %s; later fetches are verified "
                     "against it", item.url, digests["sha256"], record)


def _stage_members(name: str, item: Download, archive: Path, target: Path, progress: bool) -> list[tuple[Path, Path]]:
    """Extract ``item.members`` of ``archive`` (zip or tar) to ``<target>/<base name>.part``, checking the
    published member checksums; returns ``(part, final)`` pairs. A corrupt archive is deleted (with its
    record when that was written from this very download) so the next fetch downloads it again."""
    hashes = dict(zip(item.members, item.member_hashes))
    wanted = {m: target / PurePosixPath(m).name for m in item.members}
    staged: list[tuple[Path, Path]] = []

    def take(src: io.BufferedIOBase, member: str, size: int | None) -> None:
        out = wanted[member]
        part = out.with_name(out.name + ".part")
        staged.append((part, out))
        known = hashes.get(member)
        algorithm, expected = known.split(":") if known else ("sha256", None)
        digest = _copy_hashed(src, part, [algorithm], total=size, label=f"{archive.name}:{member}",
                              progress=progress)[algorithm]
        if expected is not None and digest != expected:
            raise DatasetError(f"checksum mismatch: {member} in {archive} does not match its published checksum "
                               f"({algorithm} {expected}, got {digest}); nothing was kept: delete {archive} and run "
                               f"`cfbench fetch {name}` again")

    try:
        with open(archive, "rb") as fh:
            is_zip = fh.read(4) == b"PK\x03\x04"
        kind = "zip" if is_zip else "tar"
        if is_zip:
            with zipfile.ZipFile(archive) as zf:
                for member in item.members:
                    try:
                        info = zf.getinfo(member)
                    except KeyError:
                        raise DatasetError(f"{archive} has no {member!r}; the archive's layout changed, put the "
                                           f"dataset's files in a data directory by hand") from None
                    with zf.open(info) as src:
                        take(src, member, info.file_size)
        else:
            found = set()
            with tarfile.open(archive, "r|*") as tf:  # one pass: a .tar.gz is never decompressed twice
                for info in tf:
                    member = info.name.removeprefix("./")
                    if member in wanted and member not in found and info.isfile():
                        src = tf.extractfile(info)
                        assert src is not None
                        take(src, member, info.size)
                        found.add(member)
            missing = [m for m in item.members if m not in found]
            if missing:
                raise DatasetError(f"{archive} has no {', '.join(map(repr, missing))}; the archive's layout "
                                   "changed, put the dataset's files in a data directory by hand")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as err:
        for part, _ in staged:
            part.unlink(missing_ok=True)
        archive.unlink(missing_ok=True)
        if item.known_hash is None:
            _record_of(archive).unlink(missing_ok=True)
        raise DatasetError(f"{archive} is not a readable {kind} archive ({_one_line(err)}); it was deleted: run "
                           f"`cfbench fetch {name}` again") from None
    except BaseException:
        for part, _ in staged:
            part.unlink(missing_ok=True)
        raise
    return staged


def fetch(name: str, *, progress: bool = True) -> Path:
    """Download a built-in dataset into the per-user cache, verify it and return the file :func:`locate` finds.

    Downloads are kept in ``<cache>/downloads/<name>/`` (a later fetch reuses a copy that still verifies) and
    their files (or the archive members the dataset needs) are placed in ``<cache>/<folder>/``. Every checksum
    is verified before anything is placed, and the dataset's main file is placed last, so a failed or
    interrupted fetch never leaves files that a later load would read as the dataset. Downloads come from
    ``$CFBENCH_MIRROR`` when it is set (see :func:`download_url`). Failures are one-line :class:`DatasetError`.
    """
    spec = DATASETS.get(name)
    if spec is None:
        known = ", ".join(n for n, s in DATASETS.items() if s.fetch_plan)
        raise DatasetError(f"unknown dataset {name!r}: cfbench fetch knows {known}")
    plan = spec.fetch_plan
    if not plan:
        where = f"get it from {spec.source} and" if spec.source else "put its files"
        raise DatasetError(f"dataset {name!r} has no public download: {where} put {spec.folder}/{spec.files[0]} "
                           "in a data directory (--data-dir or $CFBENCH_DATA_DIR)")
    target = cache_dir() / spec.folder
    downloads = cache_dir() / "downloads" / spec.name
    staged: list[tuple[Path, Path]] = []
    try:
        files = []
        for item in plan:  # every download verified before anything is placed
            file = downloads / PurePosixPath(urllib.parse.urlsplit(item.url).path).name
            _download(name, item, file, progress)
            files.append(file)
        target.mkdir(parents=True, exist_ok=True)
        for item, file in zip(plan, files):
            if item.members:
                staged.extend(_stage_members(name, item, file, target, progress))
            else:  # a copy, never a hard link: damage to the cached download must not reach the data
                staged.append((target / (file.name + ".part"), target / file.name))
                shutil.copyfile(file, staged[-1][0])
        staged.sort(key=lambda pair: any(pair[1].name == f or pair[1].name.startswith(f + ".") for f in spec.files))
        for part, final in staged:
            os.replace(part, final)
    finally:
        for part, _ in staged:
            part.unlink(missing_ok=True)
    for fname in spec.files:
        found = find_file(target, fname)
        if found is not None:
            return found
    return staged[-1][1]
