"""batch worker: runs the batch jobs (start_run, drain) with the ONNX model loaded once.

Loads and checks the model first (a bad model stops the start), then works
the queue with :class:`shared.jobs.worker.LiveWorker`. Health and metrics on port
8080 (ready once the model is loaded, the heartbeat reaches Redis and
PostgreSQL answers). Scale with ``--scale worker=N``: a run starts one drain
per live worker.
"""

import jobs

from shared.jobs.worker import run_worker
from shared.kit.logs import configure_logging
from shared.kit.settings import ModelSettings, ServiceSettings
from shared.serving.model import load_served_model
from shared.stores.postgres import postgres_check
from shared.stores.redis_client import RedisSettings


class Settings(ServiceSettings, ModelSettings, RedisSettings, jobs.BatchSettings):
    """The batch worker's settings: health port, model, Redis, PostgreSQL, queue, chunks."""


def main() -> None:
    """Load the model, then work the queue until SIGTERM."""
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    model = load_served_model(settings)
    jobs.serve(model, settings)
    run_worker(
        [settings.queue_name],
        settings,
        settings,
        settings,
        checks={"postgres": postgres_check(settings, "batch-worker")},
    )


if __name__ == "__main__":
    main()
