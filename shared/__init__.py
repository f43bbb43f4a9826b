"""Common code every service of the playground is built from.

Model runtime (:mod:`shared.model.runtime`), typed settings (:mod:`shared.kit.settings`),
the public JSON contract (:mod:`shared.kit.schemas`), the app factory with health,
metrics, request ids and error handling (:mod:`shared.kit.app`), JSON logs
(:mod:`shared.kit.logs`) and the server entry point (:mod:`shared.kit.serve`).
Calls to several peers: one after another under one deadline (:mod:`shared.mechanisms.chain`),
or all at once with a quorum (:mod:`shared.fanout`, results kept in Redis by
:mod:`shared.fanout_store`).
"""

__version__ = "0.1.0"
