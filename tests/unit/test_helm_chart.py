"""The Helm chart (issue 15 item 3), validated offline: ``helm lint``, ``helm template``, every core
Kubernetes resource against the Kubernetes OpenAPI schemas (``kubernetes-validate``, strict: unknown fields
are errors) and the Strimzi/CloudNativePG resources against the invariants the deployment needs (their
official CRD schemas are not in a registry package this project can install: see docs/operations.md).

helm comes from ``make helm-check`` (``go install`` into ``.cache/bin``, which takes long on a 2-core
machine, so neither ``make setup`` nor CI builds it); without it the helm tests are skipped, and under
``make helm-check`` (``RENJA_REQUIRE_HELM=1``) they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.manifest import BY_NAME, SERVICE_NAMES

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "renja"
HELM = REPO / ".cache" / "bin" / "helm"
K8S_VERSION = "1.33.0"
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1"}


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        if os.environ.get("RENJA_REQUIRE_HELM"):
            pytest.fail(f"{HELM} is missing: `make helm-check` installs it")
        pytest.skip(f"{HELM} is missing: run `make helm-check`")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120, check=False)


def _render(chart: Path = CHART, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "renja", str(chart), "--namespace", "renja"]
    for s in sets:
        args += ["--set", s]
    done = _helm(*args)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _core_errors(documents: list[dict[str, Any]]) -> list[str]:
    errors = []
    for d in documents:
        if d["apiVersion"] not in CORE_GROUPS:
            continue
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: {exc.message}")
    return errors


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return _render()


def _of(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def test_helm_lint_passes() -> None:
    done = _helm("lint", str(CHART), "--strict")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_core_resource_is_valid_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in rendered if d["apiVersion"] in CORE_GROUPS}
    assert kinds == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "Job", "NetworkPolicy"}
    assert _core_errors(rendered) == []


def test_a_broken_manifest_is_caught(tmp_path: Path) -> None:
    chart = tmp_path / "renja"
    shutil.copytree(CHART, chart)
    services = chart / "templates" / "services.yaml"
    services.write_text(services.read_text().replace("containerPort: 8000", "containerPortt: 8000"))
    errors = _core_errors(_render(chart))
    assert len(errors) == len(SERVICE_NAMES) and all("containerPortt" in e or "containerPort" in e for e in errors)
    bad_value = _core_errors(_render(CHART, "services.directive.replicas=two"))
    assert bad_value and bad_value[0].startswith("Deployment/renja-directive")


def test_a_deployment_per_service_hardened_with_probes_and_a_pdb(rendered: list[dict[str, Any]]) -> None:
    deployments, pdbs = _of(rendered, "Deployment"), _of(rendered, "PodDisruptionBudget")
    assert set(deployments) == set(pdbs) == {f"renja-{n}" for n in SERVICE_NAMES}
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"] and security["runAsUser"] == 10001
        assert security["capabilities"] == {"drop": ["ALL"]} and security["allowPrivilegeEscalation"] is False
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp"}
        assert all(m.get("readOnly") for m in container["volumeMounts"] if m["mountPath"] != "/tmp"), name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert BY_NAME[name.removeprefix("renja-")].app in container["command"]


def test_migrations_run_in_one_job_per_database_as_its_owner(rendered: list[dict[str, Any]]) -> None:
    jobs = _of(rendered, "Job")
    assert len(jobs) == len(SERVICE_NAMES)
    for job in jobs.values():
        (container,) = job["spec"]["template"]["spec"]["containers"]
        service = container["command"][-1]
        env = {e["name"]: e for e in container["env"]}
        assert container["command"] == ["renja", "migrate", "--service", service]
        assert env["RENJA_POSTGRES_USER"]["value"] == service


def test_strimzi_kafka_kraft_three_brokers_rf3_min_isr_2(rendered: list[dict[str, Any]]) -> None:
    (kafka,) = _of(rendered, "Kafka").values()
    (pool,) = _of(rendered, "KafkaNodePool").values()
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert pool["spec"]["replicas"] == 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["unclean.leader.election.enable"] is False
    auth = {listener["name"]: listener["authentication"]["type"] for listener in kafka["spec"]["kafka"]["listeners"]}
    assert auth == {"scram": "scram-sha-512", "mtls": "tls"}


def test_topics_the_log_forever_and_one_dlq_per_group(rendered: list[dict[str, Any]]) -> None:
    topics = _of(rendered, "KafkaTopic")
    assert set(topics) == {"renja.events", *(BY_NAME[n].dlq_topic for n in SERVICE_NAMES)}
    log = topics["renja.events"]["spec"]
    assert log["partitions"] == 6 and log["replicas"] == 3
    assert log["config"]["retention.ms"] == -1 and log["config"]["retention.bytes"] == -1


def test_kafka_users_scram_with_least_acls(rendered: list[dict[str, Any]]) -> None:
    users = _of(rendered, "KafkaUser")
    assert set(users) == {f"renja-{n}" for n in SERVICE_NAMES}
    for name, user in users.items():
        service = BY_NAME[name.removeprefix("renja-")]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        acls = {
            (a["resource"]["type"], a["resource"]["name"]): a["operations"]
            for a in user["spec"]["authorization"]["acls"]
        }
        assert ("Write" in acls[("topic", "renja.events")]) == service.publishes, name
        assert set(acls) == {("topic", "renja.events"), ("topic", service.dlq_topic), ("group", service.consumer_group)}


def test_cnpg_cluster_six_databases_with_owners_and_backups(rendered: list[dict[str, Any]]) -> None:
    (cluster,) = _of(rendered, "Cluster").values()
    databases = _of(rendered, "Database").values()
    assert {(d["spec"]["name"], d["spec"]["owner"]) for d in databases} == {(n, n) for n in SERVICE_NAMES}
    assert {r["name"] for r in cluster["spec"]["managed"]["roles"]} == set(SERVICE_NAMES)
    assert cluster["spec"]["instances"] == 3
    assert cluster["spec"]["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    assert _of(rendered, "ScheduledBackup")
