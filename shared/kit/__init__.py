"""The service kit: what every service of the playground is built from.

The app factory (:mod:`shared.kit.app`) with its middleware, hot routes, errors, health,
metrics, offline docs and API keys; typed settings; JSON logs; the public JSON contract
(:mod:`shared.kit.schemas`); the server entry point with overload control
(:mod:`shared.kit.serve`); health over HTTP for processes that serve no HTTP themselves; and
the probes the healthchecks run.
"""
