"""The ``tbal`` client verbs driving a whole project from a shell, against ``tbal serve`` running as a
child process (SQLite, rounds in process): create, upload, read the queue, post labels from a CSV (with
two annotators on some items), run rounds with ``--wait`` until exit code 3 says the project is done,
export auto-labels and the full export; every result checked against the API."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

from examples.demo import Server, create_api_key, free_port, start_server
from tbal_client import TBALClient
from tbal_client.cli import EXIT_BAD_INPUT, EXIT_DONE, EXIT_OK, EXIT_SERVICE, build_parser
from tests.client.conftest import FAST_SETTINGS, digits, project_counts

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    workdir = tmp_path_factory.mktemp("cli-service")
    running = start_server(workdir, free_port())
    try:
        yield running, create_api_key(running.env, "cli-tests")
    finally:
        running.stop()


def tbal(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``tbal ARGS`` through the client verbs' own entry (the console script needs the entry point)."""
    return subprocess.run(
        [sys.executable, "-m", "tbal_client.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_whole_project_from_the_shell(server: tuple[Server, str], tmp_path: Path) -> None:
    running, key = server
    env = {**os.environ, "TBAL_URL": running.base_url, "TBAL_API_KEY": key, "PYTHONPATH": str(ROOT)}
    X, y = digits()
    ids = np.array([f"s{i}" for i in range(len(y))])
    np.savez(tmp_path / "digits.npz", X=X, y=y, external_ids=ids)
    truth = dict(zip(ids.tolist(), y.tolist(), strict=True))

    sets = [f"--set={k}={json.dumps(v)}" for k, v in FAST_SETTINGS.items()]
    done = tbal(["project", "create", "--name", "shell", "--data", "digits.npz", *sets], env, tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    pid = done.stdout.strip()
    assert pid.isdigit() and "10 classes, features [64]" in done.stderr
    assert "warning:" not in done.stderr  # 300 validation points hold a certificate
    few = tbal(["project", "set", pid, "--set", "validation_size=10"], env, tmp_path)
    assert few.returncode == EXIT_OK and "warning: no round can auto-label anything" in few.stderr, few.stderr
    back = tbal(
        ["project", "set", pid, f"--set=validation_size={FAST_SETTINGS['validation_size']}"], env, tmp_path
    )
    assert back.returncode == EXIT_OK and "warning:" not in back.stderr, back.stderr
    env["TBAL_PROJECT"] = pid

    done = tbal(["items", "upload", "--data", "digits.npz", "--chunk-rows", "700"], env, tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.strip() == "1797" and "1797 with ground truth" in done.stderr
    again = tbal(["items", "upload", "--data", "digits.npz", "--json"], env, tmp_path)
    assert json.loads(again.stdout) == {
        "received": 1797,
        "inserted": 0,
        "skipped": 1797,
        "ground_truth_added": 0,
    }

    with TBALClient(running.base_url, key=key) as tb:
        # Humans label the queue: a CSV with two annotators on every tenth item (a soft label).
        done = tbal(["queue", "list", "--out", "queue.jsonl"], env, tmp_path)
        assert done.returncode == EXIT_OK, done.stderr
        queued = [json.loads(line) for line in (tmp_path / "queue.jsonl").read_text().splitlines()]
        # the seed and half of validation_size: the other half is queued inside the stratum later
        assert len(queued) == tb.queue_counts(int(pid)).total == 210
        with (tmp_path / "labels.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["external_id", "label", "annotator"])
            for n, q in enumerate(queued):
                writer.writerow([q["external_id"], truth[q["external_id"]], "ann1"])
                if n % 10 == 0:
                    writer.writerow([q["external_id"], truth[q["external_id"]], "ann2"])
        done = tbal(["labels", "post", "--file", "labels.csv", "--batch-size", "100"], env, tmp_path)
        assert done.returncode == EXIT_OK, done.stderr
        assert done.stdout.strip() == "210" and "210 queries answered" in done.stderr
        humans = list(tb.iter_human_labels(int(pid)))
        assert sum(1 for h in humans if h.votes and set(h.votes) == {"ann1", "ann2"}) == 21
        assert all(h.label == truth[h.external_id] for h in humans)

        # Rounds until the service says the project is done (exit code 3).
        round_ids = []
        for _ in range(8):
            done = tbal(["round", "start", "--wait", "--poll", "0.2"], env, tmp_path)
            if done.returncode == EXIT_DONE:
                assert "nothing to do" in done.stderr
                break
            assert done.returncode == EXIT_OK, done.stderr
            assert "round " in done.stderr and "succeeded" in done.stderr and "[" in done.stderr
            round_ids.append(int(done.stdout.strip()))
            simulated = tbal(["labels", "simulate"], env, tmp_path)
            assert simulated.returncode == EXIT_OK, simulated.stderr
        else:
            raise AssertionError("the project never finished")
        rounds = tb.list_rounds(int(pid))
        assert [r.id for r in rounds] == round_ids and all(r.succeeded for r in rounds) and len(rounds) >= 2
        listing = tbal(["round", "list"], env, tmp_path)
        assert len(listing.stdout.splitlines()) == len(rounds) and "succeeded" in listing.stdout

        # Auto-labels out as CSV, and the service's full export as a manifest.
        done = tbal(["auto-labels", "export", "--out", "auto.csv"], env, tmp_path)
        assert done.returncode == EXIT_OK, done.stderr
        with (tmp_path / "auto.csv").open() as f:
            auto_rows = list(csv.DictReader(f))
        auto = list(tb.iter_auto_labels(int(pid)))
        assert len(auto_rows) == len(auto) == (rounds[-1].metrics or {})["auto_labeled_total"] > 0
        assert [(r["external_id"], int(r["label"])) for r in auto_rows] == [
            (a.external_id, a.label) for a in auto
        ]
        labeling = auto[0].round_id  # the first round that auto-labeled
        done = tbal(["auto-labels", "export", "--class", "3", "--round", str(labeling)], env, tmp_path)
        jsonl = [json.loads(line) for line in done.stdout.splitlines()]
        assert jsonl and all(r["label"] == 3 and r["round_id"] == labeling for r in jsonl)
        assert len(jsonl) == sum(1 for a in auto if a.label == 3 and a.round_id == labeling)

        done = tbal(["export", "--format", "manifest", "--out", "out/labels.manifest"], env, tmp_path)
        assert done.returncode == EXIT_OK, done.stderr
        manifest = (tmp_path / "out" / "labels.manifest").read_text().splitlines()
        assert len(manifest) == project_counts(tb, int(pid)).human_labels + len(auto)

        shown = json.loads(tbal(["project", "show", pid], env, tmp_path).stdout)
        assert shown["counts"]["auto_labels"] == len(auto)


def test_errors_are_one_line_and_an_exit_code(server: tuple[Server, str], tmp_path: Path) -> None:
    running, key = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBAL_")}
    env.update(TBAL_URL=running.base_url, PYTHONPATH=str(ROOT))

    done = tbal(["project", "list", "--key", "tbal_wrong"], env, tmp_path)
    assert done.returncode == EXIT_SERVICE and "401" in done.stderr and "TBAL_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr

    env["TBAL_API_KEY"] = key
    done = tbal(["items", "upload", "--project", "1", "--data", "missing.npz"], env, tmp_path)
    assert done.returncode == EXIT_BAD_INPUT and "file not found: missing.npz" in done.stderr
    done = tbal(["project", "create", "--name", "x", "--classes", "a,b"], env, tmp_path)
    assert done.returncode == EXIT_BAD_INPUT and "--data-kind, --input-shape" in done.stderr
    done = tbal(["round", "start", "--project", "99999"], env, tmp_path)
    assert done.returncode == EXIT_SERVICE and "404" in done.stderr and "no project 99999" in done.stderr
    (tmp_path / "bad.csv").write_text("id,value\n1,2\n")
    done = tbal(["labels", "post", "--project", "1", "--file", "bad.csv"], env, tmp_path)
    assert done.returncode == EXIT_BAD_INPUT and "external_id (or item_id) and label" in done.stderr
    done = tbal(["project", "delete", "1"], env, tmp_path)
    assert done.returncode == EXIT_BAD_INPUT and "--yes" in done.stderr

    env["TBAL_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = tbal(["project", "list", "--retries", "1"], env, tmp_path)
    assert (
        done.returncode == EXIT_SERVICE
        and "ConnectError" in done.stderr
        and "after 2 attempts" in done.stderr
    )


def test_the_verbs_parse_and_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TBAL_URL", "http://tbal.example:9000")
    monkeypatch.setenv("TBAL_API_KEY", "tbal_k")
    monkeypatch.setenv("TBAL_PROJECT", "12")
    args = build_parser().parse_args(["round", "start", "--wait"])
    assert (args.url, args.key, args.project, args.wait) == ("http://tbal.example:9000", "tbal_k", 12, True)
    args = build_parser().parse_args(["items", "upload", "--data", "x.npz", "--url", "http://other:1"])
    assert args.url == "http://other:1" and args.project == 12
    # issue 15, item 12: `tbal project show` reads $TBAL_PROJECT like the other verbs
    assert build_parser().parse_args(["project", "show"]).project_id == 12
    assert build_parser().parse_args(["project", "show", "3"]).project_id == 3


def test_the_tbal_command_has_the_verbs_once_installed() -> None:
    """Through the ``tbal.commands`` entry point (``client = "tbal_client.cli:register"``), which the
    ``tbal-client`` distribution declares (client/pyproject.toml) and ``make env`` installs."""
    owners = {e.dist.name for e in entry_points(group="tbal.commands", name="client") if e.dist}
    assert owners == {"tbal-client"}, "install the client: pip install -e ./client"
    from tbal.cli import build_parser as tbal_parser

    args = tbal_parser().parse_args(["round", "start", "--project", "3"])
    assert args.project == 3 and callable(args.func)
