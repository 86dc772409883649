"""The served model's signature: typed where MLflow's schema enforcement accepts what callers send."""

from __future__ import annotations


def test_signature_types_text_and_naive_timestamps_and_leaves_numbers_any():
    """Typed where MLflow's enforcement lets every caller through: text and naive timestamps; numbers Any
    (int64 and float64 frames both reach the model), timezone-aware timestamps Any (MLflow refuses them)."""
    import pandas as pd
    from airline_hpo.model.registry import model_signature

    example = pd.DataFrame(
        {
            "carrier": ["UA", "AA"],
            "when": pd.to_datetime(["2013-01-01 05:00", "2013-01-02 06:00"]),
            "utc": pd.to_datetime(["2013-01-01 05:00", "2013-01-02 06:00"]).tz_localize("UTC"),
            "miles": [1400, 733],
            "share": [0.5, 0.25],
        }
    )
    types = {c.name: getattr(c.type, "name", str(c.type)) for c in model_signature(example).inputs.inputs}
    assert types == {"carrier": "string", "when": "datetime", "utc": "Any", "miles": "Any", "share": "Any"}
