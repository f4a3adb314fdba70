"""A project whose settings name no preset gets its data kind's (tbal.config.preset_for_data): texts
text-finetune (text-paper where they choose a classifier on frozen features), images mnist-paper, feature
vectors vectors (the library's defaults with standardised inputs); ``"preset": null`` keeps the library's
defaults; a preset's validation floor follows the budgets a project sets (tbal.config.floor_for_budgets)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

from tbal.config import FINETUNE_LEAST_LABELS, TBALConfig, config_from_dict, config_to_dict, preset
from tests.app.conftest import Api


def as_json(config: TBALConfig) -> dict[str, Any]:
    """A configuration as a project read returns it (tuples as lists)."""
    return dict(json.loads(json.dumps(config_to_dict(config))))


def create(api: Api, name: str, data_kind: str, classes: int = 2, **settings: Any) -> dict[str, Any]:
    shape = {"features": [4], "image": [8, 8], "text": []}[data_kind]
    body = {
        "name": name,
        "classes": [str(c) for c in range(classes)],
        "data_kind": data_kind,
        "input_shape": shape,
    }
    response = api.post("/api/v1/projects", json={**body, "settings": settings})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_each_data_kind_gets_its_preset_unless_it_names_one(api: Api) -> None:
    text = create(api, "texts", "text", encoder="hashing:64")  # features: the frozen-feature preset
    assert text["settings"]["preset"] == "text-paper"
    assert text["config"] == as_json(preset("text-paper"))
    image = create(api, "images", "image")
    assert image["settings"]["preset"] == "mnist-paper"
    assert image["config"] == as_json(preset("mnist-paper"))
    features = create(api, "vectors", "features")
    assert features["settings"]["preset"] == "vectors"
    assert features["config"] == as_json(preset("vectors"))
    assert features["config"]["train"]["standardize_inputs"] is True
    bare = create(api, "bare-vectors", "features", preset=None)  # null: the library's defaults
    assert "preset" not in bare["settings"] and bare["followed"] == []
    assert bare["config"] == as_json(TBALConfig())
    tuned = create(api, "tuned", "text", model="minilm")
    assert tuned["settings"]["preset"] == "text-finetune"
    assert tuned["settings"]["encoder"] == "minilm-tokens"
    assert tuned["config"] == as_json(preset("text-finetune"))
    plain = create(api, "plain", "text")
    assert plain["settings"]["preset"] == "text-finetune"
    assert plain["settings"]["encoder"] == "minilm-tokens"
    assert plain["config"] == as_json(preset("text-finetune"))
    embedded = create(api, "embedded", "text", encoder="minilm")
    assert embedded["settings"]["preset"] == "text-paper"
    assert embedded["config"] == as_json(preset("text-paper"))
    few = create(api, "few-labels", "text", label_budget=FINETUNE_LEAST_LABELS - 1)
    assert few["settings"]["preset"] == "text-paper"
    assert few["config"]["model"]["name"] == "mlp"
    few_tuned = create(api, "few-tuned", "text", model="minilm", label_budget=FINETUNE_LEAST_LABELS - 1)
    assert few_tuned["settings"]["preset"] == "text-finetune"  # MiniLM's own training, not the MLP's
    assert few_tuned["config"]["train"]["epochs"] is None
    enough = create(api, "enough-labels", "text", label_budget=FINETUNE_LEAST_LABELS)
    assert enough["settings"]["preset"] == "text-finetune"
    assert enough["config"]["loop"]["label_budget"] == FINETUNE_LEAST_LABELS
    small_network = create(api, "small-network", "text", model="mlp")
    assert small_network["settings"]["preset"] == "text-paper"
    assert small_network["settings"].get("encoder", "minilm") == "minilm"


def test_a_text_project_on_the_fine_tuned_default_can_move_to_frozen_features_before_its_items(
    api: Api,
) -> None:
    """The default text project reads word pieces (text-finetune), an encoder the service chose for its
    model; a PATCH of the preset alone moves it to text-paper's (the frozen MiniLM embedding), one with a
    feature encoder takes that (before any item: the input shape becomes the encoder's). A word-piece
    encoder the user named is theirs: text-paper's network cannot read it, a 422 on the encoder."""
    project = create(api, "to-frozen", "text")
    assert project["settings"]["encoder"] == "minilm-tokens"
    url = f"/api/v1/projects/{project['id']}"
    moved = api.patch(url, json={"settings": {"preset": "text-paper"}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["config"]["model"]["name"] == "mlp" and moved.json()["input_shape"] == [384]
    assert "encoder" not in moved.json()["settings"]
    hashed = api.patch(url, json={"settings": {"preset": "text-paper", "encoder": "hashing:64"}})
    assert hashed.status_code == 200, hashed.text
    assert hashed.json()["input_shape"] == [64]
    mine = create(api, "my-word-pieces", "text", encoder="minilm-tokens")
    refused = api.patch(f"/api/v1/projects/{mine['id']}", json={"settings": {"preset": "text-paper"}})
    assert refused.status_code == 422, refused.text
    assert "settings.encoder" in refused.text


def test_minilm_named_under_text_paper_fine_tunes_with_its_own_epochs(api: Api) -> None:
    # text-paper leaves epochs and lr to the network: its MLP's 50 at 0.01, MiniLM's 3 at 0.005 (it was
    # 50 epochs of fine-tuning at the MLP's learning rate)
    named = create(api, "paper-minilm", "text", preset="text-paper", model="minilm")
    train = config_from_dict(named["config"]).train
    assert (train.epochs, train.lr) == (None, None)
    assert (train.for_network("minilm").epochs, train.for_network("minilm").lr) == (3, 0.005)
    assert (train.for_network("mlp").epochs, train.for_network("mlp").lr) == (50, 0.01)


def test_a_null_preset_keeps_the_librarys_defaults(api: Api) -> None:
    text = create(api, "plain-texts", "text", encoder="hashing:64", preset=None)
    assert "preset" not in text["settings"]
    assert text["config"] == as_json(TBALConfig())
    named = create(api, "named", "image", preset="cifar10-paper")
    assert named["config"] == as_json(preset("cifar10-paper"))


def test_the_floor_follows_the_budgets_a_project_sets(api: Api) -> None:
    """text-paper's floor is N_v + 0.4·N_t (2,400 on 1,600 + 2,000): with N_t 300 and N_v 500 it is 620, not
    2,400, which would take every training label after the seed for top-ups."""
    small = create(
        api, "small", "text", encoder="hashing:64", label_budget=300, seed_size=100, validation_size=500
    )
    assert small["settings"]["validation_floor"] == 620
    assert small["config"]["loop"]["validation_floor"] == 620
    pid = small["id"]

    def patch(**settings: Any) -> dict[str, Any]:
        response = api.patch(f"/api/v1/projects/{pid}", json={"settings": settings})
        assert response.status_code == 200, response.text
        return dict(response.json())

    assert patch(label_budget=1000)["config"]["loop"]["validation_floor"] == 900
    assert patch(label_budget=800, validation_floor=0)["config"]["loop"]["validation_floor"] == 0
    kept = patch(label_budget=1000)  # the user's floor stays
    assert kept["settings"]["validation_floor"] == 0
    assert patch(validation_floor=None)["config"]["loop"]["validation_floor"] == 900  # follows once unset
    back = patch(label_budget=2000, seed_size=400, validation_size=1600)
    assert "validation_floor" not in back["settings"]
    assert back["config"]["loop"]["validation_floor"] == 2400
    mine = create(
        api, "mine", "text", encoder="hashing:64", label_budget=300, seed_size=100, validation_floor=7
    )
    assert mine["config"]["loop"]["validation_floor"] == 7
    images = create(api, "no-floor", "image", label_budget=300)
    assert "validation_floor" not in images["settings"]  # mnist-paper has none to move


def test_a_presets_seed_follows_the_label_budget_a_project_sets(api: Api) -> None:
    """text-paper's seed is a fifth of N_t (400 of 2,000), mnist-paper's two fifths (200 of 500): a text
    project asking for N_t 300 gets a seed of 60, not a 422 on a seed of 400 it never set; a project
    without a preset keeps the library's 200."""
    text = create(api, "budget-texts", "text", encoder="hashing:64", label_budget=300)
    assert text["config"]["loop"]["seed_size"] == 60 and text["settings"]["seed_size"] == 60
    assert text["config"]["loop"]["validation_floor"] == 1_720  # N_v 1,600 + 0.4 · 300
    assert create(api, "budget-images", "image", label_budget=300)["config"]["loop"]["seed_size"] == 120
    mine = create(api, "my-seed", "text", encoder="hashing:64", label_budget=300, seed_size=30)
    assert mine["config"]["loop"]["seed_size"] == 30
    # no preset: nothing follows
    plain = create(api, "budget-plain", "features", label_budget=300, preset=None)
    assert plain["config"]["loop"]["seed_size"] == 200 and "seed_size" not in plain["settings"]
    vectors = create(api, "budget-vectors", "features", label_budget=300)  # vectors' seed: 40 % of N_t
    assert vectors["config"]["loop"]["seed_size"] == 120 and vectors["settings"]["seed_size"] == 120
    pid = text["id"]
    grown = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"label_budget": 2_000}}).json()
    assert grown["config"]["loop"]["seed_size"] == 400 and "seed_size" not in grown["settings"]
    bad = api.post(
        "/api/v1/projects",
        json={
            "name": "bad-budget",
            "classes": ["a", "b"],
            "data_kind": "text",
            "settings": {"label_budget": -3},
        },
    )
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "settings.label_budget"


def test_a_new_preset_moves_the_counts_that_followed_the_old_one(api: Api) -> None:
    """An image project with N_t 300 gets mnist-paper's seed share (120); a PATCH to text-paper gives it
    text-paper's (60) and floor (N_v 1,600 + 0.4 · 300), where it kept mnist-paper's 120 before; a seed the
    user set stays."""
    images = create(api, "moving", "image", label_budget=300)
    assert images["settings"]["seed_size"] == 120
    moved = api.patch(f"/api/v1/projects/{images['id']}", json={"settings": {"preset": "text-paper"}})
    assert moved.status_code == 200, moved.text
    loop = moved.json()["config"]["loop"]
    assert loop["seed_size"] == 60 and loop["validation_floor"] == 1_720
    mine = create(api, "my-moving-seed", "image", label_budget=300, seed_size=90)
    kept = api.patch(f"/api/v1/projects/{mine['id']}", json={"settings": {"preset": "text-paper"}})
    assert kept.status_code == 200, kept.text
    assert kept.json()["config"]["loop"]["seed_size"] == 90


def test_an_image_project_runs_a_round_on_its_default(api: Api) -> None:
    """mnist-paper's ResNet-8 on 8×8 grey digits, its budgets cut to this test's size."""
    digits = load_digits()
    images, y = digits.images[:300].astype(np.uint8), digits.target[:300]
    project = create(
        api,
        "digit-default",
        "image",
        classes=10,
        validation_size=100,
        seed_size=60,
        label_budget=80,
        batch_size=20,
        epochs=2,
    )
    project_id = project["id"]
    assert project["config"]["model"]["name"] == "resnet"
    items = [
        {"external_id": str(i), "image": images[i].tolist(), "ground_truth": int(y[i])} for i in range(300)
    ]
    assert api.post(f"/api/v1/projects/{project_id}/items", json={"items": items}).json()["inserted"] == 300
    api.post(f"/api/v1/projects/{project_id}/simulate")
    round_id = api.post(f"/api/v1/projects/{project_id}/rounds").json()["id"]
    done = api.wait_round(round_id, timeout=300)
    assert done["status"] == "succeeded", done["error"]
    # 300 less the seed (60) and the initial validation draw (10: mnist-paper draws 0.9 of N_v later,
    # inside the stratum)
    assert done["metrics"]["pool_size"] == 230
