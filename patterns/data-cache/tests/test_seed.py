"""The seed against a real PostgreSQL: every digit as PNG, idempotent, repairs changed rows."""

from collections.abc import Callable
from types import ModuleType

import psycopg
import pytest


@pytest.fixture
def seed_module(load_service: Callable[..., ModuleType]) -> ModuleType:
    return load_service("data-cache", "seed")


def test_the_seed_loads_every_digit_once_and_a_second_run_changes_nothing(
    seed_module: ModuleType, postgres_url: str
) -> None:
    with psycopg.connect(postgres_url) as connection:
        first = seed_module.seed(connection, seed_module.digit_items())
        assert first == {"inserted": 1797, "updated": 0, "unchanged": 0, "total": 1797}
        second = seed_module.seed(connection, seed_module.digit_items())
        assert second == {"inserted": 0, "updated": 0, "unchanged": 1797, "total": 1797}
        count, pngs, labels = connection.execute(
            "SELECT count(*), count(*) FILTER (WHERE substr(image, 1, 8) = '\\x89504e470d0a1a0a'),"
            " array_agg(DISTINCT label ORDER BY label) FROM items"
        ).fetchone()
    assert (count, pngs) == (1797, 1797)
    assert labels == [str(d) for d in range(10)]


def test_a_changed_row_is_put_back(seed_module: ModuleType, postgres_url: str) -> None:
    items = list(seed_module.digit_items())[:20]
    with psycopg.connect(postgres_url) as connection:
        seed_module.seed(connection, items)
        connection.execute("UPDATE items SET image = 'broken' WHERE id = 3")
        connection.execute("DELETE FROM items WHERE id = 4")
        connection.commit()
        again = seed_module.seed(connection, items)
        (image,) = connection.execute("SELECT image FROM items WHERE id = 3").fetchone()
    assert again == {"inserted": 1, "updated": 1, "unchanged": 18, "total": 20}
    assert image == items[3][1]


def test_a_refused_password_is_one_log_line_naming_the_ways_out(
    seed_module: ModuleType,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise psycopg.OperationalError(
            'connection failed: FATAL:  password authentication failed for user "mlsp"'
        )

    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setattr(seed_module, "connect", refuse)
    assert seed_module.main() == 2
    written = capsys.readouterr()
    (line,) = (written.out + written.err).splitlines()
    assert "PostgreSQL refused the password" in line
    assert "Traceback" not in line
