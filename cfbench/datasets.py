"""Datasets: where they are found, how their files are read, and their interaction tables.

A dataset is read into an :class:`Interactions` table (one row per rating event, with
original user and item identifiers). Built-in names know their file layout; any other
name is treated as a path to a CSV/TSV file.

Data directories are searched in order: ``--data-dir``, ``$CFBENCH_DATA_DIR``, the
per-user cache (``cfbench fetch`` downloads there), then the data embedded in the
package (``ml-latest-small`` only; its licence allows redistribution). Files may be
plain or ``.xz``/``.gz`` compressed.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import lzma
import os
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


def open_text(path: Path) -> io.TextIOBase:
    """Open a plain, .xz or .gz text file transparently."""
    suffix = path.suffix
    if suffix == ".xz":
        return io.TextIOWrapper(lzma.open(path, "rb"), encoding="utf-8", errors="replace")
    if suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def find_file(folder: Path, name: str) -> Path | None:
    for suffix in COMPRESSED_SUFFIXES:
        candidate = folder / (name + suffix)
        if candidate.is_file():
            return candidate
    return None


def _read_delimited(path: Path, sep: str, names: Sequence[str], header: int | None) -> pd.DataFrame:
    with open_text(path) as fh:
        return pd.read_csv(fh, sep=sep, names=list(names), header=header, engine="c" if len(sep) == 1 else "python")


# ----------------------------------------------------------------------------- readers


def _read_movielens_csv(path: Path, name: str) -> Interactions:
    df = _read_delimited(path, ",", ["user", "item", "rating", "timestamp"], header=0)
    return _from_frame(name, df, str(path))


def _read_ml100k(path: Path, name: str) -> Interactions:
    df = _read_delimited(path, "\t", ["user", "item", "rating", "timestamp"], header=None)
    return _from_frame(name, df, str(path))


def _read_ml1m(path: Path, name: str) -> Interactions:
    # "::"-separated; the shared copy has no timestamp column.
    with open_text(path) as fh:
        raw = np.array([line.rstrip("\n").split("::") for line in fh if line.strip()], dtype=object)
    if raw.ndim != 2 or raw.shape[1] not in (3, 4):
        raise DatasetError(f"{path}: expected 'user::item::rating[::timestamp]' lines")
    df = pd.DataFrame({"user": raw[:, 0].astype(np.int64), "item": raw[:, 1].astype(np.int64),
                       "rating": raw[:, 2].astype(np.float32)})
    if raw.shape[1] == 4:
        df["timestamp"] = raw[:, 3].astype(np.int64)
    return _from_frame(name, df, str(path))


def _read_lightgcn(path: Path, name: str) -> Interactions:
    """LightGCN format: ``train*.txt`` and ``test.txt``, one line per user: ``u i i i ...``.

    cfbench applies its own reference split, so both files are read as one interaction set.
    """
    users, items = [], []
    folder = path.parent
    files = [path]
    test = find_file(folder, "test.txt")
    if test is not None and test != path:
        files.append(test)
    for f in files:
        with open_text(f) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 2:
                    continue
                ids = np.asarray(parts, dtype=np.int64)
                users.append(np.full(len(ids) - 1, ids[0]))
                items.append(ids[1:])
    if not users:
        raise DatasetError(f"{path}: no 'user item item ...' lines found")
    return Interactions(name, np.concatenate(users), np.concatenate(items), source=", ".join(map(str, files)))


def _from_frame(name: str, df: pd.DataFrame, source: str) -> Interactions:
    if df.empty:
        raise DatasetError(f"{source}: no interactions found")
    for col in ("user", "item"):
        if df[col].isna().any():
            raise DatasetError(f"{source}: column {col!r} has missing values; clean the file first")
    rating = df["rating"].to_numpy(np.float32) if "rating" in df else None
    timestamp = df["timestamp"].to_numpy(np.int64) if "timestamp" in df else None
    if rating is not None and not np.isfinite(rating).all():
        raise DatasetError(f"{source}: column 'rating' has non-numeric or missing values")
    return Interactions(name, df["user"].to_numpy(), df["item"].to_numpy(), rating, timestamp, source)


def read_interaction_file(path: str | Path, *, sep: str | None = None, columns: Sequence[str] | None = None,
                          name: str | None = None) -> Interactions:
    """Read a user CSV/TSV file of interactions.

    Columns are taken by name when the header names them (``user``/``userId``/``user_id``,
    ``item``/``movieId``/``item_id``, ``rating``, ``timestamp``), else by position:
    user, item, [rating, [timestamp]]. ``columns`` overrides the positional names.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; pass a CSV/TSV path or a built-in name ({', '.join(DATASETS)})")
    with open_text(path) as fh:
        first = fh.readline()
    if sep is None:
        sep = "\t" if "\t" in first else ("::" if "::" in first else ",")
    fields = [f.strip().strip('"').lower() for f in first.rstrip("\n").split(sep)]
    aliases = {
        "user": {"user", "userid", "user_id", "uid", "u"},
        "item": {"item", "itemid", "item_id", "movieid", "movie_id", "iid", "i"},
        "rating": {"rating", "score", "value", "r"},
        "timestamp": {"timestamp", "time", "ts", "t", "datetime"},
    }
    named = {canon: fields.index(f) for canon, names in aliases.items() for f in fields if f in names}
    if columns is None and {"user", "item"} <= named.keys():
        df = _read_delimited(path, sep, fields, header=0)
        df = df.rename(columns={fields[i]: canon for canon, i in named.items()})[list(named)]
    else:
        ncols = len(fields)
        if columns is None:
            columns = ["user", "item", "rating", "timestamp"][:ncols]
        if ncols < 2 or len(columns) != ncols:
            raise DatasetError(f"{path}: found {ncols} columns; expected user,item[,rating[,timestamp]] "
                               "or pass columns=... explicitly")
        df = _read_delimited(path, sep, columns, header=None)
        # A header row we could not recognise would show up as a non-numeric first row.
    if "timestamp" in df and not pd.api.types.is_numeric_dtype(df["timestamp"]):
        df["timestamp"] = pd.to_datetime(df["timestamp"]).astype("int64") // 10**9
    if "rating" in df and not pd.api.types.is_numeric_dtype(df["rating"]):
        raise DatasetError(f"{path}: column 'rating' is not numeric (first value {df['rating'].iloc[0]!r}); "
                           "name the columns or remove the header")
    return _from_frame(name or path.stem.split(".")[0], df, str(path))


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
    if Path(name).is_file():
        return read_interaction_file(name)
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
