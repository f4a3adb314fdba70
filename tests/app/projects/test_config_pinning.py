"""A project keeps the preset and library defaults it was created with: a later tbal release that changes
a preset (as ``text-paper`` changed its queries and validation floor) does not change a project's
configuration, what its read returns nor what its rounds run with. A PATCH of a setting applies it on
the pinned base; a PATCH of ``preset`` pins the installed release's version. Projects created before
the pin (``base_config`` NULL) resolve their preset as the library defines it now."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

import tbal.config
from app.db.models import Project
from app.rounds.load import load_round
from app.settings import Settings
from tbal.config import (
    LoopConfig,
    QueryConfig,
    TBALConfig,
    ThresholdConfig,
    config_from_dict,
    config_to_dict,
    preset,
)
from tests.app.conftest import Api, MakeProject, RecordingDispatcher, ready_project

TEXT_PAPER = tbal.config._PRESETS["text-paper"]
PINNED_BUDGET = TEXT_PAPER().loop.label_budget
NEXT_BUDGET = PINNED_BUDGET + 1_000


def _text_paper_next_release() -> TBALConfig:
    """``text-paper`` as a later release might define it: other budgets, queries and floor."""
    config = TEXT_PAPER()
    return dataclasses.replace(
        config,
        loop=dataclasses.replace(config.loop, label_budget=NEXT_BUDGET, validation_floor=0),
        query=QueryConfig(strategy="margin-random"),
    )


def _release(monkeypatch: pytest.MonkeyPatch, name: str, make: Callable[[], TBALConfig]) -> None:
    """Install a release whose preset ``name`` is ``make``."""
    monkeypatch.setitem(tbal.config._PRESETS, name, make)


def _text_project(make_project: MakeProject, **settings: Any) -> int:
    return int(make_project(settings={"preset": "text-paper", **settings})["id"])


def _config(api: Api, pid: int) -> dict[str, Any]:
    response = api.get(f"/api/v1/projects/{pid}")
    assert response.status_code == 200, response.text
    return dict(response.json()["config"])


def test_a_new_release_of_the_preset_does_not_change_the_project_config(
    api: Api, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _text_project(make_project)
    created = _config(api, pid)

    _release(monkeypatch, "text-paper", _text_paper_next_release)

    assert preset("text-paper").loop.label_budget == NEXT_BUDGET  # the new release is installed
    assert _config(api, pid) == created
    assert created["loop"] == config_to_dict(TEXT_PAPER().loop)


def test_a_round_runs_with_the_pinned_base(
    api: Api,
    make_project: MakeProject,
    recorder: RecordingDispatcher,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loop budgets, queries and δ that the project does not set come from the preset it was created with."""
    before = TBALConfig(query=QueryConfig(strategy="random"), thresholds=ThresholdConfig(delta=0.1))
    after = TBALConfig(
        loop=LoopConfig(validation_floor=100, calibration_fraction=0.3),
        query=QueryConfig(strategy="margin"),
        thresholds=ThresholdConfig(delta=0.2),
    )
    _release(monkeypatch, "pin-test", lambda: before)
    pid = ready_project(api, make_project, preset="pin-test")
    created = _config(api, pid)

    _release(monkeypatch, "pin-test", lambda: after)
    started = api.post(f"/api/v1/projects/{pid}/rounds")
    assert started.status_code == 202, started.text
    loaded = load_round(started.json()["id"], session_factory, settings)

    assert (loaded.config.query.strategy, loaded.config.thresholds.delta) == ("random", 0.1)
    assert loaded.config.loop == LoopConfig(**created["loop"])  # no floor, ν = 0.5: as created
    read = config_from_dict(created)
    assert loaded.config == dataclasses.replace(read, train=dataclasses.replace(read.train, device="cpu"))


def test_patching_a_setting_keeps_the_rest_pinned(
    api: Api, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _text_project(make_project)
    created = _config(api, pid)
    _release(monkeypatch, "text-paper", _text_paper_next_release)

    patched = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"epsilon": 0.1}})

    assert patched.status_code == 200, patched.text
    config = _config(api, pid)
    assert config["thresholds"] == {**created["thresholds"], "epsilon": 0.1}
    assert {k: v for k, v in config.items() if k != "thresholds"} == {
        k: v for k, v in created.items() if k != "thresholds"
    }


def test_patching_the_preset_pins_the_installed_release(
    api: Api, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _text_project(make_project, epsilon=0.1)
    _release(monkeypatch, "text-paper", _text_paper_next_release)

    patched = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"preset": "text-paper"}})

    assert patched.status_code == 200, patched.text
    config = _config(api, pid)
    assert config["loop"]["label_budget"] == NEXT_BUDGET and config["loop"]["validation_floor"] == 0
    assert config["query"]["strategy"] == "margin-random"
    assert config["thresholds"]["epsilon"] == 0.1  # the explicit setting stays


def test_a_bad_value_on_the_pinned_base_is_a_422_naming_the_setting(
    api: Api, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _text_project(make_project)
    _release(monkeypatch, "text-paper", _text_paper_next_release)

    # a seed that fits the new release's label budget but not the pinned one
    seed = PINNED_BUDGET + 500
    refused = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"seed_size": seed}})

    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"]["field"] == "settings.seed_size"


def test_a_project_without_a_pin_resolves_its_preset_as_the_library_defines_it_now(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Projects created before migration 0008 have no pin: they behave as before it."""
    pid = _text_project(make_project)
    with session_factory() as session:
        session.execute(update(Project).where(Project.id == pid).values(base_config=None))
        session.commit()

    _release(monkeypatch, "text-paper", _text_paper_next_release)

    config = _config(api, pid)
    assert config["loop"]["label_budget"] == NEXT_BUDGET
    assert config["query"]["strategy"] == "margin-random"


def test_a_pin_this_release_cannot_read_asks_for_a_preset_patch(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    """A pinned field that a later release removed: a 422 naming ``settings.preset``, until a PATCH of
    ``preset`` pins this release's version."""
    pid = _text_project(make_project)
    stale = config_to_dict(preset("text-paper"))
    stale["loop"]["retired_knob"] = 1
    with session_factory() as session:
        session.execute(update(Project).where(Project.id == pid).values(base_config=stale))
        session.commit()

    refused = api.get(f"/api/v1/projects/{pid}")
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"]["field"] == "settings.preset"

    patched = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"preset": "text-paper"}})
    assert patched.status_code == 200, patched.text
    assert _config(api, pid)["loop"] == config_to_dict(preset("text-paper").loop)


def test_a_base_pinned_before_finite_pool_keeps_the_population_bound(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    """``thresholds.finite_pool`` came in a later release, on in every preset and in the library's
    defaults: a project pinned before it (its base has no such field) keeps the certificate it started
    with, a new one takes today's, with a preset or without, and a PATCH of the setting turns it on or off
    on the pinned base."""
    pid = _text_project(make_project)
    assert _config(api, pid)["thresholds"]["finite_pool"] is True  # the preset's
    plain = int(make_project(settings={"preset": None})["id"])
    assert _config(api, plain)["thresholds"]["finite_pool"] is True  # the library's defaults
    with session_factory() as session:
        project = session.get(Project, pid)
        assert project is not None and project.base_config is not None
        older = {**project.base_config}
        older["thresholds"] = {k: v for k, v in older["thresholds"].items() if k != "finite_pool"}
        session.execute(update(Project).where(Project.id == pid).values(base_config=older))
        session.commit()
    assert _config(api, pid)["thresholds"]["finite_pool"] is False
    patched = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"finite_pool": True}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"]["thresholds"]["finite_pool"] is True
    bad = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"finite_pool": "sometimes"}})
    assert bad.status_code == 422 and "finite_pool" in bad.text
