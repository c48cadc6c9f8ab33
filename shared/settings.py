"""Settings shared by every service (pydantic-settings); each service subclasses ``ServiceSettings``.

Environment variables use the ``RENJA_`` prefix (the same names the local stack reads), e.g.
``RENJA_POSTGRES_PORT=15432``, ``RENJA_KAFKA_PORT=19092``. Defaults are those of the local
no-Docker stack (``deploy/local``). Outside ``environment=development`` the validator refuses the unsafe
development defaults (the shared HS256 token secret).

``schema_base_url`` (``RENJA_SCHEMA_BASE_URL``) is where this deployment serves the event JSON Schemas
(every service answers ``GET /schemas/events/{file}``): the base of each record's ``ce_dataschema``.
Unless set, the local stack's audit: ``RENJA_SERVICE_HOST`` + the audit's port in ``RENJA_SERVICE_PORTS``
(the variables the stack gives its processes), else ``http://127.0.0.1:8106``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.manifest import BY_NAME, DLQ_TOPIC_PREFIX, EVENT_TOPIC, consumer_group_of, database_of

DEV_JWT_SECRET = "renja-local-development-secret-change-me-0123456789"


class ServiceSettings(BaseSettings):
    """Connection and identity settings every service needs. Units: seconds unless named otherwise."""

    model_config = SettingsConfigDict(env_prefix="RENJA_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    service: str = "unnamed"
    log_level: str = "INFO"

    postgres_host: str = "127.0.0.1"
    postgres_port: int = 15432
    postgres_user: str = "postgres"
    postgres_password: str = ""
    postgres_database: str | None = None  # defaults to the service's database in shared.manifest
    postgres_pool_max: int = 10

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

    schema_base_url: str = f"http://127.0.0.1:{BY_NAME['audit'].port}"  # see the module docstring
    # the local stack's variables, read only to default schema_base_url to the stack's audit address
    service_host: str = "127.0.0.1"
    service_ports: dict[str, int] = Field(default_factory=dict, description="JSON, as in the local stack")

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
        """asyncpg DSN for ``database`` (default: this service's own database)."""
        auth = self.postgres_user + (f":{self.postgres_password}" if self.postgres_password else "")
        return f"postgresql://{auth}@{self.postgres_host}:{self.postgres_port}/{database or self.database}"

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
        return self


@cache
def schema_base_url() -> str:
    """This process's ``RENJA_SCHEMA_BASE_URL`` (as ``ServiceSettings`` reads it, derived default
    included), read once: the base of ``ce_dataschema`` for records built without an explicit base (the
    outbox relay's). Raises what ``ServiceSettings()`` raises for an invalid environment."""
    return ServiceSettings().schema_base_url
