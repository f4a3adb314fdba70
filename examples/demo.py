"""``python -m examples.demo`` (``make demo``): start tbal on the embedded default and drive a whole labeling
project over HTTP, as a client would.

1. start ``tbal serve`` (SQLite file, rounds in the API process) in a fresh folder and wait for /health;
2. create an API key with the admin command (``tbal create-key``);
3. create a project, upload the data with ground truth (``.npz`` body), answer the queue from the ground
   truth (``POST /simulate``), start rounds and poll them (stage and progress) until the label budget is
   spent or the pool is empty;
4. read every auto-label and human label back and print a per-round table: humans used, auto-labeled,
   coverage, true error (from the ground truth) and ε; then stop the server (``--keep-running`` leaves it up).

Data: scikit-learn's bundled digits (1,797 8×8 images, used as 64-d feature vectors; no network), or
``--data FILE.npz`` with ``X``/``y`` (or ``X_train``/``y_train``) arrays, e.g.
``../shared/data/mnist_test.npz``, or raw data (:mod:`examples.raw_data`): ``--data FILE.csv`` (or
``.jsonl`` / ``.json``) of labeled texts, uploaded as text to a text project (``--text-column``,
``--label-column``, else detected; ``--encoder``, default ``minilm``), or ``--data DIR`` of images in one
sub-folder per class, uploaded as image files (the service decodes and resizes them).

The functions that talk to the API (:func:`drive_project` and its parts) go through the typed client
(:class:`tbal_client.TBALClient`: chunked binary uploads with retries, keyset iteration, round waits);
they also take a plain ``httpx.Client`` pointed at the service, which they wrap (the end-to-end tests pass
FastAPI's TestClient).

(Why one module of ~790 lines: it is the example a new user reads from top to bottom, start to report;
the raw-data loaders are apart in :mod:`examples.raw_data`, and splitting the rest would send a reader
through four files to follow one project.)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np

from examples.raw_data import RawDataError, is_text_file, load_images, load_texts
from tbal_client import APIError, TBALClient, TBALClientError, WaitTimeout

API = "/api/v1"
PAGE_SIZE = 5000
FINAL_STATUSES = ("succeeded", "failed")
STOP_FIELDS = ("label_budget", "pool", "max_rounds")
"""A 409 on one of these fields when starting a round means the project is done."""
MAX_ROUNDS = 200

DIGITS_SETTINGS: dict[str, Any] = {
    "epsilon": 0.05,
    "delta": 0.05,
    "bound": "valid",
    "guarantee": "pooled",
    "model": "mlp",
    "hidden": [256, 64],
    "epochs": 30,
    "lr": 0.05,
    "confidence": "softmax",
    "query_strategy": "margin-random",
    "validation_size": 500,
    "calibration_fraction": 0.1,  # softmax fits nothing on D_cal: most validation labels go to D_th
    "seed_size": 100,
    "label_budget": 300,
    "batch_size": 50,
}
"""Digits: 1,797 items; 500 validation + 300 training labels; 5 rounds of about 5 s each on 2 cores."""
FILE_SETTINGS: dict[str, Any] = {
    # the library's defaults under these budgets, not an image or text project's preset (mnist-paper's
    # ResNet-8 with self-training, text-paper's floor): a demo of minutes on 2 cores
    "preset": None,
    "epsilon": 0.05,
    "delta": 0.05,
    "bound": "valid",
    "guarantee": "pooled",
    "epochs": 20,
    "confidence": "softmax",
    "query_strategy": "margin-random",
    "validation_size": 1000,
    "seed_size": 300,
    "label_budget": 600,
    "batch_size": 100,
}
"""A file (e.g. MNIST's 10k test images with LeNet-5): a few minutes on 2 cores."""
RAW_SETTINGS: dict[str, Any] = {
    **FILE_SETTINGS,
    "validation_size": 500,
    "seed_size": 100,
    "label_budget": 300,
}
"""Raw texts or images (``--data FILE.csv`` / ``DIR``): smaller sets, for a few thousand items."""
QUICK_SETTINGS: dict[str, Any] = {"epochs": 10, "label_budget": 200, "batch_size": 100}
"""``--quick``: fewer epochs and rounds (the end-to-end test of the demo)."""

KINDS: dict[str, Literal["features", "image", "text"]] = {
    "features": "features",
    "image": "image",
    "text": "text",
}
"""A DemoData's ``data_kind`` as the client's ``create_project`` takes it."""
Progress = Callable[[dict[str, Any]], None]
"""Called with a round's JSON each time it is polled."""
Client = TBALClient | httpx.Client
"""What the driving functions take: the typed client, or an httpx.Client (e.g. FastAPI's TestClient)
with the base URL and the ``Authorization`` header, which they wrap in one."""


class DemoError(RuntimeError):
    """The service answered something the demo cannot go on from; the message says what."""


# ---------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class DemoData:
    """Raw arrays as they are uploaded: ``X`` (n, d) float32 features or (n, H, W[, C]) uint8 images;
    ``y`` (n,) int64 ground truth (sent along for the simulation, and kept here to measure true error).
    Raw data instead: ``texts`` (a text project; ``X`` is empty) or image ``files`` under ``root`` (an
    image project of ``shape``; ``X`` is empty), uploaded as they are."""

    name: str
    X: np.ndarray
    y: np.ndarray
    classes: list[str]
    data_kind: str
    external_ids: list[str]
    texts: list[str] | None = None
    files: list[Path] | None = None
    root: Path | None = None
    shape: list[int] | None = None

    @property
    def input_shape(self) -> list[int]:
        if self.shape is not None or self.texts is not None:
            return list(self.shape or [])
        return [int(s) for s in self.X.shape[1:]]

    @property
    def size(self) -> int:
        return int(self.y.shape[0])

    def truth_by_external_id(self) -> dict[str, int]:
        return dict(zip(self.external_ids, (int(v) for v in self.y), strict=True))


def load_digits_data() -> DemoData:
    """scikit-learn's digits (bundled with the package) as 64-d feature vectors scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = np.asarray(digits.data, dtype=np.float32) / 16.0  # (1797, 64), pixel values 0..16
    y = np.asarray(digits.target, dtype=np.int64)
    return _make_data("digits", X, y, [str(c) for c in digits.target_names])


def load_file_data(path: str | Path) -> DemoData:
    """A ``.npz`` data set: checked with :func:`tbal.data.load_dataset` (shapes, labels, NaN), then its
    raw arrays read with ``numpy.load`` (the upload sends them as they are: uint8 images stay uint8)."""
    from tbal.data import load_dataset

    path = Path(path)
    dataset = load_dataset(path)  # raises DataError naming what is wrong
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        x_key, y_key = ("X", "y") if {"X", "y"} <= keys else ("X_train", "y_train")
        if not {x_key, y_key} <= keys:
            raise DemoError(f"{path}: expected arrays X and y (or X_train and y_train), got {sorted(keys)}")
        X = archive[x_key]
        y = np.asarray(archive[y_key], dtype=np.int64)
    if X.dtype != np.uint8:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise DemoError(
                f"{path}: expected uint8 images or (n, d) feature vectors, got {X.dtype} {X.shape}"
            )
    return _make_data(path.stem, X, y, list(dataset.class_names))


def load_data(path: Path, args: argparse.Namespace) -> DemoData:
    """``--data``: a .npz data set, a text file (CSV / JSONL / JSON) or a folder of class sub-folders."""
    try:
        if path.is_dir():
            images = load_images(path, image_size=args.image_size)
            y = np.array([images.classes.index(v) for v in images.labels], dtype=np.int64)
            return DemoData(path.name, np.empty((y.size, 0)), y, images.classes, "image",
                            images.external_ids, files=images.files, root=images.root,
                            shape=images.input_shape)  # fmt: skip
        if is_text_file(path):
            raw = load_texts(path, text_column=args.text_column, label_column=args.label_column)
            say(f"texts from column {raw.text_column!r}, classes from {raw.label_column!r}: {raw.classes}")
            y = np.array([raw.classes.index(v) for v in raw.labels], dtype=np.int64)
            return DemoData(path.stem, np.empty((y.size, 0)), y, raw.classes, "text", raw.external_ids,
                            texts=raw.texts)  # fmt: skip
    except (RawDataError, OSError) as exc:
        raise DemoError(str(exc)) from exc
    return load_file_data(path)


def _make_data(name: str, X: np.ndarray, y: np.ndarray, classes: list[str]) -> DemoData:
    kind = "image" if X.dtype == np.uint8 and X.ndim in (3, 4) else "features"
    ids = [f"{name}-{i}" for i in range(X.shape[0])]
    return DemoData(name=name, X=X, y=y, classes=classes, data_kind=kind, external_ids=ids)


# ---------------------------------------------------------------------------------------------------
# Driving a project over HTTP


@dataclass
class Evaluation:
    """The auto-labels checked against the ground truth and the human labels."""

    n_items: int
    n_auto: int
    n_wrong: int
    n_human: int
    duplicate_auto: int  # auto-labels beyond the first for one item
    auto_on_human: int  # items carrying both an auto-label and a human label
    epsilon: float

    @property
    def true_error(self) -> float:
        return self.n_wrong / self.n_auto if self.n_auto else 0.0

    @property
    def coverage(self) -> float:
        return self.n_auto / self.n_items if self.n_items else 0.0

    @property
    def within_epsilon(self) -> bool:
        return self.true_error <= self.epsilon


@dataclass
class DemoResult:
    project: dict[str, Any]
    rounds: list[dict[str, Any]]
    auto_labels: list[dict[str, Any]]
    human_labels: list[dict[str, Any]]
    evaluation: Evaluation
    timings: dict[str, float] = field(default_factory=dict)


def drive_project(
    client: Client,
    data: DemoData,
    settings: dict[str, Any],
    *,
    name: str,
    seed: int = 0,
    poll_s: float = 0.25,
    round_timeout_s: float = 600.0,
    on_progress: Progress | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> DemoResult:
    """Create a project, ingest ``data``, simulate the humans and run rounds until the budget is spent or
    the pool is empty; read the labels back and evaluate them. ``client``: a :class:`TBALClient`, or an
    ``httpx.Client`` carrying the base URL and the ``Authorization`` header."""
    tb = as_client(client)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    project = create_project(tb, data, settings, name=name, seed=seed)
    log(f"project {project['id']} ({project['name']}): {len(data.classes)} classes, {data.data_kind}")
    ingest = upload_items(tb, project["id"], data)
    timings["ingest"] = time.perf_counter() - start
    log(f"ingested {ingest['inserted']} items ({ingest['ground_truth_added']} with ground truth)")
    start = time.perf_counter()
    rounds = run_rounds(
        tb,
        project["id"],
        poll_s=poll_s,
        round_timeout_s=round_timeout_s,
        on_progress=on_progress,
        log=log,
    )
    timings["rounds"] = time.perf_counter() - start
    start = time.perf_counter()
    auto = [asdict(a) for a in tb.iter_auto_labels(project["id"], page_size=PAGE_SIZE)]
    human = [asdict(h) for h in tb.iter_human_labels(project["id"], page_size=PAGE_SIZE)]
    timings["read_back"] = time.perf_counter() - start
    evaluation = evaluate(auto, human, data.truth_by_external_id(), epsilon=_epsilon(project))
    return DemoResult(project, rounds, auto, human, evaluation, timings)


def as_client(client: Client) -> TBALClient:
    """``client`` itself, or a :class:`TBALClient` over an ``httpx.Client`` (e.g. FastAPI's TestClient)."""
    return client if isinstance(client, TBALClient) else TBALClient(http=client)


def create_project(
    client: Client, data: DemoData, settings: dict[str, Any], *, name: str, seed: int = 0
) -> dict[str, Any]:
    project = as_client(client).create_project(
        name,
        classes=data.classes,
        data_kind="image"
        if data.data_kind == "image"
        else "text"
        if data.data_kind == "text"
        else "features",
        input_shape=data.input_shape,
        settings=settings,
        seed=seed,
    )
    return project.raw


def upload_items(client: Client, project_id: int, data: DemoData) -> dict[str, Any]:
    """The items with their external ids and ground truth (for the simulation), in binary ``.npz``
    chunks (the client retries each chunk on transient errors); raw texts and image files as they are
    (a chunk the service answers with an ingest job is waited for)."""
    tb = as_client(client)
    if data.texts is not None:
        truth = [data.classes[int(v)] for v in data.y]
        result = tb.upload_texts(project_id, data.texts, external_ids=data.external_ids, ground_truth=truth)
    elif data.files is not None:
        result = tb.upload_images(project_id, data.files, root=data.root, labels_from_folders=True)
    else:
        result = tb.upload_items(project_id, data.X, external_ids=data.external_ids, ground_truth=data.y)
    return asdict(result)


def run_rounds(
    client: Client,
    project_id: int,
    *,
    poll_s: float = 0.25,
    round_timeout_s: float = 600.0,
    on_progress: Progress | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> list[dict[str, Any]]:
    """Answer the queue from the ground truth and run rounds until the service says the project is done
    (409 on the label budget, the pool or max_rounds). Returns the finished rounds; a failed round
    raises :class:`DemoError` with its reason."""
    tb = as_client(client)
    finished: list[dict[str, Any]] = []
    for _ in range(MAX_ROUNDS):
        if tb.queue_counts(project_id).total:
            answered = tb.simulate(project_id)
            log(
                f"humans (simulated) answered {answered.answered} queries: "
                f"{answered.validation} validation, {answered.training} training"
            )
        try:
            started = tb.start_round(project_id)
        except APIError as exc:
            if exc.status == 409 and exc.field in STOP_FIELDS:
                log(f"done: {exc.reason}")
                return finished
            raise DemoError(f"could not start a round: {exc}") from exc
        round_ = wait_round(tb, started.id, poll_s, round_timeout_s, on_progress)
        if round_["status"] != "succeeded":
            raise DemoError(f"round {round_['index']} {round_['status']}: {round_.get('error')}")
        finished.append(round_)
        if why := why_nothing_auto_labeled(round_):
            log(why)
    raise DemoError(f"the project did not finish within {MAX_ROUNDS} rounds")


def why_nothing_auto_labeled(round_: dict[str, Any]) -> str | None:
    """For a round that auto-labeled nothing, why (in the usual case: too few validation points per
    class for the bound to certify error ≤ ε) and what to change; None when it auto-labeled something.

    With no mistake among n validation points above a threshold, the valid (Clopper–Pearson) bound is
    1 − δ^(1/n) ≈ ln(1/δ)/n, so a class needs about ln(1/δ_k)/ε of its round's D_th points (δ_k: the
    round's share of δ); the estimate here is for the message only, the thresholds are the library's."""
    m = round_.get("metrics") or {}
    if m.get("auto_labeled", 0) or not m:
        return None
    if m.get("delta_round") == 0 and m.get("bound") == "valid":
        return (
            f"round {round_['index']} auto-labels nothing by design: with delta_schedule "
            f"'{m.get('delta_schedule', 'final')}' the last planned round (the one that runs when the label "
            "budget is spent) certifies the thresholds with the whole δ and the best model; earlier rounds "
            "train, query and report. Set delta_schedule 'uniform' to certify in every round (less in total)."
        )
    classes = m.get("thresholds") or []
    n_val = int(m.get("validation_labels") or 0)
    k = max(1, len(classes))
    epsilon = float(m.get("epsilon") or 0.0)
    delta = float(m.get("delta_round") or m.get("delta") or 0.0)
    need = ""
    if 0 < epsilon < 1 and 0 < delta < 1 and m.get("bound") == "valid":
        need = (
            f"; with no mistake a class needs about {math.ceil(math.log(1 / delta) / epsilon)} (ln(1/δ_k)/ε)"
        )
    return (
        f"round {round_['index']} auto-labeled nothing: no class had enough validation points above a "
        f"threshold to certify error ≤ {_pct(epsilon)} ({n_val} validation labels for {k} classes, "
        f"~{n_val // k} per class, part of them for calibration{need}). More validation labels "
        "(validation_size, validation_floor), a larger ε or a better model let rounds auto-label."
    )


def wait_round(
    client: Client, round_id: int, poll_s: float, timeout_s: float, on_progress: Progress | None = None
) -> dict[str, Any]:
    """Poll ``GET /rounds/{id}`` until the round is final; its JSON."""
    report = None if on_progress is None else (lambda r: on_progress(r.raw))
    try:
        done = as_client(client).wait_round(
            round_id, poll_s=poll_s, timeout_s=timeout_s, progress=report, raise_on_failure=False
        )
    except WaitTimeout as exc:
        raise DemoError(str(exc)) from exc
    return done.raw


def fetch_all(client: Client, path: str, *, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Every row of a keyset-paginated listing (``after_id`` / ``next_after_id``)."""
    return list(as_client(client).paginate(path, page_size=limit))


def evaluate(
    auto_labels: list[dict[str, Any]],
    human_labels: list[dict[str, Any]],
    truth: dict[str, int],
    *,
    epsilon: float,
) -> Evaluation:
    """True error of the auto-labels (against ``truth`` by external id), duplicates, overlaps."""
    auto_items = [a["item_id"] for a in auto_labels]
    human_items = {h["item_id"] for h in human_labels}
    wrong = sum(1 for a in auto_labels if truth[a["external_id"]] != a["label"])
    return Evaluation(
        n_items=len(truth),
        n_auto=len(auto_labels),
        n_wrong=wrong,
        n_human=len(human_items),
        duplicate_auto=len(auto_items) - len(set(auto_items)),
        auto_on_human=len(set(auto_items) & human_items),
        epsilon=epsilon,
    )


def format_table(rounds: list[dict[str, Any]], evaluation: Evaluation | None = None) -> str:
    """The per-round table: round, humans used, auto-labeled (round / all), coverage of all items,
    true error (round / all auto-labels so far) and ε."""
    header = (
        f"{'round':>5}  {'humans':>6}  {'auto':>6}  {'auto all':>8}  {'coverage':>8}  "
        f"{'true err':>8}  {'err all':>7}  {'ε':>5}  {'seconds':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rounds:
        m = r.get("metrics") or {}
        true_error = m.get("true_error") or {}
        lines.append(
            f"{r['index']:>5}  {m.get('human_labels', 0):>6}  {m.get('auto_labeled', 0):>6}  "
            f"{m.get('auto_labeled_total', 0):>8}  {_pct(m.get('coverage_total')):>8}  "
            f"{_pct(true_error.get('round')):>8}  {_pct(true_error.get('total')):>7}  "
            f"{_pct(m.get('epsilon')):>5}  {_seconds(r):>7}"
        )
    if evaluation is not None:
        verdict = "within ε" if evaluation.within_epsilon else "ABOVE ε"
        lines.append(
            f"all auto-labels: {evaluation.n_auto} of {evaluation.n_items} items "
            f"(coverage {_pct(evaluation.coverage)}), {evaluation.n_wrong} wrong: true error "
            f"{_pct(evaluation.true_error)}, {verdict} = {_pct(evaluation.epsilon)}; "
            f"human labels: {evaluation.n_human}; duplicate auto-labels: {evaluation.duplicate_auto}; "
            f"auto-labels on human-labeled items: {evaluation.auto_on_human}"
        )
    return "\n".join(lines)


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * float(value):.1f}%"


def _seconds(round_: dict[str, Any]) -> str:
    started, finished = round_.get("started_at"), round_.get("finished_at")
    if not started or not finished:
        return "-"
    delta = datetime.fromisoformat(finished) - datetime.fromisoformat(started)
    return f"{delta.total_seconds():.1f}"


def _epsilon(project: dict[str, Any]) -> float:
    return float(project["config"]["thresholds"]["epsilon"])


# ---------------------------------------------------------------------------------------------------
# The server process


@dataclass
class Server:
    """``tbal serve`` running as a child process on 127.0.0.1:<port>."""

    process: subprocess.Popen[bytes]
    base_url: str
    env: dict[str, str]
    log_path: Path

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def service_env(workdir: Path) -> dict[str, str]:
    """The environment of the embedded default in ``workdir``: SQLite file, artifacts beside it, no broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBAL_")}
    env.update(
        TBAL_DATABASE_URL=f"sqlite:///{workdir / 'tbal.sqlite'}",
        TBAL_ARTIFACTS_DIR=str(workdir / "artifacts"),
        TBAL_PROGRESS_INTERVAL_S="0.2",
    )
    return env


def start_server(workdir: Path, port: int, *, timeout_s: float = 90.0) -> Server:
    """Start ``tbal serve`` on the embedded default and wait until ``/health`` answers 200."""
    env = service_env(workdir)
    log_path = workdir / "server.log"
    command = [sys.executable, "-m", "tbal.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", env, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"tbal serve exited with code {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    server.stop()
    raise DemoError(f"tbal serve did not answer /health within {timeout_s:.0f} s:\n{server.log_tail()}")


def create_api_key(env: dict[str, str], name: str = "demo") -> str:
    """An API key from the admin command ``tbal create-key`` (it prints the secret on stdout)."""
    done = subprocess.run(
        [sys.executable, "-m", "tbal.cli", "create-key", "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise DemoError(f"tbal create-key failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[0].strip()


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it can be bound on 127.0.0.1, else any free port."""
    candidates = [preferred] if preferred else []
    for port in [*candidates, 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise DemoError("no free TCP port on 127.0.0.1")


# ---------------------------------------------------------------------------------------------------
# The command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.demo",
        description="Start tbal on the embedded default and drive a whole labeling project over HTTP.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="a .npz data set, a CSV / JSONL / JSON file of labeled texts, or a folder with one sub-folder "
        "of images per class (default: scikit-learn's digits)",
    )
    parser.add_argument("--text-column", help="texts: the column holding the text (default: detected)")
    parser.add_argument("--label-column", help="texts: the column holding the label (default: detected)")
    parser.add_argument("--encoder", default="minilm", help="texts: the encoder (minilm, hashing, ...)")
    parser.add_argument("--image-size", type=int, help="images: resize to N×N (default: the first image's)")
    parser.add_argument("--port", type=int, default=8000, help="port of the server (a free one if taken)")
    parser.add_argument("--workdir", type=Path, help="folder for the SQLite file, artifacts and log")
    parser.add_argument("--seed", type=int, default=0, help="the project's seed")
    parser.add_argument("--quick", action="store_true", help="fewer epochs and rounds (tests)")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a project setting, e.g. --set epsilon=0.1 (values are read as JSON when they parse)",
    )
    parser.add_argument("--json", type=Path, help="write the rounds and the evaluation to this file")
    parser.add_argument("--keep-running", action="store_true", help="leave the server up until Ctrl-C")
    return parser


def project_settings(args: argparse.Namespace) -> dict[str, Any]:
    raw = args.data is not None and (Path(args.data).is_dir() or is_text_file(Path(args.data)))
    settings = dict(RAW_SETTINGS if raw else FILE_SETTINGS if args.data else DIGITS_SETTINGS)
    if args.data is not None and is_text_file(Path(args.data)):
        settings["encoder"] = args.encoder
    elif args.data is not None and Path(args.data).is_dir():
        settings["model"] = "cnn"  # the service's default model reads feature vectors, not pixels
    if args.quick:
        settings.update(QUICK_SETTINGS)
    for item in args.settings:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise DemoError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        settings[name.strip()] = value
    return settings


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except (DemoError, TBALClientError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1


def _main(args: argparse.Namespace) -> int:
    settings = project_settings(args)
    data = load_data(args.data, args) if args.data else load_digits_data()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    workdir = (args.workdir or Path("var") / "demo" / stamp).resolve()
    if (workdir / "tbal.sqlite").exists():
        raise DemoError(f"{workdir} already holds a database; give another --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port(args.port)
    what = "texts" if data.texts is not None else f"items of shape {tuple(data.input_shape)}"
    say(f"tbal demo: {data.name}, {data.size} {what}, {workdir}")
    say(f"starting tbal serve on http://127.0.0.1:{port} (SQLite, rounds in process)...")
    started = time.perf_counter()
    server = start_server(workdir, port)
    try:
        key = create_api_key(server.env)
        say(f"API key created with `tbal create-key` ({key[:12]}…)")
        with TBALClient(server.base_url, key=key, timeout_s=60.0) as client:
            result = drive_project(
                client,
                data,
                settings,
                name=f"{data.name}-demo-{stamp}",
                seed=args.seed,
                on_progress=_ProgressLine(),
                log=say,
            )
        dashboard = httpx.get(f"{server.base_url}/dashboard", timeout=10.0).status_code == 200
        elapsed = time.perf_counter() - started
        say("")
        say(format_table(result.rounds, result.evaluation))
        say("")
        say(f"{len(result.rounds)} rounds in {elapsed:.0f} s (ingest {result.timings['ingest']:.1f} s)")
        _where_to_look(server, result, workdir, dashboard, key=key, keep_running=args.keep_running)
        if args.json:
            _write_json(args.json, result)
        if not result.evaluation.within_epsilon:
            say("WARNING: true error above ε (the valid bound holds with probability ≥ 1 − δ)")
        if args.keep_running:
            say("server running; Ctrl-C stops it")
            server.process.wait()
    except KeyboardInterrupt:
        say("interrupted")
    except (DemoError, TBALClientError):
        say(f"server log ({server.log_path}):\n{server.log_tail()}")
        raise
    finally:
        server.stop()
    return 0


def _where_to_look(
    server: Server, result: DemoResult, workdir: Path, dashboard: bool, *, key: str, keep_running: bool
) -> None:
    pid = result.project["id"]
    if keep_running:
        say("where to look (the server keeps running until Ctrl-C):")
    else:
        say(
            "where to look: the server stops when the demo ends; keep it up with "
            "`make demo ARGS=--keep-running` (or --keep-running), or start it again with the line below"
        )
    say(f"  API docs     {server.base_url}{API}/docs")
    say(f"  OpenAPI      {server.base_url}{API}/openapi.json")
    # The key travels in the URL fragment, which the browser never sends to the server (the page keeps it
    # in localStorage and sends it as a Bearer header); this is the demo's throwaway key.
    say(
        f"  dashboard    {server.base_url}/dashboard?project={pid}#key={key}"
        if dashboard
        else "  dashboard    (not in this version)"
    )
    say(f"  auto-labels  {server.base_url}{API}/projects/{pid}/auto-labels")
    say(f"  export       {server.base_url}{API}/projects/{pid}/export?format=jsonl")
    say(f"  database     {workdir / 'tbal.sqlite'}; artifacts {workdir / 'artifacts'}; log {server.log_path}")
    if not keep_running:
        say(
            f"  again:       TBAL_DATABASE_URL={server.env['TBAL_DATABASE_URL']} "
            f"TBAL_ARTIFACTS_DIR={server.env['TBAL_ARTIFACTS_DIR']} {tbal_command()} serve "
            f"--port {server.base_url.rsplit(':', 1)[1]}"
        )


def tbal_command() -> str:
    """How to run ``tbal`` from here: the script beside this Python (``.venv/bin/tbal``, relative to the
    current folder when it is under it), else ``python -m tbal.cli``."""
    script = Path(sys.executable).parent / "tbal"
    if not script.exists():
        return f"{sys.executable} -m tbal.cli"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def _write_json(path: Path, result: DemoResult) -> None:
    e = result.evaluation
    payload = {
        "project": result.project,
        "rounds": result.rounds,
        "evaluation": {
            "n_items": e.n_items,
            "n_auto": e.n_auto,
            "n_wrong": e.n_wrong,
            "n_human": e.n_human,
            "true_error": e.true_error,
            "coverage": e.coverage,
            "epsilon": e.epsilon,
            "within_epsilon": e.within_epsilon,
            "duplicate_auto": e.duplicate_auto,
            "auto_on_human": e.auto_on_human,
        },
        "timings": result.timings,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))


class _ProgressLine:
    """Prints a round's stage and progress as it changes (one line per stage when not on a terminal)."""

    def __init__(self) -> None:
        self._last: tuple[Any, ...] | None = None
        self._tty = sys.stdout.isatty()
        self._started: dict[int, float] = {}

    def __call__(self, round_: dict[str, Any]) -> None:
        status, stage, progress = round_["status"], round_.get("stage") or "-", float(round_["progress"])
        # Seconds since the round was first seen: the line moves while a stage reports no progress.
        now = time.monotonic()
        elapsed = now - self._started.setdefault(round_["id"], now)
        key: tuple[Any, ...] = (round_["id"], status, stage) + (
            (round(progress, 2), int(elapsed)) if self._tty else ()
        )
        if key == self._last:
            return
        self._last = key
        text = (
            f"round {round_['index']}: {status:<9} stage {stage:<10} {100 * progress:5.1f}%  {elapsed:4.0f} s"
        )
        if self._tty:
            end = "\n" if status in FINAL_STATUSES else ""
            print(f"\r{text}", end=end, flush=True)
        else:
            say(text)


def say(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
