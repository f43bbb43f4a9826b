"""Read a service's Prometheus ``/metrics`` text in tests: a sample's value by its labels.

Counters live in one registry per process, so a test compares a value before and after
its action (or reads a process of its own) rather than asking whether a series exists.
"""

import time
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families


def sample_total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def infer_calls(text: str) -> float:
    """ModelInfer calls a V2 predictor answered, over gRPC and REST, from its ``/metrics``."""
    rest = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mlsp_http_requests_total"
        and sample.labels.get("route", "").endswith("/infer")
    )
    return sample_total(text, "mlsp_grpc_requests_total", method="ModelInfer") + rest


class MetricsChange:
    """A service's ``/metrics`` read when made, to tell what an action changed.

    ``change = MetricsChange(lambda: client.get("/metrics").text)``, then the action, then
    ``change.increase("mlsp_http_requests_total", route="/predict") == 1``: other tests of
    the process (one registry) cannot make it pass.
    """

    def __init__(self, read: Callable[[], str]) -> None:
        self._read = read
        self._before = read()

    def increase(self, name: str, **labels: str) -> float:
        """How much the sum of the matching samples grew since this object was made."""
        return sample_total(self._read(), name, **labels) - sample_total(
            self._before, name, **labels
        )

    def wait_for_increase(
        self, name: str, at_least: float, timeout_s: float = 20, **labels: str
    ) -> float:
        """:meth:`increase` once it has reached ``at_least`` (for what a service records
        after it has answered, e.g. a mirrored call); fails after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (grown := self.increase(name, **labels)) < at_least:
            assert time.monotonic() < deadline, f"{name}{labels} grew by {grown}, not {at_least}"
            time.sleep(0.1)
        return grown
