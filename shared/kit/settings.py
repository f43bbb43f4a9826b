"""Typed settings read from environment variables (one object per service).

A service composes the pieces it needs::

    class Settings(ServiceSettings, ModelSettings): ...

and reads them once at start: ``settings = Settings()``.
"""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Measured (loadtests/reports/overload.md, 2026-12-03): a hard cap beside the delay rule,
#: for requests that wait on a peer. 64 alone refused 9-24% of requests at 80% load with the
#: api capped (256 client connections deliver bursts of more than 64, read in one loop
#: turn); the delay rule with 256 refused 0.7-3.7% there and kept more goodput at 2x.
MAX_REQUESTS_IN_FLIGHT_DEFAULT = 256
#: The delay rule's target where it is turned on, measured there too: at 5 ms the rule also
#: sheds on a capped api's own CPU-quota stalls (up to 5 ms per 10 ms period at 0.5 CPU) and
#: on uvloop's 1 ms clock steps; 20 ms shed less at 80% load (sync 0.7% vs 1.0%, web-single
#: 3.7% vs 17%) and kept more goodput at 2x. Off by default: in the playground the load
#: generator, the tests and image builds share the api's cores, and their lag (no queue of
#: the api's own) made it refuse requests of an in-process fuzz test and of idle stacks.
OVERLOAD_DELAY_TARGET_MS_RECOMMENDED = 20.0


class _EnvSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="ignore", protected_namespaces=())


class ServiceSettings(_EnvSettings):
    """How the HTTP server runs and talks: address, logging, request limits."""

    service_name: str = Field("api", description="Name in logs and metrics.")
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    log_level: str = "INFO"
    access_log: bool = Field(True, description="One JSON log line per request.")
    log_flush_interval_s: float = Field(
        0.2,
        ge=0,
        description="Log lines are buffered and written this often (warnings at once); "
        "0 writes every line as it comes.",
    )
    max_body_bytes: int = Field(1_048_576, ge=1, description="Larger bodies get 413.")
    max_requests_in_flight: int = Field(
        MAX_REQUESTS_IN_FLIGHT_DEFAULT,
        ge=0,
        description="More requests at once are answered 503 + Retry-After at once "
        "(shared/kit/overload.py); 0: no bound. Per server process: with WEB_CONCURRENCY "
        "processes a container admits up to that many times this.",
    )
    overload_delay_target_ms: float = Field(
        0.0,
        ge=0,
        description="Requests are answered 503 + Retry-After at once while the time a request "
        "waits before the app sees it (the event loop's lag) has stayed over this for "
        "OVERLOAD_DELAY_INTERVAL_MS (shared/kit/overload.py); 0 (the default): no shedding by "
        "delay. 20 where the api has its cores to itself (measured: OVERLOAD_DELAY_TARGET_MS_"
        "RECOMMENDED).",
    )
    overload_delay_interval_ms: float = Field(
        100.0,
        gt=0,
        description="How long the delay must stay over its target before requests are shed "
        "(shorter bursts are absorbed).",
    )
    overload_retry_after_s: int = Field(
        1, ge=1, description="The Retry-After of a request shed by either bound."
    )
    graceful_shutdown_s: float = Field(
        10.0, ge=0, description="How long in-flight requests may finish after SIGTERM."
    )
    drain_s: float = Field(
        0.0,
        ge=0,
        description="After SIGTERM, fail readiness but keep serving this long before "
        "stopping, so that callers move to other replicas first (called tiers).",
    )
    web_concurrency: int = Field(
        1,
        ge=1,
        description="Server processes in the container, on one port (shared.kit.serve; "
        "HTTP apis only).",
    )
    api_keys: SecretStr = Field(
        SecretStr(""),
        description="Comma-separated API keys; set: every request but the health probes, "
        "the docs and /metrics needs one (shared/kit/api_keys.py). Empty: keys are off.",
    )
    api_keys_file: Path | None = Field(
        None, description="A file of API keys (one a line), read at start; adds to API_KEYS."
    )
    metrics_need_key: bool = Field(
        False, description="With API keys on, /metrics needs a key too (the scraper sends one)."
    )
    cors_allow_origins: str = Field(
        "",
        description="Comma-separated origins a browser app may call the api from "
        "(CORS; '*': any). Empty: no CORS headers.",
    )


class ModelSettings(_EnvSettings):
    """Which model to serve from the model repository, and how to run it."""

    model_dir: Path = Field(Path("/models"), description="Root of <name>/<version>/ folders.")
    model_name: str = "iris"
    model_version: str | None = Field(None, description="None serves the highest version.")
    intra_op_threads: int = Field(1, ge=0, description="onnxruntime threads per inference.")
    max_instances: int = Field(1000, ge=1, description="Rows one request may carry.")
