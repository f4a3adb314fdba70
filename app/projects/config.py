"""Turning a project's settings (and the service's settings) into the library's TBALConfig.

Each project setting maps to one dotted field of :class:`tbal.config.TBALConfig`; a section's changes
are applied together (so that, e.g., ``label_budget`` and ``seed_size`` are checked against each other
and not against the defaults). A :class:`tbal.config.ConfigError` becomes a 422 naming the setting.

The settings apply on top of the project's *base*: its preset's (or the library's default) configuration
pinned when the project took it (``projects.base_config``, see :func:`base_config`), so that a tbal
release that changes a preset or a default does not move a running project's round plan or δ schedule.
Projects created before the pin existed (NULL) resolve their preset as the installed library defines it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection
from typing import Any

from app.db.models import Project
from app.errors import Invalid
from app.settings import Settings
from tbal.config import (
    TRAIN_METHOD_PARAMS,
    ColanderConfig,
    ConfigError,
    LoopConfig,
    TBALConfig,
    config_from_dict,
    config_to_dict,
    counts_for_budgets,
    preset,
    preset_for_data,
    with_overrides,
)

SETTING_PATHS: dict[str, tuple[str, str]] = {
    "epsilon": ("thresholds", "epsilon"),
    "delta": ("thresholds", "delta"),
    "bound": ("thresholds", "bound"),
    "guarantee": ("thresholds", "guarantee"),
    "delta_schedule": ("thresholds", "delta_schedule"),
    "fallback_share": ("thresholds", "fallback_share"),
    "walk_start_share": ("thresholds", "walk_start_share"),
    "finite_pool": ("thresholds", "finite_pool"),
    "pseudo_label_share": ("train", "pseudo_label_share"),
    "model": ("model", "name"),
    "hidden": ("model", "hidden"),
    "dropout": ("model", "dropout"),
    "uncertainty": ("model", "uncertainty"),
    "train_method": ("train", "method"),
    "targets": ("train", "targets"),
    "epochs": ("train", "epochs"),
    "train_batch_size": ("train", "batch_size"),
    "lr": ("train", "lr"),
    "weight_decay": ("train", "weight_decay"),
    "standardize_inputs": ("train", "standardize_inputs"),
    "augment_shift": ("train", "augment_shift"),
    "warm_start_epochs": ("train", "warm_start_epochs"),
    "warm_start_rounds": ("train", "warm_start_rounds"),
    "confidence": ("confidence", "name"),
    "query_strategy": ("query", "strategy"),
    "label_budget": ("loop", "label_budget"),
    "validation_size": ("loop", "validation_size"),
    "seed_size": ("loop", "seed_size"),
    "batch_size": ("loop", "batch_size"),
    "calibration_fraction": ("loop", "calibration_fraction"),
    "max_rounds": ("loop", "max_rounds"),
    "validation_floor": ("loop", "validation_floor"),
    "targeted_validation": ("loop", "targeted_validation"),
    "stratum_share": ("loop", "stratum_share"),
    "stratum_error_factor": ("loop", "stratum_error_factor"),
    "train_outside_stratum": ("loop", "train_outside_stratum"),
}
SERVICE_ONLY = (
    "preset",
    "min_validation_labels",
    "pixel_scale",
    "audit_size",
    "label_review_fraction",
    "encoder",  # text projects and image backbones: checked by app.items.raw
    "image_shape",
)
FOLLOWING = ("preset", "seed_size", "validation_floor", "encoder")
"""The settings the service may fill in for a user, stored so that a project reads what it runs with, and
listed in ``projects.followed`` while the user has not set them: ``preset`` its data kind's
(:func:`with_data_kind_preset`), ``seed_size`` / ``validation_floor`` the preset's shares of the budgets
(:func:`with_budgets_following`), ``encoder`` the one its model reads
(``app.items.raw.with_model_encoder``). A followed setting follows what it followed when the user changes
that; one the user set stays."""
COUNTS = ("seed_size", "validation_floor")
"""The loop counts that follow a preset's shares of the budgets."""
PRESET_READS = ("model", "encoder", "label_budget")
"""The settings the data kind's choice of a text preset reads (:func:`tbal.config.preset_for_data`)."""
NESTED = ("colander", "method_params")
"""Settings holding a dict of one library section's fields, checked key by key by the library."""
IMAGE_MODELS = ("lenet5", "cnn", "resnet")


def base_config(settings: dict[str, Any]) -> dict[str, Any]:
    """What a project pins as its base when it takes ``settings["preset"]`` (at creation, or a PATCH of
    ``preset``): the preset's configuration, or the library's defaults without one, as a JSON-ready dict."""
    return config_to_dict(_preset_config(settings))


def with_data_kind_preset(settings: dict[str, Any], data_kind: str) -> dict[str, Any]:
    """The settings of a create body that names no preset (not even ``null``, which keeps the library's
    defaults) with its data kind's (:func:`tbal.config.preset_for_data`): texts ``text-finetune`` (or
    ``text-paper`` where the settings choose another model, a feature encoder or a ``label_budget`` too small
    to fine-tune on), images ``mnist-paper``; feature vectors ``vectors``."""
    name = _data_kind_preset(settings, data_kind, settings.get("encoder"))
    return settings if name is None else {"preset": name, **settings}


def _data_kind_preset(settings: dict[str, Any], data_kind: str, encoder: str | None) -> str | None:
    """:func:`tbal.config.preset_for_data` on the model and ``label_budget`` of ``settings`` and ``encoder``
    (the user's: one the service chose does not choose the preset)."""
    budget = _count_or_none(settings.get("label_budget"))
    return preset_for_data(data_kind, settings.get("model"), encoder, budget)


def with_budgets_following(
    settings: dict[str, Any],
    base: dict[str, Any] | None,
    changes: dict[str, Any],
    user_set: Collection[str] = (),
) -> dict[str, Any]:
    """``settings`` after ``changes`` (a create body's settings, or a PATCH's) with a preset's seed and
    validation floor moved to the ``label_budget`` and ``validation_size`` they set
    (:func:`tbal.config.counts_for_budgets`), unless they set those too or the user set them before
    (``user_set``); a count they unset (null) follows again. Stored as ``seed_size`` /
    ``validation_floor``, so that the project reads what it runs with and a later release does not move
    them; dropped again when they equal the base's. Projects without a preset keep the library's counts."""
    unset = {name for name in COUNTS if name in changes and changes[name] is None}
    moved = "label_budget" in changes or "validation_size" in changes
    if not settings.get("preset") or not (moved or unset):
        return settings
    base_loop = _base_of(settings, base).loop
    budgets = _budgets(settings, base_loop)
    if budgets is None:
        return settings  # the library's check names the bad value (build_config)
    label_budget, validation_size = budgets
    kept = {name for name, value in changes.items() if value is not None} | set(user_set)
    follow_seed = "seed_size" not in kept and ("label_budget" in changes or "seed_size" in unset)
    counts = counts_for_budgets(
        base_loop, label_budget, validation_size, seed=follow_seed, floor="validation_floor" not in kept
    )
    for name, value in counts.items():
        settings = _unless_base(settings, name, value, getattr(base_loop, name))
    return settings


def following_preset(
    settings: dict[str, Any], changes: dict[str, Any], data_kind: str, followed: Collection[str] | None
) -> str | None:
    """The preset a project whose preset the service chose by its data kind (``"preset"`` in ``followed``)
    moves to when ``changes`` (a PATCH's) touch what that choice reads (:data:`PRESET_READS`): a text
    project that lowers its ``label_budget`` under 1,000 or names another model goes from ``text-finetune``
    to ``text-paper``, as it would have been created. None where it stays."""
    if followed is None or "preset" not in followed or "preset" in changes:
        return None
    if not any(name in changes for name in PRESET_READS):
        return None
    merged = {**settings, **changes}
    encoder = None if "encoder" in followed and "encoder" not in changes else merged.get("encoder")
    name = _data_kind_preset(merged, data_kind, encoder)
    return name if name is not None and name != settings.get("preset") else None


def followed_after(
    before: dict[str, Any], after: dict[str, Any], changes: dict[str, Any], followed: Collection[str] | None
) -> list[str] | None:
    """The :data:`FOLLOWING` settings of ``after`` that the service chose: not set by the user in
    ``changes`` (a create body's or a PATCH's), and either followed before, unset by ``changes`` (null) and
    filled in again, or filled in or changed now (they differ from ``before``). None stays None: a project
    from before migration 0011."""
    if followed is None:
        return None
    return [
        name
        for name in FOLLOWING
        if name in after
        and changes.get(name) is None
        and (name in followed or name in changes or after[name] != before.get(name))
    ]


def without_followed(
    settings: dict[str, Any], base: dict[str, Any] | None, followed: Collection[str] | None = None
) -> dict[str, Any]:
    """A project's ``settings`` less what only followed its preset, so that on a PATCH of ``preset`` the new
    preset's follow instead: the ``seed_size`` / ``validation_floor`` of its shares and the ``encoder`` of
    its model, those in ``followed``; where that is not known (None: a project from before migration 0011)
    the counts equal to what the preset on ``base`` gives for the project's budgets
    (:func:`with_budgets_following` stored them so), which takes a count a user set to exactly that value
    as following too."""
    if followed is not None:
        return {k: v for k, v in settings.items() if k == "preset" or k not in followed}
    if not settings.get("preset"):
        return settings
    try:
        loop = _base_of(settings, base).loop
    except Invalid:  # a base this release cannot read (the PATCH of preset is how to leave it): keep all
        return settings
    budgets = _budgets(settings, loop)
    if budgets is None:
        return settings
    shares = counts_for_budgets(loop, *budgets, seed=True, floor=True)
    return {k: v for k, v in settings.items() if k not in shares or v != shares[k]}


def _base_of(settings: dict[str, Any], base: dict[str, Any] | None) -> TBALConfig:
    """A project's base: ``base`` as pinned, or (None) its preset as the library defines it now."""
    return _preset_config(settings) if base is None else _pinned(base)


def _budgets(settings: dict[str, Any], loop: LoopConfig) -> tuple[int, int] | None:
    """(N_t, N_v) of ``settings`` on ``loop`` (the base's where they set none), or None where either is
    not a count."""
    label_budget = settings.get("label_budget") or loop.label_budget
    validation_size = settings.get("validation_size") or loop.validation_size
    return (label_budget, validation_size) if _counts(label_budget, validation_size) else None


def _count_or_none(value: Any) -> int | None:
    """A count as given, or None where it is not one (the library's check then names it)."""
    return value if _counts(value) else None


def _counts(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def _unless_base(settings: dict[str, Any], name: str, value: int, base_value: int) -> dict[str, Any]:
    others = {k: v for k, v in settings.items() if k != name}
    return others if value == base_value else {**others, name: value}


def project_config(project: Project) -> TBALConfig:
    """The TBALConfig a project's rounds run with (but for the training device, see
    :func:`runtime_config`): its settings on its pinned base."""
    return build_config(project.settings, base=project.base_config)


def build_config(
    settings: dict[str, Any], *, base: dict[str, Any] | None = None, data_kind: str | None = None
) -> TBALConfig:
    """The TBALConfig of a project's ``settings`` (the API's names, see :class:`ProjectSettings`) applied
    on ``base`` (a :func:`base_config` dict); ``base`` None: on the preset as the library defines it now.

    Raises :class:`~app.errors.Invalid` with ``field="settings.<name>"`` for a value the library refuses.
    """
    config = _base_of(settings, base)
    sections: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        if value is None or name in SERVICE_ONLY or name in NESTED:
            continue
        if name not in SETTING_PATHS:
            raise Invalid(f"settings.{name}", f"unknown setting; valid: {', '.join(sorted(SETTING_PATHS))}")
        section, fld = SETTING_PATHS[name]
        sections.setdefault(section, {})[fld] = tuple(value) if name == "hidden" else value
    try:
        # all sections at once: TBALConfig checks choices across them (e.g. the kernel confidence and DUQ)
        replaced = {s: dataclasses.replace(getattr(config, s), **v) for s, v in sections.items()}
        config = dataclasses.replace(config, **replaced)
        if settings.get("colander"):
            config = _with_colander(config, settings["colander"])
        if settings.get("method_params"):
            config = _with_method_params(config, settings["method_params"])
    except ConfigError as exc:
        raise Invalid(_setting_of(str(exc)), str(exc)) from exc
    if data_kind in ("features", "text") and config.model.name in IMAGE_MODELS:
        raise Invalid(
            "settings.model", f"model {config.model.name!r} needs images; this project has features"
        )
    return config


def runtime_config(
    project_settings: dict[str, Any], settings: Settings, *, base: dict[str, Any] | None = None
) -> TBALConfig:
    """The configuration a round runs with: the project's (its settings on ``base``, see
    :func:`build_config`), on the service's training device."""
    config = build_config(project_settings, base=base)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, device=settings.train_device))


def min_validation_labels(project_settings: dict[str, Any], config: TBALConfig) -> int:
    """Fewest validation labels a round starts with: both D_cal (ν·n) and D_th non-empty, at least 2, or
    the project's ``min_validation_labels``."""
    nu = config.loop.calibration_fraction
    floor = max(2, math.ceil(1 / nu - 1e-9), math.ceil(1 / (1 - nu) - 1e-9))
    return max(floor, int(project_settings.get("min_validation_labels") or 0))


def _preset_config(settings: dict[str, Any]) -> TBALConfig:
    try:
        return preset(settings["preset"]) if settings.get("preset") else TBALConfig()
    except ConfigError as exc:
        raise Invalid("settings.preset", str(exc)) from exc


def _pinned(base: dict[str, Any]) -> TBALConfig:
    try:
        return config_from_dict(base)
    except ConfigError as exc:
        # a field this release no longer has: the project must choose, not silently get new values
        raise Invalid(
            "settings.preset",
            f"the configuration pinned when the project took its preset does not fit this tbal ({exc}); "
            "PATCH preset to pin this release's",
        ) from exc


def _with_colander(config: TBALConfig, values: dict[str, Any]) -> TBALConfig:
    valid = [f.name for f in dataclasses.fields(ColanderConfig)]
    for key in values:
        if key not in valid:
            raise Invalid(f"settings.colander.{key}", f"unknown Colander setting; valid: {', '.join(valid)}")
    # The library parses and checks each value against its field's type.
    return with_overrides(config, {f"confidence.colander.{k}": v for k, v in values.items()})


def _with_method_params(config: TBALConfig, values: dict[str, Any]) -> TBALConfig:
    """The train-time methods' hyperparameters (``TRAIN_METHOD_PARAMS``); the library parses each value to
    its field's type and checks its range (TrainConfig), so the service repeats no range here."""
    for key in values:
        if key not in TRAIN_METHOD_PARAMS:
            raise Invalid(
                f"settings.method_params.{key}",
                f"unknown training-method setting; valid: {', '.join(TRAIN_METHOD_PARAMS)}",
            )
    return with_overrides(config, {f"train.{k}": v for k, v in values.items()})


def _setting_of(message: str) -> str:
    """The API field named first in a ConfigError message (``loop.seed_size ...`` -> settings.seed_size)."""
    dotted = {f"{s}.{f}": name for name, (s, f) in SETTING_PATHS.items()}
    dotted.update({f"train.{key}": f"method_params.{key}" for key in TRAIN_METHOD_PARAMS})
    found = [(message.find(path), name) for path, name in dotted.items() if path in message]
    colander = message.find("confidence.colander.")
    if colander >= 0:
        key = message[colander + len("confidence.colander.") :].split(" ")[0]
        found.append((colander, f"colander.{key}"))
    if not found:
        return "settings"
    return f"settings.{min(found)[1]}"
