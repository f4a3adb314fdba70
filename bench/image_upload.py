"""Image files through the service (issue 13): CIFAR-10 test images written as PNG, decoded by tbal's
decoder alone (Pillow) against the same files uploaded to an image project over HTTP (in process, SQLite,
multipart requests of 256 files through ``tbal_client``), in one run; and a check that what was stored is
what the decoder gives (for PNG/BMP at 32x32: the .npz's pixels).

    .venv/bin/python bench/image_upload.py --n 2000 --json bench/results/image_upload_n2000.json
    .venv/bin/python bench/image_upload.py --n 500 --size 224 --format JPEG \
        --json bench/results/image_upload_224_jpeg.json
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_test_cifar10h.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--size", type=int, default=32, help="write the images at this size (bicubic)")
    parser.add_argument("--format", default="PNG", choices=("PNG", "JPEG", "WEBP", "BMP"))
    args = parser.parse_args()
    from PIL import Image

    from tbal.encoders.images import decode_images

    with np.load(args.data) as z:
        X = z["X"][: args.n]
        names = [str(c) for c in z["class_names"]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pngs"
        folder.mkdir()
        files = []
        if args.size != 32:
            X = np.stack(
                [
                    np.asarray(Image.fromarray(x).resize((args.size, args.size), Image.Resampling.BICUBIC))
                    for x in X
                ]
            )
        exact = args.format in ("PNG", "BMP")
        for i, x in enumerate(X):
            buf = io.BytesIO()
            Image.fromarray(x).save(
                buf, format=args.format, **({"quality": 90} if args.format == "JPEG" else {})
            )
            (folder / f"{i:05d}.png").write_bytes(buf.getvalue())
            files.append(folder / f"{i:05d}.png")
        runs = []
        for _ in range(2):  # decode, upload, decode, upload: a shared machine's load moves both
            start = time.perf_counter()
            decoded = decode_images([f.read_bytes() for f in files], (args.size, args.size, 3))
            runs.append(("decode", time.perf_counter() - start))
            assert np.array_equal(decoded, X) or not exact
            upload_s, same = _upload(files, decoded, names, Path(tmp))
            runs.append(("upload", upload_s))
    decode_best = min(t for kind, t in runs if kind == "decode")
    upload_best = min(t for kind, t in runs if kind == "upload")
    record: dict[str, Any] = {
        "images": len(X),
        "size": args.size,
        "format": args.format,
        "decode_s": [round(t, 3) for kind, t in runs if kind == "decode"],
        "upload_s": [round(t, 3) for kind, t in runs if kind == "upload"],
        "decode_images_per_s": round(len(X) / decode_best, 1),
        "upload_images_per_s": round(len(X) / upload_best, 1),
        "ratio": round(decode_best / upload_best, 3),
        "stored_equal_to_decoded": same,
        "decoded_equal_to_npz": bool(exact),
    }
    print(json.dumps(record), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1))


def _upload(files: list[Path], X: np.ndarray, classes: list[str], tmp: Path) -> tuple[float, bool]:
    import uuid

    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine, text

    from app.db.migrate import upgrade
    from app.db.session import make_engine, make_session_factory
    from app.main import create_app
    from app.projects.keys_service import create_key
    from app.settings import Settings
    from tbal_client import TBALClient

    db = tmp / f"{uuid.uuid4().hex[:8]}.sqlite"
    settings = Settings(database_url=f"sqlite:///{db}", artifacts_dir=tmp / "a", upload_dir=tmp / "u",
                        train_device="cpu", torch_threads=1)  # fmt: skip
    upgrade(settings)
    engine = make_engine(settings)
    _key, secret = create_key(make_session_factory(engine), "bench")
    engine.dispose()
    with TestClient(create_app(settings)) as http:
        tb = TBALClient(http=http, key=secret)
        pid = tb.create_project("cifar", classes=classes, data_kind="image", input_shape=list(X.shape[1:])).id
        start = time.perf_counter()
        done = tb.upload_images(pid, files, chunk_files=256)
        elapsed = time.perf_counter() - start
    assert done.inserted == len(files)
    check = create_engine(settings.database_url)
    with check.connect() as conn:
        rows = conn.execute(text("SELECT external_id, data FROM items ORDER BY external_id")).all()
    check.dispose()
    stored = np.stack([np.frombuffer(bytes(r[1]), np.uint8).reshape(X.shape[1:]) for r in rows])
    return elapsed, bool(np.array_equal(stored, X))


if __name__ == "__main__":
    main()
