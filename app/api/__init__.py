"""The HTTP plumbing every domain's router shares, and the service's own routes: typed dependencies
(:mod:`app.api.deps`: the session, settings, the caller and the project of the path), keyset pagination
parameters (:mod:`app.api.pagination`), and ``/health`` and ``/metrics`` (:mod:`app.api.system`). The
resources' routers live in their domain packages (ARCHITECTURE.md's layout, domain first):
:mod:`app.projects`, :mod:`app.items`, :mod:`app.labels`, :mod:`app.rounds`, :mod:`app.dashboard` and
:mod:`app.integrations.label_studio`."""
