"""Reliability catalogue, data class: malformed and unusual interaction files.

Every case writes one file to ``tmp_path`` and asserts its outcome exactly: either the arrays it loads
to, or a :class:`DatasetError` whose message is one line, names the file and, where it applies, the
column and the 1-based line of the first bad value. Decisions encoded here (see ``read_interaction_file``):

* a header exists iff the first line has a non-empty field that is not a number; columns are then read
  by name (unknown names are ignored, two names for one role are refused), else 2-4 columns by position;
* the separator is detected among tab , ; | :: only when the first line holds exactly one of them;
* ids that are all integers are int64, otherwise every id is kept as its (stripped) text;
* ratings are finite numbers (negative ones are kept: they are only compared with --rating-threshold);
* timestamps are Unix times or ISO 8601 dates (converted to Unix seconds), never missing.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import lzma
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfbench.cli import main
from cfbench.datasets import DatasetError, load_dataset, read_interaction_file


@dataclasses.dataclass(frozen=True)
class Loads:
    """The file loads to exactly these arrays (``None``: the column is absent)."""

    user: list
    item: list
    rating: list | None = None
    timestamp: list | None = None


@dataclasses.dataclass(frozen=True)
class Refused:
    """The file is refused; the one-line message holds ``line N`` (if given), the column label and every phrase."""

    line: int | None = None
    column: str | None = None
    says: tuple[str, ...] = ()


def _zip(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ratings.csv", text)
    return buf.getvalue()


XZ = lzma.compress(b"user,item\n1,2\n" * 500)
GZ = gzip.compress(b"user,item\n1,2\n" * 500)
HEADER_HINT = "expected a header naming user and item columns"

# (id, file name, content: str written as UTF-8 or raw bytes, expected outcome)
CASES = [
    # --- headers and columns ------------------------------------------------------------------------
    ("header-without-item", "f.csv", "user,rating\n1,5\n2,4\n",
     Refused(1, None, ("names no item column", "'user', 'rating'", HEADER_HINT))),
    ("header-unrecognised", "f.csv", "a,b,c\n1,2,3\n",
     Refused(1, None, ("names no user and item column", "'a', 'b', 'c'", "userId", "movieId"))),
    ("header-two-ratings", "f.csv", "user,item,rating,weight\n1,2,5,1\n",
     Refused(None, None, ("'rating' and 'weight' both name the rating column",))),
    ("header-two-users-spelled-differently", "f.csv", "userId,user_id,item\n1,1,2\n",
     Refused(None, None, ("'userId' and 'user_id' both name the user column",))),
    ("header-duplicate-name", "f.csv", "user,item,item\n1,2,3\n",
     Refused(None, None, ("'item' appears twice", "columns 2 and 3"))),
    ("header-weight-is-rating", "f.csv", "user,item,weight\n1,2,0.5\n3,4,2\n", Loads([1, 3], [2, 4], [0.5, 2.0])),
    ("header-plays-is-rating", "f.tsv", "user_id\tartist_id\tplays\n7\t9\t31\n", Loads([7], [9], [31.0])),
    ("header-order-case-spacing", "f.csv", "Item ID,USER-ID,Time,genre\n10,1,5,x\n11,2,6,y\n",
     Loads([1, 2], [10, 11], None, [5, 6])),
    ("header-extra-columns-ignored", "f.csv", "user,item,genre,rating\n1,2,Action|Comedy,4\n", Loads([1], [2], [4.0])),
    ("header-quoted-names", "f.csv", '"userId","movieId","rating"\n"1","2","3"\n', Loads([1], [2], [3.0])),
    ("header-with-bom", "f.csv", "\ufeffuserId,movieId,rating\n1,2,5\n", Loads([1], [2], [5.0])),
    ("header-only", "f.csv", "user,item,rating\n", Refused(None, None, ("has a header but no interactions",))),
    ("empty-file", "f.csv", "", Refused(None, None, ("is empty", HEADER_HINT))),
    ("blank-file", "f.csv", "\n  \n\n", Refused(None, None, ("is empty",))),
    ("one-column", "f.csv", "1\n2\n", Refused(1, None, ("no field separator", "single column", HEADER_HINT))),
    ("one-named-column", "f.csv", "user\n1\n", Refused(1, None, ("no field separator",))),
    ("headerless-numeric", "f.csv", "1,2,5\n3,4,1\n", Loads([1, 3], [2, 4], [5.0, 1.0])),
    ("headerless-four-columns", "f.csv", "1,2,5,100\n", Loads([1], [2], [5.0], [100])),
    ("headerless-five-columns", "f.csv", "1,2,3,4,5\n", Refused(1, None, ("5 fields and no header", HEADER_HINT))),
    ("headerless-date-row-read-as-header", "f.csv", "1,2,5,2020-01-01\n",
     Refused(1, None, ("read as a header", "non-numeric field", "'2020-01-01'", HEADER_HINT))),
    ("headerless-string-ids-read-as-header", "f.csv", "u1,i9\nu2,i9\n",
     Refused(1, None, ("read as a header", "'u1', 'i9'", HEADER_HINT))),
    ("blank-lines-and-crlf", "f.csv", "\r\n\r\nuser,item\r\n\r\n1,2\r\n  \r\n3,4\r\n\r\n", Loads([1, 3], [2, 4])),
    # --- rows and separators ------------------------------------------------------------------------
    ("unquoted-comma-shifts-columns", "f.csv", "user,item,rating\n1,2,5\n1,3,4\n2,Foo, Bar,3\n",
     Refused(4, None, ("4 fields but the header has 3", "quote fields"))),
    ("quoted-comma-accepted", "f.csv", 'user,item,rating\n1,"a, b",5\n2,"c ""d""",4\n',
     Loads([1, 2], ["a, b", 'c "d"'], [5.0, 4.0])),
    ("quoted-newline-keeps-line-numbers", "f.csv", 'user,item,note\n1,2,"a\nb"\n3,4,x\n5,6\n',
     Refused(5, None, ("2 fields but the header has 3",))),
    ("trailing-separator", "f.csv", "user,item,rating\n1,2,3,\n", Refused(2, None, ("4 fields",))),
    ("short-row", "f.tsv", "1\t2\t3\t4\n1\t2\t3\n", Refused(2, None, ("3 fields but line 1 has 4", "tab"))),
    ("mixed-delimiters", "f.csv", "1,2,5\n3;4;1\n", Refused(2, None, ("1 field but line 1 has 3",))),
    ("ambiguous-delimiter", "f.csv", "1,2;5\n", Refused(1, None, ("both ',' and ';'", "ambiguous"))),
    ("space-separated", "f.txt", "1 2 3\n", Refused(1, None, ("no field separator",))),
    ("unclosed-quote", "f.csv", 'user,item\n1,"2\n3,4\n', Refused(2, None, ("quote that is never closed",))),
    ("text-after-closing-quote", "f.csv", 'user,item\n"a"b,2\n', Refused(2, None, ("check its quotes",))),
    ("tab-separated", "f.tsv", "user\titem\trating\n1\t2\t3.5\n", Loads([1], [2], [3.5])),
    ("semicolon-separated", "f.csv", "user;item;rating\n1;2;3\n", Loads([1], [2], [3.0])),
    ("pipe-separated", "f.csv", "user|item\n1|2\n", Loads([1], [2])),
    ("double-colon-separated", "f.dat", "1::2::5\n3::4::1\n", Loads([1, 3], [2, 4], [5.0, 1.0])),
    # --- values ------------------------------------------------------------------------------------
    ("missing-timestamp", "f.csv", "user,item,rating,timestamp\n1,2,5,100\n1,3,4,\n",
     Refused(3, "'timestamp'", ("missing timestamp", "ISO 8601"))),
    ("missing-user", "f.csv", "user,item\n1,2\n,3\n", Refused(3, "'user'", ("missing user",))),
    ("blank-user", "f.csv", "user,item\n1,2\n  ,3\n", Refused(3, "'user'", ("missing user",))),
    ("na-item", "f.csv", "user,item\n1,2\n1,NA\n", Refused(3, "'item'", ("missing item",))),
    ("inf-rating", "f.csv", "user,item,rating\n1,2,4\n1,3,inf\n", Refused(3, "'rating'", ("'inf' is not a finite",))),
    ("nan-rating", "f.csv", "user,item,rating\n1,2,NaN\n", Refused(2, "'rating'", ("missing rating",))),
    ("rating-beyond-float32", "f.csv", "user,item,rating\n1,2,1e300\n", Refused(2, "'rating'", ("not a finite",))),
    ("word-rating-headerless", "f.csv", "1,2,5\n1,3,bad\n", Refused(2, "3 (rating)", ("'bad' is not a finite",))),
    ("boolean-rating", "f.csv", "user,item,rating\n1,2,True\n", Refused(2, "'rating'", ("'True'",))),
    ("decimal-comma-rating", "f.csv", "user;item;rating\n1;2;3\n1;3;3,5\n",
     Refused(3, "'rating'", ("'3,5' is not a finite",))),
    ("negative-rating-kept", "f.csv", "user,item,rating\n1,2,-1\n2,3,1\n", Loads([1, 2], [2, 3], [-1.0, 1.0])),
    ("timestamp-word", "f.csv", "user,item,timestamp\n1,2,yesterday\n",
     Refused(2, "'timestamp'", ("'yesterday' is neither a number nor an ISO 8601 date",))),
    ("timestamp-day-month-ambiguous", "f.csv", "user,item,timestamp\n1,2,01/02/2020\n",
     Refused(2, "'timestamp'", ("'01/02/2020'",))),
    ("timestamp-numbers-and-dates", "f.csv", "user,item,timestamp\n1,2,100\n1,3,2020-01-01\n",
     Refused(2, "'timestamp'", ("is a number but other timestamps are dates",))),
    ("timestamp-infinite", "f.csv", "user,item,timestamp\n1,2,-inf\n",
     Refused(2, "'timestamp'", ("not a valid time",))),
    ("timestamp-iso-dates", "f.csv", "user,item,date\n1,2,2020-01-01\n1,3,2020-01-01T02:00:01+02:00\n",
     Loads([1, 1], [2, 3], None, [1577836800, 1577836801])),
    ("float-ids-whole", "f.csv", "user,item\n1.0,2\n3.0,4\n", Loads([1, 3], [2, 4])),
    ("float-ids-fractional", "f.csv", "user,item\n1.0,2\n1.5,2\n",
     Refused(3, "'user'", ("1.5 is not a whole number",))),
    ("string-ids", "f.csv", "user,item\nu1,i9\nu2,i9\n", Loads(["u1", "u2"], ["i9", "i9"])),
    ("mixed-ids-all-kept-as-text", "f.csv", "user,item\n1,2\nu2,3\n", Loads(["1", "u2"], [2, 3])),
    ("padded-ids-stripped", "f.csv", "user, item\n u1 , i2\n", Loads(["u1"], ["i2"])),
    # --- bytes and compression ---------------------------------------------------------------------
    ("latin-1-bytes", "f.csv", "user,item\n1,2\nJosé,1\n".encode("latin-1"),
     Refused(3, None, ("not UTF-8", "0xe9", "save the file as UTF-8"))),
    ("utf-16", "f.csv", "user,item\n1,2\n".encode("utf-16"), Refused(1, None, ("UTF-16",))),
    ("nul-bytes", "f.csv", b"user,item\n1,2\x00\n", Refused(2, None, ("NUL byte", "binary"))),
    ("png-named-csv", "f.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", Refused(1, None, ("not UTF-8",))),
    ("gzip-named-csv", "f.csv", GZ, Refused(None, None, ("gzip-compressed", "does not end in .xz or .gz"))),
    ("zip-named-csv", "f.csv", _zip("user,item\n1,2\n"), Refused(None, None, ("zip archive",))),
    ("xz-named-gz", "f.csv.gz", XZ, Refused(None, None, ("named .gz but is xz-compressed",))),
    ("plain-named-xz", "f.csv.xz", b"user,item\n1,2\n", Refused(None, None, ("not a valid .xz file",))),
    ("corrupt-xz", "f.csv.xz", XZ[:40] + b"\x00" * 40 + XZ[80:], Refused(None, None, ("not a valid .xz file",))),
    ("truncated-xz", "f.csv.xz", XZ[:-30], Refused(None, None, ("not a valid .xz file", "ended before"))),
    ("corrupt-gz", "f.csv.gz", GZ[:20] + b"\xff" * 20 + GZ[40:], Refused(None, None, ("not a valid .gz file",))),
    ("truncated-gz", "f.csv.gz", GZ[:-10], Refused(None, None, ("not a valid .gz file",))),
    ("valid-xz", "f.csv.xz", lzma.compress(b"user,item\n1,2\n"), Loads([1], [2])),
    ("valid-gz", "f.csv.gz", gzip.compress("\ufeffuser,item\n1,2\n".encode()), Loads([1], [2])),
]


def _write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _check_refusal(err: DatasetError, path: Path, expected: Refused) -> None:
    message = str(err)
    assert "\n" not in message and "\r" not in message, message
    assert str(path) in message, message
    if expected.line is not None:
        assert f"line {expected.line}" in message, message
    if expected.column is not None:
        assert f"column {expected.column}" in message, message
    for phrase in expected.says:
        assert phrase in message, (phrase, message)


def _check_load(data, expected: Loads) -> None:
    assert data.user.tolist() == expected.user
    assert data.item.tolist() == expected.item
    if expected.rating is None:
        assert data.rating is None
    else:
        assert data.rating.dtype == np.float32 and data.rating.tolist() == expected.rating
    if expected.timestamp is None:
        assert data.timestamp is None
    else:
        assert data.timestamp.dtype == np.int64 and data.timestamp.tolist() == expected.timestamp
    for ids in (data.user, data.item):  # one type per column: all int64 or all text
        assert ids.dtype == np.int64 or all(isinstance(v, str) for v in ids)


@pytest.mark.parametrize(("filename", "content", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_interaction_file(tmp_path, filename, content, expected):
    path = _write(tmp_path / filename, content)
    if isinstance(expected, Loads):
        _check_load(read_interaction_file(path), expected)
        _check_load(load_dataset(str(path)), expected)  # what `cfbench run --dataset PATH` reads
        return
    with pytest.raises(DatasetError) as info:
        read_interaction_file(path)
    _check_refusal(info.value, path, expected)
    with pytest.raises(DatasetError) as info:
        load_dataset(str(path))
    _check_refusal(info.value, path, expected)


def test_directory_and_missing_file(tmp_path):
    for path, phrase in ((tmp_path, "is a directory"), (tmp_path / "nope.csv", "no such file")):
        for call in (read_interaction_file, load_dataset):
            with pytest.raises(DatasetError, match=phrase) as info:
                call(str(path))
            _check_refusal(info.value, path, Refused())


def test_ids_typed_by_the_whole_column_not_by_chunk(tmp_path):
    """A name after many numeric ids makes every id text (pandas' chunked inference would mix int and str)."""
    path = tmp_path / "big.csv"
    path.write_text("user,item\n" + "".join(f"{u},{u % 7}\n" for u in range(400_000)) + "x9,1\n")
    data = read_interaction_file(path)
    assert data.item.dtype == np.int64
    assert data.user[0] == "0" and data.user[-1] == "x9" and {type(u) for u in data.user} == {str}


def test_explicit_separator_and_columns(tmp_path):
    path = _write(tmp_path / "f.txt", "u1;i9;5\nu2;i8;3\n")
    data = read_interaction_file(path, sep=";", columns=["user", "item", "rating"])
    assert data.user.tolist() == ["u1", "u2"] and data.rating.tolist() == [5.0, 3.0]
    data = read_interaction_file(path, sep=";", columns=["userId", "movieId", "genre"])
    assert data.rating is None and data.item.tolist() == ["i9", "i8"]
    header = _write(tmp_path / "h.csv", "user,item\n1,2\n")
    with pytest.raises(DatasetError, match="looks like a header, but columns= says the file has none"):
        read_interaction_file(header, columns=["user", "item"])
    pairs = _write(tmp_path / "p.csv", "1,2\n3,4\n")
    with pytest.raises(DatasetError, match="2 fields but 3 columns were named"):
        read_interaction_file(pairs, columns=["user", "item", "rating"])
    with pytest.raises(DatasetError, match="must name a user and an item column"):
        read_interaction_file(pairs, columns=["user", "genre"])


# --- any well-formed table round-trips ------------------------------------------------------------------

_NAME_CHARS = st.text(alphabet=st.sampled_from(list('ab9 ,;|\t"\'\n:é')), max_size=6)
_TEXT_ID = st.builds(lambda body: "k" + body.strip() + "z" if body.strip() else "k", _NAME_CHARS)
_ROW = st.tuples(st.integers(0, 10**12), st.integers(-10**6, 10**6),
                 st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False), st.integers(-2**40, 2**40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_TEXT_ID, _ROW), min_size=1, max_size=20), sep=st.sampled_from([",", ";", "\t", "|"]),
       text_users=st.booleans(), names=st.sampled_from([("userId", "movieId", "rating", "timestamp"),
                                                        ("user_id", "item_id", "weight", "ts"),
                                                        ("customer", "product", "stars", "time")]))
def test_well_formed_tables_round_trip(tmp_path, rows, sep, text_users, names):
    """Whatever the ids hold (separators, quotes, newlines), a file written by csv.writer loads back exactly."""
    users = [name if text_users else number for name, (number, _, _, _) in rows]
    items = [item for _, (_, item, _, _) in rows]
    ratings = [rating for _, (_, _, rating, _) in rows]
    stamps = [stamp for _, (_, _, _, stamp) in rows]
    path = tmp_path / "round-trip.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=sep, lineterminator="\n")
        writer.writerow(["genre", names[1], names[0], names[3], names[2]])
        writer.writerows(["x", i, u, t, repr(r)] for u, i, r, t in zip(users, items, ratings, stamps))
    data = read_interaction_file(path)
    assert data.user.tolist() == users and data.item.tolist() == items and data.timestamp.tolist() == stamps
    assert data.rating.tolist() == np.asarray(ratings, dtype=np.float32).tolist()


# --- the built-in readers given malformed lines --------------------------------------------------------

BUILTIN_CASES = [
    ("ml1m-ragged", "ml-1m", "ratings.dat", "1::2::5\n1::3\n", Refused(2, None, ("2 fields but line 1 has 3",
                                                                                  "user::item::rating"))),
    ("ml1m-word-id", "ml-1m", "ratings.dat", "1::2::5\n1::a::5\n", Refused(2, "2 (item)", ("'a' is not an integer",))),
    ("ml1m-word-rating", "ml-1m", "ratings.dat", "1::2::x\n", Refused(1, "3 (rating)", ("'x' is not a finite",))),
    ("ml1m-two-fields", "ml-1m", "ratings.dat", "1::2\n", Refused(1, None, ("2 fields", "user::item::rating"))),
    ("ml1m-truncated-xz", "ml-1m", "ratings.dat.xz", lzma.compress(b"1::2::5\n" * 100)[:-8],
     Refused(None, None, ("not a valid .xz file",))),
    ("ml1m-valid-with-blank-line", "ml-1m", "ratings.dat", "1::2::5::9\n\n2::3::4::8\n",
     Loads([1, 2], [2, 3], [5.0, 4.0], [9, 8])),
    ("ml100k-short-row", "ml-100k", "u.data", "1\t2\t3\t4\n1\t2\t3\n", Refused(2, None, ("3 fields",))),
    ("ml100k-missing-timestamp", "ml-100k", "u.data", "1\t2\t3\t4\n1\t2\t3\t\n",
     Refused(2, "4 (timestamp)", ("missing timestamp",))),
    ("lightgcn-word", "gowalla", "train.txt", "0 1 2\n1 x 3\n", Refused(2, None, ("'x' is not an id",))),
    ("lightgcn-negative", "gowalla", "train.txt", "0 1 2\n1 -3\n", Refused(2, None, ("'-3' is not an id",))),
    ("lightgcn-fraction", "gowalla", "train.txt", "0 1 2\n1 2.5\n", Refused(2, None, ("'2.5' is not an id",))),
    ("lightgcn-commas", "gowalla", "train.txt", "0 1\n0,9\n", Refused(2, None, ("'0,9' is not an id",))),
    ("lightgcn-overflow", "gowalla", "train.txt", "0 1 99999999999999999999\n", Refused(1, None, ("too large",))),
    ("lightgcn-empty", "gowalla", "train.txt", "", Refused(None, None, ("no 'user item item ...' lines",))),
    ("lightgcn-tabs-blank-and-user-only-lines", "gowalla", "train.txt", "0 1 2\n1\n\n2  3\t4 ", Loads([0, 0, 2, 2],
                                                                                                     [1, 2, 3, 4])),
]
FOLDERS = {"ml-1m": "ml-1m", "ml-100k": "ml-100k", "gowalla": "lightgcn-gowalla"}


@pytest.mark.parametrize(("dataset", "filename", "content", "expected"), [c[1:] for c in BUILTIN_CASES],
                         ids=[c[0] for c in BUILTIN_CASES])
def test_builtin_reader(tmp_path, dataset, filename, content, expected):
    folder = tmp_path / FOLDERS[dataset]
    folder.mkdir()
    path = _write(folder / filename, content)
    if isinstance(expected, Loads):
        _check_load(load_dataset(dataset, tmp_path), expected)
        return
    with pytest.raises(DatasetError) as info:
        load_dataset(dataset, tmp_path)
    _check_refusal(info.value, path, expected)


def test_lightgcn_test_file_is_checked_too(tmp_path):
    folder = tmp_path / "lightgcn-gowalla"
    folder.mkdir()
    _write(folder / "train.txt", "0 1 2\n")
    test = _write(folder / "test.txt", "0 3\n1 4 oops\n")
    with pytest.raises(DatasetError) as info:
        load_dataset("gowalla", tmp_path)
    _check_refusal(info.value, test, Refused(2, None, ("'oops' is not an id",)))


# --- through the command line ---------------------------------------------------------------------------

CLI_CASES = ["header-without-item", "unquoted-comma-shifts-columns", "missing-timestamp", "latin-1-bytes",
             "truncated-xz", "gzip-named-csv", "headerless-string-ids-read-as-header"]
BY_ID = {c[0]: c[1:] for c in CASES}


def _assert_cli_refuses(tmp_path, capsys, dataset: str, *phrases: str) -> None:
    results = tmp_path / "r"
    capsys.readouterr()
    rc = main(["run", "--dataset", dataset, "--results-dir", str(results), "-q", "--no-report"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("cfbench: error: "), err
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    assert not results.exists() or not any(p.is_file() for p in results.rglob("*"))


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_refuses_bad_file_in_one_line(tmp_path, capsys, case):
    filename, content, expected = BY_ID[case]
    path = _write(tmp_path / filename, content)
    phrases = [str(path), *expected.says] + ([f"line {expected.line}"] if expected.line else [])
    _assert_cli_refuses(tmp_path, capsys, str(path), *phrases)


def test_cli_refuses_directory_in_one_line(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    _assert_cli_refuses(tmp_path, capsys, str(folder), str(folder), "is a directory")


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pipe_or_device_is_refused_not_read_for_ever(kind, tmp_path, capsys):
    """A named pipe would block the reader for ever and /dev/zero would never end: both are refused."""
    if kind == "fifo":
        path = tmp_path / "ratings.csv"
        os.mkfifo(path)
    else:
        path = Path("/dev/zero")
    with pytest.raises(DatasetError, match="not a regular file") as err:
        load_dataset(str(path))
    assert len(str(err.value).splitlines()) == 1
