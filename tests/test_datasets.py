from __future__ import annotations

import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest

from cfbench.datasets import DatasetError, data_dirs, load_dataset, locate, read_interaction_file
from tests.conftest import require_dataset


def test_embedded_ml_latest_small_is_the_2018_release(small_data):
    assert len(small_data) == 100_836
    assert small_data.n_users == 610
    assert small_data.n_items == 9_724
    assert small_data.timestamp is not None and small_data.rating is not None
    assert set(np.unique(small_data.rating)) == set(np.arange(1, 11) / 2)


def _write(path: Path, text: str) -> Path:
    if path.suffix == ".xz":
        path.write_bytes(lzma.compress(text.encode()))
    elif path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("suffix", ["", ".xz", ".gz"])
def test_data_dir_layout_and_compression(tmp_path, suffix):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    _write(folder / f"u.data{suffix}", "1\t10\t5\t100\n1\t11\t3\t101\n2\t10\t4\t102\n")
    data = load_dataset("ml-100k", tmp_path)
    assert list(data.user) == [1, 1, 2] and list(data.item) == [10, 11, 10]
    assert list(data.rating) == [5, 3, 4] and list(data.timestamp) == [100, 101, 102]


def test_ml1m_with_and_without_timestamps(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    _write(folder / "ratings_notimestamps.dat.xz", "1::1193::5\n1::661::3\n2::1193::4\n")
    data = load_dataset("ml-1m", tmp_path)
    assert data.timestamp is None and list(data.item) == [1193, 661, 1193]
    _write(folder / "ratings.dat", "1::1193::5::978300760\n")
    data = load_dataset("ml-1m", tmp_path)  # the original file wins when both exist
    assert list(data.timestamp) == [978300760]


def test_gowalla_reads_train_and_test_as_one_set(tmp_path):
    folder = tmp_path / "lightgcn-gowalla"
    folder.mkdir()
    _write(folder / "train.txt", "0 1 2 3\n1 2\n")
    _write(folder / "test.txt", "0 4\n1 5 6\n")
    data = load_dataset("gowalla", tmp_path)
    pairs = sorted(zip(data.user.tolist(), data.item.tolist()))
    assert pairs == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 5), (1, 6)]


def test_search_order_data_dir_then_env_then_embedded(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, item in ((a, 1), (b, 2)):
        (root / "ml-latest-small").mkdir(parents=True)
        _write(root / "ml-latest-small" / "ratings.csv", f"userId,movieId,rating,timestamp\n1,{item},4.0,1\n")
    monkeypatch.setenv("CFBENCH_DATA_DIR", str(b))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert list(load_dataset("ml-latest-small", a).item) == [1]
    assert list(load_dataset("ml-latest-small").item) == [2]
    monkeypatch.delenv("CFBENCH_DATA_DIR")
    assert "_embedded" in str(locate("ml-latest-small"))
    assert data_dirs(a)[0] == a


def test_missing_dataset_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("CFBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(DatasetError, match="cfbench fetch ml-1m"):
        load_dataset("ml-1m", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("no-such-dataset")


def test_user_csv_named_columns(tmp_path):
    path = _write(tmp_path / "mine.csv", "item_id,user_id,score,time\na,u1,1,5\nb,u1,0,6\na,u2,1,7\n")
    data = read_interaction_file(path)
    assert list(data.user) == ["u1", "u1", "u2"] and list(data.item) == ["a", "b", "a"]
    assert list(data.rating) == [1, 0, 1] and list(data.timestamp) == [5, 6, 7]
    assert load_dataset(str(path)).name == "mine"


def test_user_tsv_positional_columns(tmp_path):
    path = _write(tmp_path / "pairs.tsv", "1\t2\n1\t3\n2\t3\n")
    data = read_interaction_file(path)
    assert data.rating is None and data.timestamp is None and len(data) == 3


def test_user_file_with_non_numeric_rating_is_rejected(tmp_path):
    path = _write(tmp_path / "bad.csv", "1,2,5\n1,3,bad\n")
    with pytest.raises(DatasetError, match=r"line 2, column 3 \(rating\): 'bad' is not a finite number"):
        read_interaction_file(path)
    # A first line with a non-numeric field is a header: unknown names are refused, never read by position.
    path = _write(tmp_path / "bad2.csv", "1,2,good\n1,3,bad\n")
    with pytest.raises(DatasetError, match="line 1 is read as a header .* names no user and item column"):
        read_interaction_file(path)


def test_shared_datasets_have_published_sizes():
    ml1m = require_dataset("ml-1m")
    assert (len(ml1m), ml1m.n_users, ml1m.n_items) == (1_000_209, 6_040, 3_706)
    ml100k = require_dataset("ml-100k")
    assert (len(ml100k), ml100k.n_users, ml100k.n_items) == (100_000, 943, 1_682)
    gowalla = require_dataset("gowalla")
    assert (len(gowalla), gowalla.n_users, gowalla.n_items) == (1_027_370, 29_858, 40_981)
    assert ml1m.user.dtype == ml1m.item.dtype == gowalla.user.dtype == gowalla.item.dtype == np.int64
    assert ml1m.timestamp is None and set(np.unique(ml1m.rating)) == {1.0, 2.0, 3.0, 4.0, 5.0}
