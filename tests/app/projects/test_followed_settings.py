"""The settings the service chose for a project (``projects.followed``: its data kind's preset, a preset's
seed and floor for the budgets, the encoder its model reads) follow what they followed when the user
changes it; those the user set stay, even where they equal what the service would choose."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Project
from tbal.config import FINETUNE_LEAST_LABELS, config_from_dict
from tests.app.conftest import Api
from tests.app.projects.test_data_kind_defaults import create


def patch(api: Api, project: dict[str, Any], **settings: Any) -> dict[str, Any]:
    response = api.patch(f"/api/v1/projects/{project['id']}", json={"settings": settings})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_project_says_which_settings_the_service_chose(api: Api) -> None:
    plain = create(api, "chosen-texts", "text")
    assert plain["followed"] == ["preset", "encoder"]
    small = create(api, "chosen-counts", "text", encoder="hashing:64", label_budget=300, seed_size=30)
    assert small["followed"] == ["preset", "validation_floor"]  # the seed and the encoder are the user's
    named = create(api, "named-preset", "image", preset="mnist-paper", label_budget=300)
    assert named["followed"] == ["seed_size"]
    assert create(api, "chosen-vectors", "features")["followed"] == ["preset"]
    assert create(api, "chosen-nothing", "features", preset=None)["followed"] == []


def test_a_chosen_text_preset_follows_the_label_budget_and_the_model_before_the_items(api: Api) -> None:
    """A text project that names nothing takes text-finetune; lowering its N_t under 1,000 before its
    items moves it to text-paper, as it would have been created (encoder, seed and floor with it), and
    raising it back moves it back; naming a small network does the same."""
    project = create(api, "following-texts", "text")
    few = patch(api, project, label_budget=FINETUNE_LEAST_LABELS - 100)
    assert few["settings"]["preset"] == "text-paper" and few["config"]["model"]["name"] == "mlp"
    assert few["settings"].get("encoder", "minilm") == "minilm" and few["input_shape"] == [384]
    assert few["config"]["loop"]["seed_size"] == 180  # text-paper's fifth of 900
    assert set(few["followed"]) == {"preset", "seed_size", "validation_floor"}
    back = patch(api, project, label_budget=2_000)
    assert back["settings"]["preset"] == "text-finetune" and back["config"]["model"]["name"] == "minilm"
    assert back["settings"]["encoder"] == "minilm-tokens" and back["config"]["loop"]["seed_size"] == 400
    small_network = patch(api, project, model="mlp")
    assert small_network["settings"]["preset"] == "text-paper"
    assert small_network["config"]["model"]["hidden"] == [256]  # text-paper's network, not the library's
    # text-paper's training: weight decay 1e-2, and its MLP's own 50 epochs at lr 0.01
    train = config_from_dict(small_network["config"]).train
    assert train.weight_decay == 1e-2
    assert (train.for_network("mlp").epochs, train.for_network("mlp").lr) == (50, 0.01)


def test_a_setting_set_to_null_follows_again(api: Api) -> None:
    project = create(api, "unset-again", "text")
    mine = patch(api, project, encoder="minilm-tokens", seed_size=300)
    assert mine["followed"] == ["preset"]
    again = patch(api, project, encoder=None, seed_size=None)
    assert again["settings"]["encoder"] == "minilm-tokens" and "seed_size" not in again["settings"]
    assert again["followed"] == ["preset", "encoder"]  # the seed is the base's again: nothing stored


def test_a_preset_the_user_named_stays_when_the_budget_moves(api: Api) -> None:
    named = create(api, "named-texts", "text", preset="text-finetune")
    assert "preset" not in named["followed"]
    kept = patch(api, named, label_budget=FINETUNE_LEAST_LABELS - 100)
    assert kept["settings"]["preset"] == "text-finetune"


def test_a_chosen_text_preset_stays_once_items_are_encoded_for_it(api: Api) -> None:
    project = create(api, "encoded-texts", "text")
    items = [{"external_id": str(i), "text": f"sentence number {i}"} for i in range(5)]
    uploaded = api.post(f"/api/v1/projects/{project['id']}/items/texts", json={"items": items})
    assert uploaded.status_code == 200, uploaded.text
    kept = patch(api, project, label_budget=FINETUNE_LEAST_LABELS - 100)
    assert kept["settings"]["preset"] == "text-finetune" and kept["input_shape"] == project["input_shape"]
    assert kept["config"]["loop"]["seed_size"] == 180  # the seed still follows the budget


def test_a_count_the_user_set_stays_even_where_it_equals_the_followed_one(api: Api) -> None:
    """120 is mnist-paper's seed for N_t 300; set by the user it stays through a new preset and a new
    budget, where a followed 120 moves to text-paper's 60."""
    mine = create(api, "my-equal-seed", "image", label_budget=300, seed_size=120)
    assert "seed_size" not in mine["followed"]
    moved = patch(api, mine, preset="text-paper")
    assert moved["config"]["loop"]["seed_size"] == 120
    assert patch(api, mine, label_budget=400)["config"]["loop"]["seed_size"] == 120
    followed = create(api, "followed-seed", "image", label_budget=300)
    assert patch(api, followed, preset="text-paper")["config"]["loop"]["seed_size"] == 60


def test_projects_from_before_the_column_take_an_equal_count_as_followed(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    """NULL ``followed`` (a project created before migration 0011): a count equal to what the old preset
    gives for its budgets moves with a new preset, as before."""
    mine = create(api, "old-equal-seed", "image", label_budget=300, seed_size=120)
    with session_factory() as session:
        session.execute(update(Project).where(Project.id == mine["id"]).values(followed=None))
        session.commit()
    assert api.get(f"/api/v1/projects/{mine['id']}").json()["followed"] is None
    moved = patch(api, mine, preset="text-paper")
    assert moved["config"]["loop"]["seed_size"] == 60 and moved["followed"] is None
