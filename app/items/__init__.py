"""Items: what a project labels, as one domain package (issue 12; after polar's ``server/`` layout: domain
first, layers inside): arrays, uploads, raw texts and images, and the ingest jobs that encode large ones.

- :mod:`app.items.router`, :mod:`app.items.schemas`: ``/projects/{id}/items`` (JSON batches, binary
  ``.npy`` / ``.npz`` uploads, a keyset listing);
- :mod:`app.items.service`: ingesting them (idempotent on ``external_id``, one transaction a request);
- :mod:`app.items.repository`: the SQL on items and their ground truth, and loading their data as arrays;
- :mod:`app.items.arrays`: how a project's items are stored as bytes; :mod:`app.items.npy_files`: reading
  uploaded ``.npy`` / ``.npz`` files without trusting them; :mod:`app.items.uploads`: a binary upload
  received into a temporary file; :mod:`app.items.fetch`: image URLs fetched, refusing private addresses;
- :mod:`app.items.raw_router`, :mod:`app.items.raw_schemas`, :mod:`app.items.raw` (a package: encoders,
  texts, images, archives, checks), :mod:`app.items.texts_repository`: the same layers for raw items
  (``/projects/{id}/items/texts`` and ``/items/images``: texts and image files in, features stored; the
  texts kept in ``item_texts``);
- ingest jobs: large raw uploads (texts, image files) stored first, then encoded / decoded as background
  work, dispatched like rounds (in the API process on the embedded default, to the Celery ``gpu`` queue
  with a broker): :mod:`app.items.jobs_schemas` (a job as a client reads it), :mod:`app.items.jobs_service`
  (accepting an upload: its raw items written in one transaction, then the job sent),
  :mod:`app.items.jobs_run` (running a job: claimed under a row lock, batch by batch, idempotent),
  :mod:`app.items.jobs_repository` (SQL of ``ingest_jobs`` and ``ingest_job_chunks``) and
  :mod:`app.items.jobs_chunks` (the staged raw items, a chunk of consecutive items a row); sending:
  :meth:`app.rounds.dispatch.Dispatcher.send_work`, the way rounds are sent.

Nothing is imported here, so that importing one module (the arrays' layout, the repository) does not pull
in the routers or the encoders.
"""
