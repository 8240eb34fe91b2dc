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

4. **Choosing τ (and c).** The best τ depends on the dataset and on the budget's share of the
   users (see :class:`DistillCFConfig`), so each candidate is trained from the same start and the
   best on validation is kept (optionally only the leader after ``race_steps`` trains on).

The result is the best relaxed sample, :class:`~cfbench.subsets.SyntheticUsers` in [0, 1]. It is
always a synthetic sample, even where it scores below the initial real users on validation (the
trace records their score as step 0): the suite measures distillation, not a fallback to sampling.

Deviations from the reference code: Gumbel noise comes from a counter-based hash (murmur3's
finaliser) seeded per sample from a JAX key, not from threefry, which costs ~4× more here and
dominates the step; the diagonal of Θ(X̃, X̃) is taken from :func:`cfbench.ntk.ntk_diagonal`
(arccos has an infinite derivative at cos θ = 1); a step whose loss or gradient is not finite is
skipped (Z and Adam's state unchanged, as optax's ``apply_if_finite``), within a bounded tolerance.

**Numerical failures are errors, never silent.** A run raises :class:`DistillationDiverged` (a
:class:`~cfbench.models.base.NumericalError`) naming the sampler, the candidate, the step and what
to try, when :data:`MAX_CONSECUTIVE_NONFINITE` steps in a row are non-finite, or when more than
``max(MAX_CONSECUTIVE_NONFINITE, MAX_NONFINITE_FRACTION · steps)`` steps are skipped in all; when a
validation sample is not finite or no λ of the grid fits it; and when the final synthetic matrix
is not finite, leaves [0, 1] or has an all-zero row. Skipped steps are counted in the
diagnostics (``skipped_steps`` of the winner and of every candidate, ``skipped_steps_total``),
also after a failure.
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
import numpy as np
import optax
import scipy.sparse as sp
from tqdm.auto import tqdm

from cfbench.devices import precise_jit
from cfbench.evaluation import best_lambda
from cfbench.memory import Footprint, UnitShape, distill_cf_footprint
from cfbench.models.base import NumericalError, as_dense
from cfbench.models.infinite_ae import InfiniteAE
from cfbench.ntk import NTKConfig, ntk_diagonal, ntk_from_gram
from cfbench.numerics import fmix32, ridge_solve
from cfbench.progress import unit_progress
from cfbench.sampling import Sampler, SelectionData, added_later
from cfbench.splits import Split
from cfbench.subsets import SyntheticUsers

__all__ = ["DistillCF", "DistillCFConfig", "DistillRun", "Distillation", "DistillationDiverged", "check_synthetic",
           "distillation_loss", "finite_adam_step", "krr_predict", "multi_gumbel_sum", "multinomial_nll",
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


LARGE_TARGETS_GB = 1.0  # full-batch dense targets above this size get a warning suggesting batch_users
REFERENCE_TAUS = "0.3/0.5/0.7/5"  # the reference's grid (noveens/distill_cf)
REFERENCE_CARDINALITIES = "0.001/10"

#: Non-finite steps tolerated in a row before a run fails. A skipped step leaves Z unchanged and the
#: next step draws new Gumbel noise (and users), so a transient overflow passes; a diverged Z does not.
MAX_CONSECUTIVE_NONFINITE = 5
#: Share of the step budget that may be skipped in all (at least MAX_CONSECUTIVE_NONFINITE steps).
MAX_NONFINITE_FRACTION = 0.1


class DistillationDiverged(NumericalError):
    """Distill-CF's optimisation or its output stopped being finite (see the module docstring)."""

    def __init__(self, message: str, step: int = 0, skipped: int = 0) -> None:
        super().__init__(message)
        self.step, self.skipped = step, skipped
        self.candidates: list[dict] = []  # every candidate's summary, filled in by :func:`distill`


@dataclasses.dataclass(frozen=True)
class DistillCFConfig:
    """Hyper-parameters of Distill-CF. Lists are '/'-separated (commas separate CLI specs).

    ``tau`` and ``cardinality`` list candidates: every (τ, c) pair is trained from the same
    initial users and noise, and the sample with the best validation HR@100 is kept. With
    ``race_steps > 0`` only the leader after that many steps trains on — cheaper, but early
    validation can mislead: on ML-100K at 50 users τ = 1 led τ = 5 after 50 steps (63.8 vs 59.8)
    although τ = 5 ends higher (65.7; test NDCG@10 32.9 vs 29.4), so the default is 0.

    No single τ is best everywhere (∞-AE validation HR@100 of the best sample, seed 0). ML-1M,
    50 users: τ = 0.3 → 38.5, 0.5 → 42.5, 0.7 → 44.6, 1 → 47.2, 5 → 52.6, 10 → 52.3. τ = 5 gives
    dense soft rows (each sums to S: the cap never binds, so c has no effect) and wins on every
    ML-1M budget 10–500 and ML-100K budget but one: at 200 of 943 ML-100K users τ = 1 wins on all
    three seeds (seed 0: 67.4 vs 64.8; test NDCG@10 34.15, where τ = 5 alone gave 32.37).
    Hence the default candidates {1, 5}. c keeps the reference's 10⁻³ (c = 10 gave the same
    validation trace at τ = 5 and 39.8 vs 39.6 at τ = 0.5). Budgets 20 / 50 / 500 on ML-1M peaked
    at steps 200 / 225 / 75, hence patience 100; the step cap is the reference's 500.

    ``lambdas`` is the grid of :class:`~cfbench.models.infinite_ae.InfiniteAE` (0, 1, 5, 20, 50, 100)
    with 0 → 10⁻⁵ (the loss differentiates through the solve), not the reference's
    10⁻⁵/10⁻³/0.1/1/5/50: the sample kept must be the best for a λ that the ∞-AE trained on it
    can choose. With the reference grid, ML-100K at 500 users kept a τ = 5 sample scoring 68.3
    at λ = 0.1 that scored 63.8 at the ∞-AE's best λ (1).

    ``validation_users`` = N > 0 scores every sample (and the initial users) on a random N of the users with
    validation items, drawn once per distillation: each validation costs about N / (users with validation
    items) of the full one — on Gowalla (≈ 29k such users, 41k items) ≈ 45 s a λ search — at the price of
    a noisier choice (keep N in the thousands; thin validation makes the choice noise, see
    ``distill-cf-robust``). 0, the default, uses them all; at 0 the parameter is not part of a row's identity.
    """

    steps: int = 500  # at most this many Adam steps (the reference's default)
    samples_per_user: int = 200  # S, Gumbel samples summed per synthetic user (the reference's default)
    tau: str = "1/5"  # Gumbel-softmax temperature τ; several candidates are raced on validation
    cardinality: str = "0.001"  # c, weight of the cardinality penalty; several candidates are raced
    race_steps: int = 0  # > 0: drop all but the validation leader after this many steps; 0: train all fully
    lr: float = 0.04  # Adam learning rate (the reference's)
    patience: int = 100  # stop after this many steps without a better validation HR@100
    eval_every: int = 25  # validate (and re-choose λ) every this many steps
    batch_users: int = 0  # real users per step as queries/targets; 0 = all users (the reference's full batch)
    block_users: int = 2048  # query rows per kernel block (bounds memory, not the result)
    lambdas: str = "1e-5/1/5/20/50/100"  # ∞-AE ridge grid searched on validation: the model's grid (see above)
    grid: bool = False  # candidates = the reference's grid, τ ∈ {0.3, 0.5, 0.7, 5} × c ∈ {10⁻³, 10}
    #: users whose validation items score the samples: 0 = all; N = a random N of them, fixed per distillation
    validation_users: int = added_later(0)

    def __post_init__(self) -> None:
        for name in ("tau", "cardinality", "lambdas"):  # a bare number from Python code is one candidate
            if isinstance(getattr(self, name), (int, float)) and not isinstance(getattr(self, name), bool):
                object.__setattr__(self, name, f"{getattr(self, name):g}")
        if not 1 <= self.steps <= 1000:
            raise ValueError(f"steps must be in [1, 1000], got {self.steps}")
        if self.samples_per_user < 1:
            raise ValueError(f"samples_per_user must be ≥ 1, got {self.samples_per_user}")
        if any(t <= 0 for t in _floats(self.tau, "tau")):
            raise ValueError(f"tau must be > 0, got {self.tau!r}")
        if any(c < 0 for c in _floats(self.cardinality, "cardinality")):
            raise ValueError(f"cardinality must be ≥ 0, got {self.cardinality!r}")
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        if self.grid and (self.tau, self.cardinality) != (defaults["tau"], defaults["cardinality"]):
            raise ValueError("grid=true searches the reference's τ × c grid; set tau/cardinality or grid, not both")
        if self.race_steps < 0:
            raise ValueError(f"race_steps must be ≥ 0 (0 = train every candidate fully), got {self.race_steps}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.patience < 1 or self.eval_every < 1:
            raise ValueError(f"patience and eval_every must be ≥ 1, got {self.patience} and {self.eval_every}")
        if self.validation_users < 0:
            raise ValueError(f"validation_users must be ≥ 0 (0 = every user with validation items), "
                             f"got {self.validation_users}")
        if self.batch_users < 0 or self.block_users < 1:
            raise ValueError(f"batch_users must be ≥ 0 (0 = all) and block_users ≥ 1, "
                             f"got {self.batch_users} and {self.block_users}")
        if any(lam <= 0 for lam in self.lambda_grid):
            raise ValueError(f"lambdas must be > 0 (the loss differentiates through the solve), got {self.lambdas!r}")

    @property
    def lambda_grid(self) -> tuple[float, ...]:
        return _floats(self.lambdas, "lambdas")

    def candidates(self) -> list[tuple[float, float]]:
        """The (τ, c) pairs to race: ``tau`` × ``cardinality``, or the reference's grid if ``grid``."""
        taus, cards = (REFERENCE_TAUS, REFERENCE_CARDINALITIES) if self.grid else (self.tau, self.cardinality)
        return list(itertools.product(_floats(taus, "tau"), _floats(cards, "cardinality")))


# --- multi-Gumbel sampling ------------------------------------------------------------------------------


def gumbel_noise(seeds: jax.Array, shape: tuple[int, int], dtype: jnp.dtype) -> jax.Array:
    """Gumbel(0, 1) noise g = −log(−log u), u from a hash of (entry index, two uint32 seeds).

    Entries of one call get distinct hash inputs (the index is a bijection of the position),
    so no noise value repeats within a sample.
    """
    rows = jax.lax.broadcasted_iota(jnp.uint32, shape, 0)
    cols = jax.lax.broadcasted_iota(jnp.uint32, shape, 1)
    h = fmix32(fmix32((rows * jnp.uint32(shape[1]) + cols) ^ seeds[0]) ^ seeds[1])
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


def relaxed_multi_hot(logits: jax.Array, key: jax.Array, tau: float, n_samples: int,
                      draws: int | None = None) -> jax.Array:
    """X̃ = min(Σ_{s<S} P_s, 1): relaxed multi-hot synthetic rows in [0, 1] (the reference's hard-tanh).

    ``draws`` = S′ < S estimates the sum from fewer Gumbel draws, X̃ = min((S/S′) Σ_{s<S′} P_s, 1):
    the same expectation before the cap, S/S′ times the variance, S/S′ times cheaper. ``None`` (or S)
    is the faithful estimator, computed exactly as before."""
    if draws is None or draws == n_samples:
        return jnp.minimum(multi_gumbel_sum(logits, key, tau, n_samples), 1.0)
    return jnp.minimum((n_samples / draws) * multi_gumbel_sum(logits, key, tau, draws), 1.0)


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
    return ridge_solve(kernel, xs, lam * jnp.trace(kernel) / kernel.shape[0])


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
                      config: NTKConfig = NTKConfig(), draws: int | None = None) -> tuple[jax.Array, LossParts]:
    """L = NLL / U_batch + c · mean_rows(Σ_i X̃) / (mean train row length); X̃ from ``draws`` Gumbel draws
    (default S = ``n_samples``, see :func:`relaxed_multi_hot`)."""
    xs = relaxed_multi_hot(logits, key, tau, n_samples, draws)
    alpha = krr_weights(xs, lam, config)
    nll = blocked_reconstruction_nll(target_blocks, xs, alpha, config) / n_targets
    card = jnp.mean(jnp.sum(xs, axis=1)) / mean_train_length
    return nll + cardinality * card, LossParts(nll, card)


# --- training -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DistillRun:
    """What one (τ, c) distillation did: the best validation point, its λ, the trace, the step times."""

    tau: float
    cardinality: float
    best_step: int
    best_hr100: float
    best_lambda: float
    steps_run: int
    skipped_steps: int
    stopped_early: bool
    compile_seconds: float
    step_seconds: list[float]  # wall time of each step after the first, results ready
    trace: list[dict[str, float]]  # one row per validation: step, loss, nll, cardinality, λ, score, row sum
    matrix: np.ndarray = dataclasses.field(repr=False)
    score_name: str = "hr@100"  # the validation metric ``best_hr100`` and the trace's score hold

    @property
    def seconds_per_step(self) -> float:
        return float(np.median(self.step_seconds)) if self.step_seconds else float("nan")

    def summary(self) -> dict[str, float | int | bool]:
        """The run without its matrix and trace (JSON-serialisable)."""
        return {"tau": self.tau, "cardinality": self.cardinality, "best_step": self.best_step,
                f"val_{self.score_name}": self.best_hr100, "lambda": self.best_lambda, "steps_run": self.steps_run,
                "skipped_steps": self.skipped_steps, "stopped_early": self.stopped_early,
                "compile_s": self.compile_seconds, "step_s": self.seconds_per_step}


def finite_adam_step(lr: float, loss):
    """(optimizer, jitted Adam step on ``loss(logits, key, target_blocks, n_targets, lam) -> (value, parts)``);
    a step whose loss or gradient is not finite leaves Z and Adam's state unchanged (reported as ``finite``)."""
    optimizer = optax.adam(lr)

    @precise_jit
    def step(logits, opt_state, key, target_blocks, n_targets, lam):
        (value, parts), grad = jax.value_and_grad(loss, has_aux=True)(logits, key, target_blocks, n_targets, lam)
        finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
        updates, new_state = optimizer.update(jnp.where(finite, grad, 0.0), opt_state, logits)
        new_logits = jnp.where(finite, optax.apply_updates(logits, updates), logits)
        new_state = jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new_state, opt_state)
        return new_logits, new_state, value, parts, finite
    return optimizer, step


@functools.lru_cache(maxsize=16)
def _make_step(lr: float, mean_train_length: float, tau: float, n_samples: int, cardinality: float,
               ntk_config: NTKConfig, draws: int | None = None):
    """The jitted Adam step (cached, so repeated runs with the same settings compile once)."""
    loss = functools.partial(distillation_loss, mean_train_length=mean_train_length, tau=tau, n_samples=n_samples,
                             cardinality=cardinality, config=ntk_config, draws=draws)
    return finite_adam_step(lr, loss)


def _target_blocks(rows: sp.csr_matrix, block: int) -> tuple[jax.Array, jax.Array]:
    """Dense targets padded with zero rows to (n_blocks, block, d), and the real row count.

    Densified on the device (:func:`~cfbench.models.base.as_dense`, equal to ``toarray`` bit for bit): with
    mini-batches this runs every step, and on many items the host ``toarray`` plus its copy into a device
    buffer cost more than the scatter (1,024 Gowalla users: 170 vs 72 ms idle, 2-core CPU)."""
    rows = sp.csr_matrix(rows, dtype=np.float32)
    n, d = rows.shape
    block = min(block, n)
    n_blocks = -(-n // block)
    indptr = np.concatenate([rows.indptr, np.full(n_blocks * block - n, rows.indptr[-1], rows.indptr.dtype)])
    padded = sp.csr_matrix((rows.data, rows.indices, indptr), shape=(n_blocks * block, d))
    return as_dense(padded, jnp.float32).reshape(n_blocks, block, d), jnp.asarray(float(n), jnp.float32)


def _validate(xs: np.ndarray, split: Split, grid: tuple[float, ...]) -> tuple[float, float]:
    """(best λ, validation HR@100) of ∞-AE with support X̃ over ``grid``."""
    return best_lambda(InfiniteAE(), xs, split, grid)


class Distillation:
    """One Distill-CF optimisation at a fixed (τ, c), advanced in chunks by :meth:`run`.

    All candidates of a race start from the same users and draw the same Gumbel noise and user
    batches (common random numbers), so they differ only in (τ, c).

    The inner model is ∞-AE; another inner model subclasses this and overrides :attr:`name`,
    :meth:`make_step` (the jitted Adam step on its loss) and :meth:`validate` (its λ search); another
    estimator of X̃ overrides :meth:`make_step` and :meth:`sample`.
    """

    name = "distill-cf"  # in log lines and error messages

    def make_step(self, mean_train_length: float, tau: float, cardinality: float, ntk_config: NTKConfig):
        """(optimizer, jitted step) for the loss through ∞-AE (:func:`distillation_loss`)."""
        cfg = self.cfg
        return _make_step(cfg.lr, mean_train_length, tau, cfg.samples_per_user, cardinality, ntk_config)

    @staticmethod
    def validate(xs: np.ndarray, split: Split, grid: tuple[float, ...]) -> tuple[float, float]:
        """(best λ, validation HR@100) of the inner model with support ``xs`` over ``grid``."""
        return _validate(xs, split, grid)

    @classmethod
    def score_name(cls, cfg: DistillCFConfig) -> str:
        """The validation metric that :meth:`score_sample` returns (trace key, diagnostics ``val_<name>``)."""
        return "hr@100"

    @classmethod
    def score_sample(cls, cfg: DistillCFConfig, xs: np.ndarray, split: Split) -> tuple[float, float]:
        """(best λ, validation score) by which samples, steps and candidates are compared: :meth:`validate`
        over ``cfg``'s λ grid. A subclass may compare them by another signal (and set :attr:`score_name`)."""
        return cls.validate(xs, split, cfg.lambda_grid)

    def sample(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        """One relaxed synthetic matrix X̃ from ``logits`` (validation draws it; the step draws its own)."""
        return relaxed_multi_hot(logits, key, self.tau, self.cfg.samples_per_user)

    def __init__(self, data: SelectionData, cfg: DistillCFConfig, tau: float, cardinality: float,
                 init_users: np.ndarray, seed: int, initial: tuple[float, float] | None = None,
                 full_targets: tuple[jax.Array, jax.Array] | None = None, ntk_config: NTKConfig = NTKConfig()) -> None:
        self.cfg, self.tau, self.cardinality = cfg, tau, cardinality
        self.train = data.train
        self.n_users = self.train.shape[0]
        self.budget = len(init_users)
        self.val_split = data.validation_split(cfg.validation_users, seed)
        self.batch = self.n_users if cfg.batch_users == 0 else min(cfg.batch_users, self.n_users)
        self.optimizer, self.step_fn = self.make_step(self.train.nnz / self.n_users, tau, cardinality, ntk_config)
        init = self.train[init_users].toarray().astype(np.float32)
        self.logits = jnp.asarray(init)
        self.opt_state = self.optimizer.init(self.logits)
        self.train_key, self.val_key = jax.random.split(jax.random.key(seed))
        self.batch_rng = np.random.default_rng(seed)
        self.full_targets = None
        if self.batch == self.n_users:  # all users every step: one dense copy, shared by the candidates of a race
            self.full_targets = full_targets or _target_blocks(self.train, cfg.block_users)
        self.lam, hr0 = initial if initial is not None else self.score_sample(cfg, init, self.val_split)
        self.best = (-np.inf, 0, self.lam, init)  # hr@100, step, λ, matrix (the trace keeps the initial users' score)
        self.trace: list[dict[str, float]] = [{"step": 0, self.score_name(cfg): hr0, "lambda": self.lam}]
        self.step = 0
        self.skipped = 0
        self.consecutive = 0  # non-finite steps in a row
        self.compile_seconds = 0.0
        self.step_seconds: list[float] = []
        self.stopped_early = False

    @property
    def finished(self) -> bool:
        return self.stopped_early or self.step >= self.cfg.steps

    @property
    def best_hr100(self) -> float:
        return self.best[0]

    def _targets(self) -> tuple[jax.Array, jax.Array]:
        if self.full_targets is not None:
            return self.full_targets
        rows = np.sort(self.batch_rng.choice(self.n_users, size=self.batch, replace=False))  # without replacement
        return _target_blocks(self.train[rows], self.cfg.block_users)

    def run(self, until: int, bar: tqdm | None = None) -> None:
        """Take steps up to step ``until`` (or ``cfg.steps``), stopping early after ``patience`` without progress."""
        cfg = self.cfg
        while not self.finished and self.step < until:
            i = self.step = self.step + 1
            start = time.perf_counter()
            self.logits, self.opt_state, value, parts, finite = self.step_fn(
                self.logits, self.opt_state, jax.random.fold_in(self.train_key, i), *self._targets(),
                jnp.asarray(self.lam, jnp.float32))
            value.block_until_ready()
            elapsed = time.perf_counter() - start
            if i == 1:
                self.compile_seconds = elapsed  # the first call compiles (unless cached); later calls are timed
            else:
                self.step_seconds.append(elapsed)
            if bool(finite):
                self.consecutive = 0
            else:
                self.skipped += 1
                self.consecutive += 1
                log.warning("%s b=%d τ=%g c=%g step %d: non-finite loss or gradient, step skipped "
                            "(%d in a row, %d in all)", self.name, self.budget, self.tau, self.cardinality, i,
                            self.consecutive, self.skipped)
                self._check_skipped(i)
            if bar is not None:
                bar.update()
                bar.set_postfix(tau=f"{self.tau:g}", loss=f"{float(value):.4g}", best_val=f"{self.best[0]:.2f}")
            if i % cfg.eval_every == 0 or i == cfg.steps:
                self._evaluate(i, value, parts)

    def _where(self) -> str:
        return f"{self.name} (b={self.budget}, τ={self.tau:g}, c={self.cardinality:g})"

    def _advice(self) -> str:
        cfg = self.cfg
        return (f"try a lower lr (now {cfg.lr:g}), larger lambdas (now {cfg.lambdas}; λ={self.lam:g} at this point) "
                f"or a larger tau (now {self.tau:g})")

    def _check_skipped(self, i: int) -> None:
        """Raise :class:`DistillationDiverged` once the non-finite steps exceed their bounded tolerance."""
        allowed = max(MAX_CONSECUTIVE_NONFINITE, int(np.ceil(MAX_NONFINITE_FRACTION * self.cfg.steps)))
        if self.consecutive >= MAX_CONSECUTIVE_NONFINITE:
            what = (f"{self.consecutive} consecutive optimisation steps (steps {i - self.consecutive + 1}–{i}) "
                    f"had a non-finite loss or gradient")
        elif self.skipped > allowed:
            what = f"{self.skipped} of {i} optimisation steps had a non-finite loss or gradient (at most {allowed})"
        else:
            return
        raise DistillationDiverged(f"{self._where()} diverged at step {i}: {what}; {self._advice()}", i, self.skipped)

    def _evaluate(self, i: int, value: jax.Array, parts: LossParts) -> None:
        cfg = self.cfg
        xs = np.asarray(self.sample(self.logits, jax.random.fold_in(self.val_key, i)))
        if not np.all(np.isfinite(xs)):
            raise DistillationDiverged(f"{self._where()}: the synthetic sample at step {i} is not finite; "
                                       f"{self._advice()}", i, self.skipped)
        try:
            self.lam, hr = self.score_sample(cfg, xs, self.val_split)
        except NumericalError as err:
            raise DistillationDiverged(f"{self._where()}: no λ of {cfg.lambdas} fits the synthetic sample at step {i} "
                                       f"({err}); {self._advice()}", i, self.skipped) from err
        self.trace.append({"step": i, "loss": float(value), "nll": float(parts.nll),
                           "cardinality": float(parts.cardinality), "lambda": self.lam, self.score_name(cfg): hr,
                           "mean_row_sum": float(xs.sum(axis=1).mean())})
        log.info("%s b=%d τ=%g c=%g step %d: loss %.4f, val %s %.2f (λ=%g), mean row sum %.1f", self.name,
                 self.budget, self.tau, self.cardinality, i, float(value), self.score_name(cfg), hr, self.lam,
                 self.trace[-1]["mean_row_sum"])
        if hr > self.best[0]:
            self.best = (hr, i, self.lam, xs)
        elif i - self.best[1] >= cfg.patience:
            log.info("%s b=%d τ=%g: no improvement for %d steps, stopping at step %d", self.name, self.budget,
                     self.tau, cfg.patience, i)
            self.stopped_early = True

    def result(self) -> DistillRun:
        hr, step, lam, matrix = self.best
        return DistillRun(self.tau, self.cardinality, step, float(hr), float(lam), self.step, self.skipped,
                          self.stopped_early, self.compile_seconds, self.step_seconds, self.trace, matrix,
                          self.score_name(self.cfg))


def distill(data: SelectionData, budget: int, cfg: DistillCFConfig, init_users: np.ndarray,
            seed: int, run_class: type[Distillation] = Distillation) -> tuple[DistillRun, list[DistillRun]]:
    """Train cfg's (τ, c) candidates (all fully, or a race of ``race_steps``); return (best on validation, all).

    ``run_class`` is the optimisation of one candidate (:class:`Distillation`: ∞-AE as the inner model)."""
    name = run_class.name
    candidates = cfg.candidates()
    val_split = data.validation_split(cfg.validation_users, seed)
    initial = run_class.score_sample(cfg, data.train[init_users].toarray().astype(np.float32), val_split)
    log.info("%s b=%d: initial users val %s %.2f (λ=%g)", name, budget, run_class.score_name(cfg), initial[1],
             initial[0])
    full_batch = cfg.batch_users == 0 or cfg.batch_users >= data.n_users
    dense_gb = data.n_users * data.n_items * 4 / 1e9
    if full_batch and dense_gb > LARGE_TARGETS_GB:
        log.warning("%s: all %d users × %d items as dense float32 targets take %.1f GB and every step "
                    "scores them all; pass batch_users (e.g. %s:batch_users=2048) to mini-batch",
                    name, data.n_users, data.n_items, dense_gb, name)
    full = _target_blocks(data.train, cfg.block_users) if full_batch else None
    runs = [run_class(data, cfg, tau, c, init_users, seed, initial, full) for tau, c in candidates]
    race = cfg.race_steps if len(runs) > 1 and cfg.race_steps > 0 else cfg.steps
    total = race * (len(runs) - 1) + cfg.steps if len(runs) > 1 and cfg.race_steps > 0 else cfg.steps * len(runs)
    with unit_progress(total, f"{name} b={budget}", unit="step") as bar:
        try:
            for run in runs:
                run.run(race, bar)
            winner = max(runs, key=lambda r: r.best_hr100)  # ties: the first candidate
            if len(runs) > 1:
                log.info("%s b=%d: τ=%g c=%g is best after %d steps (val %s %.2f)%s", name, budget, winner.tau,
                         winner.cardinality, winner.step, run_class.score_name(cfg), winner.best_hr100,
                         "; training it on" if not winner.finished else "")
            winner.run(cfg.steps, bar)
        except DistillationDiverged as err:
            err.candidates = [r.result().summary() for r in runs]
            raise
    return winner.result(), [r.result() for r in runs]


def check_synthetic(matrix: np.ndarray, where: str = "distill-cf") -> None:
    """Raise :class:`DistillationDiverged` unless ``matrix`` is finite, in [0, 1] and has no all-zero row."""
    if not np.all(np.isfinite(matrix)):
        raise DistillationDiverged(f"{where}: the final synthetic matrix has {int(np.sum(~np.isfinite(matrix)))} "
                                   f"non-finite values")
    if matrix.size == 0 or matrix.min() < 0.0 or matrix.max() > 1.0:
        raise DistillationDiverged(f"{where}: the final synthetic matrix of shape {matrix.shape} is empty or leaves "
                                   f"[0, 1]")
    empty = int(np.sum(~np.any(matrix > 0, axis=1)))
    if empty:
        raise DistillationDiverged(f"{where}: {empty} of {matrix.shape[0]} final synthetic users are all zero")


class DistillCF(Sampler):
    name = "distill-cf"
    description = "Distill-CF: synthetic users learned by meta-gradients through ∞-AE (multi-Gumbel, Adam)."
    Config = DistillCFConfig
    version = "2"  # 2: τ candidates raced on validation; the initial users are a validation candidate
    #: One candidate's optimisation; its inner model (here ∞-AE) is what a subclass changes.
    Run: type[Distillation] = Distillation

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """Every candidate's state, the dense targets, one step and a validation λ search
        (:func:`cfbench.memory.distill_cf_footprint`)."""
        cfg = self.config
        return distill_cf_footprint(shape.n_users, shape.n_items, shape.nnz, shape.budget,
                                    candidates=len(cfg.candidates()), batch_users=cfg.batch_users,
                                    block_users=cfg.block_users, grid_size=len(cfg.lambda_grid),
                                    eval_positives=shape.positives, eval_chunks=shape.eval_chunks)

    def select(self, data: SelectionData, budget: int, rng: np.random.Generator) -> SyntheticUsers:
        if budget < 1:
            raise ValueError(f"{self.name} needs a budget ≥ 1, got {budget}")
        for attr in ("result_", "runs_", "failure_", "val_users_"):  # nothing from an earlier call leaks
            self.__dict__.pop(attr, None)
        b = min(budget, data.n_users)
        init_users = np.sort(rng.choice(data.n_users, size=b, replace=False))
        seed = int(rng.integers(2**31 - 1))
        if self.config.validation_users:  # the choices rest on this subset, not on every validation user
            view = data.validation_split(self.config.validation_users, seed)
            self.val_users_ = int(np.sum(np.diff(view.val.indptr) > 0))
        try:
            self.result_, self.runs_ = distill(data, b, self.config, init_users, seed, self.Run)
        except DistillationDiverged as err:
            self.failure_ = {"error": str(err), "failed_step": err.step, "skipped_steps": err.skipped,
                             "skipped_steps_total": sum(c["skipped_steps"] for c in err.candidates),
                             "candidates": err.candidates}
            raise
        matrix = np.asarray(self.result_.matrix, dtype=np.float32)
        try:
            check_synthetic(matrix, f"{self.name} (b={b}, τ={self.result_.tau:g}, c={self.result_.cardinality:g})")
        except DistillationDiverged as err:
            self.failure_ = {**self.diagnostics(), "error": str(err)}
            raise
        return SyntheticUsers(matrix)

    def diagnostics(self) -> dict:
        """The winning (τ, c), its best step, λ and validation HR@100, its trace, skipped (non-finite) steps,
        every candidate's summary and, with ``validation_users``, how many users the validation scores rest on
        (``val_users``); after a :class:`DistillationDiverged`, the error and skipped steps."""
        if hasattr(self, "failure_"):
            return dict(self.failure_)
        if not hasattr(self, "result_"):
            return {}
        subset = {"val_users": self.val_users_} if hasattr(self, "val_users_") else {}
        return {**self.result_.summary(), **subset, "skipped_steps_total": sum(r.skipped_steps for r in self.runs_),
                "trace": self.result_.trace, "candidates": [r.summary() for r in self.runs_]}
