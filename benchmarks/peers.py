"""cfbench's EASE and ∞-AE against plain NumPy/SciPy floors and, where installed, peer libraries.

    .venv/bin/python benchmarks/peers.py [--data-dir /work/shared/data] [--repeats 5] [--out docs/performance.md]

Not a test: a script that runs every measurement in one process on ML-1M's reference train split
(seed 0) and writes a Markdown table. Every timing is the median of ``--repeats`` runs after one
warm-up run (so JIT compile time is excluded), and every JAX result is waited for with
``block_until_ready()``. λ searches are warmed up with a one-λ grid (which compiles everything a
full search runs) and timed ``--search-repeats`` times.

Floors are what the same arithmetic costs in plain SciPy/NumPy, float32:

* EASE fit: sparse Gram XᵀX (scipy CSR), then LAPACK ``spotrf``/``spotri`` for the inverse.
* EASE scoring: scipy CSR × dense B.
* ∞-AE: dense GEMM X Xᵀ (NumPy's BLAS) and the NTK formula in NumPy; ``scipy.linalg.cho_factor``/``cho_solve``.
* λ searches: the same ``select_lambda`` evaluation (``cfbench.evaluation.evaluate`` with a plain scoring
  function), with the floor's fit (Gram once, a factorisation per λ) and the floor's scoring.

Peers (optional, imported inside ``try``; a missing one prints a "not installed" row): Cornac EASE,
LensKit EASE, RecPack EASE, neural-tangents' NTK.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.linalg import lapack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.sections import write_section  # noqa: E402
from cfbench.datasets import load_dataset  # noqa: E402
from cfbench.evaluation import evaluate, evaluation_task, select_lambda  # noqa: E402
from cfbench.models import EASE, InfiniteAE  # noqa: E402
from cfbench.models.base import Recommender, as_dense  # noqa: E402
from cfbench.models.ease import _primal_gram, _primal_solve  # noqa: E402
from cfbench.models.infinite_ae import _ridge_solve, kernel_matrix  # noqa: E402
from cfbench.ntk import NTKConfig  # noqa: E402
from cfbench.splits import reference_split  # noqa: E402

EASE_LAM = 1000.0
IAE_LAM = 5.0


def _block(out):
    return jax.block_until_ready(out) if isinstance(out, jax.Array | tuple | list) else out


def median_time(fn: Callable[[], object], repeats: int, warmup: Callable[[], object] | None = None) -> float:
    _block((warmup or fn)())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _block(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------- floors (plain SciPy / NumPy, float32)

def floor_ease_gram(x: sp.csr_matrix) -> np.ndarray:
    return np.asarray((x.T @ x).toarray(), dtype=np.float32)


def floor_ease_solve(gram: np.ndarray, lam: float) -> np.ndarray:
    a = gram.copy()
    a[np.diag_indices_from(a)] += np.float32(lam)
    chol, info = lapack.spotrf(a, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise ArithmeticError(f"spotrf info={info}")
    p, info = lapack.spotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise ArithmeticError(f"spotri info={info}")
    p = np.triu(p) + np.triu(p, 1).T  # spotri fills the upper triangle only
    b = p / -np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def floor_ntk(q: np.ndarray, xs: np.ndarray, xs_sq: np.ndarray, config: NTKConfig = NTKConfig()) -> np.ndarray:
    """The NTK of cfbench.ntk.ntk_from_gram, in NumPy float32 (dense GEMM for the Gram)."""
    d = q.shape[1]
    w2, b2 = np.float32(config.w_std ** 2), np.float32(config.b_std ** 2)
    sigma = (q @ xs.T) / np.float32(d)
    q1 = (np.einsum("ij,ij->i", q, q) / np.float32(d))[:, None]
    q2 = (xs_sq / np.float32(d))[None, :]
    theta = np.zeros_like(sigma)
    for _ in range(config.depth):
        sigma, q1, q2 = w2 * sigma + b2, w2 * q1 + b2, w2 * q2 + b2
        theta = sigma + w2 * theta
        norm = np.sqrt(q1 * q2)
        cos = np.clip(sigma / norm, -1.0, 1.0)
        angle = np.arccos(cos)
        sin = np.sqrt(np.maximum(1.0 - cos * cos, 0.0))
        sigma = (norm * sin + (np.float32(np.pi) - angle) * sigma) / np.float32(2 * np.pi)
        theta = theta * ((np.float32(np.pi) - angle) / np.float32(2 * np.pi))
        q1, q2 = q1 / 2, q2 / 2
    return (w2 * sigma + b2) + w2 * theta


def floor_iae_solve(kernel: np.ndarray, xs: np.ndarray, lam: float) -> np.ndarray:
    ridge = np.float32(lam * np.trace(kernel) / kernel.shape[0])
    a = kernel + ridge * np.eye(len(kernel), dtype=kernel.dtype)
    return sla.cho_solve(sla.cho_factor(a, lower=True, overwrite_a=True, check_finite=False), xs,
                         check_finite=False)


def floor_ease_search(x: sp.csr_matrix, split, grid) -> float:
    """Best validation HR@100 with the floor's fit and scoring, through cfbench's evaluation."""
    task = evaluation_task(split, "val")
    gram = floor_ease_gram(x)
    best = -math.inf
    for lam in grid:
        b = floor_ease_solve(gram, lam)
        best = max(best, evaluate(lambda q, b=b: q @ b, task).summary()["hr@100"])
    return best


def floor_iae_search(x: sp.csr_matrix, split, grid) -> float:
    task = evaluation_task(split, "val")
    xs = x.toarray()
    xs_sq = np.einsum("ij,ij->i", xs, xs)
    kernel = floor_ntk(xs, xs, xs_sq)
    best = -math.inf
    for lam in grid:
        try:
            alpha = floor_iae_solve(kernel, xs, lam)
        except np.linalg.LinAlgError:
            continue
        def score(q, alpha=alpha):
            return floor_ntk(q.toarray(), xs, xs_sq) @ alpha
        best = max(best, evaluate(score, task).summary()["hr@100"])
    return best


# ---------------------------------------------------------------- peers

class PerLambdaEASE(EASE):
    """EASE with the generic per-λ ``fit_path`` (the Gram recomputed for every λ): the code before the shared path."""

    fit_path = Recommender.fit_path


def peer_cornac(x: sp.csr_matrix, repeats: int) -> dict[str, str]:
    try:
        import cornac
        from cornac.data import Dataset
        from cornac.models import EASE as CornacEASE
    except Exception as err:  # noqa: BLE001 - any import failure means "not available"
        return {"fit": f"Cornac: not installed ({type(err).__name__})"}
    coo = x.tocoo()
    train = Dataset.from_uir(list(zip(coo.row.tolist(), coo.col.tolist(), coo.data.astype(float).tolist(),
                                      strict=True)), seed=0)
    model = CornacEASE(lamb=EASE_LAM, posB=False, verbose=False)
    fit = median_time(lambda: model.fit(train), repeats)
    u = train.matrix
    score = median_time(lambda: u @ model.B, repeats)
    tag = f"Cornac {cornac.__version__} (float64, np.linalg.inv)"
    return {"fit": f"{tag}: {fit:.2f}", "score": f"{tag}, U·B in one product: {score:.2f}"}


def peer_import(name: str, module: str) -> str | None:
    try:
        __import__(module)
    except Exception as err:  # noqa: BLE001
        return f"{name}: not installed ({type(err).__name__})"
    return None


def peer_neural_tangents(xs: jax.Array, repeats: int) -> str:
    try:
        import neural_tangents as nt
        from neural_tangents import stax
    except Exception as err:  # noqa: BLE001
        return f"neural-tangents: not installed ({type(err).__name__})"
    config = NTKConfig()
    _, _, kernel_fn = stax.serial(stax.Dense(1, W_std=config.w_std, b_std=config.b_std), stax.Relu(),
                                  stax.Dense(1, W_std=config.w_std, b_std=config.b_std))
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")
    t = median_time(lambda: kernel_fn(xs, xs, "ntk"), repeats)
    return f"neural-tangents {nt.__version__}: {t:.2f}"


# ---------------------------------------------------------------- the run

def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores{mem}; JAX backend {jax.default_backend()}",
        f"- Python {platform.python_version()}, JAX {jax.__version__}, NumPy {np.__version__}, "
        f"SciPy {scipy.__version__}",
        f"- Date: {datetime.date.today().isoformat()}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=os.environ.get("CFBENCH_DATA_DIR", "/work/shared/data"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--search-repeats", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "performance.md"))
    parser.add_argument("--skip-search", action="store_true", help="leave out the (slow) λ searches")
    args = parser.parse_args(argv)
    r, rs = args.repeats, args.search_repeats

    split = reference_split(load_dataset("ml-1m", args.data_dir), 0)
    x = split.train.astype(np.float32).tocsr()
    n, d = x.shape
    print(f"ML-1M train: {n} users × {d} items, {x.nnz} interactions", flush=True)
    rows: list[tuple[str, float | None, float | None, str]] = []

    def add(op: str, ours: float | None, floor: float | None, peers: str = "") -> None:
        rows.append((op, ours, floor, peers))
        ratio = f"{ours / floor:.2f}×" if ours and floor else ""
        cells = [f"{v:8.3f}" if v is not None else " " * 8 for v in (ours, floor)]
        print(f"{op:<66} {cells[0]} {cells[1]} {ratio:>6} {peers}", flush=True)

    # ---- EASE: fit and its parts
    xd = as_dense(x, jnp.float32)
    lam = jnp.asarray(EASE_LAM, jnp.float32)
    gram = _primal_gram(xd).block_until_ready()
    gram_np = floor_ease_gram(x)
    cornac_rows = peer_cornac(x, r)
    peers_ease = "; ".join([s for s in (peer_import("LensKit", "lenskit"), peer_import("RecPack", "recpack")) if s])
    add(f"EASE fit, λ={EASE_LAM:g} (total)", median_time(lambda: EASE(lam=EASE_LAM).fit(x).weights_, r),
        median_time(lambda: floor_ease_solve(floor_ease_gram(x), EASE_LAM), r),
        "; ".join(s for s in (cornac_rows["fit"], peers_ease) if s))
    add("  CSR → dense device array (cfbench only)", median_time(lambda: as_dense(x, jnp.float32), r), None)
    add("  Gram XᵀX: dense GEMM (cfbench) vs sparse (floor)", median_time(lambda: _primal_gram(xd), r),
        median_time(lambda: floor_ease_gram(x), r))
    add("  solve: Cholesky + cho_solve(I) (cfbench) vs potrf + potri (floor)",
        median_time(lambda: _primal_solve(gram, lam), r), median_time(lambda: floor_ease_solve(gram_np, EASE_LAM), r))
    # ---- EASE: scoring all users
    model = EASE(lam=EASE_LAM).fit(x)
    b_np = np.asarray(model.weights_)
    add(f"EASE score all {n:,} users (X·B)", median_time(lambda: model.score(x), r), median_time(lambda: x @ b_np, r),
        cornac_rows.get("score", ""))
    add("  queries CSR → dense device array (cfbench only)", median_time(lambda: as_dense(x, jnp.float32), r), None)
    add("  dense GEMM X·B (cfbench) vs CSR × dense (floor)", median_time(lambda: xd @ model.weights_, r),
        median_time(lambda: x @ b_np, r))
    del gram, gram_np, b_np, model

    # ---- EASE: λ search
    if not args.skip_search:
        grid = EASE.lambda_grid
        warm = (grid[0],)
        after = select_lambda(EASE(), x, split)
        before = select_lambda(PerLambdaEASE(), x, split)
        same = all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(after.scores.values(),
                                                                               before.scores.values(), strict=True))
        print(f"EASE λ search: chosen λ={after.lam:g}, per-λ HR@100 identical before/after: {same}", flush=True)
        floor_best = floor_ease_search(x, split, grid)
        print(f"  floor search best HR@100 {floor_best:.3f} vs cfbench {after.scores[after.lam]:.3f}", flush=True)
        t_before = median_time(lambda: select_lambda(PerLambdaEASE(), x, split), rs,
                               lambda: select_lambda(PerLambdaEASE(), x, split, warm))
        t_after = median_time(lambda: select_lambda(EASE(), x, split), rs,
                              lambda: select_lambda(EASE(), x, split, warm))
        t_floor = median_time(lambda: floor_ease_search(x, split, grid), rs, lambda: floor_ease_search(x, split, warm))
        add(f"EASE λ search, {len(grid)} λ, val HR@100 — before (Gram per λ)", t_before, t_floor)
        add(f"EASE λ search, {len(grid)} λ, val HR@100 — after (shared Gram)", t_after, t_floor,
            f"per-λ HR@100 identical before/after: {same}")

    # ---- ∞-AE
    config = NTKConfig()
    xs_np = x.toarray()
    xs_sq_np = np.einsum("ij,ij->i", xs_np, xs_np)
    kernel = kernel_matrix(xd, xd).block_until_ready()
    kernel_np = floor_ntk(xs_np, xs_np, xs_sq_np, config)
    err = float(np.max(np.abs(np.asarray(kernel) - kernel_np)) / np.max(np.abs(kernel_np)))
    print(f"∞-AE kernel: max |cfbench − NumPy floor| / max |K| = {err:.1e}", flush=True)
    ridge = (IAE_LAM * jnp.trace(kernel) / kernel.shape[0]).astype(jnp.float32)
    nt_peer = peer_neural_tangents(xd, r)
    add(f"∞-AE fit, λ={IAE_LAM:g} (total)", median_time(lambda: InfiniteAE(lam=IAE_LAM).fit(x).alpha_, r),
        median_time(lambda: floor_iae_solve(floor_ntk(xs_np, xs_np, xs_sq_np), xs_np, IAE_LAM), r))
    add(f"  kernel Θ(X, X), {n}×{n}", median_time(lambda: kernel_matrix(xd, xd), r),
        median_time(lambda: floor_ntk(xs_np, xs_np, xs_sq_np), r), nt_peer)
    add("  solve: Cholesky + cho_solve", median_time(lambda: _ridge_solve(kernel, xd, ridge), r),
        median_time(lambda: floor_iae_solve(kernel_np, xs_np, IAE_LAM), r))
    iae = InfiniteAE(lam=IAE_LAM).fit(x)
    alpha_np = np.asarray(iae.alpha_)
    add(f"∞-AE score all {n:,} users (Θ(X, Xs)·α)", median_time(lambda: iae.score(x), r),
        median_time(lambda: floor_ntk(x.toarray(), xs_np, xs_sq_np) @ alpha_np, r))
    del kernel, kernel_np, iae, alpha_np
    if not args.skip_search:
        grid = InfiniteAE.lambda_grid
        warm = (grid[1],)
        t_ours = median_time(lambda: select_lambda(InfiniteAE(), x, split), rs,
                             lambda: select_lambda(InfiniteAE(), x, split, warm))
        t_floor = median_time(lambda: floor_iae_search(x, split, grid), rs, lambda: floor_iae_search(x, split, warm))
        add(f"∞-AE λ search, {len(grid)} λ, val HR@100 (kernel shared)", t_ours, t_floor)

    write_report(Path(args.out), rows, n, d, x.nnz, r, rs, args.skip_search)
    print(f"wrote {args.out}")
    return 0


NOTES = """\
## Reading the table

* **Operation**: what is timed, on ML-1M's reference train split (seed 0), float32. Indented rows are parts of
  the row above them. Every time is the median of the stated number of runs after a warm-up (compile time
  excluded); JAX results are waited for with `block_until_ready()`.
* **Floor**: the same arithmetic in plain SciPy/NumPy (see `benchmarks/peers.py`): EASE with a *sparse* Gram
  XᵀX and LAPACK `spotrf`/`spotri`, scoring as scipy CSR × dense B; ∞-AE with NumPy's dense GEMM, the NTK
  formula in NumPy and `scipy.linalg.cho_factor`/`cho_solve`. The λ-search floors run the same cfbench
  evaluation (`evaluate` with a plain scoring function) on the floor's fits.
* **Peers**: other libraries' implementations where installed. Cornac's EASE works in float64 and inverts
  with `np.linalg.inv`; its per-user `score` is timed as the one product U·B it performs. LensKit and RecPack
  are not installed: both pull in PyTorch (with CUDA wheels, gigabytes), LensKit downgrades pandas 3 → 2 and
  RecPack downgrades NumPy 2 → 1.26, which would break this environment. neural-tangents needs TensorFlow
  (through tf2jax) at import, so it is not installed either.
* Timings on a shared 2-core machine are noisy (±10 % between runs is usual); compare ratios, not digits.

## Bit-exactness of the EASE λ path

`EASE.fit_path` computes the dense support and its Gram matrix (XᵀX, or XXᵀ for the dual solver) once
for the whole grid. `EASE.fit` runs the very same two jitted steps (Gram, then solve), and that split is
bit-for-bit identical to the single jitted function the shipped EASE rows were computed with (tested in
`tests/test_models.py`; checked on ML-1M too), so no shipped result changes. The search rows above also
compare every λ's validation HR@100 before and after.
"""


def write_report(path: Path, rows, n: int, d: int, nnz: int, r: int, rs: int, skip_search: bool) -> None:
    def fmt(v):
        return "—" if v is None else f"{v:.2f}"

    lines = [
        "Written by `benchmarks/peers.py` (re-run it to refresh; it replaces this section only).",
        "",
        f"ML-1M train: {n:,} users × {d:,} items, {nnz:,} interactions. Seconds, median of {r} runs "
        f"(λ searches: median of {rs}) after a warm-up.",
        "",
        *machine(),
        "",
        "| Operation | cfbench s | floor s | cfbench ÷ floor | peers s |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for op, ours, floor, peers in rows:
        ratio = f"{ours / floor:.2f}×" if ours and floor else "—"
        lines.append(f"| {op} | {fmt(ours)} | {fmt(floor)} | {ratio} | {peers or ''} |")
    if skip_search:
        lines += ["", "λ searches were skipped (`--skip-search`)."]
    lines += ["", NOTES]
    write_section(path, "peers.py", "\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
