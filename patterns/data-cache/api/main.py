"""data-cache api: requests carry item ids; the items come from PostgreSQL, with Redis in front.

``POST /predict`` takes ``{"ids": [17, 42]}``. Each item is a digit image stored
as PNG bytes in PostgreSQL (table ``items``, filled by the one-shot seed
service). The read-through cache (:class:`shared.stores.cache.ReadThroughCache`)
keeps, by ``CACHE_VARIANT``:

* ``raw``: the item as stored (the PNG bytes). A hit skips the database; the
  image is still decoded, resized and normalised, then the model runs.
* ``tensor``: the preprocessed input (float32 bytes). A hit skips the database
  and the preprocessing; only the model runs.

The model runs in this process (onnxruntime): what this pattern shows is the
cost of getting and preparing the input, so no predictor hop is added to
every request, hit or miss. ``X-Cache`` says, per id and in the order of the
ids, how each item was obtained: ``hit``, ``miss``, ``coalesced`` or
``bypass`` (Redis down or slow: straight from the database). An unknown id is
a 404 naming it (``ids[i]``); absences are not cached.

``GET /items/{id}/image`` answers the stored PNG itself, from the database.
"""

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import orjson
from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response

from shared.kit.app import add_hot_route, add_model_route, create_app, json_response
from shared.kit.errors import InvalidInput, NotFound
from shared.kit.metrics import stage
from shared.kit.schemas import Prediction, decode_json, prediction_body
from shared.kit.settings import ModelSettings, ServiceSettings
from shared.mechanisms import digit_images
from shared.model.metadata import ModelError
from shared.serving.model import OnnxModel, load_served_model
from shared.stores.cache import CacheSettings, ReadThroughCache
from shared.stores.postgres import AsyncDatabase, PostgresSettings, postgres_errors

log = logging.getLogger("data-cache")

#: The largest id PostgreSQL's ``integer`` holds.
MAX_ID = 2**31 - 1
FETCH_IMAGE = "SELECT image FROM items WHERE id = %s"
FETCH_ITEM = "SELECT image, label FROM items WHERE id = %s"
#: What the preprocessing makes: 8x8 values 0..16, ink high, as load_digits.
SPEC = digit_images.DigitImageSpec()
#: Names the preprocessing in tensor keys: any change to shared/mechanisms/digit_images.py
#: makes new keys.
PREP_TAG = hashlib.sha256(Path(digit_images.__file__).read_bytes()).hexdigest()[:12]


class Settings(ServiceSettings, ModelSettings, CacheSettings, PostgresSettings):
    """The api's settings: HTTP server, model, cache (and its variant), PostgreSQL."""

    cache_variant: Literal["raw", "tensor"] = Field(
        "tensor",
        description="What Redis keeps: raw (the stored PNG) or tensor (the preprocessed input).",
    )
    max_ids: int = Field(100, ge=1, description="Ids one request may carry.")


class ItemsRequest(BaseModel):
    """The items to predict, by id."""

    ids: list[int] = Field(min_length=1, examples=[[17, 42]])


class ItemPrediction(Prediction):
    """One item's answer, with its id."""

    id: int


class ItemsPredictResponse(BaseModel):
    """The answers, in the order of the ids, and the model that gave them."""

    predictions: list[ItemPrediction]
    model_name: str
    model_version: str


class _ItemMissing(Exception):
    """No row has this id (becomes a 404 naming the id's place in the request)."""


settings = Settings()


def check_model_takes_the_preprocessed_input(model: OnnxModel) -> None:
    """Refuse a model whose input is not what the preprocessing makes."""
    if model.n_features != SPEC.n_values:
        raise ModelError(
            f"{model.name} takes {model.n_features} values; the preprocessing makes {SPEC.n_values}"
        )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model, refuse one whose input is not the preprocessing's output; open the
    database pool and the cache."""
    state = app.state
    state.model = load_served_model(settings)
    check_model_takes_the_preprocessed_input(state.model)
    state.database = database = AsyncDatabase(settings, "data-cache-api")
    # Ready once PostgreSQL answers and the seed has filled the items table.
    state.readiness.add(
        "postgres",
        database.check(
            "SELECT 1 FROM items LIMIT 1", no_row="the items table is empty (the seed has not run)"
        ),
    )
    await database.open()
    state.cache = cache = ReadThroughCache.from_settings(settings, name=settings.cache_variant)
    await cache.warm_up()
    log.info(
        "cache variant %s: Redis keeps %s, for %g s",
        settings.cache_variant,
        "the stored images" if settings.cache_variant == "raw" else "the preprocessed tensors",
        settings.cache_ttl_s,
        extra={"cache_variant": settings.cache_variant, "prep_tag": PREP_TAG},
    )
    yield
    await cache.close()
    await database.close()


app = create_app(
    settings,
    title="data-cache",
    description=(
        "Predictions for items by id: the items live in PostgreSQL, Redis keeps the raw item "
        "or its preprocessed tensor (CACHE_VARIANT). X-Cache: hit, miss, coalesced or bypass, "
        "one per id."
    ),
    lifespan=lifespan,
)


def raw_key(item_id: int) -> str:
    """The key of an item as stored (variant ``raw``)."""
    return f"mlsp:item:raw:{item_id}"


def tensor_key(item_id: int) -> str:
    """The key of an item's preprocessed input (variant ``tensor``), by preprocessing version."""
    return f"mlsp:item:tensor:{PREP_TAG}:{item_id}"


def decode_ids(body: bytes, max_ids: int) -> list[int]:
    """The ``ids`` of a ``/predict`` body, or :class:`InvalidInput` naming the bad one."""
    payload = decode_json(body)
    if not isinstance(payload, dict) or "ids" not in payload:
        raise InvalidInput('the body must be an object with an "ids" list', field="ids")
    ids = payload["ids"]
    if not isinstance(ids, list) or not ids:
        raise InvalidInput("must be a list of at least one item id", field="ids")
    if len(ids) > max_ids:
        raise InvalidInput(f"holds {len(ids)} ids; at most {max_ids} per request", field="ids")
    for i, item_id in enumerate(ids):
        if isinstance(item_id, bool) or not isinstance(item_id, int) or not 0 <= item_id <= MAX_ID:
            raise InvalidInput(
                f"expected an item id (an integer from 0 to {MAX_ID}), "
                f"got {orjson.dumps(item_id).decode()}",
                field=f"ids[{i}]",
            )
    return ids


async def fetch_image(database: AsyncDatabase, item_id: int) -> bytes:
    """The item's stored PNG, from PostgreSQL (503/504 when the database fails)."""
    with stage("db_fetch"), postgres_errors("reading the item"):
        async with database.connection() as connection:
            cursor = await connection.execute(FETCH_IMAGE, (item_id,))
            row = await cursor.fetchone()
    if row is None:
        raise _ItemMissing(item_id)
    return row[0]


def preprocess(image: bytes) -> np.ndarray:
    """The model's input (64 float32) for a stored image: decode, grey, resize, scale."""
    with stage("preprocess"):
        return digit_images.image_to_digits(image, SPEC)[0]


async def fetch_tensor(database: AsyncDatabase, item_id: int) -> bytes:
    """The item's preprocessed input as float32 bytes (what variant ``tensor`` stores)."""
    return preprocess(await fetch_image(database, item_id)).astype("<f4").tobytes()


async def item_input(state: State, item_id: int, field: str) -> tuple[np.ndarray, str]:
    """An item's model input and how it was obtained (hit, miss, coalesced, bypass)."""
    cache, database = state.cache, state.database
    try:
        if settings.cache_variant == "raw":
            fetch = partial(fetch_image, database, item_id)
            cached = await cache.get_or_compute(raw_key(item_id), fetch)
            return preprocess(cached.value), cached.result
        fetch = partial(fetch_tensor, database, item_id)
        cached = await cache.get_or_compute(tensor_key(item_id), fetch)
    except _ItemMissing:
        raise NotFound(f"no item {item_id}", field=field) from None
    return np.frombuffer(cached.value, dtype="<f4"), cached.result


async def predict(request: Request) -> Response:
    """Predict each item: its input from Redis, or from PostgreSQL (and preprocessing) on a miss."""
    state = request.app.state
    with stage("decode"):
        ids = decode_ids(await request.body(), settings.max_ids)
    if len(ids) == 1:
        inputs = [await item_input(state, ids[0], "ids[0]")]
    else:
        asked = (item_input(state, i, f"ids[{k}]") for k, i in enumerate(ids))
        inputs = await asyncio.gather(*asked)
    rows = np.stack([tensor for tensor, _ in inputs])
    outputs = await state.model.infer(rows, ["probabilities"])
    body = prediction_body(state.model.metadata, outputs["probabilities"])
    body["predictions"] = [
        {"id": item_id, **prediction}
        for item_id, prediction in zip(ids, body["predictions"], strict=True)
    ]
    return json_response(body, headers={"X-Cache": ", ".join(result for _, result in inputs)})


add_hot_route(
    app, "/predict", predict, request_model=ItemsRequest, response_model=ItemsPredictResponse
)


@app.get("/items/{item_id}/image", response_class=Response)
async def item_image(item_id: int, request: Request) -> Response:
    """The item as stored: its PNG, straight from PostgreSQL (``X-Item-Label``: its true digit)."""
    with postgres_errors("reading the item"):
        async with request.app.state.database.connection() as connection:
            cursor = await connection.execute(FETCH_ITEM, (item_id,))
            row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no item {item_id}", field="item_id")
    image, label = row
    return Response(image, media_type="image/png", headers={"X-Item-Label": str(label)})


add_model_route(app)
