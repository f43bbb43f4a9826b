"""Common code the services of the playground are built from, in layers.

* :mod:`shared.kit`: the service kit every service starts from (app factory, middleware,
  errors, health, metrics, logs, settings, the server, overload control, API keys).
* :mod:`shared.model`: the model repository: metadata, versions, and the checks that an ONNX
  file is what its metadata says.
* :mod:`shared.serving`: one way to serve a model (:class:`~shared.serving.model.ServedModel`,
  the ONNX model run in this process, a turn's requests sharing one run).
* :mod:`shared.stores`: Redis, PostgreSQL and the read-through cache.
* :mod:`shared.jobs`: queued jobs, for the patterns that answer 202.
* :mod:`shared.v2`: the Open Inference Protocol (predictor server, clients, coalescing).
* :mod:`shared.mechanisms`: what two patterns share (a chain of calls, digit images).

What only one pattern uses lives in that pattern's service folder instead. Lower layers
never import higher ones: ``model`` imports nothing else of ``shared``, ``kit`` only
``model``; ``serving`` and ``stores`` build on both; ``jobs``, ``v2`` and ``mechanisms`` on
those.
"""

__version__ = "0.1.0"
