"""Synthetic interaction data: the power-law fit, the generator, the dataset names and `cfbench synth`."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from cfbench import synthetic
from cfbench.cli import main
from cfbench.datasets import DatasetError, load_dataset, read_interaction_file
from cfbench.identity import dataset_label
from cfbench.splits import reference_split
from cfbench.synthetic import (PRESETS, SynthSpec, degrees, fit_power_law, generate, is_synthetic,
                               power_law_exponent, truncated_power_law, write_csv)
from tests.conftest import require_dataset

SMALL = SynthSpec(users=300, items=200, interactions=6_000, seed=1)


def pairs(data) -> np.ndarray:
    return np.asarray(data.user, np.int64) * (int(np.max(data.item)) + 1) + np.asarray(data.item, np.int64)


# ----------------------------------------------------------------------------- the fit


def test_csn_closed_form_on_a_hand_worked_example():
    # α = 1 + n / Σ ln(k / (x_min − ½)): degrees 1, 2, 4 → 1 + 3 / (ln 2 + ln 4 + ln 8) = 1 + 1 / (2 ln 2)
    assert power_law_exponent([1, 2, 4]) == pytest.approx(1 + 1 / (2 * math.log(2)), rel=1e-12)
    # x_min = 2 ignores the 1: 1 + 2 / (ln(2/1.5) + ln(4/1.5))
    expected = 1 + 2 / (math.log(2 / 1.5) + math.log(4 / 1.5))
    assert power_law_exponent([1, 2, 4], x_min=2) == pytest.approx(expected, rel=1e-12)


def test_truncated_fit_solves_the_likelihood_equation_and_tends_to_the_closed_form():
    k = np.array([3, 3, 4, 5, 7, 9, 12, 20])
    alpha = power_law_exponent(k, 3, 20)
    lo, hi = 2.5, 20.5  # the continuous approximation: k stands for [k − ½, k + ½)
    norm = integrate.quad(lambda x: x ** -alpha, lo, hi)[0]
    model = integrate.quad(lambda x: math.log(x / lo) * x ** -alpha, lo, hi)[0] / norm
    assert model == pytest.approx(np.mean(np.log(k / lo)), rel=1e-7)  # E_α[ln k] = mean ln k
    assert power_law_exponent(k, 3, 10**12) == pytest.approx(power_law_exponent(k, 3), abs=1e-3)


@pytest.mark.parametrize(("alpha", "ratio"), [(synthetic.USER_EXPONENT, synthetic.USER_RANGE),
                                              (synthetic.ITEM_EXPONENT, synthetic.ITEM_RANGE), (2.5, 1e4)])
def test_fit_recovers_the_exponent_of_sampled_degrees(alpha, ratio):
    u = np.random.default_rng(0).random(200_000)
    k = np.floor(19.5 * truncated_power_law(u, alpha, ratio) + 0.5)  # continuous on [19.5, 19.5·ratio], rounded
    assert power_law_exponent(k, k.min(), k.max()) == pytest.approx(alpha, abs=0.02)


def test_truncated_power_law_is_the_inverse_cdf():
    u = np.array([0.0, 0.25, 0.5, 0.999999])
    x = truncated_power_law(u, 2.0, 100.0)
    assert x[0] == 1.0 and x[-1] == pytest.approx(100, rel=1e-4)
    assert x[1] == pytest.approx(1 / (1 - 0.25 * 0.99))  # F(x) = (1 − 1/x) / (1 − 1/100)
    assert truncated_power_law(np.array([0.5]), 1.0, 100.0)[0] == pytest.approx(10.0)  # log-uniform


def test_fit_power_law_counts_distinct_pairs():
    data = dataclasses.replace(generate(SMALL), name="x")
    doubled = dataclasses.replace(data, user=np.tile(data.user, 2), item=np.tile(data.item, 2))
    assert fit_power_law(doubled) == fit_power_law(data)
    user_deg, item_deg = degrees(data)
    assert user_deg.sum() == item_deg.sum() == len(data)


def test_fitted_constants_are_the_fit_of_ml1m():
    fit = fit_power_law(require_dataset("ml-1m"))
    assert (fit.user_min, fit.user_max, fit.item_min, fit.item_max) == (20, 2314, 1, 3428)
    assert f"{fit.user_exponent:.4g} {fit.user_range:.4g}" == f"{synthetic.USER_EXPONENT:.4g} {synthetic.USER_RANGE:.4g}"
    assert f"{fit.item_exponent:.4g} {fit.item_range:.4g}" == f"{synthetic.ITEM_EXPONENT:.4g} {synthetic.ITEM_RANGE:.4g}"


# ----------------------------------------------------------------------------- the generator


def test_same_seed_same_arrays_other_seed_other_arrays():
    a, b = generate(SMALL), generate(SMALL)
    assert a.user.dtype == a.item.dtype == np.int32 and a.rating is None and a.timestamp is None
    assert np.array_equal(a.user, b.user) and np.array_equal(a.item, b.item)
    c = generate(dataclasses.replace(SMALL, seed=2))
    assert not (np.array_equal(a.user, c.user) and np.array_equal(a.item, c.item))


@pytest.mark.parametrize("spec", [
    SMALL,
    PRESETS["synth-netflix-small"][0],
    SynthSpec(500, 100, 3_000),  # every user at min_user_degree
    SynthSpec(40, 30, 1_200),  # every user has every item
    SynthSpec(50, 2_000, 2_000),  # more items than the sampler reaches: the cover step gives each one a user
    SynthSpec(200, 50, 6_000, user_exponent=0.5, item_exponent=3.0),  # heavy users: the exact top-k path
], ids=lambda s: s.label)
def test_sizes_are_exact_and_pairs_distinct(spec):
    data = generate(spec)
    assert (len(data), data.n_users, data.n_items) == (spec.interactions, spec.users, spec.items)
    keys = data.user.astype(np.int64) * spec.items + data.item
    assert np.all(np.diff(keys) > 0)  # sorted by user then item, so no pair twice
    assert data.item.min() == 0 and data.item.max() == spec.items - 1
    user_deg = np.bincount(data.user)
    assert user_deg.min() >= spec.min_user_degree and user_deg.max() <= spec.items


def test_the_block_size_is_part_of_the_random_stream(monkeypatch):
    spec = SynthSpec(3_000, 300, 60_000, seed=5)
    monkeypatch.setattr(synthetic, "BLOCK_CELLS", 300 * 64)  # 64 users per block, not 3,000
    assert synthetic.block_users(300) == 64
    small_blocks = generate(spec)
    monkeypatch.undo()
    one_block = generate(spec)
    assert len(small_blocks) == len(one_block)  # same sizes, another stream: BLOCK_CELLS is a fixed constant
    assert not np.array_equal(small_blocks.item, one_block.item)


def test_user_degrees_follow_the_spec_exponent():
    for alpha in (synthetic.USER_EXPONENT, 2.5):
        data = generate(SynthSpec(20_000, 4_000, 4_000_000, user_exponent=alpha))
        assert fit_power_law(data).user_exponent == pytest.approx(alpha, abs=0.05)


def test_item_degrees_follow_item_popularity():
    spec = SynthSpec(200_000, 3_000, 1_200_000)  # 6 items per user: little without-replacement distortion
    data = generate(spec)
    item_deg = np.bincount(data.item, minlength=spec.items)
    weights = synthetic.item_weights(spec)
    assert np.corrcoef(np.log(item_deg), np.log(weights))[0, 1] > 0.98
    assert fit_power_law(data).item_exponent == pytest.approx(spec.item_exponent, abs=0.05)


def _successive_sampling(weights: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    """Exact probability of each k-set under draws ∝ weights without replacement."""
    probs: dict[tuple[int, ...], float] = {}
    for order in itertools.permutations(range(weights.size), k):
        p, left = 1.0, weights.sum()
        for j in order:
            p *= weights[j] / left
            left -= weights[j]
        key = tuple(sorted(order))
        probs[key] = probs.get(key, 0.0) + p
    return probs


@pytest.mark.parametrize(("path", "k"), [("rejection", 2), ("top-k", 3), ("fallback", 2)])
def test_each_user_is_an_exact_weighted_sample_without_replacement(monkeypatch, path, k):
    weights = np.array([8.0, 4.0, 2.0, 1.0])
    if path != "top-k":  # k = 3 of 4 items is heavy (> HEAVY_FRACTION): straight to the top-k
        monkeypatch.setattr(synthetic, "HEAVY_FRACTION", 1.0)
    if path == "fallback":
        monkeypatch.setattr(synthetic, "MAX_ROUNDS", 1)  # users still short finish with the top-k over unseen items
    n = 40_000
    keys = synthetic._sample_block(np.random.default_rng(3), np.full(n, k), weights, synthetic._alias_table(weights))
    rows = keys.reshape(n, k) % weights.size
    found = {tuple(int(v) for v in r): c for r, c in zip(*np.unique(rows, axis=0, return_counts=True))}
    for subset, p in _successive_sampling(weights, k).items():
        assert abs(found.get(subset, 0) - n * p) < 5 * math.sqrt(n * p * (1 - p)), subset


def test_alias_table_draws_in_proportion_to_weights():
    weights = np.array([1.0, 2.0, 3.0, 10.0, 0.5])
    table = synthetic._alias_table(weights)
    counts = np.bincount(synthetic._draw(np.random.default_rng(0), 500_000, *table), minlength=weights.size)
    assert counts / counts.sum() == pytest.approx(weights / weights.sum(), abs=3e-3)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"users": 0}, "users must be between 1"),
    ({"items": 2.5}, "items must be an integer"),
    ({"interactions": 100}, "interactions must be between 1,800"),
    ({"interactions": 300 * 200 + 1}, "users × items"),
    ({"seed": -1}, "seed must be ≥ 0"),
    ({"user_exponent": float("nan")}, "user_exponent must be a finite number"),
    ({"item_range": 0.5}, "item_range must be ≥ 1"),
    ({"min_user_degree": 2}, "min_user_degree must be between 3"),
    ({"users": True}, "users must be an integer"),
])
def test_bad_specs_raise_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        dataclasses.replace(SMALL, **kwargs)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- dataset names


def test_parametric_name_loads_labels_and_splits():
    data = load_dataset("synth:users=300, items=200, interactions=6000, seed=1")
    assert data.name == dataset_label(data) == "synth-u300-i200-n6000-s1"
    assert np.array_equal(data.item, generate(SMALL).item)
    split = reference_split(data, seed=0)
    assert (split.n_users, split.n_items) == (300, 200)
    assert split.train.nnz + split.val.nnz + split.test.nnz == 6_000
    assert np.all(np.diff(split.val.indptr) > 0)  # min_user_degree 6: every user has a validation item
    tuned = load_dataset("synth:users=300,items=200,interactions=6000,seed=1,item_exponent=1.5")
    assert dataset_label(tuned) == "synth-u300-i200-n6000-s1-ai1.5"


def test_preset_loads_under_its_own_name():
    data = load_dataset("synth-netflix-small")
    assert dataset_label(data) == "synth-netflix-small"
    spec = PRESETS["synth-netflix-small"][0]
    assert (len(data), data.n_users, data.n_items) == (spec.interactions, spec.users, spec.items)
    assert PRESETS["synth-netflix"][0] == SynthSpec(480_189, 17_770, 100_480_507, seed=0)


def test_a_file_or_a_renamed_dataset_does_not_take_a_synthetic_label(tmp_path):
    data = generate(SMALL)
    path = write_csv(data, tmp_path / f"{SMALL.label}.csv")
    read = read_interaction_file(path)
    assert read.name == SMALL.label and not is_synthetic(read)
    assert dataset_label(read) != SMALL.label
    other = dataclasses.replace(data, name="synth-u300-i200-n6000-s2")  # a name that is not its spec's
    assert not is_synthetic(other) and dataset_label(other).startswith("synth-u300-i200-n6000-s2-")
    assert not is_synthetic(dataclasses.replace(data, name="synth-netflix"))


@pytest.mark.parametrize(("name", "message"), [
    ("synth:users=10,items=5", "missing interactions"),
    ("synth:users=10,items=5,interactions=40,colour=red", "'colour=red' is not one of users=, items="),
    ("synth:users=ten,items=5,interactions=40", "users='ten' is not an integer"),
    ("synth:users=10,users=11,items=5,interactions=40", "users is given twice"),
    ("synth:users=10,items=50,interactions=40", "interactions must be between 60"),
    ("synth:users=10,items=5,interactions=40,user_exponent=x", "user_exponent='x' is not a number"),
])
def test_bad_parametric_names_say_what_is_allowed(name, message):
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(name)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_cli_synth_writes_a_file_that_reads_back(tmp_path, suffix):
    out = tmp_path / f"synth{suffix}"
    assert main(["synth", "--users", "300", "--items", "200", "--interactions", "6000", "--seed", "1",
                 "--output", str(out), "-q"]) == 0
    read = read_interaction_file(out)
    data = generate(SMALL)
    assert np.array_equal(read.user, data.user) and np.array_equal(read.item, data.item)
    assert read.rating is not None and np.all(read.rating == 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # the temporary file was renamed


def test_cli_synth_preset_with_override_and_errors(tmp_path, capsys):
    out = tmp_path / "small.csv"
    assert main(["synth", "--preset", "netflix-small", "--users", "1000", "-o", str(out), "-q"]) == 0
    read = read_interaction_file(out)
    assert (len(read), read.n_users, read.n_items) == (1_004_805, 1_000, 1_777)
    capsys.readouterr()
    assert main(["synth", "--users", "300", "--items", "200", "-o", str(tmp_path / "x.csv")]) == 2
    assert main(["synth", "--users", "300", "--items", "200", "--interactions", "10", "-o", str(tmp_path / "x.csv")]) == 2
    assert main(["synth", "--preset", "netflix-small", "-o", str(tmp_path / "x.tsv")]) == 2
    lines = capsys.readouterr().err.strip().split("\n")
    assert len(lines) == 3 and all(line.startswith("cfbench: error: ") for line in lines)
    assert "--interactions" in lines[0] and "interactions must be between" in lines[1] and "FILE.csv" in lines[2]
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.tsv").exists()


def test_cli_datasets_lists_the_synthetic_datasets(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CFBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("synth-netflix ", "synth-netflix-small", "synth:users=N"):
        line = next(line for line in out.splitlines() if f"| {name}" in line)
        assert "synthetic, generated locally" in line
    assert "100,480,507" in out
