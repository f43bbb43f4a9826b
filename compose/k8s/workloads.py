"""Workloads: a Deployment (with its autoscaler and disruption budget), a StatefulSet with its
volume claims, a Job or a CronJob per compose service, and the Service in front of it."""

from compose.config import Doc
from compose.k8s.common import STORAGE, labels
from compose.k8s.pattern import Pattern
from compose.k8s.pods import job_pod, pod
from compose.k8s.scaling import disruption_budget, hpa, scaled_object
from compose.k8s.services import service


def objects(pattern: Pattern, name: str) -> list[Doc]:
    """The Kubernetes objects of compose service ``name``, its workload first."""
    if name in pattern.cronjobs:
        return [cronjob(pattern, name)]
    if name in pattern.one_shots:
        return [job(pattern, name)]
    template = pod(pattern, name)
    meta = {"name": name, "labels": labels(name)}
    selector = {"matchLabels": labels(name)}
    docs: list[Doc] = []
    if pattern.stateful(name):
        spec: Doc = {"serviceName": name, "replicas": 1, "selector": selector, "template": template}
        claims = sorted(
            pattern.mounts_of(name) - {v["name"] for v in template["spec"].get("volumes", [])}
        )
        if claims:
            spec["volumeClaimTemplates"] = [claim(c) for c in claims]
        docs.append(
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec}
        )
    else:
        spec = {"selector": selector, "template": template}
        autoscaled = pattern.called(name)
        replicas = pattern.replicas(name)
        if not autoscaled:
            spec = {"replicas": replicas, **spec}
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec})
        if autoscaled:
            docs.append(hpa(name, replicas))
        queue = pattern.rq_queue(name)
        if queue is not None:
            docs.append(scaled_object(name, replicas, *queue))
        if replicas >= 2:  # one may go while one stays
            docs.append(disruption_budget(name))
    ports = pattern.ports(name)
    if ports:
        docs.append(service(name, ports, headless="grpc" in ports))
    return docs


def claim(name: str) -> Doc:
    """A PersistentVolumeClaim template."""
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": STORAGE}}},
    }


def job(pattern: Pattern, name: str) -> Doc:
    """A Job for a one-shot service nobody waits for."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {"backoffLimit": 6, "template": job_pod(pattern, name)},
    }


def cronjob(pattern: Pattern, name: str) -> Doc:
    """A CronJob in place of a compose scheduler service (``x-kubernetes.cronjobs``)."""
    how = pattern.cronjobs[name]
    template = job_pod(pattern, name)
    template["spec"]["containers"][0]["args"] = [str(a) for a in how["command"]]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "schedule": how["schedule"],
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 60,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"backoffLimit": 2, "template": template}},
        },
    }
