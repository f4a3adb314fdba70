"""The client's mechanics against a fake service (httpx.MockTransport): retries and backoff, what is
and is not retried, chunked uploads, keyset iteration, waiting for rounds, errors, exports."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import tbal_client.client as client_module
from tbal_client import (
    APIError,
    Label,
    ProgressLine,
    RetryPolicy,
    Round,
    RoundFailed,
    ServiceUnreachable,
    TBALClient,
    WaitTimeout,
)

NO_JITTER = RetryPolicy(attempts=4, backoff_s=0.5, max_backoff_s=8.0, jitter=0.0)


def make_client(
    handler: Callable[[httpx.Request], httpx.Response], retry: RetryPolicy = NO_JITTER
) -> tuple[TBALClient, list[float]]:
    sleeps: list[float] = []
    tb = TBALClient(
        "http://tbal.test",
        key="secret",
        transport=httpx.MockTransport(handler),
        retry=retry,
        sleep=sleeps.append,
        rng=random.Random(0),
    )
    return tb, sleeps


def round_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": 7,
        "project_id": 1,
        "index": 2,
        "status": "running",
        "stage": "train",
        "progress": 0.3,
        "n_queries": 10,
        "metrics": None,
        "model_version": None,
        "error": None,
        "attempts": 1,
        "created_at": "2025-01-01T00:00:00Z",
        "started_at": "2025-01-01T00:00:01Z",
        "finished_at": None,
    }
    body.update(overrides)
    return body


# ---------------------------------------------------------------------------------------------------
# Retries


def test_a_read_is_retried_on_5xx_with_exponential_backoff() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["authorization"])
        if len(calls) < 3:
            return httpx.Response(503, json={"detail": {"field": "database", "reason": "busy"}})
        return httpx.Response(200, json=round_json())

    tb, sleeps = make_client(handler)
    assert tb.get_round(7).stage == "train"
    assert calls == ["Bearer secret"] * 3
    assert sleeps == [0.5, 1.0]  # backoff_s · 2^(r−1), no jitter


def test_backoff_is_capped_jittered_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=10, backoff_s=1.0, max_backoff_s=5.0, jitter=0.25)
    rng = random.Random(1)
    waits = [policy.wait_s(r, rng) for r in range(1, 8)]
    for r, w in enumerate(waits, start=1):
        base = min(5.0, 2.0 ** (r - 1))
        assert 0.75 * base <= w <= 1.25 * base
    assert len(set(waits)) == len(waits)  # jittered, not constant
    assert policy.wait_s(1, rng, retry_after=3.0) == 3.0
    assert policy.wait_s(1, rng, retry_after=60.0) == 5.0  # capped

    statuses = iter([429, 200])

    def handler(_request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        if status == 429:
            return httpx.Response(429, headers={"Retry-After": "2"}, json={"detail": "slow down"})
        return httpx.Response(200, json={"status": "ok"})

    tb, sleeps = make_client(handler)
    assert tb.health() == {"status": "ok"}
    assert sleeps == [2.0]
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_connection_errors_are_retried_then_reported() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("connection refused", request=request)

    tb, sleeps = make_client(handler)
    with pytest.raises(ServiceUnreachable, match=r"ConnectError.*after 4 attempts"):
        tb.get_project(1)
    assert attempts == 4 and sleeps == [0.5, 1.0, 2.0]


def test_unsafe_requests_are_retried_only_when_the_service_cannot_have_acted() -> None:
    seen: list[int] = []

    def answering(status: int) -> Callable[[httpx.Request], httpx.Response]:
        def handler(_request: httpx.Request) -> httpx.Response:
            seen.append(status)
            if len(seen) == 1:
                return httpx.Response(status, json={"detail": {"field": "x", "reason": "boom"}})
            return httpx.Response(202, json=round_json(status="queued"))

        return handler

    # 500 on POST /rounds: the round may exist; not retried.
    tb, sleeps = make_client(answering(500))
    with pytest.raises(APIError) as info:
        tb.start_round(1)
    assert info.value.status == 500 and seen == [500] and sleeps == []

    # 503 (the database was away, nothing committed) and 429: retried.
    for status in (503, 429):
        seen.clear()
        tb, _ = make_client(answering(status))
        assert tb.start_round(1).status == "queued" and seen == [status, status]

    # A read timeout after sending: the round may have started, not retried; a refused connection is.
    def timing_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    tb, _ = make_client(timing_out)
    with pytest.raises(ServiceUnreachable, match="after 1 attempt"):
        tb.start_round(1)
    tb, _ = make_client(timing_out)
    with pytest.raises(ServiceUnreachable, match="after 4 attempts"):
        tb.get_round(1)  # a read is retried on any transport error


def test_api_errors_carry_the_services_field_and_reason() -> None:
    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            409, json={"detail": {"field": "label_budget", "reason": "the budget is spent"}}
        )

    tb, sleeps = make_client(handler)
    with pytest.raises(APIError) as info:
        tb.start_round(3)
    err = info.value
    assert (err.status, err.field, err.reason) == (409, "label_budget", "the budget is spent")
    assert str(err) == "POST /api/v1/projects/3/rounds: 409 label_budget: the budget is spent"
    assert sleeps == []

    def not_json(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="no such page")

    tb, _ = make_client(not_json)
    with pytest.raises(APIError, match="404 response: no such page"):
        tb.get_project(1)


# ---------------------------------------------------------------------------------------------------
# Uploads


def _npz(request: httpx.Request) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(request.content), allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def test_upload_is_chunked_with_continuous_ids_and_retries_each_chunk() -> None:
    X = np.arange(30, dtype=np.float64).reshape(10, 3)
    y = np.arange(10) % 3
    bodies: list[dict[str, np.ndarray]] = []
    failed_once = False

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal failed_once
        assert request.url.path == "/api/v1/projects/5/items/upload"
        assert request.headers["content-type"] == "application/octet-stream"
        arrays = _npz(request)
        if len(bodies) == 1 and not failed_once:  # the second chunk fails once
            failed_once = True
            return httpx.Response(502, text="bad gateway")
        bodies.append(arrays)
        n = len(arrays["X"])
        return httpx.Response(
            200, json={"received": n, "inserted": n - 1, "skipped": 1, "ground_truth_added": n}
        )

    tb, sleeps = make_client(handler)
    progress: list[tuple[int, int]] = []
    result = tb.upload_items(
        5, X, ground_truth=y, id_prefix="d", chunk_rows=4, on_chunk=lambda d, t: progress.append((d, t))
    )
    assert [len(b["X"]) for b in bodies] == [4, 4, 2]
    assert np.array_equal(np.concatenate([b["X"] for b in bodies]), X.astype(np.float32))
    assert all(b["X"].dtype == np.float32 for b in bodies)
    ids = np.concatenate([b["external_ids"] for b in bodies]).tolist()
    assert ids == [f"d{i}" for i in range(10)]
    assert np.array_equal(np.concatenate([b["y"] for b in bodies]), y)
    assert (result.received, result.inserted, result.skipped, result.ground_truth_added) == (10, 7, 3, 10)
    assert progress == [(4, 10), (8, 10), (10, 10)] and sleeps == [0.5]


def test_upload_default_chunks_follow_the_byte_budget_and_images_stay_uint8(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "DEFAULT_CHUNK_BYTES", 100)  # 16 bytes a row: 6 rows a chunk
    images = np.arange(13 * 16, dtype=np.uint8).reshape(13, 4, 4)
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        arrays = _npz(request)
        assert arrays["X"].dtype == np.uint8 and "y" not in arrays
        sizes.append(len(arrays["X"]))
        return httpx.Response(
            200, json={"received": sizes[-1], "inserted": sizes[-1], "skipped": 0, "ground_truth_added": 0}
        )

    tb, _ = make_client(handler)
    assert tb.upload_items(1, images, external_ids=[f"img{i}" for i in range(13)]).inserted == 13
    assert sizes == [6, 6, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"X": np.zeros(3)}, r"shape \(n, d\)"),
        ({"X": np.zeros((0, 2))}, "at least one item"),
        ({"X": np.array([[np.nan, 1.0]])}, "NaN"),
        ({"X": np.zeros((2, 2)), "external_ids": ["a"]}, "expected 2 external ids"),
        ({"X": np.zeros((2, 2)), "external_ids": ["a", "a"]}, "distinct"),
        ({"X": np.zeros((2, 2)), "ground_truth": [0.5, 1.0]}, "class indices"),
        ({"X": np.zeros((2, 2)), "chunk_rows": 0}, "chunk_rows"),
    ],
)
def test_upload_rejects_bad_input_before_sending(kwargs: dict[str, Any], message: str) -> None:
    tb, _ = make_client(lambda _r: pytest.fail("nothing must be sent"))
    with pytest.raises(ValueError, match=message):
        tb.upload_items(1, **kwargs)


# ---------------------------------------------------------------------------------------------------
# Labels, pages, rounds, exports


def test_labels_are_sent_in_batches_in_the_api_shape() -> None:
    batches: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        batches.append(body)
        n = len(body["labels"])
        return httpx.Response(
            200,
            json={
                "received": n,
                "created": n,
                "updated": 0,
                "validation": 1,
                "training": n - 1,
                "answered_queries": n,
            },
        )

    tb, _ = make_client(handler)
    labels: dict[str, Any] = {"a": 0, "b": "cat", "c": np.int64(2)}  # numpy integers are accepted
    result = tb.post_labels(2, labels, batch_size=2, source="test")
    assert [b["labels"] for b in batches] == [
        [{"external_id": "a", "label": 0}, {"external_id": "b", "label": "cat"}],
        [{"external_id": "c", "label": 2}],
    ]
    assert {b["source"] for b in batches} == {"test"}
    assert (result.received, result.validation, result.training) == (3, 2, 1)

    batches.clear()
    tb.post_labels(
        2,
        [
            Label(item_id=9, votes={"ann1": 1, "ann2": "dog"}),
            {"external_id": "z", "distribution": [0.5, 0.5]},
        ],
    )
    assert batches[0]["labels"] == [
        {"item_id": 9, "votes": {"ann1": 1, "ann2": "dog"}},
        {"external_id": "z", "distribution": [0.5, 0.5]},
    ]
    with pytest.raises(ValueError, match="exactly one of external_id or item_id"):
        Label(external_id="a", item_id=1, label=0)
    with pytest.raises(ValueError, match="exactly one of label, distribution or votes"):
        Label(external_id="a", label=0, votes={"x": 1})
    with pytest.raises(ValueError, match="at least one label"):
        tb.post_labels(2, {})


def test_keyset_iteration_follows_next_after_id() -> None:
    rows: list[dict[str, Any]] = [
        {
            "id": 10 * (i + 1),
            "item_id": i,
            "external_id": f"e{i}",
            "round_id": 1,
            "label": i % 2,
            "class_name": "ab"[i % 2],
            "confidence": 0.9,
            "created_at": "2025-01-01T00:00:00Z",
        }
        for i in range(7)
    ]
    asked: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        asked.append(params)
        after, limit = int(params["after_id"]), int(params["limit"])
        page = [r for r in rows if r["id"] > after][:limit]
        return httpx.Response(
            200, json={"items": page, "next_after_id": page[-1]["id"] if len(page) == limit else None}
        )

    tb, _ = make_client(handler)
    got = list(tb.iter_auto_labels(4, class_="b", min_confidence=0.5, page_size=3))
    assert [a.external_id for a in got] == [f"e{i}" for i in range(7)]
    assert [p["after_id"] for p in asked] == ["0", "30", "60"]
    assert all(p["class"] == "b" and p["min_confidence"] == "0.5" for p in asked)
    with pytest.raises(ValueError, match="page_size"):
        list(tb.iter_auto_labels(4, page_size=0))


def test_a_bare_list_listing_pages_on_the_last_id() -> None:
    projects: list[dict[str, Any]] = [{"id": i, "name": f"p{i}"} for i in (1, 2, 5, 8)]
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        after, limit = int(request.url.params["after_id"]), int(request.url.params["limit"])
        asked.append(request.url.params["after_id"])
        return httpx.Response(200, json=[p for p in projects if p["id"] > after][:limit])

    tb, _ = make_client(handler)
    assert [p["name"] for p in tb.paginate("/api/v1/projects", page_size=2, items_key=None)] == [
        "p1",
        "p2",
        "p5",
        "p8",
    ]
    assert asked == ["0", "2", "8"]


def test_wait_round_reports_progress_and_raises_on_failure_or_timeout() -> None:
    states = iter(
        [
            round_json(status="queued", stage=None, progress=0.0),
            round_json(stage="train", progress=0.4),
            round_json(stage="query", progress=0.95),
            round_json(status="failed", stage="query", progress=0.95, error="TBALInputError: no pool"),
        ]
    )
    tb, sleeps = make_client(lambda _r: httpx.Response(200, json=next(states)))
    seen: list[tuple[str, str | None]] = []
    with pytest.raises(RoundFailed, match="round 2 \\(id 7\\) failed: TBALInputError: no pool") as info:
        tb.wait_round(7, poll_s=0.25, progress=lambda r: seen.append((r.status, r.stage)))
    assert seen == [("queued", None), ("running", "train"), ("running", "query"), ("failed", "query")]
    assert sleeps == [0.25] * 3 and info.value.round.error == "TBALInputError: no pool"

    tb, _ = make_client(lambda _r: httpx.Response(200, json=round_json(status="failed", error="x")))
    assert tb.wait_round(7, raise_on_failure=False).status == "failed"

    tb, _ = make_client(lambda _r: httpx.Response(200, json=round_json()))
    with pytest.raises(WaitTimeout, match="still running \\(train, 30%\\)"):
        tb.wait_round(7, timeout_s=0.0)


def test_progress_line_writes_one_line_per_stage_when_not_a_terminal() -> None:
    out = io.StringIO()
    line = ProgressLine(out)
    for status, stage, progress in [
        ("queued", None, 0.0),
        ("running", "train", 0.1),
        ("running", "train", 0.5),  # same stage: no new line off a terminal
        ("running", "query", 0.9),
        ("succeeded", "done", 1.0),
    ]:
        line(Round.from_json(round_json(status=status, stage=stage, progress=progress)))
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("round 2: running   train") and "[##" in lines[1] and "10.0%" in lines[1]
    assert lines[-1].startswith("round 2: succeeded") and "[" + "#" * ProgressLine.WIDTH + "]" in lines[-1]


def test_export_to_a_path_is_atomic_and_retried_from_the_start(tmp_path: Path) -> None:
    answers = iter([httpx.Response(503, text="busy"), httpx.Response(200, content=b'{"a": 1}\n{"b": 2}\n')])

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["format"] == "csv" and request.headers["authorization"] == "Bearer secret"
        return next(answers)

    tb, sleeps = make_client(handler)
    target = tmp_path / "out" / "labels.csv"
    assert tb.export(3, target, format="csv") == 18
    assert target.read_bytes() == b'{"a": 1}\n{"b": 2}\n' and sleeps == [0.5]
    assert [p.name for p in target.parent.iterdir()] == ["labels.csv"]  # no temporary left

    tb, _ = make_client(
        lambda _r: httpx.Response(404, json={"detail": {"field": "project_id", "reason": "no project 3"}})
    )
    with pytest.raises(APIError, match="no project 3"):
        tb.export(3, tmp_path / "missing.jsonl")
    assert not (tmp_path / "missing.jsonl").exists()
    with pytest.raises(ValueError, match="unknown export format"):
        tb.export(3, tmp_path / "x", format="xml")  # type: ignore[arg-type]


def test_the_client_refuses_a_url_without_a_scheme() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        TBALClient("localhost:8000")


def test_label_review_pages_on_rank_and_evaluation_is_read_as_is() -> None:
    rows = [{"rank": r, "item_id": 100 + r, "aum": -1.0 + r} for r in range(1, 6)]
    asked: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/evaluation"):
            return httpx.Response(200, json={"round_id": 3, "accuracy": 0.9, "ece": 0.02})
        params = dict(request.url.params)
        asked.append(params)
        after, limit = int(params["after_rank"]), int(params["limit"])
        page = rows[after : after + limit]
        nxt = after + len(page) if after + len(page) < len(rows) else None
        return httpx.Response(200, json={"items": page, "next_after_rank": nxt})

    tb, _ = make_client(handler)
    got = list(tb.iter_label_review(4, round_id=3, page_size=2))
    assert [r["item_id"] for r in got] == [101, 102, 103, 104, 105]
    assert [p["after_rank"] for p in asked] == ["0", "2", "4"] and all(p["round_id"] == "3" for p in asked)
    assert tb.round_evaluation(3) == {"round_id": 3, "accuracy": 0.9, "ece": 0.02}
