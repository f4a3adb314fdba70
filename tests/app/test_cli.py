"""The service's verbs of the ``tbal`` command (registered through ``app.cli.register``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.cli import register
from app.main import create_app
from app.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tbal")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_verbs_are_registered_with_a_func() -> None:
    parser = _parser()
    for argv in (
        ["serve", "--port", "9000"],
        ["migrate"],
        ["create-key", "--name", "ci"],
        ["revoke-key", "--id", "3"],
        ["list-keys"],
        ["worker", "--concurrency", "2"],
    ):
        args = parser.parse_args(argv)
        assert callable(args.func), argv
    assert parser.parse_args(["worker"]).queues == "default,gpu"


def test_migrate_then_create_list_and_revoke_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    monkeypatch.setenv("TBAL_DATABASE_URL", url)
    parser = _parser()
    args = parser.parse_args(["migrate"])
    assert args.func(args) == 0
    assert "database at revision head" in capsys.readouterr().out
    args = parser.parse_args(["create-key", "--name", "ci"])
    assert args.func(args) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("tbal_") and len(secret) > 40

    settings = Settings(database_url=url, artifacts_dir=tmp_path / "a")
    with TestClient(create_app(settings)) as client:
        ok = client.get("/api/v1/projects", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200
        args = parser.parse_args(["list-keys"])
        assert args.func(args) == 0
        listing = capsys.readouterr().out
        assert "ci" in listing and secret not in listing and secret[:12] in listing
        args = parser.parse_args(["revoke-key", "--id", "1"])
        assert args.func(args) == 0
        refused = client.get("/api/v1/projects", headers={"Authorization": f"Bearer {secret}"})
        assert refused.status_code == 401
    args = parser.parse_args(["revoke-key", "--id", "1"])
    assert args.func(args) == 1


@pytest.mark.parametrize("verb", [["create-key", "--name", "ci"], ["list-keys"], ["revoke-key", "--id", "1"]])
def test_key_verbs_before_migrate_say_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], verb: list[str]
) -> None:
    """Issue 15, item 9: one line naming `tbal migrate`, not a traceback (``no such table: api_keys``)."""
    monkeypatch.setenv("TBAL_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    args = _parser().parse_args(verb)
    assert args.func(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "not migrated" in lines[0] and "run `tbal migrate`" in lines[0], lines


def test_key_verbs_on_an_unreachable_database_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TBAL_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:9/nowhere")
    monkeypatch.setenv("TBAL_DB_CONNECT_TIMEOUT_S", "1")
    args = _parser().parse_args(["create-key", "--name", "ci"])
    assert args.func(args) == 2
    assert capsys.readouterr().err.startswith("tbal: error: cannot open the database")
