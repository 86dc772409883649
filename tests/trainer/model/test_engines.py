"""Engine selection and parameter mapping (runs anywhere), and the cuML path itself (needs a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
from airline_hpo.errors import TrainerError
from airline_hpo.model import engines
from airline_hpo.model.engines import CumlEngine, ForestParams, SklearnEngine, select_engine

GPU = ["NVIDIA H100"]


@pytest.mark.parametrize(
    ("requested", "gpus", "rapids", "chosen"),
    [
        ("sklearn", GPU, True, "sklearn"),
        ("sklearn", [], False, "sklearn"),
        ("auto", GPU, True, "cuml"),
        ("auto", [], True, "sklearn"),
        ("auto", GPU, False, "sklearn"),
        ("cuml", GPU, True, "cuml"),
    ],
)
def test_selection(requested, gpus, rapids, chosen):
    assert select_engine(requested, gpus=gpus, rapids=rapids) == chosen


@pytest.mark.parametrize(
    ("requested", "gpus", "rapids", "words"),
    [
        ("xgboost", GPU, True, ["unknown engine 'xgboost'", "auto, cuml, sklearn"]),
        ("cuml", [], True, ["needs an NVIDIA GPU", "engine=sklearn"]),
        ("cuml", GPU, False, ["needs RAPIDS", "training image"]),
    ],
)
def test_impossible_selection_is_a_one_line_error(requested, gpus, rapids, words):
    with pytest.raises(TrainerError) as caught:
        select_engine(requested, gpus=gpus, rapids=rapids)
    assert "\n" not in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def test_detection_respects_hidden_devices(monkeypatch):
    """CUDA_VISIBLE_DEVICES="" hides every GPU: detection must say none, without importing RAPIDS."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert engines.gpu_names() == []
    assert select_engine("auto") == "sklearn"
    with pytest.raises(TrainerError, match="needs an NVIDIA GPU"):
        select_engine("cuml")


def test_params_from_hyperopt_sample():
    sample = {"n_estimators": np.float64(40.0), "max_depth": np.int64(7), "max_features": np.float64(0.5)}
    params = ForestParams.from_mapping(sample)
    assert params == ForestParams(n_estimators=40, max_depth=7, max_features=0.5)
    assert isinstance(params.n_estimators, int) and isinstance(params.max_depth, int)


@pytest.mark.parametrize(
    "bad", [ForestParams(n_estimators=0), ForestParams(max_depth=0), ForestParams(max_features=1.5)]
)
def test_invalid_params(bad):
    with pytest.raises(TrainerError):
        bad.validate()


def test_same_hyperparameter_names_for_both_engines():
    params = ForestParams(n_estimators=30, max_depth=6, max_features=0.4, n_bins=64, n_streams=2)
    sk = SklearnEngine.estimator_kwargs(params, seed=3)
    cu = CumlEngine.estimator_kwargs(params, seed=3)
    shared = {"n_estimators": 30, "max_depth": 6, "max_features": 0.4, "random_state": 3}
    assert shared.items() <= sk.items() and shared.items() <= cu.items()
    assert cu["n_bins"] == 64 and cu["n_streams"] == 2 and "n_bins" not in sk
    logged_sk = SklearnEngine().logged_params(params)
    assert logged_sk == {"n_estimators": 30, "max_depth": 6, "max_features": 0.4} | {
        "min_samples_leaf": 1, "max_samples": 1.0, "criterion": "gini"
    }  # fmt: skip


def test_sklearn_kwargs_are_accepted_by_sklearn():
    from sklearn.ensemble import RandomForestClassifier

    RandomForestClassifier(**SklearnEngine.estimator_kwargs(ForestParams(), seed=0))


def test_sklearn_engine_fits_and_tags(small_airline):
    from airline_hpo.data import loading as data_mod
    from airline_hpo.data import splits

    split = splits.make_split(data_mod.load_dataset(str(small_airline)), "random", test_size=0.2, seed=0)
    engine = SklearnEngine()
    model = engine.fit(ForestParams(n_estimators=5, max_depth=4), split.x_train, split.y_train, seed=0)
    probability = engine.predict_late_probability(model, split.x_test)
    assert probability.shape == (600,) and ((probability >= 0) & (probability <= 1)).all()
    assert engine.feature_importances(model).sum() == pytest.approx(1.0)
    tags = engine.tags()
    assert tags["engine"] == "sklearn" and tags["engine.library"] == "scikit-learn"
    assert tags["engine.version"] and tags["device"].startswith("cpu")


GPU_READY = bool(engines.gpu_names()) and engines.rapids_installed()


@pytest.mark.gpu
@pytest.mark.skipif(not GPU_READY, reason="needs an NVIDIA GPU and RAPIDS (cudf, cuml): none here")
def test_cuml_engine_on_gpu(small_airline):
    from airline_hpo.data import loading as data_mod
    from airline_hpo.data import splits

    assert select_engine("auto") == "cuml"
    split = splits.make_split(data_mod.load_dataset(str(small_airline)), "random", test_size=0.2, seed=0)
    engine = CumlEngine()
    x_train, y_train = engine.to_device(split.x_train, split.y_train)
    x_test, _ = engine.to_device(split.x_test)
    params = ForestParams(n_estimators=10, max_depth=6, max_features=0.8, n_bins=32, n_streams=1)
    model = engine.fit(params, x_train, y_train, seed=0)
    probability = engine.predict_late_probability(model, x_test)
    assert isinstance(probability, np.ndarray) and probability.shape == (600,)
    importances = engine.feature_importances(model)
    assert importances.shape == (len(split.features),) and np.isfinite(importances).all()  # read before as_sklearn()
    sk_model = engine.to_sklearn(model)
    assert sk_model.predict(split.x_test).shape == (600,)
    assert engine.tags()["device"].startswith("gpu")
