"""The local stack's public face: ``up``, ``down``, ``status`` and the components they manage.

A facade kept so that ``from deploy.local import stack`` (the CLI, the tests) goes on working: the
orchestration lives in ``deploy.local.supervisor``, each component in its own module (``postgres``,
``kafka_broker``, ``mail``, ``services``) and the process plumbing in ``deploy.local.process``.
"""

from __future__ import annotations

from deploy.local.kafka_broker import Kafka
from deploy.local.mail import Mail
from deploy.local.postgres import POSTGRES_OS_USER, Postgres
from deploy.local.process import StackError, pid_alive
from deploy.local.services import Service, existing_services
from deploy.local.supervisor import (
    Component,
    ComponentStatus,
    Echo,
    components,
    down,
    ensure_component,
    status,
    status_document,
    up,
)

__all__ = [
    "POSTGRES_OS_USER",
    "Component",
    "ComponentStatus",
    "Echo",
    "Kafka",
    "Mail",
    "Postgres",
    "Service",
    "StackError",
    "components",
    "down",
    "ensure_component",
    "existing_services",
    "pid_alive",
    "status",
    "status_document",
    "up",
]
