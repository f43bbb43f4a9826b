"""Container healthcheck: ``python -m shared.probe http://127.0.0.1:8080/health/ready``.

Exits 0 when the URL answers 2xx within the timeout, 1 otherwise (the images
have no curl; this needs only the standard library).
"""

import sys
import urllib.error
import urllib.request

TIMEOUT_S = 2.0


def probe(url: str, timeout_s: float = TIMEOUT_S) -> bool:
    """True when ``url`` answers with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m shared.probe URL")
    sys.exit(0 if probe(sys.argv[1]) else 1)
