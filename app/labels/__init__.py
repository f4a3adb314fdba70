"""Human labels, the votes they may come as, and the queue of what humans should label next, as one
domain package (issue 12; after polar's ``server/`` layout: domain first, layers inside):

- :mod:`app.labels.router`: ``/projects/{id}/labels`` (labels in, a keyset listing);
- :mod:`app.labels.schemas`: a label as a class, a distribution or votes per annotator, and what is read back;
- :mod:`app.labels.service`: the rules (a batch checked whole, votes aggregated into a distribution, the
  write, an unasked pool item becoming a training item);
- :mod:`app.labels.repository`: the SQL on human labels and on the queries (the items asked of humans);
- :mod:`app.labels.queue_router`, :mod:`app.labels.queue_schemas`, :mod:`app.labels.queue_service`: the
  same layers for the queue (``/projects/{id}/queue``, ``/projects/{id}/simulate``) and for drawing the
  validation and seed sets that fill it.

Nothing is imported here, so that importing one module (the repository, the queue's draw) does not pull
in the routers.
"""
