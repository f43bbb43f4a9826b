"""The machine a measurement ran on: what every report says beside its figures."""

import os


def load_average(*, one_minute: bool = False) -> str:
    """The load averages as ``uptime`` shows them: ``"1.23 0.98 0.75"`` (1, 5 and 15 minutes),
    or only the 1-minute one (``"1.23"``)."""
    averages = os.getloadavg()
    return " ".join(f"{value:.2f}" for value in (averages[:1] if one_minute else averages))
