"""Projects and the API keys that may use them, as one domain package (issue 12; after polar's
``server/`` layout: domain first, layers inside):

- :mod:`app.projects.router`: ``/projects`` (create, list, read, change settings, delete);
- :mod:`app.projects.schemas`: what a client sends to create or change a project, and what it reads back;
- :mod:`app.projects.service`: the rules (settings checked by building the library's configuration, the
  preset's configuration pinned, no settings change while a round is active, deletion with artifacts);
- :mod:`app.projects.config`: a project's settings turned into the library's ``TBALConfig``;
- :mod:`app.projects.repository`: the SQL on the ``projects`` table;
- :mod:`app.projects.keys_router`, :mod:`app.projects.keys_schemas`, :mod:`app.projects.keys_service`,
  :mod:`app.projects.keys_repository`: the same layers for API keys (``/keys``; authentication, the
  caller and what it may use).

Nothing is imported here, so that importing one module (the configuration, the keys' service) does not
pull in the routers.
"""
