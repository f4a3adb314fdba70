"""HTTP layer of the resources not yet moved into a domain package: one thin router per resource under
``/api/v1``. The projects' and keys' routers live in :mod:`app.projects`, the labels' and the queue's in
:mod:`app.labels`, the rounds' and the auto-labels' in :mod:`app.rounds` (ARCHITECTURE.md's layout, domain
first); items and prediction are still here."""
