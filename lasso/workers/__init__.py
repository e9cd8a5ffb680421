"""Multi-process workers (``server.workers``, ``lasso serve --workers N``).

- :mod:`lasso.workers.supervisor`: the parent: binds the socket once, supervises the
  workers, group signals and sd_notify;
- :mod:`lasso.workers.worker`: a worker process: the whole gateway on the inherited socket;
- :mod:`lasso.workers.instance`: instance-wide ``/health`` and ``/metrics``.

See ``docs/workers.md``.
"""
