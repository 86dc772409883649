"""The GPU path as it runs: cuDF loading, cuML's real constructor, a 2-trial search with engine=cuml, and the
registered (converted) scikit-learn model against cuML's own probabilities.

Needs an NVIDIA GPU and RAPIDS (the training image); skipped elsewhere, with the reason.
"""

from __future__ import annotations

import inspect

import mlflow
import numpy as np
import pandas as pd
import pytest
from airline_hpo.data import loading as data_mod
from airline_hpo.data import storage
from airline_hpo.errors import TrainerError
from airline_hpo.model import engines
from airline_hpo.model.engines import CumlEngine, ForestParams
from airline_hpo.search import driver
from mlflow import MlflowClient

GPU_READY = bool(engines.gpu_names()) and engines.rapids_installed()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not GPU_READY, reason="needs an NVIDIA GPU and RAPIDS (cudf, cuml): none here"),
]


def test_our_constructor_arguments_exist_in_cumls_signature():
    """Every keyword we pass must be a named parameter of cuML's RandomForestClassifier (not swallowed by
    ``**kwargs``), and cuML must accept the combination."""
    from cuml.ensemble import RandomForestClassifier

    signature = inspect.signature(RandomForestClassifier)
    named = {
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }
    kwargs = CumlEngine.estimator_kwargs(ForestParams(n_estimators=7, max_depth=5, n_bins=32, n_streams=2), seed=3)
    assert set(kwargs) <= named, sorted(set(kwargs) - named)
    model = RandomForestClassifier(**kwargs)
    assert {k: model.get_params()[k] for k in kwargs} == kwargs


@pytest.mark.integration
def test_cudf_load_from_s3_equals_the_cpu_load(stack_env, small_airline, tmp_path):
    import cudf

    uri = f"s3://{stack_env.bucket}/tests/{stack_env.experiment}/airline.parquet"
    storage.upload_file(small_airline, uri)
    gpu = data_mod.load_dataset(uri, engine="cuml")
    cpu = data_mod.load_dataset(uri)
    assert isinstance(gpu.features, cudf.DataFrame)  # no pandas on the way
    pd.testing.assert_frame_equal(gpu.features.to_pandas(), cpu.features)
    np.testing.assert_array_equal(gpu.label, cpu.label)

    table = pd.read_parquet(small_airline)
    table.loc[[5, 6], "Distance"] = np.nan
    table.to_parquet(tmp_path / "nan.parquet", index=False)
    with pytest.raises(TrainerError, match=r"in 2 of 3,000 rows \(Distance 2 missing\)"):
        data_mod.load_dataset(str(tmp_path / "nan.parquet"), engine="cuml")
    dropped = data_mod.load_dataset(str(tmp_path / "nan.parquet"), engine="cuml", nonfinite="drop")
    assert dropped.rows == 2998 and dropped.dropped_rows == 2


@pytest.mark.integration
def test_two_trial_cuml_search_registers_a_model_with_cumls_probabilities(stack_env, small_airline, monkeypatch):
    """The registered model is cuML's forest converted by ``as_sklearn()``: on every row of the file (the test
    rows among them) it must give cuML's own probabilities, and it must reload through pyfunc."""
    import cudf

    conversions: list[tuple[object, object]] = []
    real_to_sklearn = CumlEngine.to_sklearn

    def recording_to_sklearn(self, model):
        converted = real_to_sklearn(self, model)
        conversions.append((model, converted))
        return converted

    monkeypatch.setattr(CumlEngine, "to_sklearn", recording_to_sklearn)
    name = f"{stack_env.experiment}-gpu"
    config = driver.SearchConfig(
        fpath=str(small_airline), max_evals=2, engine="cuml", model_name=name, trees_max=20, depth_max=6
    )
    driver.run_search(config)

    version = MlflowClient().get_model_version_by_alias(name, "champion")
    assert MlflowClient().get_run(version.run_id).data.tags["engine"] == "cuml"
    cuml_model, _ = conversions[-1]  # the conversion that was logged and registered
    registered = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    columns = registered.metadata.get_input_schema().input_names()  # the pre-departure features it was fitted on
    rows = data_mod.load_dataset(str(small_airline)).features[columns]
    cuml_probability = np.asarray(cuml_model.predict_proba(cudf.DataFrame.from_pandas(rows)))[:, 1]
    served = registered.predict(rows.astype("float64"), params={"output": "probability"})
    np.testing.assert_allclose(np.asarray(served), cuml_probability, atol=1e-5)


def test_same_seed_same_forest_with_several_streams(small_airline):
    """cuML RF is deterministic with a seed for any n_streams since cuML PR 7140 (2025); n_streams=1 is not needed."""
    dataset = data_mod.load_dataset(str(small_airline), engine="cuml")
    engine = CumlEngine()
    x, y = engine.to_device(dataset.features, dataset.label)
    params = ForestParams(n_estimators=16, max_depth=8, n_bins=64, n_streams=4)
    first = engine.predict_late_probability(engine.fit(params, x, y, seed=11), x)
    second = engine.predict_late_probability(engine.fit(params, x, y, seed=11), x)
    np.testing.assert_array_equal(first, second)


def test_xgboost_fits_on_the_gpu_with_device_cuda_and_serves_on_the_cpu(small_airline):
    """The GPU engine fits XGBoost with ``device=cuda`` (RAPIDS' CUDA build) on cuDF input; the model it hands
    to the registry predicts on the CPU with the same probabilities."""
    import xgboost

    assert xgboost.build_info()["USE_CUDA"], "the training image's xgboost must be RAPIDS' CUDA build"
    dataset = data_mod.load_dataset(str(small_airline), engine="cuml")
    engine = CumlEngine(threads=1, family="xgboost")
    x, y = engine.to_device(dataset.features, dataset.label)
    params = ForestParams(family="xgboost", n_estimators=20, max_depth=4, learning_rate=0.2)
    model = engine.fit(params, x, y, seed=5)
    assert model.get_params()["device"] == "cuda"
    on_gpu = engine.predict_late_probability(model, x)
    on_cpu = engine.to_sklearn(model)
    assert on_cpu.get_params()["device"] == "cpu"
    cpu_probability = on_cpu.predict_proba(dataset.features.to_pandas().astype(np.float32))[:, 1]
    np.testing.assert_allclose(cpu_probability, on_gpu, atol=1e-5)
    assert engine.tags()["engine.library"] == "xgboost" and engine.tags()["engine.xgboost_cuda"] == "true"


@pytest.mark.integration
def test_two_trial_xgboost_search_on_the_gpu_registers_a_cpu_model(stack_env, small_airline, tmp_path):
    import yaml
    from airline_hpo.search import spec as spec_mod

    document = yaml.safe_load((spec_mod.PROJECT_DIR / spec_mod.DEFAULT_SPEC).read_text())
    document["model"] = {"family": "xgboost", "space": {"n_estimators": [10, 30], "max_depth": [2, 4]}}
    spec = tmp_path / "xgboost.yaml"
    spec.write_text(yaml.safe_dump(document))
    name = f"{stack_env.experiment}-gpu-xgb"
    config = driver.SearchConfig(spec=str(spec), fpath=str(small_airline), max_evals=2, engine="cuml", model_name=name)
    result = driver.run_search(config)
    tags = MlflowClient().get_run(result.parent_run_id).data.tags
    assert tags["engine"] == "cuml" and tags["model.family"] == "xgboost" and tags["device"].startswith("gpu")
    registered = mlflow.pyfunc.load_model(f"models:/{name}/{result.registered.version}")
    probability = registered.predict(result.split.x_test.astype("float64"), params={"output": "probability"})
    assert ((np.asarray(probability) >= 0) & (np.asarray(probability) <= 1)).all()
