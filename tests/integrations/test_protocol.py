"""The ML-backend protocol: authentication, /setup's check of the label config, /predict (one answer
per task in order, the same numbers as the service's own predict path, auto-labels where tbal made
them), and a 10,000-task call."""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np
import pytest

from tests.app.conftest import Api
from tests.integrations.conftest import (
    CLASSES,
    LSProject,
    features_of,
    fixture_path,
    train_first_model,
)

CONFIG = fixture_path("label_config.xml").read_text()


def _config(choices: str, extra: str = "", attrs: str = "") -> str:
    return (
        f'<View><Text name="text" value="$text"/>{extra}'
        f'<Choices name="label" toName="text"{attrs}>{choices}</Choices></View>'
    )


def _tasks(ids: range | list[int]) -> list[dict[str, Any]]:
    return [{"id": t, "data": {"text": f"task {t}", "features": features_of(t)}} for t in ids]


def _predict(api: Api, project: LSProject, tasks: list[dict[str, Any]]) -> Any:
    return api.client.post(f"{project.path}/predict", json={"tasks": tasks, "label_config": CONFIG})


def test_urls_and_authentication(api: Api, connected: Any, make_project: Any) -> None:
    project: LSProject = connected()
    client = api.client
    for suffix in ("/health", "/", ""):
        response = client.get(project.path + suffix)
        assert response.status_code == 200, suffix
        assert response.json()["status"] == "UP"
    wrong = client.get(project.path.rsplit("/", 1)[0] + "/ls_not-the-secret/health")
    assert wrong.status_code == 401 and wrong.json()["detail"]["field"] == "secret"
    assert client.get(f"/integrations/label-studio/99999/{project.secret}/health").status_code == 404
    other = make_project()
    assert client.get(f"/integrations/label-studio/{other['id']}/{project.secret}/health").status_code == 404

    key = api.headers["Authorization"].removeprefix("Bearer ")

    def basic(password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"someone:{password}".encode()).decode()}

    assert client.get(project.path + "/health", headers=basic(key)).status_code == 200
    assert client.get(project.path + "/health", headers=basic(project.secret)).status_code == 200
    assert client.get(project.path + "/health", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    for bad in (basic("wrong"), {"Authorization": "Bearer wrong"}, {"Authorization": "Digest x"}):
        response = client.get(project.path + "/health", headers=bad)
        assert response.status_code == 401 and response.json()["detail"]["field"] == "authorization", bad
    assert client.get(project.path + "/health", headers={"Authorization": "Basic !!"}).status_code == 401

    # tbal's own API needs the API key; the connection read never shows the secret
    assert client.get(f"/api/v1/projects/{project.id}/label-studio/connection").status_code == 401
    read = api.get(f"/api/v1/projects/{project.id}/label-studio/connection").json()
    assert read["path"] == f"/integrations/label-studio/{project.id}/<secret>"
    assert project.secret not in str(read) and project.secret.startswith(read["secret_prefix"])
    assert read["data_field"] == "features" and read["id_field"] == "external_id"

    # a new secret retires the old URL; deleting the connection retires every URL
    rotated = api.post(f"/api/v1/projects/{project.id}/label-studio/connection").json()
    assert client.get(project.path + "/health").status_code == 401
    new_path = rotated["url"].removeprefix(str(client.base_url))
    assert client.get(new_path + "/health").status_code == 200
    assert api.delete(f"/api/v1/projects/{project.id}/label-studio/connection").status_code == 204
    assert client.get(new_path + "/health").status_code == 404
    assert api.get(f"/api/v1/projects/{project.id}/label-studio/connection").status_code == 404


def test_setup_checks_the_choices_against_the_classes(api: Api, connected: Any) -> None:
    project: LSProject = connected()
    setup = f"{project.path}/setup"

    def post(schema: str) -> Any:
        return api.client.post(setup, json={"project": "1.1", "schema": schema, "extra_params": None})

    ok = post(CONFIG)
    assert ok.status_code == 200 and ok.json() == {"model_version": f"{project.name}-untrained"}
    assert api.client.get(f"{project.path}/versions").json() == {"versions": [f"{project.name}-untrained"]}

    mismatch = post(_config('<Choice value="Positive"/><Choice value="Neutral"/>'))
    assert mismatch.status_code == 422
    reason = mismatch.json()["detail"]["reason"]
    assert (
        "missing in Label Studio: ['Negative']" in reason
        and "not classes of the project: ['Neutral']" in reason
    )
    both = '<Choice value="Positive"/><Choice value="Negative"/>'
    multiple = post(_config(both, attrs=' choice="multiple"'))
    assert multiple.status_code == 422 and 'choice="single"' in multiple.json()["detail"]["reason"]
    assert "found none" in post('<View><Text name="t" value="$t"/></View>').json()["detail"]["reason"]
    assert "parse error" in post("<View><Choices").json()["detail"]["reason"]
    entity = '<!DOCTYPE v [<!ENTITY a "b">]>' + CONFIG
    assert "DOCTYPE" in post(entity).json()["detail"]["reason"]
    dynamic = post('<View><Text name="t" value="$t"/><Choices name="c" toName="t" value="$options"/></View>')
    assert "dynamic choices" in dynamic.json()["detail"]["reason"]

    # the first matching control wins; aliases are what annotations carry
    other = '<Choices name="topic" toName="text"><Choice value="Sports"/></Choices>'
    aliased = '<Choice value="Good" alias="Positive"/><Choice value="Bad" alias="Negative"/>'
    config = _config(aliased, extra=other).replace('name="label"', 'name="sentiment"')
    assert post(config).status_code == 200
    read = api.get(f"/api/v1/projects/{project.id}/label-studio/connection").json()
    assert (read["from_name"], read["to_name"]) == ("sentiment", "text")


def _last_errors(api: Api, project: LSProject) -> list[dict[str, Any]]:
    status = api.get(f"/api/v1/projects/{project.id}/label-studio/status")
    assert status.status_code == 200, status.text
    return list(status.json()["last_errors"])


def test_predict_before_a_model_and_unusable_tasks(api: Api, connected: Any) -> None:
    """One entry per task, always (Label Studio drops a whole batch otherwise); what went wrong is in the
    connection's status."""
    project: LSProject = connected()
    early = _predict(api, project, _tasks([1, 2]))
    assert early.status_code == 200 and early.json() == {"results": [[], []]}  # no prediction: asked again
    assert "press Train in Label Studio" in _last_errors(api, project)[0]["reason"]
    bad = _tasks([3, 4, 5])
    bad[1]["data"]["features"] = [1.0, 2.0]
    del bad[2]["data"]["features"]
    response = _predict(api, project, bad)
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0] == [] and [r["result"] for r in results[1:]] == [[], []]
    errors = _last_errors(api, project)
    reason = next(e["reason"] for e in errors if "have no item" in e["reason"])
    assert reason.startswith("2 of 3 tasks have no item")
    assert "task 4: data.features: expected shape [4]" in reason
    assert "task 5: no item with external id 'ls-5' in this project and no data.features" in reason
    wrong = api.client.post(
        f"{project.path}/predict", json={"tasks": _tasks([1]), "label_config": _config('<Choice value="x"/>')}
    )
    assert wrong.status_code == 200 and wrong.json() == {"results": [[]]}
    assert "choices that are not classes of the project: ['x']" in _last_errors(api, project)[0]["reason"]
    refused = api.client.post(f"{project.path}/setup", json={"schema": _config('<Choice value="unclear"/>')})
    assert refused.status_code == 422
    first = _last_errors(api, project)[0]
    assert first["source"] == "setup" and first["status"] == 422 and "['unclear']" in first["reason"]
    garbled = api.client.post(f"{project.path}/webhook", json={"no": "action"})
    assert garbled.status_code == 422 and _last_errors(api, project)[0]["source"] == "webhook"


def test_predict_answers_like_the_service_and_returns_auto_labels(api: Api, connected: Any) -> None:
    project: LSProject = connected()
    round_ = train_first_model(api, project)
    version = round_["model_version"]
    auto = api.get(f"/api/v1/projects/{project.id}/auto-labels", params={"limit": 5}).json()["items"]
    assert auto
    plain = api.get(f"/api/v1/projects/{project.id}/queue").json()["items"][0]  # asked for: not auto-labeled
    tasks = _tasks(range(101, 141))
    tasks.insert(7, {"id": 900, "data": {"text": "x", "external_id": auto[0]["external_id"]}})
    tasks.insert(20, {"id": 901, "data": {"text": "y", "external_id": plain["external_id"]}})
    tasks.insert(30, {"id": 902, "data": {"text": "no features"}})  # unmappable: an empty result
    response = _predict(api, project, tasks)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(tasks)
    assert {r["model_version"] for r in results} == {version}
    assert results[30]["result"] == [] and "task 902" in _last_errors(api, project)[0]["reason"]
    tasks.pop(30)
    results.pop(30)

    # the auto-labeled item: its auto-label and stored confidence, marked as an auto-label
    first = results[7]
    assert first["result"][0]["value"]["choices"] == [auto[0]["class_name"]]
    assert first["score"] == pytest.approx(auto[0]["confidence"])
    assert first["result"][0]["tbal"] == "auto-label" and results[0]["result"][0]["tbal"] == "model"

    # every other task: what the service's own /predict says for the same features
    others = [(i, t) for i, t in enumerate(tasks) if t["id"] != 900]
    features = [t["data"].get("features") for _, t in others]
    features[[t["id"] for _, t in others].index(901)] = _item_features(api, project, plain["external_id"])
    reference = api.post(
        f"/api/v1/projects/{project.id}/predict", json={"items": [{"features": f} for f in features]}
    ).json()
    for (i, _task), expected in zip(others, reference["predictions"], strict=True):
        assert results[i]["result"][0]["value"]["choices"] == [expected["class_name"]], i
        assert results[i]["score"] == pytest.approx(expected["confidence"], abs=1e-6), i

    # the feature tasks became pool items ls-<task id>, once
    created = api.get(f"/api/v1/projects/{project.id}/items", params={"limit": 10_000}).json()["items"]
    assert {f"ls-{t}" for t in range(101, 141)} <= {i["external_id"] for i in created}
    assert _predict(api, project, tasks).json()["results"] == results
    again = api.get(f"/api/v1/projects/{project.id}/items", params={"limit": 10_000}).json()["items"]
    assert len(again) == len(created)


def _item_features(api: Api, project: LSProject, external_id: str) -> list[float]:
    export = api.get(
        f"/api/v1/projects/{project.id}/label-studio/tasks", params={"from_name": "label", "to_name": "text"}
    ).json()
    for task in export:
        if task["data"]["external_id"] == external_id:
            return list(task["data"]["features"])
    raise AssertionError(f"{external_id} is not in the queue export")


def test_predict_ten_thousand_tasks(api: Api, connected: Any) -> None:
    """One call with 10,000 tasks: one answer per task, in order (checked against the service's predict).
    The latency is printed for the record (bench/label_studio_predict.py measures it properly)."""
    project: LSProject = connected()
    train_first_model(api, project)
    n = 10_000
    rng = np.random.default_rng(7)
    X = rng.normal(scale=3.0, size=(n, 4))
    tasks = [{"id": 10_000 + i, "data": {"features": X[i].tolist()}} for i in range(n)]
    start = time.perf_counter()
    response = _predict(api, project, tasks)
    first_call = time.perf_counter() - start
    assert response.status_code == 200, response.text[:500]
    results = response.json()["results"]
    assert len(results) == n
    start = time.perf_counter()
    assert _predict(api, project, tasks).json() == response.json()
    second_call = time.perf_counter() - start
    reference = api.post(
        f"/api/v1/projects/{project.id}/predict", json={"items": [{"features": x} for x in X.tolist()]}
    ).json()["predictions"]
    got = [r["result"][0]["value"]["choices"][0] for r in results]
    assert got == [p["class_name"] for p in reference]
    assert set(got) == set(CLASSES)
    print(f"\n/predict with {n} tasks: {first_call:.2f} s (items created), {second_call:.2f} s (known items)")
