"""Distill-CF: the hand-written multi-Gumbel gradient, the loss gradient, determinism, output, quality."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cfbench.evaluation import select_lambda
from cfbench.models.ease import EASE
from cfbench.models.infinite_ae import InfiniteAE
from cfbench.ntk import NTKConfig
from cfbench.plugins import load_sampler
from cfbench.sampling import SelectionData
from cfbench.subsets import SyntheticUsers, support_matrix, validate_subset
from samplers.distill_cf import (DistillCF, DistillCFConfig, distillation_loss, gumbel_noise, gumbel_softmax,
                                 krr_predict, krr_weights, multi_gumbel_sum, relaxed_multi_hot)
from samplers.random_users import RandomUsers

TINY = dict(steps=3, eval_every=3, samples_per_user=8, lambdas="1")


def _finite_differences(f, x: jax.Array, eps: float = 1e-6) -> np.ndarray:
    f = jax.jit(f)
    out = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        e = jnp.zeros(x.shape, x.dtype).at[idx].set(eps)
        out[idx] = (f(x + e) - f(x - e)) / (2 * eps)
    return out


def test_multi_gumbel_gradient_matches_finite_differences_and_autodiff():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        logits = jnp.asarray(rng.normal(size=(3, 6)))
        weights = jnp.asarray(rng.normal(size=(3, 6)))
        key = jax.random.key(3)

        def custom(z):  # min(·, 1) is active on some entries with these values
            return jnp.sum(weights * relaxed_multi_hot(z, key, 0.7, 5) ** 2)

        def unrolled(z):  # plain autodiff through the S samples
            total = sum(gumbel_softmax(z, jax.random.bits(jax.random.fold_in(key, s), (2,), jnp.uint32), 0.7)
                        for s in range(5))
            return jnp.sum(weights * jnp.minimum(total, 1.0) ** 2)

        grad = np.asarray(jax.grad(custom)(logits))
        assert custom(logits) == pytest.approx(float(unrolled(logits)), rel=1e-12)
        np.testing.assert_allclose(grad, np.asarray(jax.grad(unrolled)(logits)), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grad, _finite_differences(custom, logits), rtol=1e-6, atol=1e-8)
        assert np.abs(grad).max() > 1e-3


def test_distillation_loss_gradient_matches_finite_differences():
    """End to end: sampling → NTK kernel ridge regression → multinomial NLL + cardinality."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        logits = jnp.asarray(rng.normal(size=(3, 7)))
        targets = jnp.asarray((rng.random((2, 4, 7)) < 0.4).astype(np.float64))  # 2 blocks of 4 users
        key = jax.random.key(5)

        def loss(z):
            return distillation_loss(z, key, targets, jnp.float64(8.0), jnp.float64(0.1), mean_train_length=3.0,
                                     tau=0.5, n_samples=4, cardinality=0.3)[0]

        grad = np.asarray(jax.grad(loss)(logits))
        assert np.all(np.isfinite(grad))
        np.testing.assert_allclose(grad, _finite_differences(loss, logits), rtol=1e-5, atol=1e-8)


def _ntk_depth1(x1: np.ndarray, x2: np.ndarray, same: bool = False) -> np.ndarray:
    """Depth-1 NTK written out: Θ = (√(qq')/π)(sin θ + (π−θ) cos θ) + Σ₁(π−θ)/π + σ_b²,
    Σ₁ = σ_w²⟨x,x'⟩/d + σ_b², q = Σ₁(x, x), cos θ = Σ₁/√(qq'), with σ_w² = 2 and σ_b² = 0.01."""
    d = x1.shape[1]
    s1 = 2 * x1 @ x2.T / d + 0.01
    norm = np.sqrt(np.outer(2 * (x1 * x1).sum(1) / d + 0.01, 2 * (x2 * x2).sum(1) / d + 0.01))
    theta = np.arccos(np.clip(s1 / norm, -1, 1))
    if same:
        np.fill_diagonal(theta, 0.0)  # θ(x, x) = 0 exactly (arccos of a rounded 1 is ~1e-8)
    return norm / np.pi * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) + s1 * (np.pi - theta) / np.pi + 0.01


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(axis=1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=1, keepdims=True))


def test_distillation_loss_matches_an_independent_numpy_computation():
    """L = −(1/U) Σ_u Σ_i X_ui log softmax(R_u)_i + c · mean_rows(Σ_i X̃) / (|train| / U), as documented,
    with R = Θ(X, X̃)(K + λ tr(K)/b I)⁻¹ X̃, K = Θ(X̃, X̃), in plain float64 NumPy."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(4)
        b, d, n_real, tau, n_samples, lam, card_weight = 3, 9, 5, 0.5, 4, 0.3, 0.2
        logits = rng.normal(size=(b, d))
        real = (rng.random((n_real, d)) < 0.4).astype(np.float64)
        real[:, 0] = 1.0
        mean_train_length = real.sum() / n_real
        blocks = np.zeros((2, 3, d))  # two blocks of three rows: the last row is zero padding
        blocks.reshape(6, d)[:n_real] = real
        key = jax.random.key(7)

        # X̃ = min(Σ_s softmax((Z + G_s)/τ), 1); only the noise G_s comes from the module (tested above)
        total = np.zeros((b, d))
        for sample in range(n_samples):
            seeds = jax.random.bits(jax.random.fold_in(key, sample), (2,), jnp.uint32)
            noisy = (logits + np.asarray(gumbel_noise(seeds, (b, d), jnp.float64))) / tau
            total += np.exp(_log_softmax(noisy))
        xs = np.minimum(total, 1.0)
        assert (xs == 1.0).any() and (xs < 1.0).any()  # the cap binds on some entries, not all

        kernel = _ntk_depth1(xs, xs, same=True)
        alpha = np.linalg.solve(kernel + lam * np.trace(kernel) / b * np.eye(b), xs)
        reconstruction = _ntk_depth1(real, xs) @ alpha
        nll = -np.sum(real * _log_softmax(reconstruction)) / n_real
        cardinality = xs.sum(axis=1).mean() / mean_train_length

        value, parts = distillation_loss(jnp.asarray(logits), key, jnp.asarray(blocks), jnp.float64(n_real),
                                         jnp.float64(lam), mean_train_length=mean_train_length, tau=tau,
                                         n_samples=n_samples, cardinality=card_weight)
    assert float(parts.nll) == pytest.approx(nll, rel=1e-10)
    assert float(parts.cardinality) == pytest.approx(cardinality, rel=1e-12)
    assert float(value) == pytest.approx(nll + card_weight * cardinality, rel=1e-10)
    assert card_weight * cardinality > 1e-3 * nll > 0  # both terms matter at this tolerance


def test_sample_sums_and_memory_do_not_depend_on_how_many_samples():
    logits = jnp.zeros((4, 50))
    total = multi_gumbel_sum(logits, jax.random.key(0), 0.5, 7)
    np.testing.assert_allclose(np.asarray(total.sum(axis=1)), 7.0, rtol=1e-5)  # each sample is a distribution
    x = relaxed_multi_hot(logits, jax.random.key(0), 0.5, 7)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0

    def residual_bytes(n_samples: int) -> int:
        _, vjp = jax.vjp(lambda z: multi_gumbel_sum(z, jax.random.key(0), 0.5, n_samples), logits)
        return sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(vjp) if hasattr(leaf, "nbytes"))
    assert 0 < residual_bytes(200) == residual_bytes(2)  # only Z and the key are kept for the backward pass


def test_gumbel_noise_has_gumbel_moments_and_no_repeats():
    g = np.asarray(gumbel_noise(jnp.asarray([1, 2], jnp.uint32), (200, 500), jnp.float32)).ravel()
    assert np.isfinite(g).all()
    assert g.mean() == pytest.approx(np.euler_gamma, abs=0.01)
    assert g.std() == pytest.approx(np.pi / np.sqrt(6), abs=0.01)
    assert np.unique(g).size > 0.99 * g.size


def test_krr_matches_the_infinite_ae_model():
    rng = np.random.default_rng(2)
    support = rng.random((6, 30)).astype(np.float32)
    queries = (rng.random((5, 30)) < 0.3).astype(np.float32)
    alpha = krr_weights(jnp.asarray(support), jnp.float32(5.0), NTKConfig())
    ours = krr_predict(jnp.asarray(queries), jnp.asarray(support), alpha, NTKConfig())
    np.testing.assert_allclose(np.asarray(ours), np.asarray(InfiniteAE(lam=5.0).fit(support).score(queries)),
                               rtol=1e-4, atol=1e-5)


def test_same_seed_same_output_and_valid_synthetic_users(small_split):
    data = SelectionData(small_split)
    a = DistillCF(**TINY).select(data, 7, np.random.default_rng(11))
    b = DistillCF(**TINY).select(data, 7, np.random.default_rng(11))
    c = DistillCF(**TINY).select(data, 7, np.random.default_rng(12))
    assert isinstance(a, SyntheticUsers)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert not np.array_equal(a.matrix, c.matrix)
    assert a.matrix.shape == (7, data.n_items) and a.matrix.dtype == np.float32
    assert a.matrix.min() >= 0.0 and a.matrix.max() <= 1.0
    validate_subset(a, data.train, 7, "distill-cf")
    support = support_matrix(a, data.train)
    for model in (InfiniteAE(lam=1.0), EASE(lam=5.0)):
        scores = model.fit(support).score(data.train[:3])
        assert scores.shape == (3, data.n_items) and bool(jnp.all(jnp.isfinite(scores)))


def test_mini_batched_users_and_budget_above_the_user_count(toy_split_data):
    out = DistillCF(**TINY, batch_users=8, block_users=3).select(toy_split_data, 100, np.random.default_rng(0))
    assert out.matrix.shape == (toy_split_data.n_users, toy_split_data.n_items)


def test_race_trains_only_the_validation_leader_on(toy_split_data):
    sampler = DistillCF(**{**TINY, "steps": 6, "eval_every": 2}, tau="0.5/5", race_steps=2)
    out = sampler.select(toy_split_data, 5, np.random.default_rng(0))
    runs = sampler.runs_
    assert [(r.tau, r.cardinality) for r in runs] == [(0.5, 0.001), (5.0, 0.001)]
    leader = max(runs, key=lambda r: max(t["hr@100"] for t in r.trace if t["step"] <= 2))
    assert sampler.result_.tau == leader.tau and leader.steps_run == 6
    assert [r.steps_run for r in runs if r is not leader] == [2]
    np.testing.assert_array_equal(out.matrix, sampler.result_.matrix)
    info = sampler.diagnostics()
    assert info["tau"] == leader.tau and len(info["candidates"]) == 2 and info["trace"][0]["step"] == 0


def test_without_a_race_every_candidate_trains_fully(toy_split_data):
    sampler = DistillCF(**TINY, tau="0.5/5", cardinality="0.001/10", race_steps=0)
    sampler.select(toy_split_data, 5, np.random.default_rng(0))
    assert [r.steps_run for r in sampler.runs_] == [3, 3, 3, 3]
    assert sampler.result_.best_hr100 == max(r.best_hr100 for r in sampler.runs_)
    assert len(DistillCFConfig(grid=True).candidates()) == 8  # the reference's 4 τ × 2 c


def test_the_result_is_a_synthetic_sample_even_if_the_initial_users_score_better(toy_split_data, monkeypatch):
    import samplers.distill_cf as module
    scores = iter([50.0, 40.0, 45.0])  # initial users, then two worse validations
    monkeypatch.setattr(module, "_validate", lambda xs, split, grid: (1.0, next(scores)))
    sampler = DistillCF(**{**TINY, "steps": 2, "eval_every": 1}, tau="5")
    out = sampler.select(toy_split_data, 5, np.random.default_rng(0))
    assert sampler.result_.best_step == 2 and sampler.result_.best_hr100 == 45.0
    assert sampler.result_.trace[0] == {"step": 0, "hr@100": 50.0, "lambda": 1.0}
    assert len(np.unique(out.matrix)) > 2  # relaxed values, not the initial 0/1 rows


@pytest.fixture
def toy_split_data():
    from tests.conftest import toy_split
    return SelectionData(toy_split(n_users=30, n_items=150, density=0.1))


def test_registered_and_configurable_from_a_spec():
    sampler = load_sampler("distill-cf:tau=0.3/1,steps=5,grid=false")
    assert isinstance(sampler, DistillCF)
    assert sampler.config.candidates() == [(0.3, 0.001), (1.0, 0.001)] and sampler.config.steps == 5
    assert sampler.spec() == "distill-cf:steps=5,tau=0.3/1"
    assert DistillCF(tau=0.5).config.tau == "0.5"  # a number from Python code is one candidate
    assert DistillCFConfig(tau="0.3/5", cardinality="0.001/10").candidates() == [
        (0.3, 0.001), (0.3, 10.0), (5.0, 0.001), (5.0, 10.0)]


@pytest.mark.parametrize("params, message", [
    (dict(steps=0), "steps"), (dict(steps=5000), "steps"), (dict(tau=0.0), "tau"), (dict(tau="1/-1"), "tau"),
    (dict(tau="1,5"), "tau"), (dict(cardinality="x"), "cardinality"), (dict(race_steps=-1), "race_steps"),
    (dict(samples_per_user=0), "samples"),
    (dict(lambdas="1/x"), "lambdas"), (dict(lambdas="0/1"), "lambdas"), (dict(batch_users=-1), "batch_users"),
    (dict(lr=0.0), "lr"), (dict(grid=True, tau="0.5"), "grid"), (dict(validation_users=-1), "validation_users"),
])
def test_bad_config_is_a_one_line_error(params, message):
    with pytest.raises(ValueError, match=message) as err:
        DistillCFConfig(**params)
    assert "\n" not in str(err.value)


def test_short_distillation_beats_random_users_on_validation(small_split):
    """ml-latest-small, 10 users: a short distillation vs the mean of 3 random-user draws, ∞-AE val HR@100."""
    data = SelectionData(small_split)
    budget = 10
    random_hr = np.mean([select_lambda(InfiniteAE(), support_matrix(RandomUsers().select(
        data, budget, np.random.default_rng(seed)), data.train), small_split).validation.summary()["hr@100"]
        for seed in range(3)])
    sampler = DistillCF(steps=60, eval_every=30, samples_per_user=50)
    distilled = sampler.select(data, budget, np.random.default_rng(0))
    distilled_hr = select_lambda(InfiniteAE(), distilled.matrix, small_split).validation.summary()["hr@100"]
    assert distilled_hr > random_hr + 2.0, (distilled_hr, random_hr)


def test_the_suite_records_the_chosen_temperature_in_each_row(tmp_path):
    from cfbench.harness import SuiteConfig, run_suite
    from cfbench.results import load_rows
    spec = "distill-cf:steps=2,eval_every=1,samples_per_user=4,race_steps=1,tau=0.5/5"
    run_suite(SuiteConfig(results_dir=tmp_path, samplers=(spec,), models=("ease",), budgets=(5,), seeds=(0,)),
              progress=False)
    (row,) = load_rows(tmp_path)
    selection = row["selection"]
    assert row["sampler_version"] == DistillCF.version and row["sampler_params"]["tau"] == "0.5/5"
    assert [c["tau"] for c in selection["candidates"]] == [0.5, 5.0]
    assert selection["tau"] in (0.5, 5.0) and selection["steps_run"] == 2
    assert sorted(c["steps_run"] for c in selection["candidates"]) == [1, 2]
    assert [t["step"] for t in selection["trace"]] == [0, 1, 2]
    from cfbench.reports import write_leaderboards
    write_leaderboards(tmp_path, tmp_path / "lb", plots=False)
    table = (tmp_path / "lb" / "ml-latest-small" / "ease.md").read_text().split("## What self-tuning samplers chose")[1]
    header, _, line = table.strip().splitlines()[2:5]
    assert "| tau " in header and "| best_step " in header and "candidates" not in header
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in line.split("|")]))
    assert cells["sampler"] == row["sampler_spec"] and cells["budget"] == "5" and cells["seed"] == "0"
    assert float(cells["tau"]) == selection["tau"] and int(cells["best_step"]) == selection["best_step"]
    # how many validation users the choice rested on: those with validation items in the split
    n_val = int(np.sum(np.diff(small_split_val_indptr(row)) > 0))
    assert int(cells["val users"].replace(",", "")) == row["n_eval_users"]["val"] == n_val


def small_split_val_indptr(row):
    from cfbench.datasets import load_dataset
    from cfbench.splits import reference_split
    return reference_split(load_dataset(row["dataset"]), seed=row["seed"]).val.indptr


def test_full_batch_on_large_data_warns_to_mini_batch(toy_split_data, monkeypatch, caplog):
    import samplers.distill_cf as module
    monkeypatch.setattr(module, "LARGE_TARGETS_GB", 1e-6)  # the toy data's 30 × 150 floats exceed it
    with caplog.at_level("WARNING", logger=module.__name__):
        DistillCF(**TINY, tau="5").select(toy_split_data, 5, np.random.default_rng(0))
    assert "batch_users" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger=module.__name__):
        DistillCF(**TINY, tau="5", batch_users=10).select(toy_split_data, 5, np.random.default_rng(0))
    assert "batch_users" not in caplog.text


def test_validation_on_a_subset_of_users_scores_every_sample_on_that_fixed_subset(toy_split_data, monkeypatch):
    """validation_users=N: the initial users, every validation point and every τ candidate are scored on
    the same N users (drawn by the distillation's seed), and the row says how many."""
    import samplers.distill_cf as module
    seen: list[frozenset] = []

    def record(xs, split, grid):
        seen.append(frozenset(np.flatnonzero(np.diff(split.val.indptr) > 0).tolist()))
        return 1.0, float(len(seen))
    monkeypatch.setattr(module, "_validate", record)
    with_val = np.flatnonzero(np.diff(toy_split_data.val.indptr) > 0)
    sampler = DistillCF(**{**TINY, "steps": 2, "eval_every": 1}, tau="1/5", validation_users=7)
    sampler.select(toy_split_data, 5, np.random.default_rng(0))
    assert len(seen) == 1 + 2 * 2 and len(set(seen)) == 1  # initial users + 2 points × 2 candidates, one subset
    (subset,) = set(seen)
    assert len(subset) == 7 and subset <= set(with_val.tolist())
    assert sampler.diagnostics()["val_users"] == 7
    seen.clear()
    DistillCF(**{**TINY, "steps": 2, "eval_every": 1}, tau="5", validation_users=7).select(
        toy_split_data, 5, np.random.default_rng(1))
    assert set(seen) != {subset}  # another seed, another subset
    seen.clear()
    full = DistillCF(**{**TINY, "steps": 2, "eval_every": 1}, tau="5")
    full.select(toy_split_data, 5, np.random.default_rng(0))
    assert set(seen) == {frozenset(with_val.tolist())} and "val_users" not in full.diagnostics()


def test_validation_users_at_its_default_leaves_the_row_identity_as_before_the_parameter():
    """Rows computed before ``validation_users`` existed keep their identity: at 0 it is not a parameter
    of the row; set, it is recorded and shows in the spec."""
    assert "validation_users" not in DistillCF().params()
    assert "validation_users" not in load_sampler("distill-cf-robust").params()
    sampler = load_sampler("distill-cf:validation_users=4096")
    assert sampler.params()["validation_users"] == 4096 and sampler.spec() == "distill-cf:validation_users=4096"
    assert set(DistillCF().params()) == {f for f in DistillCFConfig.__dataclass_fields__} - {"validation_users"}


@pytest.mark.parametrize("n, block", [(7, 3), (6, 3), (5, 8), (1, 1)])
def test_target_blocks_are_the_rows_densified_and_zero_padded_bit_for_bit(n, block):
    """The step's targets: (n_blocks, block, d) equal to the host ``toarray`` of the rows, padded with zero rows."""
    import scipy.sparse as sp
    from samplers.distill_cf import _target_blocks
    rows = sp.random(n, 11, density=0.4, format="csr", dtype=np.float32, random_state=n)
    rows.data[:] = np.random.default_rng(n).random(rows.nnz).astype(np.float32)  # not only ones
    blocks, count = _target_blocks(rows, block)
    b = min(block, n)
    n_blocks = -(-n // b)
    expected = np.zeros((n_blocks * b, 11), np.float32)
    expected[:n] = rows.toarray()
    assert blocks.shape == (n_blocks, b, 11) and blocks.dtype == jnp.float32 and float(count) == n
    np.testing.assert_array_equal(np.asarray(blocks), expected.reshape(n_blocks, b, 11))
