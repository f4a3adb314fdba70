"""Probe (eighteenth session, tuning seeds only): warm starts in the certifying round too.

``train.warm_start_epochs`` continues the previous classifier only in the rounds that cannot auto-label
(:mod:`tbal.training.warm_start`); the certifying round trains a fresh one. On the mixed image case that
fresh classifier, trained on the queries the continued ones chose, was far worse than they were
(BENCHMARKS.md, "Issue 11, eighteenth session"). This probe lets every round continue (the certifying
round's first classifier included; its self-trained second one stays fresh) by patching
``tbal.loop.warm_start_applies`` for this process only, then runs ``bench/certificate_ceiling.py`` with the
arguments given. Not a library setting: a measurement of whether one is worth adding.

Usage: .venv/bin/python bench/warm_certifying_probe.py --data /tmp/mixed_mnist.npz --preset mnist-paper \
           --pool-size all --seeds 10 --out DIR --set train.warm_start_epochs=20
"""

from __future__ import annotations

import sys
from pathlib import Path

import tbal.loop as loop
from tbal.config import TBALConfig
from tbal.models import Classifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
import certificate_ceiling


def _every_round(config: TBALConfig, may_auto_label: bool, previous: Classifier | None) -> bool:
    """Continue whenever warm starts are on and there is a plain classifier to continue."""
    on = config.train.warm_start_epochs > 0 and config.model.uncertainty == "none"
    return on and previous is not None


if __name__ == "__main__":
    loop.warm_start_applies = _every_round  # type: ignore[assignment]
    certificate_ceiling.main()
