"""Settings of the notifier service: SMTP, the directory of people per SOP role, delivery retry policy."""

from __future__ import annotations

import os
import socket

from pydantic import BaseModel, Field, model_validator

from shared.settings import ServiceSettings


class Person(BaseModel):
    """Who holds an SOP role at the agency, for "next actor" e-mails."""

    name: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


DEFAULT_PEOPLE: dict[str, Person] = {
    # Fictitious people and addresses (the .example TLD never resolves); production sets RENJA_PEOPLE.
    "kepala_badan": Person(name="Kepala Badan (fiktif)", email="kepala.badan@bappeda.example.go.id"),
    "sekretaris": Person(name="Sekretaris Badan (fiktif)", email="sekretaris@bappeda.example.go.id"),
    "kasubag_pp": Person(name="Kasubag Perencanaan dan Pelaporan (fiktif)", email="kasubag.pp@bappeda.example.go.id"),
    "staf": Person(name="Staf Perencanaan (fiktif)", email="staf.perencanaan@bappeda.example.go.id"),
}


class NotifierSettings(ServiceSettings):
    """``RENJA_*`` environment. Units: seconds unless named otherwise.

    ``people`` maps an SOP role to the person mailed when a step of that role becomes due; set it as JSON,
    e.g. ``RENJA_PEOPLE='{"staf": {"name": "Dewi", "email": "dewi@bappeda.go.id"}}'`` (roles left out get
    no mail, and a warning is logged).
    """

    service: str = "notifier"

    mail_host: str = "127.0.0.1"
    mail_port: int = 2525  # the local stack's SMTP sink (deploy/local/mailsink.py)
    mail_from: str = "Renja Bappeda <renja-noreply@bappeda.example.go.id>"
    mail_timeout_s: float = 15.0
    mail_max_attempts: int = Field(default=10, ge=1)
    people: dict[str, Person] = Field(default_factory=lambda: dict(DEFAULT_PEOPLE))

    notify_max_age_hours: float = Field(default=72.0, gt=0)  # older due steps are history (replay)

    # Where receipt links in distribution mails point. Unless set (RENJA_PUBLIC_BASE_URL), it is this
    # service's address in the local stack: RENJA_SERVICE_HOST + the notifier's port in RENJA_SERVICE_PORTS
    # (the variables deploy/local/settings.py reads), else http://127.0.0.1:8105.
    public_base_url: str = "http://127.0.0.1:8105"
    service_host: str = "127.0.0.1"
    service_ports: dict[str, int] = Field(default_factory=dict, description="JSON, as in the local stack")

    dispatch_poll_seconds: float = Field(default=1.0, gt=0)
    dispatch_batch_max: int = Field(default=50, ge=1)
    retry_base_seconds: float = Field(default=2.0, gt=0)  # first retry delay; doubles per attempt
    retry_max_seconds: float = Field(default=600.0, gt=0)  # cap of one retry delay
    claim_lease_seconds: float = Field(default=120.0, gt=0)  # a claimed row is retried after this if unmarked

    # Step timers (mutu baku, services.notifier.timers): the reminder at this share of a step's standard,
    # the scheduler's poll (wall seconds), and when a pending timer counts as late to fire (wall seconds).
    timers_enabled: bool = True  # False: plan no step timers and run no scheduler (tests of other features)
    reminder_share: float = Field(default=0.8, gt=0, le=1)
    timer_poll_seconds: float = Field(default=1.0, gt=0)
    timer_batch_max: int = Field(default=100, ge=1)
    timer_late_seconds: float = Field(default=60.0, gt=0)
    instance_name: str = Field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _public_base_url_from_the_stack(self) -> NotifierSettings:
        port = self.service_ports.get(self.service)
        if "public_base_url" not in self.model_fields_set and port is not None:
            self.public_base_url = f"http://{self.service_host}:{port}"
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_notifier_defaults(self) -> NotifierSettings:
        if self.environment == "production" and self.people == DEFAULT_PEOPLE:
            raise ValueError("production needs RENJA_PEOPLE: the default directory holds fictitious addresses")
        return self
