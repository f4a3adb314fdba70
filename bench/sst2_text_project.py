"""SST-2 from raw sentences (issue 13): the MiniLM encoder against the stored embeddings, the service's
text upload against the encoder's own ``encode``, and a text project driven through the API against a
feature project of the stored embeddings (same sentences, seed and budgets).

    .venv/bin/python bench/sst2_text_project.py --n 3000 [--json bench/results/sst2_text.json]

Everything runs in this process (SQLite, rounds in process, FastAPI's TestClient), on the CPU unless
``--device cuda``. Part C is a scaled-down run (``--n`` sentences, budgets below), not the 67k-sentence
project of the issue. Three projects, same seed and budgets: ``text`` (raw sentences through the API,
MiniLM in the service), ``array`` (this process's MiniLM features uploaded as an array: must match
``text`` exactly) and ``file`` (the file's float16 embeddings: may drift from both by a few threshold
points, the features differing by up to ~1e-4).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2_minilm.npz"
SETTINGS: dict[str, Any] = {
    "preset": None,  # the library's defaults in all three projects (a text project's own is text-paper)
    "validation_size": 600,
    "seed_size": 150,
    "label_budget": 450,
    "batch_size": 100,
    "model": "mlp",
    "hidden": [256],
    "epochs": 20,
    "lr": 0.01,
    "confidence": "softmax",
    "bound": "valid",
    "epsilon": 0.1,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--overhead", action="store_true", help="only the service's cost beside encoding (hashing encoder)"
    )
    parser.add_argument(
        "--encoder-only", action="store_true", help="only MiniLM against the stored embeddings"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.overhead:
        print(json.dumps(_overhead(args.data, args.n)), flush=True)
        return
    import torch

    with np.load(args.data) as z:
        texts = bytes(z["text_train_utf8"]).decode("utf-8").split("\n")[: args.n]
        X_file = z["X_train"][: args.n].astype(np.float32)
        y = z["y_train"][: args.n].astype(np.int64)
        classes = [str(c) for c in z["class_names"]]
    record: dict[str, Any] = {"n": args.n, "device": args.device, "torch_threads": torch.get_num_threads()}
    record["encoder"], X_encoded = _encoder_check(texts, X_file, args.device)
    print(json.dumps(record["encoder"]), flush=True)
    if args.encoder_only:
        _write(args.json, record)
        return
    record["service"] = _service(texts, y, X_file, X_encoded, classes, args.device)
    # the encoder alone again, after the service: the machine is shared, so the ratio uses the faster
    # of the two direct runs (the conservative figure for the service)
    again, _X = _encoder_check(texts, X_file, args.device)
    direct = max(record["encoder"]["sentences_per_s"], again["sentences_per_s"])
    record["encoder_again_sentences_per_s"] = again["sentences_per_s"]
    record["service"]["ratio_to_encode"] = round(record["service"]["sentences_per_s"] / direct, 3)
    print(json.dumps(record["service"]), flush=True)
    _write(args.json, record)


def _write(path: Path | None, record: dict[str, Any]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _encoder_check(texts: list[str], X_file: np.ndarray, device: str) -> tuple[dict[str, Any], np.ndarray]:
    from tbal.encoders import EncoderConfig, make_text_encoder

    encoder = make_text_encoder(EncoderConfig("minilm", device=device))
    encoder.encode(texts[:8])  # load the model outside the timing
    start = time.perf_counter()
    X = encoder.encode(texts)
    elapsed = time.perf_counter() - start
    diff = np.abs(X - X_file)
    cos = (X * X_file).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(X_file, axis=1)
    return {
        "sentences": len(texts),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "rows_within_1e-3": int((diff.max(1) <= 1e-3).sum()),
        "min_cosine": float(cos.min()),
        "encode_s": round(elapsed, 2),
        "sentences_per_s": round(len(texts) / elapsed, 1),
    }, X


def _service(
    texts: list[str],
    y: np.ndarray,
    X_file: np.ndarray,
    X_encoded: np.ndarray,
    classes: list[str],
    device: str,
) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from app.db.migrate import upgrade
    from app.db.session import make_engine, make_session_factory
    from app.items import raw as raw_items
    from app.main import create_app
    from app.projects.keys_service import create_key
    from app.settings import Settings
    from tbal_client import TBALClient

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/tbal.sqlite",
            artifacts_dir=Path(tmp) / "artifacts",
            upload_dir=Path(tmp) / "uploads",
            train_device=device,
            torch_threads=max(1, torch_threads()),
        )
        upgrade(settings)
        engine = make_engine(settings)
        _key, secret = create_key(make_session_factory(engine), "bench")
        engine.dispose()
        with TestClient(create_app(settings)) as http:
            tb = TBALClient(http=http, key=secret, upload_timeout_s=3600)
            text_pid = tb.create_project("sst2-text", classes=classes, data_kind="text",
                                         settings={**SETTINGS, "encoder": "minilm"}).id  # fmt: skip
            raw_items.text_encoder({"encoder": "minilm"}, device=device).encode(["warm-up"])  # load the model
            start = time.perf_counter()
            done = tb.upload_texts(text_pid, texts, ground_truth=[int(v) for v in y], id_prefix="s",
                                   chunk_rows=1000)  # fmt: skip
            upload_s = time.perf_counter() - start
            feat_pid = tb.create_project("sst2-file", classes=classes, data_kind="features",
                                         input_shape=[X_file.shape[1]], settings=SETTINGS).id  # fmt: skip
            tb.upload_items(feat_pid, X_file, ground_truth=y, id_prefix="s")
            # the same MiniLM features as an array upload: the text path must give exactly its rounds
            array_pid = tb.create_project("sst2-array", classes=classes, data_kind="features",
                                          input_shape=[X_file.shape[1]], settings=SETTINGS).id  # fmt: skip
            tb.upload_items(array_pid, X_encoded, ground_truth=y, id_prefix="s")
            results = {
                "text": _drive(tb, text_pid),
                "array": _drive(tb, array_pid),
                "file": _drive(tb, feat_pid),
            }
    rate = done.inserted / upload_s
    return {
        "upload_s": round(upload_s, 2),
        "sentences_per_s": round(rate, 1),
        "settings": SETTINGS,
        "projects": results,
    }


def _overhead(data: Path, n: int) -> dict[str, Any]:
    """The service's text upload with the ``hashing`` encoder (about 30k sentences/s) against that
    encoder's own ``encode``: what parsing, checks and the writes of items and texts cost per sentence."""
    from fastapi.testclient import TestClient

    from app.db.migrate import upgrade
    from app.db.session import make_engine, make_session_factory
    from app.main import create_app
    from app.projects.keys_service import create_key
    from app.settings import Settings
    from tbal.encoders import make_text_encoder
    from tbal_client import TBALClient

    with np.load(data) as z:
        texts = bytes(z["text_train_utf8"]).decode("utf-8").split("\n")[:n]
    encoder = make_text_encoder("hashing:384")
    encoder.encode(texts[:10])
    start = time.perf_counter()
    encoder.encode(texts)
    direct = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/t.sqlite", artifacts_dir=Path(tmp) / "a",
                            upload_dir=Path(tmp) / "u", train_device="cpu", torch_threads=1)  # fmt: skip
        upgrade(settings)
        engine = make_engine(settings)
        _key, secret = create_key(make_session_factory(engine), "bench")
        engine.dispose()
        with TestClient(create_app(settings)) as http:
            tb = TBALClient(http=http, key=secret)
            pid = tb.create_project(
                "t", classes=["0", "1"], data_kind="text", settings={"encoder": "hashing:384"}
            ).id
            tb.upload_texts(pid, ["warm-up"], external_ids=["warm-up"])
            start = time.perf_counter()
            tb.upload_texts(pid, texts, chunk_rows=2000)
            service = time.perf_counter() - start
    return {
        "sentences": len(texts),
        "hashing_encode_s": round(direct, 3),
        "service_upload_s": round(service, 3),
        "service_ms_per_1000_beside_encoding": round((service - direct) / len(texts) * 1e6, 1),
    }


def _drive(tb: Any, pid: int) -> dict[str, Any]:
    from tbal_client import APIError

    rounds = []
    for _ in range(50):
        tb.simulate(pid)
        try:
            done = tb.run_round(pid, poll_s=0.2)
        except APIError as exc:
            if exc.status == 409:
                break
            raise
        m = done.metrics or {}
        rounds.append({k: m.get(k) for k in ("coverage_total", "auto_labeled", "pool_size", "encoder")}
                      | {"true_error_total": (m.get("true_error") or {}).get("total")})  # fmt: skip
    last = rounds[-1] if rounds else {}
    return {"rounds": len(rounds), "coverage": last.get("coverage_total"),
            "true_error": last.get("true_error_total"), "per_round": rounds}  # fmt: skip


if __name__ == "__main__":
    main()
