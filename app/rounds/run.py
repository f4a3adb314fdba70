"""THE round function, shared by the Celery worker and the in-process dispatcher: claim
(:mod:`app.rounds.claim`), load (:mod:`app.rounds.load`), run the library's round, write
(:mod:`app.rounds.write`) with its report (:mod:`app.rounds.report`), while :mod:`app.rounds.liveness`
keeps the heartbeat.

``execute_round(round_id, session_factory, settings)``:

1. claims the round in a short transaction (the row under ``SELECT ... FOR UPDATE``, then a conditional
   ``UPDATE ... WHERE status = 'queued'`` that also takes over a running round whose heartbeat is stale,
   i.e. whose worker died); returns at once if the round is final or running elsewhere;
2. loads the arrays (one consistent snapshot) and calls :func:`tbal.loop.run_round`, while a heartbeat
   thread writes stage, progress and a timestamp to the round row (throttled);
3. saves the artifacts (``<artifacts_dir>/<project id>/<project>-r<index>.pt``, written atomically);
4. writes every result in ONE transaction, only if it still holds the claim: auto-labels (unique per
   project and item, never over a human label), validation removals, next queries (training, and
   validation top-ups when the project has a ``validation_floor``), the stratum and the validation items
   drawn inside it in the round that fixes it (``targeted_validation``), metrics, status.

A crash leaves nothing half-written and a re-delivered task writes nothing twice. Library input and
configuration errors mark the round failed with a readable reason; transient database errors
(``OperationalError``) give the round back (status queued) and propagate so that Celery can retry.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import DomainError
from app.rounds.claim import ClaimLost, claim, fail, give_back
from app.rounds.liveness import Progress, RoundTimeLimit
from app.rounds.load import load_round
from app.rounds.write import write_results
from app.settings import Settings
from tbal.config import ConfigError
from tbal.errors import TBALInputError

logger = logging.getLogger(__name__)


def execute_round(round_id: int, session_factory: sessionmaker[Session], settings: Settings) -> None:
    """Run round ``round_id`` to its end (see the module docstring). Safe to call twice."""
    token = claim(round_id, session_factory, settings)
    if token is None:
        return
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    tracker = Progress(round_id, token, session_factory, settings)
    tracker.start()
    try:
        _run_claimed(round_id, token, session_factory, settings, tracker)
    except OperationalError:
        tracker.stop()
        give_back(round_id, token, session_factory)
        raise
    except ClaimLost:
        logger.warning("round %s: claim lost to another worker; nothing written", round_id)
    except (TBALInputError, ConfigError, DomainError, RoundTimeLimit) as exc:
        fail(round_id, token, session_factory, f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        if type(exc).__name__ in ("SoftTimeLimitExceeded", "TimeLimitExceeded"):
            fail(round_id, token, session_factory, "time limit exceeded")
        else:
            logger.exception("round %s failed", round_id)
            fail(round_id, token, session_factory, f"internal error: {type(exc).__name__}: {exc}")
    finally:
        tracker.stop()


def _run_claimed(
    round_id: int, token: str, factory: sessionmaker[Session], settings: Settings, tracker: Progress
) -> None:
    from tbal.artifacts import RoundArtifacts, save_artifacts
    from tbal.loop import RoundInput, run_round

    timings: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_round(round_id, factory, settings)
    timings["load"] = time.perf_counter() - start
    tracker.report("train", 0.0)
    output = run_round(
        RoundInput(
            X_train=loaded.X_train,
            targets_train=loaded.targets_train,
            X_val=loaded.X_val,
            y_val=loaded.y_val,
            X_pool=loaded.X_pool,
            num_classes=len(loaded.classes),
            plan=loaded.plan,
            validation_pending=loaded.validation_pending,
            labeled_so_far=loaded.labeled_so_far,
            human_val=loaded.val_human,
            record_aum=True,
            stratum=loaded.stratum,
            warm_start=loaded.warm_start,
        ),
        loaded.config,
        progress=tracker.report,
    )
    tracker.report("write", 0.0)
    start = time.perf_counter()
    model_version = f"{loaded.project_name}-r{loaded.round_index}"
    path = Path(settings.artifacts_dir) / str(loaded.project_id) / f"{model_version}.pt"
    save_artifacts(
        path,
        RoundArtifacts(
            model=output.model,
            confidence=output.confidence,
            thresholds=output.thresholds.thresholds,
            model_config=loaded.config.model,
            input_shape=tuple(loaded.X_train.shape[1:]),
            num_classes=len(loaded.classes),
            input_scale=loaded.input_scale,
            encoder=loaded.inputs.get("encoder"),
        ),
    )
    timings["save"] = time.perf_counter() - start
    tracker.stop(flush=True)  # the row says "write" while the results are written (issue 15 item 8)
    write_results(
        round_id,
        token,
        factory,
        loaded,
        output,
        model_version=model_version,
        artifact_path=path,
        timings=timings,
    )
