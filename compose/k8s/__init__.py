"""Kubernetes manifests of a pattern, generated from its compose file (one source of truth).

    make k8s PATTERN=x [DEST=dir]   write the tree (default: patterns/x/k8s/, not committed)
    make k8s-manifests PATTERN=x    print its local overlay as kustomize renders it
    python -m compose.k8s generate [PATTERN ...] [--dest DIR]   (several: DIR/<pattern>)
    python -m compose.k8s generate NAME --compose-file FILE --dest DIR   (a starter's own file)
    python -m compose.k8s render PATTERN [--overlay local]

``generate`` reads ``docker compose config --format json`` (no engine needed) and
writes a kustomize tree: ``base/`` (one file per compose service) and ``local/`` (an
overlay: a namespace, ``imagePullPolicy: IfNotPresent`` and the image tags, for kind or
k3d with the locally built ``mlsp/*`` images); ``kubectl apply -k DIR/local`` deploys it.
``render`` generates the tree in a temporary folder and runs ``kubectl kustomize`` (or
``kustomize build``) on the overlay.

Why the trees are rendered on demand, not committed: a tree is a pure function of the
compose file, so a committed copy says nothing the compose file does not, goes stale
with every compose edit (a test had to guard it and every change carried a regenerate
step), and the eleven trees were a third of the files under patterns/ that a reader and
every starter copied. A starter gets this generator (``make k8s`` in it) and writes its
own tree from its own compose file. The tests generate every pattern's tree into a
temporary folder and check what ``kubectl kustomize`` renders from it.

The package, one module per kind of object: :mod:`~compose.k8s.pattern` (which services
are workloads, one-shots, stateful, called; their ports), :mod:`~compose.k8s.pods`
(containers, init containers, volumes), :mod:`~compose.k8s.probes` (probes, resources,
security contexts), :mod:`~compose.k8s.secrets` (the environment and the Secret),
:mod:`~compose.k8s.workloads` (Deployment, StatefulSet, Job, CronJob),
:mod:`~compose.k8s.services`, :mod:`~compose.k8s.scaling` (HPA, KEDA, disruption
budgets), :mod:`~compose.k8s.kustomization` (the files) and :mod:`~compose.k8s.cli`.

How compose maps to Kubernetes:

* a long-running service is a Deployment, a third-party one (Redis, PostgreSQL)
  a StatefulSet whose named volumes are PersistentVolumeClaims; a Service when
  it has ports (8080 for every ``mlsp/*`` service, the published ones, the
  gRPC port of its healthcheck, and every ``name:port`` its peers' URLs name);
* a HorizontalPodAutoscaler for the Deployments that are called (published, or
  named in a peer's URL): the api and the predictors, at least
  :data:`MIN_CALLED_REPLICAS` pods; the other Deployments keep compose's
  ``deploy.replicas``, and an RQ worker gets a KEDA ``ScaledObject`` on its
  queue's length; a PodDisruptionBudget (one pod down at a time) for every
  Deployment of 2 or more; a gRPC peer's Service is headless (``clusterIP: None``)
  so that callers balance over its pods themselves;
* a one-shot service (no healthcheck, no restart) that others wait for with
  ``service_completed_successfully`` is an init container of each of them;
  ``model-export`` fills an ``emptyDir`` that the pod's containers mount
  read-only, where compose shares a named volume. A one-shot nobody waits for
  is a Job; a service that only builds an image others start FROM (``base``)
  is left out; anonymous volumes are ``emptyDir`` s;
* a service named in the top-level ``x-kubernetes: {cronjobs: ...}`` of the
  compose file is a CronJob running the command given there;
* healthchecks become probes on the same endpoints (``/health/live`` for liveness,
  the ``start_period`` a startup probe), ``deploy.resources.limits`` the limits
  (requests: a tenth of the CPU, half the memory), user, ``read_only``, ``cap_drop``
  and ``no-new-privileges`` the securityContext, ``tmpfs`` memory ``emptyDir`` s;
* ``REDIS_PASSWORD`` and ``POSTGRES_PASSWORD`` come from the Secret ``mlsp-secrets``
  (made by ``kubectl create secret``, never committed): URLs that embed them use
  Kubernetes' ``$(NAME)`` expansion. ``API_KEYS`` (and a variable compose sets to it, as
  a worker's ``CALLBACK_API_KEY``) come from the same Secret's optional key ``API_KEYS``:
  absent, keys are off; added to the Secret, every public api needs one.
"""

from compose.config import OPTIONAL_SECRETS, ROOT, SECRETS, patterns, sentinel
from compose.k8s.cli import (
    generate,
    kustomize,
    kustomize_command,
    main,
    on_disk,
    render,
    tree_dir,
    write,
)
from compose.k8s.common import (
    HPA_MAX_REPLICAS,
    HTTP_PORT,
    MIN_CALLED_REPLICAS,
    SECRET_NAME,
    K8sError,
    compose_config,
    compose_file_config,
    containers_of,
    cpu_quantity,
    pod_spec,
    seconds,
    split_image,
)
from compose.k8s.pattern import Pattern, build_only, one_shot
from compose.k8s.probes import URL_PROBES, probe_url, probes, resources

__all__ = [
    "HPA_MAX_REPLICAS",
    "HTTP_PORT",
    "MIN_CALLED_REPLICAS",
    "OPTIONAL_SECRETS",
    "ROOT",
    "SECRETS",
    "SECRET_NAME",
    "URL_PROBES",
    "K8sError",
    "Pattern",
    "build_only",
    "compose_config",
    "compose_file_config",
    "containers_of",
    "cpu_quantity",
    "generate",
    "kustomize",
    "kustomize_command",
    "main",
    "on_disk",
    "one_shot",
    "patterns",
    "pod_spec",
    "probe_url",
    "probes",
    "render",
    "resources",
    "seconds",
    "sentinel",
    "split_image",
    "tree_dir",
    "write",
]
