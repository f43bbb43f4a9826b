"""Kubernetes manifests (compose/k8s/): rendered on demand, valid, equivalent to compose.

Every pattern's tree is generated into a temporary folder and rendered by ``kubectl
kustomize`` there (no tree is committed). Offline and without a Docker engine: ``docker
compose config`` needs only the CLI, ``kubectl kustomize`` renders locally, and
kubernetes-validate carries the schemas.
"""

import functools
import itertools
import json
import math
import re
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from compose import k8s

K8S_VERSION = "1.32"  # the oldest Kubernetes the manifests are checked against (kubectl here)
K8S_VERSIONS = (K8S_VERSION, "1.37")  # ... and the newest whose schemas kubernetes-validate has
PATTERNS = k8s.patterns()
WORKLOADS = {"Deployment", "StatefulSet", "CronJob"}
# Kinds Kubernetes does not define, checked against a schema kept here (see its $comment).
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): k8s.ROOT / "tests/schemas/keda-scaledobject-v1alpha1.json"
}

Doc = dict[str, Any]


@functools.cache
def config(pattern: str) -> Doc:
    return k8s.compose_config(pattern)


@functools.cache
def rendered(pattern: str) -> tuple[Doc, ...]:
    return tuple(d for d in yaml.safe_load_all(k8s.render(pattern)) if d)


def objects(pattern: str, kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in rendered(pattern) if d["kind"] == kind}


def workload(pattern: str, name: str) -> Doc:
    found = [
        d for d in rendered(pattern) if d["kind"] in WORKLOADS and d["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"{pattern}: one workload named {name}, found {len(found)}"
    return found[0]


@functools.cache
def classified(pattern: str) -> k8s.Pattern:
    return k8s.Pattern(pattern, config(pattern))


def long_running(pattern: str) -> dict[str, Doc]:
    """The compose services that must be long-running workloads (not images to build FROM)."""
    services = config(pattern)["services"]
    skip = classified(pattern).build_only
    return {n: s for n, s in services.items() if n not in skip and not k8s.one_shot(s)}


def unexpand(value: str) -> str:
    """A rendered env value as compose gave it: ``$(NAME)`` back to the secret's sentinel."""
    return re.sub(r"\$\((\w+)\)", lambda m: k8s.sentinel(m[1]), value)


def env_as_compose(container: Doc) -> dict[str, str]:
    out = {}
    for var in container.get("env", []):
        if "valueFrom" in var:
            out[var["name"]] = k8s.sentinel(var["valueFrom"]["secretKeyRef"]["key"])
        else:
            out[var["name"]] = unexpand(var["value"])
    return out


def seconds(duration: str) -> int:
    found = re.fullmatch(r"(\d+)s", duration)
    assert found, duration
    return int(found[1])


# -- rendered on demand, valid ----------------------------------------------------------


def test_no_tree_is_committed_and_written_ones_are_ignored() -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=k8s.ROOT, capture_output=True, text=True, check=True
        ).stdout

    assert git("ls-files", "patterns/*/k8s") == ""
    assert git("check-ignore", "patterns/sync/k8s/base/api.yaml").strip()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt from this process fails the test: validation is offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.usefixtures("no_network")
def test_every_rendered_manifest_is_valid_kubernetes(pattern: str) -> None:
    docs = rendered(pattern)
    assert {d["kind"] for d in docs} >= {"Namespace", "Deployment", "Service"}
    for doc, version in itertools.product(docs, K8S_VERSIONS):
        where = f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version})"
        custom = CUSTOM_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if custom is not None:
            validate_custom(doc, custom, f"{pattern}: {where}")
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{pattern}: {where} is invalid at {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{pattern}: {where}: {exc.message}")
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == f"mlsp-{pattern}", where


@functools.cache
def custom_schema(path: Path) -> Doc:
    return json.loads(path.read_text())


def validate_custom(doc: Doc, schema_path: Path, where: str) -> None:
    try:
        jsonschema.validate(doc, custom_schema(schema_path))
    except jsonschema.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        pytest.fail(f"{where} is invalid at {path}: {exc.message}")


def test_the_scaledobject_schema_rejects_a_misspelt_field() -> None:
    (scaled,) = objects("async", "ScaledObject").values()
    schema = CUSTOM_SCHEMAS["keda.sh/v1alpha1", "ScaledObject"]
    validate_custom(scaled, schema, "async")
    for broken in (
        {**scaled, "spec": {**scaled["spec"], "minReplicas": 1}},
        {**scaled, "spec": {**scaled["spec"], "triggers": []}},
        {**scaled, "spec": {**scaled["spec"], "triggers": [{"type": "redis", "metadata": {}}]}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, custom_schema(schema))


def test_validation_rejects_what_kubernetes_would() -> None:
    deployment = workload("web-single", "api")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


# -- equivalent to compose ---------------------------------------------------------------


@pytest.mark.parametrize("pattern", PATTERNS)
def test_containers_match_their_compose_services(pattern: str) -> None:
    cronjobs = (config(pattern).get("x-kubernetes") or {}).get("cronjobs") or {}
    for name, svc in long_running(pattern).items():
        doc = workload(pattern, name)
        pod = k8s.pod_spec(doc)
        (container,) = [c for c in pod["containers"] if c["name"] == name]
        assert container["image"] == svc["image"], name
        assert container["imagePullPolicy"] == "IfNotPresent", name
        env = env_as_compose(container)
        extra = set(env) - set(svc.get("environment") or {})
        assert extra <= {*k8s.SECRETS, "PGDATA"}, f"{name}: {extra}"
        assert {k: env[k] for k in svc.get("environment") or {}} == {
            k: str(v) for k, v in (svc.get("environment") or {}).items()
        }, name
        assert [unexpand(a) for a in container.get("command", [])] == (svc.get("entrypoint") or [])
        expected_args = cronjobs[name]["command"] if name in cronjobs else svc.get("command")
        assert [unexpand(a) for a in container.get("args", [])] == (expected_args or []), name
        if name not in cronjobs:
            check_probes(name, svc, container)
        check_resources(name, svc, container)
        check_security(name, svc, pod, container)


def check_probes(name: str, svc: Doc, container: Doc) -> None:
    healthcheck = svc["healthcheck"]
    test = healthcheck["test"]
    ready, live = container["readinessProbe"], container["livenessProbe"]
    if test[:-1] in k8s.URL_PROBES:
        url = urlsplit(test[-1])
        if url.scheme == "grpc":
            assert ready["grpc"] == {"port": url.port}, name
        else:
            assert ready["httpGet"] == {"path": url.path, "port": url.port}, name
        assert live["httpGet"]["path"] == "/health/live", name
    else:
        assert test[0] == "CMD-SHELL", name
        command = ["sh", "-c", test[1].replace("$$", "$")]
        assert ready["exec"]["command"] == live["exec"]["command"] == command, name
    assert ready["periodSeconds"] == seconds(healthcheck["interval"]), name
    assert ready["timeoutSeconds"] == seconds(healthcheck["timeout"]), name
    assert ready["failureThreshold"] == healthcheck["retries"], name
    startup = container["startupProbe"]
    start_period = seconds(healthcheck["start_period"])
    assert startup["periodSeconds"] * startup["failureThreshold"] >= start_period, name


def check_resources(name: str, svc: Doc, container: Doc) -> None:
    limits = svc["deploy"]["resources"]["limits"]
    given = container["resources"]["limits"]
    cpu = given["cpu"]
    millicores = int(cpu[:-1]) if cpu.endswith("m") else int(cpu) * 1000
    assert millicores == round(float(limits["cpus"]) * 1000), name
    assert given["memory"] == f"{int(limits['memory']) // 2**20}Mi", name
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}, name


def check_security(name: str, svc: Doc, pod: Doc, container: Doc) -> None:
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    uid = pod["securityContext"]["runAsUser"]
    assert uid != 0, name
    if str(svc["user"]).split(":")[0].isdigit():
        assert uid == int(str(svc["user"]).split(":")[0]), name
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is bool(svc.get("read_only")), name
    assert security["capabilities"]["drop"] == svc["cap_drop"] == ["ALL"], name
    assert security["allowPrivilegeEscalation"] is False, name
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    for path in svc.get("tmpfs") or []:
        assert path in mounts, f"{name}: tmpfs {path}"
    for volume in svc.get("volumes") or []:
        mount = mounts[volume["target"]]
        assert mount.get("readOnly", False) is volume.get("read_only", False), name


@pytest.mark.parametrize("pattern", PATTERNS)
def test_ports_published_and_named_by_peers_are_served(pattern: str) -> None:
    services = objects(pattern, "Service")
    for name, svc in long_running(pattern).items():
        for published in svc.get("ports") or []:
            assert published["target"] in [p["port"] for p in services[name]["spec"]["ports"]]
    # Every host:port in any URL of any service (peers are found by URL env vars).
    for name, svc in config(pattern)["services"].items():
        for value in (svc.get("environment") or {}).values():
            for host, port in re.findall(r"(?<![\w.-])([a-z][a-z0-9-]*):(\d+)", str(value)):
                if host in config(pattern)["services"]:
                    ports = [p["port"] for p in services[host]["spec"]["ports"]]
                    assert int(port) in ports, f"{name} calls {host}:{port}; Service has {ports}"
    for service in services.values():  # each Service selects a workload's pods
        selected = workload(pattern, service["metadata"]["name"])
        labels = selected["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("pattern", PATTERNS)
def test_one_shots_run_as_init_containers_before_the_services(pattern: str) -> None:
    services = config(pattern)["services"]
    for name, svc in long_running(pattern).items():
        pod = k8s.pod_spec(workload(pattern, name))
        inits = {c["name"]: c for c in pod.get("initContainers", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounted = {v.get("source") for v in svc.get("volumes") or []} - {None}
        for dep in svc.get("depends_on") or {}:
            if dep in classified(pattern).build_only or not k8s.one_shot(services[dep]):
                continue
            writes = {v.get("source") for v in services[dep].get("volumes") or []} - {None}
            if writes and not writes & mounted:
                continue  # waited for in compose for the image build order only
            assert dep in inits, f"{pattern}: {name} must run {dep} first"
            assert inits[dep]["image"] == services[dep]["image"]
            for volume in writes & mounted:  # filled by the init container, read by the service
                assert "emptyDir" in volumes[volume]
                (mount,) = [m for m in inits[dep]["volumeMounts"] if m["name"] == volume]
                assert not mount.get("readOnly")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_called_services_autoscale_and_workers_keep_compose_replicas(pattern: str) -> None:
    hpas = objects(pattern, "HorizontalPodAutoscaler")
    deployments = objects(pattern, "Deployment")
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert "replicas" not in deployments[name]["spec"]  # the HPA owns it
        assert hpa["spec"]["minReplicas"] >= k8s.MIN_CALLED_REPLICAS
    assert "api" in hpas
    for name, svc in long_running(pattern).items():
        if name.startswith("predictor"):
            assert name in hpas
        if name == "worker":
            assert name not in hpas
            assert deployments[name]["spec"]["replicas"] == svc["deploy"]["replicas"]


def minimum_pods(pattern: str, name: str) -> int:
    """The fewest pods a Deployment runs: its HPA's or KEDA's minimum, else its replicas."""
    for kind, field in (
        ("HorizontalPodAutoscaler", "minReplicas"),
        ("ScaledObject", "minReplicaCount"),
    ):
        scaler = objects(pattern, kind).get(name)
        if scaler is not None:
            return scaler["spec"][field]
    return objects(pattern, "Deployment")[name]["spec"]["replicas"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_disruption_budget_keeps_every_deployment_of_two_or_more_serving(pattern: str) -> None:
    budgets = objects(pattern, "PodDisruptionBudget")
    for name, deployment in objects(pattern, "Deployment").items():
        if minimum_pods(pattern, name) >= 2:
            assert budgets[name]["spec"] == {
                "maxUnavailable": 1,
                "selector": deployment["spec"]["selector"],
            }
        else:
            assert name not in budgets
    assert set(budgets) <= set(objects(pattern, "Deployment"))


@pytest.mark.parametrize("pattern", PATTERNS)
def test_grpc_peers_have_headless_services(pattern: str) -> None:
    for name, svc in objects(pattern, "Service").items():
        grpc = any(p["name"] == "grpc" for p in svc["spec"]["ports"])
        assert (svc["spec"].get("clusterIP") == "None") == grpc, name
    if pattern == "sync":
        assert objects("sync", "Service")["predictor"]["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("pattern", ["async", "batch"])
def test_rq_workers_scale_on_their_queue_with_keda(pattern: str) -> None:
    (scaled,) = objects(pattern, "ScaledObject").values()
    target = scaled["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
    worker = config(pattern)["services"]["worker"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]
    assert meta["listName"] == f"rq:queue:{worker['environment']['QUEUE_NAME']}"
    url = urlsplit(worker["environment"]["REDIS_URL"])
    assert meta["address"] == f"{url.hostname}:{url.port}"
    # The address is the Redis Service, the password the worker container's own.
    redis_ports = [p["port"] for p in objects(pattern, "Service")["redis"]["spec"]["ports"]]
    assert url.port in redis_ports
    container = k8s.pod_spec(workload(pattern, "worker"))["containers"][0]
    assert meta["passwordFromEnv"] in {v["name"] for v in container["env"]}
    assert scaled["spec"]["minReplicaCount"] == worker["deploy"]["replicas"]


def test_batch_scheduler_is_a_cronjob_and_stores_are_statefulsets() -> None:
    cronjob = workload("batch", "scheduler")
    assert cronjob["kind"] == "CronJob"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = k8s.pod_spec(cronjob)
    assert pod["containers"][0]["args"] == ["python", "-m", "ctl", "run"]
    assert [c["name"] for c in pod["initContainers"]] == ["migrate"]
    for pattern, store, path in [
        ("batch", "postgres", "/var/lib/postgresql/data"),
        ("batch", "redis", "/data"),
        ("async", "redis", "/data"),
    ]:
        stateful = workload(pattern, store)
        assert stateful["kind"] == "StatefulSet"
        (claim,) = stateful["spec"]["volumeClaimTemplates"]
        mounts = k8s.pod_spec(stateful)["containers"][0]["volumeMounts"]
        assert {"name": claim["metadata"]["name"], "mountPath": path} in mounts
    # A cache keeps nothing on disk, in compose as here.
    assert "volumeClaimTemplates" not in workload("prediction-cache", "redis")["spec"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_no_secret_value_is_committed(pattern: str) -> None:
    text = k8s.render(pattern)
    assert "k8s-secret-" not in text
    for doc in rendered(pattern):
        assert doc["kind"] != "Secret"
    refs = re.findall(r"secretKeyRef:\s+key: (\w+)\s+name: ([\w-]+)", text)
    assert all(
        name == k8s.SECRET_NAME and key in {*k8s.SECRETS, *k8s.OPTIONAL_SECRETS}
        for key, name in refs
    )


@pytest.mark.parametrize("pattern", PATTERNS)
def test_public_apis_take_their_api_keys_from_the_secret_when_it_has_them(pattern: str) -> None:
    published = [n for n, s in long_running(pattern).items() if s.get("ports")]
    assert published
    for name in published:
        (container,) = [
            c for c in k8s.pod_spec(workload(pattern, name))["containers"] if c["name"] == name
        ]
        (api_keys,) = [var for var in container["env"] if var["name"] == "API_KEYS"]
        assert api_keys["valueFrom"]["secretKeyRef"] == {
            "name": k8s.SECRET_NAME,
            "key": "API_KEYS",
            "optional": True,  # absent from the Secret: keys are off
        }


# -- the generator's own rules, without compose --------------------------------------------


def test_durations_and_quantities() -> None:
    assert k8s.seconds("1m30s") == 90
    assert k8s.seconds("500ms") == 1
    assert k8s.seconds(None, 7) == 7
    assert k8s.cpu_quantity(2000) == "2"
    assert k8s.cpu_quantity(250) == "250m"
    assert k8s.split_image("localhost:5000/mlsp/api") == ("localhost:5000/mlsp/api", "latest")
    assert math.isclose(float(k8s.split_image("redis:7.4")[1]), 7.4)


def test_a_bind_mount_is_refused_not_silently_dropped() -> None:
    config = {
        "services": {
            "api": {
                "image": "mlsp/x-api:dev",
                "user": "10001:10001",
                "ports": [{"target": 8080}],
                "volumes": [{"type": "bind", "source": "./data", "target": "/data"}],
            }
        }
    }
    with pytest.raises(k8s.K8sError, match="only named volumes"):
        k8s.generate("x", config)


SMALL = {
    "base": {"image": "mlsp/base:dev", "build": {"context": "."}},
    "export": {
        "image": "mlsp/model-export:dev",
        "depends_on": {"base": {"condition": "service_completed_successfully"}},
        "volumes": [{"type": "volume", "source": "models", "target": "/models"}],
    },
    "seed": {  # a one-shot nobody waits for
        "image": "mlsp/x-seed:dev",
        "restart": "no",
        "healthcheck": {"disable": True, "test": ["CMD", "true"]},
        "build": {"context": "seed", "args": {"BASE_IMAGE": "mlsp/base:dev"}},
    },
    "api": {
        "image": "mlsp/x-api:dev",
        "restart": "unless-stopped",
        "build": {"context": "api", "args": {"BASE_IMAGE": "mlsp/base:dev"}},
        "healthcheck": {
            "test": ["CMD", "probe", "http://127.0.0.1:8080/health/ready"],
            "interval": "3s",
            "timeout": "3s",
            "retries": 3,
        },
        "ports": [{"target": 8080}],
        "volumes": [{"type": "volume", "source": "models", "target": "/models", "read_only": True}],
        "depends_on": {"export": {"condition": "service_completed_successfully"}},
    },
}


def test_build_only_services_vanish_and_unawaited_one_shots_are_jobs() -> None:
    files = k8s.generate("x", {"services": SMALL})
    assert sorted(files) == [
        "base/api.yaml",
        "base/kustomization.yaml",
        "base/seed.yaml",
        "local/kustomization.yaml",
        "local/namespace.yaml",
    ]
    (job,) = yaml.safe_load_all(files["base/seed.yaml"])
    api = list(yaml.safe_load_all(files["base/api.yaml"]))
    assert [d["kind"] for d in api] == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]
    for doc in [job, *api]:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert job["kind"] == "Job"
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    pod = k8s.pod_spec(api[0])
    assert [c["name"] for c in pod["initContainers"]] == ["export"]
    assert pod["securityContext"]["runAsUser"] == 10001  # the images' user when compose names none


# -- the commands ------------------------------------------------------------------------


def make(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["make", "--no-print-directory", *args]
    return subprocess.run(command, cwd=k8s.ROOT, capture_output=True, text=True, check=False)


def test_make_k8s_writes_the_tree_that_kustomize_renders(tmp_path: Path) -> None:
    dest = tmp_path / "sync-tree"
    dry = make("-n", "k8s", "PATTERN=sync", f"DEST={dest}")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip().endswith(f"-m compose.k8s generate sync --dest '{dest}'")
    assert make("-n", "k8s", "PATTERN=sync").stdout.strip().endswith("generate sync")
    assert k8s.main(["generate", "sync", "--dest", str(dest)]) == 0
    assert k8s.on_disk(dest) == k8s.generate("sync", config("sync"))
    header = "# Generated by `python -m compose.k8s` (make k8s) from patterns/sync/compose.yaml"
    assert all(text.startswith(header) for text in k8s.on_disk(dest).values())
    docs = [d for d in yaml.safe_load_all(k8s.kustomize(dest / "local")) if d]
    assert docs == list(rendered("sync"))
    (dest / "base" / "gone.yaml").write_text("kind: Stale\n")  # an earlier tree's file
    assert k8s.main(["generate", "sync", "--dest", str(dest)]) == 0
    assert not (dest / "base" / "gone.yaml").exists()


def test_make_k8s_and_k8s_manifests_refuse_unknown_patterns() -> None:
    for target in ("k8s", "k8s-manifests"):
        refused = make(target, "PATTERN=nope")
        assert refused.returncode != 0
        assert "Unknown PATTERN 'nope'" in refused.stderr
    dry = make("-n", "k8s-manifests", "PATTERN=sync")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip().endswith("-m compose.k8s render sync")


def test_generate_writes_every_pattern_under_dest(tmp_path: Path) -> None:
    assert k8s.main(["generate", "--dest", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == PATTERNS
    for pattern in PATTERNS:
        assert (tmp_path / pattern / "local" / "kustomization.yaml").is_file()


def test_generate_reads_a_compose_file_of_ones_own(tmp_path: Path) -> None:
    source = k8s.ROOT / "patterns" / "web-single" / "compose.yaml"
    argv = ["generate", "mine", "--compose-file", str(source), "--dest", str(tmp_path)]
    assert k8s.main(argv) == 0
    docs = [d for d in yaml.safe_load_all(k8s.kustomize(tmp_path / "local")) if d]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        "mlsp-mine"
    }
    assert (
        (tmp_path / "base" / "api.yaml")
        .read_text()
        .startswith("# Generated by `python -m compose.k8s` (make k8s) from compose.yaml")
    )
    with pytest.raises(SystemExit):  # a compose file of one's own names one tree and its place
        k8s.main(["generate", "--compose-file", str(source)])


def test_render_prints_the_overlay(capsys: pytest.CaptureFixture[str]) -> None:
    assert k8s.main(["render", "web-single"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert docs == list(rendered("web-single"))
    for argv in (["render", "nope"], ["render"], ["check", "web-single"]):
        with pytest.raises(SystemExit):
            k8s.main(argv)


def test_cpu_shares_become_a_proportional_cpu_request() -> None:
    limits = {"deploy": {"resources": {"limits": {"cpus": "2", "memory": str(512 * 2**20)}}}}
    assert k8s.resources(limits)["requests"]["cpu"] == "200m"
    assert k8s.resources(limits | {"cpu_shares": 256})["requests"]["cpu"] == "50m"
    assert k8s.resources(limits | {"cpu_shares": 2})["requests"]["cpu"] == "10m"  # the floor


@pytest.mark.parametrize("pattern", ["async", "batch"])
def test_workers_yield_the_cpu_to_the_api(pattern: str) -> None:
    docs = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(k8s.generate(pattern, config(pattern))["base/worker.yaml"])
        if d and d.get("kind") == "Deployment"
    }
    worker = docs["worker"]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert worker["requests"]["cpu"] == "50m"  # the api: 200m
