"""Tree ensembles on CPU or GPU behind one interface: the *engine* is the device, the *family* the model.

Two families (``model.family`` of the search spec): ``random_forest`` (scikit-learn on CPU, cuML on GPU) and
``xgboost`` (XGBoost's ``hist`` trees; ``device=cpu`` from the ``xgboost-cpu`` wheel in the venv,
``device=cuda`` from the CUDA build RAPIDS ships in the training image). The engine ``sklearn`` is the CPU one,
``cuml`` the GPU one, whatever the family; one :class:`ForestParams` carries either family's settings, so the
search, the trials, the refit, resume and Ray see one type. Both forest engines take the same hyperparameter
names (``n_estimators``, ``max_depth``, ``max_features``), so runs of either are comparable in MLflow; cuML adds
its own ``n_bins`` (quantile bins per feature) and ``n_streams`` (CUDA streams building trees in parallel). The
engine, the library and its version and the device are run tags.

Threads: an engine fits with ``threads`` CPU threads (scikit-learn ``n_jobs``, XGBoost ``nthread``); ``None``
means every core of the machine (:func:`airline_hpo.search.driver.trial_threads` decides from
``cpus_per_trial``).

GPU detection comes first and does not import RAPIDS: importing cuDF/cuML on a machine without a GPU fails, and
``cuml.accel``'s behaviour there is undocumented. We ask the CUDA driver (``libcuda``) directly, which is present
exactly where a GPU is usable.

A cuML forest is logged through ``as_sklearn()`` (cuML's interop conversion), so the registered model is a plain
scikit-learn forest that ``mlflow models serve`` runs on any CPU.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from airline_hpo.errors import TrainerError

ENGINE_CHOICES = ("auto", "cuml", "sklearn")

#: Model families (the spec's ``model.family``); each engine fits both.
FAMILIES = ("random_forest", "xgboost")

#: What the trainer needs from RAPIDS; the training image has both.
RAPIDS_MODULES = ("cudf", "cuml")


#: Split criteria both engines implement (scikit-learn ``criterion``, cuML ``split_criterion``).
CRITERIA = ("gini", "entropy")


@dataclass(frozen=True)
class ForestParams:
    """One configuration. ``n_bins``/``n_streams`` only reach cuML; scikit-learn splits on exact thresholds.

    ``max_samples`` is the bootstrap sample's share of the training rows, ``min_samples_leaf`` the fewest rows a
    leaf may hold, ``criterion`` the impurity a split minimizes; both engines take all three."""

    n_estimators: int = 100
    max_depth: int = 12
    max_features: float = 0.8
    n_bins: int = 128
    n_streams: int = 4
    min_samples_leaf: int = 1
    max_samples: float = 1.0
    criterion: str = "gini"
    #: ``random_forest`` uses the fields above; ``xgboost`` uses n_estimators, max_depth and the four below.
    family: str = "random_forest"
    learning_rate: float = 0.3
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    min_child_weight: float = 1.0

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ForestParams:
        """Build from hyperopt's sample (numpy scalars, floats for quantised ints) or parsed CLI values."""
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        ints = {"n_estimators", "max_depth", "n_bins", "n_streams", "min_samples_leaf"}
        texts = {"criterion", "family"}
        cleaned = {k: str(v) if k in texts else round(float(v)) if k in ints else float(v) for k, v in known.items()}
        return cls(**cleaned)

    def validate(self) -> ForestParams:
        if (
            self.n_estimators < 1
            or self.max_depth < 1
            or self.n_bins < 2
            or self.n_streams < 1
            or self.min_samples_leaf < 1
        ):
            raise TrainerError(
                f"invalid forest parameters {asdict(self)}",
                "n_estimators, max_depth, n_streams and min_samples_leaf must be >= 1, n_bins >= 2",
            )
        for name in ("max_features", "max_samples"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise TrainerError(
                    f"{name} must be a fraction in (0, 1] (got {value})",
                    f"pass e.g. --{name.replace('_', '-')} 0.8",
                )
        if self.criterion not in CRITERIA:
            raise TrainerError(f"unknown criterion {self.criterion!r}", f"use one of {', '.join(CRITERIA)}")
        if self.family not in FAMILIES:
            raise TrainerError(f"unknown model family {self.family!r}", f"use one of {', '.join(FAMILIES)}")
        for name in ("subsample", "colsample_bytree"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise TrainerError(f"{name} must be a fraction in (0, 1] (got {getattr(self, name)})", "e.g. 0.8")
        if self.learning_rate <= 0 or self.min_child_weight < 0:
            raise TrainerError(
                f"learning_rate must be positive and min_child_weight 0 or more (got {self.learning_rate}, "
                f"{self.min_child_weight})",
                "e.g. learning_rate 0.1, min_child_weight 1",
            )
        return self

    def xgboost(self) -> dict[str, Any]:
        """The parameters an XGBoost trial takes, by XGBoost's names (logged on its runs, with ``family``)."""
        names = ("n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree", "min_child_weight")
        return {"family": self.family, **{name: getattr(self, name) for name in names}}

    def common(self) -> dict[str, Any]:
        """The parameters both engines take, by our names (logged on every run of either engine)."""
        names = ("n_estimators", "max_depth", "max_features", "min_samples_leaf", "max_samples", "criterion")
        return {name: getattr(self, name) for name in names}


def gpu_names() -> list[str]:
    """Names of the CUDA devices the driver reports; [] without a driver or a device. Never imports RAPIDS."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in {"", "-1"}:
        return []
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return []
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    names = []
    for index in range(count.value):
        device = ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        if cuda.cuDeviceGet(ctypes.byref(device), index) == 0 and cuda.cuDeviceGetName(name, 256, device) == 0:
            names.append(name.value.decode(errors="replace"))
        else:
            names.append(f"cuda:{index}")
    return names


def rapids_installed() -> bool:
    """Whether cuDF and cuML can be imported (checked by finding them, not importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in RAPIDS_MODULES)


def select_engine(requested: str, gpus: list[str] | None = None, rapids: bool | None = None) -> str:
    """``auto`` -> cuML when a GPU and RAPIDS are both there, else scikit-learn; ``cuml`` without them is an
    error that says what to do, raised before any data is read."""
    if requested not in ENGINE_CHOICES:
        raise TrainerError(f"unknown engine {requested!r}", f"use one of {', '.join(ENGINE_CHOICES)}")
    if requested == "sklearn":
        return "sklearn"
    gpus = gpu_names() if gpus is None else gpus
    rapids = rapids_installed() if rapids is None else rapids
    if requested == "cuml":
        if not gpus:
            raise TrainerError(
                "engine=cuml needs an NVIDIA GPU and none was found",
                "run on a GPU node (the Kubernetes job template requests one) or use engine=sklearn or auto",
            )
        if not rapids:
            raise TrainerError(
                "engine=cuml needs RAPIDS (cudf, cuml), which is not installed here",
                "run in the training image (trainer/Dockerfile) or use engine=sklearn",
            )
        return "cuml"
    return "cuml" if gpus and rapids else "sklearn"


class Engine(Protocol):
    """What the search needs from an engine; data goes to the device once (:meth:`to_device`), not per trial."""

    name: str
    #: CPU threads per fit (None: every core) and the family named in the tags
    threads: int | None
    family: str

    def to_device(self, features: Any, label: np.ndarray | None = None) -> tuple[Any, Any]: ...

    def fit(self, params: ForestParams, x: Any, y: Any, seed: int) -> Any: ...

    def predict_late_probability(self, model: Any, x: Any) -> np.ndarray: ...

    def to_sklearn(self, model: Any) -> Any: ...

    def feature_importances(self, model: Any) -> np.ndarray: ...

    def logged_params(self, params: ForestParams) -> dict[str, Any]: ...

    def tags(self) -> dict[str, str]: ...


def xgboost_kwargs(params: ForestParams, seed: int, device: str, threads: int | None) -> dict[str, Any]:
    """``XGBClassifier`` arguments: ``hist`` trees on ``device`` (``cpu`` or ``cuda``), ``threads`` CPU threads
    (``None``: every core, XGBoost's own default), the trial's seed."""
    return {
        "n_estimators": params.n_estimators,
        "max_depth": params.max_depth,
        "learning_rate": params.learning_rate,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "min_child_weight": params.min_child_weight,
        "tree_method": "hist",
        "device": device,
        "n_jobs": threads,  # XGBoost's sklearn name for nthread
        "random_state": seed,
        "objective": "binary:logistic",
        "eval_metric": "logloss",
    }


def fit_xgboost(params: ForestParams, x: Any, y: Any, seed: int, device: str, threads: int | None) -> Any:
    from xgboost import XGBClassifier

    return XGBClassifier(**xgboost_kwargs(params, seed, device, threads)).fit(x, y)


def xgboost_tags() -> dict[str, str]:
    """Which XGBoost build fitted the model (``xgboost-cpu`` here, RAPIDS' CUDA build in the image)."""
    import xgboost

    return {
        "engine.library": "xgboost",
        "engine.version": xgboost.__version__,
        "engine.xgboost_cuda": str(bool(xgboost.build_info().get("USE_CUDA"))).lower(),
    }


class SklearnEngine:
    """The CPU engine: scikit-learn's forest, or XGBoost with ``device=cpu``."""

    name = "sklearn"
    threads: int | None = None
    family: str = "random_forest"

    def __init__(self, threads: int | None = None, family: str = "random_forest") -> None:
        #: CPU threads per fit (None: every core); the family only names the library in the run's tags.
        self.threads = threads
        self.family = family

    def to_device(self, features: Any, label: np.ndarray | None = None) -> tuple[Any, Any]:
        return features, label

    @staticmethod
    def estimator_kwargs(params: ForestParams, seed: int, threads: int | None = None) -> dict[str, Any]:
        return {
            "n_estimators": params.n_estimators,
            "max_depth": params.max_depth,
            "max_features": params.max_features,
            "min_samples_leaf": params.min_samples_leaf,
            "max_samples": params.max_samples,  # a share of the rows, bootstrap (the default) being on
            "criterion": params.criterion,
            "random_state": seed,
            "n_jobs": threads or -1,  # -1: every core
        }

    def fit(self, params: ForestParams, x: Any, y: Any, seed: int) -> Any:
        if params.family == "xgboost":
            return fit_xgboost(params, x, y, seed, "cpu", self.threads)
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**self.estimator_kwargs(params, seed, self.threads)).fit(x, y)

    def predict_late_probability(self, model: Any, x: Any) -> np.ndarray:
        return np.asarray(model.predict_proba(x)[:, 1])

    def to_sklearn(self, model: Any) -> Any:
        return model

    def feature_importances(self, model: Any) -> np.ndarray:
        return np.asarray(model.feature_importances_)

    def logged_params(self, params: ForestParams) -> dict[str, Any]:
        return params.xgboost() if params.family == "xgboost" else params.common()

    def tags(self) -> dict[str, str]:
        import sklearn

        library = (
            xgboost_tags()
            if self.family == "xgboost"
            else {"engine.library": "scikit-learn", "engine.version": sklearn.__version__}
        )
        threads = "all" if self.threads is None else str(self.threads)
        return {
            "engine": self.name,
            **library,
            "model.family": self.family,
            "engine.threads": threads,
            "device": f"cpu: {platform.processor() or platform.machine()} x{os.cpu_count()}",
        }


class CumlEngine:
    """The GPU engine on cuDF input: cuML's random forest, or XGBoost with ``device=cuda`` (RAPIDS' build).
    Only constructed after :func:`select_engine` found a GPU."""

    name = "cuml"
    threads: int | None = None
    family: str = "random_forest"

    def __init__(self, threads: int | None = None, family: str = "random_forest") -> None:
        import cudf  # noqa: F401  (fail here, once, rather than in the first trial)
        import cuml  # noqa: F401

        self.threads = threads
        self.family = family

    def to_device(self, features: Any, label: np.ndarray | None = None) -> tuple[Any, Any]:
        """Features loaded for this engine are cuDF already (``load_dataset(..., engine="cuml")``) and stay on
        the GPU; pandas frames (tests, the serving example) are copied over once."""
        import cudf

        y = None if label is None else cudf.Series(np.asarray(label, dtype=np.int32))
        x = features if isinstance(features, cudf.DataFrame) else cudf.DataFrame.from_pandas(features)
        if any(dtype != np.float32 for dtype in x.dtypes):
            x = x.astype(np.float32)
        return x, y

    @staticmethod
    def estimator_kwargs(params: ForestParams, seed: int) -> dict[str, Any]:
        return {
            "n_estimators": params.n_estimators,
            "max_depth": params.max_depth,
            "max_features": params.max_features,
            "min_samples_leaf": params.min_samples_leaf,
            "max_samples": params.max_samples,
            "split_criterion": params.criterion,  # cuML's name; it takes "gini" and "entropy" as scikit-learn does
            "n_bins": params.n_bins,
            "n_streams": params.n_streams,
            "random_state": seed,
            "output_type": "numpy",
        }

    def fit(self, params: ForestParams, x: Any, y: Any, seed: int) -> Any:
        if params.family == "xgboost":  # XGBoost reads cuDF frames on the GPU directly
            return fit_xgboost(params, x, y, seed, "cuda", self.threads)
        from cuml.ensemble import RandomForestClassifier

        return RandomForestClassifier(**self.estimator_kwargs(params, seed)).fit(x, y)

    def predict_late_probability(self, model: Any, x: Any) -> np.ndarray:
        return np.asarray(model.predict_proba(x))[:, 1]

    def to_sklearn(self, model: Any) -> Any:
        """A CPU model: cuML's forest converted, XGBoost's model told to predict on the CPU (serving has no GPU)."""
        if is_xgboost(model):
            return model.set_params(device="cpu")
        return model.as_sklearn()

    def feature_importances(self, model: Any) -> np.ndarray:
        """Read from the cuML model itself: after ``as_sklearn()`` they are NaN (cuML's documented limit)."""
        return np.asarray(model.feature_importances_)

    def logged_params(self, params: ForestParams) -> dict[str, Any]:
        if params.family == "xgboost":
            return params.xgboost()
        return {**params.common(), "n_bins": params.n_bins, "n_streams": params.n_streams}

    def tags(self) -> dict[str, str]:
        import cudf
        import cuml

        names = gpu_names()
        library = (
            xgboost_tags()
            if self.family == "xgboost"
            else {"engine.library": "cuml", "engine.version": cuml.__version__}
        )
        return {
            "engine": self.name,
            **library,
            "model.family": self.family,
            "engine.cudf_version": cudf.__version__,
            "device": f"gpu: {names[0] if names else 'unknown'}",
        }


def is_xgboost(model: Any) -> bool:
    """Whether ``model`` is XGBoost's (checked by its module: importing xgboost just to ask would cost time)."""
    return type(model).__module__.startswith("xgboost")


def make_engine(requested: str, threads: int | None = None, family: str = "random_forest") -> Engine:
    """Select (raising a one-line error for impossible choices) and construct the engine; ``threads`` CPU threads
    per fit (None: every core), ``family`` the model family it will fit (named in its tags)."""
    if select_engine(requested) == "cuml":
        return CumlEngine(threads, family)
    return SklearnEngine(threads, family)
