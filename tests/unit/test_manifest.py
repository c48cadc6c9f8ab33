"""The service manifest (``shared.manifest``) is consistent, and every other list of services agrees with it.

Consistent: unique names, ports, databases, consumer groups; each service has a ``main.py`` with a
``create_app`` factory and a migrations directory. Agreeing: the service settings classes, the local
stack's defaults, the event envelope's ``source`` values, the audit's producers and the Docker Compose
files (YAML and SQL cannot import the manifest, so this test is what keeps them in step).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from deploy.local.settings import StackSettings
from shared import manifest
from shared.events.models import ServiceName
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECS = manifest.SERVICES
IDS = [spec.name for spec in SPECS]


@pytest.fixture
def no_renja_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built in the test see only their defaults, not the stack this session runs against."""
    for key in [k for k in os.environ if k.startswith("RENJA_")]:
        monkeypatch.delenv(key)


def _main_module(name: str) -> ast.Module:
    return ast.parse((REPO_ROOT / "services" / name / "main.py").read_text())


def test_names_ports_databases_groups_and_dead_letter_topics_are_each_unique() -> None:
    for values in (
        [spec.name for spec in SPECS],
        [spec.port for spec in SPECS],
        [spec.database for spec in SPECS],
        [spec.consumer_group for spec in SPECS],
        [spec.dlq_topic for spec in SPECS],
    ):
        assert len(set(values)) == len(values) == 6, values


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_service_has_a_create_app_factory_at_its_app_path(spec: manifest.ServiceSpec) -> None:
    module_path, _, factory = spec.app.partition(":")
    source = REPO_ROOT / Path(*module_path.split(".")).with_suffix(".py")

    functions = {node.name for node in _main_module(spec.name).body if isinstance(node, ast.FunctionDef)}

    assert source == REPO_ROOT / "services" / spec.name / "main.py"
    assert factory == "create_app"
    assert factory in functions


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_every_service_has_migrations(spec: manifest.ServiceSpec) -> None:
    migrations = REPO_ROOT / "services" / spec.name / "migrations"
    assert sorted(migrations.glob("0*.py")), f"{migrations} holds no migration"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_consumes_says_whether_main_turns_the_generic_consumer_off(spec: manifest.ServiceSpec) -> None:
    turned_off = any(
        isinstance(node, ast.keyword)
        and node.arg == "consume"
        and isinstance(node.value, ast.Constant)
        and node.value.value is False
        for node in ast.walk(_main_module(spec.name))
    )
    assert spec.consumes is not turned_off


def _settings_class(name: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{name}.settings")
    [cls] = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, ServiceSettings) and obj.__module__ == module.__name__
    ]
    return cls


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_each_service_settings_default_to_its_manifest_database_and_group(
    spec: manifest.ServiceSpec, no_renja_env: None
) -> None:
    settings = _settings_class(spec.name)(environment="test")

    assert settings.service == spec.name
    assert settings.database == spec.database
    assert settings.group_id == spec.consumer_group
    assert settings.dlq_topic == spec.dlq_topic
    assert settings.event_topic == manifest.EVENT_TOPIC


def test_a_service_outside_the_manifest_owns_a_database_and_group_of_its_own_name(no_renja_env: None) -> None:
    settings = ServiceSettings(service="tests", environment="test")

    assert (settings.database, settings.group_id) == ("tests", "tests")
    assert settings.dlq_topic == "renja.events.dlq.tests"


def test_the_local_stack_defaults_are_the_manifest(no_renja_env: None) -> None:
    stack = StackSettings()

    assert stack.service_ports == {spec.name: spec.port for spec in SPECS}
    assert list(stack.service_ports) == list(manifest.SERVICE_NAMES)  # start order
    assert stack.databases == tuple(spec.database for spec in SPECS)
    assert stack.consumer_groups == tuple(spec.consumer_group for spec in SPECS)
    assert stack.dlq_topics == tuple(spec.dlq_topic for spec in SPECS)
    assert stack.event_topic == manifest.EVENT_TOPIC


def test_event_sources_and_the_audits_producers_are_the_manifests() -> None:
    from services.audit.reconcile import PRODUCERS as AUDIT_PRODUCERS

    assert set(get_args(ServiceName)) == set(manifest.SERVICE_NAMES)
    assert (
        tuple(AUDIT_PRODUCERS) == manifest.PRODUCERS == ("directive", "documents", "meetings", "approvals", "notifier")
    )


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "deploy" / "compose.yaml").read_text())
    return document


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_compose_runs_each_service_with_its_app_name_and_port(spec: manifest.ServiceSpec) -> None:
    service = _compose()["services"][spec.name]

    assert service["environment"]["RENJA_SERVICE"] == spec.name
    assert spec.app in service["command"]
    assert service["ports"] == [f"127.0.0.1:{spec.port}:8000"]


def test_compose_creates_one_dead_letter_topic_per_manifest_group_and_one_database_per_service() -> None:
    script = _compose()["services"]["topics"]["command"][0]
    [groups] = re.findall(r"for g in ([a-z_ ]+); do", script)
    initdb = (REPO_ROOT / "deploy" / "compose-initdb.sql").read_text()

    assert groups.split() == [spec.consumer_group for spec in SPECS]
    assert "renja.events.dlq.$$g" in script
    assert re.findall(r"CREATE DATABASE (\w+);", initdb) == [spec.database for spec in SPECS]
