"""HTTP layer of the resources not yet moved into a domain package: one thin router per resource under
``/api/v1``. The projects' and keys' routers live in :mod:`app.projects` (ARCHITECTURE.md's layout,
domain first); items, labels, the queue and the rounds' router are still here."""
