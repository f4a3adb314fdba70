"""The client against the real application (in process, SQLite): a digits project driven end to end with
labels posted from the queue (not the simulation), and every answer checked against what the service
stored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tbal_client import APIError, Label, Round, TBALClient
from tests.client.conftest import FAST_SETTINGS, digits, project_counts


def test_a_project_driven_through_the_client(tb: TBALClient, tmp_path: Path) -> None:
    X, y = digits()
    ids = [f"d{i}" for i in range(len(y))]
    truth = dict(zip(ids, y.tolist(), strict=True))
    project = tb.create_project(
        "digits-client",
        classes=[str(c) for c in range(10)],
        data_kind="features",
        input_shape=[64],
        settings=FAST_SETTINGS,
        seed=3,
    )
    assert project.epsilon == FAST_SETTINGS["epsilon"] and project.label_budget == 120

    # Chunked upload; sending it again adds nothing.
    chunks: list[tuple[int, int]] = []
    first = tb.upload_items(
        project.id,
        X,
        external_ids=ids,
        ground_truth=y,  # for the true-error audit only: the labels below come from the queue
        chunk_rows=500,
        on_chunk=lambda d, t: chunks.append((d, t)),
    )
    assert (first.received, first.inserted, first.skipped, first.ground_truth_added) == (1797, 1797, 0, 1797)
    assert chunks == [(500, 1797), (1000, 1797), (1500, 1797), (1797, 1797)]
    again = tb.upload_items(project.id, X[:600], external_ids=ids[:600], chunk_rows=250)
    assert (again.inserted, again.skipped) == (0, 600)
    assert project_counts(tb, project.id).items == 1797

    with pytest.raises(APIError) as info:
        tb.create_project("digits-client", classes=["a", "b"], data_kind="features", input_shape=[2])
    assert info.value.status == 409 and info.value.field == "name"

    rounds: list[Round] = []
    for _ in range(6):
        counts = tb.queue_counts(project.id)
        queued = list(tb.iter_queue(project.id, page_size=97))
        assert len(queued) == counts.total and len({q.item_id for q in queued}) == len(queued)
        if queued:
            # Humans answer from the truth; a few validation items get two annotators (a soft label).
            labels = [
                Label(
                    external_id=q.external_id,
                    votes={"ann1": truth[q.external_id], "ann2": truth[q.external_id]},
                )
                if i % 50 == 0
                else Label(external_id=q.external_id, label=str(truth[q.external_id]))
                for i, q in enumerate(queued)
            ]
            posted = tb.post_labels(project.id, labels, batch_size=128)
            assert posted.received == len(queued) and posted.answered_queries == len(queued)
            assert posted.validation == sum(q.purpose == "validation" for q in queued)
        try:
            started = tb.start_round(project.id)
        except APIError as exc:
            assert exc.status == 409 and exc.field in ("label_budget", "pool", "max_rounds"), exc
            break
        seen: list[Round] = []
        done = tb.wait_round(started.id, poll_s=0.05, timeout_s=300, progress=seen.append)
        assert done.succeeded and seen[-1] == done and done.model_version == f"digits-client-r{done.index}"
        rounds.append(done)
    assert len(rounds) >= 2

    # Auto-labels: the keyset iteration sees every row once, whatever the page size, and matches the
    # service's own bookkeeping.
    small = list(tb.iter_auto_labels(project.id, page_size=7))
    large = list(tb.iter_auto_labels(project.id, page_size=5000))
    assert small == large and len({a.item_id for a in small}) == len(small)
    last = rounds[-1].metrics or {}
    assert len(small) == last["auto_labeled_total"] > 0
    wrong = sum(truth[a.external_id] != a.label for a in small)
    assert wrong == last["true_error"]["total_wrong"]
    # Each auto-label's confidence clears its class's threshold in the round that wrote it.
    thresholds = {r.id: [c["threshold"] for c in (r.metrics or {})["thresholds"]] for r in rounds}
    assert all(a.confidence >= thresholds[a.round_id][a.label] for a in small)
    first_round = rounds[0]
    only_first = list(tb.iter_auto_labels(project.id, round_id=first_round.id))
    assert len(only_first) == (first_round.metrics or {})["auto_labeled"]
    threes = list(tb.iter_auto_labels(project.id, class_="3", min_confidence=0.99))
    assert threes == [a for a in small if a.label == 3 and a.confidence >= 0.99]

    humans = list(tb.iter_human_labels(project.id))
    assert len(humans) == project_counts(tb, project.id).human_labels
    assert not {h.item_id for h in humans} & {a.item_id for a in small}
    soft = [h for h in humans if h.votes]
    assert soft and all(
        h.distribution is not None and h.votes == {"ann1": h.label, "ann2": h.label} for h in soft
    )

    # The export holds every human label, then every auto-label.
    out = tmp_path / "export.jsonl"
    size = tb.export(project.id, out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert size == out.stat().st_size and len(lines) == len(humans) + len(small)

    # Predictions by the latest model.
    predicted = tb.predict(project.id, X[:20])
    assert predicted.model_version == rounds[-1].model_version and len(predicted.predictions) == 20
    assert np.mean([p.label == t for p, t in zip(predicted.predictions, y[:20], strict=True)]) > 0.7

    # The dashboard's summary agrees with the client's view.
    summary = tb.summary(project.id)
    assert summary["counts"]["auto_labels"] == len(small)
    assert summary["counts"]["human_labels"] == len(humans)
    assert [r["index"] for r in summary["rounds"]] == [r.index for r in rounds]


def test_settings_changes_and_deletion(tb: TBALClient) -> None:
    project = tb.create_project("p", classes=["a", "b"], data_kind="features", input_shape=[2])
    assert project.warnings == [] and project.certificate is not None and project.certificate["can_certify"]
    changed = tb.update_settings(project.id, {"epsilon": 0.2})
    assert changed.epsilon == 0.2 and changed.settings["epsilon"] == 0.2
    # too few validation points for any certificate: the service says so, the client reads it
    few = tb.update_settings(project.id, {"validation_size": 10})
    assert few.certificate is not None and few.certificate["can_certify"] is False
    assert len(few.warnings) == 1 and "no round can auto-label anything" in few.warnings[0]
    changed = tb.update_settings(project.id, {"validation_size": 500})
    assert [p.name for p in tb.list_projects()] == ["p"] and tb.find_project("p") == changed
    with pytest.raises(APIError) as info:
        tb.update_settings(project.id, {"epsilon": 2.0})
    assert info.value.status == 422 and "epsilon" in info.value.field + info.value.reason
    tb.delete_project(project.id)
    assert tb.find_project("p") is None
    with pytest.raises(APIError, match="404"):
        tb.get_project(project.id)


def test_a_wrong_key_is_a_401(tb: TBALClient) -> None:
    bad = TBALClient(http=tb._http, key="tbal_not-a-key")
    with pytest.raises(APIError) as info:
        bad.list_projects()
    assert info.value.status == 401
    assert bad.health()["status"] == "ok"  # /health needs no key
