"""Settings of the no-Docker local stack: where things run, on which ports, with which topics.

Owns the single source of truth for addresses of the local stack (Postgres, Kafka, the SMTP sink and
the six services); which services there are, their default ports, databases and consumer groups come from
the service manifest (``shared.manifest``). The supervisor (``deploy.local.supervisor``), the services
it starts and the tests all build ``StackSettings()`` from the same environment (prefix ``RENJA_``), so
they agree on every address without passing values around. Every value here is for a single developer
machine or CI run: loopback only, trust authentication, replication factor 1.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import AwareDatetime, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import manifest

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The work tree this module lives in (``deploy/local/settings.py`` → two levels up)."""


class StackSettings(BaseSettings):
    """Addresses, paths and Kafka topic layout of the local stack.

    Every field can be overridden by an environment variable ``RENJA_<FIELD>`` (upper case); dict and
    tuple fields take JSON (``RENJA_SERVICE_PORTS='{"directive": 9101, ...}'``).

    Defaults:
    - run dir ``<repo>/.run``; logs in ``.run/logs/``, pid files in ``.run/``, mail in ``.run/mail/``;
    - Postgres 15 on ``127.0.0.1:15432``, user ``postgres`` with trust auth (loopback only),
      data dir ``.run/postgres``, unix socket dir ``.run/pgsock``;
    - Kafka KRaft combined node: broker ``127.0.0.1:19092``, controller ``127.0.0.1:19093``,
      heap ``-Xms256m -Xmx512m``;
    - the event log ``renja.events`` (6 partitions, infinite retention, RF 1) and one dead-letter topic
      ``renja.events.dlq.<group>`` per consumer group (1 partition, infinite retention);
    - SMTP sink on ``127.0.0.1:2525``;
    - services on their manifest ports, 8101..8106 (directive, documents, meetings, approvals, notifier,
      audit); the databases are the manifest's.
    """

    model_config = SettingsConfigDict(env_prefix="RENJA_", extra="ignore", frozen=True)

    repo_root: Path = REPO_ROOT
    run_dir: Path = REPO_ROOT / ".run"

    # PostgreSQL (Debian's server binaries, private data directory).
    pg_bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    postgres_host: str = "127.0.0.1"
    # Every listening port sits below Linux's ephemeral range (32768-60999): a client retrying a stopped
    # broker on a port inside it can be handed that very port as its own source port and connect to
    # itself, and the restarted server then cannot bind ("Address already in use").
    postgres_port: int = 15432
    postgres_user: str = "postgres"
    postgres_max_connections: int = 200
    databases: tuple[str, ...] = tuple(spec.database for spec in manifest.SERVICES)

    # Kafka (KRaft, one combined broker+controller node from the Maven jars).
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap_opts: str = "-Xms256m -Xmx512m"
    kafka_libs_dir: Path = REPO_ROOT / "deploy" / "local" / "kafka" / "target" / "kafka-libs"
    kafka_log4j_config: Path = REPO_ROOT / "deploy" / "local" / "kafka" / "log4j.properties"
    event_topic: str = manifest.EVENT_TOPIC
    event_topic_partitions: int = 6
    replication_factor: int = 1
    dlq_topic_prefix: str = manifest.DLQ_TOPIC_PREFIX

    # Local SMTP sink (component ``mail``): every received message becomes an .eml file.
    mail_host: str = "127.0.0.1"
    mail_port: int = 2525

    # Services (uvicorn processes, one per service module that exists).
    service_host: str = "127.0.0.1"
    service_ports: dict[str, int] = Field(default_factory=manifest.default_ports)

    # The simulated office clock (shared.clock) every service of the stack reads: ``renja up --clock
    # 2023-05-15T08:00+07:00 --speed 600`` sets all three (the epoch = the wall time of that ``up``), so every
    # process computes the same simulated time. Unset start = the real clock.
    clock_start: AwareDatetime | None = None
    clock_speed: float = Field(default=1.0, gt=0)
    clock_epoch: AwareDatetime | None = None

    # Bounded waits, in seconds, for a component to become healthy after start.
    postgres_start_timeout_s: float = 60.0
    kafka_start_timeout_s: float = 120.0
    service_start_timeout_s: float = 60.0
    mail_start_timeout_s: float = 20.0
    stop_timeout_s: float = 30.0

    # ---- derived paths -------------------------------------------------------------------------
    @property
    def log_dir(self) -> Path:
        """``<run_dir>/logs``: one log file per component (``<name>.log``)."""
        return self.run_dir / "logs"

    @property
    def mail_dir(self) -> Path:
        """``<run_dir>/mail``: the SMTP sink writes one ``.eml`` file per received message here."""
        return self.run_dir / "mail"

    @property
    def postgres_data_dir(self) -> Path:
        """``<run_dir>/postgres``: the private cluster's data directory (never the system cluster)."""
        return self.run_dir / "postgres"

    @property
    def postgres_socket_dir(self) -> Path:
        """``<run_dir>/pgsock``: unix socket directory of the private cluster."""
        return self.run_dir / "pgsock"

    @property
    def kafka_dir(self) -> Path:
        """``<run_dir>/kafka``: generated ``server.properties``, the cluster id and ``data/`` (log.dirs)."""
        return self.run_dir / "kafka"

    # ---- addresses -----------------------------------------------------------------------------
    @property
    def kafka_bootstrap(self) -> str:
        """Kafka bootstrap servers for clients, ``host:port`` (the PLAINTEXT broker listener)."""
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def postgres_address(self) -> str:
        """``host:port`` of the private Postgres server."""
        return f"{self.postgres_host}:{self.postgres_port}"

    @property
    def mail_address(self) -> str:
        """``host:port`` of the SMTP sink."""
        return f"{self.mail_host}:{self.mail_port}"

    def postgres_dsn(self, db: str) -> str:
        """libpq/asyncpg DSN of database ``db``, e.g. ``postgresql://postgres@127.0.0.1:15432/audit``.

        No password: the local cluster trusts loopback connections. SQLAlchemy users add the driver
        themselves (``postgresql+asyncpg://...``).
        """
        return f"postgresql://{self.postgres_user}@{self.postgres_host}:{self.postgres_port}/{db}"

    def service_url(self, name: str) -> str:
        """Base URL of service ``name``, e.g. ``http://127.0.0.1:8101``; ``KeyError`` if unknown."""
        return f"http://{self.service_host}:{self.service_ports[name]}"

    def dlq_topic(self, group: str) -> str:
        """Dead-letter topic of consumer group ``group``: ``renja.events.dlq.<group>``."""
        return manifest.dlq_topic(group, self.dlq_topic_prefix)

    @property
    def consumer_groups(self) -> tuple[str, ...]:
        """Consumer group ids, one per service of ``service_ports`` (the manifest's group of each)."""
        return tuple(manifest.consumer_group_of(name) for name in self.service_ports)

    @property
    def dlq_topics(self) -> tuple[str, ...]:
        """All dead-letter topics, one per consumer group."""
        return tuple(self.dlq_topic(group) for group in self.consumer_groups)

    def as_env(self) -> dict[str, str]:
        """These settings as ``RENJA_*`` environment variables, so a child process rebuilds them exactly.

        Shape: ``{"RENJA_KAFKA_PORT": "19092", "RENJA_SERVICE_PORTS": '{"directive": 8101, ...}', ...}``;
        dict/tuple values are JSON, paths absolute.
        """
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:  # unset (e.g. the real clock): leave the child's default
                continue
            if isinstance(value, datetime):
                env[f"RENJA_{name.upper()}"] = value.isoformat()
                continue
            rendered = json.dumps(value) if isinstance(value, dict | tuple | list) else str(value)
            env[f"RENJA_{name.upper()}"] = rendered
        return env
