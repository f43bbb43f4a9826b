"""data-cache seed: scikit-learn's 1797 bundled digit images into PostgreSQL, once.

A one-shot service: compose runs it to completion before the api starts.
Item ``i`` is ``load_digits().data[i]`` written as a 32x32 greyscale PNG,
dark ink on white, each of the 64 values a 4x4 block (the size of the
bitmaps the data set was counted from; :func:`shared.mechanisms.digit_images.render_digit`,
as prep-pred's samples), and its true digit as ``label``. The api's
preprocessing turns each image back into exactly its 64 values.

Idempotent: the table is created when missing and the rows are upserted; a
row that already holds the same bytes is left alone, so a second run reports
``inserted 0, updated 0, unchanged 1797`` and changes nothing.
"""

import io
import logging
import sys
from collections.abc import Iterable, Iterator

import numpy as np
import psycopg
from sklearn.datasets import load_digits

from shared.kit.logs import configure_logging
from shared.mechanisms.digit_images import render_digit
from shared.stores.postgres import PostgresSettings, connect, password_refused

log = logging.getLogger("seed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id          integer PRIMARY KEY,
    image       bytea NOT NULL,
    label       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
)
"""
# Concurrent seeds (two `up`s at once) take turns.
_SEED_LOCK = 7_316_301
UPSERT = """
INSERT INTO items (id, image, label)
SELECT id, image, label FROM seed_items
ON CONFLICT (id) DO UPDATE
    SET image = EXCLUDED.image, label = EXCLUDED.label, updated_at = now()
    WHERE items.image IS DISTINCT FROM EXCLUDED.image
       OR items.label IS DISTINCT FROM EXCLUDED.label
RETURNING xmax = 0 AS inserted
"""


def render_png(values: np.ndarray) -> bytes:
    """One data-set row (64 values 0..16) as PNG bytes: 32x32 grey, dark ink on white."""
    out = io.BytesIO()
    render_digit(values, scale=4).save(out, format="PNG")
    return out.getvalue()


def digit_items() -> Iterator[tuple[int, bytes, str]]:
    """``(id, PNG bytes, label)`` of every digit of ``load_digits``, id = its index."""
    digits = load_digits()
    for i, (values, target) in enumerate(zip(digits.data, digits.target, strict=True)):
        yield i, render_png(values), str(target)


def seed(connection: psycopg.Connection, items: Iterable[tuple[int, bytes, str]]) -> dict[str, int]:
    """Create the table when missing, upsert ``items``; how many inserted, updated, unchanged."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SEED_LOCK,))
        connection.execute(SCHEMA)
        connection.execute(
            "CREATE TEMP TABLE seed_items (id integer, image bytea, label text) ON COMMIT DROP"
        )
        total = 0
        with (
            connection.cursor() as cursor,
            cursor.copy("COPY seed_items (id, image, label) FROM STDIN") as copy,
        ):
            for item in items:
                copy.write_row(item)
                total += 1
        changed = [inserted for (inserted,) in connection.execute(UPSERT).fetchall()]
    inserted = sum(changed)
    return {
        "inserted": inserted,
        "updated": len(changed) - inserted,
        "unchanged": total - len(changed),
        "total": total,
    }


def main() -> int:
    """Seed the database named by ``DATABASE_URL``."""
    settings = PostgresSettings()
    configure_logging("seed")
    try:
        with connect(settings, "data-cache-seed") as connection:
            counts = seed(connection, digit_items())
    except psycopg.OperationalError as exc:
        if (advice := password_refused(exc)) is None:
            raise
        log.error(advice)
        return 2
    log.info(
        "items: inserted %d, updated %d, unchanged %d (%d in all)",
        counts["inserted"],
        counts["updated"],
        counts["unchanged"],
        counts["total"],
        extra=counts,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
