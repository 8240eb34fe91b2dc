"""``svp-cf``: selection via proxy (Sachdeva, Wu & McAuley, WSDM 2022), keeping the hardest data.

A cheap proxy recommender is trained with BPR on every train interaction, and each interaction
(u, i) is scored by how often the proxy mis-ranked it against its sampled negative:

    s(u, i) = g + b_u + b_i  [+ ⟨p_u, q_i⟩ for proxy="mf"]            (dropout on p_u, q_i)
    BPR loss = −log σ(s(u, i) − s(u, j)),  j uniform over the items u has not interacted with
    forget(u, i) = (1/E) Σ_epochs [s(u, j) > s(u, i)],  measured in the forward pass of its batch

(the reference's "forgetting events" for implicit feedback: a mis-ranking frequency). Optional
inverse-propensity weighting, w(n) = 1 + C (n + B)^(−A), C = (ln N − 1)(B + 1)^A, A = 0.55,
B = 1.5, from user and item train counts n:

* level="interaction": score = forget(u, i) [× max(w_u, w_i)]; keep the K highest-scored
  interactions, K = the interaction budget b/U · N.
* level="user": score_u = mean_i forget(u, i) [× w_u]; keep the b highest-scored users.

Ties are broken at random, by an order drawn from the split's seed alone. The proxy, too, is
trained with a seed drawn from the split's seed, so it does not depend on the budget: it is
trained once per (train data, seed, proxy settings) and cached (the last few in memory), and the
subsets of one seed are **nested** across budgets (the b = 10 subset is inside the b = 20 one).
A row's ``selection`` records the proxy's training time and whether it came from the cache; the
harness adds that time to the row's ``select_cost_s`` (the cost of one selection from scratch),
which the leaderboards' "speed-up incl. selection" uses. Each epoch is one jitted function: exact uniform negatives for all N
interactions at once, then a ``lax.scan`` over the zero-padded batches of a fresh permutation;
Adam (β = 0.9, 0.98) with L2 weight decay as in PyTorch. float32 throughout.

Differences from the reference (sampling_cf, ``svp_handler.py``/``main.py``): interactions are
shuffled every epoch (the reference keeps file order while tracking, i.e. user-sorted batches),
and dropout masks come from a counter-based hash rather than a cryptographic generator (speed).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.sparse as sp

from cfbench.devices import precise_jit
from cfbench.memory import Footprint, UnitShape, svp_cf_footprint
from cfbench.metrics import inverse_propensity
from cfbench.numerics import hash_uniform_bits, top_k_random_ties
from cfbench.progress import unit_progress
from cfbench.sampling import Sampler, SelectionData
from cfbench.subsets import InteractionSubset, UserSubset

__all__ = ["ProxyResult", "SVPConfig", "SVPCF", "forgetting_scores", "train_proxy"]

PROXIES = ("bias", "mf")
LEVELS = ("interaction", "user")


@dataclasses.dataclass(frozen=True)
class SVPConfig:
    proxy: str = "mf"  # "bias" (g + b_u + b_i) or "mf" (biases + ⟨p_u, q_i⟩)
    level: str = "user"  # "interaction" (keep interactions) or "user" (keep users)
    propensity: bool = False  # weight scores by inverse propensity
    epochs: int = 50
    latent: int = 10
    lr: float = 0.006
    batch_size: int = 1024
    dropout: float = 0.3
    weight_decay: float = 1e-6

    def __post_init__(self) -> None:
        if self.proxy not in PROXIES:
            raise ValueError(f"proxy must be one of {', '.join(PROXIES)}, got {self.proxy!r}")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.latent < 1:
            raise ValueError("epochs, batch_size and latent must be ≥ 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay ≥ 0, got {self.lr} and {self.weight_decay}")


class _Static(NamedTuple):
    """Hashable training settings that fix the compiled program."""

    proxy: str
    n_items: int
    search_steps: int  # binary-search rounds: ⌈log₂(longest train row + 1)⌉
    batch_size: int
    dropout: float
    lr: float
    weight_decay: float


class _Data(NamedTuple):
    """Train interactions on the device, CSR order."""

    indptr: jax.Array  # (U + 1,)
    users: jax.Array  # (N,)
    items: jax.Array  # (N,)
    gaps: jax.Array  # (N,) c_k of :func:`_complement_gaps`


class ProxyResult(NamedTuple):
    forget: np.ndarray  # (N,) mis-ranking frequency of each train interaction, CSR order
    epoch_loss: np.ndarray  # (E,) mean BPR loss of each epoch


def _init_params(key: jax.Array, n_users: int, n_items: int, proxy: str, latent: int) -> dict[str, jax.Array]:
    """g = 0.5, zero biases; embeddings Xavier-uniform, U(±√(6 / (n + d)))."""
    params = {"global": jnp.full((), 0.5, jnp.float32), "user_bias": jnp.zeros(n_users, jnp.float32),
              "item_bias": jnp.zeros(n_items, jnp.float32)}
    if proxy == "mf":
        ku, ki = jax.random.split(key)
        for name, k, n in (("user_emb", ku, n_users), ("item_emb", ki, n_items)):
            bound = np.sqrt(6.0 / (n + latent))
            params[name] = jax.random.uniform(k, (n, latent), jnp.float32, -bound, bound)
    return params


def _optimizer(static: _Static) -> optax.GradientTransformation:
    """PyTorch Adam with ``weight_decay``: g ← g + λθ, then Adam(β₁ = 0.9, β₂ = 0.98)."""
    return optax.chain(optax.add_decayed_weights(static.weight_decay),
                       optax.scale_by_adam(b1=0.9, b2=0.98), optax.scale(-static.lr))


def _dropout(x: jax.Array, seed: jax.Array, rate: float) -> jax.Array:
    """Inverted dropout: x · [bits ≥ rate · 2³²] / (1 − rate), bits from the counter hash.

    Dropout needs ~10⁹ random numbers per proxy run on ML-1M; on CPU threefry made dropout cost more
    than the rest of training, the hash costs ~15 % of it.
    """
    keep = hash_uniform_bits(seed, x.shape) >= jnp.uint32(min(int(rate * 2.0**32), 2**32 - 1))
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def _scores(params: dict[str, jax.Array], users: jax.Array, items: jax.Array, seed: jax.Array,
            static: _Static) -> jax.Array:
    """s(u, i) = g + b_u + b_i [+ ⟨drop(p_u), drop(q_i)⟩] for paired index arrays; ``seed`` (uint32) for dropout."""
    s = params["global"] + params["user_bias"][users] + params["item_bias"][items]
    if static.proxy == "mf":
        p, q = params["user_emb"][users], params["item_emb"][items]
        if static.dropout > 0:
            p = _dropout(p, seed, static.dropout)
            q = _dropout(q, seed ^ jnp.uint32(0x5BD1E995), static.dropout)
        s = s + jnp.sum(p * q, axis=-1)
    return s


def _bpr_loss(params: dict[str, jax.Array], users: jax.Array, pos: jax.Array, neg: jax.Array, weight: jax.Array,
              seeds: jax.Array, static: _Static) -> tuple[jax.Array, jax.Array]:
    """Weighted mean of −log σ(s(u, i) − s(u, j)); also returns [s(u, j) > s(u, i)] per row."""
    s_pos, s_neg = _scores(params, users, pos, seeds[0], static), _scores(params, users, neg, seeds[1], static)
    loss = jnp.sum(weight * -jax.nn.log_sigmoid(s_pos - s_neg)) / jnp.maximum(jnp.sum(weight), 1.0)
    return loss, s_neg > s_pos


def _complement_gaps(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """For each train entry (u, a_k), k-th in u's sorted row: c_k = a_k − k, the non-positive items below a_k."""
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    return (indices - (np.arange(indices.size) - indptr[rows])).astype(np.int32)


def _sample_negatives(key: jax.Array, users: jax.Array, data: _Data, static: _Static) -> jax.Array:
    """One item per row, uniform over the items the row's user has not interacted with (exact, no rejection).

    Draw r ~ U{0, …, I − n_u − 1}; the r-th non-positive item is j = r + #{k : c_k ≤ r} over u's row,
    counted by binary search since c_k is non-decreasing along a row. (A user who has every item gets
    the last item, a positive.)
    """
    start, end = data.indptr[users], data.indptr[users + 1]
    r = jax.random.randint(key, users.shape, 0, jnp.maximum(static.n_items - (end - start), 1))
    last = data.gaps.shape[0] - 1

    def halve(_: int, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = bounds
        mid = (lo + hi) // 2
        below = data.gaps[jnp.minimum(mid, last)] <= r
        active = lo < hi
        return jnp.where(active & below, mid + 1, lo), jnp.where(active & ~below, mid, hi)

    lo, _ = jax.lax.fori_loop(0, static.search_steps, halve, (start, end))
    return jnp.minimum(r + lo - start, static.n_items - 1)


def _device_data(train: sp.csr_matrix) -> _Data:
    """The train interactions (CSR with sorted indices) as device arrays."""
    rows = np.repeat(np.arange(train.shape[0]), np.diff(train.indptr))
    return _Data(jnp.asarray(train.indptr, jnp.int32), jnp.asarray(rows, jnp.int32),
                 jnp.asarray(train.indices, jnp.int32), jnp.asarray(_complement_gaps(train.indptr, train.indices)))


def _search_steps(train: sp.csr_matrix) -> int:
    """Binary-search rounds that resolve a position in the longest row: ⌈log₂(longest + 1)⌉."""
    return int(np.ceil(np.log2(np.diff(train.indptr).max() + 1)))


@functools.partial(precise_jit, static_argnames=("static",))
def _epoch(params: dict[str, jax.Array], opt_state: Any, counts: jax.Array, order: jax.Array, key: jax.Array,
           data: _Data, static: _Static) -> tuple[dict[str, jax.Array], Any, jax.Array, jax.Array]:
    """One BPR epoch over ``order`` (a permutation of the N interactions, zero-padded to whole batches).

    Returns the new parameters and optimiser state, ``counts`` + [negative outscored positive] per
    interaction, and the epoch's mean loss.
    """
    n = data.users.shape[0]
    n_batches = order.shape[0] // static.batch_size
    opt = _optimizer(static)
    grad_fn = jax.value_and_grad(_bpr_loss, has_aux=True)
    k_neg, k_drop = jax.random.split(key)
    weight = (jnp.arange(order.shape[0]) < n).astype(jnp.float32)
    negatives = _sample_negatives(k_neg, data.users[order], data, static)
    seeds = jax.random.bits(k_drop, (n_batches, 2), jnp.uint32)
    batches = (order.reshape(n_batches, -1), negatives.reshape(n_batches, -1), weight.reshape(n_batches, -1), seeds)

    def step(carry: tuple[Any, Any], batch: tuple[jax.Array, ...]) -> tuple[tuple[Any, Any], tuple[jax.Array, ...]]:
        params, opt_state = carry
        idx, neg, w, seed = batch
        (loss, wrong), grads = grad_fn(params, data.users[idx], data.items[idx], neg, w, seed, static)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), (loss * jnp.sum(w), wrong)

    (params, opt_state), (losses, wrong) = jax.lax.scan(step, (params, opt_state), batches)
    counts = counts.at[order].add((wrong.reshape(-1) & (weight > 0)).astype(counts.dtype))
    return params, opt_state, counts, jnp.sum(losses) / n


def train_proxy(train: sp.csr_matrix, config: SVPConfig, seed: int) -> ProxyResult:
    """Train the BPR proxy on every train interaction; the forgetting score of each (CSR order) and the loss curve.

    Each epoch visits the interactions in a fresh random order (NumPy, seeded) in batches of
    ``batch_size``; the last batch is padded with zero-weight rows so every batch has one shape.
    """
    if train.nnz == 0:
        raise ValueError("the SVP-CF proxy needs at least one train interaction")
    if not (sp.isspmatrix_csr(train) and train.has_sorted_indices):
        raise ValueError("the SVP-CF proxy needs the train matrix as CSR with sorted indices")
    n_users, n_items = train.shape
    n = train.nnz
    static = _Static(config.proxy, n_items, _search_steps(train), config.batch_size, config.dropout, config.lr,
                     config.weight_decay)
    data = _device_data(train)
    host_rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    params = _init_params(jax.random.fold_in(key, 0), n_users, n_items, config.proxy, config.latent)
    opt_state, counts = _optimizer(static).init(params), jnp.zeros(n, jnp.int32)
    padding = np.zeros(-n % config.batch_size, np.int32)
    losses = []
    with unit_progress(config.epochs, f"svp-cf proxy ({config.proxy})", unit="epoch") as bar:
        for epoch in range(config.epochs):
            order = jnp.asarray(np.concatenate([host_rng.permutation(n).astype(np.int32), padding]))
            params, opt_state, counts, loss = _epoch(params, opt_state, counts, order,
                                                     jax.random.fold_in(key, epoch + 1), data, static)
            losses.append(loss)
            bar.update()
    return ProxyResult(np.asarray(counts) / config.epochs, np.asarray(jnp.stack(losses)))


def forgetting_scores(forget: np.ndarray, train: sp.csr_matrix, level: str, propensity: bool) -> np.ndarray:
    """Per interaction (level="interaction") or per user (level="user") score; higher = kept first."""
    user_counts = np.diff(train.indptr)
    users = np.repeat(np.arange(train.shape[0]), user_counts)
    n = train.nnz
    if level == "interaction":
        if not propensity:
            return forget
        w_user = inverse_propensity(user_counts, n)[users]
        w_item = inverse_propensity(np.bincount(train.indices, minlength=train.shape[1]), n)[train.indices]
        return forget * np.maximum(w_user, w_item)
    mean = np.bincount(users, weights=forget, minlength=train.shape[0]) / np.maximum(user_counts, 1)
    return mean * inverse_propensity(user_counts, n) if propensity else mean


PROXY_CACHE_SIZE = 4  # proxies kept in memory (one forgetting score per train interaction each)
_proxy_cache: collections.OrderedDict[tuple, tuple[ProxyResult, float]] = collections.OrderedDict()


def _train_key(train: sp.csr_matrix) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in (train.indptr, train.indices, train.data):
        h.update(np.ascontiguousarray(a).data)
    return f"{train.shape}:{h.hexdigest()}"


def cached_proxy(train: sp.csr_matrix, config: SVPConfig, seed: int) -> tuple[ProxyResult, float, bool]:
    """:func:`train_proxy`, once per (train data, seed, proxy settings): (result, training seconds, cached?)."""
    settings = dataclasses.replace(config, level=LEVELS[0], propensity=False)  # they do not change the proxy
    key = (_train_key(train), seed, settings)
    if key in _proxy_cache:
        _proxy_cache.move_to_end(key)
        result, seconds = _proxy_cache[key]
        return result, seconds, True
    start = time.perf_counter()
    result = train_proxy(train, config, seed)
    seconds = time.perf_counter() - start
    _proxy_cache[key] = (result, seconds)
    while len(_proxy_cache) > PROXY_CACHE_SIZE:
        _proxy_cache.popitem(last=False)
    return result, seconds, False


class SVPCF(Sampler):
    name = "svp-cf"
    description = "SVP-CF: keep the data a BPR proxy (bias or MF) mis-ranks most often (forgetting events)."
    Config = SVPConfig
    #: 2: proxy seed and tie-breaking drawn from the split's seed, not the budget (cached, nested subsets).
    version = "2"

    def __init__(self, config: Any = None, **params: Any) -> None:
        super().__init__(config, **params)
        self._last: dict[str, Any] = {}

    def memory_footprint(self, shape: UnitShape) -> Footprint:
        """The BPR proxy's training and the forgetting scores (:func:`cfbench.memory.svp_cf_footprint`)."""
        return svp_cf_footprint(shape.n_users, shape.n_items, shape.nnz, latent=self.config.latent,
                                proxy=self.config.proxy, cache_size=PROXY_CACHE_SIZE)

    def select(self, data: SelectionData, budget: int,
               rng: np.random.Generator) -> UserSubset | InteractionSubset:
        cfg = self.config
        seeds = np.random.default_rng([data.seed, 0x5F9C])  # budget-independent: one proxy per seed
        proxy, seconds, cached = cached_proxy(data.train, cfg, int(seeds.integers(2**31)))
        scores = forgetting_scores(proxy.forget, data.train, cfg.level, cfg.propensity)
        ties = seeds.random(scores.size)
        self._last = {"proxy_seconds": seconds, "proxy_cached": cached, "proxy_final_loss": float(proxy.epoch_loss[-1]),
                      "reused_seconds": seconds if cached else 0.0}
        if cfg.level == "user":
            return UserSubset(np.sort(top_k_random_ties(scores, min(budget, data.n_users), ties)))
        keep = data.interaction_budget(budget)
        if keep < 1:
            raise ValueError(f"sampler {self.name!r}: a budget of {budget} users allows no train interaction")
        mask = np.zeros(data.train.nnz, dtype=bool)
        mask[top_k_random_ties(scores, keep, ties)] = True
        return InteractionSubset(mask)

    def diagnostics(self) -> dict[str, Any]:
        return dict(self._last)
