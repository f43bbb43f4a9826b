"""Fixtures of the load harness tests.

These tests never import Locust into the pytest process: Locust monkey-patches
the whole interpreter with gevent on import, which would leak into other
suites. Anything that needs Locust runs in a subprocess.
"""

from pathlib import Path

import pytest


class LocustStatsCsv:
    """Rows in the format of Locust 2.47's ``<prefix>_stats.csv`` (taken from a real run)."""

    HEADER = (
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    )
    PREDICT = (
        "POST,POST /predict,1000,20,4,4.8,0.9,61.25,120.0,500.1234,10.0,4,5,5,6,7,9,12,15,40,61,61"
    )
    POLL = "GET,GET /jobs/[id],0,0,0,0.0,0,0,0.0,0.0,0.0" + ",N/A" * 11
    TOTAL = ",Aggregated,1000,20,4,4.8,0.9,61.25,120.0,500.1234,10.0,4,5,5,6,7,9,12,15,40,61,61"
    EMPTY_TOTAL = ",Aggregated,0,0,0,0.0,0,0,0.0,0.0,0.0" + ",N/A" * 11

    def write(self, prefix: str | Path, *rows: str) -> str:
        """Write ``<prefix>_stats.csv`` with the header and ``rows``; return the prefix."""
        Path(f"{prefix}_stats.csv").write_text("\r\n".join((self.HEADER, *rows)) + "\r\n")
        return str(prefix)


@pytest.fixture
def stats_csv() -> LocustStatsCsv:
    """Writes stats CSVs like Locust's."""
    return LocustStatsCsv()
