"""Settings shared by every service (pydantic-settings); each service subclasses ``ServiceSettings``.

Environment variables use the ``RENJA_`` prefix (the same names the local stack reads), e.g.
``RENJA_POSTGRES_PORT=15432``, ``RENJA_KAFKA_PORT=19092``. Defaults are those of the local
no-Docker stack (``deploy/local``). Outside ``environment=development`` the validator refuses the unsafe
development defaults (the shared HS256 token secret).

Secrets: every setting can also come from a file named after its variable (lower case, e.g.
``renja_postgres_password``) in the directory ``RENJA_SECRETS_DIR`` names (compose secrets and Kubernetes
Secret volumes mount such files; environment variables win over files). ``SECRET_SETTINGS`` lists the
settings that are secrets (``docs/settings.md`` marks them).

Connections (issue 15): ``kafka_security_protocol`` ``SASL_SSL`` with ``kafka_sasl_*`` (SCRAM-SHA-512, as
Strimzi's ``KafkaUser`` gives) or ``SSL`` with a client certificate (mTLS: ``kafka_ssl_certfile`` +
``kafka_ssl_keyfile``), the brokers checked against ``kafka_ssl_cafile``; every client (producer, consumer,
admin, the CLI) takes them through ``kafka_options()``. Postgres: ``postgres_sslmode`` (libpq's modes) with
``postgres_sslrootcert`` (and a client certificate, optional), carried in ``postgres_dsn()``.

``schema_base_url`` (``RENJA_SCHEMA_BASE_URL``) is where this deployment serves the event JSON Schemas
(every service answers ``GET /schemas/events/{file}``): the base of each record's ``ce_dataschema``.
Unless set, the local stack's audit: ``RENJA_SERVICE_HOST`` + the audit's port in ``RENJA_SERVICE_PORTS``
(the variables the stack gives its processes), else ``http://127.0.0.1:8106``.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from aiokafka.helpers import create_ssl_context
from pydantic import AwareDatetime, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from shared.clock import Clock, clock_of
from shared.manifest import BY_NAME, DLQ_TOPIC_PREFIX, EVENT_TOPIC, consumer_group_of, database_of

DEV_JWT_SECRET = "renja-local-development-secret-change-me-0123456789"

SECRET_SETTINGS = frozenset({"postgres_password", "jwt_secret", "kafka_sasl_password", "kafka_ssl_key_password"})
"""Settings whose values are secrets: give them as files under ``RENJA_SECRETS_DIR`` (or Secret env)."""

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
PostgresSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class RenjaSettings(BaseSettings):
    """The base of every settings class: ``RENJA_*`` env, then secret files under ``RENJA_SECRETS_DIR``.
    An empty variable counts as unset (an override file can blank a value: compose.dev.yaml)."""

    model_config = SettingsConfigDict(env_prefix="RENJA_", extra="ignore", env_ignore_empty=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init arguments, then ``RENJA_*`` env, then files under ``RENJA_SECRETS_DIR`` (read per instance)."""
        secrets_dir = os.environ.get("RENJA_SECRETS_DIR", "").strip() or None
        return init_settings, env_settings, dotenv_settings, SecretsSettingsSource(settings_cls, secrets_dir)


class KafkaSecurity(RenjaSettings):
    """How a Kafka client authenticates and checks the brokers (every ``RENJA_KAFKA_*`` but addresses)."""

    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None  # secret
    kafka_ssl_cafile: Path | None = None  # CA (PEM) the brokers' certificates must chain to; None: system CAs
    kafka_ssl_certfile: Path | None = None  # client certificate (PEM) for mTLS
    kafka_ssl_keyfile: Path | None = None  # its private key (PEM)
    kafka_ssl_key_password: str | None = None  # secret; for an encrypted key file

    def kafka_security(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client (producer, consumer, admin): ``security_protocol``,
        the SASL credentials and an ``ssl_context`` from the CA and client certificate files.

        Raises ``ValueError`` for SASL without a user or password, ``OSError``/``ssl.SSLError`` for an
        unreadable certificate or key file.
        """
        protocol = self.kafka_security_protocol
        options: dict[str, Any] = {"security_protocol": protocol}
        if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
            if not self.kafka_sasl_username or not self.kafka_sasl_password:
                raise ValueError(
                    f"RENJA_KAFKA_SECURITY_PROTOCOL={protocol} needs RENJA_KAFKA_SASL_USERNAME and "
                    "RENJA_KAFKA_SASL_PASSWORD"
                )
            options |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password,
            }
        if protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = create_ssl_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
                certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
                keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
                password=self.kafka_ssl_key_password,
            )
        return options


class ServiceSettings(KafkaSecurity):
    """Connection and identity settings every service needs. Units: seconds unless named otherwise."""

    environment: Literal["development", "test", "production"] = "development"
    service: str = "unnamed"
    log_level: str = "INFO"
    tracing: Literal["off", "otlp", "file"] | None = None  # unset: otlp if OTEL_EXPORTER_OTLP_ENDPOINT is set
    trace_file: Path | None = None  # RENJA_TRACING=file: finished spans as JSON lines (shared.tracing)

    postgres_host: str = "127.0.0.1"
    postgres_port: int = 15432
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_database: str | None = None  # defaults to the service's database in shared.manifest
    postgres_pool_max: int = 10
    postgres_sslmode: PostgresSslMode | None = None  # None: libpq's default (prefer)
    postgres_sslrootcert: Path | None = None  # CA bundle (PEM) the server's certificate must chain to
    postgres_sslcert: Path | None = None  # client certificate (PEM), if the server asks for one
    postgres_sslkey: Path | None = None  # its private key (PEM)
    migrate_on_start: bool = True  # false where a migrations step (renja migrate) runs before the services

    kafka_host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_servers: str | None = None  # comma-separated bootstrap list; overrides host/port when set
    event_topic: str = EVENT_TOPIC
    dlq_topic_prefix: str = DLQ_TOPIC_PREFIX
    consumer_group: str | None = None  # defaults to the service's group in shared.manifest
    consumer_batch_max: int = 500
    relay_batch_max: int = 500
    relay_poll_seconds: float = 1.0
    publish_on_commit_timeout_s: float = Field(default=10.0, ge=0)
    """How long a command's answer waits for its events to be on the log (seconds); past it the answer is
    ``202`` with a status link and the relay publishes them later (``shared.command``)."""

    jwt_issuer: str = "renja-local-issuer"
    jwt_audience: str = "renja"
    jwt_secret: str = DEV_JWT_SECRET  # HS256 for the local issuer
    jwt_jwks_url: str | None = None  # production: the OIDC provider's JWKS (RS256/ES256)

    sop_file: Path | None = None  # defaults to shared/sop.yaml
    registry_file: Path | None = None  # RENJA_REGISTRY_FILE; defaults to data/region/bengkulu-utara.yaml

    schema_base_url: str = f"http://127.0.0.1:{BY_NAME['audit'].port}"  # see the module docstring
    # the local stack's variables, read only to default schema_base_url to the stack's audit address
    service_host: str = "127.0.0.1"
    service_ports: dict[str, int] = Field(default_factory=dict, description="JSON, as in the local stack")

    # The simulated office clock (shared.clock), for development, tests and the demo; refused in production.
    # RENJA_CLOCK_START: the simulated instant at wall-clock RENJA_CLOCK_EPOCH; RENJA_CLOCK_SPEED: simulated
    # seconds per wall second. Unset start = the real clock.
    clock_start: AwareDatetime | None = None
    clock_speed: float = Field(default=1.0, gt=0)
    clock_epoch: AwareDatetime | None = None

    def clock(self) -> Clock:
        """This process's clock: real, or simulated from ``clock_start``/``clock_speed``/``clock_epoch``."""
        if self._clock is None:
            self._clock = clock_of(self.clock_start, self.clock_speed, self.clock_epoch)
        return self._clock

    _clock: Clock | None = None

    @property
    def database(self) -> str:
        """``postgres_database``, else the database the manifest gives this service (else its name)."""
        return self.postgres_database or database_of(self.service)

    @property
    def group_id(self) -> str:
        """``consumer_group``, else the group the manifest gives this service (else its name)."""
        return self.consumer_group or consumer_group_of(self.service)

    @property
    def dlq_topic(self) -> str:
        return f"{self.dlq_topic_prefix}{self.group_id}"

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_servers or f"{self.kafka_host}:{self.kafka_port}"

    def postgres_dsn(self, database: str | None = None) -> str:
        """asyncpg DSN for ``database`` (default: this service's own database), with the TLS settings as
        libpq query parameters (``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``) when set."""
        auth = quote(self.postgres_user, safe="")
        if self.postgres_password:
            auth += ":" + quote(self.postgres_password, safe="")
        query = urlencode({
            name: str(value)
            for name, value in (
                ("sslmode", self.postgres_sslmode),
                ("sslrootcert", self.postgres_sslrootcert),
                ("sslcert", self.postgres_sslcert),
                ("sslkey", self.postgres_sslkey),
            )
            if value is not None
        })  # fmt: skip
        dsn = f"postgresql://{auth}@{self.postgres_host}:{self.postgres_port}/{database or self.database}"
        return f"{dsn}?{query}" if query else dsn

    @model_validator(mode="after")
    def _schema_base_url_from_the_stack(self) -> ServiceSettings:
        port = self.service_ports.get("audit")
        if "schema_base_url" not in self.model_fields_set and port is not None:
            self.schema_base_url = f"http://{self.service_host}:{port}"
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> ServiceSettings:
        if self.environment == "production" and self.jwt_jwks_url is None and self.jwt_secret == DEV_JWT_SECRET:
            raise ValueError("production needs RENJA_JWT_JWKS_URL or a private RENJA_JWT_SECRET")
        if self.environment == "production" and self.clock_start is not None:
            raise ValueError(
                "production refuses the simulated clock: unset RENJA_CLOCK_START (and RENJA_CLOCK_SPEED, "
                "RENJA_CLOCK_EPOCH); events must record real time"
            )
        return self


@cache
def env_kafka_security() -> dict[str, Any]:
    """This process's Kafka client security options (``KafkaSecurity().kafka_security()`` from the
    ``RENJA_*`` env and secret files), read once: what ``shared.kafka`` gives every client by default."""
    return KafkaSecurity().kafka_security()


@cache
def schema_base_url() -> str:
    """This process's ``RENJA_SCHEMA_BASE_URL`` (as ``ServiceSettings`` reads it, derived default
    included), read once: the base of ``ce_dataschema`` for records built without an explicit base (the
    outbox relay's). Raises what ``ServiceSettings()`` raises for an invalid environment."""
    return ServiceSettings().schema_base_url
