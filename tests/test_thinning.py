"""Thinned variants of a real dataset (``thin:BASE,per_user=LO-HI,seed=S``): counts, subset, determinism, protocol."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from cfbench.datasets import DatasetError, load_dataset
from cfbench.identity import dataset_label
from cfbench.splits import reference_split
from cfbench.thinning import ThinSpec, parse_thinned, thin


@pytest.fixture(scope="module")
def base():
    return load_dataset("ml-latest-small")


def _frame(data) -> pd.DataFrame:
    return pd.DataFrame({"user": data.user, "item": data.item, "rating": data.rating, "timestamp": data.timestamp})


def test_every_user_keeps_a_random_count_in_range_of_their_own_interactions(base):
    thinned = thin(base, ThinSpec("ml-latest-small", 4, 8, seed=1))
    before, after = _frame(base), _frame(thinned)
    n_before, n_after = before.groupby("user").size(), after.groupby("user").size()
    assert set(n_after.index) == set(n_before.index)  # nobody disappears
    assert ((n_after >= np.minimum(4, n_before)) & (n_after <= 8)).all()
    assert set(n_after[n_before >= 8]) == {4, 5, 6, 7, 8}  # every count of the range occurs
    # a subset of the original events, in file order, each at most once
    positions = before.reset_index().merge(after, on=["user", "item", "rating", "timestamp"])["index"]
    assert len(positions) == len(after) and positions.is_monotonic_increasing and positions.is_unique
    assert thinned.name == "ml-latest-small-thin4-8-s1"


def test_which_interactions_are_kept_is_uniform_not_the_first_ones(base):
    before = _frame(base)
    after = _frame(thin(base, ThinSpec("ml-latest-small", 3, 3)))
    first = before.groupby("user").head(3)
    assert len(after.merge(first)) < 0.2 * len(after)  # the first 3 of each user would all match


def test_deterministic_per_seed(base):
    a, b = thin(base, ThinSpec("x", 3, 6, 0)), thin(base, ThinSpec("x", 3, 6, 0))
    c = thin(base, ThinSpec("x", 3, 6, 1))
    np.testing.assert_array_equal(a.item, b.item)
    np.testing.assert_array_equal(a.user, b.user)
    assert len(a) != len(c) or not np.array_equal(a.item, c.item)


def test_the_protocol_gives_the_documented_train_and_validation_counts(base):
    """n kept → ⌊0.8n⌋ − 1 train items, validation items only where ⌊0.9n⌋ > ⌊0.8n⌋ (the module's table)."""
    thinned = thin(base, ThinSpec("ml-latest-small", 3, 10, 2))
    kept = _frame(thinned).groupby("user").size()
    split = reference_split(thinned, seed=0)
    n = kept.loc[split.user_ids].to_numpy()
    train = np.diff(split.train.indptr)
    val = np.diff(split.val.indptr)
    np.testing.assert_array_equal(train, (8 * n) // 10 - 1)
    np.testing.assert_array_equal(val > 0, (9 * n) // 10 > (8 * n) // 10)
    no_validation = load_dataset("thin:ml-latest-small,per_user=3-5")
    assert reference_split(no_validation, seed=0).val.nnz == 0  # the sparse case: nobody has validation items


def test_loaded_by_name_with_a_distinct_row_label(base):
    data = load_dataset("thin:ml-latest-small,per_user=5-9,seed=3")
    assert data.name == "ml-latest-small-thin5-9-s3" and len(data) < len(base)
    label = dataset_label(data)
    assert label.startswith("ml-latest-small-thin5-9-s3-") and label != dataset_label(base)


@pytest.mark.parametrize("name, message", [
    ("thin:ml-latest-small", "per_user=LO-HI (two whole numbers) is required"),
    ("thin:ml-latest-small,per_user=5", "per_user=LO-HI (two whole numbers) is required"),
    ("thin:ml-latest-small,per_user=6-3", "1 ≤ LO ≤ HI"),
    ("thin:ml-latest-small,per_user=0-3", "1 ≤ LO ≤ HI"),
    ("thin:ml-latest-small,per_user=3-5,seed=-1", "is not a whole number"),
    ("thin:ml-latest-small,per_user=3-5,per_user=4-6", "each once"),
    ("thin:ml-latest-small,k=3", "is not per_user=LO-HI or seed=S"),
    ("thin:per_user=3-5", "the base dataset comes first"),
])
def test_bad_names_are_one_line_errors(name, message):
    with pytest.raises(DatasetError, match=re.escape(message)) as err:
        parse_thinned(name)
    assert "\n" not in str(err.value) and str(err.value).startswith(repr(name))


def test_thinning_a_thinned_dataset_is_refused():
    with pytest.raises(DatasetError, match="thin an original dataset"):
        load_dataset("thin:thin:ml-latest-small,per_user=3-5")


def test_unknown_base_names_the_base():
    with pytest.raises(DatasetError, match="unknown dataset 'no-such-set'"):
        load_dataset("thin:no-such-set,per_user=3-5")
