"""Access: keys scoped to projects (a key for project A gets 403 on project B, reading and writing, and
sees only A in lists), key creation and revocation over HTTP and with the ``tbal`` admin verbs, and
failed authentications logged without the secret."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.cli import register
from app.db.models import Round
from tests.app.conftest import Api, blobs

KEYS = "/api/v1/keys"


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _new_key(api: Api, **body: Any) -> dict[str, Any]:
    response = api.post(KEYS, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _items(n: int = 20) -> dict[str, Any]:
    X, y = blobs(n)
    return {
        "items": [
            {"external_id": f"i{i}", "features": X[i].tolist(), "ground_truth": int(y[i])} for i in range(n)
        ]
    }


def test_a_project_key_uses_its_project_and_no_other(
    api: Api, make_project: Callable[..., dict[str, Any]], session_factory: sessionmaker[Session]
) -> None:
    a, b = make_project(), make_project()
    assert api.post(f"/api/v1/projects/{b['id']}/items", json=_items()).status_code == 200
    with session_factory() as session:  # a round of B, to read through /rounds/{id}
        round_b = Round(project_id=b["id"], index=0, status="failed")
        session.add(round_b)
        session.commit()
        round_b_id = round_b.id
    created = _new_key(api, name="team-a", projects=[a["id"]])
    assert created["admin"] is False and created["projects"] == [a["id"]]
    client, headers = api.client, _bearer(created["secret"])

    # Its own project: read and write.
    assert client.get(f"/api/v1/projects/{a['id']}", headers=headers).status_code == 200
    assert client.post(f"/api/v1/projects/{a['id']}/items", json=_items(), headers=headers).status_code == 200
    assert client.get(f"/api/v1/projects/{a['id']}/queue", headers=headers).status_code == 200
    listed = client.get("/api/v1/projects", headers=headers).json()
    assert [p["id"] for p in listed] == [a["id"]]
    overview = client.get("/api/v1/dashboard/projects", headers=headers).json()
    assert [p["id"] for p in overview["items"]] == [a["id"]]

    # Project B: every read and write is refused, before anything is looked up or written.
    pb = f"/api/v1/projects/{b['id']}"
    refused = [
        client.get(pb, headers=headers),
        client.patch(pb, json={"settings": {"epsilon": 0.2}}, headers=headers),
        client.delete(pb, headers=headers),
        client.get(f"{pb}/items", headers=headers),
        client.post(f"{pb}/items", json=_items(), headers=headers),
        client.get(f"{pb}/queue", headers=headers),
        client.post(f"{pb}/labels", json={"labels": [{"external_id": "i0", "label": "a"}]}, headers=headers),
        client.post(f"{pb}/simulate", headers=headers),
        client.post(f"{pb}/rounds", headers=headers),
        client.get(f"{pb}/rounds", headers=headers),
        client.get(f"{pb}/auto-labels", headers=headers),
        client.get(f"{pb}/export", headers=headers),
        client.get(f"{pb}/summary", headers=headers),
        client.get(f"{pb}/label-studio/connection", headers=headers),
        client.get(f"/api/v1/rounds/{round_b_id}", headers=headers),
        client.get(f"/api/v1/rounds/{round_b_id}/evaluation", headers=headers),
        client.get(f"{pb}/label-review", headers=headers),
        client.get(f"{pb}/label-review", params={"round_id": round_b_id}, headers=headers),
        client.get("/api/v1/projects/999999", headers=headers),  # no such project: same answer
    ]
    for response in refused:
        assert response.status_code == 403, (response.request.method, response.request.url, response.text)
        assert response.json()["detail"]["field"] == "project_id"
    # Nothing of B changed: the admin key still sees its 20 items, no label, B's settings as they were.
    detail = api.get(pb).json()
    assert detail["counts"]["items"] == 20 and detail["counts"]["human_labels"] == 0
    assert detail["settings"] == b["settings"]

    # Admin-only operations.
    assert client.post("/api/v1/projects", json={}, headers=headers).status_code in (403, 422)
    body = {"name": "x", "classes": ["a", "b"], "data_kind": "features", "input_shape": [2]}
    assert client.post("/api/v1/projects", json=body, headers=headers).status_code == 403
    assert client.post(KEYS, json={"name": "mine", "admin": True}, headers=headers).status_code == 403
    assert client.get(KEYS, headers=headers).status_code == 403
    assert client.delete(f"{KEYS}/1", headers=headers).status_code == 403
    assert client.get("/metrics", headers=headers).status_code == 403
    me = client.get(f"{KEYS}/me", headers=headers).json()
    assert me["id"] == created["id"] and me["projects"] == [a["id"]] and "secret" not in me


def test_an_admin_key_manages_keys(api: Api, make_project: Callable[..., dict[str, Any]]) -> None:
    project = make_project()
    admin = _new_key(api, name="second admin", admin=True)
    scoped = _new_key(api, name="labeler", projects=[project["id"], project["id"]])
    assert scoped["projects"] == [project["id"]]
    # A new admin key can itself manage keys.
    extra = api.client.post(
        KEYS, json={"name": "third", "projects": [project["id"]]}, headers=_bearer(admin["secret"])
    )
    assert extra.status_code == 201

    listed = api.get(KEYS)
    assert listed.status_code == 200
    rows = {k["id"]: k for k in listed.json()}
    assert rows[admin["id"]]["admin"] is True and rows[scoped["id"]]["projects"] == [project["id"]]
    for secret in (admin["secret"], scoped["secret"], extra.json()["secret"]):
        assert secret not in listed.text and secret[12:] not in listed.text

    # Revocation: refused from the next request on; a second revocation is a 404.
    assert api.client.get(f"{KEYS}/me", headers=_bearer(scoped["secret"])).status_code == 200
    assert api.delete(f"{KEYS}/{scoped['id']}").status_code == 204
    refused = api.client.get(f"/api/v1/projects/{project['id']}", headers=_bearer(scoped["secret"]))
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]["reason"]
    assert api.delete(f"{KEYS}/{scoped['id']}").status_code == 404
    assert api.get(KEYS).json()[-1]["revoked_at"] is None  # the others stay active
    assert {k["id"]: k for k in api.get(KEYS).json()}[scoped["id"]]["revoked_at"] is not None

    # Bad requests: a non-admin key without projects, a project that does not exist.
    no_projects = api.post(KEYS, json={"name": "nothing"})
    assert no_projects.status_code == 422 and no_projects.json()["detail"]["field"] == "projects"
    unknown = api.post(KEYS, json={"name": "ghost", "projects": [987654]})
    assert unknown.status_code == 422 and "987654" in unknown.json()["detail"]["reason"]
    # A NUL in the name (PostgreSQL text cannot hold it) is refused, not a 500 (found by `make soak`).
    assert api.post(KEYS, json={"name": "a\x00b", "admin": True}).status_code == 422


def test_a_deleted_project_leaves_its_keys_with_nothing(api: Api, make_project: Callable[..., Any]) -> None:
    project = make_project()
    key = _new_key(api, name="short-lived", projects=[project["id"]])
    assert api.delete(f"/api/v1/projects/{project['id']}").status_code == 204
    headers = _bearer(key["secret"])
    assert api.client.get("/api/v1/projects", headers=headers).json() == []
    assert api.client.get(f"/api/v1/projects/{project['id']}", headers=headers).status_code == 403


def test_failed_authentication_is_logged_without_the_secret(
    api: Api, make_project: Callable[..., dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    project, other = make_project(), make_project()
    key = _new_key(api, name="logged", projects=[project["id"]])
    secret = key["secret"]
    unknown = "tbal_" + "Z" * 43
    caplog.set_level(logging.INFO, logger="app.projects.keys_service")
    client = api.client
    assert client.get("/api/v1/projects", headers=_bearer(unknown)).status_code == 401
    assert client.get(f"/api/v1/projects/{other['id']}", headers=_bearer(secret)).status_code == 403
    assert api.delete(f"{KEYS}/{key['id']}").status_code == 204
    assert client.get("/api/v1/projects", headers=_bearer(secret)).status_code == 401
    messages = [r.getMessage() for r in caplog.records if r.name == "app.projects.keys_service"]
    text = "\n".join(messages)
    assert any("authentication failed: unknown key tbal_ZZZ…" in m for m in messages), text
    assert any(f"may not use project {other['id']}" in m and key["prefix"] in m for m in messages), text
    assert any("revoked key" in m and key["prefix"] in m for m in messages), text
    for leaked in (secret, secret[12:], unknown, unknown[8:]):
        assert leaked not in caplog.text, f"the secret {leaked[:6]}… was logged"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tbal")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_admin_verbs_create_scoped_keys_list_and_revoke(
    api: Api,
    make_project: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project, other = make_project(), make_project()
    monkeypatch.setenv("TBAL_DATABASE_URL", api.settings.database_url)
    parser = _parser()
    capsys.readouterr()
    args = parser.parse_args(["create-key", "--name", "cli-scoped", "--project", str(project["id"])])
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("tbal_") and f"projects {project['id']}" in err
    headers = _bearer(secret)
    assert api.client.get(f"/api/v1/projects/{project['id']}", headers=headers).status_code == 200
    assert api.client.get(f"/api/v1/projects/{other['id']}", headers=headers).status_code == 403

    args = parser.parse_args(["create-key", "--name", "bad", "--project", "424242"])
    assert args.func(args) == 2
    assert "no project 424242" in capsys.readouterr().err

    args = parser.parse_args(["list-keys"])
    assert args.func(args) == 0
    listing = capsys.readouterr().out
    assert "cli-scoped" in listing and f"projects {project['id']}" in listing and "admin" in listing
    assert secret not in listing
    key_id = next(int(line.split("\t")[0]) for line in listing.splitlines() if "cli-scoped" in line)
    args = parser.parse_args(["revoke-key", "--id", str(key_id)])
    assert args.func(args) == 0
    assert api.client.get(f"/api/v1/projects/{project['id']}", headers=headers).status_code == 401


def test_keys_made_before_scopes_stay_admin(tmp_path: Path) -> None:
    """Migration 0003 turns existing keys into admin keys (they could use every project before)."""
    from sqlalchemy import create_engine, text

    from app.db.migrate import upgrade
    from app.settings import Settings

    settings = Settings(database_url=f"sqlite:///{tmp_path / 'old.sqlite'}")
    upgrade(settings, "0002")
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (name, prefix, key_hash, created_at) "
                "VALUES ('old', 'tbal_x', 'h', '2026-01-01 00:00:00')"
            )
        )
    upgrade(settings)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT is_admin FROM api_keys")).scalar_one() in (1, True)
    engine.dispose()
