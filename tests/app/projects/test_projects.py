"""Projects CRUD, authentication, health, metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.projects.keys_service import create_key, revoke_key
from tests.app.conftest import Api, count_rows


def test_health_needs_no_key_and_reports_the_database(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "none",
        "dispatcher": "in-process",
    }


def test_every_api_route_needs_a_key(api: Api) -> None:
    for path in ("/api/v1/projects", "/api/v1/rounds/1", "/metrics"):
        missing = api.client.get(path)
        assert missing.status_code == 401, path
        assert missing.json()["detail"]["field"] == "authorization"
        assert "Bearer" in missing.json()["detail"]["reason"]
        wrong = api.client.get(path, headers={"Authorization": "Bearer tbal_not-a-key"})
        assert wrong.status_code == 401
        assert wrong.json()["detail"]["reason"] == "unknown API key"
    basic = api.client.get("/api/v1/projects", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


def test_revoked_key_is_refused(api: Api, session_factory: sessionmaker[Session]) -> None:
    key, secret = create_key(session_factory, "temporary")
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/api/v1/projects", headers=headers).status_code == 200
    assert revoke_key(session_factory, key.id)
    response = api.client.get("/api/v1/projects", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]["reason"]


def test_keys_are_stored_hashed(api: Api, session_factory: sessionmaker[Session]) -> None:
    from sqlalchemy import select

    from app.db.models import ApiKey

    _key, secret = create_key(session_factory, "hashed")
    with session_factory() as session:
        stored = [(k.key_hash, k.prefix) for k in session.scalars(select(ApiKey))]
    assert all(secret != h and secret[12:] not in h for h, _ in stored)


def test_openapi_and_docs_are_served(api: Api) -> None:
    spec = api.client.get("/api/v1/openapi.json").json()
    paths = set(spec["paths"])
    for path in (
        "/api/v1/projects",
        "/api/v1/projects/{project_id}",
        "/api/v1/projects/{project_id}/items",
        "/api/v1/projects/{project_id}/items/upload",
        "/api/v1/projects/{project_id}/labels",
        "/api/v1/projects/{project_id}/queue",
        "/api/v1/projects/{project_id}/rounds",
        "/api/v1/rounds/{round_id}",
        "/api/v1/projects/{project_id}/auto-labels",
        "/api/v1/projects/{project_id}/export",
        "/api/v1/projects/{project_id}/predict",
        "/api/v1/projects/{project_id}/simulate",
    ):
        assert path in paths, path
    assert api.client.get("/api/v1/docs").status_code == 200


def test_metrics_are_prometheus_text(api: Api) -> None:
    api.get("/api/v1/projects")
    response = api.get("/metrics")
    assert response.status_code == 200
    assert "tbal_http_requests_total" in response.text
    assert 'tbal_rounds{status="queued"} 0.0' in response.text


def test_project_crud(api: Api) -> None:
    body: dict[str, Any] = {
        "name": "digits-1",
        "classes": ["zero", "one"],
        "data_kind": "image",
        "input_shape": [8, 8],
        "settings": {"epsilon": 0.1, "label_budget": 100, "seed_size": 40, "colander": {"lam": 5}},
        "seed": 7,
    }
    created = api.post("/api/v1/projects", json=body)
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["config"]["thresholds"]["epsilon"] == 0.1
    assert project["config"]["loop"]["label_budget"] == 100
    assert project["config"]["confidence"]["colander"]["lam"] == 5
    pid = project["id"]

    assert api.post("/api/v1/projects", json=body).status_code == 409
    listed = api.get("/api/v1/projects").json()
    assert [p["name"] for p in listed] == ["digits-1"]
    detail = api.get(f"/api/v1/projects/{pid}").json()
    assert detail["counts"]["items"] == 0 and detail["counts"]["label_budget"] == 100

    patched = api.patch(
        f"/api/v1/projects/{pid}",
        json={
            "settings": {
                "epsilon": 0.02,
                "query_strategy": "margin",
                "walk_start_share": 0.0,
                "pseudo_label_share": 0.5,
            }
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"]["epsilon"] == 0.02
    assert patched.json()["settings"]["label_budget"] == 100  # kept
    assert patched.json()["config"]["query"]["strategy"] == "margin"
    assert patched.json()["config"]["thresholds"]["walk_start_share"] == 0.0
    assert patched.json()["config"]["train"]["pseudo_label_share"] == 0.5

    assert api.delete(f"/api/v1/projects/{pid}").status_code == 204
    missing = api.get(f"/api/v1/projects/{pid}")
    assert missing.status_code == 404
    assert missing.json()["detail"] == {"field": "project_id", "reason": f"no project {pid}"}


def test_a_project_says_what_its_certificate_needs(api: Api) -> None:
    """A project whose validation points cannot hold a certificate hears it when it is created, before any
    label; it still may start (the user can raise validation_size later), and a PATCH says it again."""
    body: dict[str, Any] = {
        "name": "few-validation",
        "classes": ["a", "b", "c"],
        "data_kind": "features",
        "input_shape": [4],
        "settings": {"validation_size": 40},
    }
    created = api.post("/api/v1/projects", json=body)
    assert created.status_code == 201, created.text
    certificate = created.json()["certificate"]
    assert certificate["can_certify"] is False and certificate["validation_points"] == 40
    assert (
        certificate["clean_points"] == 68
    )  # vectors: δ_k 0.045 to the last planned round, 0.3 to the fallback
    (warning,) = certificate["warnings"]
    assert "no round can auto-label anything" in warning and "validation_size" in warning
    pid = created.json()["id"]

    detail = api.get(f"/api/v1/projects/{pid}").json()
    assert detail["certificate"] == certificate
    raised = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"validation_size": 300}}).json()
    assert raised["certificate"]["can_certify"] is True and raised["certificate"]["warnings"] == []
    per_class = api.patch(
        f"/api/v1/projects/{pid}", json={"settings": {"guarantee": "per-class", "validation_size": 200}}
    ).json()
    assert per_class["certificate"]["every_class_can"] is False
    assert "per-class" in per_class["certificate"]["warnings"][0]
    paper = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"bound": "paper"}}).json()
    assert paper["certificate"] is None


@pytest.mark.parametrize(
    ("project_settings", "field"),
    [
        ({"epsilon": 1.5}, "settings.epsilon"),
        ({"bound": "magic"}, "settings.bound"),
        ({"confidence": "nope"}, "settings.confidence"),
        ({"seed_size": 600, "label_budget": 500}, "settings.seed_size"),
        ({"colander": {"lam": -1}}, "settings.colander.lam"),
        ({"colander": {"gamma": 1}}, "settings.colander.gamma"),
        ({"preset": "unknown"}, "settings.preset"),
        ({"model": "lenet5"}, "settings.model"),
        ({"uncertainty": "magic"}, "settings.uncertainty"),
        ({"uncertainty": "mc-dropout"}, "settings.uncertainty"),
        ({"whatever": 1}, "settings.whatever"),
        ({"confidence": "kernel"}, "settings.confidence"),
        ({"confidence": "kernel", "uncertainty": "sngp"}, "settings.confidence"),
        ({"method_params": {"label_smoothing": 1.0}}, "settings.method_params.label_smoothing"),
        ({"method_params": {"mixup_alpha": 0}}, "settings.method_params.mixup_alpha"),
        ({"method_params": {"autolabel_buckets": 2.5}}, "settings.method_params.autolabel_buckets"),
        ({"method_params": {"autolabel_augment": "blur"}}, "settings.method_params.autolabel_augment"),
        ({"method_params": {"saliency_mix_weights": [1, 1]}}, "settings.method_params.saliency_mix_weights"),
        ({"method_params": {"sam_rho": "wide"}}, "settings.method_params.sam_rho"),
        ({"method_params": {"epochs": 3}}, "settings.method_params.epochs"),
        ({"label_review_fraction": 1.5}, "settings.label_review_fraction"),
        ({"walk_start_share": 1.5}, "settings.walk_start_share"),
        ({"pseudo_label_share": -0.1}, "settings.pseudo_label_share"),
        ({"targeted_validation": -1}, "settings.targeted_validation"),
        ({"targeted_validation": 1.5}, "settings.targeted_validation"),
        ({"targeted_validation": "half"}, "settings.targeted_validation"),
        ({"validation_size": 100, "targeted_validation": 99}, "settings.targeted_validation"),
        ({"targeted_validation": 10, "label_budget": 100, "seed_size": 100}, "settings.targeted_validation"),
        ({"stratum_share": 0}, "settings.stratum_share"),
        ({"stratum_share": 1.5}, "settings.stratum_share"),
        ({"stratum_error_factor": -1}, "settings.stratum_error_factor"),
        ({"weight_decay": -0.1}, "settings.weight_decay"),
        ({"augment_shift": -1}, "settings.augment_shift"),
        ({"augment_shift": 1.5}, "settings.augment_shift"),
        ({"standardize_inputs": "sometimes"}, "settings.standardize_inputs"),
        ({"warm_start_epochs": -1}, "settings.warm_start_epochs"),
        ({"warm_start_rounds": "all"}, "settings.warm_start_rounds"),
    ],
)
def test_bad_settings_are_422_naming_the_field(
    api: Api, session_factory: sessionmaker[Session], project_settings: dict[str, Any], field: str
) -> None:
    body = {
        "name": "bad",
        "classes": ["a", "b"],
        "data_kind": "features",
        "input_shape": [3],
        "settings": project_settings,
    }
    response = api.post("/api/v1/projects", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == field
    assert response.json()["detail"]["reason"]
    assert count_rows(session_factory, "projects") == 0


def test_budget_and_seed_are_checked_together(api: Api) -> None:
    body = {
        "name": "small",
        "classes": ["a", "b"],
        "data_kind": "features",
        "input_shape": [3],
        "settings": {"label_budget": 100, "seed_size": 50},
    }
    assert api.post("/api/v1/projects", json=body).status_code == 201


def test_bad_project_fields(api: Api) -> None:
    base = {"name": "x", "classes": ["a", "b"], "data_kind": "features", "input_shape": [3]}
    for change, field in (
        ({"name": "has space"}, "name"),
        ({"classes": ["a", "a"]}, "classes"),
        ({"classes": ["a"]}, "classes"),
        ({"input_shape": [0]}, "input_shape"),
        ({"input_shape": [3, 3]}, "input_shape"),
        ({"data_kind": "audio"}, "data_kind"),
    ):
        response = api.post("/api/v1/projects", json={**base, **change})
        assert response.status_code == 422, change
        assert response.json()["detail"]["field"] == field, response.json()


def test_unreachable_database_is_503_not_500(tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    down = Settings(
        database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere",
        db_connect_timeout_s=1,
        artifacts_dir=tmp_path,
    )
    with TestClient(create_app(down)) as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["detail"]["field"] == "database"
        assert "unreachable" in health.json()["detail"]["reason"]
        assert health.headers["Retry-After"] == "5"
        # /health needs no key: it names what is down, never where it lives (issue 15, item 7)
        for secret in ("127.0.0.1", "9", "nowhere", "postgres"):
            assert secret not in health.text, health.text
        api = client.get("/api/v1/projects", headers={"Authorization": "Bearer tbal_x"})
        assert api.status_code == 503
        assert api.json()["detail"]["field"] == "database"


def test_training_options_are_project_settings(api: Api) -> None:
    body: dict[str, Any] = {
        "name": "mc-dropout",
        "classes": ["a", "b"],
        "data_kind": "features",
        "input_shape": [4],
        "settings": {"train_method": "mixup", "targets": "soft", "uncertainty": "mc-dropout", "dropout": 0.3},
    }
    created = api.post("/api/v1/projects", json=body)
    assert created.status_code == 201, created.text
    config = created.json()["config"]
    assert config["train"]["method"] == "mixup" and config["train"]["targets"] == "soft"
    assert config["model"]["uncertainty"] == "mc-dropout" and config["model"]["dropout"] == 0.3


def test_the_networks_training_values_are_project_settings(api: Api) -> None:
    """Unset, the six training values come from the network when a round builds it (null in the config);
    set, they are the project's, e.g. a LeNet-5 project that turns its default shifts and standardisation
    off. ``preset`` null: the library's defaults (an image project naming none gets mnist-paper's)."""
    body: dict[str, Any] = {
        "name": "lenet",
        "classes": ["a", "b"],
        "data_kind": "image",
        "input_shape": [28, 28],
    }
    unset = api.post("/api/v1/projects", json={**body, "settings": {"preset": None}})
    assert unset.status_code == 201, unset.text
    assert {
        unset.json()["config"]["train"][f] for f in ("weight_decay", "standardize_inputs", "augment_shift")
    } == {None}
    chosen = {"weight_decay": 0.0005, "standardize_inputs": False, "augment_shift": 0}
    created = api.post(
        "/api/v1/projects", json={**body, "name": "lenet-raw", "settings": {"preset": None, **chosen}}
    )
    assert created.status_code == 201, created.text
    train = created.json()["config"]["train"]
    assert {f: train[f] for f in chosen} == chosen
    patched = api.patch(f"/api/v1/projects/{created.json()['id']}", json={"settings": {"augment_shift": 3}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"]["train"]["augment_shift"] == 3


def test_method_hyperparameters_are_project_settings(api: Api) -> None:
    """``method_params`` sets the train-time methods' hyperparameters (TrainConfig's own checks); a bad
    one in a PATCH is a 422 naming it and changes nothing."""
    body: dict[str, Any] = {
        "name": "smooth",
        "classes": ["a", "b", "c"],
        "data_kind": "features",
        "input_shape": [4],
        "settings": {
            "train_method": "saliency_mixup",
            "method_params": {"mixup_alpha": 0.4, "saliency_mix_weights": [0.6, 0.2, 0.2], "crl_weight": 0.8},
        },
    }
    created = api.post("/api/v1/projects", json=body)
    assert created.status_code == 201, created.text
    train = created.json()["config"]["train"]
    assert train["method"] == "saliency_mixup" and train["mixup_alpha"] == 0.4
    assert train["saliency_mix_weights"] == [0.6, 0.2, 0.2] and train["crl_weight"] == 0.8
    assert train["label_smoothing"] == 0.1  # untouched: the library's default
    pid = created.json()["id"]

    patch = {"settings": {"epsilon": 0.2, "method_params": {"label_smoothing": 0.05, "autolabel_buckets": 0}}}
    refused = api.patch(f"/api/v1/projects/{pid}", json=patch)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"]["field"] == "settings.method_params.autolabel_buckets"
    assert "positive integer" in refused.json()["detail"]["reason"]
    unknown = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"method_params": {"alpha": 1}}})
    assert unknown.status_code == 422 and unknown.json()["detail"]["field"] == "settings.method_params.alpha"
    assert "label_smoothing" in unknown.json()["detail"]["reason"]  # lists the valid ones
    after = api.get(f"/api/v1/projects/{pid}").json()
    assert after["settings"] == created.json()["settings"] and after["config"] == created.json()["config"]

    patched = api.patch(
        f"/api/v1/projects/{pid}",
        json={"settings": {"train_method": "label_smoothing", "method_params": {"label_smoothing": 0.05}}},
    )
    assert patched.status_code == 200, patched.text
    train = patched.json()["config"]["train"]
    assert train["label_smoothing"] == 0.05 and train["mixup_alpha"] == 0.2  # replaced as a whole


def test_kernel_confidence_with_duq(api: Api) -> None:
    body: dict[str, Any] = {
        "name": "duq",
        "classes": ["a", "b"],
        "data_kind": "features",
        "input_shape": [4],
        "settings": {"uncertainty": "duq", "confidence": "kernel"},
    }
    created = api.post("/api/v1/projects", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["config"]["confidence"]["name"] == "kernel"
    pid = created.json()["id"]
    away = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"uncertainty": "none"}})
    assert away.status_code == 422 and away.json()["detail"]["field"] == "settings.confidence"
    assert "needs model.uncertainty in duq" in away.json()["detail"]["reason"]
