"""`cfbench fetch` end to end against a loopback HTTP server serving small files in each real format (no network).

The server holds files where ``$CFBENCH_MIRROR`` says they are (``<mirror>/<host>/<path>`` of each registry URL), so
the real registry entries are fetched; published checksums are swapped for those of the generated files.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import gzip
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import urllib.parse
import zipfile
from pathlib import Path

import pytest

from cfbench.cli import main
from cfbench.datasets import DATASETS, DatasetError, Download, download_url, fetch, load_dataset, locate


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A loopback HTTP server serving ``tmp_path/www``; the cache and the mirror point at the test's folders."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("CFBENCH_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CFBENCH_DATA_DIR", raising=False)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "*")
    yield root
    server.shutdown()
    server.server_close()
    thread.join()


def serve(root: Path, url: str, data: bytes) -> None:
    parts = urllib.parse.urlsplit(url)
    path = root / parts.netloc / parts.path.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def use(monkeypatch, name: str, **changes: object) -> None:
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], **changes))


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def unix(date: str) -> int:
    return int(datetime.datetime.fromisoformat(date).replace(tzinfo=datetime.UTC).timestamp())


def tar_bytes(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def leftovers(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".part"))


# One small file per real format: served bytes, registry changes (published hashes swapped for the generated
# files'), and the exact interactions (user, item, rating, timestamp) a load must give.
NETFLIX_TAR = tar_bytes({"training_set/mv_0000001.txt": b"1:\n10,3,2005-09-06\n20,5,2004-02-29\n",
                         "training_set/mv_0000002.txt": b"2:\n10,4,1999-12-31\n"})
ML100K_ZIP = zip_bytes({"ml-100k/u.data": b"1\t10\t5\t100\n1\t11\t3\t101\n2\t10\t4\t102\n",
                        "ml-100k/README": b"MovieLens 100K\n"})
MAGAZINE_CSV = b"B00005N7P0,AH2IFH762VY5U,5.0,1005177600\nB00005N7OJ,AOSFI0JEYU4XM,4.0,1003363200\n" \
               b"B00005N7P0,AOSFI0JEYU4XM,2.0,1011398400\n"
CASES = {
    "ml-100k": ({DATASETS["ml-100k"].url: ML100K_ZIP}, {"known_hash": digest(ML100K_ZIP, "md5")},
                ([1, 1, 2], [10, 11, 10], [5, 3, 4], [100, 101, 102])),
    "netflix": ({DATASETS["netflix"].fetch_plan[0].url: tar_bytes(
        {"download/README": b"Netflix prize\n", "download/training_set.tar": NETFLIX_TAR,
         "download/movie_titles.txt": b"1,2003,Dinosaur Planet\n2,2004,Isle of Man TT 2004 Review\n"}, "w:gz")},
                {"downloads": (dataclasses.replace(DATASETS["netflix"].fetch_plan[0],
                                                   member_hashes=(digest(NETFLIX_TAR, "md5"),)),)},
                ([10, 20, 10], [1, 1, 2], [3, 5, 4], [unix("2005-09-06"), unix("2004-02-29"), unix("1999-12-31")])),
    "amazon-magazine": ({DATASETS["amazon-magazine"].url: MAGAZINE_CSV}, {"known_hash": digest(MAGAZINE_CSV)},
                        (["AH2IFH762VY5U", "AOSFI0JEYU4XM", "AOSFI0JEYU4XM"],
                         ["B00005N7P0", "B00005N7OJ", "B00005N7P0"], [5, 4, 2], [1005177600, 1003363200, 1011398400])),
    "amazon-book": (dict(zip((d.url for d in DATASETS["amazon-book"].fetch_plan), (b"0 1 2\n1 3\n", b"0 4\n1 5\n"))),
                    {}, ([0, 0, 1, 0, 1], [1, 2, 3, 4, 5], None, None)),
    "douban": ({"https://example.org/douban/ratings.dat": b"1\t10\t5\n1\t11\t3\n2\t10\t4\n"},
               {"url": "https://example.org/douban/ratings.dat"}, ([1, 1, 2], [10, 11, 10], [5, 3, 4], None)),
}


def check(data, expected) -> None:
    user, item, rating, timestamp = expected
    assert data.user.tolist() == user and data.item.tolist() == item
    assert (None if data.rating is None else data.rating.tolist()) == rating
    assert (None if data.timestamp is None else data.timestamp.tolist()) == timestamp


@pytest.mark.parametrize("name", CASES)
def test_fetch_then_load_gives_the_exact_interactions(name, mirror, monkeypatch, tmp_path):
    files, changes, expected = CASES[name]
    for url, data in files.items():
        serve(mirror, url, data)
    use(monkeypatch, name, **changes)
    path = fetch(name, progress=False)
    assert path == locate(name) and path.is_relative_to(tmp_path / "cache" / "cfbench" / DATASETS[name].folder)
    check(load_dataset(name), expected)
    assert not leftovers(tmp_path)
    for item in DATASETS[name].fetch_plan:  # every download keeps its sha256 record
        file = tmp_path / "cache" / "cfbench" / "downloads" / name / Path(urllib.parse.urlsplit(item.url).path).name
        record = file.with_name(file.name + ".sha256").read_text()
        assert record == f"{hashlib.sha256(file.read_bytes()).hexdigest()}  {file.name}\n"


def test_cli_fetch_and_datasets_listing(mirror, monkeypatch, tmp_path, capsys):
    assert main(["datasets", "-q"]) == 0
    listing = capsys.readouterr().out
    for name in ("netflix", "amazon-magazine", "amazon-book", "yelp2018", "douban"):
        assert name in listing
    assert "not found (cfbench fetch netflix)" in listing and "not found (cfbench fetch amazon-book)" in listing
    assert "(cfbench fetch douban)" not in listing and "(cfbench fetch yelp2018)" not in listing
    for name in ("netflix", "amazon-book"):
        files, changes, expected = CASES[name]
        for url, data in files.items():
            serve(mirror, url, data)
        use(monkeypatch, name, **changes)
        assert main(["fetch", name, "-q"]) == 0
        assert capsys.readouterr().out.strip() == str(locate(name))
        check(load_dataset(name), expected)
    assert main(["datasets", "-q"]) == 0
    listing = capsys.readouterr().out
    assert str(tmp_path / "cache" / "cfbench" / "netflix" / "training_set.tar") in listing
    assert str(tmp_path / "cache" / "cfbench" / "lightgcn-amazon-book" / "train.txt") in listing


def test_checksum_mismatch_is_refused_and_keeps_nothing(mirror, monkeypatch, tmp_path, capsys):
    serve(mirror, DATASETS["amazon-magazine"].url, MAGAZINE_CSV)
    use(monkeypatch, "amazon-magazine", known_hash=digest(b"another file"))
    with pytest.raises(DatasetError, match="checksum mismatch.*published checksum") as err:
        fetch("amazon-magazine", progress=False)
    assert "\n" not in str(err.value)
    assert locate("amazon-magazine") is None and not leftovers(tmp_path)
    assert not list((tmp_path / "cache" / "cfbench" / "downloads" / "amazon-magazine").glob("Magazine*.csv"))
    assert main(["fetch", "amazon-magazine", "-q"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    # a member with a published checksum (Netflix's training_set.tar) is checked too
    files, _, _ = CASES["netflix"]
    for url, data in files.items():
        serve(mirror, url, data)
    plan = DATASETS["netflix"].fetch_plan[0]
    use(monkeypatch, "netflix", downloads=(dataclasses.replace(plan, member_hashes=(digest(b"x", "md5"),)),))
    with pytest.raises(DatasetError, match="download/training_set.tar in .* does not match its published"):
        fetch("netflix", progress=False)
    assert locate("netflix") is None and not leftovers(tmp_path)


def test_http_404_is_one_line_and_places_nothing(mirror, tmp_path, capsys):
    train_url, test_url = (d.url for d in DATASETS["amazon-book"].fetch_plan)
    serve(mirror, train_url, b"0 1 2\n")  # test.txt is missing: train.txt alone must not become the dataset
    with pytest.raises(DatasetError, match=r"HTTP 404 .*mirror") as err:
        fetch("amazon-book", progress=False)
    assert "\n" not in str(err.value) and test_url.split("//")[1] in str(err.value)
    assert locate("amazon-book") is None and not leftovers(tmp_path)
    assert main(["fetch", "amazon-book", "-q"]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and message.startswith("cfbench: error: downloading") and "404" in message


def test_second_fetch_verifies_the_recorded_sha256(mirror, tmp_path):
    urls = [d.url for d in DATASETS["amazon-book"].fetch_plan]
    serve(mirror, urls[0], b"0 1 2\n")
    serve(mirror, urls[1], b"0 4\n")
    fetch("amazon-book", progress=False)  # no published checksum: the first download's sha256 is recorded
    cached = tmp_path / "cache" / "cfbench" / "downloads" / "amazon-book" / "train.txt"
    record = cached.with_name("train.txt.sha256")
    assert record.read_text().split()[0] == hashlib.sha256(b"0 1 2\n").hexdigest()
    serve(mirror, urls[0], b"0 1 2 9\n")  # the file changes upstream
    fetch("amazon-book", progress=False)  # the cached copy still matches its record: kept, not downloaded again
    assert cached.read_bytes() == b"0 1 2\n"
    cached.write_bytes(b"0 1 2 666\n")  # the cache is damaged: downloaded again, and the new file is refused
    with pytest.raises(DatasetError, match="does not match the sha256 recorded when it was first downloaded"):
        fetch("amazon-book", progress=False)
    assert not cached.exists() and not leftovers(tmp_path)
    assert sorted(zip(*(a.tolist() for a in (load_dataset("amazon-book").user, load_dataset("amazon-book").item)))) \
        == [(0, 1), (0, 2), (0, 4)]  # the earlier, verified data is untouched
    serve(mirror, urls[0], b"0 1 2\n")  # upstream restored: the download verifies again
    fetch("amazon-book", progress=False)
    assert cached.read_bytes() == b"0 1 2\n"


def test_corrupt_archive_is_deleted_and_reported(mirror, monkeypatch, tmp_path):
    url = DATASETS["ml-latest-small"].url
    serve(mirror, url, b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="is not a readable zip archive .* it was deleted"):
        fetch("ml-latest-small", progress=False)
    downloads = tmp_path / "cache" / "cfbench" / "downloads" / "ml-latest-small"
    assert not list(downloads.iterdir()) and not leftovers(tmp_path)  # the archive and its (wrong) record
    assert not (tmp_path / "cache" / "cfbench" / "ml-latest-small" / "ratings.csv").exists()
    plan = DATASETS["netflix"].fetch_plan[0]
    serve(mirror, plan.url, gzip.compress(b"not a tar")[:-4])
    use(monkeypatch, "netflix", downloads=(dataclasses.replace(plan, member_hashes=()),))
    with pytest.raises(DatasetError, match="is not a readable tar archive"):
        fetch("netflix", progress=False)
    assert locate("netflix") is None and not leftovers(tmp_path)


def test_unreachable_host_and_datasets_without_download(mirror, monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CFBENCH_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(DatasetError, match="cannot download .* check the network connection"):
        fetch("amazon-magazine", progress=False)
    assert locate("amazon-magazine") is None and not leftovers(tmp_path)
    for name, where in (("yelp2018", "yelp.com/dataset"), ("douban", "researchgate")):
        with pytest.raises(DatasetError, match=f"has no public download: get it from .*{where}"):
            fetch(name, progress=False)
        with pytest.raises(DatasetError, match=f"not found .*{where}"):
            load_dataset(name)


def test_mirror_layout_and_local_folder_mirror(mirror, monkeypatch, tmp_path):
    url = DATASETS["amazon-magazine"].url
    monkeypatch.setenv("CFBENCH_MIRROR", "http://m.example/base/")
    assert download_url(url) == f"http://m.example/base/{url.split('://')[1]}"
    monkeypatch.delenv("CFBENCH_MIRROR")
    assert download_url(url) == url
    monkeypatch.setenv("CFBENCH_MIRROR", str(mirror))  # a folder is a file:// mirror
    serve(mirror, url, MAGAZINE_CSV)
    use(monkeypatch, "amazon-magazine", known_hash=digest(MAGAZINE_CSV))
    assert fetch("amazon-magazine", progress=False) == locate("amazon-magazine")
    check(load_dataset("amazon-magazine"), CASES["amazon-magazine"][2])


def test_registry_downloads_are_well_formed():
    with pytest.raises(ValueError, match="is not 'sha256"):
        Download("https://x/y.zip", "sha1:abc")
    for name, spec in DATASETS.items():
        names = [Path(urllib.parse.urlsplit(d.url).path).name for d in spec.fetch_plan]
        assert len(set(names)) == len(names), name  # downloads of one dataset never overwrite each other
        placed = {Path(m).name for d in spec.fetch_plan for m in d.members or (urllib.parse.urlsplit(d.url).path,)}
        assert not spec.fetch_plan or placed & set(spec.files), name  # a fetch gives the file the loader reads


def test_netflix_kaggle_parts_and_format_errors(tmp_path):
    folder = tmp_path / "netflix"
    folder.mkdir()
    parts = [b"1:\n5,1,2000-01-01\n6,2,2000-01-02\n", b"2:\n5,3,2001-03-01\r\n", b"3:\n7,4,2002-12-31\n\n",
             b"4:\n8,5,2005-06-07"]  # CRLF, a blank line, no final newline
    for k, text in enumerate(parts, 1):
        path = folder / f"combined_data_{k}.txt"
        path.write_bytes(gzip.compress(text) if k == 4 else text)
        if k == 4:
            path.rename(path.with_name(path.name + ".gz"))
    data = load_dataset("netflix", tmp_path)
    assert data.user.tolist() == [5, 6, 5, 7, 8] and data.item.tolist() == [1, 1, 2, 3, 4]
    assert data.rating.tolist() == [1, 2, 3, 4, 5] and data.timestamp[-1] == unix("2005-06-07")
    (folder / "combined_data_3.txt").write_bytes(b"3:\n7,4,2002-12-31\n7,4,2002-13-31\n")
    with pytest.raises(DatasetError, match=r"combined_data_3.txt: line 3: '7,4,2002-13-31' is not 'CustomerID"):
        load_dataset("netflix", tmp_path)
    (folder / "combined_data_3.txt").unlink()
    with pytest.raises(DatasetError, match="combined_data_3.txt missing"):
        load_dataset("netflix", tmp_path)
    (folder / "training_set.tar").write_bytes(tar_bytes({"training_set/mv_0000001.txt": b"1:\n5,1,2000-01-01\n",
                                                         "training_set/mv_0000002.txt": b"2:\n5,1,2000-01-01\nx,2\n"}))
    with pytest.raises(DatasetError, match=r"training_set.tar:training_set/mv_0000002.txt: line 3: 'x,2' is not"):
        load_dataset("netflix", tmp_path)  # the original tar wins over Kaggle's parts
    (folder / "training_set.tar").write_bytes(tar_bytes({"training_set/mv_0000001.txt": b"5,1,2000-01-01\n"}))
    with pytest.raises(DatasetError, match="line 1 is not a 'MovieID:' line"):
        load_dataset("netflix", tmp_path)
