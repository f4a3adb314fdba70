"""The ``tbal`` command.

``tbal run`` runs the whole TBAL loop on a data set file over one or more seeds; ``tbal bench`` runs a
grid of confidence functions × train-time methods × bounds and prints a markdown table; ``tbal evaluate``
reports on a saved round model (accuracy, ECE, NLL, cross-entropy against human distributions, OOD AUROC,
accuracy under FGSM; :mod:`tbal.evaluation`). The service's
verbs (``serve``, ``worker``, ``migrate``, ``create-key``) are added by installed plugins through the
``tbal.commands`` entry-point group, so this pure library never imports the service.

Bad input (missing file, wrong keys, labels out of range, NaN features, ε ∉ (0, 1), a budget larger than
the data) prints one line naming the problem and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from tbal.config import (
    BOUND_NAMES,
    CONFIDENCE_NAMES,
    GUARANTEE_NAMES,
    MODEL_NAMES,
    PRESET_NAMES,
    QUERY_NAMES,
    TARGET_MODES,
    TRAIN_METHODS,
    ConfigError,
    LoopConfig,
    ModelConfig,
    TBALConfig,
    config_to_dict,
    counts_for_budgets,
    preset,
    preset_for_data,
    with_overrides,
)
from tbal.data import holds_texts, input_shape
from tbal.environment import run_environment
from tbal.errors import TBALInputError
from tbal.plan import CertificateNeeds, certificate_needs

EXIT_BAD_INPUT = 2
NO_PRESET = "none"
"""``--preset none``: the library's defaults, where no preset is named and the data kind has one."""
Handler = Callable[[argparse.Namespace], int]

# Command-line flag -> dotted config field. Every value can also be set with --set FIELD=VALUE.
_FLAG_FIELDS: dict[str, str] = {
    "model": "model.name",
    "train": "train.method",
    "targets": "train.targets",
    "epochs": "train.epochs",
    "device": "train.device",
    "confidence": "confidence.name",
    "bound": "thresholds.bound",
    "guarantee": "thresholds.guarantee",
    "epsilon": "thresholds.epsilon",
    "delta": "thresholds.delta",
    "query": "query.strategy",
    "budget": "loop.label_budget",
    "seed_size": "loop.seed_size",
    "batch": "loop.batch_size",
    "validation_size": "loop.validation_size",
    "pool_size": "loop.pool_size",
    "max_rounds": "loop.max_rounds",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tbal`` console script."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        _set_threads(getattr(args, "threads", None))
        return handler(args)
    except (TBALInputError, ConfigError, FileNotFoundError) as exc:
        print(f"tbal: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("tbal: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tbal", description="Threshold-based auto-labeling with a guarantee."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(commands)
    _add_bench(commands)
    _add_evaluate(commands)
    _add_plugins(commands)
    return parser


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run the TBAL loop on a .npz data set over one or more seeds")
    _add_common(run)
    run.add_argument("--json", type=Path, help="write every round's record to this JSON file")
    run.add_argument("--quiet", action="store_true", help="no progress line per round")
    run.set_defaults(func=_run_command)


def _add_bench(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="grid of confidence functions × train-time methods × bounds")
    _add_common(bench)
    bench.add_argument("--confidences", default="softmax,temperature,colander", help="comma-separated names")
    bench.add_argument("--methods", default="vanilla", help="comma-separated train-time methods")
    bench.add_argument("--bounds", default="paper,valid", help="comma-separated bounds")
    bench.add_argument("--json", type=Path, help="write all runs to this JSON file")
    bench.set_defaults(func=_bench_command)


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="evaluate a round's saved model: calibration, human cross-entropy, OOD, FGSM"
    )
    evaluate.add_argument(
        "--model", required=True, type=Path, help="a round's artifact file (<project>-r<k>.pt)"
    )
    evaluate.add_argument(
        "--data", required=True, type=Path, help="a labeled .npz (X, y; optional soft / counts)"
    )
    evaluate.add_argument("--split", default="auto", help="which X_<split>/y_<split> arrays to use")
    evaluate.add_argument(
        "--ood", type=Path, help="a .npz whose X are out-of-distribution inputs (no labels)"
    )
    evaluate.add_argument(
        "--ood-score",
        choices=("softmax", "confidence"),
        default="softmax",
        help="OOD score: max softmax (default) or the round's fitted confidence function",
    )
    evaluate.add_argument(
        "--fgsm-epsilon",
        type=float,
        help="FGSM step on the [0, 1] input scale (default: 0.005 for images; none for feature vectors)",
    )
    evaluate.add_argument("--fgsm-points", type=int, help="attack only the first N points (default: all)")
    evaluate.add_argument("--threads", type=int, help="torch CPU threads")
    evaluate.add_argument("--json", type=Path, help="write the report to this JSON file")
    evaluate.set_defaults(func=_evaluate_command)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="a .npz data set (see README: accepted keys), a CSV / JSONL / JSON file of texts and labels, "
        "or a folder with one sub-folder of images per class",
    )
    p.add_argument("--split", default="auto", help="which X_<split>/y_<split> arrays to use (default: auto)")
    p.add_argument("--text-column", default="text", help="texts: the column holding the text (default: text)")
    p.add_argument(
        "--label-column", default="label", help="texts: the column holding the label (default: label)"
    )
    p.add_argument(
        "--encoder",
        help="texts: a tbal.encoders spec (minilm, minilm-tokens, hashing, ...); default: the one the model "
        "reads (minilm-tokens for model minilm, else minilm). An .npz's own texts are encoded only for "
        "model minilm or with this flag",
    )
    p.add_argument(
        "--cache-dir", type=Path, help="texts: keep the encoded features here, keyed by file hash and encoder"
    )
    p.add_argument(
        "--preset",
        choices=(*PRESET_NAMES, NO_PRESET),
        help="start from a preset's budgets and settings; default: the data kind's, as a service project's "
        "(texts text-finetune, or text-paper on frozen features or under 1,000 training labels unless "
        "--model minilm; images "
        "mnist-paper; feature vectors vectors); none: the library's defaults",
    )
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's choice; use 1 when other jobs share the cores)",
    )
    p.add_argument("--model", choices=MODEL_NAMES)
    p.add_argument("--train", choices=TRAIN_METHODS, help="train-time method")
    p.add_argument("--targets", choices=TARGET_MODES, help="hard / soft / sampled human labels")
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--confidence", choices=CONFIDENCE_NAMES)
    p.add_argument("--bound", choices=BOUND_NAMES)
    p.add_argument("--guarantee", choices=GUARANTEE_NAMES)
    p.add_argument("--epsilon", type=float, help="error tolerance ε in (0, 1)")
    p.add_argument("--delta", type=float, help="failure probability δ in (0, 1) of the valid bound")
    p.add_argument("--query", choices=QUERY_NAMES)
    p.add_argument("--budget", type=int, help="N_t: human training labels, seed included")
    p.add_argument("--seed-size", dest="seed_size", type=int)
    p.add_argument("--batch", type=int, help="queries per round")
    p.add_argument("--validation-size", dest="validation_size", type=int, help="N_v")
    p.add_argument("--pool-size", dest="pool_size", type=int, help="use a random subset of this size")
    p.add_argument("--max-rounds", dest="max_rounds", type=int)
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any config field, e.g. --set confidence.colander.lam=100 (repeatable)",
    )


def _add_plugins(commands: argparse._SubParsersAction) -> None:
    """Verbs of installed plugins (the service registers serve / worker / migrate / create-key)."""
    for entry in entry_points(group="tbal.commands"):
        try:
            register = entry.load()
        except ImportError as exc:  # a plugin whose dependencies are missing must not break `tbal run`
            logging.getLogger(__name__).warning("tbal plugin %s not loaded: %s", entry.name, exc)
            continue
        register(commands)


def config_from_args(args: argparse.Namespace) -> TBALConfig:
    """The preset (:func:`preset_name`; or the library's defaults) with every flag and ``--set`` applied,
    and a preset's seed and validation floor following the budgets the flags set, as a service
    project's do (:func:`_counts_following_budgets`)."""
    overrides = _overrides(args)
    name = preset_name(args, overrides)
    if name is None:
        return with_overrides(TBALConfig(), overrides)
    config = preset(name)
    return with_overrides(config, {**_counts_following_budgets(config.loop, overrides), **overrides})


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config fields the flags and ``--set`` name, with their values (``--set``'s as strings)."""
    overrides: dict[str, Any] = {
        field: getattr(args, flag) for flag, field in _FLAG_FIELDS.items() if getattr(args, flag) is not None
    }
    for item in args.settings:
        if "=" not in item:
            raise ConfigError(f"--set expects FIELD=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    return overrides


def preset_name(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> str | None:
    """The preset a command runs from: ``--preset`` (``none``: the library's defaults), else the one a
    service project of the same data gets (:func:`tbal.config.preset_for_data` on :func:`data_kind`, with
    the model, encoder and N_t the flags name), so that ``tbal run`` on a CSV of texts certifies what a
    text project does rather than the library's defaults (nothing on SST-2)."""
    if args.preset is not None:
        return None if args.preset == NO_PRESET else str(args.preset)
    overrides = _overrides(args) if overrides is None else overrides
    model = overrides.get("model.name")
    label_budget = _count(overrides.get("loop.label_budget"))
    return preset_for_data(data_kind(args), str(model) if model else None, args.encoder, label_budget)


def data_kind(args: argparse.Namespace) -> str:
    """What ``--data`` holds, as a service project names it: "image" (a folder of images, or an .npz whose
    inputs have two axes, or three with 1, 3 or 4 channels), "text" (a text file, an .npz whose texts
    ``--encoder`` or the ``minilm`` model reads, or an .npz of feature vectors that holds the split's texts
    too, as ``sst2_minilm.npz`` does) or "features". An unreadable .npz is "features": loading it names
    what is wrong.

    Vectors beside their texts are text data because the texts certify more: on SST-2's file (its X the
    sentences' MiniLM embeddings) the features default certified nothing, and ``text-finetune``, which
    fine-tunes on the texts, 40.4 % (BENCHMARKS.md, "Issue 11, twenty-eighth session")."""
    path = Path(args.data)
    if path.is_dir():
        return "image"
    reads_texts = args.encoder is not None or _overrides(args).get("model.name") == "minilm"
    if path.suffix.lower() in TEXT_SUFFIXES or reads_texts:
        return "text"
    try:
        shape = input_shape(path, split=args.split)
        is_image = len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4))
        if is_image:
            return "image"
        return "text" if len(shape) == 1 and holds_texts(path, split=args.split) else "features"
    except TBALInputError:
        return "features"


def _counts_following_budgets(base: LoopConfig, overrides: dict[str, Any]) -> dict[str, int]:
    """A preset's seed and validation floor for the N_t / N_v the flags set (the preset's shares:
    :func:`tbal.config.counts_for_budgets`), unless they set those
    too, as a service project's follow its ``label_budget`` and ``validation_size``. Without it
    ``--preset text-paper --budget 300`` would be refused for the preset's seed of 400."""
    label_budget = _count(overrides.get("loop.label_budget"))
    validation_size = _count(overrides.get("loop.validation_size"))
    if label_budget is None and validation_size is None:
        return {}  # a bad count is left to the library's check, which names it
    counts = counts_for_budgets(
        base,
        label_budget or base.label_budget,
        validation_size or base.validation_size,
        seed=label_budget is not None and "loop.seed_size" not in overrides,
        floor="loop.validation_floor" not in overrides,
    )
    return {f"loop.{name}": value for name, value in counts.items()}


def _count(value: Any) -> int | None:
    """A positive count given as a flag (int) or by ``--set`` (text), else None."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise ConfigError(f"--seeds expects comma-separated integers, got {text!r}") from exc
    if not seeds:
        raise ConfigError("--seeds is empty")
    return seeds


def _run_command(args: argparse.Namespace) -> int:
    from tbal.runs import format_round_line, format_summary_table, run_seeds

    config = config_from_args(args)
    seeds = parse_seeds(args.seeds)
    dataset = _load(args, config.model)
    name = _announce_preset(args)
    needs = _warn_of_certificate_needs(config, dataset.num_classes)
    on_round = None if args.quiet else (lambda seed, r: print(format_round_line(seed, r), flush=True))
    results = run_seeds(dataset, config, seeds, on_round=on_round)
    print(format_summary_table([(_label(config), results)], config.thresholds.epsilon))
    if args.json:
        payload = {"data": str(args.data), "preset": name, "config": config_to_dict(config), "runs": results}
        payload["certificate_needs"] = needs.to_dict() if needs is not None else None
        _write_json(args.json, {**payload, "environment": run_environment()})
        print(f"wrote {args.json}")
    return 0


def _bench_command(args: argparse.Namespace) -> int:
    from tbal.runs import format_summary_table, run_seeds

    base = config_from_args(args)
    seeds = parse_seeds(args.seeds)
    dataset = _load(args, base.model)
    name = _announce_preset(args)
    rows = []
    for method in _names(args.methods, TRAIN_METHODS, "--methods"):
        for confidence in _names(args.confidences, CONFIDENCE_NAMES, "--confidences"):
            for bound in _names(args.bounds, BOUND_NAMES, "--bounds"):
                config = with_overrides(
                    base, {"train.method": method, "confidence.name": confidence, "thresholds.bound": bound}
                )
                results = run_seeds(dataset, config, seeds)
                rows.append((_label(config), results))
                # Each finished cell is printed and saved at once, so a long grid loses nothing when stopped.
                last_line = format_summary_table(rows[-1:], base.thresholds.epsilon).splitlines()[-1]
                print(f"done: {last_line}", file=sys.stderr, flush=True)
                if args.json:
                    payload = {
                        "data": str(args.data),
                        "preset": name,
                        "config": config_to_dict(base),
                        "grid": dict(rows),
                        "environment": run_environment(),
                    }
                    _write_json(args.json, payload)
    print(format_summary_table(rows, base.thresholds.epsilon))
    return 0


def _announce_preset(args: argparse.Namespace) -> str | None:
    """The preset the command runs from; said on stderr when the data chose it (no ``--preset``), since
    the same command on another kind of data runs from another."""
    name = preset_name(args)
    if args.preset is None and name is not None:
        print(
            f"tbal: preset {name}, the default for {data_kind(args)} data (--preset none: the library's "
            "defaults)",
            file=sys.stderr,
        )
    return name


def _warn_of_certificate_needs(config: TBALConfig, num_classes: int) -> CertificateNeeds | None:
    """Say on stderr, before the run, where the settings leave no validation points for a certificate
    (:func:`tbal.plan.certificate_needs`): such a run trains for minutes and auto-labels nothing."""
    needs = certificate_needs(config, num_classes)
    for warning in needs.warnings() if needs is not None else []:
        print(f"tbal: warning: {warning}", file=sys.stderr)
    return needs


def _set_threads(threads: int | None) -> None:
    """The command, not the library, owns the process-wide thread setting."""
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads must be a positive integer, got {threads}")
    import torch

    torch.set_num_threads(threads)


TEXT_SUFFIXES = (".csv", ".jsonl", ".json")


def _load(args: argparse.Namespace, model: ModelConfig | None = None) -> Any:
    """The data set of ``--data``: an .npz, a text file (encoded by ``--encoder``, features cached in
    ``--cache-dir`` or beside the file), or an image folder (issue 13: raw data in the command too).
    ``model``: the classifier the data is for; its encoder (:func:`tbal.encoders.encoder_for_model`) is
    the default one, and an .npz's texts are encoded for it when it reads word pieces."""
    from tbal.data import load_dataset
    from tbal.encoders import TOKEN_ENCODER, encoder_for_model
    from tbal.raw_data import load_image_folder, load_text_dataset

    path = Path(args.data)
    if path.is_dir():
        return load_image_folder(path)
    given = getattr(args, "encoder", None)
    encoder = encoder_for_model(model, given)
    if path.suffix.lower() in TEXT_SUFFIXES and hasattr(args, "text_column"):
        return load_text_dataset(
            path,
            text_column=args.text_column,
            label_column=args.label_column,
            encoder=encoder,
            cache_dir=args.cache_dir if args.cache_dir is not None else path.parent / ".tbal-cache",
        )
    reads_texts = given is not None or encoder == TOKEN_ENCODER  # the model reads word pieces
    return load_dataset(path, split=args.split, text_encoder=encoder if reads_texts else None)


def _evaluate_command(args: argparse.Namespace) -> int:
    from tbal.artifacts import load_artifacts
    from tbal.data import load_inputs
    from tbal.evaluation import evaluate_model, max_softmax_score

    artifacts = load_artifacts(args.model)
    dataset = _load(args, artifacts.model_config)
    # FGSM needs inputs on the [0, 1] scale its ε is measured on: prepared images have it, features not
    epsilon = (
        args.fgsm_epsilon if args.fgsm_epsilon is not None else (0.005 if dataset.kind == "image" else None)
    )
    report = evaluate_model(
        artifacts.model,
        dataset.X,
        dataset.y,
        human=dataset.soft,
        X_ood=load_inputs(args.ood) if args.ood else None,
        score=artifacts.confidence.score if args.ood_score == "confidence" else max_softmax_score,
        fgsm_epsilon=epsilon,
        fgsm_points=args.fgsm_points,
    )
    for key, value in report.to_dict().items():
        if value is not None:
            print(f"{key:>22}  {value:.4f}" if isinstance(value, float) else f"{key:>22}  {value}")
    if args.json:
        _write_json(args.json, {"model": str(args.model), "data": str(args.data), "report": report.to_dict()})
        print(f"wrote {args.json}")
    return 0


def _names(text: str, valid: tuple[str, ...], flag: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in valid:
            raise ConfigError(f"{flag}: unknown name {name!r}; valid: {', '.join(valid)}")
    return names


def _label(config: TBALConfig) -> str:
    return f"{config.train.method} / {config.confidence.name} / {config.thresholds.bound}"


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename:
        text = f"file not found: {exc.filename}"
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
