"""Projects: creation (settings checked by building the library's configuration; the preset's
configuration pinned as the project's base), reads with counts, settings changes (not while a round is
queued or running; a PATCH of ``preset`` pins the new preset's base) and deletion (rows and artifacts)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import Project
from app.errors import Conflict, Invalid, NotFound
from app.items import raw as raw_items
from app.items import repository as items_repo
from app.labels import repository as labels_repo
from app.labels.queue_service import redraw_open_sets
from app.projects import repository as projects_repo
from app.projects.config import (
    base_config,
    build_config,
    followed_after,
    following_preset,
    project_config,
    with_budgets_following,
    with_data_kind_preset,
    without_followed,
)
from app.projects.schemas import ProjectCounts, ProjectCreate, ProjectDetail, ProjectRead, ProjectUpdate
from app.rounds import auto_labels_repository as auto_repo
from app.rounds import repository as rounds_repo
from app.rounds.service import budget_used
from tbal.config import TBALConfig, config_to_dict, targeted_count
from tbal.plan import certificate_needs


def get_project(session: Session, project_id: int) -> Project:
    project = projects_repo.get(session, project_id)
    if project is None:
        raise NotFound("project_id", f"no project {project_id}")
    return project


def create_project(session: Session, body: ProjectCreate) -> Project:
    if body.data_kind == "features" and len(body.input_shape) != 1 and not body.settings.encoder:
        raise Invalid("input_shape", f"feature projects take [d], got {body.input_shape}")
    if body.data_kind == "image" and len(body.input_shape) not in (2, 3):
        raise Invalid("input_shape", f"image projects take [H, W] or [H, W, C], got {body.input_shape}")
    if body.data_kind == "image" and len(body.input_shape) == 3 and body.input_shape[2] not in (1, 3, 4):
        raise Invalid("input_shape", f"images take 1, 3 or 4 channels (last), got {body.input_shape[2]}")
    given = body.settings.model_dump(exclude_none=True)
    settings = given
    if "preset" not in body.settings.model_fields_set:
        settings = with_data_kind_preset(settings, body.data_kind)
    base = base_config(settings)
    settings = with_budgets_following(settings, base, settings)
    config = build_config(settings, base=base, data_kind=body.data_kind)
    settings = raw_items.with_model_encoder(body.data_kind, settings, config.model)
    input_shape = raw_items.check_project_settings(body.data_kind, settings, list(body.input_shape))
    followed = followed_after({}, settings, given, followed=())
    if projects_repo.by_name(session, body.name) is not None:
        raise Conflict("name", f"a project named {body.name!r} exists")
    project = Project(
        name=body.name,
        classes=list(body.classes),
        data_kind=body.data_kind,
        input_shape=input_shape,
        settings=settings,
        followed=followed,
        base_config=base,
        seed=body.seed,
    )
    try:
        projects_repo.add(session, project)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict("name", f"a project named {body.name!r} exists") from exc
    return project


def update_settings(session: Session, project: Project, body: ProjectUpdate) -> Project:
    active = rounds_repo.active(session, project.id)
    if active is not None:
        raise Conflict("round", f"round {active.id} is {active.status}; change settings when it has finished")
    given = body.settings.model_dump(exclude_unset=True)
    followed = _still_followed(project.followed, given)
    changes = _with_following_preset(session, project, given, followed)
    kept = project.settings
    if "preset" in changes:  # what followed the old preset follows the new one
        kept = without_followed(kept, project.base_config, followed)
    merged = {k: v for k, v in {**kept, **changes}.items() if v is not None}
    # the base moves only with the preset (PATCHed, even to the same name, or followed): this release's
    base = base_config(merged) if "preset" in changes else project.base_config
    # a new preset's seed and floor follow the budgets the project keeps, as at creation
    user_set = [k for k in project.settings if k not in given and followed is not None and k not in followed]
    merged = with_budgets_following(merged, base, merged if "preset" in changes else changes, user_set)
    config = build_config(merged, base=base, data_kind=project.data_kind)
    merged = raw_items.with_model_encoder(project.data_kind, merged, config.model)
    raw_items.check_settings_change(session, project, merged)
    before = _set_sizes_before(project)
    project.followed = followed_after(project.settings, merged, given, followed)
    project.settings = merged
    project.base_config = base
    if _set_sizes(config) != before:
        redraw_open_sets(session, project)  # the sets' sizes changed: redraw them while they are open
    session.commit()
    return project


def _still_followed(followed: list[str] | None, given: dict[str, object]) -> list[str] | None:
    """The project's followed settings less those the user sets now (None: not known, a project from
    before migration 0011)."""
    return None if followed is None else [name for name in followed if name not in given]


def _with_following_preset(
    session: Session, project: Project, given: dict[str, Any], followed: list[str] | None
) -> dict[str, Any]:
    """A PATCH's ``given`` settings, with the preset its data kind now gives where the service chose the
    project's preset (:func:`app.projects.config.following_preset`), while the project has no item: its
    items are encoded for its model by then (``text-finetune`` and ``text-paper`` read different encoders),
    so the preset stays."""
    moved = following_preset(project.settings, given, project.data_kind, followed)
    if moved is None or items_repo.has_items(session, project.id):
        return given
    return {**given, "preset": moved}


def _set_sizes(config: TBALConfig) -> tuple[int, int, int]:
    """What the draw of the validation and seed sets reads from the configuration (the draw leaves
    ``targeted_validation`` of ``validation_size`` for the stratum: :func:`tbal.plan.draw_initial_sets`)."""
    loop = config.loop
    return loop.validation_size, targeted_count(config), loop.seed_size


def _set_sizes_before(project: Project) -> tuple[int, int, int] | None:
    """The set sizes of the project as it is; None when its pinned base no longer reads with this tbal (the
    PATCH of ``preset`` that the error asks for must be able to re-pin it)."""
    try:
        return _set_sizes(project_config(project))
    except Invalid:
        return None


def delete_project(session: Session, project: Project, artifacts_dir: Path) -> None:
    active = rounds_repo.active(session, project.id)
    if active is not None and active.status == "running":
        raise Conflict("round", f"round {active.id} is running; delete the project when it has finished")
    projects_repo.remove(session, project.id)
    session.commit()
    shutil.rmtree(Path(artifacts_dir) / str(project.id), ignore_errors=True)


def read(project: Project) -> ProjectRead:
    return ProjectRead.model_validate({**_fields(project), **_configured(project, project_config(project))})


def read_detail(session: Session, project: Project) -> ProjectDetail:
    config = project_config(project)
    counts = ProjectCounts(
        items=items_repo.count_items(session, project.id),
        pool=items_repo.count_pool(session, project.id),
        validation_labels=items_repo.count_labeled(session, project.id, "validation"),
        training_labels=items_repo.count_labeled(session, project.id, "train"),
        human_labels=labels_repo.count_human_labels(session, project.id),
        auto_labels=auto_repo.count(session, project.id),
        open_queries=labels_repo.count_open_queries(session, project.id),
        budget_used=budget_used(session, project.id),
        label_budget=config.loop.label_budget,
        rounds=rounds_repo.count_all(session, project.id),
    )
    return ProjectDetail.model_validate(
        {**_fields(project), **_configured(project, config), "counts": counts}
    )


def _configured(project: Project, config: TBALConfig) -> dict[str, object]:
    """The effective configuration and what its certificate needs (:func:`tbal.plan.certificate_needs`)."""
    needs = certificate_needs(config, len(project.classes))
    certificate = None if needs is None else {**needs.to_dict(), "warnings": needs.warnings()}
    return {"config": config_to_dict(config), "certificate": certificate}


def _fields(project: Project) -> dict[str, object]:
    return {
        "id": project.id,
        "name": project.name,
        "classes": project.classes,
        "data_kind": project.data_kind,
        "input_shape": project.input_shape,
        "seed": project.seed,
        "settings": project.settings,
        "followed": project.followed,
        "sets_drawn_at": project.sets_drawn_at,
        "created_at": project.created_at,
        "updated_at": project.updated_at,
    }
