"""What every measurement's report carries and where it goes: the machine's load average
beside the figures, the report written and shown."""

import os
from pathlib import Path


def load_average(*, one_minute: bool = False) -> str:
    """The load averages as ``uptime`` shows them: ``"1.23 0.98 0.75"`` (1, 5 and 15 minutes),
    or only the 1-minute one (``"1.23"``)."""
    averages = os.getloadavg()
    return " ".join(f"{value:.2f}" for value in (averages[:1] if one_minute else averages))


def write_report(path: Path, text: str) -> None:
    """Write the report (its folder made if need be) and print it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)
