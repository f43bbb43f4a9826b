"""How many pods, and how many may go: HorizontalPodAutoscalers, KEDA ScaledObjects and
PodDisruptionBudgets."""

from compose.config import Doc
from compose.k8s.common import HPA_CPU_PERCENT, HPA_MAX_REPLICAS, KEDA_JOBS_PER_REPLICA, labels


def autoscaler(api_version: str, kind: str, name: str, spec: Doc) -> Doc:
    """An object of ``kind`` that scales the Deployment ``name`` (HPA, KEDA ScaledObject)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            **spec,
        },
    }


def hpa(name: str, min_replicas: int) -> Doc:
    """Scale a stateless, called Deployment on CPU."""
    cpu = {"type": "Utilization", "averageUtilization": HPA_CPU_PERCENT}
    return autoscaler(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        name,
        {
            "minReplicas": min_replicas,
            "maxReplicas": HPA_MAX_REPLICAS,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": cpu}}],
        },
    )


def scaled_object(name: str, min_replicas: int, address: str, db: str, queue: str) -> Doc:
    """A KEDA ScaledObject: the worker's replicas follow its RQ queue's length.

    The password comes from the worker container's own ``REDIS_PASSWORD`` (the Secret).
    """
    trigger = {
        "type": "redis",
        "metadata": {
            "address": address,
            "databaseIndex": db,
            "passwordFromEnv": "REDIS_PASSWORD",
            "listName": f"rq:queue:{queue}",
            "listLength": str(KEDA_JOBS_PER_REPLICA),
        },
    }
    return autoscaler(
        "keda.sh/v1alpha1",
        "ScaledObject",
        name,
        {
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max(HPA_MAX_REPLICAS, min_replicas),
            "triggers": [trigger],
        },
    )


def disruption_budget(name: str) -> Doc:
    """At most one pod of ``name`` down at a time for a drain or an upgrade."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(name)}},
    }
