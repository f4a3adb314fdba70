"""One path for raw text (issue 13, items 1 and 6): a CSV of sentences uploaded to a text project and run
by the service (oracle labeler), and the same CSV given to ``tbal run --data FILE.csv --text-column C
--label-column L --encoder E``, make the same rounds: the same float32 features, the same items
auto-labeled with the same labels, the same thresholds, training queries, validation top-ups and δ share
per round. The command's flags are checked to mean exactly the project's settings (one TBALConfig).

Data: 800 real SST-2 training sentences, encoded by ``hashing`` (fast, no model). Hashed words learn
almost nothing from a few hundred labels of arbitrary SST-2 phrases (on the first 800 rows the pool
accuracy stays at 0.48-0.55 and no round certifies anything, even at ε = 0.6), so the set is the first
800 sentences that hold one of a few common sentiment words: there the classifier reaches ~0.65-0.7, two
rounds certify auto-labels at ε = 0.3 and the floor makes three rounds buy validation top-ups. Both
paths on one torch thread (the ``one_thread`` fixture and ``--threads 1``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

import tbal.runs
from app.projects.config import runtime_config
from tbal.cli import build_parser, config_from_args, main
from tbal.loop import RunResult
from tests.app.conftest import (
    Api,
    MakeProject,
    assert_same_rounds,
    library_rounds,
    run_until_budget_spent,
    service_rounds,
    stored_features,
)

SST2 = Path(__file__).resolve().parents[3] / "shared" / "data" / "sst2_minilm.npz"
ROWS = 800
SENTIMENT_WORDS = frozenset({
    "good", "great", "best", "fun", "funny", "beautiful", "love", "enjoyable",
    "bad", "worst", "dull", "boring", "mess", "fails",
})  # fmt: skip
CLASSES = ["neg", "pos"]  # SST-2's 0 / 1; sorted, as ``tbal run`` orders class names read from a file
RUN_SEED = 11
SETTINGS: dict[str, Any] = {
    "encoder": "hashing",
    "validation_size": 300,
    "validation_floor": 280,
    "seed_size": 50,
    "label_budget": 200,
    "batch_size": 50,
    "model": "mlp",
    "hidden": [64],
    "epochs": 20,
    "lr": 0.05,
    "confidence": "softmax",
    "epsilon": 0.3,
    "delta_schedule": "uniform",  # every round may certify: more auto-labeled rounds to compare
    # the population bound: the rest's test certifies most of this small pool in round 1, which leaves
    # one auto-labeling round to compare instead of two or more
    "finite_pool": False,
}
FLAGS = [
    "--encoder", "hashing", "--validation-size", "300", "--set", "loop.validation_floor=280",
    "--seed-size", "50", "--budget", "200", "--batch", "50", "--model", "mlp", "--set", "model.hidden=64",
    "--epochs", "20", "--set", "train.lr=0.05", "--confidence", "softmax", "--epsilon", "0.3",
    "--set", "thresholds.delta_schedule=uniform", "--device", "cpu", "--preset", "none",
    "--set", "thresholds.finite_pool=false",
]  # fmt: skip
"""``tbal run`` flags meaning :data:`SETTINGS` (checked: both give one TBALConfig)."""


@pytest.fixture(scope="module")
def sst2_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first :data:`ROWS` SST-2 training sentences holding a word of :data:`SENTIMENT_WORDS`, as a CSV
    (columns ``sentence``, ``label``: neg / pos)."""
    if not SST2.exists():
        pytest.skip(f"{SST2} is not there (shared/data, see DATA.md)")
    with np.load(SST2) as z:
        texts = bytes(z["text_train_utf8"]).decode("utf-8").split("\n")
        labels = z["y_train"].astype(np.int64)
    rows = [i for i, t in enumerate(texts) if SENTIMENT_WORDS & set(t.split())][:ROWS]
    path = tmp_path_factory.mktemp("sst2") / "sst2.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence", "label"])
        writer.writerows([texts[i], CLASSES[labels[i]]] for i in rows)
    return path


def _service(api: Api, make_project: MakeProject, data: Path) -> int:
    """A text project of :data:`SETTINGS`, the CSV uploaded as a file (encoded now, in file order), rounds
    until the label budget is spent."""
    body = make_project(classes=CLASSES, data_kind="text", input_shape=[], settings=SETTINGS, seed=RUN_SEED)
    pid = int(body["id"])
    upload = api.post(
        f"/api/v1/projects/{pid}/items/texts/upload",
        params={"text_column": "sentence", "label_column": "label", "background": "false"},
        files={"file": (data.name, data.read_bytes())},
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["inserted"] == upload.json()["ground_truth_added"] == ROWS
    run_until_budget_spent(api, pid)
    return pid


def _command(data: Path, cache: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> RunResult:
    """``tbal run`` on the CSV (in process, so that its RunResult, with the rows it auto-labeled, can be
    kept: the JSON it writes has per-round counts, not rows)."""
    kept: list[RunResult] = []
    real = tbal.runs.run_seeds

    def keeping(*args: Any, **kwargs: Any) -> list[RunResult]:
        kept.extend(real(*args, **kwargs))
        return kept

    monkeypatch.setattr(tbal.runs, "run_seeds", keeping)
    argv = [
        "run", "--data", str(data), "--text-column", "sentence", "--label-column", "label",
        "--cache-dir", str(cache), "--seeds", str(RUN_SEED), "--threads", "1", "--quiet", "--json", str(out),
        *FLAGS,
    ]  # fmt: skip
    assert main(argv) == 0
    assert len(kept) == 1
    return kept[0]


def test_a_text_csv_through_the_api_and_tbal_run_make_the_same_rounds(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    one_thread: None,
    sst2_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pid = _service(api, make_project, sst2_csv)
    stored = api.get(f"/api/v1/projects/{pid}").json()["settings"]
    config = runtime_config(stored, api.settings)
    assert config_from_args(build_parser().parse_args(["run", "--data", "x.csv", *FLAGS])) == config

    result = _command(sst2_csv, tmp_path / "cache", tmp_path / "run.json", monkeypatch)
    # the same features: the service's stored float32 rows are the command's cached ones, bit for bit
    [cached] = (tmp_path / "cache").glob("*-hashing.npy")
    _ids, X_service = stored_features(session_factory, pid)
    X_command = np.load(cached)
    assert X_command.dtype == X_service.dtype == np.float32
    np.testing.assert_array_equal(X_service, X_command)

    service = service_rounds(session_factory, pid)
    library = library_rounds(result)
    assert len(service) == config.loop.planned_rounds == 4
    assert sum(1 for r in service if r["auto"]) >= 2, "at least two rounds must auto-label"
    assert sum(len(r["top_up"]) for r in service) > 0, "the floor must make the run buy top-ups"
    assert_same_rounds(service, library, config, RUN_SEED)
