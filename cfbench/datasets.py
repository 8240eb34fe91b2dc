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
import io
import lzma
import os
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetSpec",
    "Interactions",
    "cache_dir",
    "data_dirs",
    "fetch",
    "load_dataset",
    "locate",
    "read_interaction_file",
]

EMBEDDED_DIR = Path(__file__).parent / "_embedded"
COMPRESSED_SUFFIXES = ("", ".xz", ".gz")


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
    known_hash: str | None = None  # "md5:..." of the official archive, verified by pooch


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


def _read_ml1m(path: Path, name: str) -> Interactions:
    # "::"-separated; the shared copy has no timestamp column.
    text = _read_text(path)
    hint = "expected 'user::item::rating[::timestamp]' lines"
    if _BLANK.fullmatch(text):
        raise _error(path, f"is empty; {hint}")
    lineno, line = _first_line(text)
    ncols = line.count("::") + 1
    if ncols not in (3, 4):
        raise _error(path, f"line {lineno} has {ncols} fields; {hint}")
    return _parse_interactions(path, text, name=name, sep="::", header=False, columns=ROLES[:ncols],
                               integers_only=True, hint=hint)


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
    )
}
FOLDER_ALIASES = {"gowalla": ("lightgcn-gowalla", "gowalla")}


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
    """Load a built-in dataset by name, or any CSV/TSV file by path."""
    if name in DATASETS:
        path = locate(name, data_dir)
        if path is None:
            searched = ", ".join(str(d) for d in data_dirs(data_dir))
            hint = f"run `cfbench fetch {name}`" if DATASETS[name].url else "put its files in a data directory"
            raise DatasetError(f"dataset {name!r} not found in {searched}; {hint} or pass --data-dir")
        return DATASETS[name].reader(path, name)
    path = Path(name)
    if path.exists() or os.sep in name or (os.altsep and os.altsep in name) or path.suffix:
        return read_interaction_file(path)  # refuses directories and missing files with a clear message
    raise DatasetError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)} or a path to a CSV/TSV file")


def fetch(name: str, *, progress: bool = True) -> Path:
    """Download a built-in dataset into the cache, verifying its checksum, and return its file."""
    import zipfile

    import pooch

    spec = DATASETS.get(name)
    if spec is None or spec.url is None or spec.archive_member is None:
        raise DatasetError(f"dataset {name!r} has no official download; put its files in a data directory")
    target = cache_dir() / spec.folder
    target.mkdir(parents=True, exist_ok=True)
    archive = pooch.retrieve(spec.url, known_hash=spec.known_hash,
                             path=cache_dir() / "downloads", progressbar=progress)
    with zipfile.ZipFile(archive) as zf:
        member = spec.archive_member
        out = target / Path(member).name
        tmp = out.with_suffix(out.suffix + ".part")
        with zf.open(member) as src, open(tmp, "wb") as dst:
            dst.write(src.read())
        os.replace(tmp, out)
    return out
