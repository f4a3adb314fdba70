"""The command: a short end-to-end run on the digits, the JSON record, and one clear line for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tbal.cli import _load, build_parser, config_from_args, main, preset_name
from tbal.config import ConfigError
from tbal.minilm import MAX_TOKENS
from tests.tbal.synthetic import write_npz

FAST = [
    "--epochs",
    "30",
    "--budget",
    "300",
    "--seed-size",
    "200",
    "--batch",
    "100",
    "--validation-size",
    "400",
]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_run_on_digits_two_rounds_writes_the_json_record(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "run.json"
    code, out, err = _run(
        [
            "run",
            "--data",
            str(shared_data / "sklearn_digits.npz"),
            "--preset",
            "none",  # the library's defaults (8×8 images would get mnist-paper's; see the tests below)
            *FAST,
            "--bound",
            "paper",
            "--json",
            str(out_json),
        ],
        capsys,
    )
    assert code == 0, err
    assert "seed 0 round  0" in out and "seed 0 round  1" in out
    assert "| vanilla / softmax / paper |" in out
    record = json.loads(out_json.read_text())
    rounds = record["runs"][0]["rounds"]
    assert len(rounds) == 2
    assert rounds[0]["human_training_labels"] == 200 and rounds[1]["human_training_labels"] == 300
    assert [r["validation_labels_trained"] for r in rounds] == [0, 0]  # no stratum, none trained on
    assert rounds[-1]["auto_labeled_total"] > 0  # digits are easy: the paper bound auto-labels a lot
    assert set(rounds[0]["timings"]) == {"train", "calibrate", "thresholds", "auto-label", "query"}
    assert record["config"]["thresholds"]["bound"] == "paper"
    # what bit-reproducibility depends on travels with the numbers
    env = record["environment"]
    assert (
        env["torch_threads"] >= 1 and env["torch"] and env["numpy"] and env["cpu"] and env["cpu_capability"]
    )


def test_a_run_whose_validation_points_cannot_certify_is_told_before_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fewer validation points than a certificate needs (tbal.plan.certificate_needs): a warning on stderr
    before the first round, and the record says why nothing was auto-labeled; none under the papers' rule."""
    rng = np.random.default_rng(0)
    data = tmp_path / "blobs.npz"
    write_npz(data, X=rng.normal(size=(200, 4)).astype(np.float32), y=rng.integers(0, 2, size=200))
    small = ["run", "--data", str(data), "--epochs", "1", "--budget", "40", "--seed-size", "40"]
    out_json = tmp_path / "run.json"
    code, _out, err = _run([*small, "--validation-size", "40", "--json", str(out_json)], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("tbal: warning: ")]
    assert (
        len(warnings) == 1
        and "no round can auto-label anything" in warnings[0]
        and "at most 40" in warnings[0]
    )
    record = json.loads(out_json.read_text())
    assert record["certificate_needs"]["can_certify"] is False
    # one round: δ_k 0.045 (a tenth of δ kept for rounds past the plan), 0.3 of it to the fallback
    assert record["certificate_needs"]["clean_points"] == 68
    assert record["runs"][0]["coverage"] == 0.0

    code, _out, err = _run([*small, "--validation-size", "100"], capsys)
    assert code == 0 and "tbal: warning:" not in err, err
    code, _out, err = _run([*small, "--validation-size", "40", "--bound", "paper"], capsys)
    assert code == 0 and "tbal: warning:" not in err, err


@pytest.fixture()
def good_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"X": rng.normal(size=(60, 4)).astype(np.float32), "y": rng.integers(0, 3, size=60)}


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing-file", "not found"),
        ("wrong-keys", "X"),
        ("labels-out-of-range", "label"),
        ("nan-features", "NaN"),
        ("epsilon", "epsilon"),
        ("budget", "budget larger than the data"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(
    case: str,
    needle: str,
    tmp_path: Path,
    good_arrays: dict[str, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "d.npz"
    extra: list[str] = []
    if case == "missing-file":
        data = tmp_path / "absent.npz"
    elif case == "wrong-keys":
        write_npz(data, features=good_arrays["X"], labels=good_arrays["y"])
    elif case == "labels-out-of-range":
        y = good_arrays["y"].copy()
        y[0] = -1
        write_npz(data, X=good_arrays["X"], y=y)
    elif case == "nan-features":
        X = good_arrays["X"].copy()
        X[3, 1] = np.nan
        write_npz(data, X=X, y=good_arrays["y"])
    else:
        write_npz(data, **good_arrays)
        extra = (
            ["--epsilon", "1.5"] if case == "epsilon" else ["--validation-size", "50", "--seed-size", "20"]
        )
    code, _out, err = _run(["run", "--data", str(data), "--epochs", "1", *extra], capsys)
    assert code == 2
    # the data kind's preset is named on a line of its own before the run (feature vectors: vectors)
    lines = [
        line for line in err.strip().splitlines() if not line.startswith(("tbal: preset ", "tbal: warning: "))
    ]
    assert len(lines) == 1, err
    assert lines[0].startswith("tbal: error:") and needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err


def test_unknown_choice_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--data", "x.npz", "--confidence", "magic"])
    assert exc.value.code == 2


def test_evaluate_reports_on_a_saved_round_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``tbal evaluate`` on a round's artifact: in-distribution figures, the cross-entropy against the
    human distributions in the file, and OOD AUROC against far-away points (which a softmax model scores
    confidently too, so only a loose bound is checked); FGSM is off for feature vectors."""
    from tbal.artifacts import RoundArtifacts, save_artifacts
    from tbal.config import TBALConfig, with_overrides
    from tbal.loop import RoundInput, run_round
    from tbal.training.train import one_hot

    rng = np.random.default_rng(0)
    centers = rng.normal(scale=3.0, size=(3, 4))
    y = rng.integers(0, 3, size=500)
    X = (centers[y] + rng.normal(scale=0.5, size=(500, 4))).astype(np.float32)
    config = with_overrides(
        TBALConfig(), {"model.name": "mlp", "model.hidden": "16", "train.epochs": 10, "train.device": "cpu"}
    )
    out = run_round(
        RoundInput(X[:100], one_hot(y[:100], 3), X[100:200], y[100:200], X[200:], 3, 0), config, seed=0
    )
    artifact = tmp_path / "p-r0.pt"
    save_artifacts(
        artifact, RoundArtifacts(out.model, out.confidence, out.thresholds.thresholds, config.model, (4,), 3)
    )
    soft = 0.8 * one_hot(y[200:], 3) + 0.2 / 3
    np.savez(tmp_path / "test.npz", X=X[200:], y=y[200:], soft=soft)
    np.savez(tmp_path / "ood.npz", X=rng.uniform(-1, 1, size=(100, 4)).astype(np.float32) * 0.2)
    report_file = tmp_path / "report.json"
    argv = ["evaluate", "--model", str(artifact), "--data", str(tmp_path / "test.npz")]
    code, out_text, err = _run(
        [*argv, "--ood", str(tmp_path / "ood.npz"), "--json", str(report_file)], capsys
    )
    assert code == 0, err
    report = json.loads(report_file.read_text())["report"]
    assert report["n"] == 300 and report["accuracy"] > 0.9
    assert report["human_cross_entropy"] is not None and report["ood_auroc"] is not None
    assert report["fgsm_drop"] is None and "accuracy" in out_text
    code, _, err = _run([*argv, "--fgsm-epsilon", "0.01"], capsys)
    assert code == 2 and "FGSM expects inputs on the [0, 1] scale" in err
    (tmp_path / "bad.npz").write_bytes(b"not an archive")
    code, _, err = _run([*argv, "--ood", str(tmp_path / "bad.npz")], capsys)
    assert code == 2 and "is not a NumPy .npz archive" in err
    code, _, err = _run([*argv, "--ood", str(tmp_path / "missing.npz")], capsys)
    assert code == 2 and "not found" in err
    np.savez(tmp_path / "no-x.npz", features=X[:10])
    code, _, err = _run([*argv, "--ood", str(tmp_path / "no-x.npz")], capsys)
    assert code == 2 and "expected the inputs as key X; found keys: features" in err


SMALL_RUN = [
    "--budget",
    "30",
    "--seed-size",
    "20",
    "--batch",
    "10",
    "--validation-size",
    "40",
    "--epochs",
    "2",
]


def test_run_on_a_text_csv_and_an_image_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 13 item 6: ``tbal run --data FILE.csv`` encodes the texts (here with the hashing encoder,
    cached beside the file) and ``--data DIR`` reads one sub-folder of images per class."""
    from PIL import Image

    words = ["good", "bad", "great", "awful", "fine", "poor"]
    rng = np.random.default_rng(0)
    lines = ["sentence,verdict"] + [
        f'"{words[i % 6]} {words[int(rng.integers(6))]} film {i}",{"pos" if i % 2 else "neg"}'
        for i in range(150)
    ]
    csv = tmp_path / "texts.csv"
    csv.write_text("\n".join(lines), encoding="utf-8")
    argv = ["run", "--data", str(csv), "--text-column", "sentence", "--label-column", "verdict"]
    code, _out, err = _run(
        [*argv, "--encoder", "hashing", *SMALL_RUN, "--json", str(tmp_path / "t.json")], capsys
    )
    assert code == 0, err
    # no --preset: texts on frozen features (hashing) get text-paper, as a text project naming one would
    assert "preset text-paper, the default for text data" in err
    record = json.loads((tmp_path / "t.json").read_text())
    assert record["preset"] == "text-paper" and record["runs"][0]["pool_size"] == 110
    assert any((tmp_path / ".tbal-cache").iterdir())  # the features are cached, keyed by hash and encoder

    for c in ("cats", "dogs"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(40):
            pixels = rng.integers(0, 255, (28, 28), dtype=np.uint8) // (2 if c == "cats" else 1)
            Image.fromarray(pixels).save(tmp_path / "imgs" / c / f"{i}.png")
    imgs = [
        "run",
        "--data",
        str(tmp_path / "imgs"),
        "--preset",
        "none",
    ]  # quick: mnist-paper's is tested below
    code, _out, err = _run([*imgs, *SMALL_RUN], capsys)  # 28×28: LeNet-5
    assert code == 0, err

    code, _out, err = _run(["run", "--data", str(tmp_path / "missing.csv"), "--encoder", "hashing"], capsys)
    assert code == 2 and "missing.csv" in err


def _preset_and_counts(argv: list[str]) -> tuple[str | None, str, int, int, int, int]:
    args = build_parser().parse_args(["run", *argv])
    config = config_from_args(args)
    loop = config.loop
    counts = (loop.label_budget, loop.seed_size, loop.validation_size, loop.validation_floor)
    return (preset_name(args), config.model.name, *counts)


def test_without_a_preset_the_data_chooses_one_as_a_service_project_does(tmp_path: Path) -> None:
    """``tbal run`` naming no preset runs from the one a service project of the same data gets
    (:func:`tbal.config.preset_for_data`): the library's defaults certified nothing on SST-2, where a text
    project certifies 41.7 % (BENCHMARKS.md, "Issue 11, twenty-third session")."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 20)
    grey = write_npz(tmp_path / "grey.npz", X=rng.integers(0, 255, (20, 28, 28), dtype=np.uint8), y=labels)
    colour = write_npz(tmp_path / "colour.npz", X=np.zeros((20, 32, 32, 3), np.uint8), y=labels)
    vectors = write_npz(tmp_path / "vectors.npz", X=np.zeros((20, 16), np.float32), y=labels)
    odd = write_npz(tmp_path / "odd.npz", X=np.zeros((20, 4, 4, 7), np.float32), y=labels)
    (tmp_path / "imgs").mkdir()

    assert _preset_and_counts(["--data", "x.csv"]) == ("text-finetune", "minilm", 2000, 400, 1600, 2400)
    named = ["run", "--data", "x.csv", "--preset", "text-finetune", "--encoder", "minilm-tokens"]
    # the command whose SST-2 runs BENCHMARKS.md reports (twenty-third session)
    assert config_from_args(build_parser().parse_args(["run", "--data", "x.csv"])) == config_from_args(
        build_parser().parse_args(named)
    )
    assert _preset_and_counts(["--data", str(tmp_path / "imgs")])[:2] == ("mnist-paper", "resnet")
    assert _preset_and_counts(["--data", str(grey)])[:2] == ("mnist-paper", "resnet")
    assert _preset_and_counts(["--data", str(colour)])[0] == "mnist-paper"
    for features in (vectors, odd, tmp_path / "missing.npz"):  # nothing else known of them
        assert _preset_and_counts(["--data", str(features)])[0] == "vectors"
    # an .npz whose texts the command reads is text data
    assert _preset_and_counts(["--data", str(vectors), "--model", "minilm"])[0] == "text-finetune"
    assert _preset_and_counts(["--data", str(vectors), "--encoder", "minilm"])[0] == "text-paper"
    # frozen features, another model, or too few training labels to fine-tune on: text-paper
    assert _preset_and_counts(["--data", "x.jsonl", "--encoder", "hashing"])[0] == "text-paper"
    assert _preset_and_counts(["--data", "x.csv", "--model", "auto"])[:2] == ("text-paper", "auto")
    assert _preset_and_counts(["--data", "x.csv", "--set", "loop.label_budget=999"])[0] == "text-paper"
    assert _preset_and_counts(["--data", "x.csv", "--budget", "1000"])[0] == "text-finetune"
    # --preset none: the library's defaults; a named preset is taken whatever the data
    assert _preset_and_counts(["--data", "x.csv", "--preset", "none"]) == (None, "auto", 500, 200, 500, 0)
    assert _preset_and_counts(["--data", str(grey), "--preset", "text-paper"])[:2] == ("text-paper", "mlp")


def test_vectors_beside_their_texts_are_text_data(tmp_path: Path) -> None:
    """An .npz of feature vectors that holds the split's texts too (as ``sst2_minilm.npz``: X the sentences'
    embeddings, ``text_train_utf8`` the sentences) runs as texts: ``text-finetune`` reads the texts as word
    pieces; under 1,000 training labels ``text-paper`` trains on the file's vectors. On SST-2's file the
    features default certified nothing where the texts certify 40 % (BENCHMARKS.md, twenty-eighth session)."""
    texts = [f"sentence number {i}" for i in range(20)]
    utf8 = np.frombuffer("\n".join(texts).encode(), dtype=np.uint8)
    labels = np.arange(20) % 2
    vectors = np.zeros((20, 16), np.float16)
    split = write_npz(tmp_path / "split.npz", X_train=vectors, y_train=labels, text_train_utf8=utf8)
    split_dev = write_npz(
        tmp_path / "dev.npz",
        X_train=vectors,
        y_train=labels,
        text_train_utf8=utf8,
        X_dev=vectors,
        y_dev=labels,
    )
    beside = write_npz(tmp_path / "beside.npz", X=vectors, y=labels, text_utf8=utf8)
    images = write_npz(tmp_path / "images.npz", X=np.zeros((20, 28, 28), np.uint8), y=labels, text_utf8=utf8)

    for path in (split, beside, split_dev):
        assert _preset_and_counts(["--data", str(path)]) == ("text-finetune", "minilm", 2000, 400, 1600, 2400)
    args = build_parser().parse_args(["run", "--data", str(split)])
    assert _load(args, config_from_args(args).model).X.shape == (20, MAX_TOKENS)  # the texts, as word pieces
    few = build_parser().parse_args(["run", "--data", str(beside), "--budget", "500"])
    assert preset_name(few) == "text-paper"
    assert _load(few, config_from_args(few).model).X.shape == (20, 16)  # the vectors
    # a split without texts is feature vectors; images with captions stay images; a named preset is taken
    assert _preset_and_counts(["--data", str(split_dev), "--split", "dev"])[0] == "vectors"
    assert _preset_and_counts(["--data", str(images)])[0] == "mnist-paper"
    assert _preset_and_counts(["--data", str(split), "--preset", "vectors"])[:2] == ("vectors", "auto")


def test_a_presets_seed_and_floor_follow_the_budgets_the_flags_set() -> None:
    """As a service project's (README, "Defaults by data kind"): ``text-paper``'s seed is 20 % of N_t and
    its floor N_v + 0.4·N_t, so N_t 300 and N_v 500 run with a seed of 60 and a floor of 620 instead of a
    refusal of the preset's seed of 400; counts the flags set are kept; without a preset nothing moves."""
    paper = ["--data", "x.csv", "--preset", "text-paper"]
    assert _preset_and_counts([*paper, "--budget", "300", "--validation-size", "500"])[2:] == (
        300,
        60,
        500,
        620,
    )
    assert _preset_and_counts([*paper, "--set", "loop.validation_size=500"])[2:] == (2000, 400, 500, 1300)
    assert _preset_and_counts([*paper, "--budget", "300", "--seed-size", "90"])[2:] == (300, 90, 1600, 1720)
    floor = ["--set", "loop.validation_floor=0"]
    assert _preset_and_counts([*paper, "--budget", "300", *floor])[2:] == (300, 60, 1600, 0)
    plain = ["--data", "x.csv", "--preset", "none", "--budget", "300"]
    assert _preset_and_counts(plain)[2:] == (300, 200, 500, 0)
    with pytest.raises(ConfigError, match="label_budget"):  # a bad count is the library's to name
        _preset_and_counts([*paper, "--set", "loop.label_budget=-5"])
