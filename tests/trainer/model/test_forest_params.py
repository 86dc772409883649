"""The wider search space: min_samples_leaf, max_samples (bootstrap share) and the split criterion, bounded by
search parameters, sampled by hyperopt, and honoured by the forest scikit-learn really fits. cuML is not here:
its mapping is checked for the names cuML documents (``split_criterion``), and the GPU test checks it for real."""

from __future__ import annotations

import numpy as np
import pytest
from airline_hpo.errors import TrainerError
from airline_hpo.model.engines import CumlEngine, ForestParams, SklearnEngine
from airline_hpo.search.driver import SearchConfig, search_space
from hyperopt.pyll import stochastic
from sklearn.ensemble import RandomForestClassifier


def _samples(config: SearchConfig, count: int = 300) -> list[dict]:
    rng = np.random.default_rng(0)
    space = search_space(config, "sklearn")
    return [stochastic.sample(space, rng=rng) for _ in range(count)]


def test_space_covers_the_new_dimensions_within_their_bounds():
    samples = _samples(SearchConfig(fpath="x", leaf_max=8, max_samples_min=0.6))
    assert {"min_samples_leaf", "max_samples", "criterion"} <= set(samples[0])
    leaves = {s["min_samples_leaf"] for s in samples}
    assert leaves <= set(range(1, 9)) and {1, 8} <= leaves
    assert all(isinstance(s["min_samples_leaf"], int) for s in samples)
    assert all(0.6 <= s["max_samples"] <= 1.0 for s in samples)
    assert {s["criterion"] for s in samples} == {"gini", "entropy"}


def test_bounds_that_meet_fix_the_value():
    [sample] = _samples(SearchConfig(fpath="x", leaf_max=1, max_samples_min=1.0, criteria="entropy"), count=1)
    assert (sample["min_samples_leaf"], sample["max_samples"], sample["criterion"]) == (1, 1.0, "entropy")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"leaf_max": -1}, "leaf_max must be at least 1"),  # 0 leaves the bound to the spec
        ({"max_samples_min": 1.5}, "max_samples_min must be a fraction"),
        ({"criteria": "gini,mse"}, "unknown criteria mse"),
        ({"criteria": ","}, "unknown criteria"),
    ],
)
def test_bad_bounds_are_one_line(change, words):
    with pytest.raises(TrainerError, match=words):
        SearchConfig(fpath="x", **change).validate()


def test_hyperopt_sample_becomes_typed_params():
    params = ForestParams.from_mapping(
        {
            "n_estimators": 20.0,
            "min_samples_leaf": np.float64(4.0),
            "max_samples": np.float64(0.7),
            "criterion": "entropy",
        }
    )
    assert (params.min_samples_leaf, params.max_samples, params.criterion) == (4, 0.7, "entropy")
    assert isinstance(params.min_samples_leaf, int)
    with pytest.raises(TrainerError, match="max_samples must be a fraction"):
        ForestParams(max_samples=1.5).validate()
    with pytest.raises(TrainerError, match="unknown criterion 'mse'"):
        ForestParams(criterion="mse").validate()


def test_sklearn_fits_what_the_params_say(small_airline):
    """Each new parameter changes the forest scikit-learn builds: leaves hold >= min_samples_leaf bootstrap rows,
    each tree's root sees max_samples of the rows, and the criterion is the one asked for."""
    import pandas as pd

    table = pd.read_parquet(small_airline)
    x, y = table.drop(columns=["ArrDelayBinary"]).astype("float32"), table["ArrDelayBinary"].to_numpy()
    params = ForestParams(n_estimators=5, max_depth=20, min_samples_leaf=40, max_samples=0.3, criterion="entropy")
    forest = RandomForestClassifier(**SklearnEngine.estimator_kwargs(params.validate(), seed=0)).fit(x, y)
    for tree in forest.estimators_:
        structure = tree.tree_
        leaves = structure.children_left == -1
        # bootstrap rows repeat; sklearn counts distinct rows in n_node_samples and draws in weighted_n_node_samples
        assert structure.weighted_n_node_samples[leaves].min() >= 40
        assert structure.weighted_n_node_samples[0] == pytest.approx(0.3 * len(y), abs=1)
        assert tree.criterion == "entropy"
    assert SklearnEngine().logged_params(params)["criterion"] == "entropy"


def test_cuml_kwargs_use_cumls_names_for_the_same_settings():
    params = ForestParams(min_samples_leaf=7, max_samples=0.8, criterion="entropy", n_bins=64, n_streams=2)
    kwargs = CumlEngine.estimator_kwargs(params, seed=1)
    assert kwargs["split_criterion"] == "entropy" and "criterion" not in kwargs
    assert (kwargs["min_samples_leaf"], kwargs["max_samples"], kwargs["n_bins"]) == (7, 0.8, 64)
    # the settings both engines share reach both, so runs of either engine are comparable in MLflow
    shared = SklearnEngine.estimator_kwargs(params, seed=1)
    for name in ("n_estimators", "max_depth", "max_features", "min_samples_leaf", "max_samples"):
        assert kwargs[name] == shared[name]
