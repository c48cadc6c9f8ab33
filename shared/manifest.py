"""The service manifest: the one list of Renja's services and what the rest of the repository derives from it.

Owns, per service: its name, its default port in the local stack, its database, its consumer group and
dead-letter topic, its uvicorn app path, whether it runs the generic per-event consumer and whether it
publishes events of its own. The local stack (``deploy.local``: databases, topics, processes, ports), the
CLI, the service settings (``shared.settings``: default database and consumer group) and the tests read
it; ``tests/unit/test_manifest.py`` keeps it in step with ``services/``, ``deploy/compose.yaml`` and
``deploy/compose-initdb.sql`` (which, being plain YAML/SQL, cannot import it).

Invariants: names, ports, databases and consumer groups are each unique; ``SERVICES`` is in start order
(the order ``renja up`` starts them and ``renja status`` lists them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

EVENT_TOPIC = "renja.events"
"""The one event log every service publishes to and reads from (keyed by Renja id)."""

DLQ_TOPIC_PREFIX = "renja.events.dlq."
"""A consumer group's dead-letter topic is this prefix plus the group id."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service as the stack, the CLI and the settings see it.

    - ``port``: its default HTTP port on the local stack (``RENJA_SERVICE_PORTS`` overrides it);
    - ``database``: the PostgreSQL database it owns (no other service reads its tables);
    - ``consumer_group``: its Kafka consumer group id; its dead-letter topic is named after it, and the
      stack creates that topic even for a service that does not consume (the topic layout is uniform);
    - ``consumes``: whether it runs the generic per-event consumer (``build_service_app(consume=...)``;
      the audit folds the log with its own projection instead);
    - ``publishes``: whether it produces events of its own through its outbox relay (the audit only reads).
    """

    name: str
    port: int
    database: str
    consumer_group: str
    consumes: bool = True
    publishes: bool = True

    @property
    def module(self) -> str:
        """The service's package, ``services.<name>``."""
        return f"services.{self.name}"

    @property
    def app(self) -> str:
        """The uvicorn factory path, ``services.<name>.main:create_app`` (run with ``--factory``)."""
        return f"{self.module}.main:create_app"

    @property
    def dlq_topic(self) -> str:
        """Its dead-letter topic, ``renja.events.dlq.<consumer_group>``."""
        return dlq_topic(self.consumer_group)


def _spec(name: str, port: int, *, consumes: bool = True, publishes: bool = True) -> ServiceSpec:
    # Every service owns a database and a consumer group named after itself.
    return ServiceSpec(name, port, database=name, consumer_group=name, consumes=consumes, publishes=publishes)


SERVICES: tuple[ServiceSpec, ...] = (
    _spec("directive", 8101),
    _spec("documents", 8102),
    _spec("meetings", 8103),
    _spec("approvals", 8104),
    _spec("notifier", 8105),
    _spec("audit", 8106, consumes=False, publishes=False),
)
"""The six services of DESIGN.md, in start order."""

BY_NAME: Mapping[str, ServiceSpec] = MappingProxyType({spec.name: spec for spec in SERVICES})
"""``SERVICES`` keyed by name."""

SERVICE_NAMES: tuple[str, ...] = tuple(BY_NAME)
"""The service names in start order: ``("directive", "documents", ..., "audit")``."""

PRODUCERS: tuple[str, ...] = tuple(spec.name for spec in SERVICES if spec.publishes)
"""The services whose own event tables witness the log (``renja reconcile`` compares them with it)."""


def dlq_topic(group: str, prefix: str = DLQ_TOPIC_PREFIX) -> str:
    """Dead-letter topic of consumer group ``group``: ``renja.events.dlq.<group>`` by default."""
    return f"{prefix}{group}"


def default_ports() -> dict[str, int]:
    """``{name: port}`` of every service on the local stack (a fresh dict: callers may change it)."""
    return {spec.name: spec.port for spec in SERVICES}


def database_of(service: str) -> str:
    """The database ``service`` owns; for a name outside the manifest (a test's own service), the name itself."""
    spec = BY_NAME.get(service)
    return spec.database if spec is not None else service


def consumer_group_of(service: str) -> str:
    """The consumer group of ``service``; for a name outside the manifest, the name itself."""
    spec = BY_NAME.get(service)
    return spec.consumer_group if spec is not None else service


def app_of(service: str) -> str:
    """The uvicorn factory path of ``service``; for a name outside the manifest, the conventional one."""
    spec = BY_NAME.get(service)
    return spec.app if spec is not None else f"services.{service}.main:create_app"
