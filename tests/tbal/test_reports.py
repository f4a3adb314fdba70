"""The typed round report (tbal.reports) and the round artifact's input description (tbal.artifacts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tbal.artifacts import RoundArtifacts, load_artifacts, save_artifacts
from tbal.confidence import make_confidence
from tbal.config import ConfidenceConfig, ModelConfig
from tbal.models import build_model
from tbal.reports import ClassReport, LabelReview, Reliability, RoundReport, RoundReportError, TrueError


def _report(**overrides: Any) -> RoundReport:
    values: dict[str, Any] = {
        "pool_size": 100,
        "auto_labeled": 40,
        "auto_labeled_total": 40,
        "coverage": 0.4,
        "coverage_total": 0.3,
        "validation_labels": 50,
        "validation_removed": 10,
        "training_labels": 20,
        "human_labels": 70,
        "queries": 10,
        "thresholds": [
            ClassReport("a", 0, 0.9, 0.01, 0.04, 30, 25),
            ClassReport("b", 1, None, None, None, 0, 0),
        ],
        "pooled_estimated_error": 0.01,
        "pooled_error_bound": 0.04,
        "delta_used": 0.01,
        "epsilon": 0.05,
        "delta": 0.05,
        "bound": "valid",
        "guarantee": "pooled",
        "rounds_total": 3,
        "delta_round": 0.015,
        "delta_schedule": "uniform",
        "seed": 123,
        "input_scale": 16.0,
        "true_error": TrueError(0.0, 40, 0, 0.0, 40, 0),
        "auto_labeled_round_rows": 40,
        "reliability": Reliability("D_th", 25, 0.1, [0.0, 0.5, 1.0], [None, 1.0], [None, 0.9], [0, 25]),
        "evaluation": {"source": "validation", "accuracy": 0.9},
        "label_review": LabelReview("aum", 0.05, 20, 1, 1, 1, [7], [-0.5], [0], [1]),
        "audit_sampled": 0,
        "validation_left": 40,
        "validation_queued": 0,
        "timings": {"train": 0.5},
    }
    values.update(overrides)
    return RoundReport(**values)


def test_report_round_trips_through_json_with_the_api_keys() -> None:
    report = _report()
    stored = report.to_dict()
    assert stored["thresholds"][0] == {
        "class": "a",
        "index": 0,
        "threshold": 0.9,
        "estimated_error": 0.01,
        "error_bound": 0.04,
        "n_points": 30,
        "auto_labeled": 25,
    }
    assert stored["true_error"]["round_known"] == 40 and stored["label_review"]["item_id"] == [7]
    assert "encoder" not in stored  # only text projects record one
    assert RoundReport.from_dict(stored) == report
    text = _report(encoder="hashing:64")
    assert text.to_dict()["encoder"] == "hashing:64" and RoundReport.from_dict(text.to_dict()) == text


def test_an_older_report_parses_with_the_later_fields_none() -> None:
    stored = _report().to_dict()
    for later in (
        "delta_round",
        "delta_schedule",
        "input_scale",
        "reliability",
        "evaluation",
        "label_review",
    ):
        del stored[later]
    report = RoundReport.from_dict(stored)
    assert report.delta_round is None and report.label_review is None and report.delta == 0.05


@pytest.mark.parametrize("missing", ["delta", "epsilon", "thresholds"])
def test_a_report_without_a_required_field_is_refused_not_defaulted(missing: str) -> None:
    stored = _report().to_dict()
    del stored[missing]
    with pytest.raises(RoundReportError, match=missing):
        RoundReport.from_dict(stored)
    with pytest.raises(RoundReportError, match="JSON object"):
        RoundReport.from_dict(None)


@pytest.mark.parametrize(("scale", "encoder"), [(16.0, None), (None, "hashing:64")])
def test_artifacts_carry_what_prediction_needs(
    tmp_path: Path, scale: float | None, encoder: str | None
) -> None:
    model = build_model(ModelConfig(name="mlp", hidden=(4,)), (3,), 2)
    artifacts = RoundArtifacts(
        model=model,
        confidence=make_confidence(ConfidenceConfig(), 2),
        thresholds=np.array([0.5, np.inf]),
        model_config=ModelConfig(name="mlp", hidden=(4,)),
        input_shape=(3,),
        num_classes=2,
        input_scale=scale,
        encoder=encoder,
    )
    save_artifacts(tmp_path / "r.pt", artifacts)
    loaded = load_artifacts(tmp_path / "r.pt")
    assert loaded.input_scale == scale and loaded.encoder == encoder

    # a format-1 file (before the input description) still loads, without one
    payload = torch.load(tmp_path / "r.pt", weights_only=False)
    payload["format_version"] = 1
    del payload["input_scale"], payload["encoder"]
    torch.save(payload, tmp_path / "old.pt")
    old = load_artifacts(tmp_path / "old.pt")
    assert old.input_scale is None and old.encoder is None and np.isinf(old.thresholds[1])
