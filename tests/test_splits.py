from __future__ import annotations

import numpy as np
import pytest

from cfbench.datasets import DatasetError, Interactions
from cfbench.splits import implicit_feedback, reference_split
from tests.conftest import require_dataset


def _expected_sizes(n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference rule: position 0 → test, then ⌊0.8n⌋ / ⌊0.9n⌋ cuts."""
    return (n * 8) // 10 - 1, (n * 9) // 10 - (n * 8) // 10, n - (n * 9) // 10 + 1


def test_split_sizes_follow_the_reference_rule(small_split, small_data):
    n = np.bincount(implicit_feedback(small_data)["u"])
    train, val, test = _expected_sizes(n)
    np.testing.assert_array_equal(np.diff(small_split.train.indptr), train)
    np.testing.assert_array_equal(np.diff(small_split.val.indptr), val)
    np.testing.assert_array_equal(np.diff(small_split.test.indptr), test)
    assert (test >= 2).all()


def test_parts_are_disjoint_and_cover_every_interaction(small_split, small_data):
    total = small_split.train + small_split.val + small_split.test
    assert total.max() == 1  # disjoint
    assert total.nnz == len(implicit_feedback(small_data))


def test_split_is_deterministic_per_seed(small_data):
    a, b, c = (reference_split(small_data, s) for s in (1, 1, 2))
    assert (a.train != b.train).nnz == 0 and (a.test != b.test).nnz == 0
    assert (a.train != c.train).nnz > 0


def _tiny(users, items, ratings=None, timestamps=None):
    return Interactions("tiny", np.array(users), np.array(items),
                        None if ratings is None else np.array(ratings, np.float32),
                        None if timestamps is None else np.array(timestamps))


def test_duplicates_collapse_and_short_users_are_dropped():
    data = _tiny([1, 1, 1, 1, 2, 2, 3, 3, 3], ["a", "a", "b", "c", "a", "b", "a", "b", "d"])
    df = implicit_feedback(data)
    assert sorted(df["user"].unique()) == [1, 3]  # user 2 has 2 interactions
    assert len(df) == 6  # (1, a) counted once
    split = reference_split(data, 0)
    assert split.n_items == 4  # every item of the kept interactions, also "d" (test-only or not)


def test_users_with_five_or_fewer_interactions_have_no_validation():
    data = _tiny([1] * 5 + [2] * 10, list(range(5)) + list(range(10)))
    split = reference_split(data, 0)
    assert np.diff(split.val.indptr).tolist() == [0, 1]
    assert np.diff(split.train.indptr).tolist() == [3, 7]


def test_rating_threshold_and_its_error():
    data = _tiny([1, 1, 1, 1], [1, 2, 3, 4], ratings=[5, 4, 4, 1])
    assert reference_split(data, 0, rating_threshold=4).summary()["items"] == 3
    with pytest.raises(DatasetError, match="needs ratings"):
        reference_split(_tiny([1, 1, 1], [1, 2, 3]), 0, rating_threshold=4)


def test_timestamps_follow_train_interactions():
    data = _tiny([1] * 10, list(range(10)), timestamps=[100 + i for i in range(10)])
    split = reference_split(data, 3)
    ts = split.train_timestamps
    assert (ts.indices == split.train.indices).all()
    assert (ts.data == 100 + split.item_ids[ts.indices]).all()


def test_ml1m_split_sizes_match_the_reference_index():
    """The reference's stored ML-1M split has 791,718 / 99,692 / 108,799 train / val / test rows."""
    split = reference_split(require_dataset("ml-1m"), 0)
    assert split.summary() == {"users": 6040, "items": 3706, "train": 791_718, "val": 99_692, "test": 108_799}
