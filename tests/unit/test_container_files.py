"""The container files (issue 15 item 2), checked offline (no Docker engine on these machines): the compose
file is valid against the Compose Specification's JSON Schema (vendored by ``check-jsonschema``) and keeps
the deployment's invariants; the Dockerfile and ``.dockerignore`` keep theirs."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import check_jsonschema  # type: ignore[import-untyped]
import jsonschema
import pytest
import yaml

from shared.manifest import SERVICE_NAMES

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose.yaml"
COMPOSE_DEV = REPO / "deploy" / "compose.dev.yaml"
SCHEMA = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
RENJA_ROLES = (*SERVICE_NAMES, "migrate", "mail")


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_DEV], ids=["compose", "compose.dev"])
def test_compose_files_are_valid_against_the_compose_spec_schema(path: Path) -> None:
    assert _errors(_load(path)) == []


def test_the_schema_check_catches_a_broken_compose_file() -> None:
    broken = copy.deepcopy(_load(COMPOSE))
    broken["services"]["directive"]["ports"] = {"http": 8101}
    broken["services"]["audit"]["restart_policy"] = "always"
    errors = _errors(broken)
    assert any(e.startswith("services/directive/ports") for e in errors), errors
    assert any("restart_policy" in e for e in errors), errors


def test_one_image_is_built_once_and_every_renja_container_uses_it() -> None:
    services = _load(COMPOSE)["services"]
    built = [name for name, s in services.items() if "build" in s]
    assert built == ["migrate"]
    assert {services[r]["image"] for r in RENJA_ROLES} == {"${RENJA_IMAGE:-renja:local}"}


@pytest.mark.parametrize("role", RENJA_ROLES)
def test_every_renja_container_is_non_root_read_only_with_only_tmp_writable(role: str) -> None:
    service = _load(COMPOSE)["services"][role]
    assert service["user"] == "10001:10001"
    assert service["read_only"] is True
    assert [t.split(":")[0] for t in service["tmpfs"]] == ["/tmp"]
    assert service["cap_drop"] == ["ALL"]
    assert "volumes" not in service


def test_every_published_port_is_bound_to_loopback() -> None:
    for name, service in _load(COMPOSE)["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_kafka_and_postgres_keep_their_data_in_named_volumes() -> None:
    document = _load(COMPOSE)
    assert "kafka-data:/var/lib/kafka/data" in document["services"]["kafka"]["volumes"]
    assert document["services"]["kafka"]["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "postgres-data:/var/lib/postgresql/data" in document["services"]["postgres"]["volumes"]
    assert set(document["volumes"]) == {"kafka-data", "postgres-data"}


def test_healthchecks_per_role_and_migrations_run_once_before_the_services() -> None:
    services = _load(COMPOSE)["services"]
    for name in SERVICE_NAMES:
        assert "/healthz" in " ".join(services[name]["healthcheck"]["test"]), name
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["environment"]["RENJA_MIGRATE_ON_START"] == "false"
    assert "smtplib" in " ".join(services["mail"]["healthcheck"]["test"])
    assert "healthcheck" not in services["migrate"]
    assert services["migrate"]["command"] == ["renja", "migrate"]
    assert services["migrate"]["restart"] == "no"


def test_the_development_issuer_is_only_in_the_explicit_dev_files() -> None:
    services = _load(COMPOSE)["services"]
    for name in SERVICE_NAMES:
        assert services[name]["environment"]["RENJA_ENVIRONMENT"] == "production", name
    assert services["mail"]["profiles"] == ["dev"]
    dev = _load(COMPOSE_DEV)["services"]
    assert {dev[name]["environment"]["RENJA_ENVIRONMENT"] for name in SERVICE_NAMES} == {"development"}
    assert "renja-local-development-secret" not in COMPOSE.read_text() + COMPOSE_DEV.read_text()


def test_keys_come_from_mounted_secrets_in_production() -> None:
    services = _load(COMPOSE)["services"]
    assert services["approvals"]["environment"]["RENJA_SIGNING_KEY_FILE"].startswith("/run/secrets/")
    assert services["audit"]["environment"]["RENJA_AUDIT_KEY_FILE"].startswith("/run/secrets/")
    assert "renja_signing_key" in services["approvals"]["secrets"]
    assert "renja_audit_key" in services["audit"]["secrets"]


def test_the_dockerfile_runs_one_non_root_image_without_a_generic_healthcheck() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert not re.search(r"^HEALTHCHECK", text, re.M)
    assert "RENJA_ENVIRONMENT=production" in text
    assert not re.search(r"^COPY deploy ", text, re.M), "the whole deploy/ would copy the local Kafka jars"


def test_dockerignore_keeps_state_secrets_caches_and_jars_out_of_the_build_context() -> None:
    lines = [ln for ln in (REPO / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "**"  # deny by default, then allow what the image needs
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert not allowed & {".run", ".venv", ".cache", ".git", "tests", "tools", "deploy/local/kafka"}
    assert {"deploy/local/kafka/", "**/*.pem", "**/*.key"} <= set(lines)
