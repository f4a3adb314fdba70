"""Label Studio as a face of tbal: the ML-backend protocol served per project, imports of Label Studio
exports, and Label Studio import files with tbal's predictions.

Protocol (Label Studio 1.23), under ``/integrations/label-studio/{project_id}/{secret}/``:

- ``GET /health``, ``GET /``: ``{"status": "UP", ...}`` (no model is loaded).
- ``POST /setup``: checks the label config's Choices against the project's classes, answers
  ``{"model_version": ...}`` (the latest succeeded round's version).
- ``POST /predict``: one prediction per task, in order (the auto-label where tbal made one, else the
  latest model's class and calibrated confidence).
- ``POST /webhook``: annotations become (soft) human labels, new tasks become pool items, the Train
  button (``START_TRAINING``) starts a round.
- ``GET /versions``: the model versions of the project's succeeded rounds.

How a task maps to an item: ``task.data[id_field]`` (default ``external_id``) names an existing item,
else the item's external id is ``ls-<task id>``; a new item's data is ``task.data[data_field]``
(default ``features``: d numbers; image projects ``pixels``: H×W[×C] integers 0..255), or the raw
``$text`` / ``$image`` the label config names (:mod:`.raw`).

With Label Studio's URL, project and an access token in the connection (:mod:`.credentials`: stored
encrypted), :mod:`.sync` pushes the queue as tasks, pulls missed annotations and writes auto-labels back
(:mod:`.client` makes the REST calls). Refusals and skipped tasks are kept as events (:mod:`.events`)
that ``GET /api/v1/projects/{id}/label-studio/status`` and the dashboard show. Modules: ``router``
(HTTP), ``service`` (the protocol's calls, imports), ``tasks`` / ``raw`` (tasks -> items), ``votes``
(annotations -> labels, the tie rule), ``purposes`` (``tbal_purpose`` -> roles), ``predictions``,
``label_config``, ``connections``, ``repository`` (SQL), ``cli`` (``tbal label-studio-sync``).
"""
