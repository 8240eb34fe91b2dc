"""``distill-cf``: Distill-CF (Sachdeva et al., NeurIPS 2022) — learn b synthetic users by meta-gradients.

The synthetic data is a real logit matrix Z (b × d), b = budget, initialised with the binary train
rows of b random real users. One step:

1. **Multi-Gumbel sampling.** With S i.i.d. Gumbel(0, 1) noise matrices G_s,

       P_s = softmax_rows((Z + G_s) / τ),        X̃ = min(Σ_{s=1..S} P_s, 1)

   is a relaxed multi-hot row per synthetic user (at most S distinct items, values in [0, 1]).
   Its gradient is written by hand and re-materialises every P_s from its seed, so memory is
   O(b d) whatever S:  ∂L/∂Z = (1/τ) Σ_s P_s ⊙ (Ḡ − ⟨Ḡ, P_s⟩_row), Ḡ = ∂L/∂(Σ_s P_s).

2. **Inner loop in closed form (∞-AE).** With Θ the NTK of :mod:`cfbench.ntk`,

       K = Θ(X̃, X̃),   α = (K + λ · tr(K)/b · I)⁻¹ X̃,   R = Θ(X, X̃) α

   for the real users' train rows X (all users, or ``batch_users`` random ones per step).

3. **Outer loss.**  L = mean_u [ −Σ_i X_ui log softmax(R_u)_i ]  +  c · mean_rows(Σ_i X̃) / (|train| / U),

   minimised over Z with Adam. Every ``eval_every`` steps a fresh sample X̃ is scored on
   validation with the ∞-AE λ grid (HR@100); the best λ becomes the λ of the loss, the best
   sample is kept, and training stops after ``patience`` steps without improvement.

The result is that best relaxed sample, :class:`~cfbench.subsets.SyntheticUsers` in [0, 1].

Deviations from the reference code: Gumbel noise comes from a counter-based hash (murmur3's
finaliser) seeded per sample from a JAX key, not from threefry, which costs ~4× more here and
dominates the step; the diagonal of Θ(X̃, X̃) is taken from :func:`cfbench.ntk.ntk_diagonal`
(arccos has an infinite derivative at cos θ = 1); a step whose gradient is not finite is skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import optax
import scipy.sparse as sp
from tqdm.auto import tqdm

from cfbench.evaluation import select_lambda
from cfbench.models.infinite_ae import InfiniteAE
from cfbench.ntk import NTKConfig, ntk_diagonal, ntk_from_gram
from cfbench.sampling import Sampler, SelectionData
from cfbench.splits import Split
from cfbench.subsets import SyntheticUsers

__all__ = ["DistillCF", "DistillCFConfig", "DistillRun", "distillation_loss", "krr_predict", "multi_gumbel_sum",
           "relaxed_multi_hot"]

log = logging.getLogger(__name__)


def _floats(text: str, name: str) -> tuple[float, ...]:
    """Parse ``"a/b/c"`` into floats; raise a one-line ValueError naming the field."""
    try:
        values = tuple(float(v) for v in text.split("/") if v.strip())
    except ValueError:
        raise ValueError(f"{name} must be '/'-separated numbers like '0.1/1/5', got {text!r}") from None
    if not values:
        raise ValueError(f"{name} must list at least one number, got {text!r}")
    return values


@dataclasses.dataclass(frozen=True)
class DistillCFConfig:
    """Hyper-parameters of Distill-CF. Grids are '/'-separated (commas separate CLI specs).

    Defaults measured on ML-1M (reference split seed 0, budget 50, 300 steps, best validation HR@100
    of ∞-AE): τ = 0.3 → 38.5, 0.5 → 42.5, 0.7 → 44.6, 5 → 52.6 (peak at step 225, flat after),
    10 → 52.3; so τ = 5. At τ = 5 no entry of Σ_s P_s reaches 1: the cap never binds, every row
    sums to S whatever Z, and the cardinality term is a constant with zero gradient (c = 10 gave a
    validation trace identical to c = 10⁻³ over the 50 steps it was run; at τ = 0.5, c = 10 vs 10⁻³
    gave 39.8 vs 39.6 at step 150), so c keeps the reference's 10⁻³. Budgets 20 / 50 / 500 peaked
    at steps 200 / 225 / 75, hence patience 100; the step cap is the reference's 500.
    """

    steps: int = 500  # at most this many Adam steps (the reference's default)
    samples_per_user: int = 200  # S, Gumbel samples summed per synthetic user (the reference's default)
    tau: float = 5.0  # Gumbel-softmax temperature τ (measured, see above)
    cardinality: float = 1e-3  # c, weight of the cardinality penalty (the reference's default)
    lr: float = 0.04  # Adam learning rate (the reference's)
    patience: int = 100  # stop after this many steps without a better validation HR@100
    eval_every: int = 25  # validate (and re-choose λ) every this many steps
    batch_users: int = 0  # real users per step as queries/targets; 0 = all users (the reference's full batch)
    block_users: int = 2048  # query rows per kernel block (bounds memory, not the result)
    lambdas: str = "1e-5/0.001/0.1/1/5/50"  # ∞-AE ridge grid searched on validation (the reference's)
    grid: bool = False  # try every (τ, c) of grid_taus × grid_cardinalities, keep the best on validation
    grid_taus: str = "0.3/0.5/0.7/5"  # the reference's grid
    grid_cardinalities: str = "0.001/10"  # the reference's grid

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be in [1, 1000], got {self.steps}")
        if self.samples_per_user < 1:
            raise ValueError(f"samples_per_user must be ≥ 1, got {self.samples_per_user}")
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if not self.cardinality >= 0:
            raise ValueError(f"cardinality must be ≥ 0, got {self.cardinality}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.patience < 1 or self.eval_every < 1:
            raise ValueError(f"patience and eval_every must be ≥ 1, got {self.patience} and {self.eval_every}")
        if self.batch_users < 0 or self.block_users < 1:
            raise ValueError(f"batch_users must be ≥ 0 (0 = all) and block_users ≥ 1, "
                             f"got {self.batch_users} and {self.block_users}")
        if any(lam <= 0 for lam in self.lambda_grid):
            raise ValueError(f"lambdas must be > 0 (the loss differentiates through the solve), got {self.lambdas!r}")
        if any(t <= 0 for t in _floats(self.grid_taus, "grid_taus")):
            raise ValueError(f"grid_taus must be > 0, got {self.grid_taus!r}")
        if any(c < 0 for c in _floats(self.grid_cardinalities, "grid_cardinalities")):
            raise ValueError(f"grid_cardinalities must be ≥ 0, got {self.grid_cardinalities!r}")

    @property
    def lambda_grid(self) -> tuple[float, ...]:
        return _floats(self.lambdas, "lambdas")

    def grid_points(self) -> list[DistillCFConfig]:
        """The single-run configurations this config stands for."""
        if not self.grid:
            return [self]
        return [dataclasses.replace(self, tau=t, cardinality=c, grid=False)
                for t, c in itertools.product(_floats(self.grid_taus, "grid_taus"),
                                              _floats(self.grid_cardinalities, "grid_cardinalities"))]


# --- multi-Gumbel sampling ------------------------------------------------------------------------------


def _fmix32(h: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser: a bijection of uint32 with full avalanche."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def gumbel_noise(seeds: jax.Array, shape: tuple[int, int], dtype: jnp.dtype) -> jax.Array:
    """Gumbel(0, 1) noise g = −log(−log u), u from a hash of (entry index, two uint32 seeds).

    Entries of one call get distinct hash inputs (the index is a bijection of the position),
    so no noise value repeats within a sample.
    """
    rows = jax.lax.broadcasted_iota(jnp.uint32, shape, 0)
    cols = jax.lax.broadcasted_iota(jnp.uint32, shape, 1)
    h = _fmix32(_fmix32((rows * jnp.uint32(shape[1]) + cols) ^ seeds[0]) ^ seeds[1])
    u = ((h >> 9).astype(dtype) + 0.5) * (1.0 / (1 << 23))  # 23 random bits: exact in float32, never 0 or 1
    return -jnp.log(-jnp.log(u))


def _sample_seeds(key: jax.Array, s: jax.Array) -> jax.Array:
    return jax.random.bits(jax.random.fold_in(key, s), (2,), jnp.uint32)


def gumbel_softmax(logits: jax.Array, seeds: jax.Array, tau: float) -> jax.Array:
    """One relaxed one-hot sample per row: P = softmax((Z + G) / τ)."""
    return jax.nn.softmax((logits + gumbel_noise(seeds, logits.shape, logits.dtype)) / tau, axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def multi_gumbel_sum(logits: jax.Array, key: jax.Array, tau: float, n_samples: int) -> jax.Array:
    """Σ_{s<S} softmax((Z + G_s)/τ), G_s seeded by ``fold_in(key, s)``; O(b d) memory in both passes."""
    def add(total, s):
        return total + gumbel_softmax(logits, _sample_seeds(key, s), tau), None
    return jax.lax.scan(add, jnp.zeros_like(logits), jnp.arange(n_samples))[0]


def _multi_gumbel_fwd(logits, key, tau, n_samples):
    return multi_gumbel_sum(logits, key, tau, n_samples), (logits, key)


def _multi_gumbel_bwd(tau, n_samples, residuals, cotangent):
    """∂L/∂Z = (1/τ) Σ_s P_s ⊙ (Ḡ − ⟨Ḡ, P_s⟩_row), each P_s recomputed from its seed."""
    logits, key = residuals

    def add(grad, s):
        p = gumbel_softmax(logits, _sample_seeds(key, s), tau)
        return grad + p * (cotangent - jnp.sum(cotangent * p, axis=-1, keepdims=True)), None
    grad = jax.lax.scan(add, jnp.zeros_like(logits), jnp.arange(n_samples))[0]
    return grad / tau, None


multi_gumbel_sum.defvjp(_multi_gumbel_fwd, _multi_gumbel_bwd)


def relaxed_multi_hot(logits: jax.Array, key: jax.Array, tau: float, n_samples: int) -> jax.Array:
    """X̃ = min(Σ_s P_s, 1): relaxed multi-hot synthetic rows in [0, 1] (the reference's hard-tanh)."""
    return jnp.minimum(multi_gumbel_sum(logits, key, tau, n_samples), 1.0)


# --- ∞-AE kernel ridge regression -----------------------------------------------------------------------


def support_kernel(xs: jax.Array, config: NTKConfig) -> jax.Array:
    """K = Θ(X̃, X̃), its diagonal from ``ntk_diagonal`` so that the gradient is finite (arccos′(1) = −∞)."""
    gram = xs @ xs.T
    sq = jnp.sum(xs * xs, axis=1)
    eye = jnp.eye(xs.shape[0], dtype=bool)
    off_diagonal = ntk_from_gram(jnp.where(eye, 0.0, gram), sq, sq, xs.shape[1], config)
    return jnp.where(eye, ntk_diagonal(sq, xs.shape[1], config)[:, None], off_diagonal)


def krr_weights(xs: jax.Array, lam: jax.Array, config: NTKConfig) -> jax.Array:
    """α = (K + λ · tr(K)/b · I)⁻¹ X̃, as ``InfiniteAE`` fits it."""
    kernel = support_kernel(xs, config)
    ridge = lam * jnp.trace(kernel) / kernel.shape[0]
    chol = jnp.linalg.cholesky(kernel + ridge * jnp.eye(kernel.shape[0], dtype=kernel.dtype))
    return jsl.cho_solve((chol, True), xs)


def krr_predict(queries: jax.Array, xs: jax.Array, alpha: jax.Array, config: NTKConfig) -> jax.Array:
    """R = Θ(X_q, X̃) α."""
    gram = queries @ xs.T
    kernel = ntk_from_gram(gram, jnp.sum(queries * queries, axis=1), jnp.sum(xs * xs, axis=1), xs.shape[1], config)
    return kernel @ alpha


def multinomial_nll(targets: jax.Array, scores: jax.Array) -> jax.Array:
    """Σ_u −Σ_i X_ui log softmax(R_u)_i (a sum over the rows; zero rows add nothing)."""
    return -jnp.sum(targets * jax.nn.log_softmax(scores, axis=-1))


def blocked_reconstruction_nll(target_blocks: jax.Array, xs: jax.Array, alpha: jax.Array,
                               config: NTKConfig) -> jax.Array:
    """Σ over blocks (n_blocks, block, d) of the multinomial NLL; each block is re-materialised in backward."""
    @jax.checkpoint
    def block_nll(block: jax.Array) -> jax.Array:
        return multinomial_nll(block, krr_predict(block, xs, alpha, config))

    def add(total, block):
        return total + block_nll(block), None
    return jax.lax.scan(add, jnp.zeros((), xs.dtype), target_blocks)[0]


class LossParts(NamedTuple):
    nll: jax.Array
    cardinality: jax.Array


def distillation_loss(logits: jax.Array, key: jax.Array, target_blocks: jax.Array, n_targets: jax.Array,
                      lam: jax.Array, mean_train_length: float, tau: float, n_samples: int, cardinality: float,
                      config: NTKConfig = NTKConfig()) -> tuple[jax.Array, LossParts]:
    """L = NLL / U_batch + c · mean_rows(Σ_i X̃) / (mean train row length)."""
    xs = relaxed_multi_hot(logits, key, tau, n_samples)
    alpha = krr_weights(xs, lam, config)
    nll = blocked_reconstruction_nll(target_blocks, xs, alpha, config) / n_targets
    card = jnp.mean(jnp.sum(xs, axis=1)) / mean_train_length
    return nll + cardinality * card, LossParts(nll, card)


# --- training -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DistillRun:
    """What one distillation did: the best validation point, its λ, the trace, the step times."""

    config: DistillCFConfig
    best_step: int
    best_hr100: float
    best_lambda: float
    steps_run: int
    skipped_steps: int
    compile_seconds: float
    step_seconds: list[float]  # wall time of each step after the first, results ready
    trace: list[dict[str, float]]  # one row per validation: step, loss, nll, cardinality, λ, hr@100, density
    matrix: np.ndarray = dataclasses.field(repr=False)

    @property
    def seconds_per_step(self) -> float:
        return float(np.median(self.step_seconds)) if self.step_seconds else float("nan")


@functools.lru_cache(maxsize=16)
def _make_step(lr: float, mean_train_length: float, tau: float, n_samples: int, cardinality: float,
               ntk_config: NTKConfig):
    """The jitted Adam step (cached, so repeated runs with the same settings compile once)."""
    optimizer = optax.adam(lr)
    loss = functools.partial(distillation_loss, mean_train_length=mean_train_length, tau=tau, n_samples=n_samples,
                             cardinality=cardinality, config=ntk_config)

    @jax.jit
    def step(logits, opt_state, key, target_blocks, n_targets, lam):
        (value, parts), grad = jax.value_and_grad(loss, has_aux=True)(logits, key, target_blocks, n_targets, lam)
        finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
        updates, new_state = optimizer.update(jnp.where(finite, grad, 0.0), opt_state, logits)
        new_logits = jnp.where(finite, optax.apply_updates(logits, updates), logits)
        new_state = jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new_state, opt_state)
        return new_logits, new_state, value, parts, finite
    return optimizer, step


def _target_blocks(rows: sp.csr_matrix, block: int) -> tuple[jax.Array, jax.Array]:
    """Dense targets padded with zero rows to (n_blocks, block, d), and the real row count."""
    n, d = rows.shape
    block = min(block, n)
    n_blocks = -(-n // block)
    dense = np.zeros((n_blocks * block, d), dtype=np.float32)
    dense[:n] = rows.toarray()
    return jnp.asarray(dense.reshape(n_blocks, block, d)), jnp.asarray(float(n), jnp.float32)


def _validate(xs: np.ndarray, split: Split, grid: tuple[float, ...]) -> tuple[float, float]:
    """(best λ, validation HR@100) of ∞-AE with support X̃ over ``grid``."""
    chosen = select_lambda(InfiniteAE(), xs, split, grid)
    return chosen.lam, chosen.scores[chosen.lam]


def distill(data: SelectionData, budget: int, cfg: DistillCFConfig, init_users: np.ndarray, seed: int,
            ntk_config: NTKConfig = NTKConfig()) -> DistillRun:
    """One Distill-CF run (a single τ, c) from the train rows of ``init_users``."""
    train = data.train
    n_users = train.shape[0]
    val_split = data.validation_split()
    batch = n_users if cfg.batch_users == 0 else min(cfg.batch_users, n_users)
    mean_train_length = train.nnz / n_users
    grid = cfg.lambda_grid

    logits = jnp.asarray(train[init_users].toarray(), jnp.float32)
    optimizer, step_fn = _make_step(cfg.lr, mean_train_length, cfg.tau, cfg.samples_per_user, cfg.cardinality,
                                    ntk_config)
    opt_state = optimizer.init(logits)
    train_key, val_key = jax.random.split(jax.random.key(seed))
    batch_rng = np.random.default_rng(seed)
    full_targets = _target_blocks(train, cfg.block_users) if batch == n_users else None

    lam, hr0 = _validate(np.asarray(logits), val_split, grid)  # λ of the initial (real-user) support
    log.info("distill-cf b=%d τ=%g c=%g: initial users val HR@100 %.2f (λ=%g)", budget, cfg.tau,
             cfg.cardinality, hr0, lam)
    best = (-np.inf, 0, lam, None)  # hr@100, step, λ, matrix
    trace: list[dict[str, float]] = [{"step": 0, "hr@100": hr0, "lambda": lam}]
    step_seconds: list[float] = []
    compile_seconds = 0.0
    skipped = 0
    steps_run = 0
    bar = tqdm(range(1, cfg.steps + 1), desc=f"distill-cf b={budget}", disable=None, leave=False)
    for i in bar:
        if full_targets is not None:
            targets = full_targets
        else:  # a fresh random batch of real users, without replacement
            targets = _target_blocks(train[np.sort(batch_rng.choice(n_users, size=batch, replace=False))],
                                     cfg.block_users)
        start = time.perf_counter()
        logits, opt_state, value, parts, finite = step_fn(logits, opt_state, jax.random.fold_in(train_key, i),
                                                          *targets, jnp.asarray(lam, jnp.float32))
        value.block_until_ready()
        elapsed = time.perf_counter() - start
        if i == 1:
            compile_seconds = elapsed  # the first call compiles; the others are timed
        else:
            step_seconds.append(elapsed)
        steps_run = i
        if not bool(finite):
            skipped += 1
            log.warning("distill-cf step %d: non-finite gradient, step skipped", i)
        bar.set_postfix(loss=f"{float(value):.4g}")
        if i % cfg.eval_every == 0 or i == cfg.steps:
            xs = np.asarray(relaxed_multi_hot(logits, jax.random.fold_in(val_key, i), cfg.tau, cfg.samples_per_user))
            lam, hr = _validate(xs, val_split, grid)
            trace.append({"step": i, "loss": float(value), "nll": float(parts.nll),
                          "cardinality": float(parts.cardinality), "lambda": lam, "hr@100": hr,
                          "mean_row_sum": float(xs.sum(axis=1).mean())})
            log.info("distill-cf b=%d step %d: loss %.4f, val HR@100 %.2f (λ=%g), mean row sum %.1f", budget, i,
                     float(value), hr, lam, trace[-1]["mean_row_sum"])
            if hr > best[0]:
                best = (hr, i, lam, xs)
            elif i - best[1] >= cfg.patience:
                log.info("distill-cf b=%d: no improvement for %d steps, stopping at step %d", budget, cfg.patience, i)
                break
    bar.close()
    return DistillRun(cfg, best[1], float(best[0]), float(best[2]), steps_run, skipped, compile_seconds,
                      step_seconds, trace, best[3])


class DistillCF(Sampler):
    name = "distill-cf"
    description = "Distill-CF: synthetic users learned by meta-gradients through ∞-AE (multi-Gumbel, Adam)."
    Config = DistillCFConfig

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> SyntheticUsers:
        if budget < 1:
            raise ValueError(f"distill-cf needs a budget ≥ 1, got {budget}")
        b = min(budget, data.n_users)
        init_users = np.sort(rng.choice(data.n_users, size=b, replace=False))
        seed = int(rng.integers(2**31 - 1))
        runs = [distill(data, b, cfg, init_users, seed) for cfg in self.config.grid_points()]
        best = max(runs, key=lambda r: r.best_hr100)
        if len(runs) > 1:
            log.info("distill-cf grid: best τ=%g c=%g (val HR@100 %.2f)", best.config.tau, best.config.cardinality,
                     best.best_hr100)
        self.runs_ = runs
        return SyntheticUsers(best.matrix.astype(np.float32))
