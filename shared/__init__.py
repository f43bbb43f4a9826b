"""Common code every service of the playground is built from.

Model runtime (:mod:`shared.model`), typed settings (:mod:`shared.settings`),
the public JSON contract (:mod:`shared.schemas`), the app factory with health,
metrics, request ids and error handling (:mod:`shared.app`), JSON logs
(:mod:`shared.logs`) and the server entry point (:mod:`shared.serve`).
"""

__version__ = "0.1.0"
