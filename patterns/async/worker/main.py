"""async worker: takes prediction jobs off the Redis queue and runs the ONNX model.

Loads and checks the model first (a bad model stops the start), then works
the queue with :class:`shared.jobs.worker.LiveWorker`, in this process: the job it
takes and the jobs already waiting (up to ``WORKER_BATCH_SIZE``) run as one
onnxruntime call, each job with its own result; scale out with more containers
(``--scale worker=N``). Health and
metrics on port 8080 (ready once the model is loaded and the heartbeat
reaches Redis).
"""

import tasks

from shared.jobs.callbacks import CallbackSettings
from shared.jobs.contract import QueueSettings
from shared.jobs.worker import WorkerSettings, run_worker
from shared.kit.logs import configure_logging
from shared.kit.settings import ModelSettings, ServiceSettings
from shared.serving.model import load_served_model
from shared.stores.redis_client import RedisSettings


class Settings(
    ServiceSettings, ModelSettings, RedisSettings, QueueSettings, WorkerSettings, CallbackSettings
):
    """The async worker's settings: health port, model, Redis, queue, heartbeat, callbacks."""


def main() -> None:
    """Load the model, then work the queue until SIGTERM."""
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    model = load_served_model(settings)
    tasks.serve(model, settings.extra_work_ms)
    run_worker(
        [settings.queue_name],
        settings,
        settings,
        settings,
        checks={"model": tasks.model_check},
        batch_functions={"tasks.predict": tasks.predict_batch},
    )


if __name__ == "__main__":
    main()
