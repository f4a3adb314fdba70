"""Text projects over HTTP: creation with an encoder, texts as JSON / JSONL / CSV / JSON-list uploads, the
stored features equal the encoder's, texts read back, bad files refused with nothing written, a round."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from tbal.encoders import make_text_encoder
from tests.app.conftest import Api, MakeProject, count_rows, stored_features, text_project, toy_sentences


def test_text_project_takes_its_encoders_size(api: Api, make_project: MakeProject) -> None:
    assert text_project(make_project, "hashing:64")["input_shape"] == [64]
    assert text_project(make_project, "minilm")["input_shape"] == [384]
    default = make_project(classes=["a", "b"], data_kind="text", input_shape=[])
    assert default["input_shape"] == [384]
    bad = api.post(
        "/api/v1/projects",
        json={"name": "t-bad", "classes": ["a", "b"], "data_kind": "text", "settings": {"encoder": "bert"}},
    )
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "settings.encoder"
    assert "valid names: minilm, minilm-tokens, hashing" in bad.json()["detail"]["reason"]
    wrong = api.post(
        "/api/v1/projects",
        json={"name": "t-w", "classes": ["a", "b"], "data_kind": "text", "input_shape": [5]},
    )
    assert wrong.status_code == 422 and wrong.json()["detail"]["field"] == "input_shape"
    feat = api.post(
        "/api/v1/projects",
        json={"name": "f-e", "classes": ["a", "b"], "data_kind": "features", "input_shape": [4],
              "settings": {"encoder": "hashing"}},
    )  # fmt: skip
    assert feat.status_code == 422 and feat.json()["detail"]["field"] == "settings.encoder"


def test_an_empty_text_project_may_change_its_encoder(api: Api, make_project: MakeProject) -> None:
    pid = text_project(make_project, "hashing:64")["id"]
    changed = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"encoder": "hashing:16"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["input_shape"] == [16]
    bad = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"encoder": "image-backbone:/x.pt2"}})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "settings.encoder"
    assert api.get(f"/api/v1/projects/{pid}").json()["input_shape"] == [16]


def test_json_texts_round_trip_with_the_encoders_features(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = text_project(make_project)["id"]
    texts, labels = toy_sentences(6)
    items = [
        {"external_id": f"s{i}", "text": t, "ground_truth": lab}
        for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
    ]
    done = api.post(f"/api/v1/projects/{pid}/items/texts", json={"items": items})
    assert done.status_code == 200, done.text
    assert done.json() == {"received": 6, "inserted": 6, "skipped": 0, "ground_truth_added": 6}
    again = api.post(f"/api/v1/projects/{pid}/items/texts", json={"items": items[:3]}).json()
    assert again["inserted"] == 0 and again["skipped"] == 3
    ids, X = stored_features(session_factory, pid)
    assert ids == [f"s{i}" for i in range(6)]
    np.testing.assert_array_equal(X, make_text_encoder("hashing:64").encode(texts))
    page = api.get(f"/api/v1/projects/{pid}/items/texts", params={"limit": 4}).json()
    assert [r["text"] for r in page["items"]] == texts[:4] and page["next_after_id"] is not None
    rest = api.get(f"/api/v1/projects/{pid}/items/texts", params={"after_id": page["next_after_id"]}).json()
    assert [r["external_id"] for r in rest["items"]] == ["s4", "s5"]
    # the encoder is fixed once there are items
    change = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"encoder": "hashing:128"}})
    assert change.status_code == 409 and change.json()["detail"]["field"] == "settings.encoder"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_text_files_upload(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session], fmt: str
) -> None:
    pid = text_project(make_project)["id"]
    texts, labels = toy_sentences(5)
    if fmt == "csv":
        lines = [
            "id,sentence,label",
            *(f'r{i},"{t}, yes",{lab}' for i, (t, lab) in enumerate(zip(texts, labels, strict=True))),
        ]
        body = "\n".join(lines).encode()
        texts = [f"{t}, yes" for t in texts]
    elif fmt == "jsonl":
        rows = [
            {"id": f"r{i}", "sentence": t, "label": lab}
            for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
        ]
        body = "\n".join(json.dumps(r) for r in rows).encode()
    else:
        body = json.dumps(
            [
                {"id": f"r{i}", "sentence": t, "label": lab}
                for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
            ]
        ).encode()
    done = api.post(
        f"/api/v1/projects/{pid}/items/texts/upload",
        params={"text_column": "sentence", "id_column": "id", "label_column": "label"},
        files={"file": (f"t.{fmt}", body)},
    )
    assert done.status_code == 200, done.text
    assert done.json()["inserted"] == 5 and done.json()["ground_truth_added"] == 5
    ids, X = stored_features(session_factory, pid)
    assert ids == [f"r{i}" for i in range(5)]
    np.testing.assert_array_equal(X, make_text_encoder("hashing:64").encode(texts))


def test_a_json_list_of_strings_gets_row_ids(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = text_project(make_project)["id"]
    done = api.post(
        f"/api/v1/projects/{pid}/items/texts/upload",
        params={"id_prefix": "doc-"},
        content=json.dumps(["första meningen ✓", "second"]).encode(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert done.status_code == 200, done.text
    assert stored_features(session_factory, pid)[0] == ["doc-0", "doc-1"]
    listed = api.get(f"/api/v1/projects/{pid}/items/texts").json()["items"]
    assert listed[0]["text"] == "första meningen ✓"


@pytest.mark.parametrize(
    ("body", "params", "field", "says"),
    [
        (
            b"id,text\n1,ok\n",
            {"text_column": "sentence"},
            "file",
            "no column 'sentence'; its columns: id, text",
        ),
        (b"text\nok\n\xff\xfe bad\n", {}, "file", "not UTF-8"),
        (b'["ok", "  "]', {}, "file", "row 1: empty text"),
        (b'["ok", 3]', {}, "file", "row 1: expected a string"),
        (b'{"text": "ok"}\n{"text": ', {"format": "jsonl"}, "file", "line 2: not valid JSON"),
        (
            b"text,label\nok,maybe\n",
            {"label_column": "label"},
            "texts.0.ground_truth",
            "unknown class 'maybe'",
        ),
        (b'["same", "x"]', {"id_prefix": ""}, None, None),
    ],
)
def test_bad_text_files_are_422_and_write_nothing(
    api: Api,
    make_project: MakeProject,
    session_factory: sessionmaker[Session],
    body: bytes,
    params: dict[str, str],
    field: str | None,
    says: str | None,
) -> None:
    pid = text_project(make_project)["id"]
    response = api.post(
        f"/api/v1/projects/{pid}/items/texts/upload",
        params=params,
        content=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    if field is None:  # the control: a good file
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["field"] == field and says in detail["reason"], detail
    assert count_rows(session_factory, "items") == 0 and count_rows(session_factory, "item_texts") == 0


def test_texts_go_to_text_projects_only(api: Api, make_project: MakeProject) -> None:
    pid = make_project()["id"]  # features
    response = api.post(
        f"/api/v1/projects/{pid}/items/texts", json={"items": [{"external_id": "a", "text": "hello"}]}
    )
    assert response.status_code == 422 and response.json()["detail"]["field"] == "data_kind"


def test_a_round_runs_on_atext_project(api: Api, make_project: MakeProject) -> None:
    settings = {"validation_size": 60, "seed_size": 20, "label_budget": 30, "batch_size": 10, "model": "mlp",
                "hidden": [16], "epochs": 10, "lr": 0.05, "max_rounds": 1}  # fmt: skip
    pid = text_project(make_project, "hashing:128", **settings)["id"]
    done = _round_on_toy_sentences(api, pid, 240, seed=3)
    # the round reads the stored features like a feature project's (what it then certifies is the loop's)
    assert done["metrics"]["pool_size"] == 160 and done["metrics"]["validation_labels"] == 60
    assert done["metrics"]["encoder"] == "hashing:128"  # recorded with the round's model version
    assert done["model_version"].endswith("-r0")
    # new texts scored by that model: the same answer as their features sent to /predict
    new = ["the film was superb and charming", "the film was dull and tedious"]
    by_text = api.post(f"/api/v1/projects/{pid}/predict/texts", json={"texts": new})
    assert by_text.status_code == 200, by_text.text
    features = make_text_encoder("hashing:128").encode(new).tolist()
    by_features = api.post(
        f"/api/v1/projects/{pid}/predict", json={"items": [{"features": f} for f in features]}
    )
    assert by_text.json() == by_features.json() and len(by_text.json()["predictions"]) == 2
    blank = api.post(f"/api/v1/projects/{pid}/predict/texts", json={"texts": ["ok", " "]})
    assert blank.status_code == 422 and blank.json()["detail"]["field"] == "texts.1"


def test_minilm_through_the_api(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = text_project(make_project, "minilm")["id"]
    texts = ["a gripping, beautiful film", "two hours I will never get back", "le chat est sur la table"]
    items = [{"external_id": f"m{i}", "text": t} for i, t in enumerate(texts)]
    assert api.post(f"/api/v1/projects/{pid}/items/texts", json={"items": items}).status_code == 200
    _ids, X = stored_features(session_factory, pid)
    assert X.shape == (3, 384)
    np.testing.assert_allclose(X, make_text_encoder("minilm").encode(texts), atol=1e-5)


def test_unstorable_json_texts_are_422(
    api: Api, make_project: MakeProject, session_factory: sessionmaker[Session]
) -> None:
    pid = text_project(make_project)["id"]
    for bad, field in (
        ({"external_id": "a", "text": "lone \ud800 surrogate"}, "items.0.text"),
        ({"external_id": "a\x00b", "text": "fine"}, "items.0.external_id"),
        ({"external_id": "a", "text": "nul \x00 inside"}, "items.0.text"),
        ({"external_id": "a", "text": "   "}, "texts.0.text"),
    ):
        response = api.post(
            f"/api/v1/projects/{pid}/items/texts",
            content=json.dumps({"items": [bad]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"]["field"] == field
    assert count_rows(session_factory, "items") == 0


def test_model_directories_only_where_the_operator_allows(api: Api, make_project: MakeProject) -> None:
    from tbal.encoders.sentence import minilm_directory

    spec = f"sentence-transformers:{minilm_directory()}"
    body = {"name": "st-dir", "classes": ["a", "b"], "data_kind": "text", "settings": {"encoder": spec}}
    refused = api.post("/api/v1/projects", json=body)
    assert refused.status_code == 422 and "TBAL_ENCODER_MODEL_DIRS" in refused.json()["detail"]["reason"]
    escape = {**body, "settings": {"encoder": f"sentence-transformers:{minilm_directory().parent}/../../etc"}}
    api.settings.encoder_model_dirs = [minilm_directory().parent]  # the operator's switch
    assert api.post("/api/v1/projects", json=escape).status_code == 422
    created = api.post("/api/v1/projects", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["input_shape"] == [384]


def test_minilm_fine_tuned_reads_word_pieces(api: Api, make_project: MakeProject) -> None:
    """Model ``minilm`` (MiniLM fine-tuned) gets the ``minilm-tokens`` encoder by default, refuses one it
    cannot read (and projects without texts), and a round trains it and scores new texts."""
    settings = {"validation_size": 40, "seed_size": 16, "label_budget": 20, "batch_size": 4,
                "model": "minilm", "epochs": 2, "max_rounds": 1}  # fmt: skip
    body = {"classes": ["neg", "pos"], "data_kind": "text", "input_shape": [], "settings": settings}
    project = make_project(**body)
    assert project["settings"]["encoder"] == "minilm-tokens" and project["input_shape"] == [128]
    embeddings = api.post(
        "/api/v1/projects", json={**body, "name": "ft-e", "settings": {**settings, "encoder": "minilm"}}
    )
    assert embeddings.status_code == 422 and embeddings.json()["detail"]["field"] == "settings.encoder"
    features = api.post(
        "/api/v1/projects",
        json={"name": "ft-f", "classes": ["a", "b"], "data_kind": "features", "input_shape": [4],
              "settings": {"model": "minilm"}},
    )  # fmt: skip
    assert features.status_code == 422 and features.json()["detail"]["field"] == "settings.model"
    preset = make_project(**{**body, "settings": {"preset": "text-finetune"}})
    assert preset["settings"]["encoder"] == "minilm-tokens" and preset["config"]["model"]["name"] == "minilm"
    pid = project["id"]
    away = api.patch(f"/api/v1/projects/{pid}", json={"settings": {"model": "mlp"}})
    assert away.status_code == 422 and away.json()["detail"]["field"] == "settings.encoder"
    done = _round_on_toy_sentences(api, pid, 80, seed=4)
    assert done["metrics"]["encoder"] == "minilm-tokens" and done["metrics"]["validation_labels"] == 40
    scored = api.post(f"/api/v1/projects/{pid}/predict/texts", json={"texts": ["a superb film"]})
    assert scored.status_code == 200, scored.text
    assert len(scored.json()["predictions"]) == 1


def _round_on_toy_sentences(api: Api, pid: int, n: int, *, seed: int) -> dict[str, Any]:
    """Upload n toy sentences with their ground truth, let the simulated humans label, run a round."""
    texts, labels = toy_sentences(n, seed=seed)
    items = [
        {"external_id": f"s{i}", "text": t, "ground_truth": lab}
        for i, (t, lab) in enumerate(zip(texts, labels, strict=True))
    ]
    assert api.post(f"/api/v1/projects/{pid}/items/texts", json={"items": items}).status_code == 200
    assert api.post(f"/api/v1/projects/{pid}/simulate").status_code == 200
    return api.run_round(pid)
