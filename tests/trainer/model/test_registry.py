"""Reading a registered model's MLmodel through the tracking server without leaving a copy behind."""

from __future__ import annotations

import shutil
import tempfile

import pytest


@pytest.mark.integration
def test_model_info_reads_what_mlflow_reads_and_leaves_no_directory(stack_env, small_airline, tmp_path, monkeypatch):
    """``mlflow.models.get_model_info`` (``Model.load``) downloads MLmodel into ``tempfile.mkdtemp()`` and keeps
    it: ``serve_check`` and ``score`` called it on every run. ``registry.model_info`` gives the same answer for a
    registered version, an alias and a logged model, and removes its download."""
    import mlflow
    from airline_hpo.data import loading as data_mod
    from airline_hpo.model import registry
    from sklearn.ensemble import RandomForestClassifier

    dataset = data_mod.load_dataset(str(small_airline))
    x = dataset.features.head(300)
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, dataset.label[:300])
    with mlflow.start_run():
        logged = registry.log_model(forest, x.head(5), "model-info-test", threshold=0.3)
    registry.set_alias("model-info-test", "champion", logged.version)

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    for uri in (f"models:/model-info-test/{logged.version}", "models:/model-info-test@champion", logged.model_uri):
        ours = registry.model_info(uri)
        assert list(scratch.iterdir()) == [], uri
        theirs = mlflow.models.get_model_info(uri)
        assert len(list(scratch.iterdir())) == 1, "MLflow's own call keeps its download (why the helper exists)"
        for left in scratch.iterdir():
            shutil.rmtree(left)
        assert ours.signature == theirs.signature and ours.flavors == theirs.flavors, uri
        assert ours.flavors["python_function"]["config"]["threshold"] == 0.3
