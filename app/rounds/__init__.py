"""A round of the service, as one domain package (issue 12; after polar's ``server/`` layout: domain
first, layers inside):

- :mod:`app.rounds.router`, :mod:`app.rounds.schemas`: ``/projects/{id}/rounds``, ``/rounds/{id}`` and the
  round's reports over HTTP (audit, evaluation, label review), and the round as a client reads it;
- :mod:`app.rounds.service`: starting a round (the checks, the row, commit, then enqueue), reading one;
- :mod:`app.rounds.dispatch`: sending a committed round to whatever runs it (in process or Celery; the
  task name defined once);
- :mod:`app.rounds.run`: THE round function (claim → load → run the library's round → write);
- :mod:`app.rounds.claim`, :mod:`app.rounds.load`, :mod:`app.rounds.write`, :mod:`app.rounds.report`:
  its steps; :mod:`app.rounds.liveness`: heartbeat, time limit and the reaper of dead rounds;
- :mod:`app.rounds.reports_service`, :mod:`app.rounds.reports_schemas`: reading back what
  :mod:`app.rounds.report` recorded (the label review by AUM, the evaluation on the validation set);
- :mod:`app.rounds.repository`: the SQL on the ``rounds`` table;
- :mod:`app.rounds.auto_labels_router`, :mod:`app.rounds.auto_labels_schemas`,
  :mod:`app.rounds.auto_labels_repository`: what rounds produce, the auto-labels
  (``/projects/{id}/auto-labels`` and ``/projects/{id}/export``; the bulk write that
  :mod:`app.rounds.write` calls, keyset pages, export pages, the true error against ground truth);
  :mod:`app.rounds.exports_service`: the export's formats (JSONL, CSV, a SageMaker Ground Truth style
  manifest), human labels first, then the auto-labels of the other items;
- :mod:`app.rounds.audit_service`, :mod:`app.rounds.audit_schemas`: a round's audit (``audit_size``
  auto-labels reviewed by humans) read back, its error with a Clopper–Pearson interval beside the bound;
- :mod:`app.rounds.predict_router`, :mod:`app.rounds.predict_schemas`, :mod:`app.rounds.predict_service`:
  ``/projects/{id}/predict``, new items scored with the artifacts of the last succeeded round (its model
  version), loaded once into an :class:`~app.rounds.predict_service.ArtifactCache`.

Nothing is imported here, so that the API process can import the service and the dispatch without the
library's torch (only :mod:`app.rounds.run` and what it imports need it).
"""
