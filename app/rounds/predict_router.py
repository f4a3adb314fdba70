"""/projects/{id}/predict: new items scored by the latest model version."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ArtifactsDep, ProjectDep, SessionDep, SettingsDep
from app.errors import Invalid
from app.rounds import predict_service as service
from app.rounds.predict_schemas import PredictRequest, PredictResponse

router = APIRouter(prefix="/projects/{project_id}", tags=["predict"])


@router.post("/predict")
def predict(
    *,
    project: ProjectDep,
    body: PredictRequest,
    session: SessionDep,
    settings: SettingsDep,
    artifacts: ArtifactsDep,
) -> PredictResponse:
    """Class, confidence and whether each item clears its class's threshold (409 before the first model)."""
    if len(body.items) > settings.max_batch_items:
        raise Invalid("items", f"at most {settings.max_batch_items} items per request")
    return service.predict(session, project, body, artifacts)
