"""The dashboard in a real browser: headless Debian Chromium driven by Playwright, against ``tbal serve``
running on SQLite with a digits project driven to the end. The numbers on the page are checked against
the API (and some against counts made here from the raw listings), a running round's stage and progress
must appear and the page must pick up the finished round by itself, and screenshots are saved to
``$TBAL_TEST_ARTIFACTS`` (default ``var/test-artifacts/``).

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) and the ``playwright`` Python package (its
own browser download is not used). Without them the tests are skipped, except under ``CI=true``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tbal_client import TBALClient
from tests.dashboard.browser import open_page, wait_ready
from tests.dashboard.conftest import DASHBOARD_EPOCHS, DASHBOARD_SETTINGS, LiveService, new_digits_project

TRAIN_SECONDS = 8.0
"""How long the watched round trains (the page polls every 2 s)."""

pytestmark = pytest.mark.slow


def _shown(page: Any, testid: str) -> tuple[str, str]:
    """(text shown, raw value) of the first element with this data-testid."""
    node = page.locator(f"[data-testid={testid}]").first
    return node.inner_text().strip(), node.get_attribute("data-value") or ""


def _pct1(x: float) -> str:
    return f"{100 * x:.1f}%"


def test_the_project_page_shows_the_apis_numbers(
    browser: Any, live_service: LiveService, artifacts_dir: Path
) -> None:
    tb, project = live_service.client, live_service.finished
    url = f"{live_service.base_url}/dashboard?project={project.id}#key={live_service.key}"
    context, page, errors = open_page(browser, url)
    try:
        wait_ready(page)
        path = artifacts_dir / "dashboard-project.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 20_000

        # The key left the address bar for the browser's storage.
        assert "key=" not in page.url
        assert page.evaluate("localStorage.getItem('tbal.apiKey')") == live_service.key

        # Counts: the project endpoint, and listings counted here.
        counts = tb.get_project(project.id).counts
        assert counts is not None
        auto = list(tb.iter_auto_labels(project.id))
        humans = list(tb.iter_human_labels(project.id))
        rounds = tb.list_rounds(project.id)
        assert _shown(page, "project-name")[0] == project.name
        assert _shown(page, "items") == (f"{counts.items:,}", str(counts.items))
        assert _shown(page, "auto-labels") == (f"{len(auto):,}", str(counts.auto_labels))
        coverage = len(auto) / counts.items
        assert _shown(page, "coverage")[0] == _pct1(coverage)
        assert float(_shown(page, "coverage")[1]) == pytest.approx(coverage)
        # queued items count as unlabeled; queued queries are budget spent but not labels (issue 15)
        assert _shown(page, "unlabeled")[1] == str(counts.pool + counts.open_queries)
        assert _shown(page, "budget-used")[1] == str(counts.budget_used)
        labeled, queued = int(_shown(page, "budget-labeled")[1]), int(_shown(page, "budget-queued")[1])
        assert labeled + queued == counts.budget_used and labeled == len(
            [h for h in humans if h.role == "train"]
        )
        assert _shown(page, "label-budget") == (f"{DASHBOARD_SETTINGS['label_budget']:,}", "300")
        assert _shown(page, "human-labels")[1] == str(len(humans)) == str(counts.human_labels)
        by_role = Counter(h.role for h in humans)
        assert _shown(page, "validation-labels")[1] == str(by_role["validation"])
        assert _shown(page, "training-labels")[1] == str(by_role["train"])
        assert _shown(page, "queue-open")[1] == str(counts.open_queries)
        assert _shown(page, "rounds")[1] == str(len(rounds)) == str(counts.rounds)
        assert _shown(page, "epsilon") == ("5.0%", "0.05")

        # The true error shown is the share of wrong auto-labels, counted here from the ground truth.
        X_truth = {f"digits-dashboard-{i}": int(t) for i, t in enumerate(_digits_truth())}
        wrong = sum(X_truth[a.external_id] != a.label for a in auto)
        text, raw = _shown(page, "true-error")
        assert float(raw) == pytest.approx(wrong / len(auto)) and text == f"{100 * wrong / len(auto):.2f}%"

        # One row per round, newest first, with its auto-labels and coverage as the rounds recorded them.
        rows = page.locator("[data-testid=round-row]")
        assert rows.count() == len(rounds)
        assert [int(rows.nth(i).get_attribute("data-round")) for i in range(rows.count())] == [
            r.index for r in reversed(rounds)
        ]
        for i, r in enumerate(reversed(rounds)):
            metrics = r.metrics or {}
            row = rows.nth(i)
            cell = row.locator("[data-testid=round-auto-labeled]")
            assert cell.get_attribute("data-value") == str(metrics["auto_labeled"])
            assert row.locator("[data-testid=round-coverage]").inner_text() == _pct1(
                metrics["coverage_total"]
            )
            trained = metrics.get("validation_labels_trained")  # "+N": validation labels trained on too
            trained_text = f"{metrics['training_labels']:,}" + (f" (+{trained:,})" if trained else "")
            assert row.locator("[data-testid=round-humans]").inner_text() == (
                f"{trained_text} / {metrics['validation_labels']:,}"
            )
        assert sum((r.metrics or {})["auto_labeled"] for r in rounds) == len(auto)

        # Per class: the latest round's thresholds, validation points left counted here by class.
        last = rounds[-1].metrics or {}
        validation_left = Counter(h.label for h in humans if h.role == "validation")
        class_rows = page.locator("[data-testid=class-row]")
        assert class_rows.count() == 10
        for k in range(10):
            row = class_rows.nth(k)
            threshold = last["thresholds"][k]["threshold"]
            shown = row.locator("[data-testid=class-threshold]")
            assert shown.get_attribute("data-value") == ("" if threshold is None else repr(threshold))
            assert row.locator("[data-testid=class-validation-left]").get_attribute("data-value") == str(
                validation_left[k]
            )
            assert row.locator("[data-testid=class-auto-labels]").get_attribute("data-value") == str(
                sum(a.label == k for a in auto)
            )

        # The charts are drawn: ε as a line, and the reliability diagram with its ten bins.
        error_chart = page.locator("svg[aria-label='auto-labeling error by round']")
        assert "ε = 5.0%" in (error_chart.text_content() or "")
        assert page.locator("svg[aria-label='reliability diagram'] .rel-hist").count() == 10
        summary = tb.summary(project.id)
        assert summary["reliability"] is not None
        assert float(_shown(page, "ece")[1]) == pytest.approx(summary["reliability"]["ece"])

        # Picking a round shows its thresholds (the first round auto-labeled something).
        first = next(r for r in rounds if (r.metrics or {})["auto_labeled"] > 0)
        page.select_option("[data-testid=round-picker]", str(first.index))
        page.wait_for_function(f"new URLSearchParams(location.search).get('round') === '{first.index}'")
        wait_ready(page)
        page.wait_for_selector(f"text=Thresholds and estimated errors of round {first.index}")
        expected = [c["threshold"] for c in (first.metrics or {})["thresholds"]]
        shown_thresholds = [
            page.locator("[data-testid=class-threshold]").nth(k).get_attribute("data-value")
            for k in range(10)
        ]
        assert shown_thresholds == ["" if t is None else repr(t) for t in expected]
        page.screenshot(path=str(artifacts_dir / f"dashboard-project-round{first.index}.png"), full_page=True)
        assert errors.messages == []
    finally:
        context.close()


def test_the_projects_page_and_the_key_prompt(
    browser: Any, live_service: LiveService, artifacts_dir: Path
) -> None:
    context, page, errors = open_page(browser, f"{live_service.base_url}/dashboard")
    try:
        # No key yet: the page asks for one; a wrong one is refused; the right one loads the projects.
        page.wait_for_selector("body[data-state=needs-key]")
        page.fill("#key-input", "tbal_wrong")
        page.click("#key-form button")
        page.wait_for_selector("#key-error:not([hidden])")
        assert "refused" in page.inner_text("#key-error")
        page.fill("#key-input", live_service.key)
        page.click("#key-form button")
        wait_ready(page)
        projects = live_service.client.list_projects()
        rows = page.locator("[data-testid=project-row]")
        assert rows.count() == len(projects)
        assert {rows.nth(i).get_attribute("data-project") for i in range(rows.count())} == {
            str(p.id) for p in projects
        }
        page.screenshot(path=str(artifacts_dir / "dashboard-projects.png"), full_page=True)
        page.click(f"text={live_service.finished.name}")
        wait_ready(page)
        assert page.locator("[data-testid=project-name]").inner_text() == live_service.finished.name
        # the refused key logs one console error (the 401); nothing else may fail
        assert all("401" in m for m in errors.messages), errors.messages
    finally:
        context.close()


def test_a_running_round_is_shown_live_and_its_end_picked_up(
    browser: Any, live_service: LiveService, artifacts_dir: Path
) -> None:
    tb: TBALClient = live_service.client
    settings = {**DASHBOARD_SETTINGS, "label_budget": 150, "batch_size": 50}
    project = new_digits_project(tb, "digits-live", settings)
    tb.simulate(project.id)
    first = tb.run_round(project.id, poll_s=0.1, timeout_s=300)
    tb.simulate(project.id)
    # A round long enough to watch on this machine: about 8 s of training, scaled from the first round's,
    # and at least 3,000 epochs: the first round's time holds one-off costs, so the scale alone is too
    # low on an idle machine (87 epochs, 1.5 s), and CI saw 400 epochs end in 1.6 s, under one poll of
    # the page (2 s), so the page saw no progress move; 3,000 is about 10 s idle
    train_s = max(0.05, float((first.metrics or {})["timings"]["train"]))
    epochs = int(min(6000, max(3000, DASHBOARD_EPOCHS * TRAIN_SECONDS / train_s)))
    tb.update_settings(project.id, {"epochs": epochs})

    context, page, errors = open_page(
        browser, f"{live_service.base_url}/dashboard?project={project.id}#key={live_service.key}"
    )
    try:
        wait_ready(page)
        assert page.locator("[data-testid=round-row]").count() == 1
        page.evaluate("window.__notReloaded = true")
        started = tb.start_round(project.id)
        # The idle page polls every 30 s; a reload is how a user would see a round started elsewhere.
        page.reload()
        wait_ready(page)
        page.evaluate("window.__notReloaded = true")
        seen: list[tuple[str, str, float]] = []
        deadline = time.monotonic() + 240
        screenshot_taken = False
        while time.monotonic() < deadline:
            state = page.locator("[data-testid=round-state]")
            status = state.get_attribute("data-status") or ""
            stage = state.get_attribute("data-stage") or ""
            progress = float(state.get_attribute("data-progress") or 0)
            if not seen or seen[-1] != (status, stage, progress):
                seen.append((status, stage, progress))
            if status == "running" and stage == "train" and progress > 0.1 and not screenshot_taken:
                page.screenshot(path=str(artifacts_dir / "dashboard-running-round.png"), full_page=False)
                screenshot_taken = True
            if page.locator("[data-testid=round-row]").count() == 2 and status == "succeeded":
                break
            time.sleep(0.25)
        else:
            raise AssertionError(f"the page never showed the round's end; states seen: {seen}")
        done = tb.get_round(started.id)
        took = seconds_between(done.started_at, done.finished_at)
        print(f"\nround {done.index} ({epochs} epochs) took {took:.1f} s; the page showed {seen}")
        assert done.succeeded
        running = [s for s in seen if s[0] == "running"]
        assert running, f"never saw the round running: {seen}"
        progress_values = [p for _, _, p in running]
        assert len(set(progress_values)) >= 2, f"progress never moved on the page: {seen}"
        assert progress_values == sorted(progress_values)
        assert page.evaluate("window.__notReloaded === true")  # updated in place, no reload
        rounds_shown = page.locator("[data-testid=round-row]")
        assert rounds_shown.first.get_attribute("data-round") == str(done.index)
        assert rounds_shown.first.locator("[data-testid=round-auto-labeled]").get_attribute(
            "data-value"
        ) == str((done.metrics or {})["auto_labeled"])
        assert screenshot_taken
        assert errors.messages == []
    finally:
        context.close()


def seconds_between(start: str | None, end: str | None) -> float:
    from datetime import datetime

    if not start or not end:
        return float("nan")
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _digits_truth() -> list[int]:
    from sklearn.datasets import load_digits

    return [int(t) for t in load_digits().target]


def test_rounds_held_by_the_final_schedule_are_explained(browser: Any, live_service: LiveService) -> None:
    """Under the default ``final`` δ schedule the rounds before the last one auto-label nothing by design:
    the page marks them (held) and says why, so that a 0 is not read as the model failing; the last round
    the budget allows is not marked."""
    tb: TBALClient = live_service.client
    settings = {**DASHBOARD_SETTINGS, "label_budget": 150, "batch_size": 50, "epochs": 5}
    project = new_digits_project(tb, "digits-held", {**settings, "delta_schedule": "final"})
    tb.simulate(project.id)
    held = tb.run_round(project.id, poll_s=0.1, timeout_s=300)
    tb.simulate(project.id)
    last = tb.run_round(project.id, poll_s=0.1, timeout_s=300)  # 100 seed + 50 = the budget: planned 2
    assert (held.metrics or {})["delta_round"] == 0.0 and (held.metrics or {})["auto_labeled"] == 0
    assert (last.metrics or {})["delta_round"] > 0.0

    context, page, errors = open_page(
        browser, f"{live_service.base_url}/dashboard?project={project.id}#key={live_service.key}"
    )
    try:
        wait_ready(page)
        rows = page.locator("[data-testid=round-row]")
        assert rows.count() == 2
        marks = [rows.nth(i).locator("[data-testid=round-held]").count() for i in range(2)]
        assert marks == [0, 1]  # newest first: the last round certifies, the first was held
        assert (
            "auto-label nothing by design"
            in page.locator("section.card", has=page.locator("[data-testid=round-row]")).inner_text()
        )
        assert errors.messages == []
    finally:
        context.close()


def test_settings_that_cannot_certify_are_shown_above_the_figures(
    browser: Any, live_service: LiveService
) -> None:
    """A project with fewer validation points than any certificate needs shows why before its first
    round; one with enough shows no such card."""
    tb: TBALClient = live_service.client
    few = tb.create_project(
        "digits-few-validation", classes=["a", "b"], data_kind="features", input_shape=[2],
        settings={"validation_size": 30},
    )  # fmt: skip
    enough = tb.create_project("digits-enough", classes=["a", "b"], data_kind="features", input_shape=[2])
    for project, shown in ((few, 1), (enough, 0)):
        context, page, errors = open_page(
            browser, f"{live_service.base_url}/dashboard?project={project.id}#key={live_service.key}"
        )
        try:
            wait_ready(page)
            warnings = page.locator("[data-testid=certificate-warning]")
            assert warnings.count() == shown
            if shown:
                assert "no round can auto-label anything" in warnings.first.inner_text()
                assert "at most 30" in warnings.first.inner_text()
            assert errors.messages == []
        finally:
            context.close()
