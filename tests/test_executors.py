"""The Ray executor on a real two-node Ray cluster started on this machine.

The head node has 1 CPU; the worker node has 1 CPU and declares 2 GPUs (Ray lets a CPU-only
machine declare GPUs), so GPU requests and ``CUDA_VISIBLE_DEVICES`` assignment are tested on
CPU: JAX in the workers still computes on the CPU (the CPU-only jaxlib), the scheduling is real.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray executor needs the [ray] extra")

from ray.cluster_utils import Cluster  # noqa: E402

from cfbench.cli import main  # noqa: E402
from cfbench.harness import SuiteConfig, run_suite  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BAD = "tests.reliability.bad_plugins:"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node (1 CPU) and a worker node (1 CPU, 2 declared GPUs) on this machine."""
    markers = tmp_path_factory.mktemp("markers")
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "CFBENCH_TEST_MARKER_DIR")}
    # The nodes' workers inherit this environment: the test plugins must be importable there too.
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved["PYTHONPATH"]) if p)
    os.environ["CFBENCH_TEST_MARKER_DIR"] = str(markers)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1, num_gpus=2)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _rows(summary) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in summary}


SAME = ("identity_key", "lambda", "lambda_grid_val", "metrics", "n_eval_users", "subset", "model_params", "status")


def test_ray_rows_equal_local_rows(cluster, tmp_path):
    # `full` and 200 users: GEMMs large enough for XLA's CPU thread count to change their last bits.
    suite = dict(dataset="ml-latest-small", samplers=("full", "random-users", "head-users", "svp-cf"),
                 budgets=(10, 200), seeds=(0, 1), device="cpu")
    local = run_suite(SuiteConfig(**suite, results_dir=tmp_path / "local"), progress=False)
    on_ray = run_suite(SuiteConfig(**suite, results_dir=tmp_path / "ray", executor="ray", address=cluster.address),
                       progress=False)
    assert on_ray.ok and on_ray.computed == len(on_ray) == 28
    a, b = _rows(local), _rows(on_ray)
    assert a.keys() == b.keys()
    for name in a:
        for key in SAME:
            assert a[name][key] == b[name][key], (name, key)
        assert a[name]["computed_by"]["executor"] == "local"
        assert b[name]["computed_by"]["executor"] == "ray" and b[name]["computed_by"]["attempts"] == 1
    nodes = {r["computed_by"]["node_id"] for r in b.values()}
    assert len(nodes) == 2, "both nodes should have computed units"
    # The Ray run's rows are the suite's rows: a local run now has nothing to do.
    again = run_suite(SuiteConfig(**suite, results_dir=tmp_path / "ray"), progress=False)
    assert again.computed == 0 and again.reused == 28


def test_selections_computed_on_workers_are_kept_by_the_driver(cluster, tmp_path):
    # Workers share no folder with the driver: a fresh selection comes back with the rows, the driver keeps it,
    # and a later local run (a new model) reuses it instead of selecting again.
    count = Path(os.environ["CFBENCH_TEST_MARKER_DIR"]) / "selections"
    selections = lambda: len(count.read_text().splitlines()) if count.exists() else 0  # noqa: E731
    suite = dict(dataset="ml-latest-small", samplers=("tests.test_subset_cache:CountingSynthetic", "random-users"),
                 models=("ease",), budgets=(10,), seeds=(0,), device="cpu", subset_cache=str(tmp_path / "cache"))
    on_ray = run_suite(SuiteConfig(**suite, results_dir=tmp_path / "ray", executor="ray", address=cluster.address),
                       progress=False)
    assert on_ray.ok and len(list((tmp_path / "cache").rglob("*.npz"))) == 2
    before = selections()
    assert before >= 1
    local = run_suite(SuiteConfig(**{**suite, "models": ("ease", "infinite-ae")}, results_dir=tmp_path / "local"),
                      progress=False)
    assert local.ok and local.computed == 4 and selections() == before
    a, b = _rows(on_ray), _rows(local)
    for name, row in a.items():
        assert b[name]["selection_reused"]["computed_by"]["pid"] == row["computed_by"]["pid"] != os.getpid()
        for key in ("identity_key", "metrics", "lambda", "subset", "selection"):
            assert row[key] == b[name][key], (name, key)


def test_gpu_requests_and_visible_devices(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("CFBENCH_MATMUL_PRECISION", "high")  # the driver's choice must hold in the workers
    summary = run_suite(SuiteConfig(dataset="ml-latest-small", samplers=("random-users",), models=("ease",),
                                    budgets=(10, 20, 50), seeds=(0,), results_dir=tmp_path, executor="ray",
                                    address=cluster.address, device="auto"), progress=False)
    assert summary.ok
    rows = _rows(summary).values()
    worker_node = [n["NodeID"] for n in ray_nodes(cluster) if n["Resources"].get("GPU")][0]
    for row in rows:
        where = row["computed_by"]
        assert where["node_id"] == worker_node  # only that node has GPUs
        assert len(where["gpu_ids"]) == 1 and where["gpu_ids"][0] in ("0", "1")
        # A small unit (≈ 0.5 GiB predicted) asks for an eighth of a 16 GiB GPU: several share one.
        assert where["requested"]["num_gpus"] == 0.125 and 0 < where["requested"]["memory"] < 2**31
        assert where["cuda_visible_devices"] == where["gpu_ids"][0]
        assert where["device"].startswith("cpu")  # the CPU-only jaxlib computes on the CPU all the same
        assert where["matmul_precision"] == "high"


def ray_nodes(cluster):
    ray.init(address=cluster.address)
    try:
        return [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()


def test_gpu_insisted_on_a_cpu_cluster_is_one_line(tmp_path, capsys):
    rc = main(["run", "--samplers", "random-users", "--models", "ease", "--budgets", "10", "--seeds", "0",
               "--results-dir", str(tmp_path), "--device", "gpu", "--no-report", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "--device gpu" in err and len(err.strip().splitlines()) == 1


def test_transient_failure_is_retried_once(cluster, tmp_path):
    summary = run_suite(SuiteConfig(dataset="ml-latest-small", samplers=(BAD + "FailsOnce",), models=("ease",),
                                    budgets=(10,), seeds=(0,), results_dir=tmp_path, executor="ray",
                                    address=cluster.address, device="cpu"), progress=False)
    (row,) = _rows(summary).values()
    assert summary.ok and row["status"] == "ok" and row["computed_by"]["attempts"] == 2


def test_dying_worker_is_retried_then_recorded(cluster, tmp_path):
    summary = run_suite(SuiteConfig(dataset="ml-latest-small", samplers=(BAD + "HardExit", "random-users"),
                                    models=("ease",), budgets=(10,), seeds=(0,), results_dir=tmp_path,
                                    executor="ray", address=cluster.address, device="cpu"), progress=False)
    rows = _rows(summary)
    dead = rows["bad-hard-exit__ease__b10__s0.json"]
    assert dead["status"] == "failed" and dead["error"]["kind"] == "exit", dead["error"]
    assert dead["computed_by"]["attempts"] == 2 and "attempt 2 of 2" in dead["error"]["message"]
    assert rows["random-users__ease__b10__s0.json"]["status"] == "ok"  # the other unit is unaffected
    assert len(summary.failed) == 1


def test_without_ray_installed_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    rc = main(["run", "--executor", "ray", "--samplers", "random-users", "--budgets", "10", "--seeds", "0",
               "--results-dir", str(tmp_path), "--no-report", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and 'pip install -e ".[ray]"' in err


def test_unreachable_cluster_one_line(tmp_path, capsys):
    rc = main(["run", "--executor", "ray", "--address", "127.0.0.1:9", "--samplers", "random-users",
               "--models", "ease", "--budgets", "10", "--seeds", "0", "--results-dir", str(tmp_path),
               "--no-report", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "127.0.0.1:9" in err, err
