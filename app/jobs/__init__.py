"""Ingest jobs: large raw uploads (texts, image files) stored first, then encoded / decoded as background
work, dispatched like rounds (in the API process on the embedded default, to the Celery ``gpu`` queue
with a broker).

- :mod:`.chunks`: the staged raw items, a chunk of consecutive items a row;
- :mod:`.repository`: SQL of ``ingest_jobs`` and ``ingest_job_chunks`` (the staged raw items);
- :mod:`.service`: accepting an upload (its raw items written in one transaction, then the job sent);
- :mod:`.run`: running a job (claimed under a row lock, batch by batch, idempotent);
- sending: :meth:`app.rounds.dispatch.Dispatcher.send_work`, the way rounds are sent.
"""
