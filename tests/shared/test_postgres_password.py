"""A refused PostgreSQL password becomes one line a user can act on."""

import psycopg
import pytest

from shared.stores.postgres import PASSWORD_REFUSED, password_refused


def test_a_refused_password_is_recognised() -> None:
    exc = psycopg.OperationalError(
        'connection failed: FATAL:  password authentication failed for user "mlsp"'
    )
    assert password_refused(exc) == PASSWORD_REFUSED
    assert "\n" not in PASSWORD_REFUSED


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection failed: Connection refused"),
        ValueError("password authentication failed"),  # not PostgreSQL's
    ],
)
def test_other_failures_are_left_alone(exc: Exception) -> None:
    assert password_refused(exc) is None
