"""Least privilege, read from ``docker compose config`` of every pattern (no daemon needed).

Every service of every profile: a non-root user, a read-only root filesystem, every
capability dropped, no new privileges, CPU and memory limits, a stop grace period when it
runs for long; only the public ``api`` publishes a port, and only on 127.0.0.1 by default;
the Redis and PostgreSQL passwords come from the environment. A rule a service may break
for a stated reason is in ``ALLOWED`` below, nowhere else.
"""

from typing import Any

import pytest

from tests.compose_config import (
    DUMMY_SECRETS,
    compose_config,
    edge_config,
    patterns,
)

#: (service, rule) -> why the service may break the rule. Keep it short and justified.
ALLOWED: dict[tuple[str, str], str] = {
    # Prometheus (profile "observe", a developer tool) runs as its image's own non-root
    # user, which is `nobody` in prom/prometheus and `prometheus` in the offline stand-in:
    # no one uid owns /prometheus in both, so the compose file cannot name it.
    ("prometheus", "user"): "the image's non-root USER",
    # Prometheus's UI is what `make up OBSERVE=1` is for; published on 127.0.0.1 only.
    ("prometheus", "ports"): "developer UI on 127.0.0.1",
}
#: Services that are allowed to publish a port (on 127.0.0.1): the public api.
PUBLIC = {"api"}
ROOT_USERS = {"root", "0"}


def services() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (pattern, name, service)
        for pattern in patterns()
        for name, service in sorted(compose_config(pattern)["services"].items())
    ]


def broken_rules(name: str, service: dict[str, Any]) -> dict[str, str]:
    """rule -> what is wrong, for each house rule ``service`` breaks."""
    broken = {}
    user = str(service.get("user") or "")
    if not user or user.split(":", maxsplit=1)[0] in ROOT_USERS:
        broken["user"] = f"user is {user or 'unset (the image decides)'}; set a non-root user"
    if not service.get("read_only"):
        broken["read_only"] = "root filesystem is writable; set read_only: true (+ tmpfs)"
    if "ALL" not in (service.get("cap_drop") or []) or service.get("cap_add"):
        broken["cap_drop"] = "set cap_drop: [ALL] and add none back"
    if "no-new-privileges:true" not in (service.get("security_opt") or []):
        broken["security_opt"] = "set security_opt: [no-new-privileges:true]"
    if service.get("privileged") or service.get("network_mode") == "host":
        broken["privileged"] = "privileged or host network"
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    if not limits.get("cpus") or not limits.get("memory"):
        broken["limits"] = f"limits are {limits}; set deploy.resources.limits cpus and memory"
    if service.get("restart") not in (None, "no") and not service.get("stop_grace_period"):
        broken["stop_grace_period"] = "a long-running service needs a stop_grace_period"
    ports = service.get("ports") or []
    if ports and name not in PUBLIC:
        broken["ports"] = f"publishes {ports}; only {sorted(PUBLIC)} may publish a port"
    for port in ports:
        if port.get("host_ip") != "127.0.0.1":
            broken["bind"] = f"port {port.get('target')} is bound to {port.get('host_ip')!r}"
    return broken


@pytest.mark.parametrize("pattern", patterns())
def test_every_service_runs_with_least_privilege(pattern: str) -> None:
    problems = [
        f"{pattern}/{name}: {rule}: {what}"
        for p, name, service in services()
        if p == pattern
        for rule, what in broken_rules(name, service).items()
        if (name, rule) not in ALLOWED
    ]
    assert not problems, "\n".join(problems)


def test_the_allowlist_has_no_stale_entries() -> None:
    used = {(name, rule) for _, name, service in services() for rule in broken_rules(name, service)}
    assert set(ALLOWED) <= used, f"unused allowlist entries: {sorted(set(ALLOWED) - used)}"


@pytest.mark.parametrize("pattern", patterns())
def test_the_public_api_is_published_on_localhost_only(pattern: str) -> None:
    published = {
        name: service["ports"]
        for name, service in compose_config(pattern, profiles="")["services"].items()
        if service.get("ports")
    }
    assert list(published) == ["api"], f"{pattern}: published services {sorted(published)}"
    assert [p["host_ip"] for p in published["api"]] == ["127.0.0.1"]


@pytest.mark.parametrize("pattern", patterns())
def test_with_the_edge_only_the_edge_is_published_and_it_runs_with_least_privilege(
    pattern: str,
) -> None:
    services = edge_config(pattern)["services"]
    published = {
        name: service["ports"] for name, service in services.items() if service.get("ports")
    }
    assert list(published) == ["edge"], f"{pattern}: published services {sorted(published)}"
    assert [p["host_ip"] for p in published["edge"]] == ["127.0.0.1"]
    assert broken_rules("api", services["edge"]) == {}  # the rules of a public service
    assert services["edge"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert services["edge"]["healthcheck"]["test"][:2] == ["CMD", "probe"]


STORE_URL_SCHEMES = ("redis://", "rediss://", "postgresql://", "postgres://")


@pytest.mark.parametrize("pattern", patterns())
def test_store_passwords_come_from_the_environment_and_storeless_patterns_have_none(
    pattern: str,
) -> None:
    config = compose_config(pattern)["services"]
    store_urls = {
        (name, key): str(value)
        for name, service in config.items()
        for key, value in (service.get("environment") or {}).items()
        if any(scheme in str(value) for scheme in STORE_URL_SCHEMES)
    }
    if not {"redis", "postgres"} & set(config):
        assert store_urls == {}, f"{pattern} has no store, yet its services name one"
        return
    redis = config.get("redis")
    if redis is not None:
        command = redis["command"]
        assert command[command.index("--requirepass") + 1] == DUMMY_SECRETS["REDIS_PASSWORD"]
    postgres = config.get("postgres")
    if postgres is not None:
        assert postgres["environment"]["POSTGRES_PASSWORD"] == DUMMY_SECRETS["POSTGRES_PASSWORD"]
    assert store_urls, f"{pattern} runs a store that no service is given the URL of"
    for (name, key), value in store_urls.items():
        secret = "REDIS_PASSWORD" if value.startswith("redis") else "POSTGRES_PASSWORD"
        assert f":{DUMMY_SECRETS[secret]}@" in value, f"{pattern}/{name}: {key}"
