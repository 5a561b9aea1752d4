"""Logs, request ids and Prometheus metrics, one module per job.

* ``metrics``: the metric objects, multiprocess mode for ``--workers N`` and
  the ``/metrics`` text.
* ``logs``: JSON log lines with secrets masked, the request id they carry, and
  the filter for requests aiohttp cannot parse.
* ``middleware``: the outermost middleware (request id, request metrics,
  access log).
* ``instrumented``: ``InstrumentedBackend``, which times and counts backend
  calls, and the hook that counts re-sent requests; backends never import
  metrics themselves.
"""
