"""The one Locust harness shared by every pattern.

``locustfile.py`` runs the user class of the pattern named by ``$PATTERN``;
``report.py`` turns Locust's CSV output into a compact summary. Only the
locustfile and ``scenarios/*`` modules import Locust (which monkey-patches the
process with gevent); everything else here is plain Python.
"""
