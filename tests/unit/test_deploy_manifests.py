"""Offline checks of the Kubernetes deployment under deploy/ (no cluster, no network).

The kustomizations are rendered in Python (kustomize_lite), the core Kubernetes
objects validated against the API schemas kubernetes-validate ships, the custom
resources (Strimzi, KEDA, Prometheus Operator) against the schemas committed under
deploy/schemas/. Then the invariants that tie the manifests to the code: every topic
of TopicNames has a KafkaTopic with its cleanup policy, partitions agree between the
topics, the worker's settings and KEDA's replica cap, settings names exist, no secret
value is written down, every container is bounded and runs as non-root, the probes
and the scrape target point at the metrics port. Alert rules and the Grafana dashboard
are parsed (promql_lite) and may use only the metrics the worker exports.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from memberstream.config import Settings, TopicNames, check_env, setting_env_names

from . import promql_lite as promql
from .kustomize_lite import KustomizeError, render, schema_registry, strategic_merge, validator

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMAS = DEPLOY / "schemas"
MONITORING = DEPLOY / "monitoring"
RENDERS = {"base": DEPLOY / "base", "gpu": DEPLOY / "overlays" / "gpu"}

# The oldest Kubernetes the manifests target and the newest schemas at hand.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())
# API groups of the objects kubernetes-validate checks; the rest needs a schema of ours.
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1"}
CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1beta2", "Kafka"),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}

IMAGE = "ghcr.io/memberstream/memberstream:0.1.0"
CUDA_IMAGE = "ghcr.io/memberstream/memberstream:0.1.0-cuda"
METRICS_PORT = 9464
# The Faust tables of the worker (memberstream.streams.app): their changelog topics.
TABLES = ("members", "products")

# What the worker exports (name -> type, labels); alerts and the dashboard may use
# nothing else. A histogram is queried as _bucket/_sum/_count.
METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "memberstream_events_in_total": ("counter", frozenset({"topic"})),
    "memberstream_outputs_total": ("counter", frozenset({"topic"})),
    "memberstream_dead_letters_total": ("counter", frozenset({"topic", "error_type"})),
    "memberstream_duplicates_total": ("counter", frozenset()),
    "memberstream_batch_records": ("histogram", frozenset({"agent"})),
    "memberstream_batch_seconds": ("histogram", frozenset({"agent"})),
    "memberstream_model_seconds": ("histogram", frozenset({"model_version"})),
    "memberstream_texts_encoded_total": ("counter", frozenset({"model_version"})),
    "memberstream_title_cache_hits_total": ("counter", frozenset()),
    "memberstream_title_cache_misses_total": ("counter", frozenset()),
    "memberstream_flags_total": ("counter", frozenset({"kind"})),
    "memberstream_summaries_total": ("counter", frozenset()),
    "memberstream_consumer_lag": ("gauge", frozenset({"topic", "partition"})),
    "memberstream_watchdog_reseeks_total": ("counter", frozenset()),
    "memberstream_model_info": ("gauge", frozenset({"task", "version"})),
    "memberstream_ready": ("gauge", frozenset()),
    "memberstream_cpu_seconds_total": ("counter", frozenset()),
    "memberstream_cpu_seconds_per_1k_events": ("gauge", frozenset()),
    "memberstream_cost_per_million_events": ("gauge", frozenset({"currency"})),
    "memberstream_state_entries": ("gauge", frozenset({"table"})),
    "memberstream_state_bytes": ("gauge", frozenset()),
    "process_resident_memory_bytes": ("gauge", frozenset()),
}
# Labels Prometheus attaches to every series scraped through a PodMonitor.
TARGET_LABELS = frozenset({"namespace", "pod", "container", "job", "instance", "endpoint"})
COUNTER_FUNCTIONS = {"rate", "irate", "increase", "resets"}
GAUGE_FUNCTIONS = {"delta", "idelta", "deriv", "predict_linear"}
GRAFANA_MACROS = ("$__rate_interval", "$__interval", "$__range")


def series_names() -> dict[str, tuple[str, str]]:
    """Every series name a query may select -> (metric, its kind as selected)."""
    names: dict[str, tuple[str, str]] = {}
    for metric, (kind, _labels) in METRICS.items():
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                names[metric + suffix] = (metric, "counter")
        else:
            names[metric] = (metric, kind)
    return names


# --- rendering and lookup ----------------------------------------------------------------


@pytest.fixture(scope="module")
def renders() -> dict[str, list[dict[str, Any]]]:
    return {name: render(path, SCHEMAS) for name, path in RENDERS.items()}


@pytest.fixture(params=sorted(RENDERS))
def objects(request: pytest.FixtureRequest, renders) -> list[dict[str, Any]]:
    """The rendered objects of the base and of the GPU overlay (each test runs on both)."""
    return copy.deepcopy(renders[request.param])


@pytest.fixture(scope="module")
def monitoring() -> list[dict[str, Any]]:
    return render(MONITORING, SCHEMAS)


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in of_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod template spec) of every workload."""
    specs = []
    for obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            specs.append((f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["spec"]))
        elif obj["kind"] == "CronJob":
            template = spec["jobTemplate"]["spec"]["template"]["spec"]
            specs.append((f"CronJob/{obj['metadata']['name']}", template))
    return specs


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def worker(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The worker StatefulSet and its container."""
    sts = one(objects, "StatefulSet", "memberstream-worker")
    (container,) = [
        c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "worker"
    ]
    return sts, container


def env_of(container: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The container's environment: literal values as str, references as tuples
    ("secret", name, key) / ("configmap", name, key)."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            cm = one(objects, "ConfigMap", source["configMapRef"]["name"])
            env.update({k: str(v) for k, v in cm.get("data", {}).items()})
        elif "secretRef" in source:
            pytest.fail("envFrom secretRef: name each secret variable with a secretKeyRef")
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = ("secret", ref["name"], ref["key"])
        elif "configMapKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = ("configmap", ref["name"], ref["key"])
    return env


def kafka_topics(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["spec"]["topicName"]: t["spec"] for t in of_kind(objects, "KafkaTopic")}


def mount_for(container: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The volume mount whose directory holds ``path`` (the deepest one)."""
    best = None
    for mount in container.get("volumeMounts", []):
        root = mount["mountPath"].rstrip("/")
        if (path == root or path.startswith(root + "/")) and (
            best is None or len(root) > len(best["mountPath"])
        ):
            best = mount
    return best


_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_FACTORS.update({"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40})


def quantity(value: str | int) -> float:
    m = _QUANTITY.match(str(value))
    assert m, f"not a quantity: {value!r}"
    return float(m.group(1)) * _FACTORS[m.group(2)]


# --- rendering and schemas ---------------------------------------------------------------


def test_the_kustomizations_render(renders, monitoring) -> None:
    base = {(o["kind"], o["metadata"]["name"]) for o in renders["base"]}
    for expected in [
        ("Kafka", "memberstream"),
        ("KafkaUser", "memberstream-app"),
        ("StatefulSet", "memberstream-worker"),
        ("Service", "memberstream-worker"),
        ("ScaledObject", "memberstream-worker"),
        ("Deployment", "memberstream-collector"),
        ("CronJob", "memberstream-learn"),
        ("PersistentVolumeClaim", "memberstream-learning"),
        ("PodMonitor", "memberstream-worker"),
        ("ConfigMap", "memberstream-config"),
    ]:
        assert expected in base
    # the overlay changes objects, it adds or drops none
    assert {(o["kind"], o["metadata"]["name"]) for o in renders["gpu"]} == base
    assert {o["kind"] for o in monitoring} == {"PrometheusRule", "ConfigMap"}
    for obj in [*renders["base"], *monitoring]:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "memberstream", obj["metadata"]["name"]


def test_core_objects_are_valid_kubernetes_objects(objects, monitoring) -> None:
    checked = 0
    for obj in [*objects, *monitoring]:
        if obj["apiVersion"] not in CORE_GROUPS:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(str(p) for p in exc.path)
                pytest.fail(
                    f"{obj['kind']}/{obj['metadata']['name']} ({version}): {path}: {exc.message}"
                )
        checked += 1
    assert checked >= 10


def test_custom_resources_match_the_committed_schemas(objects, monitoring) -> None:
    registry = schema_registry(SCHEMAS)
    for obj in [*objects, *monitoring]:
        key = (obj["apiVersion"], obj["kind"])
        if obj["apiVersion"] in CORE_GROUPS:
            continue
        assert key in CRD_SCHEMAS, (
            f"{key}: no schema validates this kind (add one to deploy/schemas)"
        )
        check = validator(registry, f"urn:memberstream:deploy:{key[0]}/{key[1]}")
        errors = sorted(check.iter_errors(obj), key=lambda e: list(e.absolute_path))
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"


def test_the_schemas_reject_what_they_should(renders) -> None:
    """The committed schemas are not vacuous: typical mistakes fail them."""
    registry = schema_registry(SCHEMAS)
    topic = copy.deepcopy(one(renders["base"], "KafkaTopic", "events-clicks"))
    topic["spec"]["partition"] = topic["spec"].pop("partitions")  # a typo
    assert list(
        validator(
            registry, "urn:memberstream:deploy:kafka.strimzi.io/v1beta2/KafkaTopic"
        ).iter_errors(topic)
    )
    scaled = copy.deepcopy(one(renders["base"], "ScaledObject"))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 30000  # KEDA takes strings
    assert list(
        validator(registry, "urn:memberstream:deploy:keda.sh/v1alpha1/ScaledObject").iter_errors(
            scaled
        )
    )


# --- topics and partitions ---------------------------------------------------------------


def test_every_topic_has_a_kafkatopic_with_its_cleanup_policy(objects) -> None:
    names = TopicNames()
    topics = kafka_topics(objects)
    app_id = Settings.model_fields["app_id"].default
    changelogs = {f"{app_id}-{table}-changelog" for table in TABLES}
    assert set(topics) == set(names.all()) | changelogs, (
        "a topic without a manifest, or a stray one"
    )
    for name, spec in topics.items():
        config = spec["config"]
        compacted = name in names.compacted() or name in changelogs
        assert config["cleanup.policy"] == ("compact" if compacted else "delete"), name
        assert spec["replicas"] == 3, name
        assert config["min.insync.replicas"] == 2, name
        if compacted:
            assert "retention.ms" not in config, f"{name}: compacted, keeps the latest per key"
        else:
            assert "retention.ms" in config, f"{name}: give its retention explicitly"
    assert topics[names.feedback]["config"]["retention.ms"] == -1  # the learning loop's labels


def test_partitions_agree_between_topics_worker_and_autoscaler(objects) -> None:
    _sts, container = worker(objects)
    env = env_of(container, objects)
    partitions = int(env["MEMBERSTREAM_PARTITIONS"])
    assert {spec["partitions"] for spec in kafka_topics(objects).values()} == {partitions}

    scaled = one(objects, "ScaledObject", "memberstream-worker")["spec"]
    inputs = [kafka_topics(objects)[t]["partitions"] for t in TopicNames().inputs()]
    # more workers than input partitions would sit idle
    assert scaled["maxReplicaCount"] <= min(inputs)
    assert scaled["maxReplicaCount"] == partitions
    assert scaled["minReplicaCount"] == 1
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == env["MEMBERSTREAM_APP_ID"] == "memberstream"
    assert int(trigger["metadata"]["lagThreshold"]) > 0


def test_the_autoscaler_targets_the_worker_and_reaches_the_cluster(objects) -> None:
    sts, container = worker(objects)
    spec = one(objects, "ScaledObject", "memberstream-worker")["spec"]
    target = spec["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "StatefulSet",
        sts["metadata"]["name"],
    )
    # the HPA owns the count: a replicas field would reset it on every apply
    assert "replicas" not in sts["spec"]

    kafka = one(objects, "Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    host = f"{kafka['metadata']['name']}-kafka-bootstrap"
    namespace = sts["metadata"]["namespace"]
    (trigger,) = spec["triggers"]
    assert trigger["metadata"]["bootstrapServers"] == f"{host}.{namespace}.svc:{listener['port']}"
    env = env_of(container, objects)
    assert env["MEMBERSTREAM_KAFKA_BOOTSTRAP_SERVERS"] == f"{host}:{listener['port']}"
    assert listener["tls"] and trigger["metadata"]["tls"] == "enable"
    assert listener["authentication"]["type"] == "scram-sha-512"
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert env["MEMBERSTREAM_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"

    auth = one(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]
    for ref in auth.get("env", []):
        assert ref["containerName"] == container["name"]
        assert ref["name"] in env, f"KEDA reads {ref['name']}, which the worker does not have"


def test_the_kafka_cluster_runs_kraft_with_replicated_topics(objects) -> None:
    kafka = one(objects, "Kafka")
    name = kafka["metadata"]["name"]
    assert kafka["spec"]["kafka"]["version"].startswith("3.9.")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["auto.create.topics.enable"] is False
    pools = of_kind(objects, "KafkaNodePool")
    for role in ("controller", "broker"):
        assert sum(p["spec"]["replicas"] for p in pools if role in p["spec"]["roles"]) >= 3
    for obj in [*pools, *of_kind(objects, "KafkaTopic"), *of_kind(objects, "KafkaUser")]:
        assert obj["metadata"]["labels"]["strimzi.io/cluster"] == name


# --- settings and secrets ----------------------------------------------------------------


def test_settings_variables_exist_and_load(objects, monkeypatch, tmp_path) -> None:
    valid = set(setting_env_names())
    for cm in of_kind(objects, "ConfigMap"):
        for key in cm.get("data", {}):
            if key.startswith("MEMBERSTREAM_"):
                assert key in valid, f"ConfigMap {cm['metadata']['name']}: {key} is no setting"
    ca = tmp_path / "ca.crt"
    ca.write_text("test CA\n")
    topics = kafka_topics(objects)
    for owner, pod in pod_specs(objects):
        for container in containers(pod):
            env = env_of(container, objects)
            check_env({k: "" for k in env})  # raises on a name that is no setting
            # What the process would see, with the mounted files and secrets stubbed.
            values = {k: (v if isinstance(v, str) else "test-only") for k, v in env.items()}
            values["MEMBERSTREAM_KAFKA__SSL_CAFILE"] = str(ca)
            for key in list(os.environ):
                if key.startswith("MEMBERSTREAM_") or key == "KAFKA_BOOTSTRAP_SERVERS":
                    monkeypatch.delenv(key)
            for key, value in values.items():
                monkeypatch.setenv(key, value)
            settings = Settings()
            assert settings.partitions == topics[settings.topics.clicks]["partitions"], owner
            assert settings.replication_factor == 3, owner
            assert settings.kafka.security_protocol == "SASL_SSL", owner
            assert settings.store == "rocksdb://", owner
            assert settings.topics == TopicNames(), (
                f"{owner}: topic names differ from the manifests"
            )


def test_no_secret_value_is_written_down(objects) -> None:
    for obj in objects:
        if obj["kind"] == "Secret":
            assert not obj.get("data") and not obj.get("stringData"), obj["metadata"]["name"]
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|MEMBER_KEY$|_KEY$", re.IGNORECASE)
    for cm in of_kind(objects, "ConfigMap"):
        for key in cm.get("data", {}):
            assert not secretish.search(key), f"{key} belongs in a Secret"
    for owner, pod in pod_specs(objects):
        for container in containers(pod):
            for var in container.get("env", []):
                if secretish.search(var["name"]):
                    assert "secretKeyRef" in var.get("valueFrom", {}), f"{owner}: {var['name']}"


def referenced_secrets(objects: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for _owner, pod in pod_specs(objects):
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
        for container in containers(pod):
            for var in container.get("env", []):
                if "secretKeyRef" in var.get("valueFrom", {}):
                    names.add(var["valueFrom"]["secretKeyRef"]["name"])
    for auth in of_kind(objects, "TriggerAuthentication"):
        names |= {ref["name"] for ref in auth["spec"].get("secretTargetRef", [])}
    return names


def test_every_referenced_secret_is_generated_or_documented(objects) -> None:
    kafka = one(objects, "Kafka")["metadata"]["name"]
    generated = {u["metadata"]["name"] for u in of_kind(objects, "KafkaUser")}
    generated.add(f"{kafka}-cluster-ca-cert")  # Strimzi's cluster CA
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Secrets\n", 1)[1].split("\n## ", 1)[0]
    for name in referenced_secrets(objects) - generated:
        assert f"`{name}`" in section, f"Secret {name}: neither generated nor in README's Secrets"


# --- workloads ---------------------------------------------------------------------------


def test_every_container_is_bounded_and_runs_as_non_root(objects) -> None:
    specs = pod_specs(objects)
    assert len(specs) == 3  # worker, collector, learning job
    for owner, pod in specs:
        pod_security = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False, owner
        for container in containers(pod):
            where = f"{owner}/{container['name']}"
            resources = container.get("resources", {})
            for part in ("cpu", "memory"):
                request = resources.get("requests", {}).get(part)
                limit = resources.get("limits", {}).get(part)
                assert request is not None and limit is not None, (
                    f"{where}: {part} request and limit"
                )
                assert quantity(request) <= quantity(limit), f"{where}: {part} request above limit"
            security = {**pod_security, **container.get("securityContext", {})}
            assert security.get("runAsNonRoot") is True, where
            assert security.get("runAsUser", 0) == 10001, where
            assert pod_security.get("fsGroup") == 10001, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("privileged", False) is False, where


def test_read_only_containers_can_write_their_state_and_temp(objects) -> None:
    for owner, pod in pod_specs(objects):
        for container in containers(pod):
            env = env_of(container, objects)
            for path in (env["MEMBERSTREAM_DATA_DIR"], "/tmp"):
                mount = mount_for(container, path)
                assert mount is not None and not mount.get("readOnly"), f"{owner}: {path} writable"


def test_worker_state_is_a_volume_per_pod_and_the_registry_is_shared(objects) -> None:
    sts, container = worker(objects)
    env = env_of(container, objects)
    state = mount_for(container, env["MEMBERSTREAM_DATA_DIR"])
    templates = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    assert state["name"] in templates, "RocksDB state on a PVC per pod"
    assert templates[state["name"]]["spec"]["accessModes"] == ["ReadWriteOnce"]

    claim = one(objects, "PersistentVolumeClaim", "memberstream-learning")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]

    def learning_mount(pod: dict[str, Any], c: dict[str, Any], path: str) -> dict[str, Any]:
        mount = mount_for(c, path)
        assert mount is not None, f"{c['name']}: {path} not on a volume"
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        return mount

    registry = env["MEMBERSTREAM_LEARNING__REGISTRY_DIR"]
    assert learning_mount(sts["spec"]["template"]["spec"], container, registry)["readOnly"] is True
    for owner, pod in pod_specs(objects):
        if owner.startswith("StatefulSet/"):
            continue
        (c,) = pod["containers"]
        c_env = env_of(c, objects)
        assert c_env["MEMBERSTREAM_LEARNING__REGISTRY_DIR"] == registry
        for path in (c_env["MEMBERSTREAM_LEARNING__SAMPLES_DIR"], registry):
            assert not learning_mount(pod, c, path).get("readOnly"), f"{owner} writes {path}"


def test_probes_and_the_metrics_port(objects) -> None:
    sts, container = worker(objects)
    probed = 0
    for owner, pod in pod_specs(objects):
        for c in containers(pod):
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            probes = [p for p in ("startupProbe", "livenessProbe", "readinessProbe") if p in c]
            if not probes:
                continue
            where = f"{owner}/{c['name']}"
            # the port the process serves on (metrics.port) is the one the probes use
            env = env_of(c, objects)
            assert ports["metrics"] == int(env["MEMBERSTREAM_METRICS__PORT"]) == METRICS_PORT
            for probe in probes:
                get = c[probe]["httpGet"]
                path = "/readyz" if probe == "readinessProbe" else "/healthz"
                assert (get["path"], get["port"]) == (path, "metrics"), f"{where} {probe}"
            probed += 1
    assert probed == 2  # the worker and the collector; the learning job is a batch run
    assert {"startupProbe", "livenessProbe", "readinessProbe"} <= container.keys()

    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    service = one(objects, "Service", sts["spec"]["serviceName"])["spec"]
    assert service["clusterIP"] == "None"  # headless
    assert service["selector"].items() <= pod_labels.items()
    assert [(p["name"], p["targetPort"]) for p in service["ports"]] == [("metrics", "metrics")]

    monitor = one(objects, "PodMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    # workers only: a collector's memberstream_ready would hide MemberstreamWorkersAbsent
    collector = one(objects, "Deployment", "memberstream-collector")["spec"]["template"]
    assert not monitor["selector"]["matchLabels"].items() <= collector["metadata"]["labels"].items()

    budget = one(objects, "PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()


def test_commands_schedules_and_shutdown(objects) -> None:
    sts, container = worker(objects)
    assert (container["command"], container["args"]) == (["memberstream"], ["worker"])
    shutdown = float(env_of(container, objects)["MEMBERSTREAM_SHUTDOWN_TIMEOUT_S"])
    # the worker exits on its own (committing its completed batches) before the kill
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > shutdown

    collector = one(objects, "Deployment", "memberstream-collector")["spec"]
    assert collector["replicas"] == 1
    (c,) = collector["template"]["spec"]["containers"]
    assert (c["command"], c["args"]) == (["memberstream"], ["collect"])

    learn = one(objects, "CronJob", "memberstream-learn")["spec"]
    minute, hour, *days = learn["schedule"].split()
    assert days == ["*", "*", "*"] and minute.isdigit() and hour.isdigit(), "once a day"
    assert learn["concurrencyPolicy"] == "Forbid"
    (c,) = learn["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert (c["command"], c["args"]) == (["memberstream"], ["learn"])


def test_images_and_the_gpu_overlay(renders) -> None:
    for name, objects in renders.items():
        for owner, pod in pod_specs(objects):
            for c in containers(pod):
                gpu_worker = name == "gpu" and c["name"] == "worker"
                assert c["image"] == (CUDA_IMAGE if gpu_worker else IMAGE), f"{name} {owner}"
                limits = c["resources"]["limits"]
                assert ("nvidia.com/gpu" in limits) == gpu_worker, f"{name} {owner}"

    sts, container = worker(renders["gpu"])
    pod = sts["spec"]["template"]["spec"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    env = env_of(container, renders["gpu"])
    assert env["MEMBERSTREAM_INFERENCE__ENCODER__PROVIDERS"] == "cuda"
    # the patch adds to the worker's environment and resources, it does not replace them
    assert env["MEMBERSTREAM_KAFKA__SASL_PASSWORD"] == ("secret", "memberstream-app", "password")
    assert (
        container["resources"]["requests"]["cpu"]
        == worker(renders["base"])[1]["resources"]["requests"]["cpu"]
    )


# --- alerts and dashboard ----------------------------------------------------------------


class QueryError(AssertionError):
    """A query that does not parse or selects what the worker does not export."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise QueryError(message)


def check_query(text: str, where: str) -> promql.Node:
    """Parse ``text`` and check it selects only exported series, with their labels."""
    for macro in GRAFANA_MACROS:
        text = text.replace(macro, "5m")
    try:
        tree = promql.parse(text)
    except promql.PromQLError as exc:
        raise QueryError(f"{where}: {exc}: {text}") from None
    names = series_names()
    used_labels: set[str] = set(TARGET_LABELS)
    nodes = list(promql.walk(tree))
    for node in nodes:
        if isinstance(node, promql.Selector):
            _require(node.name in names, f"{where}: {node.name} is not an exported metric")
            metric, _kind = names[node.name]
            known = METRICS[metric][1] | TARGET_LABELS
            if node.name.endswith("_bucket"):
                known |= {"le"}
            for label, _op, _value in node.matchers:
                _require(label in known, f"{where}: {node.name} has no label {label}")
            used_labels |= known
    for node in nodes:
        if isinstance(node, promql.Aggregate):
            labels = node.grouping
        elif isinstance(node, promql.Binary):
            labels = node.matching + node.group_labels
        else:
            labels = []
        for label in labels:
            _require(label in used_labels, f"{where}: no series here has the label {label}")
        if isinstance(node, promql.Call) and node.func in COUNTER_FUNCTIONS | GAUGE_FUNCTIONS:
            arg = node.args[0]
            if isinstance(arg, promql.Selector):
                kind = names[arg.name][1]
                want = "counter" if node.func in COUNTER_FUNCTIONS else "gauge"
                _require(kind == want, f"{where}: {node.func}() of the {kind} {arg.name}")
        if isinstance(node, promql.Call) and node.func == "histogram_quantile":
            inner = node.args[1]
            if isinstance(inner, promql.Aggregate):
                keeps_le = not inner.without and "le" in inner.grouping
                _require(keeps_le, f"{where}: histogram_quantile needs the le label kept")
    return tree


def rules_file() -> dict[str, Any]:
    return yaml.safe_load((MONITORING / "alerts.rules.yml").read_text(encoding="utf-8"))


def test_alert_rules_are_complete_and_equal_to_the_prometheusrule(monitoring) -> None:
    rules = rules_file()
    registry = schema_registry(SCHEMAS)
    errors = list(
        validator(registry, "urn:memberstream:deploy:prometheus-rules").iter_errors(rules)
    )
    assert not errors, errors[0].message  # summary, description and a one-line runbook
    assert one(monitoring, "PrometheusRule")["spec"] == rules
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "MemberstreamConsumerLagGrowing",
        "MemberstreamDeadLettersHigh",
        "MemberstreamNoProgress",
        "MemberstreamModelLatencyHigh",
        "MemberstreamWorkerNotReady",
        "MemberstreamWorkersAbsent",
    }
    assert alerts["MemberstreamConsumerLagGrowing"]["for"] == "10m"
    assert alerts["MemberstreamWorkerNotReady"]["for"] == "5m"
    for name, rule in alerts.items():
        assert rule["annotations"]["runbook"].strip(), name


def test_alert_expressions_parse_and_use_exported_metrics() -> None:
    for group in rules_file()["groups"]:
        for rule in group["rules"]:
            tree = check_query(rule["expr"], rule["alert"])
            assert tree.type == promql.VECTOR, f"{rule['alert']}: an alert needs a vector"


def test_dashboard_loads_and_queries_exported_metrics() -> None:
    raw = (MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8")
    # `kubectl apply` keeps the whole object in an annotation limited to 256 KiB
    assert len(raw.encode()) < 200_000
    dashboard = json.loads(raw)
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids unique"
    selected: set[str] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            tree = check_query(target["expr"], panel["title"])
            selected |= {n.name for n in promql.walk(tree) if isinstance(n, promql.Selector)}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]\w*)\)", variable["query"]["query"])
        assert m, variable["name"]
        tree = check_query(m.group(1), f"variable {variable['name']}")
        (selector,) = [n for n in promql.walk(tree) if isinstance(n, promql.Selector)]
        assert m.group(2) in METRICS[selector.name][1] | TARGET_LABELS
    exported = {series_names()[s][0] for s in selected}
    assert exported == set(METRICS), f"metrics not on the dashboard: {set(METRICS) - exported}"


def test_the_dashboard_configmap_carries_the_dashboard(monitoring) -> None:
    cm = one(monitoring, "ConfigMap", "memberstream-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["grafana-dashboard.json"])["uid"] == "memberstream-worker"


def test_the_metric_list_is_what_the_worker_registers() -> None:
    """METRICS above names what memberstream/streams/metrics.py registers (counters are
    exposed with a _total suffix): a renamed metric fails here, not silently on a panel."""
    source = ROOT / "memberstream" / "streams" / "metrics.py"
    if not source.is_file():
        pytest.skip("memberstream/streams/metrics.py is not there")
    declared = set(re.findall(r'"(memberstream_[a-z0-9_]+)"', source.read_text(encoding="utf-8")))
    expected = {
        name.removesuffix("_total") if kind == "counter" else name
        for name, (kind, _labels) in METRICS.items()
        if name.startswith("memberstream_")
    }
    assert declared == expected


@pytest.mark.parametrize(
    "bad",
    [
        "rate(memberstream_ready[5m])",  # rate of a gauge
        "deriv(memberstream_events_in_total[5m])",  # deriv of a counter
        "sum(rate(memberstream_events_total[5m]))",  # no such metric
        "sum by (reason) (rate(memberstream_dead_letters_total[5m]))",  # no such label
        "histogram_quantile(0.99, sum by (agent) (rate(memberstream_batch_seconds_bucket[5m])))",
        "sum(rate(memberstream_events_in_total[5m])",  # unbalanced
        "rate(memberstream_events_in_total)",  # not a range
    ],
)
def test_query_checks_catch_mistakes(bad: str) -> None:
    with pytest.raises(QueryError):
        check_query(bad, "case")


# --- yamllint and the renderer itself ----------------------------------------------------


def test_yamllint_is_clean() -> None:
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint"))
    files = sorted(p for ext in ("*.yaml", "*.yml") for p in DEPLOY.rglob(ext))
    assert len(files) >= 15
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for problem in linter.run(text, config, str(path)):
            problems.append(
                f"{path.relative_to(ROOT)}:{problem.line}:{problem.column} {problem.message}"
            )
    assert not problems, "\n".join(problems)


def test_strategic_merge_follows_kubernetes_merge_keys() -> None:
    base = {
        "containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
            {"name": "b", "image": "y"},
        ],
        "tolerations": [{"key": "old"}],
        "nodeSelector": {"zone": "z1"},
    }
    patch = {
        "containers": [{"name": "a", "image": "x2", "env": [{"name": "B", "value": "2"}]}],
        "tolerations": [{"key": "new"}],
        "nodeSelector": {"gpu": "true"},
    }
    merged = strategic_merge(copy.deepcopy(base), patch)
    assert [c["image"] for c in merged["containers"]] == ["x2", "y"]
    assert merged["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    assert merged["tolerations"] == [{"key": "new"}]  # no merge key: replaced
    assert merged["nodeSelector"] == {"zone": "z1", "gpu": "true"}


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path) -> None:
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources: [cm.yaml]\nimages:\n  - name: x\n    newTag: y\n"
    )
    with pytest.raises(KustomizeError, match="images"):
        render(tmp_path, SCHEMAS)
